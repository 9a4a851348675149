"""The index-level derivative lemmas of a layer's forward quantities, for symbolic sizes.

∂mean/∂x, ∂centered/∂x, ∂var/∂x, ∂std/∂x, ∂normalized/∂x and ∂y/∂x within a group (for rms_norm
∂mean(x²)/∂x, ∂rms/∂x, ∂normalized/∂x, ∂y/∂x), ∂y/∂γ = x̂ and ∂y/∂β = 1 at the weight entry
π(c, p), Σ_j (x_cj − mean_c) = 0, and that the statistics do not depend on γ or β.
"""
from __future__ import annotations

from sympy import Integer

from .claim import Claim
from .covers import _cover_of
from .layer_model import _model


def _lemma_claims(spec) -> list[Claim]:
    W = spec.words
    cf = [spec.size_assumption]
    dom = [spec.size_assumption, spec.domain]
    cq = (("c", "C"), ("q", "N"))
    cp = (("c", "C"), ("p", "N"))
    cpq = (("c", "C"), ("p", "N"), ("q", "N"))
    n, sz, g = W["n"], W["sizes"], W["gam"]
    cover = _cover_of(spec)

    def mk(name, statement, free, lhs, rhs, assumptions):
        return Claim(name=name, group="index-level derivatives", statement=statement, free=free,
                     lhs=lhs, rhs=rhs, assumptions=tuple(assumptions), cover=cover, spec=spec)

    def d_x(expr_fn):
        return lambda be, i: be.diff(expr_fn(_model(be), i), "x", i["c"], i["q"])

    def d_param(fam, expr_fn):
        return lambda be, i: be.diff(expr_fn(_model(be), i), fam, _model(be).param(i["c"], i["p"]))

    y_x = (lambda be, i: _model(be).gamma_at(i["c"], i["p"]) * _model(be).r(i["c"]) * (
        be.delta(i["p"], i["q"]) - (be.Ninv if spec.centered else 0)
        - be.Ninv * _model(be).xhat(i["c"], i["p"]) * _model(be).xhat(i["c"], i["q"])))
    if spec.centered:
        out = [
            mk("lemma_centered_sum_zero",
               f"For all {sz} and every {W['grp']} c: Σ_{{j<{n}}} (x_cj − mean_c) = 0, from the definition "
               f"mean_c = (1/{n})·Σ_j x_cj",
               (("c", "C"),), lambda be, i: be.sum("N", lambda j: _model(be).centered(i["c"], j)),
               lambda be, i: Integer(0), cf),
            mk("deriv_mean_x", f"For all {sz}, c, q < {n}: ∂mean_c/∂x_cq = 1/{n}", cq,
               d_x(lambda M, i: M.mean(i["c"])), lambda be, i: be.Ninv, cf),
            mk("deriv_centered_x",
               f"For all {sz}, c, p, q < {n}: ∂centered_cp/∂x_cq = δ_pq − 1/{n}", cpq,
               d_x(lambda M, i: M.centered(i["c"], i["p"])),
               lambda be, i: be.delta(i["p"], i["q"]) - be.Ninv, cf),
            mk("deriv_var_x",
               f"For all {sz}, c, q < {n}: ∂var_c/∂x_cq = (2/{n})(x_cq − mean_c) (uses Σ_j (x_cj − mean_c) "
               "= 0)", cq, d_x(lambda M, i: M.var(i["c"])),
               lambda be, i: 2 * be.Ninv * _model(be).centered(i["c"], i["q"]), cf),
            mk("deriv_std_x",
               f"For all {sz}, c, q < {n}: ∂std_c/∂x_cq = x̂_cq/{n}, std_c = sqrt(max(var_c+ε,0)), "
               "x̂ = (x − mean)·r, r = 1/std", cq, d_x(lambda M, i: M.std(i["c"])),
               lambda be, i: be.Ninv * _model(be).xhat(i["c"], i["q"]), dom),
            mk("deriv_normalized_x",
               f"For all {sz}, c, p, q < {n}: ∂normalized_cp/∂x_cq = r_c(δ_pq − 1/{n} − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.normalized(i["c"], i["p"])),
               lambda be, i: _model(be).r(i["c"]) * (be.delta(i["p"], i["q"]) - be.Ninv - be.Ninv
                                                     * _model(be).xhat(i["c"], i["p"])
                                                     * _model(be).xhat(i["c"], i["q"])), dom),
            mk("deriv_y_x",
               f"For all {sz}, c, p, q < {n}: ∂y_cp/∂x_cq = {g} r_c(δ_pq − 1/{n} − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.y(i["c"], i["p"])), y_x, dom),
        ]
        stats = (lambda M, i: M.mean(i["c"]), lambda M, i: M.centered(i["c"], i["p"]),
                 lambda M, i: M.var(i["c"]), lambda M, i: M.std(i["c"]),
                 lambda M, i: M.normalized(i["c"], i["p"]))
        stats_text = "mean_c, centered_cp, var_c, std_c and normalized_cp"
    else:
        out = [
            mk("deriv_mean_sq_x", f"For all {sz}, c, q < {n}: ∂mean(x²)_c/∂x_cq = (2/{n})·x_cq", cq,
               d_x(lambda M, i: M.var(i["c"])), lambda be, i: 2 * be.Ninv * _model(be).x(i["c"], i["q"]), cf),
            mk("deriv_rms_x",
               f"For all {sz}, c, q < {n}: ∂rms_c/∂x_cq = x̂_cq/{n}, rms_c = sqrt(max(mean(x²)_c+ε,0)), "
               "x̂ = x·r, r = 1/rms", cq, d_x(lambda M, i: M.std(i["c"])),
               lambda be, i: be.Ninv * _model(be).xhat(i["c"], i["q"]), dom),
            mk("deriv_normalized_x",
               f"For all {sz}, c, p, q < {n}: ∂normalized_cp/∂x_cq = r_c(δ_pq − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.normalized(i["c"], i["p"])),
               lambda be, i: _model(be).r(i["c"]) * (be.delta(i["p"], i["q"]) - be.Ninv
                                                     * _model(be).xhat(i["c"], i["p"])
                                                     * _model(be).xhat(i["c"], i["q"])), dom),
            mk("deriv_y_x",
               f"For all {sz}, c, p, q < {n}: ∂y_cp/∂x_cq = {g} r_c(δ_pq − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.y(i["c"], i["p"])), y_x, dom),
        ]
        stats = (lambda M, i: M.var(i["c"]), lambda M, i: M.std(i["c"]),
                 lambda M, i: M.normalized(i["c"], i["p"]))
        stats_text = "mean(x²)_c, rms_c and normalized_cp"
    out.append(mk("deriv_y_gamma", f"For all {sz}, c, p < {n}: ∂y_cp/∂{g} = x̂_cp", cp,
                  d_param("gamma", lambda M, i: M.y(i["c"], i["p"])),
                  lambda be, i: _model(be).xhat(i["c"], i["p"]), dom))
    fams = ("gamma", "beta") if spec.bias else ("gamma",)
    if spec.bias:
        out.append(mk("deriv_y_beta", f"For all {sz}, c, p < {n}: ∂y_cp/∂{W['bet']} = 1", cp,
                      d_param("beta", lambda M, i: M.y(i["c"], i["p"])), lambda be, i: Integer(1), dom))
    k = len(fams) * len(stats)
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 10: "ten"}
    out.append(mk(
        "deriv_stats_params_zero",
        f"For all {sz}, c, p < {n}: {stats_text} do not depend on {g}" + (f" or {W['bet']}" if spec.bias else "")
        + f" (all {words.get(k, k)} partial derivatives are 0)", cp,
        lambda be, i: tuple(be.diff(f(_model(be), i), fam, _model(be).param(i["c"], i["p"]))
                            for fam in fams for f in stats),
        lambda be, i: tuple(Integer(0) for _ in range(k)), dom))
    return out
