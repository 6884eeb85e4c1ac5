"""GradBench ``ht`` through the tool's protocol: residuals against a loop-by-loop transcription of ADBench's
hand model (bone by bone, vertex by vertex, in plain floats), and the Jacobian against the 50-digit referee
of the uncompressed residual function."""
from __future__ import annotations

import functools
import importlib.util
import math

import numpy as np
import pytest

import diffkit as dk
from diffkit.gradbench.engines import engine_for
from diffkit.gradbench.evals import ht

from test_gradbench import _driver, assert_close


def _euler(ax, az, ay):
    """R_z R_y R_x, entry by entry."""
    def rx(t):
        return [[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]]

    def ry(t):
        return [[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]]

    def rz(t):
        return [[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]]
    return np.array(rz(az)) @ np.array(ry(ay)) @ np.array(rx(ax))


def _rodrigues(w):
    n = math.sqrt(sum(v * v for v in w))
    if n < 1e-4:
        return np.eye(3)
    x, y, z = (v / n for v in w)
    s, c = math.sin(n), math.cos(n)
    return np.array([[x * x + (1 - x * x) * c, x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
                     [x * y * (1 - c) + z * s, y * y + (1 - y * y) * c, y * z * (1 - c) - x * s],
                     [x * z * (1 - c) - y * s, z * y * (1 - c) + x * s, z * z + (1 - z * z) * c]])


def _loop_residuals(input) -> np.ndarray:
    """ADBench's objective transcribed with loops: pose parameters, posed relatives, absolutes, skinning."""
    theta, model, data = input["theta"], input["data"]["model"], input["data"]
    pose = np.zeros((3, 25))
    pose[:, 0], pose[:, 1], pose[:, 2] = theta[0:3], 1.0, theta[3:6]
    i_theta, i_pose = 6, 5
    for _finger in range(5):
        for i in (2, 3, 4):
            pose[0, i_pose] = theta[i_theta]
            i_theta += 1
            if i == 2:
                pose[1, i_pose] = theta[i_theta]
                i_theta += 1
            i_pose += 1
        i_pose += 1
    absolutes = []
    for bone in range(22):
        t = np.eye(4)
        t[:3, :3] = _euler(pose[0, bone + 3], pose[1, bone + 3], pose[2, bone + 3])
        relative = np.array(model["base_relatives"][bone]) @ t
        parent = model["parents"][bone]
        absolutes.append(relative if parent == -1 else absolutes[parent] @ relative)
    base = np.array(model["base_positions"])
    weights = np.array(model["weights"])
    verts = np.zeros((len(base), 3))
    for bone in range(22):
        transform = absolutes[bone] @ np.array(model["inverse_base_absolutes"][bone])
        for v in range(len(base)):
            verts[v] += weights[v, bone] * (transform @ base[v])[:3]
    if model["is_mirrored"]:
        verts[:, 0] *= -1
    verts = (_rodrigues(theta[0:3]) @ verts.T).T + np.array(theta[3:6])
    out = []
    for i, (point, c) in enumerate(zip(data["points"], data["correspondences"])):
        if input["us"]:
            u, v = input["us"][i]
            a, b, d = model["triangles"][c]
            at = u * verts[a] + v * verts[b] + (1 - u - v) * verts[d]
        else:
            at = verts[c]
        out.extend(np.array(point) - at)
    return np.array(out)


@pytest.fixture(scope="module")
def tool():
    yield from _driver("reverse")


@pytest.mark.parametrize("size", ht.TEST_SIZES + [{"vertices": 7, "points": 5, "complicated": False}])
def test_objective_is_adbenchs_hand_model(tool, size):
    _, input = next(ht.inputs([size]))
    assert_close(tool.output("ht", "objective", input), _loop_residuals(input), 1e-12)


def test_a_global_rotation_below_its_threshold_is_the_identity(tool):
    _, input = next(ht.inputs([ht.TEST_SIZES[0]]))
    input["theta"][0:3] = [3e-5, -2e-5, 1e-5]
    assert_close(tool.output("ht", "objective", input), _loop_residuals(input), 1e-12)


@functools.lru_cache(maxsize=None)
def _referee_jacobian(size_index: int) -> np.ndarray:
    """The mpmath referee's uncompressed Jacobian (26 + 2c columns) at a test size: seconds each, so once."""
    _, input = next(ht.inputs([ht.TEST_SIZES[size_index]]))
    x, residuals = ht.problem(input)
    return np.asarray(dk.reference_jacobian(residuals, x).jacobian, dtype=float)


@pytest.mark.parametrize("size", ht.TEST_SIZES)
def test_jacobian_matches_the_referee_and_compresses_the_us_block_exactly(tool, size):
    _, input = next(ht.inputs([size]))
    ref = _referee_jacobian(ht.TEST_SIZES.index(size))
    jac = np.asarray(tool.output("ht", "jacobian", input))
    points = size["points"]
    assert jac.shape == (3 * points, 26 + (2 if size["complicated"] else 0))
    if not size["complicated"]:
        assert_close(jac, ref, 1e-12)
        return
    assert_close(jac[:, 2:], ref[:, :26], 1e-12)
    for i in range(points):  # row block i: its own (u_i, v_i) columns; every other us column is zero
        rows = slice(3 * i, 3 * i + 3)
        own = ref[rows, 26 + 2 * i:26 + 2 * i + 2]
        assert_close(jac[rows, :2], own, 1e-12)
        others = np.delete(ref[rows, 26:], [2 * i, 2 * i + 1], axis=1)
        assert np.all(others == 0)


@pytest.mark.parametrize("method", ["compiled"] + [m for m in ("torch", "jax", "autograd") if importlib.util.find_spec(m)])
def test_the_peers_and_the_replays_jacobians_match_the_referee(method):
    # the same definition through each peer's own Jacobian (autograd: one reverse pass per residual), and
    # through dk.compile(jacobian=True): the batched forward pass recorded and replayed
    _, input = next(ht.inputs([ht.TEST_SIZES[1]]))
    ref = _referee_jacobian(1)
    jac = ht.FUNCTIONS["jacobian"](input, engine_for(method)).run()
    assert_close(jac[:, 2:], ref[:, :26], 1e-12)
    assert_close(jac[:, :2], np.stack([ref[r, 26 + 2 * (r // 3):28 + 2 * (r // 3)] for r in range(len(ref))]), 1e-12)


def test_bad_hand_inputs_get_errors_naming_the_field(tool):
    _, input = next(ht.inputs([ht.TEST_SIZES[0]]))
    input["data"]["model"]["parents"] = input["data"]["model"]["parents"][:-1]
    response = tool.evaluate("ht", "objective", input)
    assert not response["success"] and "parents" in response["error"]
    _, input = next(ht.inputs([ht.TEST_SIZES[1]]))
    input["us"] = input["us"][:-1]
    response = tool.evaluate("ht", "jacobian", input)
    assert not response["success"] and "input.us" in response["error"]
