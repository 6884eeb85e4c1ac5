"""The C twins of the tape's bookkeeping (diffkit.tape.native) against their Python references.

The C recorder must build the very node the generated Python recorder builds (same parents, the same rule
objects, the same arguments, the same shapes) for every primitive it covers and every pattern of inputs on
the tape; the C sweep must give the Python loop's gradients bit for bit, through views, joint rules, fan-out,
lazily zeroed blocks and nested tapes.  Where the extension is not built these tests skip, and the rest of the
suite runs the Python references; one test below runs a gradient in a process with the C parts turned off.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import diffkit as dk
from diffkit.backends import NUMPY
from diffkit.dispatch import TRACERS
from diffkit.primitives import PRIMITIVES
from diffkit.tape import Tape, native
from diffkit.tape import core
from diffkit.tape.array import TArray
from diffkit.tape.plans import fast_recorder

from test_primitives import draw

built = pytest.mark.skipif(native._ctape is None, reason="the C extension is not built here (no C compiler at "
                                                          "install, or DIFFKIT_PURE_PYTHON set)")


def _recorders(prim):
    args = (prim, core.apply, NUMPY, TArray, TRACERS, PRIMITIVES["multiply"])
    return native.recorder(*args), fast_recorder(*args)


COVERED = sorted(n for n, p in PRIMITIVES.items() if native._ctape is not None and _recorders(p)[0] is not None)


def _same_item(a, b, what):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype, what
        np.testing.assert_array_equal(a, b, err_msg=what)
    elif isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        for k, (x, y) in enumerate(zip(a, b)):
            _same_item(x, y, f"{what}[{k}]")
    else:
        assert a is b or a == b, f"{what}: {a!r} != {b!r}"


def _record(recorder, inputs, on_tape, params):
    tape = Tape()
    args = [tape.leaf(x) if k in on_tape else x for k, x in enumerate(inputs)]
    out = recorder(*args, **params)
    return tape, out


@built
def test_the_c_recorder_covers_what_the_python_one_covers():
    python_only = [n for n, p in PRIMITIVES.items() if _recorders(p)[1] is not None and _recorders(p)[0] is None]
    assert python_only == []
    assert len(COVERED) >= 80  # (the unary and binary array primitives; 94 when written)


@built
@pytest.mark.parametrize("name", COVERED)
def test_the_c_recorder_builds_the_python_recorders_node(name):
    prim = PRIMITIVES[name]
    c_record, py_record = _recorders(prim)
    inputs, params = draw(prim, seed=3)
    differentiable = [k for k in range(len(inputs)) if k not in prim.nondiff]
    patterns = [{k} for k in differentiable] + ([set(differentiable)] if len(differentiable) > 1 else [])
    for on_tape in patterns:
        (tc, oc), (tp, op) = _record(c_record, inputs, on_tape, params), _record(py_record, inputs, on_tape, params)
        assert type(oc) is TArray and type(op) is TArray and oc.index == op.index == len(on_tape)
        np.testing.assert_array_equal(oc.value, op.value)
        node_c, node_p = tc.nodes[-1], tp.nodes[-1]
        assert len(node_c) == len(node_p) and node_c[0] is node_p[0] is prim
        for k in range(1, len(node_c), 4):
            assert node_c[k] == node_p[k] and node_c[k + 1] is node_p[k + 1], f"{name}: link {k // 4}"
            for j, (a, b) in enumerate(zip(node_c[k + 2], node_p[k + 2], strict=True)):
                if a is oc.value or b is op.value:  # the output, computed on each tape
                    assert a is oc.value and b is op.value
                elif isinstance(a, tuple) and a and isinstance(a[0], np.ndarray):  # a residual: its own arrays
                    _same_item(a, b, f"{name}: residual")
                else:
                    _same_item(a, b, f"{name}: link {k // 4} argument {j}")
            assert node_c[k + 3] == node_p[k + 3], f"{name}: link {k // 4}'s shape"
            assert node_c[k + 3] is None or node_c[k + 3] is node_p[k + 3]  # the one shared tuple


@built
def test_the_c_recorder_hands_a_shape_error_to_the_python_path():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"matmul.*\(3, 4\).*\(3, 4\)"):
        dk.gradient(lambda t: dk.namespace(t).sum(t.reshape(3, 4) @ x), np.ones(12))


@built
def test_the_c_recorder_passes_params_and_their_defaults():
    # sum(axis=0) then sum(): the rule reads axis and keepdims, given or defaulted; d/dt = 1 everywhere
    t = np.arange(6.0)
    r = dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).sum(t.reshape(2, 3), axis=0) * 2.0), t)
    np.testing.assert_array_equal(r.grad, np.full(6, 2.0))
    r = dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).max(t.reshape(2, 3), axis=1, keepdims=True)), t)
    np.testing.assert_array_equal(r.grad, [0, 0, 1, 0, 0, 1])


POSITIONAL = [  # (primitive, params by position (axis, keepdims), by keyword, the output's shape from (2, 3))
    ("sum", (1,), {}, (2,)), ("sum", (1, True), {}, (2, 1)), ("max", (0, True), {}, (1, 3)),
    ("sum", (0,), {"axis": 1}, (2,)),  # a keyword wins over the same param by position, as the adapter has it
    ("mean", (None, True), {}, (1, 1)), ("min", (), {"axis": 1}, (2,)),
]


@built
@pytest.mark.parametrize("name, by_position, by_keyword, shape", POSITIONAL)
def test_the_c_recorder_takes_params_by_position_as_the_python_adapter_does(name, by_position, by_keyword, shape):
    from diffkit.backends import _positional_params
    prim = PRIMITIVES[name]
    c_record, py_record = _recorders(prim)
    assert c_record.takes_positional_params and not getattr(py_record, "takes_positional_params", False)
    adapter = _positional_params(py_record, 1, tuple(prim.params))  # the reference: params passed on by name
    x = np.arange(1.0, 7.0).reshape(2, 3)
    (tc, oc), (tp, op) = [_record(lambda v: rec(v, *by_position, **by_keyword), [x], {0}, {})
                          for rec in (c_record, adapter)]
    np.testing.assert_array_equal(oc.value, op.value)
    _same_item(tc.nodes[-1][1:], tp.nodes[-1][1:], f"{name}{by_position}{by_keyword}")
    assert tc.nodes[-1][0] is tp.nodes[-1][0] is prim and oc.shape == shape


@built
def test_too_many_positional_params_are_refused_naming_the_params():
    tape = Tape()
    x = tape.leaf(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"takes 1 array\(s\) and the params axis, keepdims; got 4 positional"):
        tape.ns.sum(x, 1, True, 3)
    assert len(tape.nodes) == 1  # nothing recorded


def _views_and_fan_out(t):  # blocks of a flat theta (lazily zeroed past 8192), x * x, a broadcast, fan-out
    xp = dk.namespace(t)
    n = t.shape[0] // 4
    a, b = xp.reshape(t[0:n], (n // 4, 4)), t[n:2 * n]
    c = xp.tanh(a) * xp.reshape(b, (n // 4, 4)) + t[3 * n:3 * n + 4]
    return xp.sum(c * c) + xp.sum(a[0] * 3.0) + xp.sum(xp.exp(t[2 * n:3 * n:2]))


def _joint_and_reductions(t):  # concat and stack (joint rules), max's ties, softmax composed
    xp = dk.namespace(t)
    u = xp.concat([t[:6], xp.sin(t[6:12])])
    v = xp.stack([t[:4], t[4:8]])
    s = v - xp.max(v, axis=1, keepdims=True)
    return xp.sum(u * u) - xp.sum(s - xp.log(xp.sum(xp.exp(s), axis=1, keepdims=True)))


@built
@pytest.mark.parametrize("f", [_views_and_fan_out, _joint_and_reductions])
@pytest.mark.parametrize("size", [16, 40_000])
@pytest.mark.parametrize("retain", [False, True])
def test_the_c_sweep_gives_the_python_loops_gradients_bit_for_bit(f, size, retain):
    theta = np.random.default_rng(size).normal(size=size)
    theta[:8] = [1.0, 1.0, 0.5, 1.0, -2.0, 3.0, 3.0, 0.0]  # ties for max
    grads = {}
    for on in (True, False):
        was = native.use(on)
        try:
            tape = Tape()
            x = tape.leaf(theta)
            out = f(x)
            grads[on] = tape.backward(out, retain=retain)
            if retain:  # the nodes are kept: a second sweep gives the same again
                again = tape.backward(out, retain=True)
                assert all(a is None and b is None or np.array_equal(a, b) for a, b in zip(grads[on], again))
        finally:
            native.use(was)
    assert [g is None for g in grads[True]] == [g is None for g in grads[False]]
    for k, (a, b) in enumerate(zip(grads[True], grads[False])):
        if a is not None:
            assert np.shape(a) == np.shape(b) and np.array_equal(a, b), f"node {k}"


@built
def test_the_c_sweep_under_second_derivatives():
    # H of sum(t^3 * sin t): diag(6 t sin t + 6 t^2 cos t - t^3 sin t), by hand
    t = np.array([0.3, -1.2, 2.0])
    want = np.diag(6 * t * np.sin(t) + 6 * t ** 2 * np.cos(t) - t ** 3 * np.sin(t))
    f = lambda t: dk.namespace(t).sum(t ** 3 * dk.namespace(t).sin(t))
    for on in (True, False):
        was = native.use(on)
        try:
            np.testing.assert_allclose(dk.hessian(f, t).hessian, want, rtol=1e-14, atol=1e-14)
        finally:
            native.use(was)


@built
def test_the_c_parts_leak_nothing():
    import gc
    theta = np.random.default_rng(0).normal(size=64)
    f = lambda t: _views_and_fan_out(t) + _joint_and_reductions(t)
    dk.gradient(f, theta)
    before = sys.getrefcount(theta), len(gc.get_objects())
    for _ in range(200):
        dk.gradient(f, theta)
    gc.collect()
    assert sys.getrefcount(theta) == before[0]
    assert len(gc.get_objects()) <= before[1] + 50  # (200 gradients that each leaked a node would add >= 200)


def test_with_the_c_parts_off_the_python_references_run():
    code = ("import numpy as np, diffkit as dk; from diffkit.tape import native; from diffkit.tape.array import "
            "TArray; print(native.loop(), TArray.__mro__[1].__name__, "
            "dk.gradient(lambda t: dk.namespace(t).sum(t[0:2] * t[1:3]), np.array([1.0, 2.0, 3.0])).grad.tolist())")
    env = {**os.environ, "DIFFKIT_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["Python", "_Fields", "[2.0,", "4.0,", "2.0]"]  # d/dt (t0 t1 + t1 t2), by hand


@built
@pytest.mark.parametrize("index", [slice(2, 8), slice(None, None, 3), 4, -1, slice(20, 30), np.int64(2), (1,),
                                   (slice(1, 3),), (1, slice(None)), (Ellipsis,), [1, 2], 12,
                                   np.array([1, 2, 2]), np.array([-1], dtype=np.int32), np.array([12]),
                                   (1, np.array([0, 3], dtype=np.uint8)), np.array([1.0]), np.array([True] * 12)],
                         ids=lambda v: repr(v).replace(" ", ""))
@pytest.mark.parametrize("record_values", [False, True])
def test_the_c_views_build_the_python_views_nodes(index, record_values):
    # integer arrays (a gather) are views' nodes too; floats, booleans and an index out of range are not
    from diffkit.tape import levels
    c_index, c_reshape = native.views(TArray, levels.reshape_view)
    theta = np.arange(12.0).reshape(3, 4) if type(index) is tuple and len(index) == 2 else np.arange(12.0)
    made = {}
    for name, (index_view, reshape_view) in {"C": (c_index, c_reshape),
                                             "Python": (levels.index_view, levels.reshape_view)}.items():
        tape = Tape(record_values=record_values)
        x = tape.leaf(theta)
        part = index_view(x, index)
        reshaped = None if part is None else reshape_view(part, (-1, 1) if np.ndim(part.value) else ())
        made[name] = tape, part, reshaped
    (tc, pc, rc), (tp, pp, rp) = made["C"], made["Python"]
    assert (pc is None) == (pp is None) and (rc is None) == (rp is None)
    assert len(tc.nodes) == len(tp.nodes)
    gather = any(type(i) is np.ndarray for i in (index if type(index) is tuple else (index,)))
    for got, want in zip(tc.nodes, tp.nodes):
        assert (got is None and want is None) or (got[0] is want[0] and got[1] == want[1] and got[3:] == want[3:])
        assert got is None or got[2] is want[2]  # the caller's index itself
        assert got is None or got[4] is None or got[4] is want[4]  # the one shared shape tuple
    for got, want in ((pc, pp), (rc, rp)):
        if got is not None:
            assert got.index == want.index and np.array_equal(got.value, want.value)
            if isinstance(got.value, np.ndarray) and got.value.size and not gather:  # a view, not a copy
                assert np.shares_memory(got.value, theta)
    if record_values:
        assert len(tc.values) == len(tp.values)


@pytest.mark.parametrize("index", [np.array([1, 2, 2]), np.array([2, 1, 2], dtype=np.uint16), np.array([-3, 2, -4])])
def test_a_gathers_gradient_adds_up_repeated_indices(index):
    # d/dt sum(t[idx] * c) with c = (1, 10, 100): c_k lands on t[idx_k]; a repeated entry gets the sum
    c = np.array([1.0, 10.0, 100.0])
    f = lambda t: dk.namespace(t).sum(t[index] * c)
    want = np.zeros(5)
    for k, i in enumerate(index.tolist()):
        want[i] += c[k]
    np.testing.assert_array_equal(dk.gradient(f, np.linspace(-1, 1, 5)).grad, want)


def test_a_view_of_a_block_gets_its_gradient_in_the_block():
    # d/dt sum(reshape(t[2:8], (2, 3)) * c) = c in the block, 0 elsewhere; t[4] * 5 adds 5 at entry 4
    c = np.arange(6.0).reshape(2, 3)
    f = lambda t: dk.namespace(t).sum(dk.namespace(t).reshape(t[2:8], (2, 3)) * c) + t[4] * 5.0
    want = np.zeros(12)
    want[2:8] = c.ravel()
    want[4] += 5.0
    np.testing.assert_array_equal(dk.gradient(f, np.linspace(-1, 1, 12)).grad, want)


@pytest.mark.parametrize("pure", [False, True])
def test_a_primitive_given_too_many_arrays_is_refused_and_writes_nothing(pure):
    # numpy's third positional argument is `out`: passed on, multiply would write into the caller's array
    code = ("import numpy as np, diffkit as dk\n"
            "z = np.zeros(3)\n"
            "def f(t):\n"
            "    return dk.namespace(t).sum(dk.namespace(t).multiply(t, t * 2.0, z))\n"
            "try:\n"
            "    dk.gradient(f, np.array([1.0, 2.0, 3.0]))\n"
            "except TypeError as err:\n"
            "    print('refused:', err)\n"
            "print(z.tolist())\n")
    env = {k: v for k, v in os.environ.items() if k != "DIFFKIT_PURE_PYTHON"}
    if pure:
        env["DIFFKIT_PURE_PYTHON"] = "1"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "refused: multiply() takes 2 positional arguments but 3 were given" in out
    assert out.strip().endswith("[0.0, 0.0, 0.0]")


OPERATOR_CASES = [  # (expression, the Python reference's method and its arguments)
    (lambda x, y: x + y, "__add__", "xy"), (lambda x, y: 2.0 + x, "__radd__", "x2"),
    (lambda x, y: x - y, "__sub__", "xy"), (lambda x, y: 2.0 - x, "__rsub__", "x2"),
    (lambda x, y: x * y, "__mul__", "xy"), (lambda x, y: 3 * x, "__rmul__", "x3"),
    (lambda x, y: x * x, "__mul__", "xx"),
    (lambda x, y: x / y, "__truediv__", "xy"), (lambda x, y: 1.0 / x, "__rtruediv__", "x1"),
    (lambda x, y: x @ y, "__matmul__", "xy"), (lambda x, y: np.eye(3) @ x, "__rmatmul__", "xI"),
    (lambda x, y: -x, "__neg__", "x"), (lambda x, y: x[1:3], "__getitem__", "xs"),
    (lambda x, y: x[0, 1], "__getitem__", "xt"),
]
_OPERANDS = {"2": 2.0, "3": 3, "1": 1.0, "I": np.eye(3), "s": slice(1, 3), "t": (0, 1)}


@built
@pytest.mark.parametrize("expression, method, operands", OPERATOR_CASES,
                         ids=[f"{m}-{o}" for _, m, o in OPERATOR_CASES])
def test_the_c_operators_record_what_the_python_operators_record(expression, method, operands):
    from diffkit.tape.array import Operators
    assert getattr(TArray, method) is not getattr(Operators, method)  # the C struct's operator runs
    x_value, y_value = np.arange(1.0, 10.0).reshape(3, 3), np.full((3, 3), 0.5)
    nodes = []
    for run in ("C", "Python"):
        tape = Tape()
        x, y = tape.leaf(x_value), tape.leaf(y_value)
        if run == "C":
            out = expression(x, y)
        else:
            args = [x if o == "x" else y if o == "y" else _OPERANDS[o] for o in operands[1:]]
            out = getattr(Operators, method)(x, *args)
        nodes.append((tape.nodes[2:], out.value, out.index))
    (c_nodes, c_value, c_index), (py_nodes, py_value, py_index) = nodes
    assert c_index == py_index and len(c_nodes) == len(py_nodes) == 1
    np.testing.assert_array_equal(c_value, py_value)
    _same_item(c_nodes[0], py_nodes[0], f"the node of {method}")


@built
def test_a_c_operator_on_two_tapes_lands_where_the_python_operator_does():
    from diffkit.tape.array import Operators
    first, second = Tape(), Tape()
    a, b = first.leaf(np.ones(2)), second.leaf(np.ones(2))
    for left, right in ((a, b), (b, a)):
        assert (left + right).tape is Operators.__add__(left, right).tape
        assert (left @ right).tape is Operators.__matmul__(left, right).tape
