"""Forward mode: JVPs of each primitive family, forward-mode gradients, nested differentiation (issue 15).

References are independent of the engine: closed forms derived by hand, and the
mpmath referee (certified by high-precision differences of f alone).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffkit as dk


def digits(a, b) -> float:
    err = np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)
    return 17.0 if err == 0 else -math.log10(err)


# --- the JVP of each primitive family, against hand-derived derivatives ------------------------------

RNG = np.random.default_rng(7)
X, V = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 3))
A, B = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))


def test_jvp_elementwise_tanh_is_the_derivative_times_the_tangent():
    _, t = dk.jvp(lambda x: dk.namespace(x).tanh(x), X, V)
    np.testing.assert_allclose(t, V / np.cosh(X) ** 2, rtol=1e-14)


def test_jvp_elementwise_two_inputs_power():
    # d(x^y) = y x^(y-1) dx + x^y log(x) dy, both perturbed through one flat theta
    x, y = np.array([1.5, 2.5]), np.array([0.7, -1.3])
    dx, dy = np.array([0.3, -1.1]), np.array([2.0, 0.4])
    _, t = dk.jvp(lambda th: th[:2] ** th[2:], np.concatenate([x, y]), np.concatenate([dx, dy]))
    np.testing.assert_allclose(t, y * x ** (y - 1) * dx + x ** y * np.log(x) * dy, rtol=1e-14)


def test_jvp_linear_reshape_sum_and_slices_apply_the_forward_to_the_tangent():
    f = lambda x: dk.namespace(x).sum(dk.namespace(x).reshape(x, (3, 2))[1:], axis=0)  # noqa: E731
    _, t = dk.jvp(f, X, V)
    np.testing.assert_allclose(t, V.reshape(3, 2)[1:].sum(axis=0), rtol=1e-15)


def test_jvp_multilinear_matmul_is_the_product_rule():
    theta, v = np.concatenate([X.ravel(), A.ravel()]), np.concatenate([V.ravel(), B.ravel()])
    f = lambda th: dk.namespace(th).reshape(th[:6], (2, 3)) @ dk.namespace(th).reshape(th[6:], (3, 4))  # noqa: E731
    _, t = dk.jvp(f, theta, v)
    np.testing.assert_allclose(t, V @ A + X @ B, rtol=1e-13, atol=1e-14)


def test_jvp_explicit_rule_logsumexp_is_softmax_dot_tangent():
    _, t = dk.jvp(lambda x: dk.namespace(x).logsumexp(x, axis=-1), X, V)
    p = np.exp(X) / np.exp(X).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(t, (p * V).sum(axis=-1), rtol=1e-14)


def test_jvp_explicit_rule_softmax_cross_entropy_against_the_referee():
    prob = dk.problems.mlp([3, 4, 3], activation="tanh", loss="softmax_cross_entropy", batch=5)
    v = np.random.default_rng(3).standard_normal(prob.size)
    ref = dk.reference(prob, digits=40)
    _, t = dk.jvp(prob.fn, prob.theta0, v)
    assert digits(t, float(np.dot(ref.grad, v))) >= 13


def test_jvp_checks_the_tangent_shape():
    with pytest.raises(ValueError, match="shape"):
        dk.jvp(lambda x: x * x, np.ones(3), np.ones(2))


# --- forward-mode gradients ---------------------------------------------------------------------

@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(hidden=st.integers(1, 5), n_in=st.integers(1, 4), n_out=st.integers(2, 3), batch=st.integers(1, 6),
       activation=st.sampled_from(["tanh", "sigmoid", "softplus"]), seed=st.integers(0, 10_000))
def test_forward_ad_gradient_matches_reverse_and_the_referee(hidden, n_in, n_out, batch, activation, seed):
    prob = dk.problems.mlp([n_in, hidden, n_out], activation=activation, loss="softmax_cross_entropy",
                           l2=1e-3, batch=batch, seed=seed)
    fwd = dk.gradient(prob, method="forward_ad")
    rev = dk.gradient(prob, method="reverse")
    ref = dk.reference(prob, digits=30)
    assert digits(fwd.grad, rev.grad) >= 13
    assert digits(fwd.grad, ref.grad) >= 13
    assert fwd.cost.counters["passes"] == prob.size == fwd.cost.evaluations  # one dual pass per parameter


def test_forward_ad_closed_form():
    r = dk.gradient(lambda t: t[0] ** 2 * dk.namespace(t).exp(t[1]), np.array([3.0, 0.5]), method="forward_ad")
    np.testing.assert_allclose(r.grad, [6 * np.exp(0.5), 9 * np.exp(0.5)], rtol=1e-15)
    assert r.value == pytest.approx(9 * np.exp(0.5), rel=1e-15)


# --- nested differentiation -----------------------------------------------------------------------

def _confusion(method):
    def outer(x):  # x * d/dy (x + y) at y = 1; the inner gradient is 1, so d/dx of the whole is 1
        inner = dk.gradient(lambda y: x[0] + y[0], x * 0 + 1.0, method=method).grad
        return x[0] * inner[0]
    return outer


@pytest.mark.parametrize("inner", ["reverse", "forward_ad"])
@pytest.mark.parametrize("outer", ["reverse", "forward_ad"])
def test_perturbation_confusion_through_dk_gradient(inner, outer):
    r = dk.gradient(_confusion(inner), np.array([3.0]), method=outer)
    assert r.grad.tolist() == [1.0]  # perturbation confusion would give 2


def test_perturbation_confusion_through_jvp_and_vjp():
    assert float(dk.jvp(_confusion("reverse"), np.array([3.0]), np.array([1.0]))[1]) == 1.0
    value, back = dk.vjp(_confusion("reverse"), np.array([3.0]))
    assert back(1.0).tolist() == [1.0]


def test_third_derivative_by_nesting_three_deep():
    # d^3/dx^3 x^4 = 24 x, at x = 2: 48
    def d(f):
        return lambda x: dk.gradient(f, x).grad[0]
    third = d(d(lambda x: x[0] ** 4))
    r = dk.gradient(lambda x: third(x), np.array([2.0]))
    assert r.grad.tolist() == [48.0]


def test_nested_gradient_in_mpmath_is_certified():
    # f(t) = |grad g(t)|^2 with g = sum t^3: grad g = 3 t^2, f = 9 sum t^4, grad f = 36 t^3
    t0 = np.array([0.5, -1.25, 2.0])

    def f(t):
        return dk.namespace(t).sum(dk.gradient(lambda s: dk.namespace(s).sum(s ** 3), t).grad ** 2)
    ref = dk.reference(f, t0, digits=40)
    assert ref.certification.agreement_digits >= 30
    np.testing.assert_array_equal(ref.grad, 36 * t0 ** 3)


def test_nested_gradient_of_an_mlp_keeps_softmax_cross_entropy_traced():
    prob = dk.problems.mlp([2, 3, 2], activation="tanh", loss="softmax_cross_entropy", batch=3)

    def gnorm(t):
        return dk.namespace(t).sum(dk.gradient(prob.fn, t).grad ** 2)
    ref = dk.reference(gnorm, prob.theta0, digits=40)  # certified by differences of gnorm in mpmath alone
    assert digits(dk.gradient(gnorm, prob.theta0).grad, ref.grad) >= 13


def test_nested_gradient_names_nesting_for_unsupported_methods():
    def outer(x):
        return dk.gradient(lambda y: y[0] ** 2, x, method="central").grad[0]
    with pytest.raises(ValueError, match="nested differentiation"):
        dk.gradient(outer, np.array([1.0]))


def _central(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


def test_jvp_of_solve_triangular_reads_only_its_triangle():
    rng = np.random.default_rng(4)
    L = np.tril(rng.standard_normal((3, 3))) + 3 * np.eye(3)
    dL, b = rng.standard_normal((3, 3)), rng.standard_normal(3)
    for lower in (True, False):
        A = L if lower else L.T
        f = lambda x: dk.namespace(x).linalg.solve_triangular(x, b, lower=lower)  # noqa: E731
        want = _central(f, A, np.tril(dL) if lower else np.triu(dL))  # the other triangle is never read
        np.testing.assert_allclose(dk.jvp(f, A, dL)[1], want, rtol=1e-8, atol=1e-9)


def test_jvp_of_cholesky_takes_the_symmetric_part_of_the_tangent():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((3, 3))
    S, dS = A @ A.T + 3 * np.eye(3), rng.standard_normal((3, 3))
    for upper in (False, True):
        f = lambda x: dk.namespace(x).linalg.cholesky(x, upper=upper)  # noqa: E731
        np.testing.assert_allclose(dk.jvp(f, S, dS)[1], _central(f, S, (dS + dS.T) / 2), rtol=1e-8, atol=1e-9)
