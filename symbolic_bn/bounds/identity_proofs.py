"""Identity obligations of the inference bounds: scale/offset form, the graph-engine offset, the
sign of the scale, affine composition, the Jacobian and Hessian, and the first- and second-order
chain rules (TorchLean ``computeScale``/``computeOffset``, ``affBatchnorm``, ``derivBatchnorm``,
``secondDerivBatchnorm``).

Each is a list of ``lhs ≡ rhs`` components proved by ``decide_zero`` over symbolic channels
(:func:`_prove_identity`); a component not proved is instantiated on an exact rational grid and
confirmed with ``differ_exactly`` for a counterexample ('failed'), else 'undecided'.  Symbols and
the zero test: :mod:`symbolic_bn.bounds.proof_symbols`.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..exact.budget import BudgetExceeded
from ..exact.decide import differ_exactly
from .proof_symbols import (_PASS_THROUGH, LEAN_FILE, _R, _Channel, _concrete_channel, _forward,
                            _is_zero, _offset_of, _raised, _scale_of)


_ID_GRID = [
    dict(mean=[_R(1), _R(-2)], var=[_R(4), _R(-4)], gamma=[_R(2), _R(-1, 2)], beta=[_R(3), _R(-3)],
         eps=_R(5)),
    dict(mean=[_R(-1, 3), _R(5)], var=[_R(0), _R(11)], gamma=[_R(-3), _R(7, 5)],
         beta=[_R(1, 2), _R(2)], eps=_R(1, 4)),
    dict(mean=[_R(2), _R(0)], var=[_R(1), _R(3)], gamma=[_R(1), _R(1)], beta=[_R(0), _R(1)],
         eps=_R(1)),
    dict(mean=[_R(3), _R(-1)], var=[_R(-4), _R(16)], gamma=[_R(-2), _R(3)], beta=[_R(1), _R(-1)],
         eps=_R(9)),   # a negative variance in channel 0 (totalization)
]
_VEC_VALUES = [_R(2), _R(-1), _R(1, 3), _R(5), _R(-7, 2), _R(3), _R(-2), _R(4), _R(1, 5)]


def _prove_identity(builder, n_channels, extra_symbols=()):
    """builder(channels, extra) -> list of (label, lhs, rhs); prove lhs ≡ rhs for each.

    Symbolic channels use R; counterexamples instantiate the channels and the extra symbols with
    exact rationals from fixed grids and are confirmed with differ_exactly.
    """
    eps = sympy.Symbol("eps", real=True)
    chans = [_Channel(k if n_channels > 1 else "", eps=eps) for k in range(n_channels)]
    sub = {}
    for ch in chans:
        sub.update(ch.sub)
    positive = {ch.R for ch in chans}
    raised = None
    try:
        pairs = builder(chans, list(extra_symbols))
        failing = []
        for label, lhs, rhs in pairs:
            d = (sympy.sympify(lhs) - sympy.sympify(rhs)).xreplace(sub)
            if _is_zero(d, positive) is not True:
                failing.append(label)
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # the rule under test (or its output) is not usable symbolically
        raised, failing = _raised(exc), ["all components"]
    if not failing:
        return "proved", f"{len(pairs)} component identities, each by decide_zero", None
    for gi, grid in enumerate(_ID_GRID):
        cc = [_concrete_channel(grid["mean"][k], grid["var"][k], grid["gamma"][k], grid["beta"][k],
                                grid["eps"]) for k in range(n_channels)]
        extra = [_VEC_VALUES[(i + gi) % len(_VEC_VALUES)] for i in range(len(extra_symbols))]
        try:
            cpairs = builder(cc, extra)
        except BudgetExceeded:
            raise
        except Exception:  # a (wrong) rule undefined at this point: try the next one
            continue
        for label, lhs, rhs in cpairs:
            lhs, rhs = sympy.sympify(lhs), sympy.sympify(rhs)
            if lhs.free_symbols or rhs.free_symbols:
                continue
            try:
                differ = differ_exactly(lhs, rhs)
            except BudgetExceeded:
                raise
            except Exception:  # not an exact real number (e.g. sqrt of a negative): skip
                continue
            if differ:
                ce = {}
                for k in ("mean", "var", "gamma", "beta"):
                    for c in range(n_channels):
                        ce[f"{k}[{c}]" if n_channels > 1 else k] = grid[k][c]
                ce["eps"] = grid["eps"]
                ce.update({str(sym): val for sym, val in zip(extra_symbols, extra)})
                ce.update({"claim": f"{label} = 0", "component": label, "lhs": lhs, "rhs": rhs})
                why = raised if raised else "normal form not zero"
                return "failed", f"{label}: {why}; exact counterexample found", ce
    if raised:
        return "undecided", f"{raised}; no counterexample on the grid", None
    return "undecided", f"normal form of {failing} not zero, no counterexample on the grid", None


def _identity_obligations(rules):
    """(name, group, statement, lean_name, extra assumptions, builder, n_channels, extra symbols)."""
    x = sympy.Symbol("x", real=True)
    t = sympy.Symbol("t", real=True)
    X = sympy.Function("x")
    C, n = 2, 3
    A = [[sympy.Symbol(f"A_{i}{j}", real=True) for j in range(n)] for i in range(C)]
    cvec = [sympy.Symbol(f"c_{i}", real=True) for i in range(C)]
    xs = [sympy.Symbol(f"x_{j}", real=True) for j in range(n)]
    xv = [sympy.Symbol(f"x_{i}", real=True) for i in range(C)]

    def affine_form(ch, e):
        return [("BN(x) − (scale·x + offset)", _forward(ch[0], e[0]),
                 _scale_of(rules, ch[0]) * e[0] + _offset_of(rules, ch[0]))]

    def graph_offset(ch, e):
        c0 = ch[0]
        return [("β − μ·scale − offset", c0.beta - c0.mean * _scale_of(rules, c0), _offset_of(rules, c0))]

    def scale_sign(ch, e):
        c0 = ch[0]
        root = sympy.sqrt(sympy.Max(c0.var, 0) + c0.eps)
        return [("scale·sqrt(max(σ²,0)+ε) − γ", _scale_of(rules, c0) * root, c0.gamma)]

    def affine_comp(ch, e):
        Am = np.array(e[:C * n], dtype=object).reshape(C, n)
        cv = np.array(e[C * n:C * n + C], dtype=object)
        xx = e[C * n + C:]
        s = np.array([_scale_of(rules, c) for c in ch], dtype=object)
        o = np.array([_offset_of(rules, c) for c in ch], dtype=object)
        A2, c2 = rules["affine"](s, o, Am, cv)
        out = []
        for i in range(C):
            pre = sum(Am[i, j] * xx[j] for j in range(n)) + cv[i]
            lhs = _forward(ch[i], pre)
            rhs = sum(A2[i, j] * xx[j] for j in range(n)) + c2[i]
            out.append((f"channel {i}", lhs, rhs))
        return out

    def jacobian(ch, e):
        ys = [_forward(ch[i], xv[i]) for i in range(C)]
        return [(f"J[{i}][{j}]", sympy.diff(ys[i], xv[j]), _scale_of(rules, ch[i]) if i == j else 0)
                for i in range(C) for j in range(C)]

    def hessian(ch, e):
        ys = [_forward(ch[i], xv[i]) for i in range(C)]
        return [(f"H[{i}][{j}][{k}]", sympy.diff(ys[i], xv[j], xv[k]), 0)
                for i in range(C) for j in range(C) for k in range(C)]

    # x'(t) (resp. x''(t)) is an opaque value: both sides are written with it replaced by one
    # fresh symbol, so counterexamples can instantiate it.
    dx = sympy.Symbol("xdot", real=True)
    ddx = sympy.Symbol("xddot", real=True)

    def chain1(ch, e):
        lhs = sympy.diff(_forward(ch[0], X(t)), t).xreplace({sympy.Derivative(X(t), t): e[0]})
        return [("d/dt BN(x(t)) − scale·x'(t)", lhs, _scale_of(rules, ch[0]) * e[0])]

    def chain2(ch, e):
        lhs = sympy.diff(_forward(ch[0], X(t)), t, 2).xreplace(
            {sympy.Derivative(X(t), (t, 2)): e[0], sympy.Derivative(X(t), t): e[1]})
        return [("d²/dt² BN(x(t)) − scale·x''(t)", lhs, _scale_of(rules, ch[0]) * e[0])]

    flat = [A[i][j] for i in range(C) for j in range(n)] + cvec + xs
    return [
        ("scale_offset_identity", "identity",
         "BN(x) = ((x − μ)/sqrt(max(σ²,0)+ε))·γ + β equals scale·x + offset with scale = "
         "γ/sqrt(max(σ²,0)+ε) (computeScale) and offset = β − γ·μ/sqrt(max(σ²,0)+ε) (computeOffset), "
         "for all real x",
         f"Proofs.Normalization.batchNorm_inference_eq_mul_add; {LEAN_FILE}: computeScale/computeOffset",
         [], affine_form, 1, [x]),
        ("offset_graph_form", "identity",
         "β − μ·scale = offset (the graph engine's batchNorm2dNchwEvalBias equals computeOffset over ℝ)",
         "NN/MLTheory/CROWN/Graph/Engine/Base.lean: batchNorm2dNchwEvalBias", [], graph_offset, 1, []),
        ("scale_sign", "identity",
         "scale·sqrt(max(σ²,0)+ε) = γ; with sqrt(max(σ²,0)+ε) > 0 this gives sign(scale) = sign(γ), "
         "which justifies the case split γ > 0 / γ < 0 / γ = 0 below",
         None, [], scale_sign, 1, []),
        ("affine_composition", "affine",
         f"for symbolic A (C×n = {C}×{n}), c (C = {C}) and x (n = {n}): BN(A x + c) = (diag(scale) A) x "
         f"+ (scale ⊙ c + offset), channel by channel (affBatchnorm); shown at these sizes only",
         f"{LEAN_FILE}: affBatchnorm", [], affine_comp, C, flat),
        ("jacobian_diag", "deriv",
         f"the Jacobian of BN (sympy.diff of the forward expression, C = {C} channels) is diag(scale)",
         f"{LEAN_FILE}: derivBatchnorm (docstring: d(BN)/dx = scale)", [], jacobian, C, []),
        ("deriv_chain_rule", "deriv",
         "for a differentiable curve x(t) (sympy Function): d/dt BN(x(t)) = scale·x'(t)",
         f"{LEAN_FILE}: derivBatchnorm", ["x(t) differentiable"], chain1, 1, [dx]),
        ("hessian_zero", "second_deriv",
         f"every second partial derivative of BN (C = {C} channels) is 0",
         f"{LEAN_FILE}: secondDerivBatchnorm (docstring: second derivative is zero)", [], hessian, C, []),
        ("second_deriv_chain_rule", "second_deriv",
         "for a twice-differentiable curve x(t) (sympy Function): d²/dt² BN(x(t)) = scale·x''(t)",
         f"{LEAN_FILE}: secondDerivBatchnorm", ["x(t) twice differentiable"], chain2, 1,
         [ddx, dx]),
    ]
