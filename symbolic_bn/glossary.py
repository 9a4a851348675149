"""The glossary: every term the ``symbolic-bn`` command line prints, explained once.

Each :class:`Entry` explains one term in words a PyTorch user knows (``loss.backward()``,
``grad_output``, ``torch.func.jvp``, ``nn.BatchNorm2d``'s ``eps`` and running statistics), with
the spellings the output uses as aliases.  Obligation *families* (``stage.std.derivative`` is one
obligation of the family ``stage.*.derivative``) are matched by a pattern, and a per-entry index
(``var_c``, ``std_i``, ``x_{c,p}``, ``dx[0, 0, 0]``) is stripped before looking a term up.

Used by ``symbolic-bn explain [TERM]``, ``symbolic-bn glossary`` (:func:`full_text`) and to generate the README's "Glossary" section
(:func:`markdown`).  Facts about TorchLean come from the reference notes
(``torchlean.md`` §1-§3, §12); facts about the cross-check from :mod:`symbolic_bn.checks.crosscheck`.
"""
from __future__ import annotations

import difflib
import re
import textwrap
from dataclasses import dataclass

__all__ = ["Entry", "ENTRIES", "CATEGORIES", "lookup", "closest", "entries", "render", "listing",
           "full_text", "markdown"]

#: Categories, in the order the listing and the README show them.
CATEGORIES = (
    "verdicts and output",
    "derivatives and backprop",
    "the BatchNorm graph",
    "obligation families",
    "inference bounds",
    "cross-check",
    "exact engine",
)


@dataclass(frozen=True)
class Entry:
    """One glossary entry.

    ``term``: the spelling shown first; ``text``: the explanation; ``aliases``: other spellings
    the output uses (matched case-insensitively); ``pattern``: a regular expression matched
    against the whole (case-folded) term, for families such as ``stage.*.derivative``;
    ``see``: related entries.
    """

    term: str
    category: str
    text: str
    aliases: tuple = ()
    pattern: str | None = None
    see: tuple = ()

    @property
    def summary(self) -> str:
        """The first sentence of the explanation."""
        m = re.match(r"(.+?[.!?])(?=\s+[A-Z\"(]|$)", self.text)
        return m.group(1) if m else self.text


def _e(term, category, text, aliases=(), pattern=None, see=()):
    return Entry(term, category, " ".join(text.split()), tuple(aliases), pattern, tuple(see))


V, D, G, O, B, X, E = CATEGORIES

ENTRIES: tuple[Entry, ...] = (
    # ------------------------------------------------------------------ verdicts and output
    _e("obligation", V, """One mathematical statement the tool decides, such as
       stage.std.derivative or backward.dx. Each line "[  PROVED] name  (seconds)" is one
       obligation; in the long form it is followed by its statement, what it assumes, and the
       method that decided it.""", aliases=("obligations",), see=("certificate", "proved")),
    _e("certificate", V, """The list of obligations about one subject (the BatchNorm graph at
       one shape and ε, a user's backward at one shape, the inference bounds). Its summary line
       says OK only when every obligation is proved, and counts proved / failed / undecided.""",
       aliases=("certificates",), see=("obligation", "OK")),
    _e("proved", V, """Decided true by exact algebra: rational arithmetic and polynomial
       identities, never floating point, random sampling or SymPy's simplify(). A proved
       statement holds for every input allowed by its "assumes" line, at the shape stated.""",
       aliases=("PROVED",), see=("failed", "undecided", "domain")),
    _e("failed", V, """Refuted: the statement is false. A failed obligation always carries a
       counterexample, exact inputs at which the two sides differ, re-evaluated independently of
       the procedure that found them. Exit status 1.""", aliases=("FAILED",),
       see=("counterexample",)),
    _e("undecided", V, """Neither proved nor refuted: the time budget ran out, or the exact
       procedure could neither prove the identity nor find a counterexample. Undecided is not a
       pass (exit status 1); try a larger --budget or a smaller --shape.""",
       aliases=("UNDECIDED",), see=("budget",)),
    _e("OK", V, """The summary verdict of a certificate: every obligation proved. NOT OK means
       at least one is failed or undecided.""", aliases=("NOT OK", "NOT")),
    _e("PASS", V, """The verdict of `symbolic-bn check` ("CHECK: PASS"), of `symbolic-bn
       autodiff` ("AUTODIFF: PASS"), of one output of the cross-check and of one row of the
       autodiff table: everything checked holds (exit status 0). FAIL: something is wrong (a
       failed obligation, an output or row outside its bound). UNDECIDED: nothing failed, but
       something was neither proved nor refuted or could not be checked exactly (NOT CHECKED);
       exit status 1 for both. RESULT is the cross-check's own overall verdict.""",
       aliases=("FAIL", "CHECK", "CHECK: PASS", "CHECK: FAIL", "CHECK: UNDECIDED", "RESULT", "status",
                "verdict", "AUTODIFF",
                "AUTODIFF: PASS", "AUTODIFF: FAIL", "AUTODIFF: UNDECIDED"),
       see=("proved", "cross-check")),
    _e("counterexample", V, """Exact inputs (rationals such as 7/4, so nothing is rounded) at
       which the checked function and the reference differ. For `check` it names the entry
       (location=dx[0, 0, 0]), both exact values, their float approximations (*_approx), and
       the inputs x, gamma, beta, eps and grad_out; run your function at these inputs to see
       the bug.""", aliases=("counterexamples", "counterex.", "COUNTEREXAMPLE", "location",
                              "implementation", "reference", "implementation_approx",
                              "reference_approx"), see=("failed",)),
    _e("statement", V, """The label of the line that says what an obligation claims, in the
       reference's notation.""", aliases=("statements",)),
    _e("assumes", V, """The label of the line listing what an obligation assumes (its
       hypotheses): the domain (var_c + ε > 0), a side condition, or "nothing". The verdict is
       about inputs that satisfy these assumptions only.""",
       aliases=("assumption", "assumptions"), see=("domain", "side condition")),
    _e("method", V, """The label of the line that says how the verdict was reached, precisely
       enough to redo it by hand or with another computer-algebra system.""",
       aliases=("methods",)),
    _e("detail", V, """Extra facts found while deciding an obligation (for example the exact
       remainder of each bound, or why it is undecided).""", aliases=("details",)),
    _e("Lean", V, """The "Lean:" column names the counterpart of an obligation in TorchLean, a
       Lean 4 library whose BatchNormChannelFirst proof this tool mirrors; it is there for
       cross-reference and is not needed to read the verdicts. No Lean is run. The names hStdNe0
       (std_c ≠ 0) and hVarEpsPos (var_c + ε > 0) are the theorem's two hypotheses; computeScale,
       computeOffset, affBatchnorm and batchNorm2dNchwEvalBias, quoted in the bounds statements,
       are TorchLean's names of the formulas proved.""",
       aliases=("TorchLean", "hStdNe0", "hVarEpsPos", "Lean:", "computeScale", "computeOffset",
                "affBatchnorm", "batchNorm2dNchwEvalBias", "ibpBatchnorm", "derivBatchnorm",
                "secondDerivBatchnorm")),
    _e("side condition", V, """The extra hypothesis under which one node's derivative claim
       holds: z > 0 for sqrtClamp (the square root is not differentiable at 0) and z ≠ 0 for
       inv; z is the node's input. In the BatchNorm graph these are var_eps_c = var_c + ε > 0
       and std_c ≠ 0, both implied by the domain.""",
       aliases=("side conditions", "side-condition", "z"), see=("sqrtClamp", "inv", "domain")),
    _e("domain", V, """The inputs a certificate covers: every x, γ, β with var_c + ε > 0 in
       every channel c, where var_c is the channel's population variance. With ε > 0 that is
       every input; with a symbolic or non-positive ε only inputs whose variance is large
       enough. Outside it (a constant channel at ε = 0) the forward is not differentiable and
       nothing is claimed.""", aliases=("domains",), see=("ε", "domain.*")),
    _e("budget", V, """Seconds allowed per obligation group (`--budget`; default 120 for prove,
       60 per output for check): when it runs out the obligation is undecided, never proved.
       `--budget inf` (or none) removes the limit.""", aliases=("time budget", "--budget"),
       see=("undecided",)),
    _e("note", V, """A remark printed before the results, e.g. that a function without an xp
       parameter is cross-checked numerically instead of checked exactly.""", aliases=("notes",),
       see=("xp", "cross-check")),

    # ------------------------------------------------------------------ derivatives and backprop
    _e("JVP", D, """Jacobian-vector product, forward-mode differentiation: jvp(X, dX) = J(X)·dX,
       the change of the output for a change dX of the input (torch.func.jvp,
       torch.autograd.forward_ad). Every node of the graph has a jvp rule.""",
       aliases=("jvp", "forward mode", "forward-mode", "tangent", "tangents", "dX"),
       see=("VJP", "Jacobian")),
    _e("VJP", D, """Vector-Jacobian product, reverse mode: vjp(X, δ) = J(X)ᵀ·δ, what
       loss.backward() and torch.autograd.grad compute for one operation given the upstream
       gradient δ. Every node of the graph has a vjp rule; backprop chains them.""",
       aliases=("vjp", "reverse mode", "reverse-mode"), see=("JVP", "backprop", "seed")),
    _e("adjoint", D, """For real vectors with the ordinary dot product the adjoint of a linear
       map is its transpose. "The backward is the adjoint of the derivative" means backward(g) =
       Jᵀ·g, which is what autograd must compute. The adjointness law ⟨jvp(X, dX), δ⟩ =
       ⟨dX, vjp(X, δ)⟩ (⟨·,·⟩ the dot product) is the dot-product test, proved exactly for all
       X, dX, δ.""", aliases=("adjointness", "adjoint law", "adjointness law", "⟨·,·⟩", "⟨jvp, δ⟩"),
       see=("stage.*.adjoint",)),
    _e("Jacobian", D, """The matrix J of all partial derivatives of a function's outputs with
       respect to its inputs; Jᵀ is its transpose. "D forward(X)" is the derivative (the
       Jacobian as a linear map) of a node's forward at X; ∂y/∂x is a block of it. Here it is
       computed by exact symbolic differentiation (sympy.diff), never by finite differences;
       "w.r.t." means "with respect to".""",
       aliases=("J", "Jᵀ", "J(X)", "J(X)ᵀ", "D forward", "D", "∂y/∂x", "jacobian_diag", "sympy.diff",
                "w.r.t", "w.r.t.", "with respect to"),
       see=("J_E",)),
    _e("backprop", D, """The graph's reverse pass (what loss.backward() runs): nodes are visited
       last to first, each slot's seed plus the contributions of its later consumers is passed
       through the node's vjp, and the gradient of the inputs (x, γ, β) is returned.""",
       aliases=("backpropagation", "reverse pass", "backprop(x, s)"), see=("seed", "VJP")),
    _e("seed", D, """The upstream gradient handed to backprop: what PyTorch calls grad_output
       (the `gradient` argument of tensor.backward). Here a seed may sit on every slot, not only
       on the output, which is how the end-to-end theorem covers the whole graph; a seed on the
       output slot yChw only is the usual backward. "Fully symbolic" means every entry of the
       seed is an independent symbol, so the identity holds for every grad_output. (seed=0 in
       the cross-check header is a random-number seed.)""",
       aliases=("seeds", "seed s", "full-context seed"), see=("cotangent", "backprop", "seed=0")),
    _e("cotangent", D, """Another word for an upstream gradient: δ for one node, g or grad_out for
       the output of the layer (PyTorch's grad_output). The backward maps the cotangent of the
       output to the cotangents (gradients) of the inputs.""",
       aliases=("cotangents", "δ", "g", "grad_out", "grad_output", "gradient"), see=("seed",)),
    _e("dx", D, """The outputs of a backward: dx, dgamma (dγ), dbeta (dβ) are the gradients with
       respect to x, the weight γ and the bias β, i.e. x.grad, bn.weight.grad, bn.bias.grad in
       PyTorch for the upstream gradient grad_out. The forward's output is y. With --layer the
       weight and bias are called weight and bias, their gradients dweight and dbias (rms_norm has
       no bias: its backward returns (dx, dweight)).""",
       aliases=("dgamma", "dbeta", "dγ", "dβ", "dγ_c", "dβ_c", "y", "dy", "outputs", "output", "dweight",
                "dbias")),
    _e("totalized", D, """Lean's convention that makes every function total: sqrt(z) = 0 for
       z ≤ 0 and 1/0 = 0. "Totalized derivatives" are the derivative formulas used as written at
       every point, so sqrtClamp's derivative 1/(2·sqrt z) is 0 at z ≤ 0 and inv's -1/z² is 0 at
       0. The adjointness law holds with them everywhere; they are a true derivative only where
       the side condition holds.""",
       aliases=("totalized derivative", "totalized derivatives", "totalization", "totalize"),
       see=("side condition", "sqrtClamp")),
    _e("E", D, """The evaluation map of the whole graph, (x, γ, β) ↦ (x, γ, β, xMat, …, yChw):
       it takes the C·N + 2C inputs and returns every slot (12CN + 7C numbers), i.e. the forward
       pass keeping every intermediate.""", aliases=("evaluation map",), see=("J_E", "slot")),
    _e("J_E", D, """The Jacobian of E, the map from the inputs (x, γ, β) to every slot of the
       graph. The end-to-end theorem is backprop(x, s) = J_E(x)ᵀ s for every seed s on all
       slots: the reverse pass is exactly the transpose of the derivative, intermediates
       included.""", aliases=("J_E(x)", "J_E(x)ᵀ", "J_Eᵀ"), see=("E", "end_to_end.*")),
    _e("ε", D, """The eps of nn.BatchNorm2d, added to the variance before the square root.
       "ε symbolic" (the default of prove and check) means ε is a free real symbol: the result
       holds for every real ε with var_c + ε > 0, including ε ≤ 0 where the variance is large
       enough. --eps 1e-5 fixes ε to exactly 1/100000 (decimals are read exactly, not as
       floats).""", aliases=("eps", "epsilon", "--eps", "ε symbolic", "symbolic ε"),
       see=("domain",)),

    # ------------------------------------------------------------------ the BatchNorm graph
    _e("BatchNormChannelFirst", G, """TorchLean's channel-first BatchNorm graph, the subject of
       `symbolic-bn prove`: 16 stages from the input x (C×H×W), γ and β to the output y =
       (x − mean_c)/sqrt(var_c + ε)·γ_c + β_c, with mean and population variance per channel over
       the H·W positions of one example.""",
       aliases=("BatchNorm", "BatchNorm graph", "BN graph", "the BatchNorm graph"),
       see=("slot", "stage")),
    _e("slot", G, """One named array of the graph: an input (x, gamma, beta) or the output of
       one stage (xMat, mean, …, yChw), like a saved intermediate in autograd. "Context: the k
       slots before stage j" are the arrays that stage may read.""", aliases=("slots",),
       see=("context", "12CN + 7C slots")),
    _e("context", G, """All slots that exist before a stage runs: the inputs and every earlier
       intermediate. A node's jvp takes a tangent of its whole context and its vjp returns a
       gradient for its whole context, and its derivative is taken with respect to the whole
       context, as in TorchLean. In a stage's statement X is a point of the whole context, with
       every entry an independent symbol.""", aliases=("whole context", "contexts", "X"),
       see=("slot",)),
    _e("12CN + 7C slots", G, """The size of the full context of the BatchNorm graph: 12
       arrays of C×N numbers (x, xMat, mean_b, centered, centered_sq, inv_std_b, normalized,
       gamma_b, scaled, beta_b, yMat, yChw) and 7 of C numbers (gamma, beta, mean, var, var_eps,
       std, inv_std), with N = H·W. The inputs are CN + 2C numbers.""",
       aliases=("12CN + 7C", "12CN+7C", "CN + 2C"), see=("slot", "E")),
    _e("C", G, """Shapes are CxHxW: C channels, H×W spatial positions, N = H·W values per channel
       (one example, channel-first; the statistics are taken per channel over the H·W
       positions, like InstanceNorm on one example or BatchNorm2d's per-channel statistics).
       c indexes channels and p positions.""", aliases=("H", "W", "N", "N = H·W", "CxHxW",
                                                        "shape", "--shape", "c", "p")),
    _e("x", G, """The input of the layer (C×H×W); x_{c,p} is its value in channel c at position
       p.""", aliases=("input",)),
    _e("gamma", G, """γ, the per-channel scale: nn.BatchNorm2d's weight (bn.weight).""",
       aliases=("γ", "weight", "γ_c")),
    _e("beta", G, """β, the per-channel shift: nn.BatchNorm2d's bias (bn.bias).""",
       aliases=("β", "bias", "β_c")),
    _e("xMat", G, """Slot: x reshaped to a C×N matrix (one row per channel).""",
       see=("reshape",)),
    _e("mean", G, """Slot: the per-channel mean mean_c = μ_c = (1/N)·Σ_p x_{c,p} (rowMean of
       xMat).""", aliases=("μ", "μ_c", "mean_c"), see=("rowMean",)),
    _e("mean_b", G, """Slot: the mean broadcast back to C×N (broadcastRow of mean).""",
       see=("broadcastRow",)),
    _e("centered", G, """Slot: x − mean per channel (sub of xMat and mean_b).""",
       aliases=("ℓ", "ℓ_p")),
    _e("centered_sq", G, """Slot: centered ⊙ centered, the squared deviations (a mul whose two
       operands are the same slot, so its vjp adds two contributions).""",
       aliases=("centered²",)),
    _e("var", G, """Slot: the per-channel population variance var_c = (1/N)·Σ_p (x_{c,p} −
       mean_c)², divided by N, not N − 1 (what BatchNorm uses to normalize; rowMean of
       centered_sq). Never negative; the graph has no max(var, 0) clamp.""",
       aliases=("var_c", "variance", "σ²", "σ²_c")),
    _e("var_eps", G, """Slot: var_c + ε, the input of the square root (an elemwise z ↦ z + ε);
       its side condition var_eps_c > 0 is the domain.""", aliases=("var + ε", "var_c + ε"),
       see=("domain",)),
    _e("std", G, """Slot: std_c = sqrt(max(var_eps_c, 0)) (sqrtClamp), the per-channel standard
       deviation sqrt(var_c + ε) on the domain.""", aliases=("std_c",), see=("sqrtClamp",)),
    _e("inv_std", G, """Slot: 1/std_c (inv), often written r_c = 1/sqrt(var_c + ε) (the
       rsqrt(var + eps) of a BatchNorm kernel).""", aliases=("r", "r_c", "inv_std_c"),
       see=("inv",)),
    _e("inv_std_b", G, """Slot: inv_std broadcast to C×N (broadcastRow).""",
       see=("broadcastRow",)),
    _e("normalized", G, """Slot: centered ⊙ inv_std_b, the normalized input x̂ = (x − mean)/
       sqrt(var + ε).""", aliases=("x̂", "xhat", "x_hat")),
    _e("gamma_b", G, """Slot: γ broadcast to C×N (broadcastRow of gamma).""",
       see=("broadcastRow",)),
    _e("scaled", G, """Slot: normalized ⊙ gamma_b, i.e. x̂·γ.""",),
    _e("beta_b", G, """Slot: β broadcast to C×N (broadcastRow of beta).""",
       see=("broadcastRow",)),
    _e("yMat", G, """Slot: scaled + beta_b, the output as a C×N matrix (add).""",
       ),
    _e("yChw", G, """Slot: the output y = x̂·γ + β reshaped back to C×H×W; the last stage. A
       seed on yChw only is an ordinary backward with grad_output on the output.""",
       ),
    _e("reshape", G, """Node kind: the same numbers in another shape (x.reshape); its vjp
       reshapes the gradient back.""",),
    _e("rowMean", G, """Node kind: the mean of each row of a C×N matrix, x.mean(dim=1) (with 1/0
       = 0 when N = 0). Its vjp spreads δ_c/N over the row."""),
    _e("broadcastRow", G, """Node kind: repeat a per-channel vector v (length C) along each row,
       out[c, p] = v[c], like v[:, None].expand(C, N). Its vjp sums the gradient over each row.""",
       aliases=("bcast_r",), see=("broadcastCol",)),
    _e("broadcastCol", G, """Node kind: repeat a vector v (length N) down the columns, out[c, p]
       = v[p], like v[None, :].expand(C, N). Its vjp sums the gradient over each column. (Not
       used by the BatchNorm graph; available for user-modified graphs.)""",
       see=("broadcastRow",)),
    _e("sub", G, """Node kinds sub, add and mul: elementwise a − b, a + b and a ⊙ b (the
       elementwise product). mul's vjp sends δ⊙b to a and δ⊙a to b.""", aliases=("add", "mul", "⊙")),
    _e("elemwise", G, """Node kind: a function applied to every entry, with a declared derivative
       f' (in the BatchNorm graph, z ↦ z + ε with f' = 1). Its vjp is δ ⊙ f'(x).""",
       aliases=("elementwise",)),
    _e("sqrtClamp", G, """Node kind: sqrt(max(z, 0)), a square root that returns 0 for z ≤ 0
       (like torch.sqrt(torch.clamp(z, min=0))). Its declared derivative 1/(2·sqrt z) is a
       derivative only for z > 0, its side condition; at z ≤ 0 it is 0 by totalization.""",
       aliases=("sqrt", "sqrt(max(z, 0))"), see=("totalized", "side condition")),
    _e("inv", G, """Node kind: 1/z elementwise (with 1/0 = 0, totalized). Its derivative −1/z² is
       a derivative only for z ≠ 0, its side condition.""", aliases=("inverse", "1/z"),
       see=("totalized", "side condition")),
    _e("Spec", G, """The reference formulas of BatchNorm in TorchLean's specification:
       Spec.batchNorm2d (the forward (x − mean)/sqrt(max(max(var, 0) + ε, 0))·γ + β),
       Spec.batchNorm2dBackward (the closed-form backward dx = (γ_c r_c/N)(N g − Σ_p g − x̂ Σ_p g
       x̂), dγ_c = Σ_p g x̂, dβ_c = Σ_p g) and Spec.batchNorm2dJvp (its forward-mode derivative).
       The link.* obligations tie the graph to them.""",
       aliases=("Spec.batchNorm2d", "Spec.batchNorm2dBackward", "Spec.batchNorm2dJvp",
                "closed form", "closed-form"), see=("link.*",)),

    # ------------------------------------------------------------------ obligation families
    _e("stage", O, """The group of per-node obligations: for each of the 16 stages of the graph
       (xMat … yChw) three laws about its jvp and vjp rules, checked on a fully symbolic context
       (every entry an independent symbol).""", aliases=("stages", "stage.*"),
       pattern=r"stage\.[^.]+", see=("stage.*.adjoint", "stage.*.derivative",
                                      "stage.*.transpose")),
    _e("stage.*.adjoint", O, """The node's adjointness law ⟨jvp(X, dX), δ⟩ = ⟨dX, vjp(X, δ)⟩ for
       every X, dX, δ: its backward rule is the transpose of its forward-mode rule. Required
       unconditionally (TorchLean's Node.correct), with the totalized derivatives.""",
       pattern=r"stage\.[^.]+\.adjoint", see=("adjoint",)),
    _e("stage.*.derivative", O, """The node's jvp rule equals the true derivative of its forward
       (the Jacobian of the forward with respect to the whole context, by exact symbolic
       differentiation), under the node's side condition.""",
       pattern=r"stage\.[^.]+\.derivative", see=("Jacobian", "side condition")),
    _e("stage.*.transpose", O, """The node's vjp rule equals Jᵀ·δ, the transposed true Jacobian
       applied to the gradient, under the node's side condition: with stage.*.derivative this
       says the backward rule is right, not only consistent with the forward-mode rule.""",
       pattern=r"stage\.[^.]+\.transpose"),
    _e("end_to_end.*", O, """The whole-graph theorem. end_to_end.backprop_eq_adjoint_fderiv:
       backprop(x, s) = J_E(x)ᵀ s for every seed s on all 12CN + 7C slots, on the domain
       (TorchLean's main theorem: the reverse pass is the adjoint of the derivative).
       end_to_end.block_diagonal: channels do not interact (no slot of channel c depends on
       another channel's inputs).""", aliases=("end-to-end", "end_to_end", "end to end"),
       pattern=r"end_to_end\.[a-z0-9_]+", see=("J_E", "seed")),
    _e("link.*", O, """Obligations linking the graph to the usual closed forms (TorchLean does not
       prove these): link.variance_nonnegative (var_c ≥ 0, so the spec's max(var, 0) clamp
       changes nothing), link.backward_closed_form (with grad_output on yChw only, backprop
       gives the textbook BatchNorm backward), link.jvp_closed_form and link.forward_spec.""",
       aliases=("link", "links"), pattern=r"link\.[a-z0-9_]+", see=("Spec",)),
    _e("domain.*", O, """Facts about the domain: domain.std_nonzero (var_c + ε > 0 implies
       std_c ≠ 0), domain.eps_positive_suffices (ε > 0 covers every input, as var_c ≥ 0) and
       domain.outside_not_differentiable (at ε = 0 with a constant channel the forward has no
       derivative, while backprop still returns finite numbers: why the domain is needed).""",
       pattern=r"domain\.[a-z0-9_]+", see=("domain",)),
    _e("backward.*", O, """The obligations of `symbolic-bn check` for a backward:
       backward.dx, backward.dgamma, backward.dbeta say that each output equals (∂y/∂·)ᵀ·g, the
       transposed Jacobian of the reference forward applied to a fully symbolic grad_out g, for
       all inputs in the domain at the shape checked. forward.y says the forward equals the
       reference (x − μ)/sqrt(var + ε)·γ + β.""",
       aliases=("backward", "forward", "forward.*", "forward.y"),
       pattern=r"(backward|forward)\.[a-z0-9_]+", see=("dx",)),
    _e("identity", O, """Inference-bounds group: scale_offset_identity (eval-mode BatchNorm is
       the affine map x ↦ scale·x + offset), offset_graph_form (the offset written as
       β − μ·scale) and scale_sign (sign(scale) = sign(γ), which justifies the cases
       γ > 0 / γ < 0 / γ = 0).""",
       aliases=("scale_offset_identity", "offset_graph_form", "scale_sign"),
       see=("scale",)),
    _e("ibp_*", O, """Inference-bounds obligations about the IBP box. ibp_sound_*: every
       x in [lo, hi] gives ibp_lo ≤ BN(x) ≤ ibp_hi; ibp_exact_*: each bound is attained at a
       corner, so no smaller box is sound. Suffix _pos / _neg / _zero: the case γ > 0, γ < 0,
       γ = 0.""", aliases=("ibp_lo", "ibp_hi"), pattern=r"ibp_(sound|exact)_(pos|neg|zero)",
       see=("IBP",)),
    _e("affine_composition", O, """Inference-bounds obligation: composing BatchNorm with a
       preceding affine map A·z + c gives the affine map (scale·A)·z + (scale·c + offset).""",
       aliases=("affine",)),
    _e("deriv_*", O, """Inference-bounds obligations about the derivative box: jacobian_diag (the
       Jacobian of eval-mode BatchNorm is diagonal with entries scale_c), deriv_chain_rule,
       deriv_sound_* (the box contains d/dt BN(x(t)) for every tangent x'(t) in [dlo, dhi]) and
       deriv_exact_* (its bounds are attained). Suffix _pos / _neg / _zero: γ > 0, < 0, = 0.""",
       aliases=("deriv", "deriv_chain_rule", "deriv_lo", "deriv_hi"),
       pattern=r"deriv_(sound|exact)_(pos|neg|zero)", see=("derivative box",)),
    _e("second_deriv_*", O, """Inference-bounds obligations about the second-derivative box:
       hessian_zero (eval-mode BatchNorm is affine, so its second derivative is 0),
       second_deriv_chain_rule, second_deriv_sound_* and second_deriv_exact_* (the box
       scale·[lo, hi] of d²/dt² BN(x(t)) for x''(t) in [lo, hi] is sound and attained).""",
       aliases=("second_deriv", "hessian_zero", "second_deriv_chain_rule", "second_deriv_lo",
                "second_deriv_hi"),
       pattern=r"second_deriv_(sound|exact)_(pos|neg|zero)", see=("second-derivative box",)),

    # ------------------------------------------------------------------ inference bounds
    _e("IBP", B, """Interval bound propagation: given a box lo ≤ x ≤ hi (per entry) of inputs,
       a box [ibp_lo, ibp_hi] guaranteed to contain BN(x) for every x in it. For eval-mode
       BatchNorm (an affine map per channel) the box is exact: scale·lo + offset and
       scale·hi + offset, swapped when scale < 0.""",
       aliases=("interval bound propagation", "IBP box", "box", "lo", "hi", "--box"),
       see=("scale", "ibp_*")),
    _e("inference BatchNorm", B, """BatchNorm in eval mode (model.eval()): normalized with the
       frozen running_mean and running_var instead of batch statistics, so it is the affine map
       BN(x) = scale·x + offset per channel.""",
       aliases=("inference", "eval mode", "running_mean", "running_var", "--params", "params",
                "BN", "BN(x)", "inference BatchNorm bounds"), see=("scale",)),
    _e("scale", B, """s = γ / sqrt(max(running_var, 0) + ε), the per-channel slope of eval-mode
       BatchNorm; offset o = β − s·running_mean. BN(x) = s·x + o. (A negative running_var is
       treated as 0, as TorchLean does.) In the bounds certificate R_c = sqrt(max(σ²_c, 0) + ε) is the
       denominator, so s = γ/R.""", aliases=("offset", "s", "o", "R", "R_c")),
    _e("derivative box", B, """A box for d/dt BN(x(t)) = scale·x'(t) given a box [lo, hi] of the
       tangent x'(t) (--dbox FILE); printed only when --dbox is given. It is scale·[lo, hi],
       swapped when scale < 0.""", aliases=("--dbox", "dbox", "dlo", "dhi"),
       see=("deriv_*",)),
    _e("second-derivative box", B, """A box for d²/dt² BN(x(t)) = scale·x''(t) given a box of
       x''(t) (--ddbox FILE); printed only when --ddbox is given.""",
       aliases=("--ddbox", "ddbox", "second derivative", "second-derivative"),
       see=("second_deriv_*",)),
    _e("rounding", B, """How bounds are computed in floating point. nearest: float64 with
       round-to-nearest (fast, can be off by a few units in the last place). outward: every
       lower bound rounded down and every upper bound up, from exact rationals, so the float64
       box is guaranteed to contain the true one (sound).""",
       aliases=("nearest", "outward", "--rounding", "outward rounding")),
    _e("exact arithmetic", B, """Shown when any parameter is given as a string ("1/4", "1e-5")
       or as an integer too large for float64: the values are exact rationals, and the results
       are exact (printed as fractions or square-root expressions) with --rounding nearest, or
       float64 enclosures of the exact values with --rounding outward.""", aliases=("exact",)),
    _e("channel axis", B, """Which axis of the box holds the channels (--channel-axis, default 0;
       negative counts from the end, e.g. -1 for channel-last data).""",
       aliases=("--channel-axis", "channel_axis", "channel(s)", "channels")),

    # ------------------------------------------------------------------ cross-check
    _e("cross-check", X, """The numeric check of `symbolic-bn check`: your float32/float64 code
       is run at deterministic points and every output is compared with an mpmath reference
       computed at --dps digits on exactly the same (rounded) inputs. Used for functions without
       an xp parameter, with --numeric, or when the exact namespace lacks an operation.""",
       aliases=("crosscheck", "mpmath cross-check", "mpmath", "numeric", "--numeric"),
       see=("err/bound", "xp")),
    _e("err/bound", X, """The cross-check's pass/fail number: |got − ref| divided by an error
       bound that a correct float implementation meets (it accounts for rounding in each entry
       and in the sums over N positions, and for the input's conditioning, kappa). An output
       passes when err/bound ≤ 1 at every entry of every point; correct code typically shows
       ≤ 0.1, wrong formulas ≫ 1.""",
       aliases=("err", "bound", "error bound", "max_ratio", "worst err/bound"),
       see=("kappa", "ULP")),
    _e("kappa", X, """κ_c, the condition number of channel c in the error bound: the largest
       (|x_{c,p}| + mean_p |x_{c,p}|) / sqrt(var_c + ε), large when the mean is large compared
       to the spread (the large_mean family); it widens the bound for inputs where a correct
       implementation loses accuracy.""", aliases=("κ", "κ_c")),
    _e("ULP", X, """Unit in the last place: the spacing of floating-point numbers near a value
       (about 1.2e-7 × |value| in float32, 2.2e-16 × |value| in float64). max_ulp is the largest
       error in those units; it is informative only: err/bound decides pass or fail.""",
       aliases=("ULPs", "max_ulp", "ulp")),
    _e("max_abs", X, """The largest absolute error |got − ref| of an output over all points;
       max_rel is the largest relative error |got − ref| / |ref|.""", aliases=("max_rel",)),
    _e("worst at", X, """Where the largest err/bound occurred: family#point and the index of the
       entry.""", aliases=("worst",)),
    _e("families", X, """The kinds of generated test points: normal (x ~ N(0, 1)), large_mean
       (a mean of ±1e4, where E[x²] − E[x]² cancels catastrophically), small_variance (variance
       comparable to ε), mixed_scales (channels whose spreads range from 1e-3 to 1e3) and user
       (points you supplied). "points=20+0 user" counts generated and user points.""",
       aliases=("family", "normal", "large_mean", "small_variance", "mixed_scales", "user",
                "points", "pt(s)")),
    _e("dps", X, """Decimal digits of the mpmath reference (--dps, default 50): far more than
       float64's 16, so the reference's own error is negligible.""", aliases=("--dps",)),
    _e("dtype", X, """The floating-point type the cross-check feeds your code: float64 (default)
       or float32 (--dtype).""", aliases=("--dtype", "float32", "float64")),
    _e("u", X, """In the bound formula: u is the unit roundoff of the dtype (2^-24 for float32,
       2^-53 for float64), c = 8 a safety factor, N = H·W, E and R the per-entry and sum
       scales, kappa the conditioning; see err/bound.""", aliases=("unit roundoff", "c = 8"),
       see=("err/bound", "kappa")),
    _e("reference self-check", X, """Before trusting the mpmath reference, the cross-check tests
       it at one point per family: a finite-difference derivative (FD), the reference's
       forward-mode derivative and its backward must agree to about half the working digits.""",
       aliases=("self-check", "FD", "finite difference", "finite-difference")),
    _e("seed=0", X, """In the cross-check header, the seed of the random number generator that
       makes the test points (not a backprop seed); the same seed gives the same points.""",
       aliases=("random seed",)),

    # ------------------------------------------------------------------ exact engine
    _e("xp", E, """An array-namespace parameter (like the array API's xp, or numpy passed as an
       argument). A function written as f(x, gamma, beta, grad_out, eps, xp=numpy) is given the
       exact namespace as xp; a function without it is run unmodified, its NumPy calls working on
       the exact arrays through NumPy's override protocols. Either way the check is exact. The
       exact namespace has the functions listed in symbolic_bn.xp.SUPPORTED_FUNCTIONS; a call of
       another one (xp.tanh, np.tanh, say) is reported by name as NOT CHECKED, never passed;
       --numeric cross-checks such code numerically instead.""",
       aliases=("symbolic namespace", "exact symbolic namespace", "namespace", "array namespace",
                "SymbolicNamespace", "SUPPORTED_FUNCTIONS", "symbolic_bn.xp.SUPPORTED_FUNCTIONS"),
       pattern=r"xp\.[a-z_][a-z0-9_]*", see=("cross-check",)),
    _e("decide_zero", E, """The exact zero test: an expression is brought to a normal form over the
       rationals, writing each square root sqrt(u) as an atom σ with σ² = u and each inverse 1/q
       as an atom ι with q·ι = 1; it is zero exactly when the normal form is 0. No floats, no
       sampling, no simplify().""",
       aliases=("normal form", "exact normal form", "zero remainder", "σ", "ι", "sigma", "iota",
                "σ_c", "ι_c", "atom", "atoms", "atom algebra", "differ_exactly", "formal identity",
                "radicand", "radicands"), see=("proved",)),
    _e("SymPy's automatic term collection", E, """The two sides became the same SymPy expression
       after SymPy's automatic (structural) combination of like terms, which is exact; no
       simplify() or numeric test is involved.""", aliases=("term collection", "SymPy")),
    _e("backend", E, """The polynomial arithmetic used by prove (--backend): flint
       (python-flint, fast; installed by the 'fast' extra) or sympy (pure Python, slower). Both
       are exact and give the same verdicts; the default is the fastest installed.""",
       aliases=("--backend", "flint", "python-flint", "sympy backend")),
    _e("ℝ", E, """ℝ: the real numbers; ℚ (or Q): the rationals, i.e. exact fractions. "Over ℚ"
       means with exact rational coefficients.""", aliases=("ℚ", "Q", "over Q", "over ℚ", "over ℝ")),
    _e("Σ", E, """A sum: Σ_p over the N = H·W positions p of one channel, Σ_q likewise.""",
       aliases=("Σ_p", "Σ_q", "sum")),
    _e("batchnorm_channel_first", G, """TorchLean's per-example channel-first BatchNorm: input x of
       shape C×H×W, statistics (mean, variance) per channel over its H·W entries, γ and β per
       channel. It is torch.nn.functional.instance_norm with N = 1, not BatchNorm2d in training
       mode (that is layers.batch_norm).""", aliases=("batchnorm channel first",),
       see=("statistics group",)),
    _e("batch_norm", G, """layers.batch_norm: BatchNorm in training mode over (N, C, *spatial), as
       torch.nn.functional.batch_norm(training=True): statistics per channel over the batch and
       spatial axes, γ and β per channel.""", aliases=("BatchNorm (training)",)),
    _e("instance_norm", G, """layers.instance_norm: InstanceNorm over (N, C, *spatial), as
       torch.nn.functional.instance_norm: statistics per (sample, channel) over the spatial axes.""",
       aliases=("InstanceNorm",)),
    _e("layer_norm", G, """layers.layer_norm: LayerNorm, as torch.nn.functional.layer_norm: statistics
       over the trailing normalized_shape, one per leading index (row); γ and β of shape
       normalized_shape.""", aliases=("LayerNorm", "normalized_shape")),
    _e("group_norm", G, """layers.group_norm: GroupNorm over (N, C, *spatial) with G groups of C/G
       contiguous channels, as torch.nn.functional.group_norm: statistics per (sample, group).""",
       aliases=("GroupNorm",)),
    _e("rms_norm", G, """layers.rms_norm: RMSNorm, y = x / sqrt(mean(x²) + ε) · γ over the trailing
       normalized_shape (no centering, no β), as torch.nn.functional.rms_norm.""", aliases=("RMSNorm",)),
    _e("CN", G, """C·N: the number of entries of x in the channel-first graph (C channels of N = H·W
       entries); the graph's inputs are CN + 2C numbers (x, γ, β), all its slots 12CN + 7C.""",
       see=("12CN + 7C slots",)),
    _e("statistics group", G, """The entries that share one mean and one variance: a channel for
       BatchNorm (over the batch and spatial axes in training mode), one (sample, channel) for
       InstanceNorm, one row for LayerNorm and RMSNorm, one (sample, group of channels) for
       GroupNorm. The domain asks var + ε > 0 in every group.""", aliases=("statistics groups", "group"),
       see=("domain",)),
    _e("exact namespace", E, """The array namespace xp a checked function receives (or, for plain
       NumPy code, the arrays it receives): NumPy-style functions whose entries are exact values
       of the engine -- polynomials over the rationals in the inputs, with square roots,
       inverses, exp and log as atoms. Operations it cannot do exactly (a cast to float32, a
       ufunc without an exact counterpart such as floor) are refused by name.""",
       aliases=("exact engine",), see=("side condition",)),
    _e("centered coordinates", E, """The end-to-end proof writes x_{c,p} = m_c + u_{c,p} with the
       u's of a channel summing to 0: an invertible change of variables that keeps the
       polynomials small, so an identity in m, u is one in x.""",
       aliases=("m_c", "u_c,p", "u_{c,p}")),
    # ------------------------------------------------------------------ other layers, higher orders,
    # frameworks (prove --layer / --order, check --layer / --framework / --double-backward, autodiff)
    _e("layer", G, """The normalization layer a proof or check is about (--layer, the layers of
       symbolic_bn.layers): batchnorm_channel_first (the default, TorchLean's), batch_norm,
       instance_norm, layer_norm, group_norm, rms_norm, each in its own layout (the input shape
       given by --shape, with --groups for group_norm and --normalized-shape for layer_norm and
       rms_norm).""", aliases=("--layer", "layers", "symbolic_bn.layers"),
       see=("statistics group", "batch_norm")),
    _e("x_channel_first", G, """Slot of the batch_norm graph: x with its axes permuted so that
       the channels come first, (N, C, *spatial) → (C, N, *spatial), before the reshape to one row
       per channel; y_channel_first is the output before the permutation back.""",
       aliases=("y_channel_first",), see=("permute",)),
    _e("permute", G, """Node kind: an axis permutation (numpy.transpose, torch.permute): the
       same numbers, axes reordered. Linear; its vjp applies the inverse permutation.""",
       see=("x_channel_first",)),
    _e("gather", G, """Node kind: a linear index-map broadcast, out[p] = v.flat[index[p]] (an entry
       may be read any number of times); broadcastRow, broadcastCol, reshapes and permutations
       are special cases. Its vjp sums the cotangent back into the entries read: scatterAdd.""",
       aliases=("Gather",), see=("scatterAdd",)),
    _e("scatterAdd", G, """Node kind: the transpose of a gather, adding each entry of its input into
       the output entry it was read from (a sum over a broadcast axis is one); appears in the
       backward graphs of the higher-order certificate.""", aliases=("scatter_add", "ScatterAdd"),
       see=("gather",)),
    _e("addEps", G, """Node kind: z ↦ z + ε elementwise (an elemwise with derivative 1); the stage
       var_eps = var + ε, or mean_sq_eps = mean_sq + ε for RMSNorm.""", aliases=("add_const",)),
    _e("scale(c)", G, """Node kind of the higher-order graphs: multiplication by the exact constant
       c (scale(-1) negates, scale(1/N) takes a mean of N terms); zeros is the constant 0 array
       (the derivative of a constant).""", aliases=("scale(-1)", "zeros"), pattern=r"scale\([^()]*\)"),
    _e("x_sq", G, """Slots of the RMSNorm graph: x_sq = x ⊙ x, mean_sq its row mean (rowMean),
       mean_sq_eps = mean_sq + ε, rms = sqrt(mean_sq_eps) (sqrtClamp), inv_rms = 1/rms (inv),
       inv_rms_b broadcast to the rows; normalized = x ⊙ inv_rms_b. No centering and no β.""",
       aliases=("mean_sq", "mean_sq_eps", "rms", "inv_rms", "inv_rms_b"), see=("rms_norm",)),
    _e("torch.nn.functional.*", G, """The PyTorch functions the layers correspond to, and the
       built-in TARGETs of `symbolic-bn autodiff`: torch.nn.functional.batch_norm (called in training
       mode without running statistics), instance_norm, layer_norm, group_norm, rms_norm, with the
       layer's eps (and groups, normalized_shape).""", aliases=("F.batch_norm", "TARGET"),
       pattern=r"(torch\.nn\.functional|f)\.[a-z_]+"),
    _e("order", D, """The derivative order k (--order): 1 is the gradient (the backward, one JVP or
       VJP), 2 second derivatives (Hessian-vector products, the double backward), 3 third
       derivatives. `prove --order k` adds the higher-order obligations of orders 2 … k;
       `autodiff --order k` checks every mode of orders 1 … k (row 0 is the primal).""",
       aliases=("--order", "higher order", "second order", "third order"), see=("mode",)),
    _e("mode", D, """A nesting of forward mode (fwd: a JVP, torch.func.jvp, jax.jvp) and reverse
       mode (rev: a VJP, what loss.backward() does). "A-over-B" is A applied to B(f), the convention
       of JAX and gradgradcheck: fwd-over-rev is a jvp of a vjp (JAX's Hessian-vector product),
       rev-over-rev a double backward, and at order 3 A-over-B-over-C is A(B(C(f))). Every mode of
       order k computes R_k = ⟨g, D^k y[u1, …, uk]⟩ for a cotangent g and directions u1 … uk, so
       all modes of one order must agree with one exact reference.""",
       aliases=("modes", "--modes", "fwd", "rev", "A-over-B", "nesting", "R_k"),
       pattern=r"(fwd|rev)(-over-(fwd|rev))*|r_[0-9k]", see=("order", "API", "JVP", "VJP")),
    _e("API", D, """Which framework interface computed a mode (the api column of `autodiff`):
       torch.func (torch.func.jvp / torch.func.vjp nestings: every mode), torch.autograd
       (torch.autograd.grad with create_graph=True: reverse steps only), torch.autograd.forward_ad
       (dual numbers with one forward level, with autograd.grad for the reverse steps: the modes
       with exactly one fwd), jax (jax.jvp / jax.vjp nestings: every mode).""",
       aliases=("api", "torch.func", "torch.autograd", "torch.autograd.forward_ad", "forward_ad",
                "torch.autograd.grad", "create_graph", "torch.func.jvp", "torch.func.vjp"),
       see=("mode", "framework")),
    _e("framework", D, """PyTorch (torch) or JAX (jax): `check --framework` takes framework-native
       functions (tensors in and out, float64, eps a float), traces them and proves the trace
       exactly; `autodiff --framework` says whose derivatives are checked. Each is an optional
       extra (pip install 'symbolic-bn[torch]' or '[jax]'); the version checked is printed.""",
       aliases=("--framework", "torch", "PyTorch", "JAX", "jax"), see=("trace", "API")),
    _e("trace", E, """The list of primitive operations a framework function performs, recorded at
       the check's shape in float64: torch.fx.experimental.proxy_tensor.make_fx (torch's fused
       kernels such as native_batch_norm_backward lowered to primitive aten ops by torch._decomp)
       or jax.make_jaxpr. The trace, run on the exact engine, is what is proved, and it is also
       run in float64 to confirm that it reproduces the framework. An op the interpreter does not
       run is named (aten.cumsum.default) and the function is NOT CHECKED; trace nodes such as
       %mul_3 name where a float constant was met.""",
       aliases=("traced", "torch trace", "jax trace", "make_fx", "make_jaxpr", "jaxpr", "torch.fx",
                "torch._decomp", "trace node", "aten"),
       pattern=r"aten\.[a-z0-9_.]+|[a-z]{2,}[a-z0-9]*(_[a-z0-9]+)*_[0-9]+", see=("framework",)),
    _e("primal", D, """Row 0 of the autodiff table: ⟨g, y⟩ of f itself against the layer's forward,
       a check that f is the layer at all (with the layer's eps) before its derivatives are
       compared (R_0 in the certificates' statements).""", see=("mode",)),
    _e("u1", D, """The directions of a higher derivative: u1, u2, u3 are independent tangent vectors
       on the inputs p = (x, weight, bias) -- symbolic in prove and autodiff --exact, random in the
       numeric autodiff; u1_x is u1's x part, u1_weight its weight part.""",
       aliases=("u2", "u3", "directions"), pattern=r"u[1-3](_[a-z]+)?", see=("mode", "cotangent")),
    _e("result", D, """In the exact autodiff table, the output of a nesting: y-shaped after forward
       steps only (result[n, c, ...]), otherwise shaped like the inputs p = (x, weight, bias):
       result.x, result.weight, result.bias. A failed row names the entry where the trace and the
       exact reference differ.""", pattern=r"result(\.[a-z]+)?", see=("mode",)),
    _e("ERROR", V, """Status of an autodiff row for which the framework raised (e.g. "not
       implemented", an autograd.Function without a jvp); the message is printed under the table.
       Not a pass (exit status 1), and never a crash of the tool.""", see=("PASS",)),
    _e("NOT CHECKED", V, """Printed when the exact engine cannot run a function: it uses an
       operation without an exact counterpart (np.tanh, xp.tanh, an aten op the trace interpreter
       does not run) or writes exact values into a float buffer (np.zeros(x.shape)); the message
       names the operation and the line. Nothing was proved about that function, the verdict is
       UNDECIDED and the exit status 1. The tool never switches to the numeric cross-check on its
       own: --numeric asks for it.""",
       aliases=("CHECKED", "NOT CHECKED forward", "NOT CHECKED backward", "NOT CHECKED double_backward"),
       see=("exact namespace", "cross-check")),
    _e("unmodified NumPy code", E, """A function without an xp parameter, calling np.sum, np.mean,
       np.var, np.sqrt, reshape, transpose, @, keepdims=True, ...: it receives exact arrays and NumPy
       dispatches its calls to the exact engine (NumPy's override protocols __array_ufunc__ and
       __array_function__), so it is checked exactly without changes. Float constants it uses
       (1./N) are read as the simplest rational within half an ulp and listed under "assumes".""",
       aliases=("NumPy", "plain NumPy", "override protocols", "__array_ufunc__", "__array_function__",
                "NumPy's override protocols"), see=("xp", "exact namespace")),
    _e("check_backward", E, """The Python API behind `symbolic-bn check`: check_backward,
       check_forward and check_double_backward (symbolic_bn.checks.check and
       symbolic_bn.checks.double_backward) take the same functions and return the certificate the
       command prints; error messages start with their name.""",
       aliases=("check_forward", "check_double_backward", "symbolic-bn check")),
    _e("autodiff", X, """`symbolic-bn autodiff`: a framework's own derivatives of a forward f(x,
       weight, bias) checked mode by mode. Numerically (crosscheck_autodiff): at random points,
       against a 50-digit reference of the layer's k-th derivative, under a bound that grows with
       the dtype's unit roundoff, the order and √n; each row PASS, FAIL or ERROR, with max_abs,
       max_rel and err/bound. Exactly (--exact, check_autodiff): each mode traced and proved;
       each row proved, failed (with the framework's own float64 value at the exact
       counterexample) or undecided.""",
       aliases=("crosscheck_autodiff", "check_autodiff", "symbolic-bn autodiff"),
       see=("mode", "API", "err/bound")),
    _e("double backward", D, """The backward of the backward, in PyTorch's shape:
       fn(x, weight, bias, grad_out, ggx, ggweight, ggbias, eps) -> (gx, gweight, ggrad_out), the
       gradient of ⟨dx, ggx⟩ + ⟨dweight, ggweight⟩ + ⟨dbias, ggbias⟩ with respect to (x, weight,
       grad_out). `check --double-backward` proves one exactly against the derivative of Jᵀg
       (channel-first names: ggamma, gggamma, ggbeta).""",
       aliases=("double_backward", "gx", "gweight", "ggrad_out", "ggx", "ggweight", "ggbias", "ggamma",
                "gggamma", "ggbeta", "--double-backward"), see=("order",)),
    _e("double_backward.*", O, """The obligations of `symbolic-bn check --double-backward`:
       double_backward.gx, .g<weight> and .ggrad_out, each output of your double backward equal to
       the derivative of the engine's own Jᵀg contracted with (ggx, ggweight, ggbias), for every
       input of the domain at the shape.""", pattern=r"double_backward\..+", see=("double backward",)),
    _e("higher-order", O, """The group of obligations `prove --order 2` or `--order 3` adds: the
       higher.mode.*, higher.tape.* / higher.closure.*, higher.kind.*, higher.hessian_symmetric.*
       and higher.double_backward_closed_form.* families.""", aliases=("higher.*",), see=("order",)),
    _e("higher.mode.*", O, """Every nesting of fwd and rev up to the order, computed on the graph
       (its backward and JVP graphs applied again), equals R_k = ⟨g, D^k y[u1, …, uk]⟩, the k-th
       derivative of the layer's forward derived independently by the engine's chain rule.""",
       pattern=r"higher\.mode\..+", see=("mode",)),
    _e("higher.closure.*", O, """The tape is closed under differentiation: for the graph H of each
       nesting below the order (its backward graph, its JVP graph, ...), H's own backprop is the
       adjoint of its derivative (.rev) and its own jvp is its derivative (.fwd), for every seed
       and tangent. higher.tape.<mode>: the graph of a nesting computes what the tape's method
       computes one level down.""", aliases=("higher.tape.*",), pattern=r"higher\.(closure|tape)\..+"),
    _e("higher.kind.*", O, """Per node kind (and parameter and shape) of the transformed graphs:
       its JVP and VJP written with node kinds evaluate to the node's own jvp / vjp
       (.jvp_as_nodes, .vjp_as_nodes); kinds new in those graphs (scale, scatterAdd, zeros, ...)
       also get the three local laws .adjoint, .derivative, .transpose.""",
       pattern=r"higher\.kinds?\..+", see=("stage",)),
    _e("higher.hessian_symmetric.*", O, """Hessian symmetry ⟨H[u1], u2⟩ = ⟨u1, H[u2]⟩ for H the
       graph's Hessian of ⟨g, y⟩, computed by the JVP of the backward graph (fwd-over-rev) and by
       the backward of the backward graph (rev-over-rev).""", pattern=r"higher\.hessian_symmetric\..+"),
    _e("higher.double_backward_closed_form.*", O, """The closed-form double backward written from the
       mathematics, (x, weight, g, ggx, ggweight, ggbias) -> (gx, gweight, ggrad_out), equals the
       derivative of the engine's own Jᵀg (.gx, .gweight, .ggrad_out) and the tape's backprop of
       its backward graph (.tape).""", pattern=r"higher\.double_backward_closed_form\..+",
       see=("double backward",)),
)


# ------------------------------------------------------------------------------------------------
# lookup

def _norm(term: str) -> str:
    return " ".join(str(term).split()).casefold()


_INDEX = re.compile(r"(?:_(?:\{[^{}]*\}|[a-zA-Z](?:,[a-z])?)|\[[^\[\]]*\]|\([^()]*\))$")


def _strip_index(term: str) -> str | None:
    """``var_c`` → ``var``, ``x_{c,p}`` → ``x``, ``dx[0, 0, 0]`` → ``dx``, ``J(X)`` → ``J``."""
    stripped = _INDEX.sub("", term)
    return stripped if stripped and stripped != term else None


def _build_index():
    """Two indexes: exact spellings (``Σ`` and ``σ`` are different terms) and case-folded ones
    (the first entry wins where two spellings differ only in case)."""
    exact, folded, clashes = {}, {}, []
    for entry in ENTRIES:
        for name in (entry.term, *entry.aliases):
            key = " ".join(name.split())
            if key in exact and exact[key] is not entry:
                clashes.append(f"{name!r} ({exact[key].term!r} and {entry.term!r})")
            exact.setdefault(key, entry)
    # a lower-case spelling owns its folded form ("x" is the input, "X" the context)
    for key, entry in exact.items():
        if key == key.casefold():
            folded.setdefault(key, entry)
    for key, entry in exact.items():
        folded.setdefault(key.casefold(), entry)
    if clashes:  # a programming error in this file, caught by tests/test_cli.py
        raise AssertionError("glossary: spellings naming two entries: " + "; ".join(clashes))
    return exact, folded


_EXACT, _INDEX_BY_NAME = _build_index()
_PATTERNS = [(re.compile(e.pattern), e) for e in ENTRIES if e.pattern]


def entries() -> tuple[Entry, ...]:
    """Every entry, in glossary order."""
    return ENTRIES


def lookup(term: str) -> Entry | None:
    """The entry explaining ``term`` (case-insensitive; aliases, families and an index such as
    ``_c`` or ``[0, 0]`` are understood), or ``None``."""
    if not isinstance(term, str):
        return None
    key = " ".join(term.split()).strip("\"'`")
    for _ in range(3):  # an index may be nested: std_i, var_eps_c, dx[0, 0, 0]
        if not key:
            return None
        if key in _EXACT:
            return _EXACT[key]
        if key.casefold() in _INDEX_BY_NAME:
            return _INDEX_BY_NAME[key.casefold()]
        for rx, entry in _PATTERNS:
            if rx.fullmatch(key.casefold()):
                return entry
        nxt = _strip_index(key)
        if nxt is None:
            trimmed = key.rstrip(".,:;")
            if trimmed == key:
                return None
            nxt = trimmed
        key = nxt
    return None


def closest(term: str, n: int = 3) -> list[str]:
    """Up to ``n`` known terms closest to ``term`` in spelling (the entries' main spellings)."""
    key = _norm(term)
    names = {}
    for name, entry in _INDEX_BY_NAME.items():
        names.setdefault(name, entry.term)
    matches = difflib.get_close_matches(key, list(names), n=3 * n, cutoff=0.6)
    out = []
    for m in matches:
        if names[m] not in out:
            out.append(names[m])
    return out[:n]


# ------------------------------------------------------------------------------------------------
# rendering

def render(entry: Entry, width: int = 88) -> str:
    """The entry as terminal text: the term (and its aliases), the explanation, related terms."""
    lines = [entry.term + (f"  (also: {', '.join(entry.aliases)})" if entry.aliases else "")]
    lines.append(textwrap.fill(entry.text, width=width, initial_indent="  ", subsequent_indent="  "))
    if entry.see:
        lines.append(f"  See also: {', '.join(entry.see)}.")
    return "\n".join(lines)


def listing(width: int = 88) -> str:
    """Every term with the first sentence of its explanation, by category."""
    lines = []
    for cat in CATEGORIES:
        lines.append(f"{cat}:")
        for e in ENTRIES:
            if e.category == cat:
                lines.append(textwrap.fill(f"{e.term} -- {e.summary}", width=width,
                                           initial_indent="  ", subsequent_indent="      "))
        lines.append("")
    lines.append("symbolic-bn explain TERM prints one entry in full (case-insensitive).")
    return "\n".join(lines)


def full_text(width: int = 88) -> str:
    """The whole glossary as terminal text: every entry in full, by category."""
    lines = []
    for cat in CATEGORIES:
        lines += [f"{cat[0].upper()}{cat[1:]}", "=" * len(cat), ""]
        for e in ENTRIES:
            if e.category == cat:
                lines += [render(e, width), ""]
    lines.append("symbolic-bn explain TERM prints one entry (case-insensitive).")
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    """Plain text for Markdown: backquoted spans kept, ``*`` and ``_`` elsewhere escaped."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside backquotes
        parts[i] = parts[i].replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_")
    return "`".join(parts)


def markdown() -> str:
    """The README's "Glossary" section, generated from the entries."""
    out = ["## Glossary", "",
           "Every term the command line prints, explained once (also `symbolic-bn explain TERM`; "
           "`symbolic-bn explain` lists them).", ""]
    for cat in CATEGORIES:
        out += [f"### {cat[0].upper()}{cat[1:]}", ""]
        for e in ENTRIES:
            if e.category != cat:
                continue
            also = f" (also {', '.join(f'`{a}`' for a in e.aliases)})" if e.aliases else ""
            out.append(f"- **`{e.term}`**{also}: {_md_escape(e.text)}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
