r"""High-precision cross-check of a numeric normalization layer against an mpmath reference.

Without ``layer`` this is the channel-first BatchNorm (C×H×W) described below; with
``layer=L`` (any :class:`symbolic_bn.layers.Layer`) it is that layer in its own layout: section
"Every layer" at the end.

``crosscheck(forward, backward, ...)`` runs a user's float32/float64 implementation of the
BatchNormChannelFirst forward and/or backward (semantics in :mod:`symbolic_bn.numeric`) at a set of
deterministic points and compares every output with an mpmath reference evaluated at ``dps``
digits on *exactly* the dtype-rounded inputs the implementation received (each float32/float64
value is converted to ``mpf`` exactly; ``eps`` is rounded to the dtype too and passed to the
function as that exact value).  The difference is therefore the implementation's own error, with
no input-rounding noise.

Point families
--------------
* ``normal``         -- x ~ N(0, 1).
* ``large_mean``     -- x ~ ±1e4 + N(0, 1) per channel: E[x²]−E[x]² cancels catastrophically here.
* ``small_variance`` -- per channel, mean ~ N(0, 1) and population variance set to |eps|·10^U(−1,1)
  (variance comparable to eps, so eps matters and the centered values are small).
* ``mixed_scales``   -- channels with spreads log-spaced from 1e−3 to 1e3 (jittered), means of the
  order of max(1, spread).
* ``sparse``         -- per channel, x is zero except in its bottom-right ``min(H,2) × min(W,4)``
  corner (at most ``SPARSE_NONZEROS = 8`` entries), which holds integers of magnitude ≤ 384 times
  a power of two with every row and every column of the corner summing to exactly 0; grad_out is
  small integers (|g| ≤ 5, not constant in a channel), in the corner with the sign of x (so that
  dγ = Σ g·x̂ does not cancel).  Here the sums a correct implementation
  forms are exact or nearly so: Σx, Σ(x − μ)² and Σg are sums of exactly representable integers
  (times a power of two), exact in float32 and float64 in *any* order, so μ = 0 exactly, and the
  only rounded sum, Σ g·x̂, has at most 8 nonzero terms.  One-pass (Welford) updates are nearly
  exact too, in row-major or column-major order, sequential, blocked or in interleaved lanes:
  the running mean returns to ~0 after each row and each column of the corner, so the zeros are
  never combined with a large running mean.  This family is what catches an N − 1 variance at
  large N (see "What the bound can and cannot catch").
* ``user``           -- the dicts given in ``inputs``.

Points are assigned to families round-robin; point ``i`` is generated from
``numpy.random.default_rng([seed, i])`` so it depends only on ``(seed, i)``.  After them comes
one **eps probe**: a ``small_variance`` point (or, when ``families`` leaves that family out, a
point of the first family given) generated for, and checked at, another eps (``2·eps``;
``eps/2`` for a negative eps, ``1e-6`` for eps = 0).  A function that ignores its
``eps`` argument (hard-codes PyTorch's default 1e-5, crosscheck's default too) passes every point
at that eps but fails the probe.  Its figures count in the outputs (``worst`` then names the
family ``eps_probe``) and are reported in ``CrosscheckResult.eps_probe``, not in ``families``.
Then two **degenerate** points (family ``degenerate``), where code that branches on data behaves
differently and no random family lands: channel 0 exactly constant (variance 0 in floating point
too; only when eps > 0) and ``gamma[0] = 0``.  γ is generic
(magnitudes U(0.5, 2), random signs, and every even point has at least one negative γ), β ~ N(0,1),
and the cotangent ``grad_out`` is a generic random array (N(0,1) plus a per-channel offset) --
never all ones, because with ``g ≡ 1`` the exact ``dx`` is 0 for *any* rule of the form
``a·g + b·Σg + c·x̂·Σ(g x̂)`` with a = −b, since ``Σ x̂ = 0`` (ecosystem.md §0 item 2).

Pass/fail bound (why it is what it is)
--------------------------------------
A yes/no answer needs a tolerance that a *correct* float implementation meets and a wrong one
does not.  A fixed relative tolerance fails both ways: at ``large_mean`` in float32 a correct
implementation has relative error ~1e−3 in y (the mean 1e4 cannot be represented better than
ulp(1e4)/2 ≈ 5e−4, which is ~5e−4 in units of std), while at well-conditioned points a rule that
is wrong by 1e−3 must fail.  So every output component gets condition-aware scales, computed with
mpmath from the exact inputs, and the test is::

    |got − ref| ≤ bound = (c·u·(|ref| + E) + c·u·√N·R) · (1 + c·u·√N·κ_c)

with ``u = 2^−24`` (float32) or ``2^−53`` (float64), ``N = H·W``, ``c = BOUND_FACTOR = 8`` and
``κ_c = max_p a_{c,p}`` (a second-order allowance).  The two scales separate the two kinds of
rounding error a correct (two-pass) evaluation makes:

* ``E`` -- *elementwise* roundings: each component goes through a bounded number of operations
  (centering, the scale 1/sqrt(var + eps), γ·x̂ + β, the terms of dx), independent of N.  The
  condition number of ``x̂_{c,p}`` for them is ``a_{c,p} = (|x_{c,p}| + A_c)·r_c`` with
  ``A_c = mean_p |x_{c,p}|``: this also covers the fused scale/shift form
  ``y = x·(γr) + (β − μγr)`` (as PyTorch evaluates y), whose roundings are relative to |x| and |μ|.
* ``R`` -- the *reductions* over the N positions (the mean, the variance, Σg, Σg x̂).  Their error
  grows with N.  The computed mean is off by ``δμ`` of order ``growth(N)·u·A_c``; as this shift is
  common to the channel it moves every ``x̂`` by ``r_c·δμ`` (scale ``A_c r_c``), ``Σ g x̂`` by
  ``r_c·δμ·Σg`` (to first order exactly -- not ``Σ|g|``) and the variance not at all to first
  order (Σ_p (x − μ) = 0); the variance and the sums have relative error ``growth(N)·u``.

Propagating both through the closed forms (S1 = Σg, S2 = Σ g x̂, k = |γ_c| r_c / N)::

    y_{c,p}  : E = |γ| a_p + |β|                  R = |γ| (A r + |x̂_p|)
    dβ_c     : E = 0                              R = Σ|g|
    dγ_c     : E = Σ|g| a                         R = A r |S1| + Σ|g x̂| + |S2|
    dx_{c,p} : E = k (N|g_p| + |S1| + |x̂_p||S2| + |x̂_p| Σ|g| a + a_p |S2|)
               R = k (Σ|g| + |x̂_p| (A r |S1| + Σ|g x̂|) + (A r + |x̂_p|) |S2|) + |dx_p|

The growth factor is ``growth(N) = √N``, not the worst-case ``N − 1`` of recursive summation;
for the ``sparse`` family it is ``growth(k)`` with ``k ≤ 8`` the number of nonzero entries of x
in a channel (the only rounded sum has at most k nonzero terms, see the family).
The worst case needs every rounding error of a sum to have the same sign; with rounding errors
that behave like independent zero-mean variables the error of a sum of N terms is at most
``λ√N·u·Σ|terms|`` with high probability (Higham & Mary, "A new approach to probabilistic
rounding error analysis", SIAM J. Sci. Comput. 41 (2019)), and pairwise summation (NumPy) or a
wider accumulator only lowers it.  This choice is what makes the check sharp at large N: an
earlier bound ``4(N + 2)u·(|ref| + S)``, with the worst-case N multiplying *every* term including
the large elementwise scale ``Σ|g|a`` of dγ at ``large_mean``, allowed a dγ that was wrong by a
factor of 335 at 1×32×32 in float32.  ``c = 8`` bounds the number of elementwise roundings
that reach one component (about 6 for y, 8 for dx, counted for the two-pass, division and fused
forms) and is the ``λ`` (times the 2–3 chained reductions) of the √N term.  Measured worst
``err/bound``, over every family, seeds 0 and 1 and shapes from 1×1×2 to 3×16×16 and 1×32×32
(and 1×64×64, 1×128×128), float32 and float64: ≤ 0.09 for our runtime and for PyTorch's
``instance_norm``, ≤ 0.11 for two-pass variants with *recursive* (sequential, ``cumsum``)
summation and with the fused scale/shift x̂, ≤ 0.09 for one-pass (Welford) statistics in
row-major order -- a margin of ~10 on these, and the ratio does not grow with N (the √N growth
matches what the recursive sums actually do).  The least accurate correct evaluation found is
a float32 one-pass (Welford) mean visiting the positions in *column-major* order: 0.37 on
``large_mean`` at 1×64×64 (seed 1; 0.06–0.07 at 1×32×32 and 1×128×128), because its running
mean (≈ 1e4) stops moving once the update ``(x − m)/k`` is below half an ulp of m.  This is a
realistic (probabilistic) bound, not a worst-case guarantee: an adversarial input whose rounding
errors all align could in principle exceed it for a correct implementation; the generated families
do not.  The bound is small enough to reject what matters:

* an ``O(1)``-relative error in any output (missing 1/N, sign error, dγ without x̂, dx ≡ 0, any
  single output scaled by 1.5) exceeds it at well-conditioned points (``normal``), where ``E``
  and ``R`` are O(N·|ref|) at most and ``c·u·√N`` ≈ 1.5e−5 (float32, N = 1024);
* a float32 forward with variance ``E[x²] − E[x]²`` has an error in ``var`` of order
  ``u·mean²``, i.e. ~6 in units of var at ``large_mean``, so y is off by O(|γ|) (or is NaN when
  the unclamped variance goes negative) while the bound is ≈ ``c·u·(a + √N·A r)·|γ|`` ≈ 0.03|γ|
  (2×4×4) to 0.16|γ| (1×32×32); the same cancellation in dγ alone is caught the same way.

What the bound can and cannot catch: an N − 1 variance
-------------------------------------------------------
An N − 1 (Bessel-corrected) variance is *not* an O(1) error: it scales x̂ by about
``1 − 1/(2N)``, a relative error of 1/(2N) that shrinks with N, while the bound allows a relative
error of ``c·u·√N`` for what the reductions feed into x̂.  On the dense families the two meet at
``1/(2N) ≈ c·u·√N``, so the err/bound of an N − 1 variance falls like N^(−3/2): on ``normal``
in float32, y 25 at N = 1024, 3.2 at 4096, 0.41 at 16 384 (1×128×128); dγ only 2.5 at N = 1024.
In float64 this is far beyond any shape.  On the ``sparse``
family the reductions are (nearly) exact, so only the elementwise roundings remain and the
N − 1 deviation stays above the bound much longer.  Measured (seed 0), err/bound of an exact
N − 1 variance on ``sparse``: y ≈ 2.2·10⁵/N, dx ≈ 1.9·10⁵/N, dγ ≈ 1.25·10⁵/N in float32 (y: 211
at N = 1024, 53 at 4096, 13 at 16 384; dγ: 121, 31, 7.6) and ≈ 10¹⁴/N (dγ 6.6·10¹³/N) in
float64.

Every run measures this instead of assuming it: for each point it also evaluates the reference
with an N − 1 variance and records, per checked output that depends on the variance (y, dx,
dγ), the largest ``|ref(N−1) − ref| / bound`` over its components in
``CrosscheckResult.bessel_ratios``; ``bessel_ratio`` is the smallest of them (an N − 1 variance
used for any one output must be caught).  ``bessel_caught`` is ``bessel_ratio > BESSEL_MARGIN =
2`` (a float N − 1 implementation then fails even if its own
rounding errors, at most one bound, all point against the deviation); ``N = 1`` counts as caught
(an N − 1 variance is 0/0 there).  When it is false -- in float32 with the ``sparse`` family
for N ≳ 6·10⁴ (about 250×250) when dγ is checked and N ≳ 1.1·10⁵ (about 330×330) for the forward
alone; without it (``families`` not including ``sparse``, or fewer than 5 points) already for
N ≳ 5·10³ (y) or N ≳ 1.2·10³ (dγ) -- the printed table says ``WARNING: an N-1 (Bessel-corrected) variance could PASS
this run`` and the RESULT line carries the warning: a PASS there does not rule out an N − 1
variance.  Use float64, or a smaller H·W, to rule it out.

NaN or inf returned by the implementation on a valid input point (finite inputs, var + eps > 0)
is an *infinite error*: that output fails and ``CrosscheckResult.problems`` says "… returned NaN at
point …".  It is not an exception, because it is a numerical failure of the implementation, not
a malfunction of the call.

The reference is itself checked without symbolic differentiation: at the first point of every
family (``mp.diff`` at ``dps`` digits) the directional derivative of ``⟨y(p + s·t), g⟩`` along a random
tangent ``t = (tx, tγ, tβ)`` is compared with ``⟨t, Jᵀg⟩`` from the reference backward and with
``⟨J t, g⟩`` from the reference JVP (the dot-product test).  A discrepancy above
``10^(−⌊dps/2⌋)·(1 + Σ|terms|)`` raises :class:`ReferenceCheckError` (an internal error: the
reference would be wrong).  At ``dps = 50`` the discrepancies are ~1e−48.

Every layer: ``crosscheck(..., layer=L)``
------------------------------------------
The user's functions are ``forward(x, weight, bias, eps[, xp])`` and ``backward(x, weight, bias,
grad_out, eps[, xp]) -> (dx, dweight, dbias)`` on arrays in the layer's own layout (rms_norm:
``bias`` is None and the backward returns ``(dx, dweight)``; batchnorm_channel_first keeps the
names gamma, beta, dgamma, dbeta); ``xp = numpy`` is passed only to a function that declares it
(a parameter ``xp``, or one positional parameter more than the data).  ε: the layer's when it is a
number (``eps`` may only repeat it), crosscheck's ``eps`` (default 1e-5) when it is symbolic.

*Points.*  Each statistics group is laid out as a matrix -- its members in C order, the width
the innermost input axis when the group runs along it (batchnorm_channel_first: H × W, exactly
the points of the C×H×W path; batch_norm (N, C, H, W): an (N·H) × W matrix per channel) -- and
the families above are generated per group (per-group means, variances, spreads, sparse corner
blocks, cotangent offsets); weight and bias get one generic value per entry.  For rms_norm
``small_variance`` makes mean(x²) comparable to eps.

*Reference.*  y is ``layer.forward`` and (dx, dweight, dbias) the layer's closed forms
(:func:`symbolic_bn.graphs.closed_forms.backward`), both evaluated on object arrays of mpf at
``dps`` digits on the exact dtype-rounded inputs (:func:`layer_reference` gives the same values
for any input).  At the first point of every family the reference checks itself: ``mp.diff`` of
⟨layer.forward(p + s·t), g⟩ against the closed-form backward and JVP (dot-product test, as
above), and a separate per-group evaluation (the one the scales and the N − 1 figures use)
against the closed forms entry by entry, so the groups and weight positions used for the bound
are the layer's; a discrepancy raises :class:`ReferenceCheckError`.

*Bound.*  The same formula, per statistics group, generalized: ĝ = g·w per member (the weight
may change within a group: layer_norm, group_norm), a weight entry's sums run over every group
it is used in, ``N`` of √N is the longest sum a correct implementation forms (the group size, or
the number of positions sharing a weight entry, whichever is larger; ``sparse``: the nonzero
terms when every group has one weight entry).  Two terms are larger than in the C×H×W path,
because PyTorch's own kernels need them (measured): (1) the mean-error term of Σĝx̂ uses Σ|ĝ|, not
|Σĝ| -- torch's layer_norm CPU backward forms Σĝx on the *uncentered* x, whose error is relative
to Σ|ĝ|·A, and with a weight that changes sign within a group |Σĝ| ≪ Σ|ĝ| (0.52 of the bound
with |Σĝ| at layer_norm 16×32 float32 large_mean); (2) torch's layer_norm/group_norm variance
(one pass) has a relative error of about 2.5·A·r·u, not √N·u (float64: 25 425 u at A·r = 1e4,
N = 8; 211 u at A·r = 300, N = 256), and torch's dx = r·ĝ + b·x + c has no common factor r, so
the elementwise scales get ``A·r·|w x̂|`` (y) and ``A·r·k·(n|ĝ| + |Σĝ| + 3|x̂||Σĝx̂|)`` (dx).  With
them, torch's batch_norm(training=True), instance_norm, layer_norm, group_norm and rms_norm
reach at most 0.085 of the bound over 15 layer shapes up to 4×256 and 8×2×8×8, seeds 0–2, float32
and float64 (0.46 for layer_norm dx before (2)).  The N − 1 figures (``bessel_ratios``) are
measured per point as above, with the group's n.

Errors
------
Bad arguments raise ``ValueError`` naming the argument.  ``eps`` may be 0 or negative, but the
generated families need ``var + eps > 0`` in every channel: if a generated point violates that
(``eps ≤ 0`` with ``H·W = 1``, or ``eps`` below minus a channel variance) a ``ValueError`` names
``eps`` and the point; a user input that violates it is refused naming ``inputs[k]``.  A user
function that raises, returns the wrong number of arrays, wrong shapes or non-real values raises
:class:`ImplementationError` (a ``ValueError``) naming the function, the family and the point: a
malfunction is never reported as a pass.  Every call receives fresh copies of the point's arrays,
so a function may write into its arguments (a backward that stores dx in ``grad_out``, an
in-place ``x -= mean``): that cannot change the reference or any other call, is not an error, and
is listed once per function and argument in ``CrosscheckResult.notes``.  NaN/inf outputs
are failing results (see above), never a pass either.  All mpmath work happens inside
``mp.workdps(dps)``; the global precision is never changed.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Optional

import mpmath
import numpy as np
from mpmath import mp

from ..exact.budget import BudgetExceeded, check_budget, time_budget, untrusted_code

__all__ = [
    "crosscheck",
    "reference",
    "layer_reference",
    "CrosscheckResult",
    "OutputReport",
    "FamilyReport",
    "ImplementationError",
    "ReferenceCheckError",
    "FAMILIES",
    "BOUND_FACTOR",
    "BOUND_FORMULA",
    "BESSEL_MARGIN",
    "SPARSE_NONZEROS",
]

FAMILIES = ("normal", "large_mean", "small_variance", "mixed_scales", "sparse")
BOUND_FACTOR = 8
#: Nonzero entries per channel of the ``sparse`` family (the length of its only rounded sums).
SPARSE_NONZEROS = 8
#: An exact N − 1 variance counts as caught when its deviation is more than this many bounds: a
#: float implementation of it then exceeds the bound even if its own rounding errors (at most one
#: bound, like a correct implementation's) all go against the deviation.
BESSEL_MARGIN = 2
BOUND_FORMULA = "|got-ref| <= (c*u*(|ref|+E) + c*u*sqrt(N)*R) * (1 + c*u*sqrt(N)*kappa)"
MIN_DPS = 20
_UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}
_NP_DTYPES = {"float32": np.float32, "float64": np.float64}
FORWARD_OUTPUTS = ("y",)
DEFAULT_SHAPE = (2, 4, 4)
DEFAULT_EPS = 1e-5
BACKWARD_OUTPUTS = ("dx", "dgamma", "dbeta")


class ImplementationError(ValueError):
    """The implementation under test malfunctioned (raised, wrong arity/shape, NaN/inf, ...)."""


class ReferenceCheckError(RuntimeError):
    """Internal error: the mpmath reference failed its own finite-difference/dot-product check."""


# --------------------------------------------------------------------------------------------
# argument validation
# --------------------------------------------------------------------------------------------

def _normalize_dtype(dtype) -> str:
    if isinstance(dtype, str):
        if dtype in _NP_DTYPES:
            return dtype
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}") from None
    if d == np.float32:
        return "float32"
    if d == np.float64:
        return "float64"
    raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _validate_shape(shape):
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of 3 positive ints (C, H, W); got {shape!r}") from None
    if len(shape) != 3 or not all(_is_int(s) and s > 0 for s in shape):
        raise ValueError(f"shape must be a tuple of 3 positive ints (C, H, W); got {shape!r}")
    return tuple(int(s) for s in shape)


def _validate_array(name, value, dtype, want_shape=None, ndim=None):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real numeric array: {exc}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional; got shape {arr.shape}")
    if want_shape is not None and arr.shape != tuple(want_shape):
        raise ValueError(f"{name} must have shape {tuple(want_shape)}; got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    with np.errstate(over="ignore"):
        rounded = arr.astype(dtype)
    if not np.all(np.isfinite(rounded)):
        raise ValueError(f"{name} overflows {np.dtype(dtype).name}")
    return rounded


def _growth(n):
    """Growth factor of the reductions' rounding errors: ``√N`` (see the module docstring)."""
    return mp.sqrt(n)


# --------------------------------------------------------------------------------------------
# mpmath reference (plain Python loops over mpf; all at the caller's workdps)
# --------------------------------------------------------------------------------------------

def _to_mp_rows(arr):
    """(C, H, W) float array -> list of C lists of N exact mpf values."""
    C = arr.shape[0]
    flat = arr.reshape(C, -1)
    return [[mp.mpf(float(v)) for v in row] for row in flat]


def _to_mp_vec(arr):
    return [mp.mpf(float(v)) for v in arr]


def _ref_forward(xs, gam, bet, eps, ddof=0):
    """Reference forward on mpf rows.  Returns dict of per-channel lists.  ``ddof=1`` gives the
    N − 1 (Bessel-corrected) variance, used only to measure whether that bug would be caught."""
    mean, var, std, r, xhat, y = [], [], [], [], [], []
    for c, row in enumerate(xs):
        n = len(row)
        m = mp.fsum(row) / n
        cen = [v - m for v in row]
        v = mp.fsum(t * t for t in cen) / (n - ddof)
        ve = v + eps
        if ve <= 0:
            raise ValueError(f"point outside the domain var + eps > 0 (channel {c}: var + eps = "
                             f"{mpmath.nstr(ve, 5)})")
        s = mp.sqrt(ve)
        rc = 1 / s
        xh = [t * rc for t in cen]
        mean.append(m)
        var.append(v)
        std.append(s)
        r.append(rc)
        xhat.append(xh)
        y.append([gam[c] * t + bet[c] for t in xh])
    return {"mean": mean, "var": var, "std": std, "r": r, "xhat": xhat, "y": y}


def _ref_backward(fw, gam, gs):
    dx, dgamma, dbeta, s2s = [], [], [], []
    for c, (xh, g) in enumerate(zip(fw["xhat"], gs)):
        n = len(g)
        s1 = mp.fsum(g)
        s2 = mp.fsum(a * b for a, b in zip(g, xh))
        coef = gam[c] * fw["r"][c] / n
        dx.append([coef * (n * gp - s1 - xp * s2) for gp, xp in zip(g, xh)])
        dgamma.append(s2)
        dbeta.append(s1)
        s2s.append(s2)
    return {"dx": dx, "dgamma": dgamma, "dbeta": dbeta, "S2": s2s}


def _ref_jvp(fw, gam, tx, tg, tb):
    out = []
    for c, (xh, t) in enumerate(zip(fw["xhat"], tx)):
        n = len(t)
        m1 = mp.fsum(t) / n
        m2 = mp.fsum(a * b for a, b in zip(t, xh)) / n
        k = gam[c] * fw["r"][c]
        out.append([k * (tp - m1 - xp * m2) + xp * tg[c] + tb[c] for tp, xp in zip(t, xh)])
    return out


def _scales(xs, gam, bet, gs, fw, bw):
    """Condition-aware scales (see module docstring), as mpf.

    For every output, per component, ``(E, R)``: ``E`` scales the elementwise roundings (an
    N-independent number of them per component), ``R`` the errors of the reductions over the N
    spatial positions (the mean, the variance, Σg and Σgx̂).  Also ``kappa`` per channel.
    """
    out = {"y": [], "dx": [], "dgamma": [], "dbeta": [], "kappa": []}
    for c, row in enumerate(xs):
        n = len(row)
        r = fw["r"][c]
        A = mp.fsum(abs(v) for v in row) / n
        Ar = A * r                                   # x̂-units size of the error of the mean
        a = [(abs(v) + A) * r for v in row]          # elementwise condition of x̂_p
        xh = fw["xhat"][c]
        ag = abs(gam[c])
        out["kappa"].append(max(a))
        out["y"].append([(ag * ap + abs(bet[c]), ag * (Ar + abs(xp)))
                         for ap, xp in zip(a, xh)])
        if gs is not None:
            g = gs[c]
            sg = mp.fsum(abs(t) for t in g)                           # Σ|g|
            sga = mp.fsum(abs(t) * ap for t, ap in zip(g, a))         # Σ|g| a
            sgx = mp.fsum(abs(t * xp) for t, xp in zip(g, xh))        # Σ|g x̂|
            s1 = abs(bw["dbeta"][c])
            s2 = abs(bw["S2"][c])
            k = ag * r / n
            dS2_r = Ar * s1 + sgx                                     # reduction error of S2
            out["dx"].append([
                (k * (n * abs(gp) + s1 + abs(xp) * s2 + abs(xp) * sga + ap * s2),
                 abs(dxp) + k * (sg + abs(xp) * dS2_r + (Ar + abs(xp)) * s2))
                for gp, xp, ap, dxp in zip(g, xh, a, bw["dx"][c])])
            out["dgamma"].append((sga, dS2_r + s2))
            out["dbeta"].append((mp.mpf(0), sg))
    return out


def reference(x, gamma, beta, eps, grad_out=None, dps=50):
    """mpmath reference values at ``dps`` digits for float inputs taken exactly as given.

    Returns a dict of float64 NumPy arrays (each the nearest double to the high-precision value):
    ``mean``, ``var``, ``std`` (shape (C,)), ``xhat``, ``y`` (shape (C, H, W)) and, when
    ``grad_out`` is given, ``dx``, ``dgamma``, ``dbeta``.  ``eps`` is used exactly as the given
    Python/NumPy float.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (C, H, W); got {x.shape}")
    if not _is_int(dps) or dps < MIN_DPS:
        raise ValueError(f"dps must be an int >= {MIN_DPS}; got {dps!r}")
    C = x.shape[0]
    gamma = np.asarray(gamma).reshape(-1)
    beta = np.asarray(beta).reshape(-1)
    if gamma.shape != (C,) or beta.shape != (C,):
        raise ValueError("gamma and beta must have shape (C,)")
    with mp.workdps(dps):
        xs = _to_mp_rows(x)
        gam, bet = _to_mp_vec(gamma), _to_mp_vec(beta)
        fw = _ref_forward(xs, gam, bet, mp.mpf(float(eps)))
        res = {
            "mean": np.array([float(v) for v in fw["mean"]]),
            "var": np.array([float(v) for v in fw["var"]]),
            "std": np.array([float(v) for v in fw["std"]]),
            "xhat": np.array([[float(v) for v in row] for row in fw["xhat"]]).reshape(x.shape),
            "y": np.array([[float(v) for v in row] for row in fw["y"]]).reshape(x.shape),
        }
        if grad_out is not None:
            g = np.asarray(grad_out)
            if g.shape != x.shape:
                raise ValueError(f"grad_out must have shape {x.shape}; got {g.shape}")
            bw = _ref_backward(fw, gam, _to_mp_rows(g))
            res["dx"] = np.array([[float(v) for v in row] for row in bw["dx"]]).reshape(x.shape)
            res["dgamma"] = np.array([float(v) for v in bw["dgamma"]])
            res["dbeta"] = np.array([float(v) for v in bw["dbeta"]])
    return res


def _reference_self_check(xs, gam, bet, gs, eps, fw, bw, rng, dps):
    """FD (mp.diff) + dot-product test of the reference at one point.  Returns a dict of figures."""
    C = len(xs)
    tx = [[mp.mpf(float(v)) for v in rng.standard_normal(len(row))] for row in xs]
    tg = [mp.mpf(float(v)) for v in rng.standard_normal(C)]
    tb = [mp.mpf(float(v)) for v in rng.standard_normal(C)]

    def phi(s):
        xs_s = [[v + s * t for v, t in zip(row, trow)] for row, trow in zip(xs, tx)]
        gam_s = [a + s * b for a, b in zip(gam, tg)]
        bet_s = [a + s * b for a, b in zip(bet, tb)]
        y = _ref_forward(xs_s, gam_s, bet_s, eps)["y"]
        return mp.fsum(a * b for yrow, grow in zip(y, gs) for a, b in zip(yrow, grow))

    fd = mp.diff(phi, mp.mpf(0))
    terms = ([a * b for trow, drow in zip(tx, bw["dx"]) for a, b in zip(trow, drow)]
             + [a * b for a, b in zip(tg, bw["dgamma"])] + [a * b for a, b in zip(tb, bw["dbeta"])])
    vjp_dot = mp.fsum(terms)
    jv = _ref_jvp(fw, gam, tx, tg, tb)
    jvp_terms = [a * b for jrow, grow in zip(jv, gs) for a, b in zip(jrow, grow)]
    jvp_dot = mp.fsum(jvp_terms)
    magnitude = 1 + mp.fsum(abs(t) for t in terms) + mp.fsum(abs(t) for t in jvp_terms)
    threshold = mp.mpf(10) ** (-(dps // 2)) * magnitude
    fd_vs_vjp = abs(fd - vjp_dot)
    jvp_vs_vjp = abs(jvp_dot - vjp_dot)
    fd_vs_jvp = abs(fd - jvp_dot)
    figures = {
        "fd_directional": float(fd),
        "vjp_dot": float(vjp_dot),
        "jvp_dot": float(jvp_dot),
        "fd_vs_vjp": float(fd_vs_vjp),
        "jvp_vs_vjp": float(jvp_vs_vjp),
        "fd_vs_jvp": float(fd_vs_jvp),
        "threshold": float(threshold),
    }
    worst = max(fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp)
    if not worst <= threshold:
        raise ReferenceCheckError(
            "mpmath reference failed its self-check: finite-difference / dot-product "
            f"discrepancy {mpmath.nstr(worst, 5)} exceeds {mpmath.nstr(threshold, 5)} "
            f"(figures: {figures})")
    return figures


# --------------------------------------------------------------------------------------------
# point generation
# --------------------------------------------------------------------------------------------

def _gen_params(rng, C, i):
    signs = rng.choice(np.array([-1.0, 1.0]), size=C)
    if i % 2 == 0 and np.all(signs > 0):
        signs[rng.integers(C)] = -1.0
    gamma = signs * rng.uniform(0.5, 2.0, size=C)
    beta = rng.standard_normal(C)
    return gamma, beta


def _gen_grad(rng, shape):
    C = shape[0]
    return rng.standard_normal(shape) + rng.uniform(-1.0, 1.0, size=C)[:, None, None]


def _zero_sum_integers(rng, k):
    """k nonzero integers of magnitude <= 3*128 summing to exactly 0 (k = 1: one nonzero)."""
    vals = rng.integers(1, 129, size=k) * rng.choice(np.array([-1, 1]), size=k)
    if k > 1:
        vals[-1] = -int(vals[:-1].sum())
        if vals[-1] == 0:
            vals[0] += 1 if vals[0] > 0 else -1
            vals[-1] = -int(vals[:-1].sum())
    return vals


def _gen_sparse(rng, shape):
    """x and grad_out of the ``sparse`` family (see the module docstring).

    Per channel, x is zero except in its bottom-right ``h × w`` corner (``h = min(H, 2)``,
    ``w = min(W, 4)``, so at most :data:`SPARSE_NONZEROS` entries), which holds small integers times
    a power of two with every row and every column summing to exactly 0 (``[[v], [−v]]`` with
    Σv = 0).  grad_out is small integers, not constant in a channel."""
    C, H, W = shape
    n = H * W
    h, w = min(H, 2), min(W, SPARSE_NONZEROS // 2)
    x = np.zeros((C, H, W))
    g = rng.integers(-4, 5, size=(C, H, W)).astype(np.float64)
    for c in range(C):
        if h == 2:
            v = _zero_sum_integers(rng, w) if w > 1 else _zero_sum_integers(rng, 1)
            block = np.stack([v, -v])
        else:
            block = _zero_sum_integers(rng, w)[None, :]
        var = float((block.astype(np.float64) ** 2).sum()) / n if n > 1 else 1.0
        target = 10.0 ** rng.uniform(-1.0, 1.0)
        scale = 2.0 ** round(math.log2(math.sqrt(target / var)))
        x[c, H - h:, W - w:] = block * scale
        # in the corner, grad_out has the sign of x: Σ g·x̂ = dγ then does not cancel, which
        # keeps dγ sensitive to an N − 1 variance (relative to its bound) at large N
        g[c, H - h:, W - w:] = np.sign(block) * rng.integers(1, 5, size=block.shape)
        if n > 1 and np.all(g[c] == g[c].flat[0]):
            g[c].flat[0] += 1.0
    return x, g


EPS_PROBE = "eps_probe"


def _probe_eps(eps, np_dtype) -> float:
    """The eps of the extra point: 2·eps (eps > 0), eps/2 (eps < 0), 1e-6 (eps = 0), in dtype."""
    value = 2.0 * eps if eps > 0 else (eps / 2.0 if eps < 0 else 1e-6)
    with np.errstate(over="ignore"):
        out = float(np_dtype(value))
    return out if math.isfinite(out) else eps


def _reduction_terms(family, x):
    """How many terms of the implementation's sums carry rounding errors (the N of growth(N))."""
    n = x.shape[1] * x.shape[2]
    if family == "sparse":
        return max(1, int(np.max(np.count_nonzero(x.reshape(x.shape[0], -1), axis=1))))
    return n


def _gen_x(family, rng, shape, eps):
    C, H, W = shape
    if family == "normal":
        return rng.standard_normal(shape)
    if family == "large_mean":
        centers = 1e4 * rng.choice(np.array([-1.0, 1.0]), size=C)
        return centers[:, None, None] + rng.standard_normal(shape)
    if family == "small_variance":
        base = abs(eps) if eps != 0 else 1e-6
        lo, hi = (-1.0, 1.0) if eps > 0 else (0.5, 1.5)
        target = base * 10.0 ** rng.uniform(lo, hi, size=C)
        z = rng.standard_normal(shape)
        z = z - z.mean(axis=(1, 2), keepdims=True)
        sd = np.sqrt((z * z).mean(axis=(1, 2), keepdims=True))
        z = np.where(sd > 0, z / np.where(sd > 0, sd, 1.0), 0.0)
        means = rng.standard_normal(C)
        return means[:, None, None] + np.sqrt(target)[:, None, None] * z
    if family == "mixed_scales":
        exps = np.linspace(-3.0, 3.0, C) if C > 1 else rng.uniform(-3.0, 3.0, size=1)
        spreads = 10.0 ** (exps + rng.uniform(-0.25, 0.25, size=C))
        means = rng.standard_normal(C) * np.maximum(1.0, spreads)
        return means[:, None, None] + spreads[:, None, None] * rng.standard_normal(shape)
    raise ValueError(f"unknown family {family!r}")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# running the user's functions
# --------------------------------------------------------------------------------------------

def _fname(fn, role):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{role} function {name!r}"


def _as_output(value, label, what, want_shape):
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything the conversion throws
        raise ImplementationError(f"{label}: {what} could not be converted to a NumPy array "
                                  f"({type(exc).__name__}: {exc})") from exc
    if arr.dtype.kind not in "fiu":
        raise ImplementationError(f"{label}: {what} has non-real dtype {arr.dtype}")
    if arr.shape != tuple(want_shape):
        raise ImplementationError(f"{label}: {what} has shape {arr.shape}, expected "
                                  f"{tuple(want_shape)}")
    # NaN/inf on a valid input point is a numerical failure of the implementation, not a
    # structural one: it is scored as an infinite error (see crosscheck), never raised.
    return arr.astype(np.float64), arr.dtype


def _note_nonfinite(problems, rep, arr, name, label, where):
    """Record NaN/inf components of one output at one point (they count as infinite errors)."""
    bad = ~np.isfinite(arr)
    count = int(np.count_nonzero(bad))
    if not count:
        return
    rep.nonfinite += count
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    kinds = " and ".join(k for k, m in (("NaN", np.isnan(arr)), ("inf", np.isinf(arr)))
                         if np.any(m & bad))
    more = f" ({count} non-finite value(s) in {name})" if count > 1 else ""
    problems.append(f"{label} returned {kinds} at {where}, {name}{list(first)}{more}, although "
                    "the inputs are finite and var + eps > 0: counted as an infinite error")


def _call(fn, role, args, names, where, notes, with_xp=True):
    """Call ``fn`` on fresh copies of the point's arrays (``args`` = arrays..., eps, xp; an array
    may be None: rms_norm's bias); ``with_xp=False`` leaves the namespace out.

    Writing into an argument (a backward that stores dx in grad_out, an in-place ``x -= mean``)
    is allowed: the function only ever sees copies, so the reference and later calls are
    untouched.  It is recorded once per (function, argument) in ``notes``."""
    label = f"{_fname(fn, role)} at {where}"
    arrays = [None if a is None else a.copy() for a in args[:-2]]  # eps and xp are the last two
    try:
        with untrusted_code():  # the user's `except Exception:` cannot swallow the budget
            out = fn(*arrays, *(args[-2:] if with_xp else args[-2:-1]))
    except (BudgetExceeded, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - report any failure of the user's code (sys.exit included)
        raise ImplementationError(f"{label} raised {type(exc).__name__}: {exc}") from exc
    for name, a, original in zip(names, arrays, args):
        if a is not None and not np.array_equal(a, original, equal_nan=True):
            key = f"{_fname(fn, role)} writes into its argument {name!r}"
            if not any(m.startswith(key) for m in notes):
                notes.append(f"{key} (first at {where}); allowed: it is given a copy")
    return out, label


# --------------------------------------------------------------------------------------------
# every layer of symbolic_bn.layers: crosscheck(..., layer=L)
# --------------------------------------------------------------------------------------------

class _MpmathArrays:
    """The few NumPy functions that ``Layer.forward`` and the closed forms
    (:mod:`symbolic_bn.graphs.closed_forms`) use, on object arrays of ``mpf`` (evaluated at the
    caller's ``mp.workdps``; the reductions are plain left-to-right sums, exact to ~``dps``
    digits at the sizes a Layer allows)."""

    @staticmethod
    def asarray(a):
        return np.asarray(a, dtype=object)

    @staticmethod
    def reshape(a, shape):
        return np.reshape(np.asarray(a, dtype=object), shape)

    @staticmethod
    def sum(a, axis=None, keepdims=False):
        return np.sum(np.asarray(a, dtype=object), axis=axis, keepdims=keepdims)

    @classmethod
    def mean(cls, a, axis=None, keepdims=False):
        a = np.asarray(a, dtype=object)
        if axis is None:
            axes = tuple(range(a.ndim))
        else:
            axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
        count = int(np.prod([a.shape[k] for k in axes]))
        return cls.sum(a, axis=axis, keepdims=keepdims) / count

    @staticmethod
    def sqrt(a):
        return np.vectorize(mp.sqrt, otypes=[object])(a)


_MP_ARRAYS = _MpmathArrays()


def _mpf_exact(v):
    """``v`` as an mpf: floats and ints exactly, rationals (``Fraction``, SymPy ``Rational``) to
    the working precision."""
    if isinstance(v, mpmath.mpf):
        return v
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"expected a number, got the bool {v!r}")
    if isinstance(v, numbers.Integral):
        return mp.mpf(int(v))
    if isinstance(v, Fraction):
        return mp.mpf(v.numerator) / v.denominator
    if getattr(v, "is_Rational", False):        # SymPy Rational / Integer
        return mp.mpf(int(v.p)) / int(v.q)
    return mp.mpf(float(v))


_to_mpf = np.vectorize(_mpf_exact, otypes=[object])


def _mp_array(a):
    return None if a is None else _to_mpf(np.asarray(a, dtype=object))


class _LayerView:
    """A layer (:mod:`symbolic_bn.layers`) seen as its statistics groups.

    ``groups[G, n]`` holds the flat input index of each member of each group (C order), and
    ``param[G, n]`` the flat weight index applied there.  For the point families each group is
    laid out as a ``matrix[1] × matrix[2]`` matrix, the width being the length of the innermost
    input axis when the group's members run along it (so ``batchnorm_channel_first`` gets its
    H × W, and ``batch_norm`` (N, C, H, W) an (N·H) × W matrix per channel)."""

    def __init__(self, layer):
        shape = tuple(layer.input_shape)
        self.layer = layer
        self.shape = shape
        self.weight_shape = tuple(layer.weight_shape)
        self.has_bias = layer.bias_shape is not None
        self.centered = bool(layer.centered)
        self.arg_names = tuple(layer.argument_names)
        self.grad_names = tuple("d" + a for a in self.arg_names)
        members = list(layer.members.values())
        self.groups = np.array([[np.ravel_multi_index(idx, shape) for idx in m] for m in members],
                               dtype=np.int64)
        flat_param = np.array([np.ravel_multi_index(tuple(layer.param_of(idx)), self.weight_shape)
                               for idx in np.ndindex(*shape)], dtype=np.int64)
        self.param = flat_param[self.groups]
        G, n = self.groups.shape
        self.n = n
        self.P = int(np.prod(self.weight_shape))
        width = shape[-1] if (len(shape) - 1) in tuple(layer.statistics_axes) else n
        if width > n or n % width:
            width = n
        self.matrix = (G, n // width, width)
        #: every group uses one weight entry (BatchNorm-like): Σ g·w over a group is w·Σ g
        self.uniform_weight = bool(np.all(self.param == self.param[:, :1]))
        self.param_count = np.bincount(self.param.ravel(), minlength=self.P)
        #: the longest sum a correct implementation forms (a group, or the positions of a weight)
        self.reduction_size = int(max(n, int(self.param_count.max())))
        self.word = "var" if self.centered else "mean(x²)"
        self.text = f"{layer.name} {layer.shape_text()}"

    def to_layout(self, rows):
        flat = np.empty(int(np.prod(self.shape)))
        flat[self.groups] = np.asarray(rows, dtype=np.float64).reshape(self.groups.shape)
        return flat.reshape(self.shape)

    def rows(self, arr):
        return np.asarray(arr).reshape(-1)[self.groups]

    def generate(self, family, rng, i, eps, np_dtype):
        """(x, weight, bias or None, grad_out) of point ``i`` of ``family``, in dtype."""
        gamma, beta = _gen_params(rng, self.P, i)
        if family == "sparse":
            x, g = _gen_sparse(rng, self.matrix)
        else:
            x = _gen_x(family, rng, self.matrix, eps)
            g = _gen_grad(rng, self.matrix)
            if family == "small_variance" and not self.centered:
                # rms_norm: mean(x²) (not the variance) comparable to eps
                x = x - x.mean(axis=(1, 2), keepdims=True)
        return (self.to_layout(x).astype(np_dtype),
                gamma.reshape(self.weight_shape).astype(np_dtype),
                beta.reshape(self.weight_shape).astype(np_dtype) if self.has_bias else None,
                self.to_layout(g).astype(np_dtype))

    def degenerate_points(self, seed, first, eps, np_dtype, family):
        """The layer's degenerate points (see the channel-first ``_degenerate_points``): the first
        statistics group exactly 0 (only when eps > 0 keeps it inside the domain) and the weight
        entry the first group uses set to 0, drawn from ``family``."""
        out = []
        for k, kind in enumerate(("constant group", "weight zero")):
            if kind == "constant group" and not eps > 0:
                continue
            x, w, b, g = self.generate(family, np.random.default_rng([seed, first + k, 4]), first + k,
                                       eps, np_dtype)
            if kind == "constant group":
                flat = x.reshape(-1).copy()
                flat[self.groups[0]] = 0
                x = flat.reshape(self.shape)
            else:
                w = w.copy()
                w.reshape(-1)[self.param[0, 0]] = 0
            out.append((DEGENERATE, first + k, x, w, b, g, eps))
        return out

    def reduction_terms(self, family, x):
        """The N of growth(N) at this point (module docstring): the longest rounded sum."""
        if family == "sparse" and self.uniform_weight:
            nonzero = self.rows(x) != 0
            per_group = int(nonzero.sum(axis=1).max())
            per_param = int(np.bincount(self.param[nonzero], minlength=self.P).max()) if nonzero.any() else 0
            return max(1, per_group, per_param)
        return self.reduction_size

    def prepare_inputs(self, inputs, dtype):
        if inputs is None:
            return []
        keys = ("x", self.arg_names[1]) + ((self.arg_names[2],) if self.has_bias else ())
        if isinstance(inputs, dict) or not hasattr(inputs, "__iter__"):
            raise ValueError(f"inputs must be a list of dicts with keys {', '.join(map(repr, keys))} "
                             "(and optionally 'grad_out')")
        prepared = []
        for k, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise ValueError(f"inputs[{k}] must be a dict with keys {', '.join(map(repr, keys))}")
            missing = [key for key in keys if key not in item]
            if missing:
                raise ValueError(f"inputs[{k}] is missing key(s) {missing}")
            unknown = set(item) - set(keys) - {"grad_out"}
            if unknown:
                raise ValueError(f"inputs[{k}] has unknown key(s) {sorted(unknown)}")
            x = _validate_array(f"inputs[{k}]['x']", item["x"], dtype, want_shape=self.shape)
            w = _validate_array(f"inputs[{k}][{keys[1]!r}]", item[keys[1]], dtype,
                                want_shape=self.weight_shape)
            b = None
            if self.has_bias:
                b = _validate_array(f"inputs[{k}][{keys[2]!r}]", item[keys[2]], dtype,
                                    want_shape=self.weight_shape)
            g = None
            if item.get("grad_out") is not None:
                g = _validate_array(f"inputs[{k}]['grad_out']", item["grad_out"], dtype,
                                    want_shape=self.shape)
            prepared.append((x, w, b, g))
        return prepared

    # -- per-group (row) forms, at the caller's workdps
    def mp_rows(self, arr_mp):
        flat = np.asarray(arr_mp, dtype=object).reshape(-1)
        return [[flat[j] for j in row] for row in self.groups]

    def param_rows(self, p_mp):
        flat = np.asarray(p_mp, dtype=object).reshape(-1)
        return [[flat[k] for k in row] for row in self.param]


def _rows_forward(view, xs, ws, bs, eps, ddof=0):
    """Per statistics group: mean, r, x̂ and y (``ddof=1``: an N − 1 statistic, only to measure
    whether that bug would be caught).  ``ws``/``bs`` give the weight/bias at every member."""
    mean, r, xhat, y = [], [], [], []
    for c, row in enumerate(xs):
        n = len(row)
        m = mp.fsum(row) / n if view.centered else mp.zero
        cen = [v - m for v in row]
        stat = mp.fsum(t * t for t in cen) / (n - ddof)
        ve = stat + eps
        if ve <= 0:
            raise ValueError(f"point outside the domain {view.word} + eps > 0 (statistics group {c}: "
                             f"{view.word} + eps = {mpmath.nstr(ve, 5)})")
        rc = 1 / mp.sqrt(ve)
        xh = [t * rc for t in cen]
        mean.append(m)
        r.append(rc)
        xhat.append(xh)
        if bs is None:
            y.append([w * t for w, t in zip(ws[c], xh)])
        else:
            y.append([w * t + b for w, t, b in zip(ws[c], xh, bs[c])])
    return {"mean": mean, "r": r, "xhat": xhat, "y": y}


def _rows_backward(view, fw, ws, gs):
    """Jᵀg per group: dx = (r/n)(n ĝ − c Σĝ − x̂ Σĝx̂), ĝ = g·w; dweight_k = Σ g x̂ and dbias_k = Σ g
    over the positions of weight entry k."""
    dx, s1s, s2s = [], [], []
    dw_terms = [[] for _ in range(view.P)]
    db_terms = [[] for _ in range(view.P)]
    for c, (xh, g) in enumerate(zip(fw["xhat"], gs)):
        n = len(g)
        gh = [a * w for a, w in zip(g, ws[c])]
        s1 = mp.fsum(gh) if view.centered else mp.zero
        s2 = mp.fsum(a * b for a, b in zip(gh, xh))
        k = fw["r"][c] / n
        dx.append([k * (n * a - s1 - b * s2) for a, b in zip(gh, xh)])
        s1s.append(s1)
        s2s.append(s2)
        for p, (a, b) in enumerate(zip(g, xh)):
            kk = int(view.param[c, p])
            dw_terms[kk].append(a * b)
            db_terms[kk].append(a)
    return {"dx": dx, "dweight": [mp.fsum(t) for t in dw_terms],
            "dbias": [mp.fsum(t) for t in db_terms], "S1": s1s, "S2": s2s}


def _layer_scales(view, xs, ws, bs, gs, fw, bw):
    """The condition-aware scales ``(E, R)`` of every component (module docstring), generalized:
    the weight may differ between the members of a group (ĝ = g·w per member), and a weight
    entry may be shared by several groups (its sums run over all of them)."""
    c_on = 1 if view.centered else 0
    out = {"y": [], "dx": [], "kappa": []}
    dw_E = [[] for _ in range(view.P)]
    dw_R = [[] for _ in range(view.P)]
    part_g: dict = {}
    part_gx: dict = {}
    kappa_param = [mp.zero] * view.P
    for c, row in enumerate(xs):
        n = len(row)
        r = fw["r"][c]
        A = mp.fsum(abs(v) for v in row) / n
        Ar = A * r
        a = [(abs(v) + A) * r for v in row]
        xh = fw["xhat"][c]
        kappa = max(a)
        out["kappa"].append(kappa)
        w = ws[c]
        b = bs[c] if bs is not None else [mp.zero] * n
        # A·r·|x̂|: a one-pass variance (torch's layer_norm/group_norm CPU kernels) has a relative
        # error of about 2.5·A·r·u, not √n·u (measured in float64: 25 425 u at A·r = 1e4, n = 8)
        out["y"].append([(abs(wp) * (ap + Ar * abs(xp)) + abs(bp), abs(wp) * (Ar + abs(xp)))
                         for wp, bp, ap, xp in zip(w, b, a, xh)])
        g = gs[c]
        gh = [gp * wp for gp, wp in zip(g, w)]
        sg = mp.fsum(abs(t) for t in gh)
        sga = mp.fsum(abs(t) * ap for t, ap in zip(gh, a))
        sgx = mp.fsum(abs(t * xp) for t, xp in zip(gh, xh))
        s1 = abs(bw["S1"][c])
        s2 = abs(bw["S2"][c])
        k = r / n
        # the mean's error moves Σĝx̂ by r·δμ·Σĝ -- but an implementation that forms Σĝx on the
        # uncentered x (and subtracts μ·Σĝ) errs relative to Σ|ĝ|·A: torch's layer_norm CPU kernel
        # does, and with a weight that changes sign within a group |Σĝ| << Σ|ĝ| (0.52 of the bound
        # with |Σĝ| here, layer_norm 16x32 float32 large_mean); so Σ|ĝ|
        dS2_r = c_on * Ar * sg + sgx
        # that variance error (relative A·r·u) reaches dx through r in r·ĝ, r·Σĝ/n and r³ in the
        # x̂·Σĝx̂ term (r is no common factor in the form dx = r·ĝ + b·x + c torch's kernel uses)
        out["dx"].append([
            (k * ((n * abs(gp) + s1) * (1 + Ar) + abs(xp) * s2 * (1 + 3 * Ar) + abs(xp) * sga + ap * s2),
             abs(dxp) + k * (sg + abs(xp) * dS2_r + (Ar + abs(xp)) * s2))
            for gp, xp, ap, dxp in zip(gh, xh, a, bw["dx"][c])])
        for p in range(n):
            kk = int(view.param[c, p])
            dw_E[kk].append(abs(g[p]) * a[p])
            dw_R[kk].append(abs(g[p] * xh[p]))
            part_g.setdefault((kk, c), []).append(g[p])
            part_gx.setdefault((kk, c), []).append(g[p] * xh[p])
            kappa_param[kk] = max(kappa_param[kk], kappa)
    Ar_of = [mp.fsum(abs(v) for v in row) / len(row) * fw["r"][c] for c, row in enumerate(xs)]
    mean_part = [[] for _ in range(view.P)]
    for (kk, c), terms in part_g.items():
        mean_part[kk].append(c_on * Ar_of[c] * mp.fsum(abs(t) for t in terms)
                             + abs(mp.fsum(part_gx[(kk, c)])))
    out["dweight"] = [(mp.fsum(dw_E[kk]), mp.fsum(mean_part[kk]) + mp.fsum(dw_R[kk]))
                      for kk in range(view.P)]
    out["dbias"] = [(mp.zero, mp.fsum(abs(t) for (k2, _), ts in part_g.items() if k2 == kk for t in ts))
                    for kk in range(view.P)]
    out["kappa_param"] = kappa_param
    return out


def _closed_form_reference(layer, xm, wm, bm, gm, eps):
    """y = ``layer.forward`` and Jᵀg by the layer's closed forms, on mpf arrays (exact inputs)."""
    from ..graphs import closed_forms
    out = {"y": layer.forward(xm, wm, bm, eps, _MP_ARRAYS)}
    if gm is not None:
        grads = closed_forms.backward(layer, xm, wm, bm, gm, eps, _MP_ARRAYS)
        out["dx"], out["dweight"] = grads[0], grads[1]
        if len(grads) > 2:
            out["dbias"] = grads[2]
    return out


def _layer_self_check(view, xm, wm, bm, gm, eps, ref, fw, bw, rng, dps):
    """The reference checked at one point without symbolic differentiation: ``mp.diff`` of
    ⟨layer.forward(p + s·t), g⟩ against ⟨t, Jᵀg⟩ of the closed-form backward and ⟨J t, g⟩ of the
    closed-form JVP (the dot-product test), and the per-group evaluation (which the bound's
    scales and the N − 1 figures use) against the closed forms entry by entry (so the view's
    statistics groups and weight positions are the layer's)."""
    from ..graphs import closed_forms
    layer = view.layer
    tx = _mp_array(rng.standard_normal(view.shape))
    tw = _mp_array(rng.standard_normal(view.weight_shape))
    tb = _mp_array(rng.standard_normal(view.weight_shape)) if view.has_bias else None

    def phi(s):
        y = layer.forward(xm + s * tx, wm + s * tw, None if bm is None else bm + s * tb, eps, _MP_ARRAYS)
        return mp.fsum(list((y * gm).ravel()))

    fd = mp.diff(phi, mp.mpf(0))
    terms = list((tx * ref["dx"]).ravel()) + list((tw * ref["dweight"]).ravel())
    if view.has_bias:
        terms += list((tb * ref["dbias"]).ravel())
    vjp_dot = mp.fsum(terms)
    jv = closed_forms.jvp(layer, xm, wm, bm, tx, tw, tb, eps, _MP_ARRAYS)
    jvp_terms = list((jv * gm).ravel())
    jvp_dot = mp.fsum(jvp_terms)
    magnitude = 1 + mp.fsum(abs(t) for t in terms) + mp.fsum(abs(t) for t in jvp_terms)
    threshold = mp.mpf(10) ** (-(dps // 2)) * magnitude
    # per-group evaluation against the closed forms
    pairs = []
    for c, row in enumerate(view.groups):
        for p, j in enumerate(row):
            pairs.append((fw["y"][c][p], ref["y"].flat[j]))
            pairs.append((bw["dx"][c][p], ref["dx"].flat[j]))
    pairs += list(zip(bw["dweight"], ref["dweight"].ravel()))
    if view.has_bias:
        pairs += list(zip(bw["dbias"], ref["dbias"].ravel()))
    scale = 1 + max(abs(b) for _, b in pairs)
    rows_vs_closed = max(abs(a - b) for a, b in pairs)
    rows_threshold = mp.mpf(10) ** (-(dps // 2)) * scale
    fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp = abs(fd - vjp_dot), abs(jvp_dot - vjp_dot), abs(fd - jvp_dot)
    figures = {
        "fd_directional": float(fd), "vjp_dot": float(vjp_dot), "jvp_dot": float(jvp_dot),
        "fd_vs_vjp": float(fd_vs_vjp), "jvp_vs_vjp": float(jvp_vs_vjp), "fd_vs_jvp": float(fd_vs_jvp),
        "threshold": float(threshold), "groups_vs_closed_forms": float(rows_vs_closed),
    }
    if not max(fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp) <= threshold or not rows_vs_closed <= rows_threshold:
        raise ReferenceCheckError(
            f"mpmath reference for {view.text} failed its self-check: finite-difference / "
            f"dot-product discrepancy {mpmath.nstr(max(fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp), 5)} "
            f"(threshold {mpmath.nstr(threshold, 5)}), per-group evaluation vs closed forms "
            f"{mpmath.nstr(rows_vs_closed, 5)} (threshold {mpmath.nstr(rows_threshold, 5)})")
    return figures


def layer_reference(layer, x, weight, bias, eps, grad_out=None, dps=50, as_float=True):
    """mpmath reference of ``layer`` (:mod:`symbolic_bn.layers`) at ``dps`` digits.

    ``x``, ``weight``, ``bias`` (None for rms_norm), ``grad_out`` in the layer's layout; entries
    may be floats (taken exactly), ints, ``Fraction`` or SymPy rationals (to ``dps`` digits).
    ``eps``: a number (the layer's own ε is not used, so a symbolic-ε layer can be evaluated).
    Returns ``{'y': ...}`` and, with ``grad_out``, the gradients named as the check names them
    (``dx``, ``dweight``, ``dbias``; ``dgamma``, ``dbeta`` for batchnorm_channel_first): float64
    arrays (nearest doubles), or object arrays of mpf with ``as_float=False``.  Computed by
    ``layer.forward`` and the closed-form backward (:mod:`symbolic_bn.graphs.closed_forms`).
    """
    from .. import layers as L
    if not isinstance(layer, L.Layer):
        raise ValueError(f"layer must be a symbolic_bn.layers.Layer; got {type(layer).__name__}")
    if not _is_int(dps) or dps < MIN_DPS:
        raise ValueError(f"dps must be an int >= {MIN_DPS}; got {dps!r}")
    view = _LayerView(layer)
    with mp.workdps(dps):
        arrays = {}
        for name, value, want in (("x", x, view.shape), ("weight", weight, view.weight_shape),
                                  ("bias", bias, view.weight_shape if view.has_bias else None),
                                  ("grad_out", grad_out, view.shape)):
            if value is None:
                if name in ("x", "weight") or (name == "bias" and view.has_bias):
                    raise ValueError(f"{name} is required for {layer.name}")
                arrays[name] = None
                continue
            if want is None:
                raise ValueError(f"bias must be None for {layer.name} (it has no bias)")
            arr = np.asarray(value, dtype=object)
            if arr.shape != tuple(want):
                raise ValueError(f"{name} must have shape {tuple(want)}; got {arr.shape}")
            arrays[name] = _mp_array(arr)
        eps_mp = _mpf_exact(eps)
        xs = view.mp_rows(arrays["x"])
        ws = view.param_rows(arrays["weight"])
        bs = view.param_rows(arrays["bias"]) if view.has_bias else None
        _rows_forward(view, xs, ws, bs, eps_mp)  # refuses a point outside the domain
        ref = _closed_form_reference(layer, arrays["x"], arrays["weight"], arrays["bias"],
                                     arrays["grad_out"], eps_mp)
        out = {"y": ref["y"]}
        if arrays["grad_out"] is not None:
            out[view.grad_names[0]] = ref["dx"]
            out[view.grad_names[1]] = ref["dweight"]
            if view.has_bias:
                out[view.grad_names[2]] = ref["dbias"]
        if as_float:
            out = {k: np.vectorize(float, otypes=[np.float64])(v) for k, v in out.items()}
    return out


def _crosscheck_layer(forward, backward, layer, eps_used, eps_value, dtype, dps, points, seed,
                      inputs, families, budget, degenerate=True) -> "CrosscheckResult":
    """:func:`crosscheck` for a Layer (its layout, its statistics groups, its closed forms)."""
    from .calling import takes_namespace
    np_dtype = _NP_DTYPES[dtype]
    view = _LayerView(layer)
    user = view.prepare_inputs(inputs, np_dtype)
    checked = (("forward",) if forward is not None else ()) + \
              (("backward",) if backward is not None else ())
    out_names = (FORWARD_OUTPUTS if forward is not None else ()) + \
                (view.grad_names if backward is not None else ())
    u = _UNIT_ROUNDOFF[dtype]

    plan = []
    for i in range(points):
        fam = families[i % len(families)]
        rng = np.random.default_rng([seed, i])
        plan.append((fam, i) + view.generate(fam, rng, i, eps_used, np_dtype) + (eps_used,))
    for k, (x, w, b, g) in enumerate(user):
        if g is None:
            g = view.to_layout(_gen_grad(np.random.default_rng([seed, points + k, 1]),
                                         view.matrix)).astype(np_dtype)
        plan.append(("user", points + k, x, w, b, g, eps_used))
    probe_eps = _probe_eps(eps_used, np_dtype)
    probe_family = "small_variance" if "small_variance" in families else families[0]
    i = points + len(user)
    plan.append((EPS_PROBE, i) + view.generate(probe_family, np.random.default_rng([seed, i, 3]), i,
                                               probe_eps, np_dtype) + (probe_eps,))
    degenerate = view.degenerate_points(seed, i + 1, eps_used, np_dtype,
                                        "normal" if "normal" in families else families[0]) \
        if degenerate else []
    plan += degenerate

    reports = {name: OutputReport(name) for name in out_names}
    bias_name = view.grad_names[2] if view.has_bias else None
    bessel_ratios = {name: 0.0 for name in out_names if name != bias_name}
    fam_reports: dict = {}
    ref_checks, seen_family, problems, notes = [], set(), [], []
    points_done, timed_out = 0, False
    fw_xp = forward is not None and takes_namespace(forward, 4)
    bw_xp = backward is not None and takes_namespace(backward, 5)
    arg_names = view.arg_names if view.has_bias else view.arg_names + ("bias",)

    with mp.workdps(dps):
        try:
            with time_budget(budget):
                for fam, i, x, w, b, g, pt_eps in plan:
                    eps_mp = mp.mpf(pt_eps)
                    where = f"point {i} (family {fam!r})"
                    fr = fam_reports.setdefault(fam, FamilyReport(fam))
                    fr.points += 1
                    xm, wm, bm, gm = _mp_array(x), _mp_array(w), _mp_array(b), _mp_array(g)
                    xs, gs = view.mp_rows(xm), view.mp_rows(gm)
                    ws = view.param_rows(wm)
                    bs = view.param_rows(bm) if view.has_bias else None
                    try:
                        fw = _rows_forward(view, xs, ws, bs, eps_mp)
                    except ValueError as exc:
                        if fam == "user":
                            raise ValueError(f"inputs[{i - points}] (eps={pt_eps!r} as {dtype}): "
                                             f"{exc}") from None
                        raise ValueError(
                            f"eps={eps_value!r} (as {dtype}: {pt_eps!r}) is not usable here: the "
                            f"generated point families need {view.word} + eps > 0 in every statistics "
                            f"group of {view.text}, but the generated {where} violates it ({exc}).  "
                            "Use eps > 0 or a negative eps much smaller in magnitude than the "
                            "groups' statistics") from None
                    bw = _rows_backward(view, fw, ws, gs)
                    ref = _closed_form_reference(layer, xm, wm, bm, gm, eps_mp)
                    scales = _layer_scales(view, xs, ws, bs, gs, fw, bw)
                    if view.n > 1:
                        fw_b = _rows_forward(view, xs, ws, bs, eps_mp, ddof=1)
                        bessel = {"y": fw_b["y"], **_rows_backward(view, fw_b, ws, gs)}
                    else:
                        bessel = None
                        bessel_ratios = {name: math.inf for name in bessel_ratios}
                    if fam not in seen_family and fam not in (EPS_PROBE, DEGENERATE):
                        seen_family.add(fam)
                        fig = _layer_self_check(view, xm, wm, bm, gm, eps_mp, ref, fw, bw,
                                                np.random.default_rng([seed, i, 2]), dps)
                        ref_checks.append({"family": fam, "point": i, **fig})

                    got, got_label = {}, {}
                    if forward is not None:
                        out, label = _call(forward, "forward", (x, w, b, pt_eps, np),
                                           arg_names, where, notes, with_xp=fw_xp)
                        got["y"] = _as_output(out, label, "the output", view.shape)
                        got_label["y"] = _fname(forward, "forward")
                    if backward is not None:
                        out, label = _call(backward, "backward", (x, w, b, g, pt_eps, np),
                                           arg_names + ("grad_out",), where, notes, with_xp=bw_xp)
                        k = len(view.grad_names)
                        what = "(" + ", ".join(view.grad_names) + ")"
                        if isinstance(out, (str, bytes)) or not hasattr(out, "__len__") \
                                or isinstance(out, np.ndarray):
                            raise ImplementationError(f"{label} must return a tuple {what}; "
                                                      f"got {type(out).__name__}")
                        if len(out) != k:
                            raise ImplementationError(f"{label} must return {k} arrays {what}; "
                                                      f"got {len(out)}")
                        shapes = (view.shape, view.weight_shape, view.weight_shape)
                        for name, value, want in zip(view.grad_names, out, shapes):
                            got[name] = _as_output(value, label, name, want)
                            got_label[name] = _fname(backward, "backward")

                    tol_e = mp.mpf(BOUND_FACTOR) * mp.mpf(u)
                    tol_r = tol_e * _growth(view.reduction_terms(
                        probe_family if fam == EPS_PROBE else fam, x))
                    ref_of = {"y": ref["y"]}
                    bref_of = {}
                    if backward is not None:
                        ref_of.update(zip(view.grad_names, (ref["dx"], ref["dweight"], ref.get("dbias"))))
                    if bessel is not None:
                        bref_of = {"y": bessel["y"], "dx": bessel["dx"], view.grad_names[1]: bessel["dweight"]}
                    for name in out_names:
                        arr, rdtype = got[name]
                        _note_nonfinite(problems, reports[name], arr, name, got_label[name], where)
                        rep = reports[name]
                        if str(rdtype) not in rep.returned_dtypes:
                            rep.returned_dtypes.append(str(rdtype))
                        flat_got = arr.reshape(-1)
                        flat_ref = np.asarray(ref_of[name], dtype=object).reshape(-1)
                        brefs = bref_of.get(name) if name in bessel_ratios else None
                        if name in ("y", "dx"):
                            key = "y" if name == "y" else "dx"
                            items = [(np.unravel_index(int(j), view.shape), flat_got[j], flat_ref[j],
                                      scales[key][c][p], scales["kappa"][c],
                                      brefs[c][p] if brefs else None)
                                     for c, row in enumerate(view.groups) for p, j in enumerate(row)]
                        else:
                            key = "dweight" if name == view.grad_names[1] else "dbias"
                            items = [(np.unravel_index(kk, view.weight_shape), flat_got[kk], flat_ref[kk],
                                      scales[key][kk], scales["kappa_param"][kk],
                                      brefs[kk] if brefs else None) for kk in range(view.P)]
                        items = [(tuple(int(t) for t in idx),) + tuple(rest) for idx, *rest in items]
                        _score(rep, fr, name, items, tol_e, tol_r, bessel_ratios, fam, i, np_dtype)
                    points_done += 1
        except BudgetExceeded:
            timed_out = True

    for rep in reports.values():
        rep.ok = rep.max_ratio <= 1.0
    ok = all(rep.ok for rep in reports.values()) and not timed_out
    probe_report = fam_reports.pop(EPS_PROBE, None)
    return CrosscheckResult(
        ok=ok, outputs=reports, families=fam_reports, reference_check=ref_checks,
        dtype=dtype, dps=dps, eps=float(eps_value), eps_used=eps_used, shape=view.shape,
        seed=int(seed), points=points, user_points=len(user), unit_roundoff=u,
        bound_factor=BOUND_FACTOR, checked=checked, bessel_ratios=bessel_ratios,
        forward_name=None if forward is None else _fname(forward, "forward"),
        backward_name=None if backward is None else _fname(backward, "backward"),
        problems=problems, notes=notes, budget=budget, complete=not timed_out,
        points_checked=points_done, eps_probe=probe_report, eps_probe_value=probe_eps,
        eps_probe_family=probe_family, degenerate_points=len(degenerate),
        degenerate=fam_reports.pop(DEGENERATE, None), layer=view.text, group_size=view.n)


# --------------------------------------------------------------------------------------------
# result objects
# --------------------------------------------------------------------------------------------

def _jsonable(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(w) for w in v]
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return v


@dataclass
class OutputReport:
    """Figures for one output (``y``, ``dx``, ``dgamma`` or ``dbeta``) over all points.

    ``max_abs``/``max_rel``/``max_ulp`` are maxima over every component of every point (relative
    error is ``inf`` where the reference is exactly 0 and the error is not).  ``max_ratio`` is the
    largest ``error / bound``; ``bound`` and ``worst`` describe the component where it occurred;
    ``ok`` is ``max_ratio <= 1``.  ``nonfinite`` counts NaN/inf components returned by the
    implementation (each is an infinite error, so ``ok`` is false if there is any).
    """

    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ulp: float = 0.0
    max_ratio: float = 0.0
    bound: float = 0.0
    ok: bool = True
    worst: dict = field(default_factory=dict)
    components: int = 0
    returned_dtypes: list = field(default_factory=list)
    nonfinite: int = 0

    def to_dict(self):
        return _jsonable({k: getattr(self, k) for k in (
            "name", "max_abs", "max_rel", "max_ulp", "max_ratio", "bound", "ok", "worst",
            "components", "returned_dtypes", "nonfinite")})


@dataclass
class FamilyReport:
    """Per-family maxima, each a dict keyed by output name."""

    name: str
    points: int = 0
    ok: bool = True
    max_ratio: dict = field(default_factory=dict)
    max_abs: dict = field(default_factory=dict)
    max_rel: dict = field(default_factory=dict)
    max_ulp: dict = field(default_factory=dict)

    def to_dict(self):
        return _jsonable({"name": self.name, "points": self.points, "ok": self.ok,
                          "max_ratio": dict(self.max_ratio), "max_abs": dict(self.max_abs),
                          "max_rel": dict(self.max_rel), "max_ulp": dict(self.max_ulp)})


@dataclass
class CrosscheckResult:
    """Outcome of :func:`crosscheck`.  ``ok`` is true iff every point was checked (``complete``)
    and every checked output is within bound.

    ``problems`` lists, one message per (point, output), where the implementation returned NaN or
    inf on a valid input point (scored as an infinite error).  ``notes`` lists arguments the
    functions wrote into (allowed).  ``bessel_ratios`` / ``bessel_ratio`` / ``bessel_caught``
    say whether an N − 1 variance would have been caught (module docstring).  ``complete`` is
    false when the time ``budget`` ran out after ``points_checked`` points."""

    ok: bool
    outputs: dict
    families: dict
    reference_check: list
    dtype: str
    dps: int
    eps: float
    eps_used: float
    shape: tuple
    seed: int
    points: int
    user_points: int
    unit_roundoff: float
    bound_factor: float
    checked: tuple
    bessel_ratios: dict = field(default_factory=dict)
    forward_name: Optional[str] = None
    backward_name: Optional[str] = None
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    budget: Optional[float] = None
    complete: bool = True
    points_checked: int = 0
    eps_probe: Optional["FamilyReport"] = None
    eps_probe_value: Optional[float] = None
    eps_probe_family: Optional[str] = None
    degenerate_points: int = 0  # the constant-channel / gamma-zero points (channel-first crosscheck)
    degenerate: Optional["FamilyReport"] = None  # their figures (not in ``families``, like eps_probe)
    layer: Optional[str] = None
    group_size: Optional[int] = None

    @property
    def statistics_size(self) -> int:
        """Entries per statistics group (H·W without a layer)."""
        return self.group_size if self.group_size is not None else self.shape[1] * self.shape[2]

    @property
    def bessel_ratio(self) -> float:
        """The smallest of :attr:`bessel_ratios`: how far the least sensitive checked output
        would be off, in bounds, with an N − 1 variance."""
        return min(self.bessel_ratios.values(), default=math.inf)

    @property
    def bessel_caught(self) -> bool:
        """Whether this run would catch an N − 1 (Bessel-corrected) variance: true iff an exact
        N − 1 variance deviates by more than :data:`BESSEL_MARGIN` bounds somewhere (see the
        module docstring, "What the bound can and cannot catch")."""
        return self.bessel_ratio > BESSEL_MARGIN

    def to_dict(self) -> dict:
        return _jsonable({
            "ok": self.ok,
            "checked": list(self.checked),
            "forward": self.forward_name,
            "backward": self.backward_name,
            "dtype": self.dtype,
            "dps": self.dps,
            "eps": self.eps,
            "eps_used": self.eps_used,
            "shape": list(self.shape),
            "layer": self.layer,
            "group_size": self.statistics_size,
            "seed": self.seed,
            "points": self.points,
            "user_points": self.user_points,
            "unit_roundoff": self.unit_roundoff,
            "bound": {
                "formula": BOUND_FORMULA,
                "c": self.bound_factor,
                "u": self.unit_roundoff,
                "growth": "sqrt(N); sqrt(k), k <= 8 nonzero entries per channel, for family sparse",
            },
            "bessel": {"ratio": self.bessel_ratio, "caught": self.bessel_caught,
                       "margin": BESSEL_MARGIN, "per_output": dict(self.bessel_ratios)},
            "problems": list(self.problems),
            "notes": list(self.notes),
            "budget": self.budget,
            "complete": self.complete,
            "eps_probe": (None if self.eps_probe is None else
                          {"eps": self.eps_probe_value, "family": self.eps_probe_family,
                           **self.eps_probe.to_dict()}),
            "degenerate": None if self.degenerate is None else self.degenerate.to_dict(),
            "points_checked": self.points_checked,
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "families": {k: v.to_dict() for k, v in self.families.items()},
            "reference_check": list(self.reference_check),
        })

    def summary(self) -> str:
        lines = []
        what = "+".join(self.checked)
        lines.append(f"crosscheck [{what}]  " + (f"layer={self.layer}  " if self.layer else "")
                     + f"dtype={self.dtype}  dps={self.dps}  eps={self.eps!r} "
                     f"(as {self.dtype}: {self.eps_used!r})  shape={self.shape}  "
                     f"points={self.points}+{self.user_points} user+1 eps probe"
                     + (f"+{self.degenerate_points} degenerate" if self.degenerate_points else "")
                     + f"  seed={self.seed}")
        lines.append(f"bound: {BOUND_FORMULA}, c = {self.bound_factor}, "
                     f"u = {self.unit_roundoff:.3g} (family sparse: sqrt(k), k <= "
                     f"{SPARSE_NONZEROS} nonzero entries, for sqrt(N))")
        head = (f"{'output':<8}{'max_abs':>12}{'max_rel':>12}{'max_ulp':>12}{'err/bound':>12}"
                f"  {'worst at':<40}{'result':>7}")
        lines.append(head)
        lines.append("-" * len(head))
        for name, o in self.outputs.items():
            w = o.worst
            where = (f"{w.get('family')}#{w.get('point')} idx {tuple(w.get('index', ()))}"
                     if w else "-")
            lines.append(f"{name:<8}{o.max_abs:>12.3e}{o.max_rel:>12.3e}{o.max_ulp:>12.4g}"
                         f"{o.max_ratio:>12.3e}  {where:<40}{'PASS' if o.ok else 'FAIL':>7}")
        fams = ", ".join(f"{f.name}: {f.points} pt(s) {'ok' if f.ok else 'FAIL'} "
                         f"(worst err/bound {max(f.max_ratio.values(), default=0.0):.2e})"
                         for f in self.families.values())
        lines.append(f"families: {fams}")
        if self.eps_probe is not None and self.eps_probe.points:
            f = self.eps_probe
            lines.append(f"eps probe (1 {self.eps_probe_family} point at eps = {self.eps_probe_value!r}, to "
                         f"catch an ignored eps argument): {'ok' if f.ok else 'FAIL'} (worst "
                         f"err/bound {max(f.max_ratio.values(), default=0.0):.2e})")
        if self.degenerate is not None and self.degenerate.points:
            f = self.degenerate
            lines.append(f"degenerate points ({f.points}: a constant channel, gamma = 0, to catch branches "
                         f"on data): {'ok' if f.ok else 'FAIL'} (worst "
                         f"err/bound {max(f.max_ratio.values(), default=0.0):.2e})")
        for rc in self.reference_check:
            lines.append(f"reference self-check ({rc['family']}#{rc['point']}): "
                         f"|FD - <t,J^T g>| = {rc['fd_vs_vjp']:.1e}, "
                         f"|<Jt,g> - <t,J^T g>| = {rc['jvp_vs_vjp']:.1e} "
                         f"(threshold {rc['threshold']:.1e})"
                         + (f", per-group vs closed forms {rc['groups_vs_closed_forms']:.1e}"
                            if "groups_vs_closed_forms" in rc else ""))
        per = ", ".join(f"{k} {v:.3g}" for k, v in self.bessel_ratios.items())
        if self.bessel_caught:
            lines.append(f"N-1 (Bessel) variance: would be caught (an exact N-1 variance is off "
                         f"by > {BESSEL_MARGIN} x the bound in every output: {per})")
        else:
            weak = ", ".join(k for k, v in self.bessel_ratios.items() if not v > BESSEL_MARGIN)
            lines.append(f"WARNING: an N-1 (Bessel-corrected) variance could PASS this run: in "
                         f"{weak} it is off by only {self.bessel_ratio:.3g} x the bound (needs > "
                         f"{BESSEL_MARGIN}; {per}) at N = {self.statistics_size} in {self.dtype}"
                         + ("" if "sparse" in self.families else "; the 'sparse' family, which "
                            "catches it up to a much larger N, was not run")
                         + " -- use float64 or a smaller " + ("statistics group" if self.layer else "H*W")
                         + " to rule it out")
        for msg in self.notes:
            lines.append(f"note: {msg}")
        for msg in self.problems[:10]:
            lines.append(f"FAIL: {msg}")
        if len(self.problems) > 10:
            lines.append(f"... and {len(self.problems) - 10} more point(s) with NaN/inf")
        if not self.complete:
            lines.append(f"RESULT: INCOMPLETE: the time budget of {self.budget:g} s ran out after "
                         f"{self.points_checked} of {self.points + self.user_points + 1 + self.degenerate_points} points "
                         "(with the eps probe and the degenerate points) "
                         f"(not a PASS)")
            return "\n".join(lines)
        lines.append(f"RESULT: {'PASS' if self.ok else 'FAIL'}"
                     + ("" if self.bessel_caught or not self.ok
                        else " (with the N-1 variance WARNING above)"))
        return "\n".join(lines)

    __str__ = summary


# --------------------------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------------------------

def _ulp(ref_abs: float, np_dtype) -> float:
    with np.errstate(over="ignore"):
        v = np_dtype(ref_abs)
    if not np.isfinite(v):
        return float(np.spacing(np.finfo(np_dtype).max))
    return float(np.spacing(v))


def _score(rep, fr, name, items, tol_e, tol_r, bessel_ratios, fam, i, np_dtype):
    """Score one output at one point: ``items`` are ``(index, got, ref, (E, R), kappa, bessel_ref)``
    per component (``bessel_ref`` None when not measured); updates the output's report ``rep``,
    the family's report ``fr`` and ``bessel_ratios`` in place."""
    fam_ratio = fr.max_ratio.get(name, 0.0)
    fam_abs = fr.max_abs.get(name, 0.0)
    fam_rel = fr.max_rel.get(name, 0.0)
    fam_ulp = fr.max_ulp.get(name, 0.0)
    for index, gv, ref, S, kappa, bref in items:
        aref = abs(ref)
        if not math.isfinite(float(gv)):
            err = mp.inf        # NaN/inf: an infinite error, the output fails
        else:
            err = abs(mp.mpf(float(gv)) - ref)
        E, R = S
        bound = (tol_e * (aref + E) + tol_r * R) * (1 + tol_r * kappa)
        if bref is not None and bound > 0:
            bessel_ratios[name] = max(bessel_ratios[name], float(abs(bref - ref) / bound))
        elif bref is not None and bref != ref:
            bessel_ratios[name] = math.inf
        errf = float(err)
        reff = float(aref)
        rel = errf / reff if reff > 0 else (0.0 if errf == 0 else math.inf)
        ulp = errf / _ulp(reff, np_dtype)
        if err == mp.inf:
            ratio = math.inf
        else:
            ratio = float(err / bound) if bound > 0 else (0.0 if err == 0 else math.inf)
        rep.components += 1
        rep.max_abs = max(rep.max_abs, errf)
        rep.max_rel = max(rep.max_rel, rel)
        rep.max_ulp = max(rep.max_ulp, ulp)
        fam_ratio = max(fam_ratio, ratio)
        fam_abs = max(fam_abs, errf)
        fam_rel = max(fam_rel, rel)
        fam_ulp = max(fam_ulp, ulp)
        if ratio > rep.max_ratio or not rep.worst:
            rep.max_ratio = ratio
            rep.bound = float(bound)
            rep.worst = {"family": fam, "point": i, "index": list(index),
                         "got": float(gv), "ref": float(ref), "error": errf,
                         "bound": float(bound), "ratio": ratio}
    fr.max_ratio[name] = fam_ratio
    fr.max_abs[name] = fam_abs
    fr.max_rel[name] = fam_rel
    fr.max_ulp[name] = fam_ulp
    if fam_ratio > 1:
        fr.ok = False


#: Family of the degenerate points every (channel-first) crosscheck also visits.
DEGENERATE = "degenerate"


def _degenerate_points(shape, seed, first, eps_used, np_dtype, family):
    """Points where code that branches on data (``if var == 0``, ``if gamma[c] == 0``) behaves
    differently and no random family ever lands, drawn from ``family`` (one of the requested
    families): channel 0 constant 0 (its mean and variance 0 are exact in floating point; only
    when eps > 0 keeps it inside the domain) and gamma[0] = 0."""
    out = []
    for k, kind in enumerate(("constant channel", "gamma zero")):
        if kind == "constant channel" and not eps_used > 0:
            continue
        rng = np.random.default_rng([seed, first + k, 4])
        gamma, beta = _gen_params(rng, shape[0], first + k)
        if family == "sparse":
            x, g = _gen_sparse(rng, shape)
        else:
            x = _gen_x(family, rng, shape, eps_used)
            g = _gen_grad(rng, shape)
        if kind == "constant channel":
            x[0] = 0.0  # exact in every algorithm (a one-pass variance of a constant c ≠ 0 is not)
        else:
            gamma[0] = 0.0
        out.append((DEGENERATE, first + k, x.astype(np_dtype), gamma.astype(np_dtype),
                    beta.astype(np_dtype), g.astype(np_dtype), eps_used))
    return out


def _prepare_inputs(inputs, dtype):
    if inputs is None:
        return []
    if isinstance(inputs, dict) or not hasattr(inputs, "__iter__"):
        raise ValueError("inputs must be a list of dicts with keys 'x', 'gamma', 'beta' "
                         "(and optionally 'grad_out')")
    prepared = []
    for k, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise ValueError(f"inputs[{k}] must be a dict with keys 'x', 'gamma', 'beta'")
        missing = [key for key in ("x", "gamma", "beta") if key not in item]
        if missing:
            raise ValueError(f"inputs[{k}] is missing key(s) {missing}")
        unknown = set(item) - {"x", "gamma", "beta", "grad_out"}
        if unknown:
            raise ValueError(f"inputs[{k}] has unknown key(s) {sorted(unknown)}")
        x = _validate_array(f"inputs[{k}]['x']", item["x"], dtype, ndim=3)
        C = x.shape[0]
        gamma = _validate_array(f"inputs[{k}]['gamma']", item["gamma"], dtype, want_shape=(C,))
        beta = _validate_array(f"inputs[{k}]['beta']", item["beta"], dtype, want_shape=(C,))
        g = None
        if item.get("grad_out") is not None:
            g = _validate_array(f"inputs[{k}]['grad_out']", item["grad_out"], dtype,
                                want_shape=x.shape)
        prepared.append((x, gamma, beta, g))
    return prepared


def _common_arguments(forward, backward, dtype, dps, points, seed, budget, families):
    if forward is None and backward is None:
        raise ValueError("give forward and/or backward: both are None, nothing to check")
    for role, fn in (("forward", forward), ("backward", backward)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{role} must be callable; got {type(fn).__name__}")
    dtype = _normalize_dtype(dtype)
    if not _is_int(dps) or dps < MIN_DPS:
        raise ValueError(f"dps must be an int >= {MIN_DPS}; got {dps!r}")
    if not _is_int(points) or points < 1:
        raise ValueError(f"points must be an int >= 1; got {points!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    budget = check_budget(budget)
    if isinstance(families, str):
        families = (families,)
    families = tuple(families)
    if not families or any(f not in FAMILIES for f in families):
        raise ValueError(f"families must be a non-empty subset of {FAMILIES}; got {families!r}")
    return dtype, budget, families


def _eps_in_dtype(eps, dtype, name="eps"):
    if isinstance(eps, bool) or not isinstance(eps, (numbers.Real, np.floating)):
        raise ValueError(f"{name} must be a finite real number; got {eps!r}")
    if not math.isfinite(float(eps)):
        raise ValueError(f"{name} must be finite; got {eps!r}")
    with np.errstate(over="ignore"):
        eps_used = float(_NP_DTYPES[dtype](float(eps)))
    if not math.isfinite(eps_used):
        raise ValueError(f"{name}={eps!r} overflows {dtype}")
    return eps_used


def _crosscheck_with_layer(forward, backward, shape, eps, dtype, dps, points, seed, inputs,
                           families, budget, layer, degenerate=True):
    from .. import layers as L
    if not isinstance(layer, L.Layer):
        raise ValueError("layer must be a symbolic_bn.layers.Layer (e.g. layers.batch_norm((2, 3, 4)))"
                         f"; got {type(layer).__name__}")
    dtype, budget, families = _common_arguments(forward, backward, dtype, dps, points, seed,
                                                budget, families)
    if shape is not None:
        try:
            given = tuple(shape)
        except TypeError:
            raise ValueError(f"shape must be a tuple of ints; got {shape!r}") from None
        if given != tuple(layer.input_shape):
            raise ValueError(f"shape {given} differs from the layer's input shape "
                             f"{tuple(layer.input_shape)}; pass one of them")
    if layer.symbolic_eps:
        value = DEFAULT_EPS if eps is None else eps
        eps_used = _eps_in_dtype(value, dtype)
        sym = layer.eps
        for attr, ok, text in (("is_positive", lambda e: e > 0, "> 0"),
                               ("is_negative", lambda e: e < 0, "< 0"),
                               ("is_nonnegative", lambda e: e >= 0, ">= 0"),
                               ("is_nonpositive", lambda e: e <= 0, "<= 0")):
            if getattr(sym, attr) and not ok(float(value)):
                raise ValueError(f"eps={value!r}: the layer's symbolic ε is declared {text}")
    else:
        value = float(layer.eps)
        if eps is not None:
            try:
                same = float(eps) == value and not isinstance(eps, bool)
            except (TypeError, ValueError):
                same = False
            if not same:
                raise ValueError(f"eps={eps!r} differs from the layer's ε = {layer.eps}: a layer with "
                                 "a numeric ε is checked at that ε (pass eps only for a symbolic-ε layer)")
        eps_used = _eps_in_dtype(value, dtype, "the layer's eps")
    return _crosscheck_layer(forward, backward, layer, eps_used, value, dtype, dps, points, seed,
                             inputs, families, budget, degenerate)


def crosscheck(forward: Optional[Callable] = None, backward: Optional[Callable] = None,
               shape=None, eps=None, dtype="float64", dps=50, points=20, seed=0,
               inputs=None, families=FAMILIES, budget=None, *, layer=None,
               degenerate: bool = True) -> CrosscheckResult:
    """Cross-check ``forward(x, gamma, beta, eps, xp)`` and/or
    ``backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)`` against mpmath.

    Without ``layer``: the channel-first BatchNorm at ``shape`` = (C, H, W) (default (2, 4, 4)),
    ``eps`` default 1e-5.  The functions are called positionally with NumPy arrays of ``dtype``
    and ``xp=numpy``; ``eps`` is passed as a Python float equal to ``eps`` rounded to ``dtype``.
    ``points`` generated points are spread round-robin over ``families`` (a subset of
    :data:`FAMILIES`), and every dict of ``inputs`` is checked too (family ``'user'``).  See the
    module docstring for the bound.  ``budget``: seconds for the whole run (``None`` or
    ``math.inf``: no limit); when it runs out the result is incomplete (``complete`` false, ``ok``
    false, "RESULT: INCOMPLETE"), never a PASS.  ``degenerate=False`` leaves out the two
    degenerate points (a constant group, a zero weight), only to save time at large shapes where
    they are not the point of the test.

    With ``layer`` (a :class:`symbolic_bn.layers.Layer`, section "Every layer" of the module
    docstring): ``forward(x, weight, bias, eps[, xp])`` / ``backward(x, weight, bias, grad_out,
    eps[, xp]) -> (dx, dweight, dbias)`` in the layer's own layout (rms_norm: ``bias`` is None and
    the backward returns ``(dx, dweight)``); ``xp=numpy`` is passed only to functions that declare
    it.  ``shape`` may be left out (else it must be the layer's).  The layer's ε is used when it
    is a number (``eps`` may then only repeat it); with a symbolic ε, ``eps`` (default 1e-5) is
    used.  ``inputs`` dicts have the keys ``'x'``, the weight's and bias's argument names
    (``'weight'``, ``'bias'``; ``'gamma'``, ``'beta'`` for batchnorm_channel_first) and optionally
    ``'grad_out'``.
    """
    from .calling import takes_namespace  # here: calling imports this module
    if not isinstance(degenerate, bool):
        raise ValueError(f"degenerate must be True or False, got {degenerate!r}")
    if layer is not None:
        return _crosscheck_with_layer(forward, backward, shape, eps, dtype, dps, points, seed,
                                      inputs, families, budget, layer, degenerate)
    if shape is None:
        shape = DEFAULT_SHAPE
    if eps is None:
        eps = DEFAULT_EPS
    dtype, budget, families = _common_arguments(forward, backward, dtype, dps, points, seed,
                                                budget, families)
    np_dtype = _NP_DTYPES[dtype]
    shape = _validate_shape(shape)
    eps_used = _eps_in_dtype(eps, dtype)
    user = _prepare_inputs(inputs, np_dtype)

    checked = (("forward",) if forward is not None else ()) + \
              (("backward",) if backward is not None else ())
    out_names = (FORWARD_OUTPUTS if forward is not None else ()) + \
                (BACKWARD_OUTPUTS if backward is not None else ())
    u = _UNIT_ROUNDOFF[dtype]

    # Build the list of points: (family, index, x, gamma, beta, grad_out) in dtype.
    plan = []
    for i in range(points):
        fam = families[i % len(families)]
        rng = np.random.default_rng([seed, i])
        gamma, beta = _gen_params(rng, shape[0], i)
        if fam == "sparse":
            x, g = _gen_sparse(rng, shape)
        else:
            x = _gen_x(fam, rng, shape, eps_used)
            g = _gen_grad(rng, shape)
        plan.append((fam, i, x.astype(np_dtype), gamma.astype(np_dtype),
                     beta.astype(np_dtype), g.astype(np_dtype), eps_used))
    for k, (x, gamma, beta, g) in enumerate(user):
        if g is None:
            g = _gen_grad(np.random.default_rng([seed, points + k, 1]), x.shape).astype(np_dtype)
        plan.append(("user", points + k, x, gamma, beta, g, eps_used))
    # one more point at another eps (variance comparable to it): a function that ignores its
    # eps argument (say, hard-codes PyTorch's 1e-5) would otherwise pass at that same eps
    probe_eps = _probe_eps(eps_used, np_dtype)
    probe_family = "small_variance" if "small_variance" in families else families[0]
    i = points + len(user)
    rng = np.random.default_rng([seed, i, 3])
    gamma, beta = _gen_params(rng, shape[0], i)
    if probe_family == "sparse":
        x, g = _gen_sparse(rng, shape)
    else:
        x = _gen_x(probe_family, rng, shape, probe_eps)
        g = _gen_grad(rng, shape)
    plan.append((EPS_PROBE, i, x.astype(np_dtype), gamma.astype(np_dtype), beta.astype(np_dtype),
                 g.astype(np_dtype), probe_eps))
    degenerate = _degenerate_points(shape, seed, i + 1, eps_used, np_dtype,
                                    "normal" if "normal" in families else families[0]) \
        if degenerate else []
    plan += degenerate

    reports = {name: OutputReport(name) for name in out_names}
    # per output: largest |ref with an N − 1 variance − ref| / bound over its components
    bessel_ratios = {name: 0.0 for name in out_names if name != "dbeta"}
    fam_reports: dict = {}
    ref_checks = []
    seen_family = set()
    problems = []
    notes = []
    points_done, timed_out = 0, False

    with mp.workdps(dps):
        try:
            with time_budget(budget):
                for fam, i, x, gamma, beta, g, pt_eps in plan:
                    eps_mp = mp.mpf(pt_eps)
                    where = f"point {i} (family {fam!r})"
                    fr = fam_reports.setdefault(fam, FamilyReport(fam))
                    fr.points += 1
                    C = x.shape[0]
                    n = x.shape[1] * x.shape[2]
                    xs = _to_mp_rows(x)
                    gam, bet = _to_mp_vec(gamma), _to_mp_vec(beta)
                    gs = _to_mp_rows(g)
                    try:
                        fw = _ref_forward(xs, gam, bet, eps_mp)
                    except ValueError as exc:
                        if fam == "user":
                            raise ValueError(f"inputs[{i - points}] (eps={eps_used!r} as {dtype}): "
                                             f"{exc}") from None
                        detail = str(exc).replace("point outside the domain var + eps > 0 ", "")
                        raise ValueError(
                            f"eps={float(eps)!r} (as {dtype}: {eps_used!r}) is not usable here: the "
                            "generated point families need var + eps > 0 in every channel, but the "
                            f"generated {where} has var + eps <= 0 ({detail.strip('()')}).  Their variances are not "
                            "bounded below when eps <= 0 ('normal' has variances around 1, and with "
                            "H*W = 1 every variance is 0), so use eps > 0 or a negative eps much "
                            "smaller in magnitude than the variances") from None
                    bw = _ref_backward(fw, gam, gs)
                    scales = _scales(xs, gam, bet, gs, fw, bw)
                    # the same outputs with an N − 1 variance: would that bug exceed the bound here?
                    if n > 1:
                        fw_b = _ref_forward(xs, gam, bet, eps_mp, ddof=1)
                        bessel = {"y": fw_b["y"], **_ref_backward(fw_b, gam, gs)}
                    else:
                        bessel = None  # N − 1 = 0: such a variance is 0/0, its output NaN (caught)
                        bessel_ratios = {name: math.inf for name in bessel_ratios}
                    if fam not in seen_family and fam not in (EPS_PROBE, DEGENERATE):
                        seen_family.add(fam)
                        fig = _reference_self_check(xs, gam, bet, gs, eps_mp, fw, bw,
                                                    np.random.default_rng([seed, i, 2]), dps)
                        ref_checks.append({"family": fam, "point": i, **fig})

                    got, got_label = {}, {}
                    if forward is not None:
                        out, label = _call(forward, "forward", (x, gamma, beta, pt_eps, np),
                                           ("x", "gamma", "beta"), where, notes,
                                           with_xp=takes_namespace(forward, 4))
                        got["y"] = _as_output(out, label, "the output", x.shape)
                        got_label["y"] = _fname(forward, "forward")
                    if backward is not None:
                        out, label = _call(backward, "backward", (x, gamma, beta, g, pt_eps, np),
                                           ("x", "gamma", "beta", "grad_out"), where, notes,
                                           with_xp=takes_namespace(backward, 5))
                        if isinstance(out, (str, bytes)) or not hasattr(out, "__len__") \
                                or isinstance(out, np.ndarray):
                            raise ImplementationError(f"{label} must return a tuple (dx, dgamma, dbeta); "
                                                      f"got {type(out).__name__}")
                        if len(out) != 3:
                            raise ImplementationError(f"{label} must return 3 arrays (dx, dgamma, dbeta); "
                                                      f"got {len(out)}")
                        got["dx"] = _as_output(out[0], label, "dx", x.shape)
                        got["dgamma"] = _as_output(out[1], label, "dgamma", (C,))
                        got["dbeta"] = _as_output(out[2], label, "dbeta", (C,))
                        for name in BACKWARD_OUTPUTS:
                            got_label[name] = _fname(backward, "backward")

                    tol_e = mp.mpf(BOUND_FACTOR) * mp.mpf(u)
                    tol_r = tol_e * _growth(_reduction_terms(
                        probe_family if fam == EPS_PROBE else fam, x))
                    for name in out_names:
                        arr, rdtype = got[name]
                        _note_nonfinite(problems, reports[name], arr, name, got_label[name], where)
                        rep = reports[name]
                        if str(rdtype) not in rep.returned_dtypes:
                            rep.returned_dtypes.append(str(rdtype))
                        if name in ("y", "dx"):
                            refs = fw["y"] if name == "y" else bw["dx"]
                            brefs = bessel[name] if bessel and name in bessel_ratios else None
                            flat = arr.reshape(C, -1)
                            items = [((c, p // x.shape[2], p % x.shape[2]), flat[c, p], refs[c][p],
                                      scales[name][c][p], scales["kappa"][c],
                                      brefs[c][p] if brefs else None)
                                     for c in range(C) for p in range(n)]
                        else:
                            refs = bw[name]
                            brefs = bessel[name] if bessel and name in bessel_ratios else None
                            items = [((c,), arr[c], refs[c], scales[name][c], scales["kappa"][c],
                                      brefs[c] if brefs else None) for c in range(C)]
                        _score(rep, fr, name, items, tol_e, tol_r, bessel_ratios, fam, i, np_dtype)
                    points_done += 1
        except BudgetExceeded:
            timed_out = True

    for rep in reports.values():
        rep.ok = rep.max_ratio <= 1.0
    ok = all(rep.ok for rep in reports.values()) and not timed_out
    probe_report = fam_reports.pop(EPS_PROBE, None)
    return CrosscheckResult(
        ok=ok, outputs=reports, families=fam_reports, reference_check=ref_checks,
        dtype=dtype, dps=dps, eps=float(eps), eps_used=eps_used, shape=shape, seed=int(seed),
        points=points, user_points=len(user), unit_roundoff=u, bound_factor=BOUND_FACTOR,
        checked=checked, bessel_ratios=bessel_ratios,
        forward_name=None if forward is None else _fname(forward, "forward"),
        backward_name=None if backward is None else _fname(backward, "backward"),
        problems=problems, notes=notes, budget=budget, complete=not timed_out,
        points_checked=points_done, eps_probe=probe_report, eps_probe_value=probe_eps,
        eps_probe_family=probe_family, degenerate_points=len(degenerate),
        degenerate=fam_reports.pop(DEGENERATE, None))
