"""The array API's set, search and bitwise names on every namespace: nonzero, isin, unique_all / unique_counts /
unique_inverse / unique_values, nextafter, bitwise_*, from_dlpack.

Values against numpy's own functions (np.unique with return_index / return_inverse / return_counts, np.nonzero,
np.isin, np.nextafter, np.bitwise_*); gradients against hand-built ones: a distinct value's weight lands on its
first occurrence (found here by a plain loop), nonzero's gather picks the nonzero entries, nextafter's partials
are 1 and 0.  Never against another diffkit route."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffkit as dk
from diffkit.backends import COMPLEX, MP, NUMPY, sympy_namespace, to_mp

NAMES = ("nonzero", "isin", "unique_all", "unique_counts", "unique_inverse", "unique_values", "bitwise_and",
         "bitwise_or", "bitwise_xor", "bitwise_invert", "bitwise_left_shift", "bitwise_right_shift", "nextafter",
         "from_dlpack")
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
SMALL = st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])  # few values: ties and zeros are common
WITH_NAN = st.sampled_from([-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, np.nan])
SETTINGS = settings(max_examples=30, deadline=None)


def _grad(f, x, **kw):
    return dk.gradient(f, np.asarray(x, dtype=float), **kw).grad


def _numpy_unique(x):
    """numpy's own unique: values, first indices, inverse in x's shape (the 2023.12 standard's), counts."""
    values, first, inverse, counts = np.unique(x.reshape(-1), return_index=True, return_inverse=True,
                                               return_counts=True, equal_nan=False)
    return values, first, inverse.reshape(x.shape), counts


def _first_occurrences(x):
    """By hand: for each distinct value, ascending, the first flat index holding it (no NaN here)."""
    flat = [float(v) for v in x.reshape(-1)]
    return [flat.index(v) for v in sorted(set(flat))]


def _weights_on_firsts(x, w):
    """The expected gradient of sum(w * unique_values(x)): w[i] on the first occurrence of the i-th value."""
    want = np.zeros(x.size)
    for i, j in enumerate(_first_occurrences(x)):
        want[j] = w[i]
    return want.reshape(x.shape)


# --- every namespace has every name ---------------------------------------------------------------------------

def test_every_name_is_on_every_namespace():
    from diffkit.tape.core import Tape

    tape = Tape()
    seen = {}

    def f(t):
        seen["dual"] = dk.namespace(t)
        return t[0]
    dk.jvp(f, np.ones(2), np.ones(2))
    spaces = {"numpy": NUMPY, "complex": COMPLEX, "mpmath": MP, "sympy": sympy_namespace(),
              "tape": dk.namespace(tape.leaf(np.ones(3))), "dual": seen["dual"]}
    strict = pytest.importorskip("array_api_strict")
    spaces["array_api_strict"] = dk.namespace(strict.asarray([1.0]))
    missing = []
    for where, xp in spaces.items():
        for name in NAMES:
            try:
                if not callable(getattr(xp, name)):
                    missing.append((where, name))
            except (AttributeError, NotImplementedError):
                missing.append((where, name))
    assert missing == []


# --- unique_*: values a gather at the first occurrences, the rest constants ----------------------------------

@SETTINGS
@given(hnp.arrays(np.float64, SHAPES, elements=WITH_NAN))
def test_unique_all_and_its_parts_match_numpys_unique_nans_distinct(x):
    values, first, inverse, counts = _numpy_unique(x)
    for xp, arg in ((NUMPY, x), (COMPLEX, x + 0j)):
        r = xp.unique_all(arg)
        assert type(r).__name__ == "UniqueAllResult"
        assert r._fields == ("values", "indices", "inverse_indices", "counts")
        assert np.array_equal(np.real(r.values), values, equal_nan=True)
        if xp is NUMPY:  # (x + 0j drops a zero's sign)
            assert np.array_equal(np.signbit(r.values), np.signbit(values))  # the first-occurring zero's sign
        assert r.indices.tolist() == first.tolist() and r.counts.tolist() == counts.tolist()
        assert r.inverse_indices.shape == x.shape and np.array_equal(r.inverse_indices, inverse)
    c = NUMPY.unique_counts(x)
    assert c._fields == ("values", "counts") and c.counts.tolist() == counts.tolist()
    i = NUMPY.unique_inverse(x)
    assert i._fields == ("values", "inverse_indices") and np.array_equal(i.inverse_indices, inverse)
    assert np.array_equal(NUMPY.unique_values(x), values, equal_nan=True)
    # mpmath's numbers: comparisons alone (no numpy unique); the same parts
    m = MP.unique_all(to_mp(x))
    assert np.array_equal(np.array(m.values.tolist(), dtype=float), values, equal_nan=True)
    assert m.indices.tolist() == first.tolist() and m.counts.tolist() == counts.tolist()
    assert np.array_equal(m.inverse_indices, inverse)


@SETTINGS
@given(hnp.arrays(np.float64, SHAPES, elements=SMALL), st.integers(0, 2**32 - 1))
def test_a_distinct_values_gradient_goes_to_its_first_occurrence(x, seed):
    k = len(set(x.reshape(-1).tolist()))
    w = np.random.default_rng(seed).standard_normal(k)
    want = _weights_on_firsts(x, w)

    def f(t):
        xp = dk.namespace(t)
        return xp.sum(w * xp.unique_values(t))
    assert np.array_equal(_grad(f, x), want)  # the tape
    step = _grad(f, x, method="complex_step")  # (imag(f(x + ih)) / h: rounding apart)
    assert np.array_equal(step == 0, want == 0) and np.allclose(step, want, rtol=1e-14, atol=0)
    ref = dk.reference(f, x, digits=20, certify=False)  # (the rules in mpmath; a tie has no two-sided difference)
    assert np.array_equal(np.array(ref.grad_mp.tolist(), dtype=float), want)
    v = np.random.default_rng(seed + 1).standard_normal(x.shape)
    _, tangent = dk.jvp(lambda t: dk.namespace(t).unique_values(t), x, v)  # duals: v at each first occurrence
    assert np.array_equal(tangent, [v.reshape(-1)[j] for j in _first_occurrences(x)])

    def g(t):  # every field of unique_all on the tape: values differentiable, the rest constants
        xp = dk.namespace(t)
        r = xp.unique_all(t)
        assert r.inverse_indices.shape == x.shape and r.counts.dtype.kind == "i"
        return xp.sum(w * r.values * r.counts) + xp.sum(xp.unique_counts(t).values) + \
            xp.sum(xp.unique_inverse(t).values)
    counts = np.array([np.sum(x == v) for v in sorted(set(x.reshape(-1).tolist()))])
    assert np.allclose(_grad(g, x), _weights_on_firsts(x, w * counts + 2.0), rtol=1e-15, atol=0)


def test_unique_ties_nans_and_signed_zeros_by_hand():
    x = np.array([2.0, np.nan, 1.0, 2.0, np.nan, -0.0, 0.0, 1.0])
    r = NUMPY.unique_all(x)
    # ascending, each NaN its own value (last, in order), -0.0 and 0.0 one value: the first, -0.0
    assert np.array_equal(r.values, [-0.0, 1.0, 2.0, np.nan, np.nan], equal_nan=True) and np.signbit(r.values[0])
    assert r.indices.tolist() == [5, 2, 0, 1, 4]
    assert r.counts.tolist() == [2, 2, 2, 1, 1]
    assert r.inverse_indices.tolist() == [2, 3, 1, 2, 4, 0, 0, 1]
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    nans = np.where(np.isnan(x), np.nan, 0.0)  # (theta must be finite: the NaNs come in inside f)
    grad = _grad(lambda t: dk.namespace(t).sum(w * dk.namespace(t).unique_values(t + nans)), np.nan_to_num(x))
    assert grad.tolist() == [3.0, 4.0, 2.0, 0.0, 5.0, 1.0, 0.0, 0.0]
    # a matrix: row-major order decides which of the ties is first
    m = np.array([[5.0, 4.0], [4.0, 5.0]])
    assert NUMPY.unique_all(m).inverse_indices.tolist() == [[1, 0], [0, 1]]
    grad = _grad(lambda t: dk.namespace(t).sum(np.array([10.0, 20.0]) * dk.namespace(t).unique_values(t)), m)
    assert grad.tolist() == [[20.0, 10.0], [0.0, 0.0]]


# --- nonzero ----------------------------------------------------------------------------------------------------

@SETTINGS
@given(hnp.arrays(np.float64, SHAPES, elements=st.sampled_from([0.0, -0.0, 1.0, -2.5, np.nan])))
def test_nonzero_matches_numpy_and_gathers_only_the_nonzero_entries(x):
    want = np.nonzero(x)  # (NaN is nonzero)
    for xp, arg in ((NUMPY, x), (COMPLEX, x + 0j), (MP, to_mp(x))):
        got = xp.nonzero(arg)
        assert type(got) is tuple and len(got) == x.ndim
        assert all(g.dtype.kind == "i" and g.tolist() == w.tolist() for g, w in zip(got, want))
    c = np.arange(1.0, x.size + 1).reshape(x.shape)

    def f(t):
        xp = dk.namespace(t)
        return xp.sum(t[xp.nonzero(t)] * c[xp.nonzero(t)])
    safe = np.where(np.isnan(x), 7.0, x)  # (a NaN's gradient would be fine, its value is not)
    assert _grad(f, safe).tolist() == np.where(safe != 0, c, 0.0).tolist()


def test_nonzero_of_a_0d_array_is_refused_naming_the_op():
    for xp, x in ((NUMPY, np.array(1.0)), (MP, to_mp(np.array(1.0)))):
        with pytest.raises(ValueError, match="nonzero: x has no axes"):
            xp.nonzero(x)
    with pytest.raises(ValueError, match="nonzero: x has no axes"):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).nonzero(t[0])[0]), np.ones(2))


def test_a_cost_on_nonzero_under_dk_compile_rerecords_when_the_nonzero_set_changes():
    def f(t):
        xp = dk.namespace(t)
        (idx,) = xp.nonzero(t)
        return xp.sum(t[idx] ** 2 * (1.0 + idx))
    g = dk.compile(f, np.array([1.0, 0.0, 2.0]))
    assert g(np.array([3.0, 0.0, 1.0]))[1].tolist() == [6.0, 0.0, 6.0]  # the same set: replayed
    # another set: {1, 2}; d/dt_i = 2 t_i (1 + i) there, 0 elsewhere
    value, grad = g(np.array([0.0, 3.0, 2.0]))
    assert value == 9.0 * 2 + 4.0 * 3 and grad.tolist() == [0.0, 12.0, 12.0]

    def h(t):  # unique's parts too: counts weight the values
        xp = dk.namespace(t)
        r = xp.unique_counts(t)
        return xp.sum(r.values * r.counts)
    g = dk.compile(h, np.array([1.0, 1.0, 2.0]))
    assert g(np.array([1.0, 2.0, 2.0]))[1].tolist() == [1.0, 2.0, 0.0]  # counts 1, 2 on the first occurrences


def test_a_batch_whose_members_have_results_of_different_sizes_is_refused_by_name():
    from diffkit.primitives import PRIMITIVES
    from diffkit.tape.batching import batched_call

    batch = np.array([[0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"nonzero_indices over a batch: the members' results have the shapes"):
        batched_call(PRIMITIVES["nonzero_indices"], [batch], [True], {}, 2)
    same = batched_call(PRIMITIVES["unique_value_counts"], [np.array([[1.0, 1.0, 2.0], [3.0, 2.0, 2.0]])], [True],
                        {}, 2)
    assert same.tolist() == [[2, 1], [2, 1]]


# --- isin -------------------------------------------------------------------------------------------------------

@SETTINGS
@given(hnp.arrays(np.float64, SHAPES, elements=WITH_NAN), hnp.arrays(np.float64, st.integers(1, 5), elements=WITH_NAN),
       st.booleans())
def test_isin_matches_numpy_nan_in_nothing(x1, x2, invert):
    want = np.isin(x1, x2, invert=invert)
    for xp, a, b in ((NUMPY, x1, x2), (COMPLEX, x1 + 0j, x2 + 0j), (MP, to_mp(x1), to_mp(x2))):
        got = xp.isin(a, b, invert=invert)
        assert got.dtype == bool and got.shape == x1.shape and np.array_equal(got, want)
    assert not NUMPY.isin(np.array([np.nan]), np.array([np.nan]))[0]
    safe = np.where(np.isnan(x1), 7.0, x1)
    mask = np.isin(safe, x2, invert=invert)

    def f(t):  # a mask from isin steers the cost: t^2 where it holds, t elsewhere
        xp = dk.namespace(t)
        return xp.sum(xp.where(xp.isin(t, x2, invert=invert), t * t, t))
    assert _grad(f, safe).tolist() == np.where(mask, 2 * safe, 1.0).tolist()


# --- nextafter --------------------------------------------------------------------------------------------------

FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, 1e300]), st.floats(-1e6, 1e6, width=64))


@SETTINGS
@given(st.lists(st.tuples(FLOATS, FLOATS), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_nextafter_is_numpys_with_partials_one_and_zero(pairs, seed):
    x, y = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    want = np.nextafter(x, y)
    assert np.array_equal(NUMPY.nextafter(x, y), want)
    assert np.array_equal(np.array(MP.nextafter(to_mp(x), to_mp(y)).tolist(), dtype=float), want)
    assert np.array_equal(np.real(COMPLEX.nextafter(x + 0j, y + 0j)), want)
    n = len(x)
    w = np.random.default_rng(seed).standard_normal(n)

    def f(t):
        xp = dk.namespace(t)
        return xp.sum(w * xp.nextafter(t[:n], t[n:]))
    theta = np.concatenate([x, y])
    want_grad = np.concatenate([w, np.zeros(n)])
    assert np.array_equal(_grad(f, theta), want_grad)
    step = _grad(f, theta, method="complex_step")
    assert np.array_equal(step[n:], np.zeros(n)) and np.allclose(step[:n], w, rtol=1e-14, atol=0)
    v = np.random.default_rng(seed + 1).standard_normal(2 * n)
    assert np.array_equal(dk.jvp(lambda t: dk.namespace(t).nextafter(t[:n], t[n:]), theta, v)[1], v[:n])


def test_nextafter_certifies_in_mpmath_and_is_unsupported_in_sympy():
    theta = np.array([1.0, -2.0, 3.0, 0.5])
    ref = dk.reference(lambda t: dk.namespace(t).sum(dk.namespace(t).nextafter(t[:2], t[2:]) * t[2:]), theta,
                       digits=30)  # (certified: the mpmath forward moves x by the float64 step, derivative 1)
    assert np.allclose(np.array(ref.grad_mp.tolist(), dtype=float), [3.0, 0.5, np.nextafter(1.0, 3.0),
                                                                     np.nextafter(-2.0, 0.5)], rtol=1e-15, atol=0)
    import sympy
    with pytest.raises(NotImplementedError, match="op 'nextafter' is not available in the sympy backend: nextafter"):
        sympy_namespace().nextafter(np.array([sympy.Float(1.0)]), np.array([sympy.Float(2.0)]))


# --- bitwise and from_dlpack: the values' library's own, integer data only ---------------------------------------

@SETTINGS
@given(hnp.arrays(np.int64, st.integers(1, 5), elements=st.integers(-100, 100)),
       hnp.arrays(np.int64, st.integers(1, 5), elements=st.integers(0, 6)))
def test_bitwise_names_are_numpys_on_integers_in_every_value_namespace(a, b):
    b = np.resize(b, a.shape)
    for xp in (NUMPY, COMPLEX, MP):
        assert np.array_equal(xp.bitwise_and(a, b), a & b)
        assert np.array_equal(xp.bitwise_or(a, b), a | b)
        assert np.array_equal(xp.bitwise_xor(a, b), a ^ b)
        assert np.array_equal(xp.bitwise_invert(a), ~a)
        assert np.array_equal(xp.bitwise_left_shift(a, b), np.left_shift(a, b))
        assert np.array_equal(xp.bitwise_right_shift(a, b), np.right_shift(a, b))
    assert NUMPY.bitwise_invert(np.array([True, False])).tolist() == [False, True]


def test_a_traced_or_float_array_given_to_a_bitwise_op_is_refused_naming_the_op():
    message = r"{}: its inputs must be integer or bool arrays; got a traced array"
    with pytest.raises(TypeError, match=message.format("bitwise_and")):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).bitwise_and(t, 1)), np.ones(2))
    with pytest.raises(TypeError, match=message.format("bitwise_left_shift")):
        dk.jvp(lambda t: dk.namespace(t).bitwise_left_shift(t, 1), np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=message.format("bitwise_invert")):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).bitwise_invert(t)), np.ones(2))
    with pytest.raises(TypeError, match=r"bitwise_xor: its inputs must be integer or bool arrays; got dtype float64"):
        NUMPY.bitwise_xor(np.ones(2), 1)

    def f(t):  # integer data beside a trace is fine: a constant
        xp = dk.namespace(t)
        return xp.sum(t * xp.bitwise_and(np.array([3, 6]), np.array([1, 2])))
    assert _grad(f, np.ones(2)).tolist() == [1.0, 2.0]


def test_from_dlpack_is_the_values_librarys():
    a = np.arange(3.0)
    assert np.array_equal(NUMPY.from_dlpack(a), a)

    def f(t):
        xp = dk.namespace(t)
        return xp.sum(t * xp.from_dlpack(a))
    assert _grad(f, np.ones(3)).tolist() == [0.0, 1.0, 2.0]


# --- array_api_strict values ------------------------------------------------------------------------------------

def test_the_set_names_on_array_api_strict_give_numpys_values_and_the_hand_gradients():
    strict = pytest.importorskip("array_api_strict", reason="pip install 'diffkit[array-api]'")
    from diffkit.array_api import to_host

    x = np.array([[2.0, 1.0, 2.0], [0.0, 1.0, 3.0]])
    sx = strict.asarray(x)
    xp = dk.namespace(sx)
    r = xp.unique_all(sx)
    values, first, inverse, counts = _numpy_unique(x)
    assert r._fields == ("values", "indices", "inverse_indices", "counts")
    assert to_host(r.values).tolist() == values.tolist() and to_host(r.indices).tolist() == first.tolist()
    assert to_host(r.inverse_indices).tolist() == inverse.tolist() and to_host(r.counts).tolist() == counts.tolist()
    nan = strict.asarray([np.nan, 1.0, np.nan])
    assert to_host(xp.unique_counts(nan).counts).tolist() == [1, 1, 1]  # each NaN distinct
    assert [to_host(i).tolist() for i in xp.nonzero(sx)] == [a.tolist() for a in np.nonzero(x)]
    assert to_host(xp.isin(sx, strict.asarray([2.0, 3.0]))).tolist() == np.isin(x, [2.0, 3.0]).tolist()
    assert to_host(xp.isin(sx, strict.asarray([2.0, 3.0]), invert=True)).tolist() == \
        np.isin(x, [2.0, 3.0], invert=True).tolist()
    assert to_host(xp.nextafter(sx, strict.asarray(5.0))).tolist() == np.nextafter(x, 5.0).tolist()
    ints = strict.asarray([3, 5, 6])
    assert to_host(xp.bitwise_xor(ints, strict.asarray([1, 1, 1]))).tolist() == [2, 4, 7]
    assert to_host(xp.from_dlpack(sx)).tolist() == x.tolist()

    w = np.array([1.0, 10.0, 100.0, 1000.0])

    def f(t):
        xp = dk.namespace(t)
        (rows, cols) = xp.nonzero(t)
        return (xp.sum(xp.unique_values(t) * strict.asarray(w)) + xp.sum(t[rows, cols])
                + xp.sum(xp.nextafter(t, strict.asarray(9.0)) * 2.0))
    got = to_host(dk.gradient(f, sx).grad)
    # unique: 0 (x[1,0]) -> 1, 1 (x[0,1]) -> 10, 2 (x[0,0]) -> 100, 3 (x[1,2]) -> 1000; nonzero: 1 where x != 0;
    # nextafter: 2 everywhere
    want = _weights_on_firsts(x, w) + (x != 0) + 2.0
    assert got.tolist() == want.tolist()
    with pytest.raises(TypeError, match="bitwise_and: its inputs must be integer or bool arrays; got a traced array"):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).bitwise_and(t, ints)), strict.asarray([1.0, 2.0, 3.0]))
