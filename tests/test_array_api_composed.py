"""What the standard lacks, composed from it: numpy-style gathers and scatters, einsum, solve_triangular, xlogy, exp2,
cbrt, on array-api-strict's simulated device, against numpy's and SciPy's own routines."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffkit as dk
from diffkit.array_api import from_host, to_host

strict = pytest.importorskip("array_api_strict", reason="the array-API checks need array-api-strict: "
                                                        "pip install 'diffkit[array-api]'")
from test_array_api import LIKE  # noqa: E402  (the simulated device the checks run on)

# --- numpy-style indexing on array-api-strict: gathers, and scatters whose repeated indices add up -------------

def _index_cases():
    """(shape, index) pairs: integer arrays with repeats, beside slices and ints, boolean masks, negative indices."""
    shapes = st.tuples(st.integers(1, 4), st.integers(1, 4))

    def index_for(shape):
        n, m = shape
        rows = st.lists(st.integers(-n, n - 1), min_size=0, max_size=6)
        cols = st.lists(st.integers(-m, m - 1), min_size=1, max_size=6)
        return st.one_of(
            rows.map(lambda r: (r,)),
            cols.map(lambda c: (slice(None), c)),
            st.tuples(st.integers(-n, n - 1), cols).map(lambda t: (t[0], t[1])),
            cols.flatmap(lambda c: st.lists(st.integers(-n, n - 1), min_size=len(c), max_size=len(c))
                         .map(lambda r: (r, c))),
            hnp.arrays(np.bool_, (n, m)).map(lambda b: (b,)),
            st.just((slice(1, None), Ellipsis)))
    return shapes.flatmap(lambda s: st.tuples(st.just(s), index_for(s)))


@settings(max_examples=60, deadline=None)
@given(_index_cases(), st.integers(0, 2**32 - 1))
def test_gathers_and_scatters_on_strict_equal_numpys_indexing_and_add_at_bit_for_bit(case, seed):
    from diffkit.array_api_index import gather, index_add, index_set

    shape, index = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    picked = x[index]
    v = rng.standard_normal(picked.shape) * 10.0 ** rng.integers(-8, 8, picked.shape)  # sums that round
    assert to_host(gather(from_host(x, LIKE), index)).tobytes() == picked.tobytes()
    added = x.copy()
    np.add.at(added, index, v)  # numpy's own unbuffered accumulation: the reference
    got = to_host(index_add(from_host(x, LIKE), index, from_host(v, LIKE)))
    assert got.tobytes() == added.tobytes()
    written = x.copy()
    written[index] = v  # numpy: where an index repeats, the last write wins
    assert to_host(index_set(from_host(x, LIKE), index, from_host(v, LIKE))).tobytes() == written.tobytes()


def test_scatters_add_repeats_in_the_index_order_and_ignore_what_is_not_selected():
    from diffkit.array_api_index import index_add, index_set

    base = strict.asarray([0.0, 0.0, 5.0])
    got = to_host(index_add(base, ([2, 0, 2, 2],), strict.asarray([1e16, 7.0, 1.0, 1.0])))
    # ((5 + 1e16) + 1) + 1 in float64: each 1 is lost to rounding, as np.add.at loses it (a sum first would not)
    assert got.tolist() == [7.0, 0.0, 1e16 + 5 + 1 + 1]
    inf_elsewhere = to_host(index_add(strict.asarray([1.0, 2.0]), ([1],), strict.asarray([np.inf])))
    assert inf_elsewhere.tolist() == [1.0, np.inf]  # no 0 * inf = nan leaks into unselected entries
    assert to_host(index_set(base, ([1, 1],), 3.0)).tolist() == [0.0, 3.0, 5.0]  # a Python scalar broadcasts


# --- functions outside the standard, composed from it: against SciPy's and numpy's own routines ----------------

def _ulps(got, want):
    got, want = np.asarray(got), np.asarray(want)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: counted as same below
        return _ulps_apart(got, want)


def _ulps_apart(got, want):
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    return np.where(same, 0.0, np.abs(got - want) / np.spacing(np.abs(np.where(same, 1.0, want))))


wide = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 30), elements=wide))
def test_cube_root_from_the_standard_is_within_one_ulp_of_the_true_root_and_keeps_signed_zeros(x):
    # against mpmath's cube root at 40 digits, rounded once: numpy's own cbrt is up to 3 ulps from it
    # (1.2e16 and others), the composed one within 1 over 20,000 draws across the exponent range
    got = to_host(dk.namespace(LIKE).cbrt(from_host(x, LIKE)))
    with mpmath.workdps(40):
        true = np.array([v if not np.isfinite(v) or v == 0 else math.copysign(float(mpmath.cbrt(abs(v))), v)
                         for v in x.tolist()])
    assert _ulps(got, true).max() <= 1.0
    assert (np.signbit(got) == np.signbit(np.cbrt(x)))[~np.isnan(x)].all()


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(-1100, 1100)))
def test_exp2_from_the_standard_is_within_one_ulp_of_numpys(x):
    with np.errstate(over="ignore"):
        assert _ulps(to_host(dk.namespace(LIKE).exp2(from_host(x, LIKE))), np.exp2(x)).max() <= 1.0


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, 8, elements=st.one_of(st.just(0.0), st.floats(-1e6, 1e6))),
       hnp.arrays(np.float64, 8, elements=st.one_of(st.just(0.0), st.just(np.nan), st.floats(0, 1e6))))
def test_xlogy_from_the_standard_is_scipys_convention_within_one_ulp(x, y):
    from scipy.special import xlogy
    with np.errstate(divide="ignore", invalid="ignore"):
        got = to_host(dk.namespace(LIKE).xlogy(from_host(x, LIKE), from_host(y, LIKE)))
        assert _ulps(got, xlogy(x, y)).max() <= 1.0  # xlogy(0, y) = 0 unless y is nan; numpy's log vs libm's


EINSUMS = [("ij,jk->ik", [(2, 3), (3, 4)]), ("i,i->", [(5,), (5,)]), ("ij,ij->j", [(2, 3), (2, 3)]),
           ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("ij->ji", [(2, 3)]),
           ("ij->", [(2, 3)]), ("i,j->ij", [(2,), (3,)]), ("ijk,k->ij", [(2, 3, 4), (4,)]),
           ("ij,jk", [(2, 3), (3, 4)]), ("ab,cb,ad->cd", [(2, 3), (4, 3), (2, 5)]), ("abc,cad->bd", [(2, 3, 4), (4, 2, 5)])]


@pytest.mark.parametrize("subscripts, shapes", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_from_the_standard_equals_numpys_to_rounding(subscripts, shapes):
    rng = np.random.default_rng(len(subscripts))
    xs = [rng.standard_normal(s) for s in shapes]
    want = np.einsum(subscripts, *xs)
    got = to_host(dk.namespace(LIKE).einsum(subscripts, *[from_host(x, LIKE) for x in xs]))
    assert got.shape == want.shape
    # matmul's order, not numpy's einsum loops: each entry a sum of <= 20 products, within 20 ulps of the sum of |.|
    bound = 20 * 2.2e-16 * np.einsum(subscripts, *[np.abs(x) for x in xs])
    assert (np.abs(got - want) <= bound).all()


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("rhs", [(4,), (4, 3)])
def test_solve_triangular_from_the_standard_reads_one_triangle_and_agrees_with_scipy(lower, rhs):
    from scipy.linalg import solve_triangular

    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 4)) + 5 * np.eye(4)  # the other triangle is not zero: it must not be read
    b = rng.standard_normal(rhs)
    want = solve_triangular(a, b, lower=lower)
    got = to_host(dk.namespace(LIKE).linalg.solve_triangular(from_host(a, LIKE), from_host(b, LIKE), lower=lower))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)  # LU vs substitution, cond(a) ~ 2


def test_a_users_gathers_and_updates_with_the_devices_own_index_arrays_differentiate_as_on_numpy():
    """Index arrays made with xp.asarray on the values' device, repeated entries, dk.vjp's float seed."""
    def f(t):
        xp = dk.namespace(t)
        picked = xp.take(t, xp.asarray([0, 2, 2]))           # take's rule: a scatter with repeats
        fancy = t[xp.asarray([1, 1, 3])]                      # getitem with an integer array: the tape's scatter
        bumped = xp.at(t)[xp.asarray([0, 0])].add(t[:2])      # at_add, repeated index
        return xp.sum(xp.tanh(t) * xp.flip(t)) + xp.sum(picked ** 2) + xp.sum(fancy ** 3) + xp.sum(bumped ** 2)

    theta = np.array([0.3, -0.2, 0.5, 1.1])
    # by hand: d/dt of tanh(t).flip(t) + t0^2 + 2 t2^2 + 2 t1^3 + t3^3 + (t0 + t0 + t1)^2 + t1^2 + t2^2 + t3^2
    t0, t1, t2, t3 = theta
    sech2 = 1 - np.tanh(theta) ** 2
    flip_part = sech2 * theta[::-1] + np.tanh(theta)[::-1]
    bumped = 2 * t0 + t1
    by_hand = flip_part + np.array([2 * t0 + 4 * bumped, 6 * t1 ** 2 + 2 * bumped + 2 * t1,
                                    4 * t2 + 2 * t2, 3 * t3 ** 2 + 2 * t3])
    want = dk.vjp(f, theta)[1](1.0)
    np.testing.assert_allclose(want, by_hand, rtol=1e-14)
    got = to_host(dk.vjp(f, from_host(theta, LIKE))[1](1.0))
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("f", [lambda t: t[0], lambda t: t[np.asarray([1, 1])][0],
                               lambda t: dk.namespace(t).sum(t[1:] * t[np.asarray([0, 0])])],
                         ids=["item", "integer-array-item", "slice-times-gather"])
def test_the_sweeps_float_seed_reaches_an_indexed_output_on_the_device(f):
    theta = np.array([1.0, 2.0, 3.0])
    want = dk.vjp(f, theta)[1](1.0)
    assert to_host(dk.vjp(f, from_host(theta, LIKE))[1](1.0)).tobytes() == want.tobytes()
