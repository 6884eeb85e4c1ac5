"""GradBench ``gmm`` (ADBench's GMM, with GradBench's fixes): the log posterior of a Gaussian mixture
with a Wishart prior on the precision matrices, and its gradient.

Input: ``d, k, n, x`` (n points), ``m, gamma`` (the prior), and the variables
``alpha`` (k), ``mu, q`` (k rows of d) and ``l`` (k rows of d(d-1)/2).
Component j's precision factor Q_j is lower triangular with exp(q_j) on its
diagonal and l_j filling the strict lower part column by column.  With
beta_ij = alpha_j + sum(q_j) - |Q_j (x_i - mu_j)|^2 / 2,

    F = -n (d/2 log 2 pi + lse(alpha)) + sum_i lse_j(beta_ij)
        + k (n' d log(gamma / sqrt 2) - log Gamma_d(n'/2))
        - gamma^2/2 sum_j |Q_j|_F^2 + m sum_j sum(q_j),     n' = d + m + 1.

``objective`` returns F; ``jacobian`` returns ``{"alpha", "mu", "q", "l"}``
shaped like the input.  The eval draws each input from
``np.random.default_rng(31337)`` afresh: x normal, alpha normal, mu uniform,
q normal, l normal, in that order.

>>> _, input = next(inputs([{"d": 2, "k": 3, "n": 4}]))
>>> p = problem(input)
>>> p.theta.size                       # k + 2 k d + k d (d - 1) / 2
18
>>> _split(np.arange(18.0), input)["l"]  # the last k d(d-1)/2 entries, a row per component
[[15.0], [16.0], [17.0]]
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

import diffkit as dk

from ..jobs import Problem, as_float, gradient_job, primal_job
from ._inputs import field, integer, matrix, vector

__all__ = ["log_posterior", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]


@lru_cache(maxsize=None)
def lower_scatter(d: int) -> np.ndarray:
    """The constant 0/1 matrix that puts l (column by column) into the strict lower part of a flat d x d."""
    pairs = [(row, col) for col in range(d) for row in range(col + 1, d)]
    scatter = np.zeros((len(pairs), d * d))
    for i, (row, col) in enumerate(pairs):
        scatter[i, row * d + col] = 1.0
    return scatter


def logsumexp(v, axis):
    xp = dk.namespace(v)
    top = xp.max(v, axis=axis, keepdims=True)
    return xp.sum(top, axis=axis) + xp.log(xp.sum(xp.exp(v - top), axis=axis))


def log_posterior(theta, x, d: int, k: int, m: int, gamma: float):
    xp = dk.namespace(theta)
    n, kd = x.shape[0], k * d
    alpha, mu = theta[:k], xp.reshape(theta[k:k + kd], (k, d))
    q, l = xp.reshape(theta[k + kd:k + 2 * kd], (k, d)), xp.reshape(theta[k + 2 * kd:], (k, d * (d - 1) // 2))
    diag = xp.exp(q)
    factors = xp.reshape(l @ lower_scatter(d), (k, d, d)) + xp.reshape(diag, (k, d, 1)) * np.eye(d)
    sum_q = xp.sum(q, axis=1)
    centred = x @ xp.transpose(factors, (0, 2, 1)) - xp.reshape(factors @ xp.reshape(mu, (k, d, 1)), (k, 1, d))
    beta = xp.reshape(alpha + sum_q, (k, 1)) - xp.sum(centred * centred, axis=2) / 2  # (k, n)
    likelihood = xp.sum(logsumexp(beta, axis=0)) - n * (d / 2 * math.log(2 * math.pi) + logsumexp(alpha, axis=0))
    dof = d + m + 1
    constant = dof * d * (math.log(gamma) - 0.5 * math.log(2)) - _log_multigamma(0.5 * dof, d)
    frobenius = xp.sum(diag * diag) + xp.sum(l * l)
    prior = k * constant - gamma * gamma / 2 * frobenius + m * xp.sum(sum_q)
    return likelihood + prior


def _log_multigamma(a: float, d: int) -> float:
    """log Gamma_d(a) = d(d-1)/4 log pi + sum_{j<d} lgamma(a - j/2) (a constant of the prior)."""
    return d * (d - 1) / 4 * math.log(math.pi) + sum(math.lgamma(a - j / 2) for j in range(d))


def problem(input) -> Problem:
    d, k, n = integer(input, "d"), integer(input, "k"), integer(input, "n")
    m, gamma = integer(input, "m", minimum=0), field(input, "gamma")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise ValueError(f"input.gamma must be a number > 0; got {gamma!r}")
    x = matrix(input, "x", columns=d)
    if x.shape[0] != n:
        raise ValueError(f"input.x must have n = {n} rows; got {x.shape[0]}")
    parts = [vector(input, "alpha", size=k)]
    for name, width in (("mu", d), ("q", d), ("l", d * (d - 1) // 2)):
        block = matrix(input, name, columns=width) if width else np.zeros((k, 0))
        if block.shape[0] != k:
            raise ValueError(f"input.{name} must have k = {k} rows; got {block.shape[0]}")
        parts.append(block.ravel())
    theta = np.concatenate(parts)
    return Problem(theta, lambda t: log_posterior(t, x, d, k, m, float(gamma)))


def _split(grad, input) -> dict:
    d, k = input["d"], input["k"]
    kd = k * d
    return {"alpha": grad[:k].tolist(), "mu": grad[k:k + kd].reshape(k, d).tolist(),
            "q": grad[k + kd:k + 2 * kd].reshape(k, d).tolist(),
            "l": grad[k + 2 * kd:].reshape(k, d * (d - 1) // 2).tolist()}


FUNCTIONS = {
    "objective": lambda input, engine: primal_job(problem(input), engine, encode=as_float),
    "jacobian": lambda input, engine: gradient_job(problem(input), engine,
                                                   encode=lambda g: _split(np.asarray(g), input)),
}

SIZES = [{"d": d, "k": k, "n": 1000} for d in (2, 10, 20, 32, 64) for k in (5, 10, 25, 50, 100)]
TEST_SIZES = [{"d": 1, "k": 1, "n": 1}, {"d": 2, "k": 3, "n": 5}, {"d": 3, "k": 2, "n": 4}]


def inputs(sizes=None, seed: int = 31337, m: int = 0, gamma: float = 1.0):
    """``(description, input)`` in the eval's order (by d * k), each from a fresh ``default_rng(seed)``."""
    for size in sorted(SIZES if sizes is None else sizes, key=lambda v: v["d"] * v["k"]):
        d, k, n = size["d"], size["k"], size["n"]
        rng = np.random.default_rng(seed=seed)
        input = {"d": d, "k": k, "n": n, "x": [list(rng.normal(size=d)) for _ in range(n)], "m": m,
                 "gamma": gamma, "alpha": list(rng.normal(size=k)), "mu": [list(rng.uniform(size=d)) for _ in range(k)],
                 "q": [list(rng.normal(size=d)) for _ in range(k)],
                 "l": [list(rng.normal(size=d * (d - 1) // 2)) for _ in range(k)]}
        yield f"{d}_{k}_{n}", _plain(input)


def _plain(value):
    """numpy floats as Python floats (JSON)."""
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return float(value) if isinstance(value, np.floating) else value
