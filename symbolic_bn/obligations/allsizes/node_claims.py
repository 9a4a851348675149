"""The claims about each node kind of a layer's row form, for symbolic sizes.

For every kind the row form uses (broadcastCol and gather included): the VJP rule equals Jᵀδ
computed from the index-level derivative (``vjp_<kind>``), the JVP rule equals J·t
(``jvp_<kind>``), and, for kinds without a weight input, the forward of group c reads only group
c of its input, so the cross-group Jacobian blocks are zero (``channel_block_<kind>``).  The Lean
names are TorchLean's per-node certificates (reshapeFderiv, rowMeanFderiv, ...).
"""
from __future__ import annotations

from sympy import Add, Integer

from .claim import Claim
from .covers import _generic_cover
from .node_rules import FORWARD_RULES, JVP_RULES, VJP_RULES


#: kind: (input families (CN: a, b; per group: z; weight: w), output shape, Lean certificate)
_KIND_INFO = {
    "reshape": (("a",), "CN", "reshapeFderiv"),
    "rowMean": (("a",), "C", "rowMeanFderiv"),
    "broadcastRow": (("z",), "CN", "broadcastRowFderiv"),
    "broadcastCol": (("w",), "CN", "broadcastCol certificate (Matrix.lean:1001)"),
    "gather": (("w",), "CN", None),
    "sub": (("a", "b"), "CN", "subFderiv"),
    "mul": (("a", "b"), "CN", "mulFderiv"),
    "mul_same": (("a", "a"), "CN", "mulFderiv"),
    "addEps": (("z",), "C", "elemwiseFderiv (f := z+ε, f' := 1)"),
    "sqrtClamp": (("z",), "C", "sqrtClampFderivAt"),
    "inv": (("z",), "C", "invFderivAt"),
    "add": (("a", "b"), "CN", "addFderiv"),
}

#: the BN graph's stage lists per kind, as the certificate has always written them
_BN_USES = {
    "reshape": "xMat (pos 3), yChw (pos 18)", "rowMean": "mean (pos 4), var (pos 8)",
    "broadcastRow": "mean_b, inv_std_b, gamma_b, beta_b (pos 5, 12, 14, 16)",
    "sub": "centered (pos 6)", "mul": "normalized, scaled (pos 13, 15)",
    "mul_same": "centered_sq (pos 7, a = b = centered)", "addEps": "var_eps (pos 9)",
    "sqrtClamp": "std (pos 10)", "inv": "inv_std (pos 11)", "add": "yMat (pos 17)",
}


def _uses(spec, kind) -> str:
    if spec.layer == "batchnorm_channel_first":
        return _BN_USES[kind]
    real = "mul" if kind == "mul_same" else kind
    sts = [st for st in spec.stages if st.kind == real
           and (kind != "mul_same" or st.inputs[0] == st.inputs[1])
           and (kind != "mul" or st.inputs[0] != st.inputs[1])]
    if not sts:  # a mul law the layer needs only in its same-slot form
        return "(no stage of this layer; kept as the general form of mul_same)"
    return ", ".join(f"{st.name} (pos {st.pos})" for st in sts)


def _family_shape(fam):
    return {"z": "C", "w": "J"}.get(fam, "CN")


def _input_callable(be, fam, shape_of=None):
    """The input family ``fam`` as a slot callable (shaped like ``shape_of``, default ``fam``)."""
    if _family_shape(shape_of or fam) != "CN":
        return lambda c: be.at(fam, c)
    return lambda c, p: be.at(fam, c, p)


def _kind_node(be, kind, rules=None):
    fams, out_shape, _ = _KIND_INFO[kind]
    real = "mul" if kind == "mul_same" else kind
    ins = tuple(_input_callable(be, f) for f in fams)
    out = FORWARD_RULES[real](be, *ins)
    return fams, ins, out, out_shape, real


def _node_assumptions(spec, kind):
    out = [spec.size_assumption, spec.group_assumption]
    if kind == "sqrtClamp":
        out.append("z_c > 0 for every channel c")
    if kind == "inv":
        out.append("z_c ≠ 0 for every channel c")
    return tuple(out)


def _family_free(fam, name_c="c2", name_p="q"):
    shape = _family_shape(fam)
    if shape == "J":
        return (("j", "J"),)
    return ((name_c, "C"),) + (((name_p, "N"),) if shape == "CN" else ())


def _family_index(fam, idx, name_c="c2", name_p="q"):
    shape = _family_shape(fam)
    if shape == "J":
        return (idx["j"],)
    return (idx[name_c], idx[name_p]) if shape == "CN" else (idx[name_c],)


def _family_text(fam, W):
    shape = _family_shape(fam)
    if shape == "J":
        return "every weight index j", "[j]"
    return (f"every c' < {W['C']}" + (f", q < {W['n']}" if shape == "CN" else "")), \
        ("[c',q]" if shape == "CN" else "[c']")


def _stage_claims(spec, vjp_rules) -> list[Claim]:
    W = spec.words
    claims = []
    rules = dict(VJP_RULES, **(vjp_rules or {}))
    for kind in spec.kinds():
        fams, out_shape, lean = _KIND_INFO[kind]
        distinct = list(dict.fromkeys(fams))
        for fam in distinct:
            free = _family_free(fam)

            def lhs(be, idx, kind=kind, fam=fam):
                _, _, out, out_shape_, _ = _kind_node(be, kind)
                d = (lambda c, p: be.at("d", c, p)) if out_shape_ == "CN" else (lambda c: be.at("d", c))
                ii = _family_index(fam, idx)
                if out_shape_ == "CN":
                    return be.sum("C", lambda c: be.sum("N", lambda p: d(c, p) * be.diff(out(c, p), fam, *ii)))
                return be.sum("C", lambda c: d(c) * be.diff(out(c), fam, *ii))

            def rhs(be, idx, kind=kind, fam=fam):
                fams_, ins, _, out_shape_, real = _kind_node(be, kind)
                d = (lambda c, p: be.at("d", c, p)) if out_shape_ == "CN" else (lambda c: be.at("d", c))
                contribs = rules[real](be, ins, d)
                ii = _family_index(fam, idx)
                return Add(*[f(*ii) for f_name, f in zip(fams_, contribs) if f_name == fam])

            slot = "" if len(distinct) == 1 else f" (input {fam})"
            where, at = _family_text(fam, W)
            statement = (
                f"{kind}{slot}: for all {W['groups']}, {W['sizes']} and {where}: (Jᵀδ)[{fam}]{at}"
                + f" = Σ_{{c<{W['C']}}}" + (f" Σ_{{p<{W['n']}}}" if out_shape == "CN" else "")
                + " δ_out · ∂out/∂" + fam + " equals the node's VJP rule"
                + (" (both contributions δ⊙a land in the same slot: 2·δ⊙a)" if kind == "mul_same" else "")
                + f"; used by {_uses(spec, kind)}")
            claims.append(Claim(
                name=f"vjp_{kind}" + ("" if len(distinct) == 1 else f"_{fam}"),
                group="stage VJP = Jᵀδ", statement=statement, free=free, lhs=lhs, rhs=rhs,
                lean_name=lean, stage=_uses(spec, kind), channel_level=True,
                assumptions=_node_assumptions(spec, kind), cover=_generic_cover, spec=spec))
    return claims


def _stage_jvp_claims(spec, jvp_rules) -> list[Claim]:
    """Per node kind: the JVP rule equals the index-level Jacobian applied to the tangents."""
    W = spec.words
    claims = []
    rules = dict(JVP_RULES, **(jvp_rules or {}))
    for kind in spec.kinds():
        fams, out_shape, lean = _KIND_INFO[kind]
        distinct = list(dict.fromkeys(fams))
        free = (("c", "C"),) + ((("p", "N"),) if out_shape == "CN" else ())

        def out_idx(idx, out_shape=out_shape):
            return (idx["c"], idx["p"]) if out_shape == "CN" else (idx["c"],)

        def lhs(be, idx, kind=kind, distinct=distinct, out_idx=out_idx):
            _, _, out, _, _ = _kind_node(be, kind)
            value = out(*out_idx(idx))
            total = Integer(0)
            for fam in distinct:
                t = _input_callable(be, "t" + fam, fam)
                shape = _family_shape(fam)
                if shape == "CN":
                    total += be.sum("C", lambda d: be.sum("N", lambda j: be.diff(value, fam, d, j) * t(d, j)))
                else:
                    total += be.sum("C" if shape == "C" else "J", lambda d: be.diff(value, fam, d) * t(d))
            return total

        def rhs(be, idx, kind=kind, fams=fams, out_idx=out_idx):
            _, ins, _, _, real = _kind_node(be, kind)
            tans = tuple(_input_callable(be, "t" + fam, fam) for fam in fams)
            return rules[real](be, ins, tans)(*out_idx(idx))

        out_i = "[c,p]" if out_shape == "CN" else "[c]"
        statement = (f"{kind}: for all {W['groups']}, {W['sizes']} and every c < {W['C']}"
                     + (f", p < {W['n']}" if out_shape == "CN" else "")
                     + f": (J·t){out_i} = Σ_inputs Σ_{{c'<{W['C']}}} [Σ_{{q<{W['n']}}}] "
                     f"∂out{out_i}/∂in[c',q]·t_in[c',q] ([Σ_q] for group × position inputs; Σ_j for a "
                     f"weight input) equals the node's JVP rule"
                     + (" (same slot: 2·a⊙t_a)" if kind == "mul_same" else "")
                     + f"; used by {_uses(spec, kind)}")
        claims.append(Claim(
            name=f"jvp_{kind}", group="stage JVP = J·t", statement=statement, free=free,
            lhs=lhs, rhs=rhs, lean_name=lean, stage=_uses(spec, kind), channel_level=True,
            assumptions=_node_assumptions(spec, kind), cover=_generic_cover, spec=spec))
    return claims


def _channel_block_claims(spec) -> list[Claim]:
    W = spec.words
    claims = []
    for kind in spec.kinds():
        fams, out_shape, lean = _KIND_INFO[kind]
        if "w" in fams:
            continue  # a weight input is shared by the groups: not a per-group block
        for fam in list(dict.fromkeys(fams)):
            in_shape = _family_shape(fam)
            free = [("c", "C"), ("c2", "C")]
            if out_shape == "CN":
                free.append(("p", "N"))
            if in_shape == "CN":
                free.append(("q", "N"))

            def parts(be, idx, out_shape=out_shape, in_shape=in_shape, kind=kind):
                _, _, out, _, _ = _kind_node(be, kind)
                o = (lambda c: out(c, idx["p"])) if out_shape == "CN" else out
                tail = (idx["q"],) if in_shape == "CN" else ()
                return o, tail

            def lhs(be, idx, fam=fam, parts=parts):
                o, tail = parts(be, idx)
                return be.diff(o(idx["c"]), fam, idx["c2"], *tail)

            def rhs(be, idx, fam=fam, parts=parts):
                o, tail = parts(be, idx)
                return be.delta(idx["c"], idx["c2"]) * be.diff(o(idx["c"]), fam, idx["c"], *tail)

            out_i = "[c,p]" if out_shape == "CN" else "[c]"
            in_i = "[c',q]" if in_shape == "CN" else "[c']"
            statement = (f"{kind}: for all {W['groups']}, {W['sizes']} and c, c' < {W['C']}: "
                         f"∂out{out_i}/∂{fam}{in_i} = δ_cc'·∂out{out_i}/∂{fam}{in_i.replace(chr(39), '')} "
                         f"-- the forward of {W['grp']} c reads only {W['grp']} c of its input, so every "
                         f"cross-{W['grp']} Jacobian block (c ≠ c') is zero; used by {_uses(spec, kind)}")
            claims.append(Claim(
                name=f"channel_block_{kind}" + ("" if len(set(fams)) == 1 else f"_{fam}"),
                group="channel independence", statement=statement, free=tuple(free), lhs=lhs,
                rhs=rhs, lean_name=lean, stage=_uses(spec, kind), channel_level=True,
                assumptions=_node_assumptions(spec, kind), cover=_generic_cover, spec=spec))
    return claims
