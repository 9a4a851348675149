"""Input arrays of an exact computation: which variables stand for which entries.

:class:`Inputs` declares the variables of a Space for named input arrays and maps derivatives
with respect to those variables back to derivatives with respect to the entries.

* ``plain(name, shape, block_of)`` -- one variable per entry (``x[0, 1, 2]``), in the block
  ``block_of(index)`` (``None``: shared).
* ``centered(name, shape, group_of)`` -- *centered coordinates* per statistics group: for a group
  with entries x_0 … x_{n−1}, the variables are the mean ``m`` and the deviations ``u_0 … u_{n−2}``,
  with ``x_p = m + u_p`` (p < n−1) and ``x_{n−1} = m − Σ_p u_p``.  This is an invertible linear change
  of variables, so an identity in (m, u) is one in x; but the group's mean is then exactly ``m``
  and its deviations exactly ``u`` -- ``Σ_p (x_p − mean)`` is 0 as a polynomial -- which keeps every
  normalization layer's polynomials small.  Derivatives map back by
  ``∂/∂x_q = (∂/∂m − Σ_p ∂/∂u_p)/n + [q < n−1]·∂/∂u_q``.

Display: expressions are shown in the entries' own names (``x[0, 1, 2] − (x[0, 0, 0] + …)/4``)
through the Space's display map, never in m/u.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

from .calculus import ring_adjoint_terms
from .value import _CONTEXT_ERRORS


__all__ = ["Inputs", "entry_name"]


def entry_name(name: str, idx) -> str:
    return f"{name}[{', '.join(str(int(i)) for i in idx)}]" if len(idx) else name


class _Centered:
    def __init__(self, name, shape, members):
        self.name, self.shape, self.members = name, shape, members  # block -> [idx]


def _sum(space, values):
    return space.sum(list(values))


class _MeanDisplay:
    """The group mean in the entries' names, built only when something is displayed."""

    def __init__(self, space, name, idxs):
        self.space, self.name, self.idxs = space, name, idxs

    def __call__(self):
        xs = [self.space.sympy_symbol(entry_name(self.name, i)) for i in self.idxs]
        return sympy.Add(*xs) / len(xs)


class _DeviationDisplay(_MeanDisplay):
    def __init__(self, space, name, idxs, i):
        super().__init__(space, name, idxs)
        self.i = i

    def __call__(self):
        return self.space.sympy_symbol(entry_name(self.name, self.i)) - super().__call__()


class Inputs:
    """Declares input arrays in a Space (module docstring)."""

    def __init__(self, space):
        self.space = space
        self.arrays: dict[str, tuple] = {}        # name -> (kind, shape, extra)
        self._var_of_entry: dict = {}             # (name, idx) -> variable name (plain)
        self._centered: dict[str, _Centered] = {}
        self._values: dict[str, np.ndarray] = {}
        self._owner = None

    # -- declarations (before any computation)
    def plain(self, name, shape, block_of=lambda idx: None, sign=None):
        shape = tuple(shape)
        for idx in np.ndindex(*shape):
            var = entry_name(name, idx)
            self.space.variable(var, block_of(idx), sign=sign)
            self._var_of_entry[(name, idx)] = var
        self.arrays[name] = ("plain", shape, None)

    def scalar(self, name, block=None, sign=None):
        self.space.variable(name, block, sign=sign)
        self._var_of_entry[(name, ())] = name
        self.arrays[name] = ("plain", (), None)

    def centered(self, name, shape, group_of):
        shape = tuple(shape)
        members: dict = {}
        for idx in np.ndindex(*shape):
            members.setdefault(group_of(idx), []).append(idx)
        space = self.space
        for block, idxs in members.items():
            m = f"mean {name}[{block}]"
            space.variable(m, block)
            space.display_map[m] = _MeanDisplay(space, name, idxs)
            for i in idxs[:-1]:
                u = f"dev {entry_name(name, i)}"
                space.variable(u, block)
                space.display_map[u] = _DeviationDisplay(space, name, idxs, i)
        self._centered[name] = _Centered(name, shape, members)
        self.arrays[name] = ("centered", shape, None)

    # -- values
    def array(self, name) -> np.ndarray:
        """The input as an object array of Values (built once; callers copy before handing it
        to user code)."""
        got = self._values.get(name)
        if got is not None:
            return got
        kind, shape, _ = self.arrays[name]
        space = self.space
        out = np.empty(shape, dtype=object)
        if kind == "plain":
            for idx in np.ndindex(*shape):
                out[idx] = space.var(self._var_of_entry[(name, idx)])
        else:
            c = self._centered[name]
            for block, idxs in c.members.items():
                m = space.var(f"mean {name}[{block}]")
                us = [space.var(f"dev {entry_name(name, i)}") for i in idxs[:-1]]
                for i, u in zip(idxs[:-1], us):
                    out[i] = m + u
                out[idxs[-1]] = m - _sum(space, us)
        self._values[name] = out
        return out

    def variables(self, name) -> list[str]:
        kind, shape, _ = self.arrays[name]
        if kind == "plain":
            return [self._var_of_entry[(name, idx)] for idx in np.ndindex(*shape)]
        c = self._centered[name]
        out = []
        for block, idxs in c.members.items():
            out.append(f"mean {name}[{block}]")
            out += [f"dev {entry_name(name, i)}" for i in idxs[:-1]]
        return out

    # -- derivatives
    def gradient(self, L, names=None) -> dict[str, np.ndarray]:
        """``{input name: array of ∂L/∂entry}`` for the named inputs (default: all).

        Reverse mode through the atoms (:func:`~symbolic_bn.exact.calculus.ring_adjoint_terms`),
        but each atom argument's partials are mapped to the *entries* before they are multiplied
        by the atom's adjoint: ∂z/∂u_p of a centered group's variance is dense in every u (x_last
        = m − Σu), while ∂z/∂x_q = 2(x_q − mean)/n is one deviation, so the products stay the size
        of the result (the same polynomials as :meth:`entry_partials` of the variable gradient)."""
        return self.gradient_terms(L, names).sums()

    def gradient_terms(self, L, names=None) -> "GradientTerms":
        """∂L/∂entry for the named inputs as ``Σ_k w_k · e_kq`` (:class:`GradientTerms`): the
        adjoint weights w_k once, and per entry q the small factors e_kq."""
        from .value import MULTI, Value
        space = self.space
        names = list(self.arrays) if names is None else list(names)
        if self._owner is None:
            self._index_variables()
        wanted = set(names)
        out = GradientTerms(space, {name: self.arrays[name][1] for name in names})
        L = space.constant(L)
        if L.ring is None:
            return out
        parts = L.p.items() if L.ring is MULTI else [(L.ring, L.poly())]
        backend = space.backend
        for ring, p in parts:
            for w, s in ring_adjoint_terms(space, ring, p):
                k = len(out.weights)
                out.weights.append(None if w is None else Value(space, ring, ring.lift(w)))
                for (name, idx), q in self._poly_entry_partials(ring, s, wanted).items():
                    q = ring.lift(q)
                    if not backend.is_zero(q):
                        out.factors[name].setdefault(idx, []).append((k, Value(space, ring, q)))
        return out

    def _poly_entry_partials(self, ring, s, wanted) -> dict:
        """``{(input name, index): ∂s/∂entry}`` (polynomials of ``ring``) for the inputs in
        ``wanted``, from the partials of ``s`` with respect to the ring's variables (atoms fixed)."""
        backend = self.space.backend
        s = ring.lift(s)
        owner = self._owner
        out: dict = {}
        groups: dict = {}  # (name, block) -> {variable name: partial}
        for j in backend.present(s):
            if not ring.is_variable_index(j):
                continue
            who = owner.get(ring.names[j])
            if who is None or who[1] not in wanted:
                continue
            kind, name, key = who
            d = backend.derivative(s, j)
            if kind == "plain":
                out[(name, key)] = d
            else:
                groups.setdefault((name, key), {})[ring.names[j]] = d
        for (name, block), partial in groups.items():
            idxs = self._centered[name].members[block]
            n = len(idxs)
            dm = partial.get(f"mean {name}[{block}]")
            dus = [partial.get(f"dev {entry_name(name, i)}") for i in idxs[:-1]]
            common = ring.zero if dm is None else dm
            for du in dus:
                if du is not None:
                    common = common - du
            common = common * backend.coeff(Fraction(1, n))
            for i, du in zip(idxs[:-1], dus):
                out[(name, i)] = common if du is None else common + du
            out[(name, idxs[-1])] = common
        return out

    def entry_partials(self, partial: dict, names=None) -> dict[str, np.ndarray]:
        """Partial derivatives with respect to variables (``{variable name: Value}``, missing ones
        zero) as ``{input name: array of ∂/∂entry}`` through the coordinate maps."""
        space = self.space
        names = list(self.arrays) if names is None else list(names)
        zero = space.zero()
        out = {}
        for name in names:
            kind, shape, _ = self.arrays[name]
            arr = np.empty(shape, dtype=object)
            if kind == "plain":
                for idx in np.ndindex(*shape):
                    arr[idx] = partial.get(self._var_of_entry[(name, idx)], zero)
            else:
                c = self._centered[name]
                for block, idxs in c.members.items():
                    n = len(idxs)
                    dm = partial.get(f"mean {name}[{block}]", zero)
                    dus = [partial.get(f"dev {entry_name(name, i)}", zero) for i in idxs[:-1]]
                    common = (dm - _sum(space, dus)) * Fraction(1, n)
                    for i, du in zip(idxs[:-1], dus):
                        arr[i] = common + du
                    arr[idxs[-1]] = common
            out[name] = arr
        return out

    def sparse_partials(self, partial: dict) -> dict:
        """``{(input name, index): ∂/∂entry}`` for the entries whose coordinates occur in
        ``partial`` (``{variable name: Value}``); entries of untouched groups are left out."""
        space = self.space
        zero = space.zero()
        out = {}
        if self._owner is None:
            self._index_variables()
        touched = {}
        for var, val in partial.items():
            owner = self._owner.get(var)
            if owner is None:
                continue
            kind, name, key = owner
            if kind == "plain":
                out[(name, key)] = val
            else:
                touched.setdefault((name, key), None)
        for name, block in touched:
            idxs = self._centered[name].members[block]
            n = len(idxs)
            dm = partial.get(f"mean {name}[{block}]", zero)
            dus = [partial.get(f"dev {entry_name(name, i)}", zero) for i in idxs[:-1]]
            common = (dm - _sum(space, dus)) * Fraction(1, n)
            for i, du in zip(idxs[:-1], dus):
                out[(name, i)] = common + du
            out[(name, idxs[-1])] = common
        return out

    def jacobian(self) -> "EntryJacobian":
        """A cached Jacobian with respect to the input entries (:class:`EntryJacobian`)."""
        return EntryJacobian(self)

    def _index_variables(self):
        owner = {}
        self._dev_index = {}
        for (name, idx), var in self._var_of_entry.items():
            owner[var] = ("plain", name, idx)
        for name, c in self._centered.items():
            for block, idxs in c.members.items():
                owner[f"mean {name}[{block}]"] = ("centered", name, block)
                for i in idxs[:-1]:
                    owner[f"dev {entry_name(name, i)}"] = ("centered", name, block)
                    self._dev_index[f"dev {entry_name(name, i)}"] = i
        self._owner = owner

    def point_values(self, name, numbers) -> dict:
        """``{variable name: exact number}`` for the input ``name`` at the exact array ``numbers``
        (its entries Fractions/ints)."""
        kind, shape, _ = self.arrays[name]
        arr = np.asarray(numbers, dtype=object).reshape(shape)
        if kind == "plain":
            return {self._var_of_entry[(name, idx)]: Fraction(arr[idx]) for idx in np.ndindex(*shape)}
        out = {}
        c = self._centered[name]
        for block, idxs in c.members.items():
            vals = [Fraction(arr[i]) for i in idxs]
            mean = sum(vals, Fraction(0)) / len(vals)
            out[f"mean {name}[{block}]"] = mean
            for i, v in zip(idxs[:-1], vals[:-1]):
                out[f"dev {entry_name(name, i)}"] = v - mean
        return out

    def members(self, name):
        """For a centered input: ``{block: [indices]}``."""
        return self._centered[name].members


class GradientTerms:
    """A gradient kept factored: ``∂L/∂entry q = Σ_k weights[k] · e_kq`` with ``factors[name][q]``
    the list of pairs (k, e_kq) (weights[k] None: 1).  :meth:`sums` expands it; evaluating at a
    point can put the point into each weight once and into the small factors
    (:meth:`at`), which is the same number as substituting into the expanded sum."""

    def __init__(self, space, shapes: dict):
        self.space = space
        self.shapes = shapes
        self.weights: list = []
        self.factors: dict = {name: {} for name in shapes}

    def _combine(self, space, weights, factors_of, name):
        zero = space.zero()
        arr = np.empty(self.shapes[name], dtype=object)
        arr.fill(zero)
        for idx, pairs in self.factors[name].items():
            terms = [factors_of(e) if weights[k] is None else space.multiply(weights[k], factors_of(e))
                     for k, e in pairs]
            arr[idx] = terms[0] if len(terms) == 1 else space.sum(terms)
        return arr

    def sums(self) -> dict[str, np.ndarray]:
        """``{input name: array of ∂L/∂entry}`` (Values of the gradient's space)."""
        return {name: self._combine(self.space, self.weights, lambda e: e, name) for name in self.shapes}

    def at(self, substitution) -> dict[str, np.ndarray]:
        """The gradient at a point: ``substitution`` (a :class:`~symbolic_bn.exact.convert.Substitution`
        of this space) applied to each weight once and to each factor."""
        target = substitution.target
        weights = [None if w is None else substitution(w) for w in self.weights]
        return {name: self._combine(target, weights, substitution, name) for name in self.shapes}


class EntryJacobian:
    """Partial derivatives of Values with respect to the input *entries* (through the coordinate
    maps), each atom's computed once.  For a value v with generators g:

        ∂v/∂x_q = Σ_g ∂v/∂g · ∂g/∂x_q,

    where a plain variable contributes to its own entry, a group's mean m and deviations u_p
    (x_p = m + u_p, x_last = m − Σu) contribute ∂v/∂u_p to entry p and (∂v/∂m − Σ_p ∂v/∂u_p)/n to
    every entry of the group, and an atom contributes ∂v/∂atom times the atom's own (cached)
    entry gradient.  So a value's gradient costs O(entries it depends on), not O(entries²)."""

    def __init__(self, inputs: "Inputs"):
        self.inputs = inputs
        self.space = inputs.space
        if inputs._owner is None:
            inputs._index_variables()
        self._atoms: dict = {}

    def of(self, v) -> dict:
        """``{(input name, index): ∂v/∂entry}`` (Values); zero entries may be left out."""
        from .value import MULTI, Value
        space = self.space
        v = space.constant(v)
        if v.ring is None:
            return {}
        parts = v.p.items() if v.ring is MULTI else [(v.ring, v.poly())]
        out: dict = {}
        for ring, p in parts:
            for entry, q in self._poly(ring, ring.lift(p)).items():
                val = Value(space, ring, q)
                out[entry] = space.add(out[entry], val) if entry in out else val
        return out

    def _poly(self, ring, p) -> dict:
        backend = self.space.backend
        owner = self.inputs._owner
        acc: dict = {}
        common: dict = {}  # (name, block) -> polynomial added to every entry of the group

        lift = ring.lift

        def add(table, key, q):
            old = table.get(key)
            if old is None:
                table[key] = q
            else:
                try:
                    table[key] = old + q
                except _CONTEXT_ERRORS:  # the ring grew (a new atom) meanwhile
                    table[key] = lift(old) + lift(q)

        for i in backend.present(p):
            d = backend.derivative(p, i)
            if ring.is_variable_index(i):
                who = owner.get(ring.names[i])
                if who is None:
                    continue  # a variable that is not an input entry (ε, an opaque value)
                kind, name, key = who
                if kind == "plain":
                    add(acc, (name, key), d)
                    continue
                members = self.inputs._centered[name].members[key]
                n = len(members)
                if ring.names[i].startswith("mean "):
                    add(common, (name, key), d * backend.coeff(Fraction(1, n)))
                else:
                    idx = self.inputs._dev_index[ring.names[i]]
                    add(acc, (name, idx), d)
                    add(common, (name, key), d * backend.coeff(Fraction(-1, n)))
            else:
                for entry, q in self._atom(ring, ring.atom_at[i]).items():
                    try:
                        prod = d * q
                    except _CONTEXT_ERRORS:
                        prod = lift(d) * lift(q)
                    add(acc, entry, prod)
        for (name, block), q in common.items():
            for idx in self.inputs._centered[name].members[block]:
                add(acc, (name, idx), q)
        out = {}
        for e, q in acc.items():
            q = lift(q)
            if not backend.is_zero(q):
                out[e] = q
        return out

    def _atom(self, ring, atom) -> dict:
        from .calculus import atom_derivative
        key = (id(ring), atom.id)
        got = self._atoms.get(key)
        if got is not None:
            return got
        fprime = atom_derivative(self.space, ring, atom)
        out = {e: ring.lift(fprime) * q for e, q in self._poly(ring, ring.argument(atom)).items()}
        self._atoms[key] = out
        return out
