"""The array API's linear-algebra extension on traced arrays: eigh, eigvalsh, svd, svdvals, qr, pinv, matrix_norm,
matrix_power, matrix_rank and cross.  Values against numpy's own routines; derivatives against closed forms derived
by hand (the largest eigenvalue's v v^T, the nuclear norm's U V^T, log|det| through R's diagonal) or against
central differences of numpy's routine; never against another diffkit route.  The generated tests
(test_primitives) check each decomposition's rules against the mpmath catalogue."""
from __future__ import annotations

import array_api_strict as strict
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit.array_api import to_host


def _grad(f, x, method="reverse"):
    return dk.gradient(f, np.asarray(x, dtype=float), method=method).grad


def _numpy_central(f, x, h=1e-6):
    """Central differences of a plain-numpy function (the independent check of a gradient)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _random(shape, seed):
    return np.random.default_rng(seed).uniform(-1, 1, shape)


# --- eigh: values, conventions, and the derivative of an eigenvalue ---------------------------------------------

def test_eigh_values_are_numpys_and_each_vectors_largest_entry_is_positive():
    a = _random((4, 4), 0)
    s = a + a.T
    w, V = dk.namespace(s).linalg.eigh(s)
    want_w, want_V = np.linalg.eigh(s)
    assert np.allclose(w, want_w, rtol=0, atol=1e-14)
    for k in range(4):
        col = V[:, k]
        assert col[np.argmax(np.abs(col))] > 0
        assert np.allclose(col, want_V[:, k] * np.sign(want_V[np.argmax(np.abs(want_V[:, k])), k]), atol=1e-13)


@pytest.mark.parametrize("method", ["reverse", "forward_ad", "compiled"])
def test_gradient_of_the_largest_eigenvalue_of_a_2x2_is_the_closed_form(method):
    # lambda+ = (a + c)/2 + r, r = sqrt(((a - c)/2)^2 + b^2): d/da = 1/2 + (a - c)/(4 r), d/db = b / r (b sits twice)
    a, b, c = 0.7, -0.4, 0.1

    def f(t):
        xp = dk.namespace(t)
        m = xp.reshape(xp.stack([t[0], t[1], t[1], t[2]]), (2, 2))
        return xp.linalg.eigvalsh(m)[1]

    r = np.hypot((a - c) / 2, b)
    want = [0.5 + (a - c) / (4 * r), b / r, 0.5 - (a - c) / (4 * r)]
    got = dk.compile(f, np.array([a, b, c]))(np.array([a, b, c]))[1] if method == "compiled" else \
        _grad(f, [a, b, c], method)
    assert np.allclose(got, want, rtol=1e-13, atol=0)


def test_gradient_of_an_eigenvalue_is_v_v_transpose_for_a_symmetric_input():
    s = _random((5, 5), 1)
    s = s + s.T
    v = np.linalg.eigh(s)[1][:, -1]
    got = _grad(lambda t: dk.namespace(t).linalg.eigvalsh(t)[-1], s)
    assert np.allclose(got, np.outer(v, v), rtol=0, atol=1e-13)


def test_second_derivatives_through_eigvalsh_and_svdvals_are_those_of_the_frobenius_norm():
    # sum(w^2) = trace(A^2) = sum of squares: on [[t0, t1], [t1, t2]] gradient (2 t0, 4 t1, 2 t2), Hessian diag(2, 4, 2);
    # sum(s^2) = ||A||_F^2: Hessian 2 I.  The Hessians nest the eigenvector and singular-vector rules.
    t0 = np.array([0.3, -0.8, 1.1])

    def eig_squares(t):
        xp = dk.namespace(t)
        w = xp.linalg.eigvalsh(xp.reshape(xp.stack([t[0], t[1], t[1], t[2]]), (2, 2)))
        return xp.sum(w * w)

    assert np.allclose(dk.hessian(eig_squares, t0).hessian, np.diag([2.0, 4.0, 2.0]), rtol=0, atol=1e-12)
    a = _random((6,), 2)
    svd_squares = lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.svdvals(dk.namespace(t).reshape(t, (3, 2))) ** 2)  # noqa: E731
    assert np.allclose(dk.hessian(svd_squares, a).hessian, 2 * np.eye(6), rtol=0, atol=1e-12)


# --- svd: reconstruction, conventions, and the nuclear and spectral norms' gradients ---------------------------

@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_svd_reconstructs_x_and_the_nuclear_norms_gradient_is_u_v_transpose(m, n, seed):
    a = _random((m, n), seed)
    U, S, Vh = dk.namespace(a).linalg.svd(a, full_matrices=False)
    assert np.allclose((U * S) @ Vh, a, rtol=0, atol=1e-13)
    assert np.allclose(S, np.linalg.svd(a, compute_uv=False), rtol=0, atol=1e-14)
    assert all(U[np.argmax(np.abs(U[:, k])), k] > 0 for k in range(U.shape[1]))
    want_U, _, want_Vh = np.linalg.svd(a, full_matrices=False)
    got = _grad(lambda t: dk.namespace(t).linalg.matrix_norm(t, ord="nuc"), a)
    assert np.allclose(got, want_U @ want_Vh, rtol=0, atol=1e-12)  # d||A||_* = U V^T (full rank, distinct s)


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3)])
def test_singular_vector_gradients_match_central_differences_of_numpys_svd(shape):
    a = _random(shape, 3)
    w = _random((min(shape), shape[1]), 4)

    def plain(x):  # the sign convention, applied to numpy's own factors
        U, _, Vh = np.linalg.svd(x, full_matrices=False)
        signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
        U = U * signs
        return np.sum((Vh * signs[:, None]) ** 3 * w) + np.sum(U ** 2 * U[:, :1])

    def traced(t):
        U, _, Vh = dk.namespace(t).linalg.svd(t, full_matrices=False)
        return dk.namespace(t).sum(Vh ** 3 * w) + dk.namespace(t).sum(U ** 2 * U[:, :1])

    assert np.allclose(_grad(traced, a), _numpy_central(plain, a), rtol=0, atol=1e-7)
    assert np.allclose(_grad(traced, a, "forward_ad"), _numpy_central(plain, a), rtol=0, atol=1e-7)


def test_svd_refuses_full_matrices_of_a_non_square_matrix_and_says_what_to_pass():
    a = _random((4, 2), 5)
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.svd(t).U), a)
    U, S, Vh = dk.namespace(a[:2]).linalg.svd(a[:2])  # (square: the full SVD is the reduced one)
    assert np.allclose((U * S) @ Vh, a[:2])


# --- qr --------------------------------------------------------------------------------------------------------

def test_qr_has_r_diagonal_positive_and_log_det_through_r_has_gradient_inverse_transpose():
    a = _random((4, 4), 6) + 3 * np.eye(4)
    Q, R = dk.namespace(a).linalg.qr(a)
    assert np.allclose(Q @ R, a, atol=1e-13) and np.all(np.diagonal(R) > 0) and np.allclose(R, np.triu(R))
    # log|det A| = sum(log(diag(R))) for A = QR with Q orthogonal: its gradient is A^-T (Jacobi's formula)
    f = lambda t: dk.namespace(t).sum(dk.namespace(t).log(dk.namespace(t).linalg.diagonal(dk.namespace(t).linalg.qr(t).R)))  # noqa: E731
    for method in ("reverse", "forward_ad"):
        assert np.allclose(_grad(f, a, method), np.linalg.inv(a).T, rtol=0, atol=1e-13)


def test_q_of_a_tall_matrix_has_the_gradient_of_central_differences_of_numpys_qr():
    a = _random((5, 3), 7)
    w = _random((5, 3), 8)

    def plain(x):
        Q, R = np.linalg.qr(x)
        return np.sum((Q * np.sign(np.diagonal(R))) ** 3 * w)

    traced = lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.qr(t).Q ** 3 * w)  # noqa: E731
    assert np.allclose(_grad(traced, a), _numpy_central(plain, a), rtol=0, atol=1e-8)


def test_qr_refuses_what_has_no_derivative():
    with pytest.raises(NotImplementedError, match="rows as columns"):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.qr(t).R), _random((2, 3), 9))
    with pytest.raises(NotImplementedError, match="mode='reduced'"):
        dk.namespace(_random((3, 2), 9)).linalg.qr(_random((3, 2), 9), mode="complete")
    with pytest.raises(ValueError, match="'reduced' or 'complete'"):
        dk.namespace(_random((3, 2), 9)).linalg.qr(_random((3, 2), 9), mode="r")


# --- composed: pinv, matrix_norm, matrix_power, matrix_rank, cross -----------------------------------------------

def test_pinv_is_numpys_and_its_gradient_matches_central_differences():
    a = _random((4, 3), 10)
    w = _random((3, 4), 11)
    assert np.allclose(dk.namespace(a).linalg.pinv(a), np.linalg.pinv(a), rtol=0, atol=1e-13)
    got = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.pinv(t) * w), a)
    assert np.allclose(got, _numpy_central(lambda x: np.sum(np.linalg.pinv(x) * w), a), rtol=0, atol=1e-8)


@pytest.mark.parametrize("ord", ["fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf])
def test_matrix_norm_values_are_numpys(ord):
    a = _random((2, 4, 3), 12)
    got = dk.namespace(a).linalg.matrix_norm(a, ord=ord, keepdims=True)
    assert np.allclose(got, np.linalg.norm(a, ord=ord, axis=(-2, -1), keepdims=True), rtol=1e-14, atol=0)


def test_matrix_norm_gradients_are_the_hand_derived_ones():
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = lambda o: _grad(lambda t: dk.namespace(t).linalg.matrix_norm(t, ord=o), a)  # noqa: E731
    assert np.allclose(grad("fro"), a / np.sqrt(np.sum(a * a)), rtol=1e-15)
    assert grad(1).tolist() == [[0.0, -1.0], [0.0, 1.0]]  # the largest column sum, |-2| + |3|: sign(a) there
    assert grad(np.inf).tolist() == [[0.0, 0.0], [1.0, 1.0]]  # the largest row sum, 0.5 + 3
    with pytest.raises(ValueError, match="valid: 'fro', 'nuc'"):
        dk.namespace(a).linalg.matrix_norm(a, ord=3)


@pytest.mark.parametrize("n", [-3, -1, 0, 1, 2, 5])
def test_matrix_power_values_are_numpys(n):
    a = _random((3, 3), 13) + 2 * np.eye(3)
    assert np.allclose(dk.namespace(a).linalg.matrix_power(a, n), np.linalg.matrix_power(a, n), rtol=1e-13)


def test_matrix_power_gradient_of_the_square_is_w_at_plus_at_w():
    a, w = _random((3, 3), 14), _random((3, 3), 15)
    got = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.matrix_power(t, 2) * w), a)
    assert np.allclose(got, w @ a.T + a.T @ w, rtol=0, atol=1e-15)  # d(A^2) = dA A + A dA
    with pytest.raises(TypeError, match="integer"):
        dk.namespace(a).linalg.matrix_power(a, 1.5)
    with pytest.raises(ValueError, match="square"):
        dk.namespace(a).linalg.matrix_power(a[:2], 2)


def test_matrix_rank_is_numpys_and_an_integer_under_a_trace():
    a = _random((4, 2), 16) @ _random((2, 5), 17)  # rank 2
    assert dk.namespace(a).linalg.matrix_rank(a) == np.linalg.matrix_rank(a) == 2
    seen = {}

    def f(t):
        seen["rank"] = dk.namespace(t).linalg.matrix_rank(t)
        return dk.namespace(t).sum(t)
    dk.gradient(f, a)
    assert int(seen["rank"]) == 2


def test_cross_values_are_numpys_and_the_gradient_is_the_triple_products():
    a, b, w = _random((2, 3), 18), _random((3,), 19), _random((2, 3), 20)
    assert np.allclose(dk.namespace(a).linalg.cross(a, b), np.cross(a, b), rtol=0, atol=1e-15)
    # w . (a x b) = a . (b x w) = b . (w x a)
    got = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.cross(t, b) * w), a)
    assert np.allclose(got, np.cross(b, w), rtol=0, atol=1e-15)
    got_b = _grad(lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.cross(a, t) * w), b)
    assert np.allclose(got_b, np.sum(np.cross(w, a), axis=0), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="size 3"):
        dk.namespace(a).linalg.cross(a[:, :2], b[:2])


# --- on array-api-strict values ----------------------------------------------------------------------------------

def test_the_decompositions_on_array_api_strict_values_give_numpys_values_and_gradients():
    a = _random((4, 3), 21)
    s = a.T @ a
    sa = strict.asarray(s)
    w, V = dk.namespace(sa).linalg.eigh(sa)
    assert np.allclose(to_host(w), np.linalg.eigvalsh(s), rtol=0, atol=1e-14)
    assert np.allclose(to_host(V), dk.namespace(s).linalg.eigh(s).eigenvectors, rtol=0, atol=1e-14)
    f = lambda t: dk.namespace(t).linalg.matrix_norm(t, ord="nuc") + dk.namespace(t).sum(dk.namespace(t).linalg.qr(t).R)  # noqa: E731
    want = _grad(f, a)
    got = dk.gradient(f, strict.asarray(a)).grad
    assert np.allclose(to_host(got), want, rtol=0, atol=1e-13)
    U, _, Vh = np.linalg.svd(a, full_matrices=False)
    assert np.allclose(want - U @ Vh, _numpy_central(lambda x: np.sum(np.linalg.qr(x)[1] * np.sign(
        np.diagonal(np.linalg.qr(x)[1]))[:, None]), a), rtol=0, atol=1e-8)


@pytest.mark.parametrize("peer", ["jax", "torch"])
def test_the_decompositions_gradients_are_jaxs_and_pytorchs_on_sign_free_functions(peer):
    # JAX and PyTorch differentiate their own LAPACK calls with their own rules: an independent check.  Their
    # vectors' signs differ from ours, so the function reads only what the signs cancel out of (u1 v1^T, R^2, values)
    pytest.importorskip(peer)
    a = _random((4, 3), 22)

    def f(t):
        xp = dk.namespace(t)
        U, S, Vh = xp.linalg.svd(t, full_matrices=False)
        Q, R = xp.linalg.qr(t)
        w, V = xp.linalg.eigh(t.T @ t)
        return (xp.sum(S ** 3) + xp.sum((U[:, :1] @ Vh[:1]) ** 3) + xp.sum(R ** 2 * Q[:3] ** 2)
                + xp.sum(w * w) + xp.sum((V[:, -1:] @ xp.matrix_transpose(V[:, -1:])) ** 3)
                + xp.linalg.matrix_norm(t, ord=2) + xp.sum(xp.linalg.pinv(t) ** 2))

    want = dk.gradient(f, a, method=peer).grad
    assert np.allclose(_grad(f, a), want, rtol=0, atol=1e-12 * np.max(np.abs(want)))


@pytest.mark.parametrize("op, call", [("svd", lambda xp, t: xp.linalg.svd(t)), ("qr", lambda xp, t: xp.linalg.qr(t)),
                                      ("eigh", lambda xp, t: xp.linalg.eigh(t)),
                                      ("pinv", lambda xp, t: xp.linalg.pinv(t)),
                                      ("matrix_norm", lambda xp, t: xp.linalg.matrix_norm(t)),
                                      ("matrix_rank", lambda xp, t: xp.linalg.matrix_rank(t)),
                                      ("matrix_power", lambda xp, t: xp.linalg.matrix_power(t, 2))],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_a_vector_is_refused_by_the_op_it_was_given_to_with_its_shape(op, call):
    with pytest.raises(ValueError, match=rf"^{op}: needs \(a stack of\) (square )?matrices.*shape \(6,\)"):
        dk.gradient(lambda t: dk.namespace(t).sum(call(dk.namespace(t), t)[0]), np.ones(6))
    if op == "eigh":
        with pytest.raises(ValueError, match=r"^eigh: needs \(a stack of\) square matrices; got shape \(2, 3\)"):
            dk.namespace(np.ones((2, 3))).linalg.eigh(np.ones((2, 3)))
