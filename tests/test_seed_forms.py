"""The packed fast path (obligations/seed_forms.py) decides exactly what the coefficient-by-
coefficient path decides: same counts when it settles a chunk, and it never settles a chunk of a
wrong graph (it returns None and the ordinary path reports the difference)."""
import numpy as np
import pytest

pytest.importorskip("flint")

from symbolic_bn import batchnorm_channel_first  # noqa: E402
from symbolic_bn.graphs import nodes as N  # noqa: E402
from symbolic_bn.obligations import end_to_end as E  # noqa: E402
from symbolic_bn.obligations import seed_forms as S  # noqa: E402
from symbolic_bn.obligations.prove import _subject  # noqa: E402
from symbolic_bn.obligations.raw_forms import RawForm  # noqa: E402
from symbolic_bn.obligations.setting import ProofSetting  # noqa: E402


def _setting(graph):
    layer, graph = _subject(graph)
    return ProofSetting(layer, graph, backend="flint")


def _chunks(setting):
    for slot in setting.graph.slots:
        for entries in E._chunks(setting, slot):
            ring = E._chunk_ring(setting, slot, entries)
            if ring is not None:
                yield slot, entries, ring


@pytest.mark.parametrize("shape", [(1, 2, 2), (2, 2, 3), (2, 3, 3)])
def test_packed_path_settles_every_chunk_with_the_ordinary_count(shape):
    setting = _setting(batchnorm_channel_first(*shape))
    jac = setting.problem.inputs.jacobian()
    settled = 0
    chunks = list(_chunks(setting))
    for slot, entries, ring in chunks:
        fast = E._compare_chunk_packed(setting, slot, entries, jac, ring, {})
        slow = E._compare_chunk_raw(setting, slot, entries, jac, ring)
        assert slow[0] == [] and slow[1] == []
        assert fast is not None, slot
        assert fast[2] == slow[2], slot
        settled += 1
    assert settled == len(chunks) >= len(setting.graph.slots)


class _MeanMissingInvN(N.RowMean):
    def vjp(self, alg, args, delta):
        m, n = args[0].shape
        out = np.empty((m, n), dtype=object)
        for i in range(m):
            for j in range(n):
                out[i, j] = delta[i]
        return [(self.inputs[0], out)]


def test_packed_path_never_settles_a_wrong_chunk():
    g = batchnorm_channel_first(1, 2, 2)
    g = g.replace("mean", _MeanMissingInvN("mean", ("xMat",), (1,), "nodeMean"))
    setting = _setting(g)
    jac = setting.problem.inputs.jacobian()
    wrong = 0
    for slot, entries, ring in _chunks(setting):
        slow = E._compare_chunk_raw(setting, slot, entries, jac, ring)
        fast = E._compare_chunk_packed(setting, slot, entries, jac, ring, {})
        if slow[0]:
            wrong += 1
            assert fast is None, slot
        else:
            assert fast is not None and fast[2] == slow[2], slot
    assert wrong >= 2  # mean_b, centered, ... see the wrong rule


def test_seed_forms_allow_only_linear_operations():
    setting = _setting(batchnorm_channel_first(1, 2, 2))
    v = setting.values["centered"][0, 0]
    ring = v.ring
    ctx, ti = S.free_generator(ring)
    t = ring.gens[ti]
    a, b = S.SeedForm.seed(ring, t, 0), S.SeedForm.seed(ring, t, 1)
    with pytest.raises(TypeError):
        a * b
    with pytest.raises(TypeError):
        a + setting.space.fraction(1)
    with pytest.raises(TypeError):
        a * RawForm.unit("k", ring)
    # the packing is the coefficient map: (a + 2 b) · v has coefficients v and 2 v
    c = (a + b * 2) * v - b * v
    assert c.p == v.p + t * v.p
    assert (a - a).p.is_zero() and (0 + a).p == a.p


def test_the_packing_generator_is_refused_once_an_atom_takes_it():
    setting = _setting(batchnorm_channel_first(1, 2, 2))
    ring = setting.values["centered"][0, 0].ring
    packing = S.free_generator(ring)
    assert packing is not None and S.still_free(ring, packing)
    space = setting.space
    x = setting.values["centered"][0, 0]
    k = 1
    while len(ring.atoms) < ring.nslots:  # fill every slot with new atoms
        space.inverse(x + space.fraction(k) * setting.values["centered"][0, 1] + space.fraction(1000 + k))
        k += 1
    assert not S.still_free(ring, packing)
    assert S.free_generator(ring) is None or S.free_generator(ring)[0] is not packing[0]
