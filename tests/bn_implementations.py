"""Channel-first BatchNorm implementations written against ``xp`` only (NumPy, symbolic, mpmath).

Not a test file: a catalogue used by tests/test_mutants_impl.py and tests/test_check.py.

* ``CORRECT_BACKWARDS`` -- mathematically equal to Jᵀ·g, written differently;
* ``WRONG_BACKWARDS``  -- deliberate bugs (each name says which);
* ``CORRECT_FORWARDS`` / ``WRONG_FORWARDS``.

x, grad_out: C×H×W; gamma, beta: C.  Statistics are over the spatial axes (1, 2).
"""

AX = (1, 2)


def _b(v):
    return v[:, None, None]


def _stats(x, eps, xp):
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean((x - mu) ** 2, axis=AX, keepdims=True)
    invstd = 1 / xp.sqrt(var + eps)
    return mu, var, invstd


def _n(x):
    return x.shape[1] * x.shape[2]


# ------------------------------------------------------------------------------------------------
# Correct forwards


def forward_plain(x, gamma, beta, eps, xp):
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean((x - mu) ** 2, axis=AX, keepdims=True)
    return (x - mu) / xp.sqrt(var + eps) * _b(gamma) + _b(beta)


def forward_moments_pow(x, gamma, beta, eps, xp):
    """E[x²] − E[x]² variance and a float exponent -0.5."""
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean(x * x, axis=AX, keepdims=True) - mu * mu
    return (x - mu) * (var + eps) ** -0.5 * _b(gamma) + _b(beta)


def forward_clamped(x, gamma, beta, eps, xp):
    """TorchLean's clamp max(var, 0)."""
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.maximum(xp.mean((x - mu) ** 2, axis=AX, keepdims=True), 0)
    return (x - mu) / xp.sqrt(var + eps) * _b(gamma) + _b(beta)


def forward_sqrt_n(x, gamma, beta, eps, xp):
    """std from the sum of squares: sqrt(S + N·eps)/sqrt(N) (radicand N·(var + eps))."""
    n = _n(x)
    mu = xp.mean(x, axis=AX, keepdims=True)
    S = xp.sum((x - mu) ** 2, axis=AX, keepdims=True)
    return (x - mu) * xp.sqrt(n) / xp.sqrt(S + n * eps) * _b(gamma) + _b(beta)


# Wrong forwards


def forward_unbiased_var(x, gamma, beta, eps, xp):
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.sum((x - mu) ** 2, axis=AX, keepdims=True) / (_n(x) - 1)
    return (x - mu) / xp.sqrt(var + eps) * _b(gamma) + _b(beta)


def forward_eps_outside(x, gamma, beta, eps, xp):
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean((x - mu) ** 2, axis=AX, keepdims=True)
    return (x - mu) / (xp.sqrt(var) + eps) * _b(gamma) + _b(beta)


def forward_no_beta(x, gamma, beta, eps, xp):
    mu, _, invstd = _stats(x, eps, xp)
    return (x - mu) * invstd * _b(gamma)


# ------------------------------------------------------------------------------------------------
# Correct backwards


def backward_closed_form(x, gamma, beta, g, eps, xp):
    """PyTorch-style closed form with invstd."""
    n = _n(x)
    mu, _, invstd = _stats(x, eps, xp)
    xhat = (x - mu) * invstd
    dbeta = xp.sum(g, axis=AX)
    dgamma = xp.sum(g * xhat, axis=AX)
    dxhat = g * _b(gamma)
    dx = (n * dxhat - xp.sum(dxhat, axis=AX, keepdims=True)
          - xhat * xp.sum(dxhat * xhat, axis=AX, keepdims=True)) * invstd / n
    return dx, dgamma, dbeta


def backward_staged(x, gamma, beta, g, eps, xp):
    """Chain rule through mean, var, std, x̂ (as autograd would)."""
    n = _n(x)
    mu = xp.mean(x, axis=AX, keepdims=True)
    xc = x - mu
    var = xp.mean(xc * xc, axis=AX, keepdims=True)
    std = xp.sqrt(var + eps)
    xhat = xc / std
    dgamma = xp.sum(g * xhat, axis=AX)
    dbeta = xp.sum(g, axis=AX)
    dxhat = g * _b(gamma)
    dxc = dxhat / std
    dstd = -xp.sum(dxhat * xc, axis=AX, keepdims=True) / (std * std)
    dvar = dstd / (2 * std)
    dxc = dxc + dvar * 2 * xc / n
    dmu = -xp.sum(dxc, axis=AX, keepdims=True)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def backward_moments(x, gamma, beta, g, eps, xp):
    """Variance as E[x²] − E[x]², (var + eps) ** -0.5."""
    n = _n(x)
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean(x * x, axis=AX, keepdims=True) - mu * mu
    invstd = (var + eps) ** -0.5
    xhat = (x - mu) * invstd
    dxhat = g * _b(gamma)
    dx = invstd / n * (n * dxhat - xp.sum(dxhat, axis=AX, keepdims=True)
                       - xhat * xp.sum(dxhat * xhat, axis=AX, keepdims=True))
    return dx, xp.sum(g * xhat, axis=AX), xp.sum(g, axis=AX)


def backward_division(x, gamma, beta, g, eps, xp):
    """Division by std instead of multiplication by the inverse; means instead of sums."""
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean((x - mu) ** 2, axis=AX, keepdims=True)
    std = xp.sqrt(var + eps)
    xhat = (x - mu) / std
    dxhat = g * _b(gamma)
    dx = (dxhat - xp.mean(dxhat, axis=AX, keepdims=True)
          - xhat * xp.mean(dxhat * xhat, axis=AX, keepdims=True)) / std
    return dx, xp.sum(g * (x - mu), axis=AX) / std[:, 0, 0], xp.sum(g, axis=AX)


def backward_var_power(x, gamma, beta, g, eps, xp):
    """Through dvar with (var + eps) ** -1.5, as in many tutorials."""
    n = _n(x)
    mu = xp.mean(x, axis=AX, keepdims=True)
    xc = x - mu
    var = xp.mean(xc ** 2, axis=AX, keepdims=True)
    dxhat = g * _b(gamma)
    dvar = xp.sum(dxhat * xc, axis=AX, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = -xp.sum(dxhat, axis=AX, keepdims=True) / xp.sqrt(var + eps) \
        + dvar * xp.sum(-2 * xc, axis=AX, keepdims=True) / n
    dx = dxhat / xp.sqrt(var + eps) + dvar * 2 * xc / n + dmu / n
    xhat = xc / xp.sqrt(var + eps)
    return dx, xp.sum(g * xhat, axis=AX), xp.sum(g, axis=AX)


def backward_torch(x, gamma, beta, g, eps, xp):
    """PyTorch's CPU kernel: var = E[x²] − E[x]², invstd = (var + eps) ** -0.5, and
    invstd·invstd (which SymPy turns into (var + eps)⁻¹)."""
    n = _n(x)
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean(x * x, axis=AX, keepdims=True) - mu * mu
    invstd = (var + eps) ** -0.5
    dot = xp.sum(g * (x - mu), axis=AX, keepdims=True)
    k = dot * invstd * invstd / n
    gm = xp.sum(g, axis=AX, keepdims=True) / n
    dx = (g - gm - (x - mu) * k) * invstd * _b(gamma)
    return dx, (dot * invstd)[:, 0, 0], xp.sum(g, axis=AX)


def backward_sqrt_n(x, gamma, beta, g, eps, xp):
    """invstd = sqrt(N)/sqrt(S + N·eps) with S the sum of squared deviations."""
    n = _n(x)
    mu = xp.mean(x, axis=AX, keepdims=True)
    invstd = xp.sqrt(n) / xp.sqrt(xp.sum((x - mu) ** 2, axis=AX, keepdims=True) + n * eps)
    xhat = (x - mu) * invstd
    dxhat = g * _b(gamma)
    dx = (n * dxhat - xp.sum(dxhat, axis=AX, keepdims=True)
          - xhat * xp.sum(dxhat * xhat, axis=AX, keepdims=True)) * invstd / n
    return dx, xp.sum(g * xhat, axis=AX), xp.sum(g, axis=AX)


def backward_into_grad_out(x, gamma, beta, g, eps, xp):
    """Kernel style: dx is written into the grad_out buffer (g -= ...; return g).  Not in
    CORRECT_BACKWARDS: it overwrites its argument, which only the exact checker tolerates."""
    n = _n(x)
    mu, _, invstd = _stats(x, eps, xp)
    xhat = (x - mu) * invstd
    s1 = xp.sum(g, axis=AX, keepdims=True)
    s2 = xp.sum(g * xhat, axis=AX, keepdims=True)
    g -= s1 / n
    g -= xhat * s2 / n
    g *= _b(gamma) * invstd
    return g, s2[:, 0, 0], s1[:, 0, 0]


CORRECT_BACKWARDS = [backward_closed_form, backward_staged, backward_moments, backward_division,
                     backward_var_power, backward_torch, backward_sqrt_n]
#: exactly correct, but E[x²] − E[x]² cancels catastrophically at large means (crosscheck rejects)
NUMERICALLY_UNSTABLE = [backward_moments, backward_torch, forward_moments_pow]
CORRECT_FORWARDS = [forward_plain, forward_moments_pow, forward_clamped, forward_sqrt_n]
WRONG_FORWARDS = [forward_unbiased_var, forward_eps_outside, forward_no_beta]


# ------------------------------------------------------------------------------------------------
# Wrong backwards: each a small deviation from backward_closed_form


def _closed(x, gamma, g, eps, xp, *, n=None, invstd=None, xhat=None, a=None, s1=1, s2=1, scale=None):
    n0 = _n(x)
    n = n0 if n is None else n
    mu = xp.mean(x, axis=AX, keepdims=True)
    if invstd is None:
        _, _, invstd = _stats(x, eps, xp)
    if xhat is None:
        xhat = (x - mu) * invstd
    dxhat = g * _b(gamma)
    term = (n * dxhat - s1 * xp.sum(dxhat, axis=AX, keepdims=True)
            - s2 * xhat * xp.sum(dxhat * xhat, axis=AX, keepdims=True))
    return term * invstd / n if scale is None else term * scale


def _xhat(x, eps, xp):
    mu, _, invstd = _stats(x, eps, xp)
    return (x - mu) * invstd


def wrong_missing_inv_n(x, gamma, beta, g, eps, xp):
    _, _, invstd = _stats(x, eps, xp)
    dx = _closed(x, gamma, g, eps, xp, scale=invstd)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_unbiased_var(x, gamma, beta, g, eps, xp):
    n = _n(x)
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.sum((x - mu) ** 2, axis=AX, keepdims=True) / (n - 1)
    invstd = 1 / xp.sqrt(var + eps)
    xhat = (x - mu) * invstd
    dx = _closed(x, gamma, g, eps, xp, invstd=invstd, xhat=xhat)
    return dx, xp.sum(g * xhat, axis=AX), xp.sum(g, axis=AX)


def wrong_sign(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, eps, xp, s2=-1)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_dgamma_without_xhat(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, eps, xp)
    return dx, xp.sum(g * x, axis=AX), xp.sum(g, axis=AX)


def wrong_dbeta_scaled(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, eps, xp)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.mean(g, axis=AX)


def wrong_eps_outside_sqrt(x, gamma, beta, g, eps, xp):
    mu = xp.mean(x, axis=AX, keepdims=True)
    var = xp.mean((x - mu) ** 2, axis=AX, keepdims=True)
    invstd = 1 / (xp.sqrt(var) + eps)
    xhat = (x - mu) * invstd
    dx = _closed(x, gamma, g, eps, xp, invstd=invstd, xhat=xhat)
    return dx, xp.sum(g * xhat, axis=AX), xp.sum(g, axis=AX)


def wrong_gamma_twice(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma * gamma, g, eps, xp)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_dx_zeros(x, gamma, beta, g, eps, xp):
    """The all-ones trap: dx = 0 is right for g ≡ 1."""
    return xp.zeros_like(x), xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_reduction_axis(x, gamma, beta, g, eps, xp):
    """Σ_p ĝ reduced over axis 2 only (per row) instead of the whole spatial plane."""
    n = _n(x)
    mu, _, invstd = _stats(x, eps, xp)
    xhat = (x - mu) * invstd
    dxhat = g * _b(gamma)
    w = x.shape[2]
    dx = (n * dxhat - (n // w) * xp.sum(dxhat, axis=2, keepdims=True)
          - xhat * xp.sum(dxhat * xhat, axis=AX, keepdims=True)) * invstd / n
    return dx, xp.sum(g * xhat, axis=AX), xp.sum(g, axis=AX)


def wrong_missing_xhat_term(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, eps, xp, s2=0)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_missing_sum_g_term(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, eps, xp, s1=0)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_var_without_eps(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, 0, xp)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_dgamma_over_channels(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, eps, xp)
    total = xp.sum(g * _xhat(x, eps, xp))
    return dx, total * xp.ones_like(gamma), xp.sum(g, axis=AX)


def wrong_swapped_dgamma_dbeta(x, gamma, beta, g, eps, xp):
    dx = _closed(x, gamma, g, eps, xp)
    return dx, xp.sum(g, axis=AX), xp.sum(g * _xhat(x, eps, xp), axis=AX)


def wrong_std_instead_of_invstd(x, gamma, beta, g, eps, xp):
    mu, var, invstd = _stats(x, eps, xp)
    std = xp.sqrt(var + eps)
    xhat = (x - mu) * invstd
    dx = _closed(x, gamma, g, eps, xp, invstd=std, xhat=xhat)
    return dx, xp.sum(g * xhat, axis=AX), xp.sum(g, axis=AX)


def wrong_inv_n_squared(x, gamma, beta, g, eps, xp):
    n = _n(x)
    _, _, invstd = _stats(x, eps, xp)
    dx = _closed(x, gamma, g, eps, xp, scale=invstd / (n * n))
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


def wrong_dx_without_gamma(x, gamma, beta, g, eps, xp):
    dx = _closed(x, xp.ones_like(gamma), g, eps, xp)
    return dx, xp.sum(g * _xhat(x, eps, xp), axis=AX), xp.sum(g, axis=AX)


WRONG_BACKWARDS = [
    wrong_missing_inv_n, wrong_unbiased_var, wrong_sign, wrong_dgamma_without_xhat,
    wrong_dbeta_scaled, wrong_eps_outside_sqrt, wrong_gamma_twice, wrong_dx_zeros,
    wrong_reduction_axis, wrong_missing_xhat_term, wrong_missing_sum_g_term,
    wrong_var_without_eps, wrong_dgamma_over_channels, wrong_swapped_dgamma_dbeta,
    wrong_std_instead_of_invstd, wrong_inv_n_squared, wrong_dx_without_gamma,
]
