"""Rings of the engine: polynomials over ℚ in input variables and atoms.

A :class:`Ring` is one polynomial context: the variables of some *blocks* (statistics groups:
a channel, a row, an (n, group) pair, ...), every *shared* variable (γ, β, ε, ... that several
blocks read), and slots for *atoms* -- generators standing for values the ring cannot express as
polynomials:

==========  ===========================  ==================================  ==============
atom        stands for                   relation used by the normal form     side condition
==========  ===========================  ==================================  ==============
``sqrt``    σ = sqrt(z), σ ≥ 0           σ² = z                               z ≥ 0 (z > 0 once
                                                                              1/σ or dσ is used)
``inv``     ι = 1/q                      q·ι = 1                              q ≠ 0
``exp``     e = exp(a), e > 0            none (exp(log a) = a at creation)    none
``log``     ℓ = log(a)                   none (log(exp a) = a at creation)    a > 0
==========  ===========================  ==================================  ==============

An identity between two polynomials that holds *formally* holds at every point where the side
conditions hold, because each atom is then a real number obeying its relation.  Rings are keyed by
a *label*: the frozenset of blocks whose variables they hold (``frozenset()`` is the shared ring).
A polynomial of ring A can be embedded into ring B when A's label is a subset of B's; B then
mirrors A's atoms.  Keeping one small ring per block is what makes the engine's cost grow
linearly with the number of blocks (a polynomial operation costs in proportion to its ring's
number of generators).

Atoms get *slots*: placeholder generators allocated in advance (named ``@0``, ``@1``, ...), so
that creating an atom does not change the ring's polynomial context.  When the slots run out the
ring grows (a new context with twice as many slots); polynomials of the old context are lifted
lazily, by name, when next used.
"""
from __future__ import annotations


__all__ = ["Atom", "Ring", "KINDS"]

KINDS = ("sqrt", "inv", "exp", "log")
_SYMBOL = {"sqrt": "σ", "inv": "ι", "exp": "exp", "log": "log"}
INITIAL_SLOTS = 12


class Atom:
    """A generator with a defining relation (see the module table).

    ``argument`` is the polynomial z, q or a in the atom's *home* ring (the smallest ring holding
    every generator the argument uses); ``condition`` is the side condition in force:
    'nonneg' (z ≥ 0), 'positive' (z > 0 or a > 0), 'nonzero' (q ≠ 0) or None (exp).
    ``inverse`` is the ι atom of 1/σ (for a sqrt atom, once created); ``base`` is, for that ι,
    the σ it inverts.  ``origin`` says where the atom was first met ('file.py:12 (source)').
    """

    __slots__ = ("kind", "id", "home", "argument", "condition", "inverse", "base", "origin",
                 "positive_cache", "display", "lead", "monic")

    def __init__(self, kind, id_, home, argument, condition, origin=""):
        self.kind = kind
        self.id = id_
        self.home = home
        self.argument = argument
        self.condition = condition
        self.inverse = None
        self.base = None
        self.origin = origin
        self.positive_cache = None
        self.display = None
        self.lead = None    # the argument's leading coefficient
        self.monic = None   # the argument divided by it (atoms are looked up by it)

    @property
    def name(self) -> str:
        return f"{_SYMBOL[self.kind]}{self.id}"

    def __repr__(self):
        return f"<atom {self.name} ({self.kind})>"


class Ring:
    """One polynomial context of a :class:`~symbolic_bn.exact.space.Space` (module docstring).

    Generator order (lex): atom slots first, the latest atom highest, then the variables.  So the
    leading term of ``σ² − z`` is ``σ²`` and that of ``ι·g − 1`` is ``ι·g``, and the normal forms
    are polynomial remainders computed by the backend (:mod:`symbolic_bn.exact.normal`).
    Within a ring atoms are added in dependency order (an atom after the atoms of its argument).
    """

    def __init__(self, space, label: frozenset, variable_names: list[str]):
        self.space = space
        self.label = label
        self.backend = space.backend
        self.fast = self.backend.name == "flint"  # contexts checked by the backend itself
        self.variable_names = list(variable_names)
        self.nvars = len(self.variable_names)
        self.atoms: list[Atom] = []          # own and mirrored, in the order they were added
        self.slot_of: dict[int, int] = {}    # atom id -> generator index
        self.atom_at: dict[int, Atom] = {}   # generator index -> atom
        self._arguments: dict[int, object] = {}  # atom id -> its argument as a polynomial here
        self._relations: dict[int, object] = {}  # atom id -> its relation polynomial here
        self.nslots = 0
        self._mappings: dict = {}
        self._build(INITIAL_SLOTS)

    # -- contexts
    def _build(self, nslots):
        slot_names = [f"@{k}" for k in reversed(range(nslots))]
        names = slot_names + self.variable_names
        self.names = names
        self.ctx = self.backend.context(names)
        self.gens = self.backend.gens(self.ctx)
        self.zero = self.backend.zero(self.ctx)
        self.one = self.backend.one(self.ctx)
        self.index = {n: i for i, n in enumerate(names)}
        self.nslots = nslots
        self.var_offset = nslots
        self.atom_at = {self.index[f"@{k}"]: self.atoms[k] for k in range(len(self.atoms))}
        self.slot_of = {a.id: self.index[f"@{k}"] for k, a in enumerate(self.atoms)}

    def lift(self, p):
        """``p`` (of this ring, possibly of an older context before growth) in the current context."""
        if self.backend.context_of(p) is self.ctx:
            return p
        return self.backend.project(p, self.ctx)

    def variable(self, name):
        return self.gens[self.index[name]]

    def var_name(self, i):
        """The variable at generator index ``i``, or None for an atom slot."""
        return self.names[i] if i >= self.var_offset else None

    def is_variable_index(self, i) -> bool:
        return i >= self.var_offset

    # -- atoms
    def _slot(self, atom: Atom) -> int:
        k = len(self.atoms)
        if k >= self.nslots:
            self.atoms.append(atom)
            self._build(2 * self.nslots)
            return self.slot_of[atom.id]
        i = self.index[f"@{k}"]
        self.slot_of[atom.id] = i
        self.atom_at[i] = atom
        self.atoms.append(atom)
        return i

    def add_atom(self, atom: Atom) -> int:
        """Give ``atom`` a generator here (its home ring, or a ring mirroring it); returns the index.
        Atoms its argument uses are mirrored first, so arguments only use earlier generators."""
        i = self.slot_of.get(atom.id)
        if i is not None:
            return i
        if atom.home is not self:
            for dep in atom.home.atoms_in(atom.argument):
                self.add_atom(dep)
        return self._slot(atom)

    def atom_gen(self, atom: Atom):
        return self.gens[self.add_atom(atom)]

    def argument(self, atom: Atom):
        """The atom's argument as a polynomial of this ring."""
        p = self._arguments.get(atom.id)
        if p is None or self.backend.context_of(p) is not self.ctx:
            p = self.embed_from(atom.home, atom.argument) if atom.home is not self else self.lift(atom.argument)
            self._arguments[atom.id] = p
        return p

    def relation(self, atom: Atom):
        """The polynomial that vanishes by the atom's definition, with the atom in its leading
        term: σ² − z, or ι·g − 1 when the inverted argument is a single generator g; None for
        other atoms (an inverse of a polynomial is cleared by multiplication instead)."""
        r = self._relations.get(atom.id)
        if r is not None and self.backend.context_of(r) is self.ctx:
            return r
        g = self.atom_gen(atom)
        r = None
        if atom.kind == "sqrt":
            r = g * g - self.argument(atom)
        elif atom.kind == "inv":
            arg = self.argument(atom)
            if self.single_generator(arg) is not None:
                r = g * arg - 1
        self._relations[atom.id] = r
        return r

    def single_generator(self, q):
        """Index j when q is exactly the generator g_j (coefficient 1), else None."""
        backend = self.backend
        if backend.nterms(q) != 1:
            return None
        (m, c), = backend.terms(q)
        if c != 1 or sum(m) != 1:
            return None
        return next(k for k, e in enumerate(m) if e)

    def atoms_in(self, p) -> list[Atom]:
        """The atoms (of this ring) that occur in ``p``, in the order they were added here."""
        p = self.lift(p)
        if self.backend.is_zero(p) or not self.atoms:
            return []
        degs = self.backend.degrees(p)
        return [a for a in self.atoms if degs[self.slot_of[a.id]]]

    # -- moving polynomials between rings
    def embed_from(self, source: "Ring", p):
        """``p`` of ring ``source`` (whose label is a subset of this ring's) as a polynomial here."""
        if source is self:
            return self.lift(p)
        mapping = self._mapping_from(source)
        return self.backend.project(source.lift(p), self.ctx, mapping=mapping)

    def _mapping_from(self, source: "Ring") -> dict:
        """A complete name mapping from ``source``'s generators to this ring's (unused slots to 0)."""
        key = (id(source), len(source.atoms), source.nslots)
        got = self._mappings.get(key)
        if got is not None and got[0] is self.ctx:
            return got[1]
        mapping = {}
        for name in source.variable_names:
            if name not in self.index:
                raise ValueError(f"variable {name} of {source} is not in {self}")
            mapping[name] = name
        for atom in list(source.atoms):
            mapping[source.names[source.slot_of[atom.id]]] = self.names[self.add_atom(atom)]
        for k in range(len(source.atoms), source.nslots):
            mapping[f"@{k}"] = 0
        self._mappings[key] = (self.ctx, mapping)
        return mapping

    def restrict_to(self, home: "Ring", p):
        """``p`` (which uses only generators ``home`` has) as a polynomial of the smaller ``home``."""
        mapping = {}
        for name in self.variable_names:
            mapping[name] = name if name in home.index else 0
        for atom in self.atoms:
            j = home.slot_of.get(atom.id)
            mapping[self.names[self.slot_of[atom.id]]] = home.names[j] if j is not None else 0
        for k in range(len(self.atoms), self.nslots):
            mapping[f"@{k}"] = 0
        return self.backend.project(self.lift(p), home.ctx, mapping=mapping)

    def label_of(self, p) -> frozenset:
        """The blocks of the generators that occur in ``p`` (atoms count with their home's label)."""
        p = self.lift(p)
        if self.backend.is_zero(p):
            return frozenset()
        degs = self.backend.degrees(p)
        blocks = set()
        block_of = self.space.block_of_name
        for i, d in enumerate(degs):
            if not d:
                continue
            if i >= self.var_offset:
                b = block_of[self.names[i]]
                if b is not None:
                    blocks.add(b)
            else:
                blocks |= self.atom_at[i].home.label
        return frozenset(blocks)

    def __repr__(self):
        return f"<Ring {sorted(map(str, self.label))} {self.nvars} vars, {len(self.atoms)} atoms>"
