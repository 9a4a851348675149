"""The flint backend's projection between contexts (symbolic_bn.exact.backends): small
polynomials are re-indexed in Python (python-flint's project_to_context has a large fixed cost),
and must give exactly what project_to_context gives -- names or indices as images, the same
context returned unchanged, the large-polynomial path untouched."""
import pytest
from hypothesis import given, settings, strategies as st

flint = pytest.importorskip("flint")
from symbolic_bn.exact.backends import FlintBackend  # noqa: E402


@st.composite
def projections(draw):
    ns = draw(st.integers(1, 8))
    names = [f"v{i}" for i in range(ns)]
    extra = [f"w{i}" for i in range(draw(st.integers(0, 4)))]
    dst_names = draw(st.permutations(names + extra))
    images = draw(st.lists(st.one_of(st.sampled_from(dst_names),
                                     st.integers(0, len(dst_names) - 1)),
                           min_size=ns, max_size=ns, unique=True))
    exps = st.tuples(*[st.integers(0, 3)] * ns)
    terms = draw(st.dictionaries(exps, st.fractions(min_value=-9, max_value=9, max_denominator=7)
                                 .filter(lambda q: q != 0), max_size=12))
    return names, dst_names, dict(zip(names, images)), terms


@settings(max_examples=200, deadline=None)
@given(projections())
def test_small_projection_is_project_to_context(case):
    names, dst_names, mapping, terms = case
    src = flint.fmpq_mpoly_ctx.get(tuple(names), "lex")
    dst = flint.fmpq_mpoly_ctx.get(tuple(dst_names), "lex")
    p = src.from_dict({e: flint.fmpq(q.numerator, q.denominator) for e, q in terms.items()})
    assert FlintBackend.project(p, dst, mapping) == p.project_to_context(dst, mapping=mapping)


def test_the_same_context_gives_the_polynomial_back_as_flint_does():
    ctx = flint.fmpq_mpoly_ctx.get(("a", "b"), "lex")
    a, b = ctx.gens()
    p = a * b ** 2
    assert FlintBackend.project(p, ctx, {"a": "a", "b": 0}) == p == p.project_to_context(
        ctx, mapping={"a": "a", "b": 0})


def test_a_large_polynomial_and_a_bad_image():
    src = flint.fmpq_mpoly_ctx.get(("a", "b"), "lex")
    dst = flint.fmpq_mpoly_ctx.get(("b", "c", "a"), "lex")
    a, b = src.gens()
    big = (a + b + 1) ** 20  # more terms than the small path takes
    assert len(big) > FlintBackend.SMALL_PROJECTION
    assert FlintBackend.project(big, dst, {"a": "a", "b": "c"}) == big.project_to_context(
        dst, mapping={"a": "a", "b": "c"})
    with pytest.raises(ValueError, match="cannot map generator b"):
        FlintBackend.project(a * b, dst, {"a": "a", "b": 7})
