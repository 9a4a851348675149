"""Derivatives of Values by the chain rule through atoms -- the engine's own differentiator.

Both functions work on the polynomial representation: a Value is a polynomial in variables and
atoms, each atom a function of an *earlier* polynomial (its argument), with

    d σ = dz · ι_σ / 2      (σ = sqrt z; needs z > 0: the σ's condition is raised to 'positive')
    d ι = −ι² · dq          (ι = 1/q)
    d e = e · da            (e = exp a)
    d ℓ = ι_a · da          (ℓ = log a)

* :func:`gradient` -- reverse mode: the partial derivatives of a scalar with respect to every
  variable it depends on (adjoints pushed from the latest atom to the earliest).  ``Jᵀg`` of a
  function ``y`` is the gradient of ``L = Σ g_i y_i``: one reverse pass for every input at once.
* :func:`directional` -- forward mode: ``D v [t]`` for a tangent given per variable.

Neither uses a rule of the code under test: they are how the engine derives references.
"""
from __future__ import annotations

from fractions import Fraction

from .value import MULTI, Value

__all__ = ["gradient", "directional", "atom_derivative", "ring_adjoint_terms"]


def atom_derivative(space, ring, atom):
    """d(atom)/d(argument) as a polynomial of ``ring`` (which holds the atom)."""
    g = ring.atom_gen(atom)
    if atom.kind == "sqrt":
        inv = space._inverse_of_sqrt(atom)
        return ring.atom_gen(inv) * space.backend.coeff(Fraction(1, 2))
    if atom.kind == "inv":
        return -(g * g)
    if atom.kind == "exp":
        return g
    # log: 1/a
    a = space.inverse(Value(space, ring, ring.argument(atom)))
    return space.embed(a, ring)


def ring_adjoint_terms(space, ring, p) -> list:
    """The gradient of ``p`` as a list of pairs ``(w, s)`` of polynomials of ``ring``:

        ∂p/∂x = Σ_k w_k · ∂s_k/∂x        for every variable x (atoms held fixed in s_k),

    with ``(None, p)`` first (w = 1) and then, for each atom a that p depends on, its argument
    s = arg(a) weighted by w = (adjoint of a)·a'(arg).  Adjoints are pushed from the latest atom to
    the earliest (reverse mode), but a variable's partial is *not* summed here: the caller maps
    each ∂s/∂x into its own coordinates first.  In centered coordinates ∂z/∂u_p is dense in every
    u even where ∂z/∂x_q is one term, so multiplying w by ∂s/∂x in the caller's coordinates keeps
    the products small."""
    backend = space.backend
    p = ring.lift(p)
    out = [(None, p)]
    adj = {}
    for i in backend.present(p):
        if not ring.is_variable_index(i):
            adj[ring.atom_at[i].id] = backend.derivative(p, i)
    done = set()
    while adj:
        order = {a.id: k for k, a in enumerate(ring.atoms)}
        latest = max(adj, key=lambda aid: order[aid])
        a = adj.pop(latest)
        done.add(latest)
        atom = ring.atoms[order[latest]]
        a = ring.lift(a)
        if backend.is_zero(a):
            continue
        w = ring.lift(a * atom_derivative(space, ring, atom))  # may create ι_σ (a later atom)
        arg = ring.argument(atom)
        has_variable = False
        for j in backend.present(arg):
            if ring.is_variable_index(j):
                has_variable = True
                continue
            dep = ring.atom_at[j]
            term = w * backend.derivative(arg, j)
            if dep.id in done:  # an argument uses only earlier atoms: cannot happen
                raise AssertionError("atom order")
            adj[dep.id] = ring.lift(adj[dep.id]) + term if dep.id in adj else term
        if has_variable:
            out.append((w, arg))
    return out


def _ring_gradient(space, ring, p):
    """{variable name: ∂p/∂variable} for the variables of ``ring`` (atoms eliminated)."""
    backend = space.backend
    acc = {}
    for w, s in ring_adjoint_terms(space, ring, p):
        s = ring.lift(s)
        for j in backend.present(s):
            if not ring.is_variable_index(j):
                continue
            d = backend.derivative(s, j)
            term = d if w is None else ring.lift(w) * d
            name = ring.names[j]
            acc[name] = ring.lift(acc[name]) + term if name in acc else term
    out = {}
    for name, d in acc.items():
        d = ring.lift(d)
        if not backend.is_zero(d):
            out[name] = d
    return out


def gradient(space, v: Value, names=None) -> dict:
    """``{variable name: ∂v/∂variable}`` (Values) for the variables ``v`` depends on (only
    ``names`` when given)."""
    v = space.constant(v)
    if v.ring is None:
        return {}
    parts = v.p.items() if v.ring is MULTI else [(v.ring, v.poly())]
    out: dict = {}
    wanted = None if names is None else set(names)
    for ring, p in parts:
        for name, d in _ring_gradient(space, ring, p).items():
            if wanted is not None and name not in wanted:
                continue
            val = Value(space, ring, d)
            out[name] = space.add(out[name], val) if name in out else val
    return out


def directional(space, v: Value, tangent: dict) -> Value:
    """``D v [t]``: the derivative of ``v`` along ``t`` (``{variable name: number or Value}``;
    missing variables have tangent 0)."""
    v = space.constant(v)
    if v.ring is None:
        return space.zero()
    total = space.zero()
    for name, d in gradient(space, v).items():
        t = tangent.get(name)
        if t is None:
            continue
        total = space.add(total, space.multiply(d, space.constant(t)))
    return total


class Jacobian:
    """Partial derivatives of many Values of one Space with respect to its variables, each atom's
    gradient computed once (forward accumulation: ``∂v/∂x = Σ_g ∂v/∂g · ∂g/∂x`` over the
    generators g of v, with ``∂atom/∂x`` cached per ring)."""

    def __init__(self, space):
        self.space = space
        self._atom_grads: dict = {}

    def of(self, v) -> dict:
        """``{variable name: ∂v/∂variable}`` (Values), zero partials left out."""
        space = self.space
        v = space.constant(v)
        if v.ring is None:
            return {}
        parts = v.p.items() if v.ring is MULTI else [(v.ring, v.poly())]
        out: dict = {}
        for ring, p in parts:
            for name, d in self._poly(ring, p).items():
                val = Value(space, ring, d)
                out[name] = space.add(out[name], val) if name in out else val
        return out

    def _poly(self, ring, p) -> dict:
        backend = self.space.backend
        p = ring.lift(p)
        acc: dict = {}
        for i in backend.present(p):
            d = backend.derivative(p, i)
            if ring.is_variable_index(i):
                name = ring.names[i]
                acc[name] = ring.lift(acc[name]) + d if name in acc else d
            else:
                for name, q in self._atom(ring, ring.atom_at[i]).items():
                    term = ring.lift(d) * ring.lift(q)
                    acc[name] = ring.lift(acc[name]) + term if name in acc else term
        return {n: ring.lift(q) for n, q in acc.items() if not backend.is_zero(ring.lift(q))}

    def _atom(self, ring, atom) -> dict:
        key = (id(ring), atom.id)
        got = self._atom_grads.get(key)
        if got is not None:
            return got
        fprime = atom_derivative(self.space, ring, atom)
        arg = ring.argument(atom)
        out = {n: ring.lift(fprime) * q for n, q in self._poly(ring, arg).items()}
        self._atom_grads[key] = out
        return out
