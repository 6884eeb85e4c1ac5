"""Peers (torch, jax, autograd) run the same user functions and agree with the 50-digit mpmath reference.

Each test is skipped, with the install hint, where the peer's packages are missing.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import diffkit as dk
from diffkit import peers
from diffkit.methods import METHODS

PEER_NAMES = list(peers.PEERS)


def need(name: str) -> None:
    peer = peers.PEERS[name]
    if not peer.available:
        pytest.skip(f"peer {name!r} {peer.skip_reason()}")


# The MLP family: every activation and every cost appears; shapes with one to three hidden layers.
MLP_CASES = [
    ([4, 16, 3], "tanh", "softmax_cross_entropy", 1e-3),
    ([3, 5, 4, 2], "sigmoid", "binary_cross_entropy", 1e-2),
    ([2, 6, 3], "relu", "half_squared_error", 0.0),
    ([3, 4, 4, 4, 2], "softplus", "squared_error", 1e-3),
    ([5, 3, 4], "leaky_relu", "softmax_cross_entropy", 0.0),
    ([2, 3, 2], "identity", "binary_cross_entropy", 1e-3),
]


@pytest.fixture(scope="module")
def references():
    cache = {}

    def get(case):
        if case not in cache:
            layers, act, loss, l2 = case
            prob = dk.problems.mlp(list(layers), activation=act, loss=loss, l2=l2, batch=7, seed=5)
            cache[case] = prob, dk.reference(prob, digits=50, max_coordinates=0, directions=2)
        return cache[case]
    return get


@pytest.mark.parametrize("name", PEER_NAMES)
@pytest.mark.parametrize("case", [tuple((tuple(c[0]),) + c[1:]) for c in MLP_CASES], ids=lambda c: f"{c[1]}-{c[2]}")
def test_peer_gradient_agrees_with_reference_to_13_digits(name, case, references):
    """13 correct digits on every component above 1e-4 of the largest, and an absolute error of a few ulps of it.

    Components far below the largest are sums of terms that cancel: there float64 itself (the tape included,
    12.8 digits on W1[0,1] = -1.1e-6 of the sigmoid/BCE case) cannot keep 13 relative digits, so those are held
    to the absolute bound instead: 1e-14 of the largest component is ~50 ulps, room for rounding in a few layers.
    """
    need(name)
    prob, ref = references(case)
    r = dk.gradient(prob, method=name)
    e = dk.error(r, ref, rel_floor=1e-4)
    assert e.digits >= 13, f"{name} on {prob.name}: {e}"
    assert e.max_abs <= 1e-14 * np.max(np.abs(ref.grad)), f"{name} on {prob.name}: {e}"
    assert abs(r.value - ref.value) <= 1e-14 * max(1.0, abs(ref.value))


@pytest.mark.parametrize("name", PEER_NAMES)
def test_peer_reproduces_the_seeds_numbers(name):
    need(name)
    circuit = dk.gradient(dk.problems.seed_circuit(), method=name)
    assert circuit.value == -12.0 and circuit.grad.tolist() == [-4.0, -4.0, 3.0]  # exact in binary
    relu = dk.gradient(dk.problems.seed_relu_chain(), method=name)
    assert relu.grad[0] == 80.0  # seed 003: 5 * 1 * 2 * 8
    neuron = dk.gradient(dk.problems.seed_sigmoid_neuron(), method=name)
    s = 1 / (1 + np.exp(-1.0))  # sigma(w0 x0 + w1 x1 + w2) = sigma(1), sigma' = s (1 - s), derived by hand
    x0, x1, w0, w1 = -1.0, -2.0, 2.0, -3.0
    expected = s * (1 - s) * np.array([x0, x1, 1.0, w0, w1])
    np.testing.assert_allclose(neuron.grad, expected, rtol=1e-14, atol=0)
    assert [round(v, 2) for v in neuron.grad] == [-0.2, -0.39, 0.2, 0.39, -0.59]


def test_namespaces_of_peer_arrays_have_the_core_ops_and_name_missing_ones():
    need("torch")
    import torch

    t = peers.TorchArray(torch.tensor([0.5, -2.0], dtype=torch.float64))
    xp = dk.namespace(t)
    assert xp is peers.TORCH and xp.fused == {}
    assert dk.namespace(np.ones(2), t) is peers.TORCH  # a numpy constant mixed in: the peer wins
    out = xp.sum(xp.maximum(t, 0) + xp.where(t > 0, xp.exp(t), xp.abs(t)))
    assert float(out.t) == pytest.approx(0.5 + np.exp(0.5) + 2.0, rel=1e-15)
    with pytest.raises(NotImplementedError, match="'not_an_op' is not available in the torch backend"):
        xp.not_an_op(t)


def test_jax_records_compile_apart_from_steady_state():
    need("jax")
    prob = dk.problems.mlp([3, 4, 2], batch=5, seed=11)
    first = dk.gradient(prob, method="jax")
    again = dk.gradient(prob, method="jax")
    # the compile is timed inside the first call, the steady-state call inside the second (no timing asserted)
    assert first.cost.counters["cached"] == 0 and 0 < first.cost.counters["compile_s"] <= first.cost.wall_s
    assert again.cost.counters["cached"] == 1 and again.cost.counters["compile_s"] == 0.0
    assert 0 < again.cost.counters["steady_s"] <= again.cost.wall_s
    np.testing.assert_array_equal(first.grad, again.grad)


@pytest.mark.parametrize("hidden", [("torch",), ("torch", "array_api_compat")])
def test_missing_peer_is_listed_as_unavailable_with_the_install_hint(monkeypatch, hidden):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in hidden else real(name, *a))
    monkeypatch.setitem(METHODS, "torch", METHODS["torch"])  # restored after the test
    peers._register("torch")
    line = next(line for line in dk.methods() if line.startswith("torch"))
    assert "unavailable" in line and "pip install 'diffkit[peers]'" in line
    # the hidden modules, and any other the torch peer needs that is really missing here, in the peer's order
    missing = ", ".join(m for m in peers.PEERS["torch"].modules if m in hidden or real(m) is None)
    with pytest.raises(ValueError, match=rf"method 'torch' is not available here: not installed \({missing}\)"):
        dk.gradient(lambda t: t[0] * t[0], np.ones(2), method="torch")


@pytest.mark.parametrize("name", ["jax", "autograd"])
def test_a_peer_traced_array_gets_its_peer_namespace_not_the_generic_array_api_one(name):
    # jax tracers and autograd boxes also carry __array_namespace__: the generic array-API backend must come last,
    # or numpy runs on object arrays of boxes (RK4 through concatenate: a gradient of the wrong kind, or 8 GB)
    need(name)
    seen = []

    def f(t):
        xp = dk.namespace(t)
        seen.append(xp.name)
        y = xp.concatenate([t[:1], t[1:] * t[:-1]])  # y = (t0, t1 t0, t2 t1)
        return xp.sum(y * y)
    t = np.array([1.0, 2.0, 3.0])
    grad = dk.gradient(f, t, method=name).grad
    # d/dt of t0^2 + t1^2 t0^2 + t2^2 t1^2, by hand
    expected = [2 * t[0] + 2 * t[1] ** 2 * t[0], 2 * t[1] * t[0] ** 2 + 2 * t[1] * t[2] ** 2, 2 * t[2] * t[1] ** 2]
    assert set(seen) == {name} and np.allclose(grad, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("op, f, grad", [
    ("concat", lambda t, xp: xp.sum(xp.concat([t, t * t])), lambda t: 1 + 2 * t),
    ("flip", lambda t, xp: xp.sum(xp.flip(t) * np.arange(4.0)), lambda t: np.arange(4.0)[::-1]),
    ("take", lambda t, xp: xp.sum(xp.take(t, np.array([2, 0, 2]))), lambda t: np.array([1.0, 0.0, 2.0, 0.0])),
    ("cumulative_sum", lambda t, xp: xp.sum(xp.cumulative_sum(t)), lambda t: np.array([4.0, 3.0, 2.0, 1.0])),
    ("matrix_transpose", lambda t, xp: xp.sum(xp.matrix_transpose(xp.reshape(t, (2, 2))) * np.array([[1.0, 2.0], [3.0, 4.0]])),
     lambda t: np.array([1.0, 3.0, 2.0, 4.0])),
    ("positive", lambda t, xp: xp.sum(xp.positive(t) * t), lambda t: 2 * t),
], ids=lambda v: v if isinstance(v, str) else "")
def test_autograd_differentiates_the_array_api_spellings(op, f, grad):
    # autograd.numpy has numpy 2's names as primitives without a derivative (concat even returned an object array
    # of boxes): the namespace spells them with the functions autograd differentiates
    need("autograd")
    t = np.array([0.5, -1.0, 2.0, 3.0])
    got = dk.gradient(lambda v: f(v, dk.namespace(v)), t, method="autograd").grad
    np.testing.assert_array_equal(got, grad(t))
