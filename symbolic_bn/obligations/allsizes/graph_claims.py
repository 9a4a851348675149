"""The claims about a layer's whole row-form graph: end to end per group, and across groups.

End to end (per group): the stages compose to the spec's y; output-only backprop through the
stages gives the closed form (dx, dγ, dβ); Jᵀg computed from the index-level derivative equals
the closed form; the closed-form JVP (from ∂y and stagewise); and the per-group dot-product
identity ⟨Jt, g⟩ = ⟨t, Jᵀg⟩, which is a statement only where γ and β are per group
(batchnorm_channel_first, batch_norm).  Across groups (channel independence): the Jacobian from
x is block diagonal over groups, from γ and β it is ∂y[c,p]/∂γ[j] = [π(c,p) = j]·x̂[c,p]; the
full Jᵀg over all groups equals the closed form; and the dot-product identity over the whole
context.  For a weight shared by several groups, dγ[j] is a sum over the groups that use the
entry -- a symbolic sum over the group range, decided like the others.
"""
from __future__ import annotations

from .claim import Claim
from .closed_forms import ClosedForm
from .covers import _cover_of
from .layer_model import _model
from .node_rules import backprop, forward, jvp


def _tangents(M):
    tan = {"x": lambda c, p: M.t(c, p), "gamma": M.tgamma}
    if M.spec.bias:
        tan["beta"] = M.tbeta
    return tan


def _graph_claims(spec, cf: ClosedForm, vjp_rules, jvp_rules=None) -> list[Claim]:
    W = spec.words
    dom = (spec.size_assumption, spec.domain)
    sz, n, j = W["sizes"], W["n"], W["j"]
    out_slot = spec.output
    cover = _cover_of(spec)
    shared = not spec.param_per_group
    fams = ("gamma", "beta") if spec.bias else ("gamma",)
    greek = {"gamma": "γ", "beta": "β"}
    cf_of = {"gamma": cf.dgamma, "beta": cf.dbeta}
    stages = f"{len(spec.stages)} stages"

    def bp(be):
        M = _model(be)
        return M, backprop(M, {out_slot: lambda c, p: M.g(c, p)}, vjp_rules)

    def jv(be):
        M = _model(be)
        return M, jvp(M, _tangents(M), jvp_rules)

    def adjoint_x(be, i):
        M = _model(be)
        c = i["c"]
        return M.sum(lambda p: M.g(c, p) * be.diff(M.y(c, p), "x", c, i["q"]))

    def adjoint_param(fam):
        def lhs(be, i):
            M = _model(be)
            if shared:  # the entry is used by many groups: the whole context's Σ_c Σ_p
                return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p) * be.diff(M.y(c, p), fam, i[j])))
            return M.sum(lambda p: M.g(i[j], p) * be.diff(M.y(i[j], p), fam, i[j]))
        return lhs

    def jvp_lhs(be, i):
        M = _model(be)
        c, p = i["c"], i["p"]
        total = M.sum(lambda q: be.diff(M.y(c, p), "x", c, q) * be.at("t", c, q))
        for fam in fams:
            total += be.sum("J", lambda k, fam=fam: be.diff(M.y(c, p), fam, k) * be.at("t" + fam, k))
        return total

    G = ("end-to-end (per channel, symbolic N)" if spec.layer == "batchnorm_channel_first"
         else f"end-to-end (per {W['grp']}, symbolic sizes)")
    lean_bp = spec.lean_backprop
    xhat_def = "x̂ = (x − mean)/sqrt(var + ε) (population variance, 1/N)" if spec.centered else \
        "x̂ = x/sqrt(mean(x²) + ε)"
    y_def = f"{W['gam']}·x̂_cp" + (f" + {W['bet']}" if spec.bias else "")
    j_free = ((j, "J"),)
    sum_pos = "Σ_p" if not shared else "Σ_{(c,p): π(c,p)=j}"
    claims = [
        Claim("forward_graph_equals_spec", G,
              f"For all {sz}, c, p < {n}: the {stages} compose to {out_slot}_cp = {y_def} with {xhat_def}",
              (("c", "C"), ("p", "N")),
              lambda be, i: forward(_model(be))[out_slot](i["c"], i["p"]),
              lambda be, i: _model(be).y(i["c"], i["p"]), lean_name=spec.lean_graph,
              assumptions=dom, cover=cover, spec=spec),
        Claim("backprop_dx_closed_form", G,
              f"For all {sz}, c, q < {n}, seed g on {out_slot} only: backprop through the {stages} with "
              f"the node VJP rules gives dx_cq = " + (
                  "(γ_c r_c/N)(N g_cq − Σ_p g_cp − x̂_cq Σ_p g_cp x̂_cp)" if spec.layer == "batchnorm_channel_first"
                  else (f"(r_c/{n})({n}·γg_cq − Σ_p γg_cp − x̂_cq Σ_p γg_cp x̂_cp), γg = {W['gam']}·g_cp"
                        if spec.centered else f"r_c(γg_cq − x̂_cq Σ_p γg_cp x̂_cp/{n}), γg = {W['gam']}·g_cp"))
              + f" [closed form: {cf.name}]",
              (("c", "C"), ("q", "N")),
              lambda be, i: bp(be)[1]["x"](i["c"], i["q"]),
              lambda be, i: cf.dx(_model(be), i["c"], i["q"]), lean_name=lean_bp,
              assumptions=dom, cover=cover, spec=spec),
    ]
    for fam in fams:
        gk = greek[fam]
        val = "g_cp x̂_cp" if fam == "gamma" else "g_cp"
        claims.append(Claim(
            f"backprop_d{fam}_closed_form", G,
            f"For all {sz}{', ' + W['groups'] if shared else ''} and {W['jrange']}, seed g on {out_slot} only: "
            f"backprop gives d{gk}_{j} = "
            f"{sum_pos} {val} [closed form: {cf.name}]", j_free,
            (lambda be, i, fam=fam: bp(be)[1][fam](i[j])),
            (lambda be, i, fam=fam: cf_of[fam](_model(be), i[j])), lean_name=lean_bp, assumptions=dom,
            cover=cover, channel_level=shared, spec=spec))
    claims.append(Claim(
        "adjoint_dx_closed_form", G,
        f"For all {sz}, c, q < {n}: (J_yᵀ g)_x[c,q] = Σ_p g_cp·∂y_cp/∂x_cq (index-level "
        f"derivative of y, contracted) equals the closed-form dx [{cf.name}]",
        (("c", "C"), ("q", "N")), adjoint_x,
        lambda be, i: cf.dx(_model(be), i["c"], i["q"]), lean_name=lean_bp, assumptions=dom,
        cover=cover, spec=spec))
    for fam in fams:
        gk = greek[fam]
        claims.append(Claim(
            f"adjoint_d{fam}_closed_form", G,
            (f"For all {sz} and c: Σ_p g_cp·∂y_cp/∂{gk}_c equals the closed-form d{gk} [{cf.name}]" if not shared
             else f"For all {sz}, {W['groups']} and {W['jrange']}: Σ_c Σ_p g_cp·∂y_cp/∂{gk}_j (every "
                  f"{W['grp']} that uses the entry) equals the closed-form d{gk}_j [{cf.name}]"),
            j_free, adjoint_param(fam),
            (lambda be, i, fam=fam: cf_of[fam](_model(be), i[j])), lean_name=lean_bp, assumptions=dom,
            cover=cover, channel_level=shared, spec=spec))
    tparams = " + ".join(f"Σ_j ∂y_cp/∂{greek[f]}_j t{greek[f]}_j" for f in fams)
    claims += [
        Claim("jvp_closed_form", G,
              f"For all {sz}, c, p < {n}: J_y·(t, tγ" + (", tβ" if spec.bias else "") + ") = Σ_q ∂y_cp/∂x_cq "
              f"t_cq + {tparams} equals {W['gam']} r (t − " + ("mean(t) − " if spec.centered else "")
              + f"x̂ mean(t⊙x̂)) + x̂ {W['tgam']}" + (f" + {W['tbet']}" if spec.bias else "") + f" [{cf.name}]",
              (("c", "C"), ("p", "N")), jvp_lhs,
              lambda be, i: cf.jvp(_model(be), i["c"], i["p"]),
              lean_name="Spec.batchNorm2dJvp" if spec.layer == "batchnorm_channel_first" else None,
              assumptions=dom, cover=cover, spec=spec),
        Claim("jvp_stagewise_closed_form", G,
              f"For all {sz}, c, p < {n}: forward-mode through the {stages} with the node JVP "
              f"rules gives the closed-form JVP on {out_slot} [{cf.name}]",
              (("c", "C"), ("p", "N")),
              lambda be, i: jv(be)[1][out_slot](i["c"], i["p"]),
              lambda be, i: cf.jvp(_model(be), i["c"], i["p"]), lean_name="Graph.jvpVec",
              assumptions=dom, cover=cover, spec=spec),
    ]
    if not shared:
        claims.append(Claim(
            "dot_product_identity", G,
            f"For all {sz} and every {W['grp']} c: ⟨J t, g⟩ = Σ_p g_cp (J t)_cp equals ⟨t, Jᵀ g⟩ = "
            "Σ_p t_cp dx_cp + tγ_c dγ_c" + (" + tβ_c dβ_c" if spec.bias else "") + ", with J t from the "
            "stagewise JVP and Jᵀ g from the stagewise backprop",
            (("c", "C"),),
            lambda be, i: _model(be).sum(lambda p: be.at("g", i["c"], p) * jv(be)[1][out_slot](i["c"], p)),
            lambda be, i: _dot_rhs(be, i["c"], vjp_rules),
            lean_name="Graph.backprop_correct_inner", assumptions=dom, cover=cover, spec=spec))
    return claims


def _dot_rhs(be, c, vjp_rules):
    M = _model(be)
    g = backprop(M, {M.spec.output: lambda c_, p: M.g(c_, p)}, vjp_rules)
    out = M.sum(lambda p: M.t(c, p) * g["x"](c, p)) + M.tgamma(c) * g["gamma"](c)
    return out + M.tbeta(c) * g["beta"](c) if M.spec.bias else out


def _all_channel_claims(spec, cf: ClosedForm, vjp_rules, jvp_rules=None) -> list[Claim]:
    W = spec.words
    dom = (spec.size_assumption, spec.group_assumption, spec.domain)
    G = "channel independence"
    cover = _cover_of(spec)
    sz, grps = W["sizes"], W["groups"]
    fams = ("gamma", "beta") if spec.bias else ("gamma",)
    greek = {"gamma": "γ", "beta": "β"}
    cf_of = {"gamma": cf.dgamma, "beta": cf.dbeta}
    out_slot = spec.output

    def block_x(be, i):
        return be.diff(_model(be).y(i["c"], i["p"]), "x", i["c2"], i["q"])

    def block_x_rhs(be, i):
        return be.delta(i["c"], i["c2"]) * be.diff(_model(be).y(i["c"], i["p"]), "x", i["c"], i["q"])

    def block_param(fam):
        def lhs(be, i):
            return be.diff(_model(be).y(i["c"], i["p"]), fam, i["c2"])

        def rhs(be, i):
            M = _model(be)
            own = M.param(i["c"], i["p"])
            return be.delta(own, i["c2"]) * be.diff(M.y(i["c"], i["p"]), fam, own)
        return lhs, rhs

    def full_adjoint(fam, index):
        def lhs(be, i):
            M = _model(be)
            return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p) * be.diff(M.y(c, p), fam, *index(i))))
        return lhs

    claims = [Claim(
        "channel_block_graph_x", G,
        f"For all {grps}, {sz}, c, c' < {W['C']}, p, q < {W['n']}: ∂y[c,p]/∂x[c',q] = δ_cc'·(the same "
        f"derivative with c' = c): the whole graph's Jacobian from x is block diagonal over {W['grps']}",
        (("c", "C"), ("c2", "C"), ("p", "N"), ("q", "N")), block_x, block_x_rhs,
        lean_name=(spec.lean_graph + "FderivCorrectAt") if spec.lean_graph else None, channel_level=True,
        assumptions=dom, cover=cover, spec=spec)]
    for fam in fams:
        lhs, rhs = block_param(fam)
        gk = greek[fam]
        claims.append(Claim(
            f"channel_block_graph_{fam}", G,
            (f"For all C, N ≥ 1, c, c' < C, p < N: ∂y[c,p]/∂{gk}[c'] = δ_cc'·(the same derivative with "
             f"c' = c): the whole graph's Jacobian from {fam} is block diagonal over channels"
             if spec.layer == "batchnorm_channel_first" else
             f"For all {grps}, {sz}, every {W['grp']} c, position p and weight index c': ∂y[c,p]/∂{gk}[c'] = "
             f"δ(π(c,p), c')·∂y[c,p]/∂{gk}[π(c,p)]: the output at (c, p) depends only on the weight entry "
             f"π(c,p) applied there"),
            (("c", "C"), ("c2", "J"), ("p", "N")), lhs, rhs,
            lean_name=(spec.lean_graph + "FderivCorrectAt") if spec.lean_graph else None,
            channel_level=True, assumptions=dom, cover=cover, spec=spec))
    claims.append(Claim(
        "all_channels_adjoint_x", G,
        f"For all {grps}, {sz}: the full Jᵀg over all {W['grps']}, Σ_c Σ_p g[c,p]·∂y[c,p]/∂x[c',q], "
        f"equals the per-{W['grp']} closed form dx at {W['grp']} c' [{cf.name}]",
        (("c2", "C"), ("q", "N")), full_adjoint("x", lambda i: (i["c2"], i["q"])),
        lambda be, i: cf.dx(_model(be), i["c2"], i["q"]), lean_name=spec.lean_backprop,
        channel_level=True, assumptions=dom, cover=cover, spec=spec))
    for fam in fams:
        gk = greek[fam]
        claims.append(Claim(
            f"all_channels_adjoint_{fam}", G,
            f"For all {grps}, {sz}: the full Jᵀg, Σ_c Σ_p g[c,p]·∂y[c,p]/∂{gk}[c'], equals the closed "
            f"form d{gk}[c'] [{cf.name}]", (("c2", "J"),),
            full_adjoint(fam, lambda i: (i["c2"],)),
            (lambda be, i, fam=fam: cf_of[fam](_model(be), i["c2"])), lean_name=spec.lean_backprop,
            channel_level=True, assumptions=dom, cover=cover, spec=spec))

    def dot_lhs(be, i):
        M = _model(be)
        tan = jvp(M, _tangents(M), jvp_rules)
        return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p) * tan[out_slot](c, p)))

    def dot_rhs(be, i):
        M = _model(be)
        gr = backprop(M, {out_slot: lambda c_, p: M.g(c_, p)}, vjp_rules)
        total = be.sum("C", lambda c: M.sum(lambda p: M.t(c, p) * gr["x"](c, p)))
        total += be.sum("J", lambda k: M.tgamma(k) * gr["gamma"](k))
        if spec.bias:
            total += be.sum("J", lambda k: M.tbeta(k) * gr["beta"](k))
        return total

    claims.append(Claim(
        "all_channels_dot_product", G,
        f"For all {grps}, {sz}: over the whole context, ⟨J t, g⟩ = Σ_c Σ_p g[c,p](J t)[c,p] equals "
        f"⟨t, Jᵀ g⟩ = Σ_c Σ_p t[c,p] dx[c,p] + Σ_j tγ[j] dγ[j]" + (" + Σ_j tβ[j] dβ[j]" if spec.bias else "")
        + " with the stagewise JVP and backprop", (), dot_lhs, dot_rhs,
        lean_name="Graph.backprop_correct_inner", channel_level=True, assumptions=dom, cover=cover, spec=spec))
    return claims
