r"""The pass/fail bound of the cross-check: condition-aware scales per component, and scoring.

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
in a channel (the only rounded sum has at most k nonzero terms, see the family in
:mod:`.crosscheck_inputs`).
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

NaN or inf returned by the implementation on a valid input point is scored as an *infinite
error* (:mod:`.crosscheck_calls`).

Every layer
-----------
The same formula, per statistics group, generalized: ĝ = g·w per member (the weight
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
"""
from __future__ import annotations

import math

import numpy as np
from mpmath import mp

__all__ = ["BOUND_FACTOR", "BOUND_FORMULA", "BESSEL_MARGIN"]

BOUND_FACTOR = 8
#: An exact N − 1 variance counts as caught when its deviation is more than this many bounds: a
#: float implementation of it then exceeds the bound even if its own rounding errors (at most one
#: bound, like a correct implementation's) all go against the deviation.
BESSEL_MARGIN = 2
BOUND_FORMULA = "|got-ref| <= (c*u*(|ref|+E) + c*u*sqrt(N)*R) * (1 + c*u*sqrt(N)*kappa)"
_UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}


def _growth(n):
    """Growth factor of the reductions' rounding errors: ``√N`` (module docstring)."""
    return mp.sqrt(n)


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
