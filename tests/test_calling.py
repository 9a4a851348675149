"""Which functions get the namespace: a parameter named ``xp``, or one more positional parameter
than the data whose default (if any) is a module.  A user's own option with a default
(``bug=False``) must never receive the namespace -- it would silently switch the code under test
(a truthy namespace object turned a correct double backward into its buggy variant)."""
import numpy
import pytest

from symbolic_bn.checks.calling import takes_namespace


def f_xp(x, g, b, eps, xp): ...
def f_np(x, g, b, eps, np=numpy): ...
def f_last(x, g, b, eps, ns): ...
def f_kw(x, g, b, eps, *, xp=None): ...
def f_plain(x, g, b, eps): ...
def f_option(x, g, b, eps, bug=False): ...
def f_option_none(x, g, b, eps, scale=None): ...
def f_var(x, g, b, eps, *rest): ...


@pytest.mark.parametrize("fn, wants", [(f_xp, True), (f_np, True), (f_last, True), (f_kw, True),
                                       (f_plain, False), (f_option, False), (f_option_none, False),
                                       (f_var, False)])
def test_takes_namespace(fn, wants):
    assert takes_namespace(fn, 4) is wants


def test_an_option_with_a_default_is_left_alone_in_a_check():
    from symbolic_bn import check_forward

    def forward(x, gamma, beta, eps, wrong=False):
        mu = x.mean(axis=(1, 2), keepdims=True)
        var = ((x - mu) ** 2).mean(axis=(1, 2), keepdims=True)
        y = (x - mu) / numpy.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]
        return 2 * y if wrong else y

    assert check_forward(forward, shape=(1, 2, 2)).ok
    assert not check_forward(lambda *a: forward(*a, wrong=True), shape=(1, 2, 2)).ok
