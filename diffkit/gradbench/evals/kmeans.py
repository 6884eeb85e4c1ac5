"""GradBench ``kmeans``: the k-means cost and its Newton direction J H^-1.

cost(C) = sum_i min_j |C_j - P_i|^2 over n points P and k centroids C (rows
of d).  ``cost`` returns it; ``dir`` returns J / diag(H), k rows of d, where
J is the gradient with respect to C and the Hessian H is diagonal (2 x the
size of each cluster), so that its diagonal is the Hessian-vector product
with the all-ones vector: ``dir`` needs a gradient and one HVP (forward over
reverse).  Its closed form is C_j - mean(points closest to C_j).  The eval
seeds 31337, draws ``points = rand(n, d)`` per (k, n, d) in order of k n d,
and takes the last k points as the centroids (every cluster is non-empty).

>>> _, input = next(inputs([{"k": 2, "n": 5, "d": 3}]))
>>> float(cost(np.ravel(input["centroids"]), np.array(input["points"]), 2)) > 0
True
"""
from __future__ import annotations

import numpy as np

import diffkit as dk

from ..jobs import Job, Problem, as_float, floats, primal_job
from ._inputs import matrix

__all__ = ["cost", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]


def cost(centroids, points, k: int):
    """sum_i min_j |C_j - P_i|^2, the distances expanded as |P|^2 + |C|^2 - 2 P C^T (no n x k x d array; the
    factor -2 goes on the points, n x d, not on the n x k product)."""
    xp = dk.namespace(centroids)
    c = xp.reshape(centroids, (k, points.shape[1]))
    distances = np.sum(points * points, axis=1)[:, None] + xp.sum(c * c, axis=1) + (-2 * points) @ xp.transpose(c)
    return xp.sum(xp.min(distances, axis=1))


def problem(input) -> Problem:
    points = matrix(input, "points")
    centroids = matrix(input, "centroids", columns=points.shape[1])
    if points.shape[0] == 0 or centroids.shape[0] == 0:
        raise ValueError(f"input.points and input.centroids must be non-empty; got {points.shape[0]} points and "
                         f"{centroids.shape[0]} centroids")
    k = centroids.shape[0]
    return Problem(centroids, lambda theta: cost(theta, points, k))


def newton_direction(input, engine) -> Job:
    p = problem(input)
    run, theta, ones = engine.grad_hvp(p.objective), p.theta, np.ones(p.theta.size)
    shape = np.shape(input["centroids"])

    def direction():
        g, h_diag = run(theta, ones)
        return np.reshape(np.asarray(g) / np.asarray(h_diag), shape)
    return Job(direction, floats)


FUNCTIONS = {
    "cost": lambda input, engine: primal_job(problem(input), engine, encode=as_float),
    "dir": newton_direction,
}

SIZES = [{"k": k, "n": n, "d": d} for k in (10, 100, 1000) for n in (1000, 10000) for d in (8, 16)]
TEST_SIZES = [{"k": 1, "n": 3, "d": 1}, {"k": 2, "n": 9, "d": 2}, {"k": 3, "n": 20, "d": 3}]


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` in the eval's order (by k n d), one seeded stream of ``rand(n, d)`` draws."""
    state = np.random.RandomState(seed)
    for size in sorted(SIZES if sizes is None else sizes, key=lambda v: v["k"] * v["n"] * v["d"]):
        k, n, d = size["k"], size["n"], size["d"]
        points = state.random_sample((n, d)).tolist()
        yield f"k={k},n={n},d={d}", {"points": points, "centroids": points[-k:]}
