"""Inference-time BatchNorm bounds: scale/offset, IBP, affine, derivative boxes and their proofs.

See :mod:`symbolic_bn.bounds.inference`.
"""
from .inference import *  # noqa: F401,F403 - the public API of the bounds
from .inference import __all__  # noqa: F401
