"""dk.compile's program rewrites (diffkit/tape/rewrite.py): gathers before products, against the mpmath referee
and hand-derived Jacobians, and the chains it must leave whole."""
from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
from diffkit.tape import Tape, fused
from diffkit.tape.rewrite import gathers_first

C = np.linspace(-1.0, 2.0, 30).reshape(3, 10)  # a constant matrix: 10 columns, of which the gathers take fewer
IDX = (np.array([9, 0, 4, 4]), np.array([2, -1]))  # (a repeated column and a negative one)


def _mesh(t):
    """(A @ C + b) * 0.5, read at two sets of columns: the chain of ht's posed mesh, on a stack of two."""
    xp = dk.namespace(t)
    a = xp.reshape(t[:12], (2, 2, 3))
    b = xp.reshape(t[12:14], (2, 1, 1))
    return (a @ C + b) * 0.5


def _objective(t):
    xp = dk.namespace(t)
    mesh = _mesh(t)
    first, second = mesh[:, :, IDX[0]], mesh[:, :, IDX[1]]
    return xp.sum(xp.sin(first)) + xp.sum(second * second * t[0])


def _program(f, theta):
    tape = Tape(program=True, record_values=True)
    out = f(tape.leaf(theta))
    return tape, out


def test_each_gather_becomes_a_product_of_its_columns():
    tape, out = _program(_objective, np.linspace(-1.0, 1.0, 14))
    program, values, moved = gathers_first(tape.program, tape.values, (out.index,))
    products = [e for e in program if e is not None and e[0] == "op" and e[1].name == "matmul"]
    widths = sorted(e[3][1].shape for e in products)
    assert widths == [(3, 2), (3, 4), (3, 10)]  # the two gathered products, and the original, now unread
    for e in products[1:]:
        np.testing.assert_array_equal(e[3][1], C[:, IDX[0]] if e[3][1].shape[1] == 4 else C[:, IDX[1]])
    assert len(values) == len(program)
    np.testing.assert_allclose(values[moved[out.index]], out.value, rtol=1e-15)


@pytest.mark.parametrize("fuse", [False, pytest.param(True, marks=pytest.mark.skipif(
    not fused.available(), reason="numba is not installed (the fast extra)"))])
def test_the_rewritten_replay_matches_the_mpmath_referee_away_from_its_recording(fuse):
    rng = np.random.default_rng(3)
    g = dk.compile(_objective, rng.uniform(-1.0, 1.0, 14), fuse=fuse)
    g(np.ones(14))
    assert g.fused == fuse, g.fuse_reason
    for theta in (rng.uniform(-2.0, 2.0, 14), rng.uniform(-0.5, 0.5, 14)):
        value, grad = g(theta)
        want = dk.reference(_objective, theta)
        assert value == pytest.approx(want.value, rel=1e-13)
        np.testing.assert_allclose(grad, want.grad, rtol=1e-12, atol=1e-14)


def test_a_jacobian_through_gathered_columns_is_the_hand_derived_one():
    # out[s, r, j] = (sum_k a[s, r, k] C[k, idx_j] + b[s]) / 2: d/da[s, r, k] = C[k, idx_j] / 2, d/db[s] = 1/2
    def f(t):
        return dk.namespace(t).reshape(_mesh(t)[:, :, IDX[0]], (-1,))

    g = dk.compile(f, np.ones(14), jacobian=True)
    value, jac = g(np.arange(14.0))
    expected = np.zeros((2, 2, 4, 14))
    for s in range(2):
        for r in range(2):
            for j, column in enumerate(IDX[0]):
                expected[s, r, j, 6 * s + 3 * r:6 * s + 3 * r + 3] = C[:, column] / 2
                expected[s, r, j, 12 + s] = 0.5
    np.testing.assert_allclose(jac, expected.reshape(16, 14), rtol=1e-15, atol=1e-15)
    a, b = np.arange(12.0).reshape(2, 2, 3), np.arange(12.0, 14.0).reshape(2, 1, 1)
    np.testing.assert_allclose(value, ((a @ C + b) * 0.5)[:, :, IDX[0]].ravel(), rtol=1e-14)


X = np.linspace(-1.0, 1.0, 40).reshape(10, 4)  # a fixed data matrix: 10 rows, a minibatch of which is read
BATCH = np.array([7, 2, 2, 9])


def _minibatch(t):
    """(X @ W + bias)[batch, :]: the rows of a product by a constant on the left, through a bias row."""
    xp = dk.namespace(t)
    scores = X @ xp.reshape(t[:12], (4, 3)) + t[12:15]
    weights = np.arange(1.0, 5.0).reshape(4, 1)  # (each row its own weight: a wrong row changes the value)
    return xp.sum(xp.tanh(scores[BATCH, :]) * weights) + xp.sum(scores[BATCH[:2]] ** 2)


def test_rows_of_a_product_by_a_constant_on_the_left_are_the_product_of_those_rows():
    tape, out = _program(_minibatch, np.linspace(-1.0, 1.0, 15))
    program, _, _ = gathers_first(tape.program, tape.values, (out.index,))
    products = [e[3][0] for e in program if e is not None and e[0] == "op" and e[1].name == "matmul"]
    assert sorted(p.shape for p in products) == [(2, 4), (4, 4), (10, 4)]  # X[batch], X[batch[:2]], X (unread)
    np.testing.assert_array_equal(next(p for p in products if len(p) == 4), X[BATCH])
    rng = np.random.default_rng(9)
    g = dk.compile(_minibatch, rng.uniform(-1.0, 1.0, 15))
    theta = rng.uniform(-1.5, 1.5, 15)
    value, grad = g(theta)
    want = dk.reference(_minibatch, theta)
    assert value == pytest.approx(want.value, rel=1e-13)
    np.testing.assert_allclose(grad, want.grad, rtol=1e-12, atol=1e-14)


def _column_varies(t):  # rows gathered, but the added operand differs from row to row: left whole
    xp = dk.namespace(t)
    return xp.sum((X @ xp.reshape(t[:12], (4, 3)) + xp.reshape(t[4:14], (10, 1)))[BATCH] ** 2)


def _mixed_axes(t):  # rows of the product read once, columns once: no one rewrite serves both
    product = X @ dk.namespace(t).reshape(t[:12], (4, 3))
    return dk.namespace(t).sum(product[BATCH] ** 2) + dk.namespace(t).sum(product[:, np.array([0])])


def _read_whole(t):  # the whole product is read too: the gather would add work, not save it
    xp = dk.namespace(t)
    mesh = _mesh(t)
    return xp.sum(mesh[:, :, IDX[0]]) + xp.sum(mesh * mesh)


def _every_column(t):  # the gathers take every column between them (10 of 10): nothing to save
    mesh = _mesh(t)
    return dk.namespace(t).sum(mesh[:, :, np.arange(6)] ** 2) + dk.namespace(t).sum(mesh[:, :, np.arange(4, 10)])


def _inner_read_twice(t):  # an inner node of the chain (the product) is read elsewhere as well
    xp = dk.namespace(t)
    product = xp.reshape(t[:6], (2, 3)) @ C
    return xp.sum((product + 1.0)[:, IDX[0]]) + xp.sum(product)


def _row_varies(t):  # the other operand differs along the gathered axis: it would have to be gathered too
    xp = dk.namespace(t)
    return xp.sum(((xp.reshape(t[:6], (2, 3)) @ C) + t[4:14])[:, IDX[0]] ** 2)


@pytest.mark.parametrize("f", [_read_whole, _every_column, _inner_read_twice, _row_varies, _column_varies,
                               _mixed_axes], ids=lambda f: f.__name__)
def test_a_chain_read_elsewhere_or_taken_whole_is_left_as_it_is_and_still_right(f):
    theta = np.linspace(-1.0, 1.0, 14)
    tape, out = _program(f, theta)
    assert gathers_first(tape.program, tape.values, (out.index,)) is None
    value, grad = dk.compile(f, theta)(theta * 1.5)
    want = dk.reference(f, theta * 1.5)
    assert value == pytest.approx(want.value, rel=1e-13)
    np.testing.assert_allclose(grad, want.grad, rtol=1e-12, atol=1e-14)


_BRANCHES = {  # a guard recorded after the rewritten node reads it: a comparison, or a traced value's truth
    "comparison": lambda xp, total: total > 0,
    "truth": lambda xp, total: bool(xp.maximum(total, 0.0)),
}


@pytest.mark.parametrize("branch", sorted(_BRANCHES))
def test_guards_around_a_rewritten_chain_keep_reading_their_nodes_and_a_changed_branch_records_again(branch):
    def f(t):
        xp = dk.namespace(t)
        gathered = _mesh(t)[:, :, IDX[1]]
        scale = 2.0 if _BRANCHES[branch](xp, xp.sum(gathered)) else -3.0
        return xp.sum(gathered * gathered) * scale

    theta = np.linspace(0.1, 1.0, 14)
    g = dk.compile(f, theta)
    for point, records in ((theta, 1), (theta * 1.1, 1), (-theta, 2), (-theta * 1.1, 2)):  # -theta: the other branch
        value, grad = g(point)
        want = dk.reference(f, point)
        assert value == pytest.approx(want.value, rel=1e-13)
        np.testing.assert_allclose(grad, want.grad, rtol=1e-12, atol=1e-14)
        assert g.records == records
