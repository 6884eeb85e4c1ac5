"""Forward mode with a batch of tangents (``dk.jvp(..., batch=True)``, ``dk.jacobian`` in forward mode).

Generated over the primitive table, like the plain forward-mode tests: every
primitive's JVP rule carries three tangents at once and each must equal the
catalogue's directional derivative (mpmath); every primitive run on batched
values must equal the primitive run on each member (numpy's own forward: the
definition of a batch).  Then Jacobians against hand-derived entries and the
50-digit referee, nesting (a Hessian in one batched pass over the tape), and
the no-ties fast path of max/min's JVP against its closed form.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import diffkit as dk
from diffkit.forward import gradient_of
from diffkit.primitives import PRIMITIVES
from diffkit.tape.batching import batched_call

import catalogue as C
from test_primitives import DIFFERENTIABLE, EXAMPLES, NAMES, NUMPY, _call, _unpacked, close, directional_along, draw

K = 3


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@EXAMPLES
@given(seed=st.integers(0, 2 ** 31), example=st.integers(0, 5))
def test_batched_forward_rule_matches_the_catalogue_derivative(name, seed, example):
    prim = PRIMITIVES[name]
    inputs, params = draw(prim, seed, example)
    f, theta, diff = _unpacked(prim, inputs, params)
    V = np.random.default_rng(seed + 3).standard_normal((K,) + theta.shape)
    _, tangents = dk.jvp(f, theta, V, batch=True)
    rtol = 1e-12 if C.derivative_kind(name) == "scalar" else 1e-9
    for i in range(K):
        want = directional_along(name, prim, inputs, params, diff, V[i])
        close(np.broadcast_to(tangents[i], np.shape(want)), want, rtol, f"{name} batched forward rule, tangent {i}")


def _members(prim, inputs, which, k):
    """k members per batched input: the input moved a little along its own direction (a matrix input keeps
    its structure: a multiple of the identity)."""
    out = []
    for j, (x, w) in enumerate(zip(inputs, which)):
        if not w:
            out.append(x)
            continue
        square = prim.domain.matrix and prim.domain.matrix != "sorted"  # (a shift keeps a sorted input sorted)
        step = 0.01 * np.eye(np.shape(x)[-1]) if square and j == 0 else 0.01 * np.ones(np.shape(x))
        out.append(np.stack([x + i * step for i in range(k)]))
    return out


@pytest.mark.parametrize("example", [0, 1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_a_batched_primitive_is_the_primitive_on_each_member(name, example):
    prim = PRIMITIVES[name]
    inputs, params = draw(prim, 11, example)
    batchable = [np.asarray(x).dtype != bool for x in inputs]
    for pattern in range(1, 1 << len(inputs)):  # every choice of which inputs carry the batch
        which = [bool(pattern >> j & 1) and b for j, b in enumerate(batchable)]
        if not any(which):
            continue
        vals = _members(prim, inputs, which, K)
        got = np.asarray(batched_call(prim, vals, which, params, K))
        want = np.stack([np.asarray(_call(NUMPY, prim, [v[i] if w else v for v, w in zip(vals, which)], params))
                         for i in range(K)])
        assert got.shape == want.shape, f"{name} batched over {which}: shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14, err_msg=f"{name} batched over {which}")


@pytest.mark.parametrize("index", [(slice(1, 3),), ([2, 0, 2],), (Ellipsis, 1), (np.array([True, False, True]),),
                                   ([0, 1], slice(None), [1, 0]), (1, slice(None), [0, 1]), (None, 0)],
                         ids=["slice", "repeat", "ellipsis", "mask", "apart", "int-apart", "newaxis"])
def test_batched_indexing_keeps_the_batch_axis_first(index):
    x = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    if isinstance(index[0], np.ndarray):
        x = x[:, 0, 0]
    batch = np.stack([x, 10 * x, -x])
    got = batched_call(PRIMITIVES["getitem"], [batch], [True], {"index": index}, 3)
    np.testing.assert_array_equal(got, np.stack([m[index] for m in batch]))


def _vector(t):
    """(t0 t1, sin t0, t1^2 t2, exp t2, t0 + t1 + t2)."""
    xp = dk.namespace(t)
    return xp.stack([t[0] * t[1], xp.sin(t[0]), t[1] * t[1] * t[2], xp.exp(t[2]), xp.sum(t)])


@pytest.mark.parametrize("batch, passes", [(None, 1), (2, 2), (1, 3)])
def test_forward_jacobian_closed_form_in_one_pass_or_chunks(batch, passes):
    t0, t1, t2 = 0.3, -1.2, 0.7
    want = [[t1, t0, 0.0], [np.cos(t0), 0.0, 0.0], [0.0, 2 * t1 * t2, t1 * t1], [0.0, 0.0, np.exp(t2)],
            [1.0, 1.0, 1.0]]
    J = dk.jacobian(_vector, np.array([t0, t1, t2]), mode="forward", batch=batch)
    assert J.passes == passes
    np.testing.assert_allclose(J.jacobian, want, rtol=1e-15, atol=1e-16)


def _mixed(t):
    """Many primitives at once: matmul, integer and boolean indexing, concat, reductions along axes, where, max."""
    xp = dk.namespace(t)
    a = xp.reshape(t[0:6], (2, 3))
    b = xp.concat([xp.tanh(a), a[:, [2, 0]]], axis=1)  # (2, 5)
    m = xp.max(b * b, axis=0)                               # (5,)
    s = xp.sum(xp.exp(a) @ xp.reshape(t[3:9], (3, 2)), axis=-1)
    w = xp.where(t[0:5] > 0, xp.log1p(t[0:5] * t[0:5]), xp.sin(t[4:9]))
    return xp.concat([m, s, w, xp.stack([xp.logsumexp(t), t[1] / t[2]])])


def test_forward_jacobian_of_many_primitives_matches_the_50_digit_referee():
    theta = np.random.default_rng(4).uniform(-1.5, 1.5, 9)
    ref = np.asarray(dk.reference_jacobian(_mixed, theta, digits=50).jacobian, dtype=float)
    J = dk.jacobian(_mixed, theta, mode="forward")
    assert J.passes == 1
    np.testing.assert_allclose(J.jacobian, ref, rtol=1e-13, atol=1e-14)


def test_a_hessian_in_one_batched_pass_over_the_tape():
    # forward over reverse with every coordinate direction at once: the Hessian of
    # f = t0^2 t1 + sin(t1) t2 is [[2 t1, 2 t0, 0], [2 t0, -sin(t1) t2, cos t1], [0, cos t1, 0]]
    def f(t):
        return t[0] * t[0] * t[1] + dk.namespace(t).sin(t[1]) * t[2]
    t0, t1, t2 = 0.5, 1.1, -2.0
    grad, H = dk.jvp(lambda t: gradient_of(f, t), np.array([t0, t1, t2]), np.eye(3), batch=True)
    np.testing.assert_allclose(grad, [2 * t0 * t1, t0 * t0 + np.cos(t1) * t2, np.sin(t1)], rtol=1e-15)
    want = [[2 * t1, 2 * t0, 0.0], [2 * t0, -np.sin(t1) * t2, np.cos(t1)], [0.0, np.cos(t1), 0.0]]
    np.testing.assert_allclose(H, want, rtol=1e-14, atol=1e-16)


def test_reverse_over_a_batched_forward_pass():
    # g(t) = sum_i w_i (J(t) e_i)_0 for f(t) = (t0^2 t1, ...): J e_0 = (2 t0 t1), J e_1 = (t0^2), so
    # g = w0 2 t0 t1 + w1 t0^2 and grad g = (2 w0 t1 + 2 w1 t0, 2 w0 t0)
    w = np.array([0.5, -3.0])

    def g(t):
        xp = dk.namespace(t)
        _, tangents = dk.jvp(lambda s: xp.stack([s[0] * s[0] * s[1], s[1]]), t, np.eye(2), batch=True)
        return xp.sum(tangents[:, 0] * w)
    t0, t1 = 1.5, -0.4
    grad = dk.gradient(g, np.array([t0, t1])).grad
    np.testing.assert_allclose(grad, [2 * w[0] * t1 + 2 * w[1] * t0, 2 * w[0] * t0], rtol=1e-15)


def test_a_function_that_ignores_its_input_has_zero_batched_tangents():
    value, tangents = dk.jvp(lambda t: np.ones(4), np.zeros(2), np.eye(2), batch=True)
    assert np.shape(tangents) == (2, 4) and not np.any(tangents)


def test_batched_tangents_of_the_wrong_shape_are_refused_with_the_layout():
    with pytest.raises(ValueError, match=r"with batch=True, v is \(k, \*theta.shape\)"):
        dk.jvp(lambda t: t * t, np.ones(3), np.ones(3), batch=True)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        dk.jacobian(_vector, np.ones(3), mode="forward", batch=0)


@pytest.mark.parametrize("axis, keepdims", [(0, False), (1, False), ((0, 2), False), (None, False), (-1, True)])
@pytest.mark.parametrize("op", ["max", "min"])
def test_extremum_jvp_without_ties_is_the_tangent_at_the_extremum(op, axis, keepdims):
    # no ties: the derivative of max/min along an axis is the tangent's entry where the extremum sits
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    _, got = dk.jvp(lambda v: getattr(dk.namespace(v), op)(v, axis=axis, keepdims=keepdims), x, t)
    arg = np.argmax if op == "max" else np.argmin
    axes = tuple(range(3)) if axis is None else axis if isinstance(axis, tuple) else (axis,)
    axes = tuple(a % 3 for a in axes)
    rest = [a for a in range(3) if a not in axes]
    xm, tm = np.moveaxis(x, axes, range(3 - len(axes), 3)), np.moveaxis(t, axes, range(3 - len(axes), 3))
    flat_x = xm.reshape([x.shape[a] for a in rest] + [-1])
    flat_t = tm.reshape(flat_x.shape)
    want = np.take_along_axis(flat_t, arg(flat_x, axis=-1)[..., None], axis=-1)[..., 0]
    want = want.reshape(np.shape(getattr(np, op)(x, axis=axis, keepdims=keepdims)))
    np.testing.assert_array_equal(got, want)


def test_extremum_jvp_shares_the_tangent_among_ties():
    # max of (2, 2, 1) along the axis: the two tied entries share equally, (t0 + t1) / 2
    _, got = dk.jvp(lambda v: dk.namespace(v).max(v, axis=0), np.array([2.0, 2.0, 1.0]), np.array([1.0, 3.0, 5.0]))
    assert float(got) == 2.0


def test_a_lazy_pass_computes_a_long_chain_of_deferred_tangents_without_recursion():
    # f = (a^3000 t0)^2 through 3000 multiplications, second derivative 2 a^6000 by forward over reverse:
    # the deferred tangents form a chain longer than Python's recursion limit
    a = 1.0001

    def f(t):
        y = t[0]
        for _ in range(3000):
            y = y * a
        return y * y
    got = dk.hvp(f, np.array([0.7]), np.array([1.0])).hvp
    np.testing.assert_allclose(got, [2 * a ** 6000], rtol=1e-12)


def test_lazy_forward_mode_gives_the_tangent_and_the_batch():
    # f = (t0 t1, sin t0): J = [[t1, t0], [cos t0, 0]]
    t = np.array([0.3, -2.0])
    f = lambda s: dk.namespace(s).stack([s[0] * s[1], dk.namespace(s).sin(s[0])])  # noqa: E731
    _, tangent = dk.jvp(f, t, np.array([1.0, 0.0]), lazy=True)
    np.testing.assert_array_equal(tangent, [t[1], np.cos(t[0])])
    _, tangents = dk.jvp(f, t, np.eye(2), batch=True, lazy=True)
    np.testing.assert_array_equal(tangents, [[t[1], np.cos(t[0])], [t[0], 0.0]])
