"""Finite differences against independent references: dk.reference (mpmath), closed forms, exact counts."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import diffkit as dk
from diffkit import finite_differences as fd

FD_METHODS = ("forward", "backward", "central", "central4", "complex_step", "richardson")

# (layers, activation, loss, seed): smooth activations, several costs and seeds, P <= 83, batch 16
MLPS = [
    ([4, 8, 3], "tanh", "softmax_cross_entropy", 1),
    ([3, 6, 2], "sigmoid", "binary_cross_entropy", 2),
    ([3, 8, 2], "softplus", "half_squared_error", 3),
    ([5, 6, 4], "tanh", "squared_error", 4),
]


@pytest.fixture(scope="module", params=MLPS, ids=lambda c: f"{c[1]}-{c[2]}-seed{c[3]}")
def mlp_case(request):
    layers, act, loss, seed = request.param
    prob = dk.problems.mlp(layers, activation=act, loss=loss, batch=16, seed=seed, l2=1e-3)
    return prob, dk.reference(prob, digits=50, max_coordinates=0)


# Digits floors.  "Components above 1e-6 of the largest" is dk.error(rel_floor=1e-6).  The complex step meets
# its floor there.  The subtractive methods cannot: their absolute error is set by |f| (round-off eps|f|/h),
# not by |g_i|, so a component 200x below the largest loses 2.3 digits whatever the step (measured: forward
# 5.3, central 7.2-8.4, richardson 9.9-10.3 at 1e-6).  Their floors are asserted on components above 1e-2 of
# the largest (central, richardson); forward, backward and central are also judged on every component by
# test_every_component_within_the_error_model below.
FLOORS = [("complex_step", 1e-6, 14.0), ("central", 1e-2, 8.0), ("richardson", 1e-2, 10.0),
          ("central4", 1e-2, 10.0)]


@pytest.mark.parametrize("method,rel_floor,floor", FLOORS, ids=[f[0] for f in FLOORS])
def test_mlp_digits_against_reference(mlp_case, method, rel_floor, floor):
    prob, ref = mlp_case
    r = dk.gradient(prob, method=method)
    assert dk.error(r, ref, rel_floor=rel_floor).digits >= floor
    assert abs(r.value - ref.value) <= 1e-9 * abs(ref.value)  # value: f(theta) or the stencil's O(h^2) estimate


# f is evaluated to a few ulps of |f| (a mean over 16 rows), where the model's round-off term counts one
ROUNDOFF_SAFETY = 4


@pytest.mark.parametrize("method", ["forward", "backward", "central"])
def test_every_component_within_the_error_model(mlp_case, method):
    """Each of the P components is within the stencil's own bound T h_i^p |f^(p+1)| + R eps |f| / h_i.

    T, R and p come from :data:`STENCILS`.  The derivative f^(p+1) along e_i (f_ii for forward/backward, f_iii
    for central) is estimated by differencing the tape's gradient at +-1e-3: it only sizes the truncation term.
    """
    prob, ref = mlp_case
    theta, P, d = prob.theta0, prob.size, 1e-3
    grad = lambda t: dk.gradient(prob, t, method="reverse").grad  # noqa: E731
    shifted = [np.array([grad(theta + s * d * e)[i] for i, e in enumerate(np.eye(P))]) for s in (1, -1)]
    curvature = {1: (shifted[0] - shifted[1]) / (2 * d), 2: (shifted[0] - 2 * grad(theta) + shifted[1]) / d ** 2}
    stencil = fd.STENCILS[method]
    r = dk.gradient(prob, method=method)
    h = fd.steps(theta, None, True, stencil.default_step)
    bound = (stencil.truncation * h ** stencil.order * np.abs(curvature[stencil.order])
             + ROUNDOFF_SAFETY * stencil.roundoff * fd.EPS * abs(ref.value) / h)
    err = np.abs(r.grad - ref.grad)
    worst = int(np.argmax(err / bound))
    # a factor 2: the f^(p+1) estimate and the next Taylor term (measured: at most 0.52 of 2 x bound)
    assert np.all(err <= 2 * bound), (prob.component_name(worst), err[worst], bound[worst])
    # the bound is tight enough to see a wrong component: every one is far larger than its tolerance
    assert np.min(np.abs(ref.grad)) > 1e3 * bound.max()


COUNTS = {"forward": lambda P: P + 1, "backward": lambda P: P + 1, "central": lambda P: 2 * P,
          "central4": lambda P: 4 * P, "complex_step": lambda P: P, "richardson": lambda P: 4 * P}  # the table


@pytest.mark.parametrize("method", COUNTS)
def test_exact_evaluation_counts(method):
    calls = []

    def f(t):
        calls.append(1)
        return dk.namespace(t).sum(dk.namespace(t).sin(t) * t)
    for P in (1, 7):
        calls.clear()
        r = dk.gradient(f, np.linspace(0.1, 1, P), method=method)
        want = COUNTS[method](P)
        assert r.cost.evaluations == want == len(calls)


def test_richardson_levels_count_and_estimate(mlp_case):
    prob, ref = mlp_case
    r = dk.gradient(prob, method="richardson", levels=3)
    assert r.cost.evaluations == 6 * prob.size
    est = np.array(r.cost.counters["error_estimate"])
    assert est.shape == prob.theta0.shape
    # the estimate is an upper bound of the true error (against mpmath) on every component
    assert np.all(np.abs(r.grad - ref.grad) <= est)
    assert r.cost.counters["error_estimate_max"] == pytest.approx(est.max())


def _smooth(t):
    xp = dk.namespace(t)
    return xp.exp(t[0]) * xp.sin(t[0])  # f' = e^x (sin x + cos x); all derivatives O(1) at x = 0.7


@pytest.mark.parametrize("method,order", [("forward", 1), ("backward", 1), ("central", 2), ("central4", 4),
                                          ("richardson", 4), ("complex_step", 2)])
def test_measured_order_of_accuracy(method, order):
    x = 0.7
    exact = np.exp(x) * (np.sin(x) + np.cos(x))
    hs = np.array([0.08, 0.04, 0.02, 0.01])  # truncation side: errors far above round-off for every method
    errs = [abs(dk.gradient(_smooth, np.array([x]), method=method, h=h).grad[0] - exact) for h in hs]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - order) <= 0.3


def test_stencil_table_derives_the_error_model():
    eps = np.finfo(float).eps
    # closed forms: forward h* = 2 sqrt(eps), central (3 eps)^(1/3), central4 (11.25 eps)^(1/5), T and R by hand
    assert fd.STENCILS["forward"].default_step == pytest.approx(2 * eps ** 0.5)
    assert fd.STENCILS["backward"].default_step == pytest.approx(2 * eps ** 0.5)
    assert fd.STENCILS["central"].default_step == pytest.approx((3 * eps) ** (1 / 3))
    assert fd.STENCILS["central4"].default_step == pytest.approx((11.25 * eps) ** 0.2)
    assert (fd.STENCILS["central4"].truncation, fd.STENCILS["central4"].roundoff) == (pytest.approx(1 / 30), 1.5)
    rich = fd.stencil_for("richardson")  # (4 D(h/2) - D(h)) / 3: error f^(5) h^4 / 480, weights sum 3
    assert (rich.order, rich.truncation, rich.roundoff) == (4, pytest.approx(1 / 480), 3.0)


EPS = np.finfo(float).eps
# the module docstring's closed forms of the default steps, and the stencil's points in units of that step
DOCUMENTED_STEPS = {"forward": (2 * EPS ** 0.5, (0, 1)), "backward": (2 * EPS ** 0.5, (-1, 0)),
                    "central": ((3 * EPS) ** (1 / 3), (-1, 1)), "central4": ((11.25 * EPS) ** 0.2, (-2, -1, 1, 2))}


@pytest.mark.parametrize("method", DOCUMENTED_STEPS)
def test_the_step_taken_and_the_points_are_the_documented_ones(method):
    h, offsets = DOCUMENTED_STEPS[method]
    theta, points = np.array([0.3]), []

    def f(t):
        points.append(float(t[0]))
        return dk.namespace(t).sum(t ** 3)
    r = dk.gradient(f, theta, method=method)
    # |theta| < 1: the step is absolute; the step reported is the representable (theta + h) - theta
    assert r.cost.counters["h_min"] == pytest.approx(h, rel=1e-7)
    assert sorted(set(points)) == pytest.approx([0.3 + o * h for o in offsets], rel=0, abs=1e-15)


def test_steps_are_exactly_representable():
    theta = np.array([0.1, 3.3, -1234.5678])
    for k in range(theta.size):  # f = theta_k: the difference is the step actually taken, so the slope is exact
        r = dk.gradient(lambda t: t[k], theta, method="forward", h=1e-7)
        assert r.grad.tolist() == [1.0 if i == k else 0.0 for i in range(theta.size)]
    h = 1e-7 * 1234.5678  # dividing by the nominal h instead would be wrong in the 8th digit here:
    assert abs(((theta[2] + h) - theta[2]) / h - 1) > 1e-10


@pytest.mark.parametrize("h,match", [(0.0, "finite and > 0"), (-1e-3, "finite and > 0"), (np.nan, "finite and > 0"),
                                     (np.inf, "finite and > 0"), (np.ones(3), "shape"), (1e-30, "too small")])
@pytest.mark.parametrize("method", ["forward", "central", "richardson"])
def test_bad_steps_are_refused(h, match, method):
    with pytest.raises(ValueError, match=match):
        dk.gradient(lambda t: t[0] * t[1], np.array([1.0, 2.0]), method=method, h=h)


def test_complex_step_refuses_relu_and_kinks():
    relu_net = dk.problems.mlp([3, 4, 2], activation="relu", loss="half_squared_error", batch=4)
    with pytest.raises(dk.NotAnalyticError, match="relu.*central"):
        dk.gradient(relu_net, method="complex_step")
    with pytest.raises(dk.NotAnalyticError, match="kink"):
        dk.gradient(lambda t: dk.namespace(t).abs(t[0]) + t[1], np.array([0.0, 1.0]), method="complex_step")
    with pytest.raises(dk.NotAnalyticError, match="real"):
        dk.gradient(lambda t: float(np.real(t[0])) ** 2, np.array([1.0]), method="complex_step")
    # away from the kink, abs by the real part is right: d|x|/dx = -1 at x = -2
    r = dk.gradient(lambda t: dk.namespace(t).abs(t[0]), np.array([-2.0]), method="complex_step")
    assert r.grad[0] == -1.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=6), st.sampled_from(FD_METHODS))
def test_quadratic_closed_form(values, method):
    """f = sum(c_i t_i^2) + t_0^3: gradient 2 c_i t_i (+ 3 t_0^2) by hand, any shape."""
    theta = np.array(values)
    c = np.arange(1, theta.size + 1, dtype=float)
    r = dk.gradient(lambda t: dk.namespace(t).sum(c * t * t) + t[0] ** 3, theta, method=method)
    exact = 2 * c * theta
    exact[0] += 3 * theta[0] ** 2
    tol = {"forward": 1e-6, "backward": 1e-6}.get(method, 1e-8)  # first-order: O(sqrt(eps)) relative
    np.testing.assert_allclose(r.grad, exact, rtol=tol, atol=tol * (1 + np.abs(exact).max()))


@pytest.mark.parametrize("method,digits", [("central", 9), ("central4", 11), ("complex_step", 15),
                                           ("richardson", 11), ("forward", 6)])
def test_directional_derivative_and_jvp(method, digits):
    prob = dk.problems.mlp([3, 5, 2], activation="tanh", loss="softmax_cross_entropy", batch=8, seed=7)
    ref = dk.reference(prob, digits=40, max_coordinates=0)
    v = np.random.default_rng(0).standard_normal(prob.size)
    exact = float(ref.grad @ v)
    dd = dk.directional_derivative(prob.fn, prob.theta0, v, method=method)
    assert abs(dd - exact) <= 10.0 ** -digits * np.abs(ref.grad).sum() * np.abs(v).max()
    # jvp of a vector function: J v of (sin t0 t1, t0^2) is (cos(t0 t1)(t1 v0 + t0 v1), 2 t0 v0)
    t, w = np.array([0.3, -1.2]), np.array([0.5, 2.0])
    f = lambda x: dk.namespace(x).stack([dk.namespace(x).sin(x[0] * x[1]), x[0] ** 2])  # noqa: E731
    want = np.array([np.cos(t[0] * t[1]) * (t[1] * w[0] + t[0] * w[1]), 2 * t[0] * w[0]])
    np.testing.assert_allclose(dk.fd_jvp(f, t, w, method=method), want, rtol=10.0 ** -digits, atol=10.0 ** -digits)


def test_directional_derivative_bad_input():
    f = lambda t: t[0] * t[1]  # noqa: E731
    with pytest.raises(ValueError, match="shape"):
        dk.directional_derivative(f, np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="not all zero"):
        dk.directional_derivative(f, np.ones(2), np.zeros(2))
    with pytest.raises(ValueError, match="> 0"):
        dk.directional_derivative(f, np.ones(2), np.ones(2), h=-1.0)
    with pytest.raises(ValueError, match="scalar"):
        dk.directional_derivative(lambda t: t * 2, np.ones(2), np.ones(2))


def test_step_sweep_v_curve_and_bounds():
    prob = dk.problems.seed_sigmoid_neuron()
    ref = dk.reference(prob, digits=50)
    df = dk.step_sweep(prob, methods=["forward", "central"], steps=np.logspace(-14, -1, 27), component="norm",
                       reference=ref)
    assert set(df.columns) >= {"method", "h", "component", "error", "truncation_bound", "roundoff_bound", "h_opt"}
    assert len(df) == 2 * 27 and set(df["component"]) == {"norm"}
    for method, g in df.groupby("method"):
        e = g["error"].to_numpy()
        k = int(np.argmin(e))
        assert 0 < k < len(e) - 1  # a V: the minimum is inside the grid, error rises on both sides
        assert e[0] > 100 * e[k] and e[-1] > 100 * e[k]
        # on the truncation side (large h) the model bound is tight: within a factor 3 (first term of Taylor)
        big = g[g["h"] >= 1e-2]
        assert np.all(big["error"] <= 3 * big["truncation_bound"] + big["roundoff_bound"])
    per = dk.step_sweep(prob, methods=["central"], steps=[1e-4], reference=ref)
    assert list(per["component"]) == [prob.component_name(i) for i in range(prob.size)]


def test_step_sweep_bad_component():
    with pytest.raises(ValueError, match="component"):
        dk.step_sweep(lambda t: t[0] ** 2, np.array([1.0]), methods=["central"], component=5,
                      reference=np.array([2.0]))


@pytest.mark.parametrize("method", ["forward", "central", "central4"])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_batched_mode_closed_form_and_counts(method, batch):
    def f(t):
        return np.sum(np.sin(t) * t)
    f.batched = lambda T: np.sum(np.sin(T) * T, axis=-1)
    theta = np.linspace(-2, 2, 7)
    r = dk.gradient(f, theta, method=method, batch=batch)
    np.testing.assert_allclose(r.grad, np.sin(theta) + theta * np.cos(theta), rtol=1e-6, atol=1e-6)
    assert r.cost.evaluations == COUNTS[method](7)
    points = len(fd.STENCILS[method].offsets) - (0 in fd.STENCILS[method].offsets)
    assert r.cost.counters["array_calls"] == points * -(-7 // batch) + (0 in fd.STENCILS[method].offsets)


def test_batched_mode_needs_a_declaration():
    with pytest.raises(ValueError, match="f.batched"):
        dk.gradient(lambda t: t[0] ** 2, np.array([1.0]), method="central", batch=4)


def test_bench_batched_mlp_matches_problem():
    from diffkit.bench_fd import batched_mlp
    prob = dk.problems.mlp([3, 5, 4], activation="tanh", loss="softmax_cross_entropy", batch=8, l2=1e-2)
    thetas = prob.theta0 + 0.1 * np.random.default_rng(1).standard_normal((4, prob.size))
    f = batched_mlp(prob)
    np.testing.assert_allclose(f.batched(thetas), [prob.fn(t) for t in thetas], rtol=1e-13)


def test_complex_step_smooth_activations_at_zero():
    """sigmoid'(0) = 1/4, softplus'(0) = 1/2, log_sigmoid'(0) = 1/2, d/dz bce(z, y=1) at 0 = -1/2: by hand."""
    cases = [(dk.nn.sigmoid, 0.25), (dk.nn.softplus, 0.5), (dk.nn.log_sigmoid, 0.5),
             (lambda z: dk.nn.binary_cross_entropy(z, np.ones(1)), -0.5)]
    for fn, exact in cases:
        r = dk.gradient(lambda t: dk.namespace(t).sum(fn(t)), np.zeros(1), method="complex_step")
        assert r.grad[0] == pytest.approx(exact, rel=1e-15)
    big = dk.gradient(lambda t: dk.nn.softplus(t[0]) + dk.nn.sigmoid(t[1]), np.array([800.0, -800.0]),
                      method="complex_step")
    assert big.grad[0] == 1.0 and np.isfinite(big.value)  # stable: no overflow at |x| = 800
