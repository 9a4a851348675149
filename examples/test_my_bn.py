"""A user's own test file: the symbolic_bn_check fixture comes with the package (pytest plugin).

    python -m pytest examples/test_my_bn.py

shows one pass and one failure -- on purpose: wrong_backward is wrong, and the report names the
failed obligation once, with its exact counterexample.  Add --symbolic-bn-report=bn.json to keep
the certificates.
"""
from my_bn import backward, forward, wrong_backward


def test_forward(symbolic_bn_check):
    symbolic_bn_check.forward(forward, shape=(2, 3, 4))


def test_backward(symbolic_bn_check):
    symbolic_bn_check.backward(backward, shape=(2, 3, 4))


def test_wrong_backward(symbolic_bn_check):
    symbolic_bn_check.backward(wrong_backward, shape=(1, 2, 3))
