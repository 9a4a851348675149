"""Implementations handed to ``symbolic-bn check`` by tests/test_cli.py (imported by the CLI
subprocess through PYTHONPATH=tests/)."""
import numpy

from symbolic_bn import numeric

NOT_CALLABLE = 3


def forward(x, gamma, beta, eps, xp=numpy):
    """Correct channel-first BatchNorm forward (two-pass variance)."""
    return numeric.forward(x, gamma, beta, eps, xp=xp)


def backward(x, gamma, beta, grad_out, eps, xp=numpy):
    """Correct backward (J^T grad_out)."""
    return numeric.backward(x, gamma, beta, grad_out, eps, xp=xp)


def backward_no_xp(x, gamma, beta, grad_out, eps):
    """Correct backward without an xp argument: unmodified NumPy code, checked exactly through
    NumPy's override protocols."""
    return numeric.backward(x, gamma, beta, grad_out, eps)


def wrong_backward(x, gamma, beta, grad_out, eps, xp=numpy):
    """Forgets the x̂·Σ(g·x̂) term of dx: wrong by O(1) for every non-constant input."""
    n = x.shape[1] * x.shape[2]
    mean = xp.sum(x, axis=(1, 2), keepdims=True) / n
    c = x - mean
    var = xp.sum(c * c, axis=(1, 2), keepdims=True) / n
    r = 1 / xp.sqrt(var + eps)
    xhat = c * r
    s1 = xp.sum(grad_out, axis=(1, 2), keepdims=True)
    s2 = xp.sum(grad_out * xhat, axis=(1, 2), keepdims=True)
    dx = gamma[:, None, None] * r / n * (n * grad_out - s1)
    return dx, s2[:, 0, 0], s1[:, 0, 0]


def wrong_forward(x, gamma, beta, eps, xp=numpy):
    """Adds beta twice."""
    return numeric.forward(x, gamma, beta, eps, xp=xp) + beta[:, None, None]


def backward_raises(x, gamma, beta, grad_out, eps, xp=numpy):
    raise RuntimeError("this implementation is broken")


def backward_unsupported(x, gamma, beta, grad_out, eps, xp=numpy):
    """Correct, but uses xp.tanh (0·tanh(1) = 0), which the symbolic namespace does not have."""
    dx, dgamma, dbeta = numeric.backward(x, gamma, beta, grad_out, eps, xp=xp)
    return dx + 0 * xp.tanh(x), dgamma, dbeta


def backward_exits(x, gamma, beta, grad_out, eps, xp=numpy):
    """Ends the process instead of returning: must be a failed check, never a silent pass."""
    import sys
    sys.exit(0)


def backward_exits_no_xp(x, gamma, beta, grad_out, eps):
    import sys
    sys.exit(0)


class _NotAnException(BaseException):
    pass


def backward_base_exception(x, gamma, beta, grad_out, eps, xp=numpy):
    raise _NotAnException("escapes `except Exception`")
