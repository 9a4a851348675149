"""``prove``: every obligation of a layer's graph, decided exactly, collected in a Certificate.

Order follows TorchLean's ``BatchNormChannelFirst.lean`` (and ``LayerNorm.lean``): the stages
(each node's local laws, :mod:`~symbolic_bn.obligations.stages`), the end-to-end theorem
``backprop = (fderiv eval)†`` with the block structure (:mod:`~symbolic_bn.obligations.end_to_end`),
what the Lean repository does not prove -- the links to the closed forms
(:mod:`~symbolic_bn.obligations.links`) -- and the domain (:mod:`~symbolic_bn.obligations.domain`).

``prove`` takes a :class:`~symbolic_bn.layers.Layer` (its graph is
:func:`~symbolic_bn.graphs.layer_graphs.layer_graph`), the BatchNorm graph of
:func:`symbolic_bn.batchnorm_channel_first`, or a layer's graph with nodes replaced (a mutant):
the domain is then still stated on the graph's *own* statistics, so a replaced node is held to it.
Independent groups of obligations run in parallel processes (``jobs``); each group has its own
deterministic random stream, so a parallel certificate equals a serial one.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import time

import sympy

from .. import layers as L
from ..exact.backends import available_backends, default_backend
from ..exact.budget import BudgetExceeded, check_budget
from ..graphs.batchnorm import BatchNormGraph
from ..graphs.layer_graphs import LayerGraph, layer_graph
from .certificate import Certificate, Obligation
from .domain import domain_obligations
from .end_to_end import end_to_end_obligations, end_to_end_part, split_slots
from . import higher
from .links import link_obligations
from .setting import ProofSetting
from .stages import stage_obligations

__all__ = ["prove", "prove_node", "DEFAULT_BUDGET"]

DEFAULT_BUDGET = 120.0

_TITLES = {"batchnorm_channel_first": "BatchNormChannelFirst", "batch_norm": "BatchNorm (training)",
           "instance_norm": "InstanceNorm", "layer_norm": "LayerNorm", "group_norm": "GroupNorm",
           "rms_norm": "RMSNorm"}
_LEAN_THEOREM = {"batchnorm_channel_first": "backprop_eq_adjoint_fderiv_batchNorm_channel_first_at",
                 "layer_norm": "backprop_eq_adjoint_fderiv_layerNorm_at"}


def _subject(subject):
    """(layer, graph) for a Layer, a BatchNormGraph or a layer's (possibly modified) graph."""
    if isinstance(subject, L.Layer):
        return subject, layer_graph(subject)
    if isinstance(subject, LayerGraph):
        return subject.layer, subject
    if isinstance(subject, BatchNormGraph):
        eps = subject.eps
        if isinstance(eps, sympy.Rational):
            from fractions import Fraction
            eps = Fraction(int(eps.p), int(eps.q))
        return L.batchnorm_channel_first(subject.C, subject.H, subject.W, eps=eps), subject
    raise TypeError("prove() expects a symbolic_bn.layers.Layer (e.g. layers.batch_norm((2, 3, 4))) or a graph "
                    f"from batchnorm_channel_first(C, H, W) / layer_graph(layer), got {type(subject).__name__}")


def _eps_words(layer):
    # TorchLean's channel-first graph names its statistics per channel (var_c, as the stage
    # statements and `symbolic-bn check` do); the other layers per statistics group
    channel_first = layer.name == "batchnorm_channel_first"
    word = ("var_c" if channel_first else "var") if layer.centered else "mean(x²)"
    if layer.symbolic_eps:
        if layer.eps.is_positive:
            return "ε symbolic, ε > 0"
        return f"ε symbolic (any real ε with {word} + ε > 0)"
    if layer.eps > 0:
        return f"ε = {layer.eps}"
    where = "in every channel" if channel_first else "in every group"
    return f"ε = {layer.eps} (not positive: covers only inputs with {word} > {-layer.eps} {where})"


def _run_task(task, layer, graph, backend, budget, seed):
    """One independent group of obligations.  Whatever the graph's nodes do -- raise, divide by
    an exact 0, branch on data -- becomes 'undecided' obligations naming it, never a crash."""
    try:
        return _run_task_unguarded(task, layer, graph, backend, budget, seed)
    except BudgetExceeded:
        raise
    except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001 - a node's f returning None
        # (AttributeError), a wrong shape (IndexError), sys.exit in a node's code: never a crash
        why = f"the graph could not be evaluated exactly: {type(exc).__name__}: {exc}"
        if task[0] == "e2e":
            return {"status": "undecided", "detail": why, "counterexample": None, "entries": 0,
                    "cross": None, "seconds": 0.0, "unmet": []}
        if task[0] == "higher":
            return [Obligation(n, n, "undecided", "not decided", group=higher.GROUP, detail=why)
                    for n in higher.task_names(task, graph)]
        if task[0] == "stage":
            names = tuple(f"stage.{task[1]}.{k}" for k in ("adjoint", "derivative", "transpose"))
        elif task[0] == "links":
            names = ("link.variance_nonnegative", "link.backward_closed_form", "link.jvp_closed_form",
                     "link.forward_spec")
        else:
            names = ("domain.std_nonzero", "domain.eps_positive_suffices", "domain.outside_not_differentiable")
        return [Obligation(n, n, "undecided", "not decided", group=task[0] if task[0] != "links" else "link",
                           detail=why) for n in names]


def _run_task_unguarded(task, layer, graph, backend, budget, seed):
    rng = random.Random(f"{seed}:{task}")
    kind = task[0]
    if kind == "stage":
        node = next(n for n in graph.nodes if n.name == task[1])
        return stage_obligations(graph, node, budget, rng)
    if kind == "e2e":
        setting = ProofSetting(layer, graph, backend=backend)
        return end_to_end_part(setting, task[1], budget, rng)
    if kind == "links":
        return link_obligations(layer, graph, budget, rng, backend=backend)
    if kind == "higher":
        return higher.run_task(task, layer, graph, backend, budget, seed, rng)
    return domain_obligations(layer, graph, budget, rng, backend=backend)


_POOL_STATE = None


def _pool_task(task):
    return _run_task(task, *_POOL_STATE)


def _refuse_empty_domain(layer):
    """A symbolic ε declared ≤ 0 with groups of one element has an empty domain (var ≡ 0)."""
    if layer.symbolic_eps and layer.centered and layer.group_size == 1 and (
            layer.eps.is_nonpositive or layer.eps.is_negative):
        raise ValueError(f"eps = {layer.eps} is declared ≤ 0 and the statistics groups have one element: "
                         f"{layer.domain_text()} is empty (var ≡ 0), so every obligation would hold vacuously")


def prove(subject, *, budget: float = DEFAULT_BUDGET, backend: str | None = None, seed: int = 0,
          jobs: int | None = None, stages: bool = True, end_to_end: bool = True, links: bool = True,
          domain: bool = True, order: int = 1) -> Certificate:
    """Every obligation of ``subject`` (a Layer or a layer's graph; module docstring), decided exactly.

    ``budget``: seconds per group of obligations before it is reported 'undecided' (None or inf:
    no limit); ``backend``: 'flint' or 'sympy' (default: the fastest installed); ``seed``: seed of
    the counterexample searches; ``jobs``: worker processes (default: the number of cores);
    ``order``: 1, 2 or 3 -- order k adds the higher-order obligations up to k
    (:mod:`~symbolic_bn.obligations.higher`, group 'higher-order') to those of the orders below.
    """
    global _POOL_STATE
    order = higher.check_order(order)
    layer, graph = _subject(subject)
    budget = check_budget(budget, "budget")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    backend = backend or default_backend()
    if backend not in available_backends():
        raise ValueError(f"backend must be one of {available_backends()}, got {backend!r}")
    _refuse_empty_domain(layer)
    t0 = time.perf_counter()
    shape = layer.shape_text()
    cert = Certificate(
        subject=f"{_TITLES[layer.name]} {shape}, {_eps_words(layer)}",
        parameters={"layer": layer.name, "shape": list(layer.input_shape), "groups": layer.number_of_groups,
                    "group_size": layer.group_size, "eps": "symbolic ε" if layer.symbolic_eps else str(layer.eps),
                    "eps_range": _eps_words(layer), "backend": backend, "seed": seed, "budget": budget,
                    "context_size": graph.context_size(), "input_size": graph.context_size(0)})
    elements = 1
    for d in layer.input_shape:
        elements *= d
    parallel = jobs > 1 and elements >= 64 and "fork" in multiprocessing.get_all_start_methods()
    tasks = []
    if stages:
        tasks += [("stage", n.name) for n in graph.nodes]
    e2e_parts = split_slots(graph, 2) if end_to_end else []  # the same split serially and in parallel
    tasks += [("e2e", tuple(p)) for p in e2e_parts]
    if links:
        tasks.append(("links",))
    if domain:
        tasks.append(("domain",))
    tasks += higher.higher_tasks(order)
    if parallel:
        _POOL_STATE = (layer, graph, backend, budget, seed)
        try:
            ctx = multiprocessing.get_context("fork")
            heavy = ("e2e", "higher")
            schedule = sorted(range(len(tasks)), key=lambda i: tasks[i][0] not in heavy)  # heaviest first
            with ctx.Pool(min(jobs, len(tasks))) as pool:
                got = pool.map(_pool_task, [tasks[i] for i in schedule], chunksize=1)
            results = [None] * len(tasks)
            for i, r in zip(schedule, got):
                results[i] = r
        finally:
            _POOL_STATE = None
    else:
        results = [_run_task(t, layer, graph, backend, budget, seed) for t in tasks]
    parts = [r for t, r in zip(tasks, results) if t[0] == "e2e"]
    stage_results = [r for t, r in zip(tasks, results) if t[0] == "stage"]
    for obs in stage_results:
        cert.extend(obs)
    if parts:
        stat_slot = "var" if "var" in graph.slots else "mean_sq"
        cert.extend(end_to_end_obligations(layer, graph, parts, lean_name=_LEAN_THEOREM.get(layer.name),
                                           stat_slot=stat_slot))
        cert.parameters["jacobian_entries"] = sum(p["entries"] for p in parts)
    for t, r in zip(tasks, results):
        if t[0] in ("links", "domain", "higher"):
            cert.extend(r)
    cert.parameters["order"] = order
    cert.parameters["jobs"] = jobs if parallel else 1
    cert.seconds = time.perf_counter() - t0
    return cert


def prove_node(graph, name: str, *, budget: float = DEFAULT_BUDGET, seed: int = 0) -> list:
    """The three local obligations (adjoint, derivative, transpose) of the node writing ``name``
    in any graph."""
    nodes = [n for n in graph.nodes if n.name == name]
    if not nodes:
        raise KeyError(f"no node writes slot {name!r}; slots are {graph.slots}")
    return stage_obligations(graph, nodes[0], check_budget(budget, "budget"), random.Random(seed))
