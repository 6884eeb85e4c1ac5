"""``dk.compile(f, theta, jacobian=True)``: a Jacobian's forward- or reverse-mode program, recorded once and
replayed, against Jacobians worked by hand and the mpmath referee (``dk.reference_jacobian``), away from the
theta it was recorded at."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import diffkit as dk


def _three_of_two(t):
    """(t0 t1, sin t0, t1^2 exp t0): J = [[t1, t0], [cos t0, 0], [t1^2 exp t0, 2 t1 exp t0]] by hand."""
    xp = dk.namespace(t)
    return xp.stack([t[0] * t[1], xp.sin(t[0]), t[1] * t[1] * xp.exp(t[0])])


def _by_hand(t):
    e = np.exp(t[0])
    return np.array([[t[1], t[0]], [np.cos(t[0]), 0.0], [t[1] ** 2 * e, 2 * t[1] * e]])


def test_more_outputs_than_inputs_record_forward_mode_and_replay_the_hand_worked_jacobian():
    g = dk.compile(_three_of_two, np.array([0.3, -0.7]), jacobian=True)
    theta = np.array([1.2, 2.5])
    value, J = g(theta)
    np.testing.assert_allclose(value, [3.0, np.sin(1.2), 6.25 * np.exp(1.2)], rtol=1e-15)
    np.testing.assert_allclose(J, _by_hand(theta), rtol=1e-15)
    assert g.modes == {(2,): "forward"} and g.records == 1
    np.testing.assert_allclose(g.value(np.array([0.0, 1.0])), [0.0, 0.0, 1.0], atol=1e-300)


def test_fewer_outputs_than_inputs_record_reverse_mode_with_the_shapes_of_value_and_theta():
    def f(t):  # (2,) from (2, 3): row sums of t^2 and of sin(t), J[i, j, k] = d f_i / d t_jk
        xp = dk.namespace(t)
        return xp.stack([xp.sum(t * t), xp.sum(xp.sin(t))])
    g = dk.compile(f, np.ones((2, 3)), jacobian=True)
    theta = np.arange(6.0).reshape(2, 3) / 4.0
    value, J = g(theta)
    assert J.shape == (2, 2, 3) and g.modes == {(2, 3): "reverse"}
    np.testing.assert_allclose(J[0], 2 * theta, rtol=1e-15)
    np.testing.assert_allclose(J[1], np.cos(theta), rtol=1e-15)
    np.testing.assert_allclose(value, [np.sum(theta ** 2), np.sum(np.sin(theta))], rtol=1e-15)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_a_jacobian_of_products_and_maths_matches_the_mpmath_referee_in_either_mode(mode):
    w = np.random.default_rng(3).standard_normal((4, 3))

    def f(t):
        xp = dk.namespace(t)
        hidden = xp.tanh(w @ t)
        return xp.concat([hidden * xp.exp(-t[0]), xp.log1p(t * t)])
    g = dk.compile(f, np.array([0.1, 0.2, 0.3]), jacobian=mode)
    theta = np.array([0.7, -1.1, 0.4])
    value, J = g(theta)
    want = dk.reference_jacobian(f, theta)
    np.testing.assert_allclose(J, np.asarray(want.jacobian, dtype=float), rtol=1e-13, atol=1e-15)
    assert g.modes == {(3,): mode}


def test_a_mask_that_changes_records_the_jacobian_again():
    f = lambda t: dk.namespace(t).where(t > 0, t * t, -3.0 * t)  # noqa: E731  J = diag(2t or -3)
    g = dk.compile(f, np.array([1.0, -1.0]), jacobian=True)
    assert g(np.array([2.0, -5.0]))[1].tolist() == [[4.0, 0.0], [0.0, -3.0]] and g.records == 1
    assert g(np.array([-2.0, 5.0]))[1].tolist() == [[-3.0, 0.0], [0.0, 10.0]] and g.records == 2


def test_bad_options_are_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match="valid modes: auto, forward, reverse"):
        dk.compile(_three_of_two, np.ones(2), jacobian="symbolic")
    with pytest.raises(ValueError, match="cannot be combined"):
        dk.compile(_three_of_two, np.ones(2), jacobian=True, has_aux=True)


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="fuse=True needs numba")
def test_a_fused_jacobian_matches_the_hand_worked_one():
    g = dk.compile(_three_of_two, np.array([0.3, -0.7]), jacobian=True, fuse=True)
    assert g.fused, g.fuse_reason
    theta = np.array([-0.4, 1.5])
    np.testing.assert_allclose(g(theta)[1], _by_hand(theta), rtol=1e-15)


@settings(max_examples=15, deadline=None)
@given(theta_shape=st.sampled_from([(3,), (2, 2), (5,), (1, 4)]), value_shape=st.sampled_from([(), (2,), (6,), (3, 2)]),
       seed=st.integers(0, 2 ** 16))
def test_the_jacobians_shape_and_entries_follow_any_theta_and_value_shapes(theta_shape, value_shape, seed):
    # f(t) = A sin(t) reshaped: J = A diag(cos t), by hand; forward or reverse mode as the sizes choose
    rng = np.random.default_rng(seed)
    P, M = int(np.prod(theta_shape)), int(np.prod(value_shape))
    A = rng.standard_normal((M, P))
    f = lambda t: dk.namespace(t).reshape(A @ dk.namespace(t).sin(dk.namespace(t).reshape(t, (-1,))), value_shape)  # noqa: E731
    g = dk.compile(f, rng.uniform(-1, 1, theta_shape), jacobian=True)
    theta = rng.uniform(-2, 2, theta_shape)
    value, J = g(theta)
    assert value.shape == value_shape and J.shape == value_shape + theta_shape
    np.testing.assert_allclose(value, (A @ np.sin(theta.ravel())).reshape(value_shape), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(J, (A * np.cos(theta.ravel())).reshape(value_shape + theta_shape), rtol=1e-13,
                               atol=1e-14)
    assert g.modes == {theta_shape: "forward" if M > P else "reverse"}
