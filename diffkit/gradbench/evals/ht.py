"""GradBench ``ht`` (ADBench's hand tracking): a skinned hand mesh posed by 26 parameters, and the residuals
to observed points with their dense Jacobian.

Input ``{"theta": 26 floats, "us": [[u, v] per correspondence] or [], "data": {"model": ..., "correspondences":
[vertex or triangle per point], "points": [[x, y, z] per point]}}``.  The model has 22 bones
(``parents``, each earlier than its child, -1 for the root), ``base_relatives`` and
``inverse_base_absolutes`` (4 x 4 per bone, row-major), ``base_positions`` (4 homogeneous coordinates per
vertex), ``weights`` (one per vertex and bone), ``triangles`` (3 vertices each) and ``is_mirrored``.

The pose (ADBench's parameter order): theta[0:3] a global rotation (angle-axis, the identity below a norm of
1e-4), theta[3:6] a translation, then per finger (5) four angles: two for its first joint and one for each of
the next two; every other joint angle is zero.  A bone's rotation is R_z R_y R_x of its angles
``(x, z, y)``; bones chain by ``parents``; a vertex is its base position moved by the weighted blend of the
bones' transforms (linear blend skinning, linear in the transforms: its coefficients, weight times base
position, are the model's data, formed once per input).
``objective`` returns the 3 c residuals ``point - vertex`` (the simple case, ``us`` empty) or ``point -
(u v_0 + v v_1 + (1 - u - v) v_2)`` over the corresponding triangle (the complicated case).  ``jacobian``
returns 3 c rows: in the complicated case first the two derivatives by that row's own ``(u, v)`` (a
residual depends on its own ``u, v`` only), then the 26 by theta.

The Jacobian is the one of g(c) = r(x + V c) at c = 0, x = (theta, us): V's columns are theta's unit
vectors and two sums of unit vectors, over every u and over every v.  Because residual i depends on u_i and
v_i only, the two sums give each row its own two derivatives (a column compression, exact): 28 columns
instead of 26 + 2 c, by whichever mode ``dk.jacobian`` picks.

The eval reads its hands from ADBench's data files; :func:`inputs` builds a seeded hand of the same shape
(22 bones in five chains of four off a wrist, rigid base transforms, normalised weights, a strip of
triangles) at the sizes given.

>>> _, input = next(inputs([{"vertices": 6, "points": 4, "complicated": True}]))
>>> FUNCTIONS["objective"](input, None).run().shape
(12,)
"""
from __future__ import annotations

import numpy as np

import diffkit as dk

from ..jobs import Job, floats
from ._inputs import field, matrix, vector

__all__ = ["residuals", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]

BONES, THETA = 22, 26
# Where theta's finger angles go: (bone, angle row) for theta[6:], in ADBench's order (see the module doc).
_FINGER_SLOTS = [(2 + 4 * f + j, row) for f in range(5) for j, row in ((0, 0), (0, 1), (1, 0), (2, 0))]


def _selection(row: int) -> np.ndarray:
    """The constant (22, 26) matrix taking theta to the bones' angle ``row`` (0: x, 1: z, 2: y)."""
    s = np.zeros((BONES, THETA))
    for k, (bone, r) in enumerate(_FINGER_SLOTS):
        if r == row:
            s[bone, 6 + k] = 1.0
    return s


_ANGLES = [_selection(r) for r in range(3)]
# [k]_x = k0 C0 + k1 C1 + k2 C2: the cross-product matrix of a unit axis k, from constant generators
_CROSS = np.array([[[0, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
                   [[0, -1, 0], [1, 0, 0], [0, 0, 0]]], dtype=np.float64)


def _rotations(x, z, y, xp):
    """R_z(z) R_y(y) R_x(x) for arrays of angles, shape (..., 3, 3)."""
    one, zero = xp.ones_like(x), xp.zeros_like(x)
    cx, sx, cy, sy, cz, sz = xp.cos(x), xp.sin(x), xp.cos(y), xp.sin(y), xp.cos(z), xp.sin(z)

    def mat(*entries):
        return xp.reshape(xp.stack(entries, axis=-1), (*x.shape, 3, 3))
    rx = mat(one, zero, zero, zero, cx, -sx, zero, sx, cx)
    ry = mat(cy, zero, sy, zero, one, zero, -sy, zero, cy)
    rz = mat(cz, -sz, zero, sz, cz, zero, zero, zero, one)
    return rz @ ry @ rx


def _angle_axis(w, xp):
    """Rodrigues' rotation of the angle-axis ``w`` (3,); the identity below a norm of 1e-4, as ADBench (a
    ``where``, so that a compiled trace keeps both branches; the unused one divides by 1, not by ~0)."""
    norm = xp.sqrt(xp.sum(w * w))
    small = norm < 1e-4
    safe = xp.where(small, 1.0, norm)
    k = w / safe
    c, s = xp.cos(safe), xp.sin(safe)
    cross = k[0] * _CROSS[0] + k[1] * _CROSS[1] + k[2] * _CROSS[2]  # the matrix of k x (.)
    rodrigues = c * np.eye(3) + s * cross + (1 - c) * (xp.reshape(k, (3, 1)) * xp.reshape(k, (1, 3)))
    return xp.where(small, np.eye(3), rodrigues)


def _vertices(theta, model: dict, xp):
    """The posed mesh, (3, vertices): the bone chain, linear blend skinning, mirroring, the global transform."""
    x, z, y = (xp.matmul(np.asarray(s), theta) for s in _ANGLES)
    rot = _rotations(x, z, y, xp)                                   # (22, 3, 3)
    base = model["base_relatives"]  # a posed relative is base @ [[rot, 0], [0, 1]]: its last column is base's
    relatives = xp.concat([xp.matmul(base[:, :, 0:3], rot), base[:, :, 3:4]], axis=2)  # (22, 4, 4)
    generation: list = []
    for bones, parent_at in model["generations"]:  # the chain, one generation of bones at a time
        mine = relatives[bones]
        generation.append(mine if parent_at is None else generation[-1][parent_at] @ mine)
    absolutes = xp.concat(generation, axis=0)[model["bone_order"]]
    transforms = xp.matmul(absolutes[:, 0:3, :], model["inverse_base_absolutes"])  # (22, 3, 4)
    # linear blend skinning, sum_b w_vb T_b p_v, is linear in the transforms (the data's coefficients w_vb p_v),
    # and so are the mirroring and the global rotation after it: they act on the 3 x 88 transforms, then the
    # mesh is formed once
    moved = xp.reshape(xp.permute_dims(transforms, (1, 0, 2)), (3, 4 * BONES))
    if model["is_mirrored"]:
        moved = moved * np.array([[-1.0], [1.0], [1.0]])
    moved = xp.matmul(_angle_axis(theta[0:3], xp), moved)
    return xp.matmul(moved, model["skinning"]) + xp.reshape(theta[3:6], (3, 1))


def residuals(theta, us, data: dict):
    """The 3 c residuals (point - hand point), flat in ADBench's order (point by point, x y z)."""
    xp = dk.namespace(theta) if us is None else dk.namespace(theta, us)
    hand = _vertices(theta, data["model"], xp)  # (3, vertices)
    corr = data["correspondences"]
    if us is None:
        at = hand[:, corr]
    else:
        tri = data["model"]["triangles"][corr]
        u, v = us[:, 0], us[:, 1]
        at = u * hand[:, tri[:, 0]] + v * hand[:, tri[:, 1]] + (1 - u - v) * hand[:, tri[:, 2]]
    return xp.reshape(data["points"] - xp.permute_dims(at, (1, 0)), (-1,))


def _generations(parents: list) -> tuple[list, np.ndarray]:
    """The bones by depth in the chain, each generation with its parents' places in the one before, and the
    order that puts the generations' bones back in bone order."""
    depth: list = []
    for p in parents:
        depth.append(0 if p < 0 else depth[p] + 1)
    generations: list = []
    for d in range(max(depth) + 1):
        bones = [b for b, bd in enumerate(depth) if bd == d]
        before = list(generations[-1][0]) if generations else []
        generations.append((np.array(bones), np.array([before.index(parents[b]) for b in bones]) if d else None))
    return generations, np.argsort(np.concatenate([g[0] for g in generations]))


def _data(input) -> tuple:
    theta = vector(input, "theta", size=THETA)
    data = field(input, "data")
    model = field(data, "model")
    parents = [int(p) for p in field(model, "parents")]
    if len(parents) != BONES or any(not -1 <= p < i for i, p in enumerate(parents)):
        raise ValueError(f"input.data.model.parents must list {BONES} bones, each parent earlier (or -1)")
    per_bone = {name: np.asarray(field(model, name), dtype=np.float64)
                for name in ("base_relatives", "inverse_base_absolutes")}
    for name, value in per_bone.items():
        if value.shape != (BONES, 4, 4):
            raise ValueError(f"input.data.model.{name} must be {BONES} 4x4 matrices; got shape {value.shape}")
    positions = matrix(model, "base_positions", columns=4)
    weights = matrix(model, "weights", columns=BONES)
    if weights.shape[0] != positions.shape[0]:
        raise ValueError(f"input.data.model.weights must have one row per vertex ({positions.shape[0]}); "
                         f"got {weights.shape[0]}")
    corr = np.asarray(field(data, "correspondences"), dtype=np.intp)
    points = matrix(data, "points", columns=3)
    if corr.shape != (points.shape[0],):
        raise ValueError(f"input.data.correspondences must have one entry per point ({points.shape[0]})")
    raw_us = field(input, "us")
    us = np.asarray(raw_us, dtype=np.float64).reshape(-1, 2) if len(raw_us) else None
    triangles = np.asarray(field(model, "triangles") or np.zeros((0, 3)), dtype=np.intp).reshape(-1, 3)
    limit = triangles.shape[0] if us is not None else positions.shape[0]
    if corr.size and not 0 <= corr.min() <= corr.max() < limit:
        raise ValueError(f"input.data.correspondences must index the model's "
                         f"{'triangles' if us is not None else 'vertices'} (0..{limit - 1})")
    if us is not None and us.shape[0] != points.shape[0]:
        raise ValueError(f"input.us must hold one [u, v] per point ({points.shape[0]}); got {us.shape[0]}")
    generations, order = _generations(parents)
    skinning = (weights[:, :, None] * positions[:, None, :]).reshape(positions.shape[0], 4 * BONES).T
    model = {"generations": generations, "bone_order": order, **per_bone, "skinning": skinning,
             "triangles": triangles, "is_mirrored": bool(field(model, "is_mirrored"))}
    return theta, us, {"model": model, "correspondences": corr, "points": points}


def problem(input):
    """``(x, g)``: x = (theta, us) flat, and the residuals as a function of it."""
    theta, us, data = _data(input)
    if us is None:
        return theta, lambda x: residuals(x, None, data)
    n = us.shape[0]
    return np.concatenate([theta, us.ravel()]), lambda x: residuals(x[:THETA], dk.namespace(x).reshape(
        x[THETA:], (n, 2)), data)


def compressed_directions(input) -> np.ndarray:
    """V: theta's 26 unit vectors, then (complicated case) the sum over points of each u and of each v."""
    theta, us, _ = _data(input)
    n = 0 if us is None else us.shape[0]
    v = np.zeros((THETA + 2 * n, THETA + (2 if n else 0)))
    v[:THETA, :THETA] = np.eye(THETA)
    if n:
        v[THETA::2, THETA], v[THETA + 1::2, THETA + 1] = 1.0, 1.0
    return v


def _objective(input, engine) -> Job:
    x, g = problem(input)
    run = engine.primal(g) if engine is not None else g
    return Job(lambda: np.asarray(run(x)), floats)


def _jacobian(input, engine) -> Job:
    x, g = problem(input)
    directions = compressed_directions(input)
    zero = np.zeros(directions.shape[1])

    def along(c):  # g(x + V c): its Jacobian at c = 0 is J V
        return g(x + dk.namespace(c).matmul(directions, c))
    jac = engine.jacobian(along) if engine is not None else (lambda c: dk.jacobian(along, c).jacobian)

    def run():
        j = np.asarray(jac(zero))
        return j if j.shape[1] == THETA else np.concatenate([j[:, THETA:], j[:, :THETA]], axis=1)
    return Job(run, floats)


FUNCTIONS = {"objective": _objective, "jacobian": _jacobian}

SIZES = [{"vertices": 544, "points": c, "complicated": cplx}
         for cplx in (False, True) for c in (100, 200, 400, 800, 1600)]
TEST_SIZES = [{"vertices": 5, "points": 3, "complicated": False}, {"vertices": 6, "points": 4, "complicated": True}]


def _rigid(rng) -> np.ndarray:
    """A 4 x 4 rigid transform: a random rotation (QR of a Gaussian, det +1) and a translation."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = q, rng.uniform(-1, 1, 3)
    return m


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` per size: a seeded 22-bone hand, ``points`` observations, theta near rest."""
    for size in SIZES if sizes is None else sizes:
        rng = np.random.default_rng(seed)
        nv, c, cplx = int(size["vertices"]), int(size["points"]), bool(size.get("complicated"))
        parents = [-1, 0] + [1 if j == 0 else 2 + 4 * f + j - 1 for f in range(5) for j in range(4)]
        relatives = np.stack([_rigid(rng) for _ in range(BONES)])
        absolutes = []
        for bone, parent in enumerate(parents):
            absolutes.append(relatives[bone] if parent < 0 else absolutes[parent] @ relatives[bone])
        weights = rng.uniform(size=(nv, BONES)) ** 4
        weights /= weights.sum(axis=1, keepdims=True)
        positions = np.concatenate([rng.uniform(-1, 1, (nv, 3)), np.ones((nv, 1))], axis=1)
        triangles = np.stack([np.arange(nv - 2), np.arange(1, nv - 1), np.arange(2, nv)], axis=1)
        limit = len(triangles) if cplx else nv
        model = {"bone_count": BONES, "bone_names": [f"bone{b}" for b in range(BONES)], "parents": parents,
                 "base_relatives": relatives.tolist(),
                 "inverse_base_absolutes": np.linalg.inv(np.stack(absolutes)).tolist(),
                 "base_positions": positions.tolist(), "weights": weights.tolist(),
                 "triangles": triangles.tolist(), "is_mirrored": bool(seed % 2)}
        data = {"model": model, "correspondences": rng.integers(0, limit, c).tolist(),
                "points": rng.uniform(-1, 1, (c, 3)).tolist()}
        theta = np.concatenate([rng.uniform(-0.5, 0.5, 3), rng.uniform(-1, 1, 3), rng.uniform(-0.3, 0.3, 20)])
        us = rng.uniform(0, 0.5, (c, 2)).tolist() if cplx else []
        yield (f"{'complicated' if cplx else 'simple'},v={nv},c={c}",
               {"theta": theta.tolist(), "us": us, "data": data})
