r"""Cross-check a framework's higher-order autodiff of a layer against exact-order references.

``crosscheck_autodiff(f, layer, framework="torch", order=3, modes="all", dtype="float64",
points=5, seed=0)`` runs every nesting of forward (``fwd``) and reverse (``rev``) mode up to
``order`` on a framework-native ``f(x, weight, bias) -> y`` (``bias`` is ``None`` for rms_norm),
for each framework API that implements the nesting, at ``points`` random points, and compares
each computed directional derivative with a reference evaluated at ``dps ≥ 50`` digits by
truncated Taylor arithmetic (:mod:`symbolic_bn.checks.jets`) on ``layer.forward`` -- the layer's
closed form, never the framework's rule.

What every mode computes
------------------------
Let ``p = (x, weight, bias)`` (``bias`` left out for rms_norm), ``y = f(p)``, let ``u1, u2, u3``
be random directions on ``p`` (jointly on x, weight and bias) and ``g`` a random cotangent of
``y``.  Every mode of order ``k`` computes the one number::

    R_k = ⟨g, D^k y(p)[u1, …, uk]⟩

so that all modes (and APIs) of one order are compared with one reference number per point.
``"A-over-B"`` is A applied to B(f) (JAX's and ``gradgradcheck``'s convention; ``"fwd-over-rev"``
is a jvp of a vjp, JAX's Hessian-vector product) and ``"A-over-B-over-C"`` is A(B(C(f))).  The
steps are applied innermost first to functions of ``p``; a step consumes one vector:

* ``fwd`` (a JVP) takes the next unused direction ``u_i``: ``h ↦ (p ↦ Dh(p)[u_i])``;
* ``rev`` (a VJP) takes a cotangent of ``h``'s output: ``g`` if ``h`` is still y-valued (no rev
  step yet), otherwise the next unused direction ``u_i`` (``h`` is then p-valued):
  ``h ↦ (p ↦ Dh(p)ᵀ c)``;
* the final value is paired (exactly, in mpmath) with ``g`` if it is y-valued, else with the
  one remaining direction.

Directions are taken in the order u1, u2, u3.  Examples (order 2): ``fwd-over-fwd`` =
⟨g, jvp(p ↦ jvp(f, p, u1), p, u2)⟩; ``fwd-over-rev`` = ⟨jvp(p ↦ vjp(f, p)(g), p, u1), u2⟩
(Hessian-vector product ``H u1`` paired with u2); ``rev-over-fwd`` = ⟨vjp(p ↦ jvp(f, p, u1),
p)(g), u2⟩; ``rev-over-rev`` = ⟨vjp(p ↦ vjp(f, p)(g), p)(u1), u2⟩.  Order 3:
``fwd-over-rev-over-rev`` = ⟨jvp(p ↦ vjp(p ↦ vjp(f, p)(g), p)(u1), p, u2), u3⟩, and so on.  Each
equals ``R_k`` by the symmetry of ``D^k y`` (``⟨c, Dh[v]⟩ = ⟨Dhᵀc, v⟩`` at every step).  Order 0
(row ``"primal"``): ``⟨g, y⟩``, a check that ``f`` is the layer at all.

APIs (``row.api``)
------------------
* ``"torch.func"``: ``torch.func.jvp`` / ``torch.func.vjp`` nestings -- every mode;
* ``"torch.autograd"``: ``torch.autograd.grad(..., create_graph=True)`` -- reverse steps only
  (``rev``, ``rev-over-rev``, ``rev-over-rev-over-rev``);
* ``"torch.autograd.forward_ad"``: dual numbers (``make_dual`` / ``unpack_dual``) with one
  forward level, combined with ``autograd.grad`` for the reverse steps -- the modes with exactly
  one ``fwd`` step (nested dual levels are not supported by torch);
* ``"jax"``: ``jax.jvp`` / ``jax.vjp`` nestings -- every mode.  Each nesting is compiled once
  with ``jax.jit`` (the points and vectors are its arguments) and reused for every point: eager
  order-3 nestings cost ~40 s per point, compiled ones milliseconds after 0.3–2 s of compilation.
  ``f`` must therefore be traceable (no Python branching on values; such an ``f`` gives ERROR
  rows).  float64 runs inside ``jax.enable_x64(True)``, float32 inside ``enable_x64(False)``;
  the global setting is restored afterwards.

A framework that raises for a mode gives a row with status ``'ERROR'`` and the framework's
message (e.g. an autograd.Function without a ``jvp``); it never crashes the check.  NaN or inf
from the framework is an infinite error (``'FAIL'``).

Points
------
Point ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` (the same whatever ``order``
and ``modes`` are): x ~ s·N(0, 1) + m with
s ~ U(0.5, 2), m ~ N(0, 1); weight entries ±U(0.5, 1.5) (random signs); bias ~ N(0, 1);
directions and the cotangent ~ N(0, 1) (never all ones: ``sum(BN(x))`` has an exactly zero
gradient, pytorch#63541).  Everything is rounded to ``dtype`` first; the reference is evaluated
on exactly those rounded values (each float is an exact mpf), with the layer's exact ε, so the
difference is the framework's own error (plus the rounding of ε inside ``f``, which is far below
the bound).  The points are well conditioned on purpose (variances of order one, far from ε):
the bound below is calibrated for them and is not a worst-case guarantee for arbitrary inputs.

The bound (dtype- and order-aware)
----------------------------------
The idea of a tolerance table keyed by dtype is JAX's (``jax._src.public_test_util``:
``default_tolerance`` and ``default_gradient_tolerance``, looked up per dtype by
``tolerance(dtype, tol)``); the table here is our own, adds the derivative order, and is relative
to a natural size of the compared number instead of ``|reference|``::

    |framework − R_k| ≤ bound = TOLERANCE[dtype][k] · √n · ‖g‖₂ · ‖D^k y[u1..uk]‖₂

with ``n`` the number of entries of x.  ``‖g‖₂·‖D^k y[…]‖₂`` is the Cauchy–Schwarz bound of
``|R_k|``: it does not vanish when ``R_k`` happens to be small, and it is (up to the √(entries of
p / entries of y) ≈ 1 ratio of Gaussian norms) the same size whichever vector the mode pairs
with last, so one bound serves every mode of an order.  ``√n`` is the probabilistic growth of
rounding errors in the reductions over the statistics (Higham & Mary, SIAM J. Sci. Comput. 41,
2019), as in :mod:`symbolic_bn.checks.crosscheck`.  ``TOLERANCE[dtype][k] = c_k · u`` with the
unit roundoff ``u`` (2^-53, 2^-24); ``c_k`` grows with the order because each differentiation
adds a layer of operations (and of reductions) to the computation::

    ORDER_FACTORS = {0: 16, 1: 32, 2: 64, 3: 128}     # c_k
    TOLERANCE["float64"][k] = c_k · 2^-53,   TOLERANCE["float32"][k] = c_k · 2^-24

Calibration (measured on CPU with torch 2.13.0 and jax 0.10.2, seeds 0 and 1):

* correct implementations -- primitive-op torch and jnp compositions of all six layers at ten
  shapes, every mode and API, float32 and float64 -- reach at most 0.0074 of the bound (their
  error is at most 0.95 · u·√n·‖g‖·‖D³y‖ at order 3, 0.41 at order 2, 0.31 at order 1); torch's
  own functions where they are right, ``jax.nn.standardize`` (both variance algorithms) and jnp
  compositions at the measurement shapes reach at most 0.04: a margin of 25 or more;
* the wrong derivatives found in torch (relative errors 0.24 to 1.8 of ``R_k``) are 740 to 4300
  times the bound in float32 and 4e11 to 2e12 times in float64.  So in float32 a derivative
  wrong by about 1e-3 of ``R_k`` already fails, in float64 about 1e-12.

A worst-case running-error bound (absolute values along every path of the computation, Higham,
*Accuracy and Stability of Numerical Algorithms*, §3.3) was tried first and rejected: on
instance_norm (1, 3, 4, 4) it is 6e2, 4e4 and 6e5 times ``|R_k|`` at orders 1, 2 and 3, which in
float32 would pass torch's third derivative of instance_norm, which is wrong by 36 %.

Result
------
:class:`AutodiffResult` with ``.ok`` (every row PASS), ``.rows`` (:class:`AutodiffRow`: ``mode``,
``order``, ``api``, ``max_abs``, ``max_rel``, ``err_over_bound``, ``status``, ``message``,
``worst``), ``to_dict()`` (JSON-ready) and a plain-text table via ``str()``.  ``row.worst``
(:class:`WorstPoint`) gives, for the point with the largest ``err/bound``, the point index, the
inputs (x, weight, bias, directions, cotangent as the dtype-rounded values), the framework's
value, the reference value (``dps`` digits) and the bound; it is set for every row that was
compared (PASS or FAIL) and ``None`` for ERROR rows.

Errors
------
One-line ``ValueError`` naming the argument for: ``order`` not in {1, 2, 3}; unknown mode names
or a mode above ``order``; an unknown or uninstalled framework (naming the extra to install);
an unsupported ``dtype``; ``points``/``seed``/``dps`` out of range; a ``layer`` without the
protocol's attributes or with a non-numeric ``eps``; ``f`` raising, or returning the wrong
type, shape or dtype at a point.
"""
from __future__ import annotations

import importlib
import math
import numbers
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Callable, Optional, Sequence

import numpy as np
from mpmath.libmp import dps_to_prec, from_float, fzero, mpf_abs, mpf_add, mpf_mul, mpf_pos
from mpmath.libmp import mpf_sub, to_float, to_str

from .jets import taylor

__all__ = [
    "MODES",
    "MODES_BY_ORDER",
    "APIS",
    "TOLERANCE",
    "UNIT_ROUNDOFF",
    "ORDER_FACTORS",
    "AutodiffResult",
    "AutodiffRow",
    "WorstPoint",
    "crosscheck_autodiff",
    "mode_plan",
    "builtin_function",
    "BUILTIN_TARGETS",
]

MAX_ORDER = 3


def _nestings(k: int) -> tuple:
    if k == 1:
        return ("fwd", "rev")
    return tuple(f"{a}-over-{rest}" for a in ("fwd", "rev") for rest in _nestings(k - 1))


MODES_BY_ORDER = {k: _nestings(k) for k in range(1, MAX_ORDER + 1)}
MODES = tuple(m for k in range(1, MAX_ORDER + 1) for m in MODES_BY_ORDER[k])
APIS = {
    "torch": ("torch.func", "torch.autograd", "torch.autograd.forward_ad"),
    "jax": ("jax",),
}
_INSTALL = {
    "torch": "PyTorch is not installed: pip install 'symbolic-bn[torch]' (or torch)",
    "jax": "JAX is not installed: pip install 'symbolic-bn[jax]' (or jax)",
}

# bound = TOLERANCE[dtype][order] · √n · ‖g‖·‖D^k y‖   (module docstring)
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}
ORDER_FACTORS = {0: 16, 1: 32, 2: 64, 3: 128}
TOLERANCE = {dt: {k: c * u for k, c in ORDER_FACTORS.items()} for dt, u in UNIT_ROUNDOFF.items()}


# --------------------------------------------------------------------------------------------
# modes
# --------------------------------------------------------------------------------------------
def mode_plan(mode: str):
    """The steps of ``mode`` innermost first, the vector each consumes, and the final pairing.

    Returns ``(steps, vectors, final)``: ``steps`` a tuple of ``'fwd'``/``'rev'``; ``vectors[i]``
    ``'g'`` or ``'u1'``/``'u2'``/``'u3'``; ``final`` the vector the result is paired with.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
    steps = tuple(reversed(mode.split("-over-")))
    directions = [f"u{i + 1}" for i in range(len(steps))]
    vectors, y_valued = [], True
    for step in steps:
        if step == "fwd":
            vectors.append(directions.pop(0))
        else:
            vectors.append("g" if y_valued else directions.pop(0))
            y_valued = False
    final = "g" if y_valued else directions.pop(0)
    assert not directions
    return steps, tuple(vectors), final


def _api_runs(api: str, steps: Sequence[str]) -> bool:
    if api in ("torch.func", "jax"):
        return True
    if api == "torch.autograd":
        return all(s == "rev" for s in steps)
    if api == "torch.autograd.forward_ad":
        return sum(s == "fwd" for s in steps) == 1
    raise AssertionError(api)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass
class WorstPoint:
    """The point with the largest err/bound of a row."""

    point: int
    inputs: dict
    framework_value: float
    reference_value: str
    abs_error: float
    bound: float

    def to_dict(self) -> dict:
        return {"point": self.point, "inputs": self.inputs,
                "framework_value": _json_float(self.framework_value),
                "reference_value": self.reference_value,
                "abs_error": _json_float(self.abs_error), "bound": _json_float(self.bound)}

    def __repr__(self):
        return (f"WorstPoint(point={self.point}, framework_value={self.framework_value!r}, "
                f"reference_value={self.reference_value[:24]}..., bound={self.bound:.3g})")


@dataclass
class AutodiffRow:
    mode: str
    order: int
    api: str
    status: str  # 'PASS' | 'FAIL' | 'ERROR'
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    err_over_bound: Optional[float] = None
    message: str = ""
    worst: Optional[WorstPoint] = None

    def to_dict(self) -> dict:
        return {"mode": self.mode, "order": self.order, "api": self.api, "status": self.status,
                "max_abs": _json_float(self.max_abs), "max_rel": _json_float(self.max_rel),
                "err_over_bound": _json_float(self.err_over_bound), "message": self.message,
                "worst": None if self.worst is None else self.worst.to_dict()}


@dataclass
class AutodiffResult:
    framework: str
    framework_version: str
    function: str
    layer: str
    input_shape: tuple
    dtype: str
    order: int
    points: int
    seed: int
    dps: int
    eps: str
    rows: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status == "PASS" for r in self.rows)

    def failures(self) -> list:
        return [r for r in self.rows if r.status != "PASS"]

    def row(self, mode: str, api: str) -> AutodiffRow:
        for r in self.rows:
            if r.mode == mode and r.api == api:
                return r
        raise KeyError((mode, api))

    def to_dict(self) -> dict:
        return {"framework": self.framework, "framework_version": self.framework_version,
                "function": self.function, "layer": self.layer,
                "input_shape": list(self.input_shape), "dtype": self.dtype, "order": self.order,
                "points": self.points, "seed": self.seed, "dps": self.dps, "eps": self.eps,
                "ok": self.ok,
                "tolerance": {str(k): v for k, v in TOLERANCE[self.dtype].items()},
                "rows": [r.to_dict() for r in self.rows]}

    def __str__(self):
        head = (f"crosscheck_autodiff: {self.function} ({self.framework} "
                f"{self.framework_version}) vs {self.layer}{tuple(self.input_shape)}, "
                f"eps={self.eps}, {self.dtype}, {self.points} point(s), seed {self.seed}, "
                f"reference at {self.dps} digits")
        lines = [head, f"{'order':<5} {'mode':<22} {'api':<26} {'max_abs':>9} {'max_rel':>9} "
                       f"{'err/bound':>9}  status"]
        for r in self.rows:
            lines.append(f"{r.order:<5} {r.mode:<22} {r.api:<26} {_fmt(r.max_abs):>9} "
                         f"{_fmt(r.max_rel):>9} {_fmt(r.err_over_bound):>9}  {r.status}")
        bad = self.failures()
        for r in bad:
            if r.status == "ERROR":
                lines.append(f"ERROR {r.mode} [{r.api}]: {r.message}")
            elif r.worst is not None:
                w = r.worst
                lines.append(f"FAIL {r.mode} [{r.api}]: point {w.point}: framework "
                             f"{w.framework_value!r}, reference {w.reference_value[:20]}, "
                             f"|error| {w.abs_error:.3g} > bound {w.bound:.3g}")
        lines.append(f"{'PASS' if self.ok else 'FAIL'}: {len(self.rows) - len(bad)} of "
                     f"{len(self.rows)} rows pass")
        return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.2e}"


def _json_float(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else str(v)


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _check_order(order) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not (
            1 <= order <= MAX_ORDER):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    return int(order)


def _check_modes(modes, order: int) -> tuple:
    if isinstance(modes, str):
        if modes == "all":
            return tuple(m for k in range(1, order + 1) for m in MODES_BY_ORDER[k])
        modes = (modes,)
    try:
        modes = tuple(modes)
    except TypeError:
        raise ValueError(f"modes must be 'all' or a sequence of mode names, got {modes!r}") from None
    if not modes:
        raise ValueError("modes is empty")
    for m in modes:
        if not isinstance(m, str) or m not in MODES:
            raise ValueError(f"modes: unknown mode {m!r}; modes are 'all' or {', '.join(MODES)}")
        k = m.count("-over-") + 1
        if k > order:
            raise ValueError(f"modes: {m!r} is of order {k} but order={order}")
    return tuple(dict.fromkeys(modes))


def _check_dtype(dtype) -> str:
    """'float32' / 'float64' from a name, a NumPy dtype or scalar type, or a torch dtype."""
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = str(dtype).replace("torch.", "")  # torch.float64 prints as 'torch.float64'
    name = name.replace("torch.", "")
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


_LAYER_ATTRIBUTES = ("name", "input_shape", "weight_shape", "bias_shape", "eps", "forward")


def _check_layer(layer):
    missing = [a for a in _LAYER_ATTRIBUTES if not hasattr(layer, a)]
    if missing:
        raise ValueError(f"layer lacks the attribute(s) {', '.join(missing)} of the layer "
                         "protocol (name, input_shape, weight_shape, bias_shape, eps, forward)")
    eps = layer.eps
    # rationals (Fraction, sympy.Rational, Decimal, ints) and binary floats (float, mpf,
    # sympy.Float): the numbers the reference can hold exactly or to dps digits
    numeric = (isinstance(eps, (int, float, Fraction, Decimal, numbers.Rational, np.floating,
                                np.integer)) or hasattr(eps, "_mpf_")) and not isinstance(eps, bool)
    if not numeric:
        raise ValueError(f"layer.eps must be a number (a rational or a float) for "
                         f"crosscheck_autodiff, since f implements the layer with one value of "
                         f"eps; got {eps!r} (build the layer with eps=...)")
    if isinstance(eps, (float, np.floating)) and not math.isfinite(float(eps)):
        raise ValueError(f"layer.eps must be finite, got {eps!r}")
    if not callable(layer.forward):
        raise ValueError("layer.forward must be callable")
    shapes = {}
    for a in ("input_shape", "weight_shape", "bias_shape"):
        v = getattr(layer, a)
        if v is None and a == "bias_shape":
            shapes[a] = None
            continue
        try:
            shapes[a] = tuple(int(s) for s in v)
        except TypeError:
            raise ValueError(f"layer.{a} must be a tuple of sizes, got {v!r}") from None
    return shapes


def _import_framework(framework: str):
    if framework not in APIS:
        raise ValueError(f"framework must be one of {', '.join(APIS)}, got {framework!r}")
    try:
        return importlib.import_module(framework)
    except ImportError:
        raise ValueError(f"framework={framework!r}: {_INSTALL[framework]}") from None


# --------------------------------------------------------------------------------------------
# points
# --------------------------------------------------------------------------------------------
@dataclass
class _Point:
    primals: tuple          # numpy arrays in dtype (x, weight[, bias])
    directions: list        # [u1, u2, u3], each a tuple like primals
    cotangent: np.ndarray   # g, y-shaped

    def vector(self, key):
        return self.cotangent if key == "g" else self.directions[int(key[1:]) - 1]

    def inputs(self, names) -> dict:
        out = {n: p.tolist() for n, p in zip(names, self.primals)}
        for i, d in enumerate(self.directions):
            out[f"u{i + 1}"] = {n: p.tolist() for n, p in zip(names, d)}
        out["g"] = self.cotangent.tolist()
        return out


def _make_point(shapes, order: int, dtype: str, seed: int, index: int) -> _Point:
    rng = np.random.default_rng([seed, index])
    dt = np.dtype(dtype)
    xs = shapes["input_shape"]
    x = rng.normal(size=xs) * rng.uniform(0.5, 2.0) + rng.normal()
    ws = shapes["weight_shape"]
    w = rng.uniform(0.5, 1.5, size=ws) * rng.choice([-1.0, 1.0], size=ws)
    primals = [x, w]
    if shapes["bias_shape"] is not None:
        primals.append(rng.normal(size=shapes["bias_shape"]))
    primals = tuple(np.asarray(p, dtype=dt) for p in primals)
    # always MAX_ORDER directions, so that a point does not depend on ``order``: the order-2
    # rows of an order=3 run are those of an order=2 run
    directions = [tuple(np.asarray(rng.normal(size=p.shape), dtype=dt) for p in primals)
                  for _ in range(MAX_ORDER)]
    cotangent = np.asarray(rng.normal(size=xs), dtype=dt)
    return _Point(primals, directions[:order], cotangent)


# --------------------------------------------------------------------------------------------
# exact arithmetic on float arrays
# --------------------------------------------------------------------------------------------
def _flat_floats(arrays) -> list:
    if isinstance(arrays, np.ndarray):
        arrays = (arrays,)
    return [float(v) for a in arrays for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def _pair_floats(values, weights, prec):
    """Σ values_i · weights_i exactly (floats are exact binary values), rounded to ``prec``."""
    acc = fzero
    for v, w in zip(values, weights):
        if v and w:
            acc = mpf_add(acc, mpf_mul(from_float(v), from_float(w)))
    return mpf_pos(acc, prec, "n")


def _pair_tuples(tuples, weights, prec):
    acc = fzero
    for t, w in zip(tuples, weights):
        if t[1] and w:
            acc = mpf_add(acc, mpf_mul(t, from_float(w)))
    return mpf_pos(acc, prec, "n")


def _norm(values) -> float:
    return math.sqrt(math.fsum(v * v for v in values))


@dataclass
class _Reference:
    value: dict   # order -> mpf tuple  R_k
    scale: dict   # order -> float      ‖g‖·‖D^k y‖


def _reference(layer, point: _Point, order: int, dps: int, index: int) -> _Reference:
    has_bias = len(point.primals) == 3
    eps = layer.eps

    def forward(*args):
        xp = args[-1]
        x, w = args[0], args[1]
        b = args[2] if has_bias else None
        return layer.forward(x, w, b, eps, xp)

    try:
        res = taylor(forward, list(point.primals), [list(d) for d in point.directions], dps)
    except Exception as exc:  # noqa: BLE001 - a reference that cannot be evaluated is bad input
        raise ValueError(f"layer.forward cannot be evaluated on jets at point {index} "
                         f"({type(exc).__name__}: {_first_line(exc)})") from None
    if res.shape != tuple(point.cotangent.shape):
        raise ValueError(f"layer.forward returned shape {res.shape}, expected the input shape "
                         f"{tuple(point.cotangent.shape)}")
    prec = dps_to_prec(dps)
    g = _flat_floats(point.cotangent)
    g_norm = _norm(g)
    value, scale = {}, {}
    for k in range(order + 1):
        coeffs = list(res.coefficient_tuples(tuple(range(1, k + 1))).reshape(-1))
        value[k] = _pair_tuples(coeffs, g, prec)
        scale[k] = g_norm * _norm([to_float(t) for t in coeffs])
    return _Reference(value, scale)


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


# --------------------------------------------------------------------------------------------
# framework back ends
# --------------------------------------------------------------------------------------------
class _TorchBackend:
    name = "torch"

    def __init__(self, torch_module, dtype: str, has_bias: bool):
        self.torch = torch_module
        self.dtype = getattr(torch_module, dtype)
        self.has_bias = has_bias
        self.version = str(torch_module.__version__)

    def apis(self):
        return APIS["torch"]

    def tensor(self, a):
        return self.torch.tensor(np.asarray(a), dtype=self.dtype)

    def call(self, f, p):
        return f(p[0], p[1], p[2] if self.has_bias else None)

    def check_output(self, y, shape, dtype_name):
        if not isinstance(y, self.torch.Tensor):
            raise ValueError(f"f must return a torch.Tensor, got {type(y).__name__}")
        if tuple(y.shape) != shape:
            raise ValueError(f"f returned shape {tuple(y.shape)}, expected {shape} (the layer's "
                             "input shape)")
        if y.dtype != self.dtype:
            raise ValueError(f"f returned dtype {y.dtype}, expected torch.{dtype_name}")

    @staticmethod
    def _as_tuple(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,)

    def run(self, api, f, steps, vectors, primals):
        """The final value of the nesting, as a list of float64 numpy arrays."""
        if api == "torch.func":
            out = self._run_func(f, steps, vectors, primals)
        elif api == "torch.autograd":
            out = self._run_autograd(f, steps, vectors, primals)
        else:
            out = self._run_forward_ad(f, steps, vectors, primals)
        return [np.asarray(t.detach().to(self.torch.float64).cpu().numpy()) for t in
                self._as_tuple(out)]

    def _run_func(self, f, steps, vectors, primals):
        from torch.func import jvp, vjp

        def h0(*p):
            return self.call(f, p)

        h = h0
        for step, vec in zip(steps, vectors):
            if step == "fwd":
                h = (lambda inner, v: (lambda *p: jvp(inner, p, v)[1]))(h, tuple(vec))
            else:
                h = (lambda inner, c: (lambda *p: vjp(inner, *p)[1](c)))(h, vec)
        return h(*primals)

    def _grad_step(self, outputs, leaves, cotangents):
        torch = self.torch
        pairs = [(o, c) for o, c in zip(outputs, cotangents)
                 if o is not None and o.requires_grad]
        if not pairs:
            return [torch.zeros_like(leaf) for leaf in leaves]
        grads = torch.autograd.grad([o for o, _ in pairs], leaves, [c for _, c in pairs],
                                    create_graph=True, allow_unused=True)
        return [torch.zeros_like(leaf) if gr is None else gr for gr, leaf in zip(grads, leaves)]

    def _leaves(self, primals):
        return [p.detach().clone().requires_grad_(True) for p in primals]

    def _run_autograd(self, f, steps, vectors, primals):
        leaves = self._leaves(primals)
        out = [self.call(f, leaves)]
        for step, vec in zip(steps, vectors):
            assert step == "rev"
            out = self._grad_step(out, leaves, self._as_tuple(vec))
        return out

    def _run_forward_ad(self, f, steps, vectors, primals):
        import torch.autograd.forward_ad as fwad
        torch = self.torch
        leaves = self._leaves(primals)
        tangent = next(tuple(v) for s, v in zip(steps, vectors) if s == "fwd")
        with fwad.dual_level():
            duals = [fwad.make_dual(leaf, t) for leaf, t in zip(leaves, tangent)]
            out = [self.call(f, duals)]
            for step, vec in zip(steps, vectors):
                if step == "fwd":
                    tangents = [fwad.unpack_dual(o).tangent for o in out]
                    out = [torch.zeros_like(o) if t is None else t for o, t in zip(out, tangents)]
                else:
                    out = self._grad_step(out, leaves, self._as_tuple(vec))
            return [fwad.unpack_dual(o).primal.detach().clone() for o in out]


class _JaxBackend:
    name = "jax"

    def __init__(self, jax_module, dtype: str, has_bias: bool):
        self.jax = jax_module
        import jax.numpy as jnp
        self.jnp = jnp
        self.dtype_name = dtype
        self.has_bias = has_bias
        self.version = str(jax_module.__version__)
        self._compiled = {}

    def apis(self):
        return APIS["jax"]

    def context(self):
        return self.jax.enable_x64(self.dtype_name == "float64")

    def tensor(self, a):
        return self.jnp.asarray(np.asarray(a), dtype=self.dtype_name)

    def call(self, f, p):
        return f(p[0], p[1], p[2] if self.has_bias else None)

    def check_output(self, y, shape, dtype_name):
        if not isinstance(y, self.jax.Array):
            raise ValueError(f"f must return a jax.Array, got {type(y).__name__}")
        if tuple(y.shape) != shape:
            raise ValueError(f"f returned shape {tuple(y.shape)}, expected {shape} (the layer's "
                             "input shape)")
        if str(y.dtype) != dtype_name:
            raise ValueError(f"f returned dtype {y.dtype}, expected {dtype_name}")

    def run(self, api, f, steps, vectors, primals):
        """The nesting, compiled once per (f, steps) with ``jax.jit`` and reused for every point
        (eager nesting of order 3 costs ~40 s per point; the compiled one milliseconds)."""
        jax = self.jax
        key = (id(f), tuple(steps))
        compiled = self._compiled.get(key)
        if compiled is None:
            def nested(p, vecs):
                def h(*q):
                    return self.call(f, q)
                for step, vec in zip(steps, vecs):
                    if step == "fwd":
                        h = (lambda inner, v: (lambda *q: jax.jvp(inner, q, v)[1]))(h, tuple(vec))
                    else:
                        h = (lambda inner, c: (lambda *q: jax.vjp(inner, *q)[1](c)))(h, vec)
                return h(*p)
            compiled = self._compiled[key] = jax.jit(nested)
        out = compiled(tuple(primals), list(vectors))
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        return [np.asarray(o, dtype=np.float64) for o in out]


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------------------------
def crosscheck_autodiff(f: Callable, layer, framework: str = "torch", order: int = 3,
                        modes="all", dtype="float64", points: int = 5, seed: int = 0, *,
                        dps: int = 50) -> AutodiffResult:
    """Compare a framework's nested fwd/rev derivatives of ``f`` with exact-order references
    (module docstring: conventions, APIs, points, bound, errors)."""
    order = _check_order(order)
    mode_list = _check_modes(modes, order)
    dtype = _check_dtype(dtype)
    points = _check_int(points, "points", 1)
    seed = _check_int(seed, "seed", 0)
    dps = _check_int(dps, "dps", 50)
    if not callable(f):
        raise ValueError(f"f must be callable, got {type(f).__name__}")
    shapes = _check_layer(layer)
    module = _import_framework(framework)
    has_bias = shapes["bias_shape"] is not None
    backend = (_TorchBackend if framework == "torch" else _JaxBackend)(module, dtype, has_bias)
    context = backend.context() if hasattr(backend, "context") else _NullContext()
    names = ("x", "weight", "bias")[: 3 if has_bias else 2]
    prec = dps_to_prec(dps)
    n = int(np.prod(shapes["input_shape"], dtype=np.int64))
    growth = math.sqrt(n)
    tol = TOLERANCE[dtype]

    # rows in a fixed order: primal, then each order's modes, each with the APIs that run it
    specs = [("primal", 0, framework, ((), (), "g"))]
    for m in mode_list:
        plan = mode_plan(m)
        for api in backend.apis():
            if _api_runs(api, plan[0]):
                specs.append((m, len(plan[0]), api, plan))
    stats = {(m, api): {"errors": [], "error": None} for m, _, api, _ in specs}

    with context:
        for i in range(points):
            point = _make_point(shapes, order, dtype, seed, i)
            ref = _reference(layer, point, order, dps, i)
            native = {
                "p": tuple(backend.tensor(p) for p in point.primals),
                "g": backend.tensor(point.cotangent),
            }
            for j, d in enumerate(point.directions):
                native[f"u{j + 1}"] = tuple(backend.tensor(a) for a in d)
            try:
                y = backend.call(f, native["p"])
            except Exception as exc:  # noqa: BLE001 - f itself is broken: bad input
                raise ValueError(f"f raised at point {i}: {type(exc).__name__}: "
                                 f"{_first_line(exc)}") from None
            backend.check_output(y, shapes["input_shape"], dtype)
            for mode, k, api, (steps, vecs, final) in specs:
                entry = stats[(mode, api)]
                if entry["error"] is not None:
                    continue
                try:
                    if mode == "primal":
                        values = [np.asarray(_to_numpy(y), dtype=np.float64)]
                    else:
                        values = backend.run(api, f, steps, [native[v] for v in vecs],
                                             native["p"])
                except Exception as exc:  # noqa: BLE001 - reported as an ERROR row
                    entry["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
                    continue
                weights = _flat_floats(point.vector(final))
                flat = _flat_floats(values)
                if len(flat) != len(weights):
                    entry["error"] = (f"the {mode} result has {len(flat)} entries, expected "
                                      f"{len(weights)}")
                    continue
                bound = tol[k] * growth * ref.scale[k]
                entry["errors"].append(_compare(flat, weights, ref.value[k], bound, prec, i,
                                                point, names, dps))

    rows = []
    for mode, k, api, _ in specs:
        entry = stats[(mode, api)]
        if entry["error"] is not None:
            rows.append(AutodiffRow(mode, k, api, "ERROR", message=entry["error"]))
            continue
        comps = entry["errors"]
        worst = max(comps, key=lambda c: c["ratio"])
        status = "PASS" if all(c["ratio"] <= 1.0 for c in comps) else "FAIL"
        rows.append(AutodiffRow(
            mode, k, api, status,
            max_abs=max(c["abs"] for c in comps), max_rel=max(c["rel"] for c in comps),
            err_over_bound=worst["ratio"], worst=worst["worst"]))
    return AutodiffResult(
        framework=framework, framework_version=backend.version,
        function=getattr(f, "__qualname__", None) or repr(f), layer=str(layer.name),
        input_shape=shapes["input_shape"], dtype=dtype, order=order, points=points, seed=seed,
        dps=dps, eps=str(layer.eps), rows=rows)


def _to_numpy(y):
    if hasattr(y, "detach"):
        return y.detach().cpu().numpy()
    return np.asarray(y)


def _compare(flat, weights, reference, bound, prec, index, point, names, dps) -> dict:
    finite = all(math.isfinite(v) for v in flat)
    ref_float = to_float(reference)
    if finite:
        value = _pair_floats(flat, weights, prec)
        err = to_float(mpf_abs(mpf_sub(value, reference, prec, "n")))
        got = to_float(value)
    else:
        err, got = math.inf, math.nan
    rel = err / abs(ref_float) if ref_float else (0.0 if err == 0 else math.inf)
    if err == 0:
        ratio = 0.0
    elif bound > 0:
        ratio = err / bound
    else:
        ratio = math.inf
    worst = WorstPoint(point=index, inputs=point.inputs(names), framework_value=got,
                       reference_value=to_str(reference, dps), abs_error=err, bound=bound)
    return {"abs": err, "rel": rel, "ratio": ratio, "worst": worst}


# --------------------------------------------------------------------------------------------
# built-in framework functions
# --------------------------------------------------------------------------------------------
BUILTIN_TARGETS = (
    "torch.nn.functional.batch_norm",
    "torch.nn.functional.instance_norm",
    "torch.nn.functional.layer_norm",
    "torch.nn.functional.group_norm",
    "torch.nn.functional.rms_norm",
)


def builtin_function(target: str, layer) -> Callable:
    """``f(x, weight, bias)`` calling a ``torch.nn.functional`` normalization with the layer's ε
    (and ``groups`` / ``normalized_shape``), for ``crosscheck_autodiff``.

    ``target`` is one of :data:`BUILTIN_TARGETS` (the short names ``batch_norm``, … work too).
    ``F.batch_norm`` runs in training mode without running statistics; for a
    ``batchnorm_channel_first`` layer, ``instance_norm`` is applied to ``x[None]``.
    """
    short = target.rsplit(".", 1)[-1]
    if f"torch.nn.functional.{short}" not in BUILTIN_TARGETS:
        raise ValueError(f"target must be one of {', '.join(BUILTIN_TARGETS)}, got {target!r}")
    _check_layer(layer)
    module = _import_framework("torch")
    F = module.nn.functional
    eps = float(layer.eps)
    name = layer.name
    if short == "batch_norm":
        def f(x, weight, bias):
            return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    elif short == "instance_norm":
        if name == "batchnorm_channel_first":
            def f(x, weight, bias):
                return F.instance_norm(x[None], weight=weight, bias=bias, eps=eps)[0]
        else:
            def f(x, weight, bias):
                return F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    elif short == "layer_norm":
        ns = tuple(getattr(layer, "normalized_shape", None) or layer.weight_shape)

        def f(x, weight, bias):
            return F.layer_norm(x, ns, weight, bias, eps)
    elif short == "group_norm":
        groups = getattr(layer, "groups", None)
        if groups is None:
            raise ValueError("layer.groups is needed for torch.nn.functional.group_norm")

        def f(x, weight, bias):
            return F.group_norm(x, int(groups), weight, bias, eps)
    else:
        ns = tuple(getattr(layer, "normalized_shape", None) or layer.weight_shape)

        def f(x, weight, bias):
            return F.rms_norm(x, ns, weight, eps)
    f.__qualname__ = f.__name__ = f"torch.nn.functional.{short}"
    return f
