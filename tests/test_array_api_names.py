"""The array API's sorting, searching, differencing and casting names on traced arrays: sort, take_along_axis,
diff, unstack, broadcast_arrays, copysign, astype, real/imag/conj, all/any/count_nonzero, floor_divide and
searchsorted.  Values against numpy's own functions; derivatives against hand-derived ones (a permutation, a
difference matrix built by numpy's diff of the identity, sign rules), never against another diffkit route."""
from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffkit as dk

import catalogue as C

FINITE = st.floats(-10, 10, allow_nan=False, width=64)


def _grad(f, x):
    return dk.gradient(f, np.asarray(x, dtype=float)).grad


# --- sort and take_along_axis: gathers whose gradients go back to where each entry came from ----------------

@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)), elements=FINITE),
       st.integers(-2, 1), st.booleans(), st.integers(0, 2**32 - 1))
def test_sort_values_are_numpys_and_each_gradient_entry_is_the_weight_of_the_place_it_landed(x, axis, descending,
                                                                                              seed):
    w = np.random.default_rng(seed).standard_normal(x.shape)
    sorted_x = np.sort(x, axis=axis)
    want_value = np.flip(sorted_x, axis=axis) if descending else sorted_x
    assert np.array_equal(dk.namespace(x).sort(x, axis=axis, descending=descending), want_value)
    grad = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).sort(t, axis=axis, descending=descending) * w), x)
    order = C.stable_order(x, axis, descending)  # (the catalogue's: comparisons alone, ties in order)
    want = np.empty_like(x)
    np.put_along_axis(want, order, w, axis=axis)  # the entry that landed at each place gets that place's weight
    assert np.array_equal(grad, want)


def test_sort_ties_keep_their_order_ascending_and_descending():
    x, w = np.array([2.0, 1.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0])
    # ascending: places 1, 3, 0, 2 -> x[1] gets w[0], x[3] w[1], x[0] w[2], x[2] w[3]
    assert _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).sort(t) * w), x).tolist() == [3.0, 1.0, 4.0, 2.0]
    # descending: places 0, 2, 1, 3
    assert _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).sort(t, descending=True) * w),
                 x).tolist() == [1.0, 3.0, 2.0, 4.0]


def test_take_along_axis_adds_the_gradients_of_repeated_indices():
    x = np.arange(6.0).reshape(2, 3)
    idx = np.array([[0, 0, 2], [1, 1, 1]])
    w = np.array([[1.0, 10.0, 100.0], [2.0, 20.0, 200.0]])
    xp = dk.namespace(x)
    assert np.array_equal(xp.take_along_axis(x, idx, axis=1), np.take_along_axis(x, idx, axis=1))
    grad = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).take_along_axis(t, idx, axis=1) * w), x)
    assert grad.tolist() == [[11.0, 0.0, 100.0], [0.0, 222.0, 0.0]]
    with pytest.raises(ValueError, match="indices have 1 axes, x has 2"):
        xp.take_along_axis(x, np.array([0, 1]), axis=1)


def test_a_sorted_cost_under_dk_compile_follows_a_new_order_at_a_new_theta():
    w = np.array([1.0, 2.0, 3.0])

    def f(t):
        xp = dk.namespace(t)
        return xp.sum(xp.sort(t) * w)
    g = dk.compile(f, np.array([3.0, 1.0, 2.0]))
    value, grad = g(np.array([1.0, 3.0, 2.0]))  # another order: the gradient is w by the new ranks
    assert value == 1.0 * 1 + 2.0 * 2 + 3.0 * 3 and grad.tolist() == [1.0, 3.0, 2.0]


# --- diff: a linear map whose Jacobian is numpy's diff of the identity's columns ------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6), st.integers(1, 3), st.sampled_from([None, 0.5, "array"]), st.sampled_from([None, -2.0]),
       st.integers(0, 2**32 - 1))
def test_diff_values_are_numpys_and_its_gradient_is_the_transposed_difference_matrix(m, n, prepend, append, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, m))
    pre = rng.standard_normal((3, 2)) if prepend == "array" else prepend
    kwargs = {k: v for k, v in (("prepend", pre), ("append", append)) if v is not None}
    want_value = np.diff(x, n=n, axis=1, **kwargs)
    if want_value.shape[1] == 0:
        return
    xp = dk.namespace(x)
    np.testing.assert_allclose(xp.diff(x, axis=1, n=n, **kwargs), want_value, rtol=0, atol=1e-12)
    w = rng.standard_normal(want_value.shape)
    grad = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).diff(t, axis=-1, n=n, **kwargs) * w), x)
    zeros = {k: (np.zeros_like(v) if isinstance(v, np.ndarray) else 0.0) for k, v in kwargs.items()}
    jac = np.stack([np.diff(np.eye(m)[j][None, :].repeat(3, 0), n=n, axis=1, **zeros)[0] for j in range(m)], 1)
    np.testing.assert_allclose(grad, w @ jac, rtol=0, atol=1e-12)


# --- unstack, broadcast_arrays: copies and broadcasts, whose gradients sum where entries were shared ---------

def test_an_axis_out_of_range_or_a_negative_order_is_refused_naming_the_op_and_the_valid_range():
    x = np.arange(6.0).reshape(2, 3)
    xp = dk.namespace(x)
    for call, op in ((lambda: xp.sort(x, axis=2), "sort"),
                     (lambda: xp.take_along_axis(x, np.zeros((2, 1), int), axis=-3), "take_along_axis"), (lambda: xp.diff(x, axis=-3), "diff"),
                     (lambda: xp.unstack(x, axis=5), "unstack")):
        with pytest.raises(ValueError, match=rf"{op}: axis -?\d is out of range for an array of 2 axes; valid: -2 .. 1"):
            call()
    with pytest.raises(ValueError, match="diff: n is the order of the difference, an integer >= 0; got -1"):
        xp.diff(x, n=-1)


def test_unstack_and_broadcast_arrays_match_numpy_and_sum_gradients_over_copies():
    x = np.arange(6.0).reshape(2, 3)
    xp = dk.namespace(x)
    parts = xp.unstack(x, axis=1)
    assert len(parts) == 3 and all(np.array_equal(p, x[:, i]) for i, p in enumerate(parts))
    a, b = xp.broadcast_arrays(np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0]]))
    assert a.shape == b.shape == (2, 3)

    def f(t):
        xp = dk.namespace(t)
        row, col = xp.broadcast_arrays(t[:3], xp.reshape(t[3:], (2, 1)))
        first, second = xp.unstack(row * col, axis=0)
        return xp.sum(first) + 2.0 * xp.sum(second)
    t = np.array([1.0, 2.0, 3.0, 5.0, 7.0])
    # f = (t3 + 2 t4) (t0 + t1 + t2): d/dt_i = t3 + 2 t4 = 19 for i < 3; d/dt3 = 6; d/dt4 = 12
    assert _grad(f, t).tolist() == [19.0, 19.0, 19.0, 6.0, 12.0]


# --- copysign, astype, real/imag/conj -------------------------------------------------------------------------

def test_copysign_matches_numpy_with_signed_zeros_and_its_derivative_is_the_product_of_signs():
    x1 = np.array([-2.0, 3.0, 5.0, 0.0, -1.5])
    x2 = np.array([1.0, -1.0, -0.0, 0.0, -3.0])  # (-0.0 is negative, as numpy's copysign has it)
    assert np.array_equal(dk.namespace(x1).copysign(x1, x2), np.copysign(x1, x2))
    grad = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).copysign(t, x2)), x1)
    assert grad.tolist() == [-1.0, -1.0, -1.0, 0.0, 1.0]  # sign(x1) sign(x2); abs's convention 0 at x1 = 0
    grad2 = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).copysign(x1, t)), x2)
    assert grad2.tolist() == [0.0] * 5  # the sign is piecewise constant in x2


def test_astype_keeps_a_traces_float64_and_makes_integer_casts_constants():
    x = np.array([1.7, -2.6, 0.4])
    xp = dk.namespace(x)
    assert xp.astype(x, xp.float32).dtype == np.float32  # plain arrays: the library's own cast
    assert xp.astype(x, xp.int64).tolist() == [1, -2, 0]

    def f(t):
        xp = dk.namespace(t)
        kept = xp.astype(t, xp.float32)
        assert kept.dtype == np.float64  # (the trace's values: float64, derivative 1)
        ints = xp.astype(t, xp.int64)
        assert ints.dtype == np.int64 and ints.tolist() == [1, -2, 0]  # truncated toward zero, a constant
        flags = xp.astype(t, xp.bool)
        assert flags.tolist() == [True, True, True]
        return xp.sum(kept * kept) + xp.sum(ints * t)
    assert np.allclose(_grad(f, x), 2 * x + np.trunc(x), rtol=0, atol=1e-15)
    # the complex step and the mpmath referee run the same cast: float keeps the derivative, int is a constant
    step = dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).astype(t, np.float64) ** 2
                                                     * dk.namespace(t).astype(t, np.int64)), x, method="complex_step")
    assert np.allclose(step.grad, 2 * x * np.trunc(x), rtol=1e-14, atol=0)


def test_real_imag_conj_of_a_real_function_are_its_value_zero_and_its_value():
    w = np.array([2.0, -3.0])
    grad = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).real(t) * w + dk.namespace(t).conj(t)
                                               + 5.0 * dk.namespace(t).imag(t)), np.array([1.0, 4.0]))
    assert grad.tolist() == [3.0, -2.0]


# --- truth reductions, floor_divide, searchsorted: constants, whose results steer branches -----------------------

@pytest.mark.parametrize("name", ["all", "any", "count_nonzero"])
def test_truth_reductions_match_numpy_with_nan_true_along_axes(name):
    x = np.array([[0.0, np.nan, 2.0], [0.0, 0.0, -1.0]])
    xp = dk.namespace(x)
    for axis, keepdims in ((None, False), (0, False), (1, True)):
        assert np.array_equal(getattr(xp, name)(x, axis=axis, keepdims=keepdims),
                              getattr(np, name)(x, axis=axis, keepdims=keepdims))


def test_a_branch_on_all_under_dk_compile_rerecords_when_it_flips():
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(t) if xp.all(t > 0) else xp.sum(t * t)
    g = dk.compile(f, np.array([1.0, 2.0]))
    assert g(np.array([3.0, 4.0]))[1].tolist() == [1.0, 1.0]
    assert g(np.array([-3.0, 4.0]))[1].tolist() == [-6.0, 8.0]  # the other branch: 2 t


def test_floor_divide_and_searchsorted_match_numpy_and_carry_no_derivative():
    x, y = np.array([7.0, -7.0, 2.5]), np.array([2.0, 2.0, 0.5])
    xp = dk.namespace(x)
    assert np.array_equal(xp.floor_divide(x, y), np.floor_divide(x, y))
    edges = np.array([0.0, 1.0, 2.0])
    for side in ("left", "right"):
        assert np.array_equal(xp.searchsorted(edges, np.array([-1.0, 1.0, 1.5, 3.0]), side=side),
                              np.searchsorted(edges, [-1.0, 1.0, 1.5, 3.0], side=side))

    def f(t):  # a bucketed weight: piecewise constant in t, times t
        xp = dk.namespace(t)
        return xp.sum((xp.floor_divide(t, 1.0) + xp.searchsorted(edges, t)) * t)
    t = np.array([0.5, 1.5])
    # floor(t) + bucket: 0 + 1 and 1 + 2: the derivative is that constant
    assert _grad(f, t).tolist() == [1.0, 3.0]


def test_the_composed_names_on_array_api_strict_give_numpys_gradient():
    strict = pytest.importorskip("array_api_strict", reason="pip install 'diffkit[array-api]'")
    from diffkit.array_api import to_host

    x = np.array([[3.0, 1.0, 2.0], [0.5, -1.0, 4.0]])
    w = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

    def f(t, w, minus):
        xp = dk.namespace(t)
        return (xp.sum(xp.sort(t, axis=1, descending=True) * w) + xp.sum(xp.diff(t, axis=1, prepend=0.5) ** 2)
                + xp.sum(xp.copysign(t, minus)) + xp.sum(xp.take_along_axis(t, xp.argsort(t, axis=0), axis=0) * w))
    got = dk.gradient(lambda t: f(t, strict.asarray(w), -1.0 * strict.ones((2, 3))), strict.asarray(x))
    # by hand: the sorted rows' weights by rank, 2 (d_i - d_(i+1)) of the differences (0.5 prepended), -sign(x),
    # and the column sort's weights by rank down each column
    # row 0: x = 3, 1, 2, descending ranks 0, 2, 1 -> w 1, 3, 2; diffs with 0.5: 2.5, -2, 1
    # row 1: x = 0.5, -1, 4, descending ranks 1, 2, 0 -> w 5, 6, 4; diffs with 0.5: 0, -1.5, 5
    # column sort (ascending down each column): col 0: 0.5 < 3 -> x[1,0] w[0,0]=1, x[0,0] w[1,0]=4;
    # col 1: -1 < 1 -> x[1,1] w[0,1]=2, x[0,1] w[1,1]=5; col 2: 2 < 4 -> x[0,2] w[0,2]=3, x[1,2] w[1,2]=6
    want = np.array([[1 + 2 * (2.5 + 2.0) - 1 + 4, 3 + 2 * (-2.0 - 1.0) - 1 + 5, 2 + 2 * 1.0 - 1 + 3],
                     [5 + 2 * (0.0 + 1.5) - 1 + 1, 6 + 2 * (-1.5 - 5.0) + 1 + 2, 4 + 2 * 5.0 - 1 + 6]])
    assert np.array_equal(to_host(got.grad), want)

    def casts(t):  # astype on the device: float keeps the trace, an integer cast is a constant in strict's own dtype
        xp = dk.namespace(t)
        ints = xp.astype(t, strict.int64)
        assert ints.dtype == strict.int64
        return xp.sum(xp.astype(t, strict.float32) * xp.astype(ints, strict.float64))
    cast = dk.gradient(casts, strict.asarray([1.7, -2.6]))
    assert to_host(cast.grad).tolist() == [1.0, -2.0]  # d/dt (t trunc(t)) = trunc(t)


# --- the array object: the standard's methods and attributes on every trace -----------------------------------

@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_array_object_methods_work_on_traces_and_conversions_that_drop_the_trace_are_refused(mode):
    x = np.array([[0.25, 1.5, 2.75], [-0.5, 3.25, 4.0]])
    seen = {}

    def f(t):
        xp = t.__array_namespace__()  # (how array-API code finds its namespace)
        seen.update(size=t.size, mT=t.mT.shape, device=t.device, same=t.to_device(t.device) is t)
        for convert in (int, complex, operator.index, float):
            with pytest.raises(TypeError, match="drop"):
                convert(t[0, 0])
        with pytest.raises(ValueError, match="stays on its device"):
            t.to_device("gpu:0")
        # x % 2 = x - 2 floor(x / 2): slope 1 away from the jumps; x // 2 is a constant
        return xp.sum(3.0 * (t % 2.0) + 5.0 * (t // 2.0) + (7.0 % (t + 10.0)))

    if mode == "reverse":
        grad = dk.gradient(f, x).grad
    else:
        grad = np.array([dk.jvp(f, x, e.reshape(x.shape))[1] for e in np.eye(x.size)]).reshape(x.shape)
    # d/dt [7 % (t + 10)] = -floor(7 / (t + 10)) = 0 here (t + 10 > 7)
    assert grad.tolist() == [[3.0] * 3] * 2
    assert seen == dict(size=6, mT=(3, 2), device="cpu", same=True)


def test_a_branch_on_a_dual_takes_its_primal():
    f = lambda t: t[0] * t[1] if t[0] > 0 else -t[0]  # noqa: E731
    assert dk.jvp(f, np.array([2.0, 3.0]), np.array([1.0, 0.0]))[1] == 3.0
    assert dk.jvp(lambda t: t[0] ** 2 if bool(t[0]) else 0.0, np.array([3.0]), np.array([1.0]))[1] == 6.0


def test_the_namespace_info_is_the_values_library_s_and_absent_for_mpmath():
    import array_api_strict as strict
    from diffkit.backends import MP
    seen = []

    def f(t):
        seen.append(dk.namespace(t).__array_namespace_info__().default_dtypes()["real floating"])
        return dk.namespace(t).sum(t * t)

    dk.gradient(f, np.ones(2))
    dk.gradient(f, strict.asarray(np.ones(2)))
    assert seen[0] == np.float64 and seen[1] == strict.float64
    assert not hasattr(MP, "__array_namespace_info__")  # (mpmath's object arrays have no such dtypes to report)
