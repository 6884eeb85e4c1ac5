"""Hand-written backpropagation of the MLP problems: seed 001's matrix-form delta rule.

Independent of the tape (no namespace, no rule table): plain numpy, derived
by hand.  It is the baseline of the benchmarks (the floor a NumPy tape can
approach) and an independent check in the tests.

With rows as examples (``z = a W + b``), the delta rule reads
``delta_L = dJ/dz_L``, ``delta_l = (delta_{l+1} W_{l+1}^T) * f'(z_l)``,
``grad W_l = a_{l-1}^T delta_l``, ``grad b_l = sum over rows of delta_l``.
"""
from __future__ import annotations

import numpy as np

from .problems import Problem

__all__ = ["mlp_forward", "mlp_backprop"]


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact identity, never overflows
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z >= 0, z, 0.01 * z)
    if name == "softplus":
        return np.logaddexp(0.0, z)
    return z


def _act_grad(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return 1.0 - a * a
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "relu":
        return (z >= 0).astype(float)
    if name == "leaky_relu":
        return np.where(z >= 0, 1.0, 0.01)
    if name == "softplus":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    return np.ones_like(z)


def _layer_blocks(problem: Problem):
    """The (W, b) block pairs, layer by layer."""
    weights = [b for b in problem.blocks if b.name[0] == "W"]
    biases = [b for b in problem.blocks if b.name[0] == "b"]
    return list(zip(weights, biases))


def _weights(problem: Problem, theta: np.ndarray):
    return [(theta[w.start:w.stop].reshape(w.shape), theta[b.start:b.stop]) for w, b in _layer_blocks(problem)]


def _cost(loss: str, z: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    """The cost of output z (mean over the m rows) and dJ/dz."""
    m = z.shape[0]
    if loss == "softmax_cross_entropy":
        shifted = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        J = -np.sum(Y * (shifted - lse)) / m
        return J, (np.exp(shifted - lse) - Y) / m
    if loss == "binary_cross_entropy":
        J = np.sum(np.logaddexp(0.0, z) - z * Y) / m
        return J, (0.5 * (1.0 + np.tanh(0.5 * z)) - Y) / m
    if loss == "half_squared_error":
        d = z - Y
        return 0.5 * np.sum(d * d) / m, d / m
    d = z - Y  # squared_error
    return np.sum(d * d) / m, 2.0 * d / m


def mlp_forward(problem: Problem, theta: np.ndarray) -> float:
    """J(theta) of an MLP problem, by hand."""
    meta, X, Y = problem.meta, problem.data["X"], problem.data["Y"]
    layers = _weights(problem, theta)
    a = X
    for l, (W, b) in enumerate(layers):
        z = a @ W + b
        a = _act(meta["activation"], z) if l < len(layers) - 1 else z
    J, _ = _cost(meta["loss"], a, Y)
    return J + meta["l2"] / (2 * X.shape[0]) * sum(np.sum(W * W) for W, _ in layers)


def mlp_backprop(problem: Problem, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """(J, dJ/dtheta) of an MLP problem by the matrix-form delta rule, forward pass included."""
    meta, X, Y = problem.meta, problem.data["X"], problem.data["Y"]
    act, l2, m = meta["activation"], meta["l2"], X.shape[0]
    layers = _weights(problem, theta)
    inputs, zs = [X], []
    a = X
    for l, (W, b) in enumerate(layers):
        z = a @ W + b
        zs.append(z)
        a = _act(act, z) if l < len(layers) - 1 else z
        inputs.append(a)
    J, delta = _cost(meta["loss"], a, Y)
    J += l2 / (2 * m) * sum(np.sum(W * W) for W, _ in layers)
    grad = np.empty_like(theta)
    for l, (w_block, b_block) in reversed(list(enumerate(_layer_blocks(problem)))):
        W, _ = layers[l]
        gW = inputs[l].T @ delta
        if l2:
            gW += (l2 / m) * W
        grad[w_block.start:w_block.stop] = gW.ravel()
        grad[b_block.start:b_block.stop] = delta.sum(axis=0)
        if l > 0:  # the first layer needs no input gradient
            delta = (delta @ W.T) * _act_grad(act, zs[l - 1], inputs[l])
    return J, grad
