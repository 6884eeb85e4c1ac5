"""GradBench ``ba`` (ADBench's bundle adjustment): reprojection errors of p observations and their sparse
Jacobian.

Input ``{"n", "m", "p", "cam": 11 floats, "x": 3 floats, "w": float, "feat": 2 floats}``:
n cameras, m points and p weights and features, each the given one repeated;
observation i sees point i mod m from camera i mod n.  A camera is
``[r (Rodrigues rotation, 3), C (centre, 3), f, u0, v0, k1, k2]``; the
error of observation i is ``w_i (proj(cam, X) - feat)`` with the radial
distortion ``1 + k1 r^2 + k2 r^4``, and ``w_err_i = 1 - w_i^2``.

``objective`` returns ``{"reproj_error": {"elements": first 2, "repeated": p},
"w_err": {"element", "repeated"}}``; ``jacobian`` the (2p + p) x (11n + 3m + p)
Jacobian in compressed rows: each reprojection row holds 11 camera, 3 point
and 1 weight entries, each weight row one.  Every block is computed (the
duplication is not exploited); the output keeps the first 30 and the last
entry of ``rows``, ``cols`` and ``vals``, as the eval asks.

Each observation's 2 errors depend only on its own camera, point and weight,
so the gradient of the sum of the first (second) errors over the p gathered
copies is, block by block, the first (second) Jacobian row of every
observation: two gradients give all 30 p entries.

The eval reads one camera, point, weight and feature per size from ADBench's
data files; :func:`inputs` draws them from a seeded generator in the same
ranges, at the files' (n, m, p).

>>> _, input = next(inputs([{"n": 2, "m": 3, "p": 4}]))
>>> out = FUNCTIONS["objective"](input, None).run()
>>> out.shape
(4, 3)
"""
from __future__ import annotations

import numpy as np

import diffkit as dk

from ..jobs import Job, Problem, as_float
from ._inputs import integer, vector

__all__ = ["reprojection", "error_sum", "gathered_blocks", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]

CAMERA = 11
BLOCK = CAMERA + 3 + 1  # entries of one reprojection row


def _cross(a, b, xp):
    return xp.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                     a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)


def reprojection(cams, points, weights, feats):
    """The (p, 2) weighted reprojection errors, one row per observation (cams (p, 11), points (p, 3))."""
    xp = dk.namespace(cams, points, weights)
    rotation, centred = cams[:, 0:3], points - cams[:, 3:6]
    sq_angle = xp.sum(rotation * rotation, axis=1)
    turning = sq_angle != 0
    angle = xp.sqrt(xp.where(turning, sq_angle, 1.0))  # 1 where the rotation is zero: that branch is unused
    axis = rotation / xp.reshape(angle, (-1, 1))
    cos, sin = xp.reshape(xp.cos(angle), (-1, 1)), xp.reshape(xp.sin(angle), (-1, 1))
    along = xp.reshape(xp.sum(axis * centred, axis=1), (-1, 1)) * (1 - cos)
    rodrigues = centred * cos + _cross(axis, centred, xp) * sin + axis * along
    small = centred + _cross(rotation, centred, xp)  # the first-order rotation, at a zero angle
    camera = xp.where(xp.reshape(turning, (-1, 1)), rodrigues, small)
    proj = camera[:, 0:2] / camera[:, 2:3]
    r2 = xp.sum(proj * proj, axis=1)
    distortion = 1 + cams[:, 9] * r2 + cams[:, 10] * r2 * r2
    proj = proj * xp.reshape(distortion * cams[:, 6], (-1, 1)) + cams[:, 7:9]
    return xp.reshape(weights, (-1, 1)) * (proj - feats)


def _data(input):
    n, m, p = integer(input, "n"), integer(input, "m"), integer(input, "p")
    cam, x, feat = vector(input, "cam", size=CAMERA), vector(input, "x", size=3), vector(input, "feat", size=2)
    w = input.get("w")
    if isinstance(w, bool) or not isinstance(w, (int, float)):
        raise ValueError(f"input.w must be a number; got {w!r}")
    index = np.arange(p)
    return (n, m, p, np.tile(cam, (n, 1)), np.tile(x, (m, 1)), np.full(p, float(w)), np.tile(feat, (p, 1)),
            index % n, index % m)


def problem(input) -> Problem:
    """theta = (cams, points, weights) flattened; the primal is the (p, 3) [reprojection errors, w_err]."""
    n, m, p, cams, points, weights, feats, cam_of, point_of = _data(input)

    def errors(theta):
        xp = dk.namespace(theta)
        c = xp.reshape(theta[:CAMERA * n], (n, CAMERA))
        x = xp.reshape(theta[CAMERA * n:CAMERA * n + 3 * m], (m, 3))
        w = theta[CAMERA * n + 3 * m:]
        reproj = reprojection(c[cam_of], x[point_of], w, feats)
        return xp.concatenate([reproj, xp.reshape(1 - w * w, (-1, 1))], axis=1)
    theta = np.concatenate([cams.ravel(), points.ravel(), weights])
    return Problem(theta, objective=lambda t: errors(t)[:, 0].sum(), primal=errors)


def _objective(input, engine) -> Job:
    p = problem(input)
    run = (engine.primal(p.primal) if engine is not None else p.primal)
    theta = p.theta
    return Job(lambda: np.asarray(run(theta)),
               lambda e: {"reproj_error": {"elements": [as_float(e[0, 0]), as_float(e[0, 1])], "repeated": len(e)},
                          "w_err": {"element": as_float(e[0, 2]), "repeated": len(e)}})


def _jacobian(input, engine) -> Job:
    n, m, p, cams, points, weights, feats, cam_of, point_of = _data(input)
    gathered = gathered_blocks(input)[0]

    first, second = (engine.gradient(lambda t, r=r: error_sum(t, r, feats)) for r in (0, 1))
    weight_error = engine.gradient(lambda w: dk.namespace(w).sum(1 - w * w))

    def run():  # every block computed; their interleaving by rows is the output's layout (encoded untimed)
        return first(gathered), second(gathered), np.asarray(weight_error(weights))
    return Job(run, lambda out: _compressed(np.stack([np.reshape(out[0], (p, BLOCK)), np.reshape(out[1], (p, BLOCK))],
                                                     1), out[2], n, m, cam_of, point_of))


def gathered_blocks(input) -> tuple[np.ndarray, np.ndarray]:
    """Each observation's camera, point and weight side by side, (p, 15) flattened; and the features."""
    n, m, p, cams, points, weights, feats, cam_of, point_of = _data(input)
    return np.concatenate([cams[cam_of], points[point_of], weights[:, None]], axis=1).ravel(), feats


def error_sum(theta, r: int, feats):
    """The sum over observations of error ``r`` (0: x, 1: y), of the gathered (p, 15) blocks in ``theta``."""
    xp = dk.namespace(theta)
    blocks = xp.reshape(theta, (feats.shape[0], BLOCK))
    return xp.sum(reprojection(blocks[:, :CAMERA], blocks[:, CAMERA:CAMERA + 3], blocks[:, -1], feats)[:, r])


def _compressed(blocks, w_diag, n, m, cam_of, point_of) -> dict:
    """The first 30 and the last of the compressed-row arrays (rows, cols, vals) of the full Jacobian."""
    p = len(w_diag)
    rows = np.concatenate([np.arange(2 * p) * BLOCK, 2 * p * BLOCK + np.arange(p + 1)])
    cols = np.concatenate([CAMERA * cam_of[:, None] + np.arange(CAMERA),
                           CAMERA * n + 3 * point_of[:, None] + np.arange(3),
                           CAMERA * n + 3 * m + np.arange(p)[:, None]], axis=1)
    keep = min(30, 2 * p * BLOCK)
    cols_head = np.repeat(cols[:, None, :], 2, axis=1).ravel()[:keep]
    vals_head = blocks.ravel()[:keep]
    return {"rows": [int(v) for v in rows[:30]] + [int(rows[-1])],
            "cols": [int(v) for v in cols_head] + [int(CAMERA * n + 3 * m + p - 1)],
            "vals": [float(v) for v in vals_head] + [float(w_diag[-1])]}


FUNCTIONS = {"objective": _objective, "jacobian": _jacobian}

# The (n, m, p) of ADBench's files ba1 .. ba14 (the eval's default range).
SIZES = [{"n": n, "m": m, "p": p} for n, m, p in (
    (49, 7776, 31843), (21, 11315, 36455), (161, 48126, 182072), (372, 47423, 204472), (257, 65132, 225911),
    (539, 65220, 277273), (93, 61203, 287451), (88, 64298, 383937), (810, 88814, 393775),
    (1197, 126327, 563734), (1723, 156502, 678718), (253, 163691, 899155), (245, 198739, 1091386),
    (356, 226730, 1255268))]
TEST_SIZES = [{"n": 1, "m": 1, "p": 1}, {"n": 2, "m": 3, "p": 4}]


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` per size: one camera, point, weight and feature from ``default_rng(seed)``."""
    for size in SIZES if sizes is None else sizes:
        rng = np.random.default_rng(seed)
        cam = np.concatenate([rng.normal(size=3), rng.uniform(0, 60, 3), [rng.uniform(300, 500)],
                              rng.uniform(-10, 10, 2), [rng.uniform(0, 0.1), rng.uniform(0, 0.01)]])
        yield (f"n={size['n']},m={size['m']},p={size['p']}",
               {**size, "cam": cam.tolist(), "x": rng.uniform(0, 10, 3).tolist(), "w": float(rng.uniform()),
                "feat": rng.uniform(0, 1000, 2).tolist()})
