"""Jacobians, Hessian-vector products and Hessians against the referee and hand-derived closed forms (issue 15)."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit.higher import HVP_MODES

AD_ROUTES = ("forward_over_reverse", "reverse_over_reverse")


def digits(a, b) -> float:
    err = np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)
    return 17.0 if err == 0 else -math.log10(err)


def closed_form(t):
    # f = exp(x) sin(y) + x^2 y^3
    xp = dk.namespace(t)
    return xp.exp(t[0]) * xp.sin(t[1]) + t[0] ** 2 * t[1] ** 3


def closed_form_hessian(x, y):
    # derived by hand: f_xx = e^x sin y + 2 y^3, f_xy = e^x cos y + 6 x y^2, f_yy = -e^x sin y + 6 x^2 y
    exy = math.exp(x)
    fxy = exy * math.cos(y) + 6 * x * y ** 2
    return np.array([[exy * math.sin(y) + 2 * y ** 3, fxy], [fxy, -exy * math.sin(y) + 6 * x ** 2 * y]])


@pytest.mark.parametrize("mode", HVP_MODES)
def test_hessian_of_a_two_parameter_function_matches_the_closed_form(mode):
    theta = np.array([0.7, -1.3])
    H = dk.hessian(closed_form, theta, mode=mode)
    assert H.mode == mode
    want = closed_form_hessian(*theta)
    assert digits(H.hessian, want) >= (9 if mode == "finite_difference" else 14)


def test_reference_hessian_matches_the_closed_form_to_50_digits():
    theta = np.array([0.7, -1.3])
    ref = dk.reference_hessian(closed_form, theta, digits=50)
    with mpmath.workdps(60):
        x, y = mpmath.mpf(0.7), mpmath.mpf(-1.3)
        fxy = mpmath.exp(x) * mpmath.cos(y) + 6 * x * y ** 2
        want = [[mpmath.exp(x) * mpmath.sin(y) + 2 * y ** 3, fxy], [fxy, -mpmath.exp(x) * mpmath.sin(y) + 6 * x ** 2 * y]]
        worst = max(abs(ref.mp[i, j] - want[i][j]) / abs(want[i][j]) for i in range(2) for j in range(2))
    assert worst < mpmath.mpf(10) ** -49
    assert ref.certification.agreement_digits >= 40


def _mlp(hidden, batch, seed, activation="tanh"):
    return dk.problems.mlp([2, hidden, 2], activation=activation, loss="softmax_cross_entropy", l2=1e-2,
                           batch=batch, seed=seed)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(hidden=st.integers(1, 4), batch=st.integers(1, 5), seed=st.integers(0, 10_000),
       activation=st.sampled_from(["tanh", "sigmoid", "softplus"]))
def test_hvp_routes_agree_with_the_referee_on_random_mlps(hidden, batch, seed, activation):
    prob = _mlp(hidden, batch, seed, activation)
    v = np.random.default_rng(seed).standard_normal(prob.size)
    ref = dk.reference_hvp(prob, prob.theta0, v, digits=40)
    assert ref.certification.agreement_digits >= 30
    grad_ref = dk.reference(prob, digits=30).grad
    for mode in AD_ROUTES:
        r = dk.hvp(prob, prob.theta0, v, mode=mode)
        assert digits(r.hvp, ref.hvp) >= 13, mode
        assert digits(r.grad, grad_ref) >= 13, mode  # the gradient comes on the way
    fd = dk.hvp(prob, prob.theta0, v, mode="finite_difference")
    # the error model's prediction, within 1.5 digits: it counts eps |g| of round-off in each gradient, but a
    # gradient's round-off accumulates over the network's operations (measured: up to ~10x more)
    assert digits(fd.hvp, ref.hvp) >= fd.counters["predicted_digits"] - 1.5


def test_symbolic_hvp_agrees_with_the_referee_on_an_mlp():
    prob = _mlp(2, 3, 5)
    v = np.random.default_rng(1).standard_normal(prob.size)
    ref = dk.reference_hvp(prob, prob.theta0, v, digits=40)
    assert digits(dk.hvp(prob, prob.theta0, v, mode="symbolic").hvp, ref.hvp) >= 13


def test_hessian_of_an_mlp_matches_the_referee_and_is_symmetric():
    prob = _mlp(3, 4, 2)
    ref = dk.reference_hessian(prob, digits=40)
    for mode in AD_ROUTES:
        H = dk.hessian(prob, mode=mode)
        assert digits(H.hessian, ref.hessian) >= 13, mode
        assert H.passes == (1 if mode == "forward_over_reverse" else prob.size)  # the directions batched: 1 pass
    assert digits(ref.hessian, ref.hessian.T) >= 16


def _vector(t):
    xp = dk.namespace(t)
    return xp.stack([t[0] * t[1], xp.sin(t[0]), t[1] ** 3, xp.exp(t[0] - t[1])])


def _wide(t):
    xp = dk.namespace(t)
    return xp.stack([xp.sum(t * t), xp.prod(t)])


@pytest.mark.parametrize("f, theta, auto", [(_vector, np.array([0.3, 2.0]), "forward"),
                                              (_wide, np.array([0.5, -1.0, 2.0, 0.25]), "reverse")])
@pytest.mark.parametrize("mode", ["auto", "forward", "reverse", "finite_difference", "symbolic"])
def test_jacobians_match_the_referee_and_record_the_mode(f, theta, auto, mode):
    ref = dk.reference_jacobian(f, theta, digits=40)
    assert ref.certification.agreement_digits >= 30
    J = dk.jacobian(f, theta, mode=mode)
    assert J.mode == (auto if mode == "auto" else mode) and J.requested == mode
    assert J.jacobian.shape == ref.jacobian.shape
    assert digits(J.jacobian, ref.jacobian) >= (9 if mode == "finite_difference" else 14)


def test_jacobian_closed_form():
    J = dk.jacobian(_vector, np.array([0.3, 2.0])).jacobian
    e = math.exp(0.3 - 2.0)
    np.testing.assert_allclose(J, [[2.0, 0.3], [math.cos(0.3), 0.0], [0.0, 12.0], [e, -e]], rtol=1e-15)


def test_bad_modes_and_directions_are_named():
    with pytest.raises(ValueError, match="valid modes: forward_over_reverse"):
        dk.hvp(closed_form, np.ones(2), np.ones(2), mode="backprop")
    with pytest.raises(ValueError, match="valid modes: auto, forward"):
        dk.jacobian(_vector, np.ones(2), mode="sideways")
    with pytest.raises(ValueError, match="shape"):
        dk.hvp(closed_form, np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="v is required"):
        dk.hvp(closed_form, np.ones(2))


@pytest.mark.parametrize("peer", ["torch", "jax", "autograd"])
def test_peers_jvp_hvp_and_jacobian_match_the_referee(peer):
    from diffkit.peers import PEERS as REGISTERED
    from diffkit.peers_higher import peer_hvp, peer_jacobian, peer_jvp
    if not REGISTERED[peer].available:
        pytest.skip(f"{peer} is not installed")
    prob = _mlp(3, 4, 11)
    v = np.random.default_rng(2).standard_normal(prob.size)
    ref = dk.reference_hvp(prob, prob.theta0, v, digits=40)
    grad_ref = dk.reference(prob, digits=40)
    _, jv = peer_jvp(peer, prob.fn, prob.theta0, v)
    assert digits(jv, float(grad_ref.grad @ v)) >= 13
    assert digits(peer_hvp(peer, prob.fn, prob.theta0, v), ref.hvp) >= 13
    theta = np.array([0.3, 2.0])
    J, mode = peer_jacobian(peer, _vector, theta)
    assert mode == ("reverse" if peer == "autograd" else "forward")
    assert digits(J, dk.reference_jacobian(_vector, theta, digits=40).jacobian) >= 14


def test_hessian_study_cell_records_each_route_against_the_referee(tmp_path):
    from diffkit.report.hessian import render_section
    study = dk.studies.study_from_dict({
        "study": {"name": "hessian_test", "kind": "hessian"},
        "problems": [{"family": "mlp", "sizes": [10], "depth": 3, "n_out": 10, "batch": 2}],
        "sweep": {"routes": list(HVP_MODES), "symbolic_max_p": 0},
        "timing": {"min_repeats": 1, "max_repeats": 1, "min_time_s": 0},
        "reference": {"digits": 30}})
    df = dk.studies.run_study(study, store=str(tmp_path / "r.sqlite"), quiet=True)
    by_route = df.set_index("method")
    assert set(by_route.index) == set(HVP_MODES)
    assert by_route.loc["symbolic", "status"] == "skipped" and "symbolic_max_p" in by_route.loc["symbolic", "reason"]
    for route in AD_ROUTES:
        assert by_route.loc[route, "digits"] >= 13
    fd = by_route.loc["finite_difference"]
    assert fd["digits"] >= fd["predicted_digits"] - 1.5  # see the random-MLP test for the margin
    assert (by_route.loc[list(AD_ROUTES), "hvp_over_gradient"] > 0).all()
    text = render_section(df, tmp_path / "report")
    assert "| forward_over_reverse | 24–24 |" in text and (tmp_path / "report" / "hvp.png").exists()


def test_symbolic_routes_without_symengine_use_sympy(monkeypatch):
    import diffkit.symbolic_higher as sh
    monkeypatch.setattr(sh, "_engine", lambda: None)
    theta = np.array([0.7, -1.3])
    assert digits(sh.symbolic_hessian(closed_form, theta), closed_form_hessian(*theta)) >= 14
    J = sh.symbolic_jacobian(_vector, np.array([0.3, 2.0]))
    e = math.exp(0.3 - 2.0)
    np.testing.assert_allclose(J, [[2.0, 0.3], [math.cos(0.3), 0.0], [0.0, 12.0], [e, -e]], rtol=1e-15)
