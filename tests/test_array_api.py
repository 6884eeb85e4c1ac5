"""Array-API values: finding their namespace (with install hints), host copies, and the GPU script's guard."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffkit as dk
from diffkit.array_api import ArrayAPIError, array_namespace_of, from_host, library_of, to_host

strict = pytest.importorskip("array_api_strict", reason="the array-API checks need array-api-strict: "
                                                        "pip install 'diffkit[array-api]'")
REPO = Path(__file__).resolve().parents[1]
finite = hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5),
                    elements=st.floats(allow_nan=False, allow_infinity=False, width=64))


def test_namespaces_are_the_libraries_own_and_numbers_are_ignored():
    assert array_namespace_of(strict.asarray([1.0]), 2.0) is strict
    assert array_namespace_of(np.ones(2)).__name__ == "array_api_compat.numpy"
    torch = pytest.importorskip("torch")
    assert array_namespace_of(torch.ones(2)).__name__ == "array_api_compat.torch"


def test_errors_name_the_libraries_and_what_to_install(monkeypatch):
    with pytest.raises(ArrayAPIError, match=r"different array libraries \(array_api_strict, numpy\)"):
        array_namespace_of(np.ones(2), strict.asarray([1.0]))
    with pytest.raises(ArrayAPIError, match="no array among the values"):
        array_namespace_of(1.0, 2)
    fake_cupy = type("ndarray", (), {"__module__": "cupy._core.core"})()  # a CuPy array where CuPy is absent
    monkeypatch.setattr("diffkit.array_api._importable", lambda name: name != "cupy")
    with pytest.raises(ArrayAPIError, match=r"CuPy does not import here; .*pip install 'diffkit\[gpu\]'"):
        array_namespace_of(fake_cupy)
    with pytest.raises(ArrayAPIError, match="is not an array-API array.*supported: NumPy, CuPy"):
        array_namespace_of(object())
    monkeypatch.setitem(sys.modules, "array_api_compat", None)  # as if array-api-compat were not installed
    with pytest.raises(ArrayAPIError, match=r"needs array-api-compat; .*pip install 'diffkit\[array-api\]'"):
        array_namespace_of(strict.asarray([1.0]))


@settings(max_examples=30, deadline=None)
@given(finite)
def test_host_round_trips_keep_every_bit_and_copy(a):
    s = from_host(a, like=strict.asarray([0.0]))
    assert library_of(s) == "array_api_strict" and s.shape == a.shape and s.dtype == strict.float64
    back = to_host(s)
    assert back.dtype == np.float64 and back.tobytes() == a.tobytes()
    back.reshape(-1)[:1] = 7.0  # a copy: writing to it leaves the original alone
    assert to_host(s).tobytes() == a.tobytes()


def _gpu_script():
    spec = importlib.util.spec_from_file_location("gpu_scaling", REPO / "studies" / "gpu_scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_script_refuses_without_cupy_and_says_what_is_missing(monkeypatch):
    script = _gpu_script()
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(SystemExit) as refused:
        script.main([])
    assert "needs an NVIDIA GPU and CuPy" in str(refused.value) and "diffkit[gpu]" in str(refused.value)
    assert "--cpu-check" in str(refused.value)


@pytest.mark.slow  # imports torch and jax, and runs central differences: ~10-20 s
def test_gpu_script_runs_its_pipeline_on_the_cpu_and_agrees_with_torch(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    import pandas as pd

    out = tmp_path / "check.csv"
    assert _gpu_script().main(["--cpu-check", "--max-p", "1000", "--rounds", "1", "--out", str(out)]) == 0
    df = pd.read_csv(out).set_index(["library", "method"])
    assert set(df["status"]) == {"ok"} and set(df["P"]) == {960}  # [19, 19, 19, 10]: the closest to 1000
    # independent engines on one function: the tape and JAX agree with PyTorch's autograd to rounding,
    # central differences to their truncation and round-off (h ~ 6e-6: errors ~ 1e-10 relative)
    assert df.loc[("diffkit-numpy", "reverse"), "max_rel_diff_vs_torch"] < 1e-13
    assert df.loc[("jax", "value_and_grad"), "max_rel_diff_vs_torch"] < 1e-13
    assert 1e-13 < df.loc[("diffkit-numpy", "central"), "max_rel_diff_vs_torch"] < 1e-7
    # the path CuPy values take (the array-API namespace), on array-api-strict's simulated device: numpy's bits
    for method in ("reverse", "central"):
        assert (df.loc[("diffkit-array_api_strict", method), "max_rel_diff_vs_torch"]
                == df.loc[("diffkit-numpy", method), "max_rel_diff_vs_torch"])
    assert (df["device"].str.startswith("CPU check")).all()


# --- the MLP family on array-api-strict: numpy-only calls in a rule or a stencil fail here -----------------------

# One of array-api-strict's simulated devices: its arrays refuse np.asarray (as a GPU's do) and refuse to meet
# arrays of another device, so a numpy call on a value, or an array made without the values' device, fails here
LIKE = strict.asarray([0.0], device=strict.Device("device1")) if strict else None
ACTIVATIONS = ("tanh", "sigmoid", "relu", "softplus")
LOSSES = ("softmax_cross_entropy", "binary_cross_entropy", "half_squared_error")


def on_strict(problem):
    """The problem's own function with its data (``problem.data``) on array-api-strict: same code, other arrays.

    The MLP closes over its inputs and targets; the function is rebuilt with those closure cells moved.
    """
    import types

    f = problem.fn
    moved = {id(v): from_host(v, like=LIKE) for v in problem.data.values()}
    cells = tuple(types.CellType(moved.get(id(c.cell_contents), c.cell_contents)) for c in f.__closure__ or ())
    assert sum(id(c.cell_contents) in moved for c in f.__closure__) == len(moved), "data not found in the closure"
    return types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, cells)


def _libraries_seen(f):
    """f, recording the library of the values each call receives (the values under a tape array for reverse)."""
    seen = set()

    def spy(theta):
        value = theta
        while hasattr(value, "_inner") or hasattr(value, "value"):  # under every trace
            value = getattr(value, "_inner", None) if hasattr(value, "_inner") else value.value
        seen.add(library_of(value))
        return f(theta)
    return spy, seen


# (a directory check: an editable install elsewhere could answer an import of diffkit.primitives)
PRIMITIVES = (REPO / "diffkit" / "primitives").is_dir()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("method", ["reverse", "central"])
def test_mlp_family_gradients_on_array_api_strict_equal_numpys(activation, loss, method):
    problem = dk.problems.mlp([3, 5, 4], activation, loss, l2=0.01, batch=6, seed=1)
    spy, seen = _libraries_seen(on_strict(problem))
    got = dk.gradient(spy, from_host(problem.theta0, like=LIKE), method=method)
    want = dk.gradient(problem, method=method)
    assert seen == {"array_api_strict"}, f"f saw {seen}: the values were converted before reaching it"
    # array-api-strict runs NumPy underneath: the same operations in the same order give the same bits
    assert to_host(got.grad).tobytes() == want.grad.tobytes()
    assert got.value == want.value


# --- the generated primitive tests on array-api-strict: every differentiable entry of the table -------------------

def _table():
    if not PRIMITIVES:
        return []
    from diffkit.primitives import PRIMITIVES as table
    return [p for p in table.values() if p.kind != "constant"]


def _examples(prim):
    """(inputs, params) for each of the primitive's domain examples, drawn as the generated tests draw them."""
    from test_primitives import draw  # the table's tests: one sampler of the domains

    d = prim.domain
    for example in range(max(len(d.params), len(d.shapes))):
        yield draw(prim, prim.index, example)


def _weighted_sum(prim, inputs, params, weights):
    """(theta -> sum of the primitive's output times fixed weights, theta): the generated tests' unpacking."""
    from test_primitives import _unpacked

    f, theta, _ = _unpacked(prim, inputs, params)  # (the inputs' own values are read only where f takes no theta)

    def weighted(t):
        return dk.namespace(t).sum(f(t) * weights)
    return weighted, theta


@pytest.mark.parametrize("prim", _table(), ids=lambda p: p.name)
def test_each_primitives_reverse_rule_on_array_api_strict_equals_numpys(prim):
    declared = dk.namespace(LIKE).reasons.get(prim.name)
    if declared is not None:  # not in the standard: the namespace says so, naming the op and the reason
        with pytest.raises(NotImplementedError, match=rf"op '{prim.name}' is not available in the array_api_strict "
                                                      rf"backend: .*not in the Python array API standard"):
            dk.namespace(LIKE).impls[prim.index](*[_move(x) for x in _examples(prim).__next__()[0]])
        return
    rng = np.random.default_rng(prim.index)
    for inputs, params in _examples(prim):
        out = dk.namespace(inputs[0]).impls[prim.index](*inputs, **params)
        weights = rng.standard_normal(np.shape(out[0] if prim.residual else out))
        f, theta = _weighted_sum(prim, inputs, params, weights)
        want = dk.gradient(f, theta, method="reverse")
        held = [_move(x) if k in prim.nondiff else x for k, x in enumerate(inputs)]  # the rest come from theta
        strict_f, _ = _weighted_sum(prim, held, {k: _move(v) for k, v in params.items()}, _move(weights))
        spy, seen = _libraries_seen(strict_f)
        got = dk.gradient(spy, _move(theta), method="reverse")
        assert seen == {"array_api_strict"}, f"f saw {seen}: the values were converted before reaching it"
        if prim.name in OTHER_ROUTE:  # the same mathematics through other operations: rounding apart
            scale = np.max(np.abs(want.grad), initial=1.0)
            np.testing.assert_allclose(to_host(got.grad), want.grad, rtol=0, atol=OTHER_ROUTE[prim.name]
                                       * scale, err_msg=str(params))
        else:
            assert to_host(got.grad).tobytes() == want.grad.tobytes(), params


# Composed from the standard where numpy calls one routine: the tolerance, relative to the gradient's largest
# entry, is a few units of roundoff times the condition of the op on the test data (well-conditioned matrices);
# every other primitive's gradient is numpy's bit for bit (array-api-strict runs the same numpy operations)
OTHER_ROUTE = {
    "einsum": 4 * 2.2e-16,             # pairwise matmul (BLAS) instead of numpy's einsum loops: another order
    "solve_triangular": 16 * 2.2e-16,  # the standard's linalg.solve (LU) of the triangle instead of substitution
    "cbrt": 4 * 2.2e-16,               # the composed root is within 1 ulp of numpy's; the rule reads it squared
    "exp2": 4 * 2.2e-16,               # pow(2, x) is within 1 ulp of numpy's exp2; the rule reads it
    "tanh": 4 * 2.2e-16,               # saturated entries' sech^2: a few by math.exp on numpy, np.exp here (1 ulp)
    "qr_q": 16 * 2.2e-16,              # the rules solve with R: solve_triangular's route, as above
    "qr_r": 16 * 2.2e-16,
}


# --- each rule alone, with xp = diffkit's namespace of the values (generated from the table) ----------------------

def _move(v):
    """numpy arrays (also inside lists and tuples; index lists as integer arrays) onto array-api-strict."""
    if isinstance(v, list) and all(isinstance(e, int) for e in v):
        v = np.asarray(v)
    if isinstance(v, (np.ndarray, np.generic)):  # numpy's 0-d results are scalars (np.float64)
        return from_host(np.asarray(v), like=LIKE)
    if isinstance(v, (list, tuple)):
        return type(v)(_move(e) for e in v)
    return v


def _rule_pool(prim, inputs, params, ans, res, xp) -> dict:
    """What a rule may read, by name (the vocabulary of diffkit.primitives.table)."""
    pool = {"ans": ans, "xp": xp, "res": res, **prim.params, **params}
    if prim.variadic:
        pool[prim.inputs[0]], pool[prim.inputs[0] + "_shape"] = list(inputs), [np.shape(x) for x in inputs]
    else:
        for name, x in zip(prim.inputs, inputs):
            pool[name], pool[name + "_shape"] = x, tuple(np.shape(x))
    return pool


def _rules_on(prim, inputs, params, g, xp, forward):
    """Every rule's contribution to every input, brought to the input's shape as the tape does."""
    from diffkit.primitives.table import _rule_args
    from diffkit.tape import unbroadcast

    out = forward(*inputs, **params)
    ans, res = out if prim.residual else (out, None)
    pool = _rule_pool(prim, inputs, params, ans, res, xp)
    if prim.joint is not None:
        got = prim.joint(g, *[pool[n] for n in _rule_args(prim.joint)])
    else:
        got = [None if rule is None else rule(g, *[pool[n] for n in names])
               for rule, names in zip(prim.vjps, prim.rule_args)]
    return [None if c is None else unbroadcast(xp, c, tuple(np.shape(x))) for c, x in zip(got, inputs)]


# Rules that need a function outside the standard (declared unsupported on these values): the rule must refuse,
# naming the op and the backend, and never fall back to numpy on these values.
RULES_OUTSIDE_THE_STANDARD = {
    "lgamma": "digamma",       # lgamma' = digamma, a special function
    "digamma": "polygamma",    # digamma' = polygamma(1, .)
    "polygamma": "polygamma",  # polygamma(n, .)' = polygamma(n + 1, .)
}


@pytest.mark.skipif(not PRIMITIVES, reason="needs the primitive table (issue 12)")
@pytest.mark.parametrize("prim", [p for p in _table() if not p.scatter], ids=lambda p: p.name)
def test_each_rule_runs_on_array_api_strict_with_the_values_own_namespace(prim):
    if prim.name in RULES_OUTSIDE_THE_STANDARD:
        needed = RULES_OUTSIDE_THE_STANDARD[prim.name]
        inputs, params = next(_examples(prim))
        xp = dk.namespace(inputs[0])
        out = xp.impls[prim.index](*inputs, **params)
        with pytest.raises(NotImplementedError, match=rf"op '{needed}' is not available in the array_api_strict "
                                                      rf"backend: .*not in the Python array API standard"):
            _rules_on(prim, [_move(x) for x in inputs], params, _move(np.ones(np.shape(out))),
                      dk.namespace(_move(inputs[0])), lambda *_a, **_p: _move(out))
        return
    rng = np.random.default_rng(prim.index)
    ran = 0
    for inputs, params in _examples(prim):
        xp = dk.namespace(inputs[0])
        out = xp.impls[prim.index](*inputs, **params)
        g = rng.standard_normal(np.shape(out[0] if prim.residual else out))
        want = _rules_on(prim, inputs, params, g.copy(), xp, xp.impls[prim.index])
        strict_inputs = [_move(x) for x in inputs]
        numpy_forward = xp.impls[prim.index]  # the forward is not under test here: its values, moved

        def forward(*_args, **_params):
            return _move(numpy_forward(*inputs, **params))
        got = _rules_on(prim, strict_inputs, {k: _move(v) for k, v in params.items()}, _move(g),
                        dk.namespace(strict_inputs[0]), forward)
        for w, c in zip(want, got):
            if w is None:
                continue
            assert library_of(c) == "array_api_strict", f"{prim.name}'s rule returned a {type(c)}"
            # bit for bit, except where numpy's path takes another summation order (affine's bias: a BLAS
            # ones @ g on numpy, the tape's sum on others): rounding, a few units in the last place
            np.testing.assert_allclose(to_host(c), np.asarray(w, dtype=float), rtol=4e-16 * 8, atol=0)
        ran += 1
    assert ran, f"no example of {prim.name}'s domain runs on numpy"



def test_the_checks_values_live_on_a_simulated_device_that_refuses_numpy_and_other_devices():
    v = from_host(np.arange(3.0), LIKE)
    assert str(v.device) == str(LIKE.device) != "CPU_DEVICE"
    with pytest.raises(RuntimeError, match="Can't convert"):
        np.asarray(v)
    with pytest.raises(ValueError, match="different devices"):
        v + strict.asarray([1.0, 2.0, 3.0])
    xp = dk.namespace(v)  # the namespace of the values makes its arrays on their device
    assert str(xp.zeros(3).device) == str(xp.asarray(2.0).device) == str(LIKE.device)
    assert to_host(xp.zeros(3) + v).tolist() == [0.0, 1.0, 2.0]


def _constants():
    if not PRIMITIVES:
        return []
    from diffkit.primitives import PRIMITIVES as table
    return [p for p in table.values() if p.kind == "constant"]


@pytest.mark.parametrize("prim", _constants(), ids=lambda p: p.name)
def test_each_constant_primitives_forward_on_array_api_strict_equals_numpys(prim):
    """argmax, comparisons, floor, sign ...: no derivative, but the same values (and kinds of dtype) as numpy."""
    for inputs, params in _examples(prim):
        want = np.asarray(dk.namespace(inputs[0]).impls[prim.index](*inputs, **params))
        got = to_host(dk.namespace(LIKE).impls[prim.index](*[_move(x) for x in inputs],
                                                           **{k: _move(v) for k, v in params.items()}))
        assert got.shape == want.shape and got.dtype.kind == want.dtype.kind, params
        assert np.array_equal(got, want, equal_nan=True), params


@pytest.mark.parametrize("prim", _table(), ids=lambda p: p.name)
def test_each_primitives_forward_rule_on_array_api_strict_equals_numpys(prim):
    """dk.jvp's duals on the simulated device: every forward rule's xp is the values' own."""
    declared = prim.name in dk.namespace(LIKE).reasons  # not in the standard: refused, naming op and backend
    rng = np.random.default_rng(prim.index + 1)
    for inputs, params in _examples(prim):
        out = dk.namespace(inputs[0]).impls[prim.index](*inputs, **params)
        weights = rng.standard_normal(np.shape(out[0] if prim.residual else out))
        f, theta = _weighted_sum(prim, inputs, params, weights)
        v = rng.standard_normal(theta.shape)
        want = dk.jvp(f, theta, v)
        held = [_move(x) if k in prim.nondiff else x for k, x in enumerate(inputs)]
        strict_f, _ = _weighted_sum(prim, held, {k: _move(p) for k, p in params.items()}, _move(weights))
        if declared:
            with pytest.raises(NotImplementedError, match=rf"op '{prim.name}' is not available in the "
                                                          rf"array_api_strict backend"):
                dk.jvp(strict_f, _move(theta), _move(v))
            continue
        got = dk.jvp(strict_f, _move(theta), _move(v))
        for g, w in zip(got, want):
            g, w = to_host(g), np.asarray(w, dtype=float)
            if prim.name in OTHER_ROUTE:
                np.testing.assert_allclose(g, w, rtol=0, atol=OTHER_ROUTE[prim.name] * max(1.0, np.abs(w).max()))
            else:
                assert g.tobytes() == w.tobytes(), params
