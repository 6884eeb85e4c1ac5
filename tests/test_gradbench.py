"""The GradBench tool (python -m diffkit.gradbench), driven over its protocol in a subprocess.

Outputs are checked against the mpmath referee ``dk.reference`` on the
eval's own definition and, where one is simple, against a closed form
derived by hand (lse: softmax; det: Jacobi's formula; llsq: the normal
equations' residual; ode at n <= 4: RK4 is exact; kmeans: centroid minus
cluster mean; gmm: the naive density; ba: d(1 - w^2)/dw).  Never against the
tool's own reverse mode.
"""
from __future__ import annotations

import functools
import io
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import diffkit as dk
from diffkit.gradbench import EVALS, NESTED, Tool, load_eval
from diffkit.gradbench.evals import ba, det, gmm, kmeans, lse
from diffkit.gradbench.protocol import serve
from diffkit.methods import METHODS
from diffkit.api import _load_methods

ROOT = Path(dk.__file__).resolve().parent.parent  # the checkout whose diffkit the tests import


class Driver:
    """The eval's side of the protocol: one message per round, a response with the same id expected."""

    def __init__(self, method: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-m", "diffkit.gradbench", "--method", method], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.id = 0

    def send(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps({"id": self.id, **message}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the tool closed its output; stderr: {self.proc.stderr.read()}"
        response = json.loads(line)
        assert response["id"] == self.id
        self.id += 1
        return response

    def evaluate(self, module: str, function: str, input, **runs) -> dict:
        if isinstance(input, dict):
            input = {**input, "min_runs": runs.get("min_runs", 1), "min_seconds": runs.get("min_seconds", 0)}
        return self.send({"kind": "evaluate", "module": module, "function": function, "input": input})

    def output(self, module: str, function: str, input):
        response = self.evaluate(module, function, input)
        assert response["success"], response.get("error")
        return response["output"]

    def close(self) -> tuple[int, str]:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        return code, self.proc.stderr.read()


def _driver(method: str):
    driver = Driver(method)
    assert driver.send({"kind": "start"})["tool"] == "diffkit"
    yield driver
    code, err = driver.close()
    assert code == 0, err


@pytest.fixture(scope="module")
def tool():
    yield from _driver("reverse")


def small_inputs(name: str):
    module = load_eval(name)
    return list(module.inputs(module.TEST_SIZES))


def assert_close(actual, expected, rtol):
    """Entrywise |a - e| <= rtol (|e| + max |e|): relative to each entry, floored by the largest (tiny entries)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    scale = np.abs(expected) + (np.max(np.abs(expected)) if expected.size else 0.0)
    bad = np.abs(actual - expected) > rtol * np.maximum(scale, 1e-300)
    assert not bad.any(), f"{bad.sum()} entries off; worst at {np.argmax(np.abs(actual - expected))}: " \
                          f"{actual.ravel()[bad.ravel()][:3]} vs {expected.ravel()[bad.ravel()][:3]}"


# --- the protocol ------------------------------------------------------------------------------------------

def test_messages_are_answered_with_their_id_and_timings_follow_the_protocol(tool):
    assert tool.send({"kind": "define", "module": "lse"}) == {"id": tool.id - 1, "success": True}
    response = tool.evaluate("lse", "primal", {"x": [0.0, 0.0]}, min_runs=3, min_seconds=0.01)
    assert response["success"] and math.isclose(response["output"], math.log(2), rel_tol=1e-15)
    names = [t["name"] for t in response["timings"]]
    assert names[:2] == ["prepare", "warmup"] and set(names[2:]) == {"evaluate"} and len(names) >= 5
    assert sum(t["nanoseconds"] for t in response["timings"][2:]) >= 0.01e9  # ran until min_seconds was reached
    assert tool.send({"kind": "analysis", "of": 1, "valid": True}) == {"id": tool.id - 1}


def test_bad_messages_get_errors_naming_what_is_wrong_and_the_tool_keeps_serving(tool):
    unknown = tool.send({"kind": "define", "module": "mnist"})
    assert not unknown["success"] and "lse" in unknown["error"] and "mnist" in unknown["error"]
    assert "saddle" in unknown["error"].split(";")[1] and "not implemented" not in unknown["error"]  # (saddle is)
    no_function = tool.evaluate("lse", "hessian", {"x": [1.0]})
    assert not no_function["success"] and "primal, gradient" in no_function["error"]
    no_field = tool.evaluate("llsq", "gradient", {"x": [1.0, 2.0]})
    assert not no_field["success"] and "'n'" in no_field["error"]
    bad_shape = tool.evaluate("det", "gradient", {"A": [1.0, 2.0, 3.0], "ell": 2})
    assert not bad_shape["success"] and "input.A must be 4 numbers" in bad_shape["error"]
    bad_runs = tool.evaluate("lse", "primal", {"x": [1.0]}, min_runs=0)
    assert not bad_runs["success"] and "min_runs" in bad_runs["error"]
    assert tool.output("hello", "square", 3.0) == 9.0  # still serving


def test_an_older_harness_finds_the_evals_by_their_former_names(tool):
    """logsumexp, llsq_obj, det_by_minor and an_ode: GradBench's earlier names, with the same inputs."""
    for former in ("logsumexp", "llsq_obj", "det_by_minor", "an_ode"):
        assert tool.send({"kind": "define", "module": former})["success"], former
    x = [0.5, -1.0, 2.0]
    softmax = [math.exp(u) / sum(math.exp(v) for v in x) for u in x]
    assert_close(tool.output("logsumexp", "gradient", {"x": x}), softmax, 1e-15)
    assert_close(tool.output("det_by_minor", "gradient", {"A": [1.0, 2.0, 3.0, 4.0], "ell": 2}),
                 [4.0, -3.0, -2.0, 1.0], 1e-15)  # d det / d A = cofactors
    n, coefficients = 5, np.array([0.25, -0.5])
    t = -1 + np.arange(n) * 2 / (n - 1)
    powers = t[:, None] ** np.arange(2)
    assert_close(tool.output("llsq_obj", "gradient", {"x": coefficients.tolist(), "n": n}),
                 -powers.T @ (np.sign(t) - powers @ coefficients), 1e-14)
    ode = tool.output("an_ode", "primal", {"x": [0.3, 0.9], "s": 2})
    assert_close(ode, [0.3 * 2, 0.3 * 0.9 * 2 ** 2 / 2], 1e-14)  # y0 = x0 t, y1 = x0 x1 t^2 / 2 at t = 2
    unknown = tool.send({"kind": "define", "module": "an_odee"})
    assert not unknown["success"] and "an_ode" in unknown["error"]  # the error lists the former names too


def test_a_method_diffkit_lacks_is_a_clear_error_response_not_a_crash():
    _load_methods()
    if "forward_ad" in METHODS:
        pytest.skip("forward_ad has landed")
    driver = Driver("forward_ad")
    define = driver.send({"kind": "define", "module": "lse"})
    assert not define["success"] and "forward_ad" in define["error"] and "reverse" in define["error"]
    evaluate = driver.evaluate("lse", "gradient", {"x": [1.0]})
    assert not evaluate["success"] and "forward_ad" in evaluate["error"]
    code, _ = driver.close()
    assert code == 0


def test_the_tool_stops_quietly_when_the_eval_has_gone():
    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")
    lines = ['{"id": 0, "kind": "start"}', '{"id": 1, "kind": "define", "module": "lse"}']
    assert serve(lines, Closed(), "reverse") == 0


def test_a_line_that_is_no_message_is_reported_on_stderr_and_skipped():
    driver = Driver("reverse")
    driver.proc.stdin.write("not json\n")
    assert driver.send({"kind": "start"})["tool"] == "diffkit"
    code, err = driver.close()
    assert code == 1 and "not json" in err


def test_the_tool_keeps_freed_memory_unless_asked_not_to(monkeypatch):
    """Large temporaries are not page-faulted in on every call (diffkit.bench's convention), unless
    --system-malloc; a bad --threads exits 2 naming the option."""
    import diffkit.bench
    from diffkit.gradbench.__main__ import main

    asked = []
    monkeypatch.setattr(diffkit.bench, "keep_freed_memory", lambda: asked.append(True) or True)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"id": 0, "kind": "start"}\n'))
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["--method", "reverse"]) == 0 and asked == [True]
    assert json.loads(sys.stdout.getvalue())["tool"] == "diffkit"
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"id": 0, "kind": "start"}\n'))
    assert main(["--system-malloc"]) == 0 and asked == [True]
    with pytest.raises(SystemExit) as stopped:
        main(["--threads", "0"])
    assert stopped.value.code == 2


# --- validity against the referee and closed forms ---------------------------------------------------------

@pytest.mark.parametrize("name", [e for e in EVALS if e not in ("kmeans", "ba", "ht", *NESTED)])  # own tests
def test_gradients_match_the_mpmath_referee(tool, name):
    module = load_eval(name)
    gradient_name = [f for f in module.FUNCTIONS if f in ("gradient", "jacobian", "double")][0]
    primal_name = [f for f in module.FUNCTIONS if f != gradient_name][0]
    for description, input in small_inputs(name):
        problem = module.problem(input)
        ref = dk.reference(problem.objective, problem.theta)
        grad = tool.output(name, gradient_name, input)
        flat = np.concatenate([np.ravel(grad[k]) for k in ("alpha", "mu", "q", "l")]) if name == "gmm" else grad
        assert_close(np.ravel(flat), ref.grad.ravel(), 1e-10)
        primal = tool.output(name, primal_name, input)
        value = primal[-1] if name == "ode" else primal
        assert math.isclose(value, ref.value, rel_tol=1e-12, abs_tol=1e-300), description


@given(st.lists(st.floats(-100, 100), min_size=1, max_size=60))
@settings(max_examples=25, deadline=None)
def test_lse_gradient_is_the_softmax_and_its_primal_the_log_of_the_sum(x):
    tool = Tool("reverse")
    out = tool.handle({"id": 0, "kind": "evaluate", "module": "lse", "function": "gradient", "input": {"x": x}})
    e = np.exp(np.array(x) - max(x))
    assert_close(out["output"], e / e.sum(), 1e-13)
    value = tool.handle({"id": 1, "kind": "evaluate", "module": "lse", "function": "primal", "input": {"x": x}})
    assert math.isclose(value["output"], max(x) + math.log(e.sum()), rel_tol=1e-14, abs_tol=1e-14)


@given(st.integers(1, 7), st.integers(0, 2**32 - 1))
@settings(max_examples=15, deadline=None)
def test_det_and_its_gradient_follow_jacobis_formula(ell, seed):
    a = np.random.default_rng(seed).uniform(-1, 1, (ell, ell))
    tool = Tool("reverse")
    input = {"A": a.ravel().tolist(), "ell": ell}
    value = tool.handle({"id": 0, "kind": "evaluate", "module": "det", "function": "primal", "input": input})
    grad = tool.handle({"id": 1, "kind": "evaluate", "module": "det", "function": "gradient", "input": input})
    d = np.linalg.det(a)
    assert math.isclose(value["output"], d, rel_tol=1e-9, abs_tol=1e-12)
    cofactors = np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1)) if ell > 1 else 1.0
                           for j in range(ell)] for i in range(ell)])
    assert_close(grad["output"], cofactors.ravel(), 1e-9)


def test_hello_is_x_squared_and_2x(tool):
    for x in (1.0, -2.5, 1e100):
        assert tool.output("hello", "square", x) == x * x
        assert tool.output("hello", "double", x) == 2 * x


def test_llsq_gradient_is_minus_powers_transposed_times_the_residual(tool):
    for _, input in small_inputs("llsq"):
        n, x = input["n"], np.array(input["x"])
        t = -1 + np.arange(n) * 2 / (n - 1)
        powers = t[:, None] ** np.arange(x.size)
        assert_close(tool.output("llsq", "gradient", input), -powers.T @ (np.sign(t) - powers @ x), 1e-12)


def test_ode_at_four_components_is_rk4_exact_and_matches_the_closed_form(tool):
    x = np.array([0.3, 0.9, 0.5, 0.7])  # y_i(t) = x_0 ... x_i t^(i+1) / (i+1)!: a quartic, integrated exactly
    for steps in (1, 3):
        y = tool.output("ode", "primal", {"x": x.tolist(), "s": steps})
        assert_close(y, [np.prod(x[:i + 1]) * 2 ** (i + 1) / math.factorial(i + 1) for i in range(4)], 1e-14)
        last = np.prod(x) * 2 ** 4 / 24
        assert_close(tool.output("ode", "gradient", {"x": x.tolist(), "s": steps}), last / x, 1e-14)


def test_gmm_objective_is_the_naive_log_posterior(tool):
    for _, input in small_inputs("gmm"):
        assert math.isclose(tool.output("gmm", "objective", input), _naive_log_posterior(input), rel_tol=1e-12)


def _naive_log_posterior(input) -> float:
    """log(prod_i sum_k phi_k N(x_i | mu_k, (Q_k^T Q_k)^-1) * prod_k Wishart(Q_k^T Q_k)), straight from the densities."""
    d, k, m, gamma = input["d"], input["k"], input["m"], input["gamma"]
    x, alpha, mu, q = (np.array(input[f]) for f in ("x", "alpha", "mu", "q"))
    phi = np.exp(alpha) / np.exp(alpha).sum()
    precisions = []
    for j in range(k):
        factor, entries = np.diag(np.exp(q[j])), iter(input["l"][j])
        for col in range(d):
            for row in range(col + 1, d):
                factor[row, col] = next(entries)
        precisions.append(factor.T @ factor)
    log_likelihood = sum(math.log(sum(
        phi[j] * math.exp(-0.5 * (xi - mu[j]) @ precisions[j] @ (xi - mu[j]))
        / math.sqrt((2 * math.pi) ** d / np.linalg.det(precisions[j])) for j in range(k))) for xi in x)
    dof = d + m + 1
    log_gamma_d = d * (d - 1) / 4 * math.log(math.pi) + sum(math.lgamma(dof / 2 - i / 2) for i in range(d))
    log_prior = sum((dof - d - 1) / 2 * math.log(np.linalg.det(p)) - gamma ** 2 * np.trace(p) / 2
                    - dof * d / 2 * math.log(2) + dof * d * math.log(gamma) - log_gamma_d for p in precisions)
    return log_likelihood + log_prior


def _nearest_cost(input) -> float:
    points, centroids = np.array(input["points"]), np.array(input["centroids"])
    return float(((points[:, None, :] - centroids[None]) ** 2).sum(2).min(1).sum())


def _cluster_direction(input) -> np.ndarray:
    points, centroids = np.array(input["points"]), np.array(input["centroids"])
    nearest = np.argmin(((points[:, None, :] - centroids[None]) ** 2).sum(2), axis=1)
    return np.array([centroids[j] - points[nearest == j].mean(0) for j in range(len(centroids))])


def test_kmeans_cost_is_the_sum_of_nearest_squared_distances_and_dir_the_centroid_minus_its_cluster_mean(tool):
    for _, input in small_inputs("kmeans"):
        assert math.isclose(tool.output("kmeans", "cost", input), _nearest_cost(input), rel_tol=1e-12)
        assert_close(tool.output("kmeans", "dir", input), _cluster_direction(input), 1e-10)


def test_ba_jacobian_blocks_match_the_referee_and_the_compressed_layout(tool):
    for _, input in small_inputs("ba"):
        n, m, p = input["n"], input["m"], input["p"]
        out = tool.output("ba", "jacobian", input)
        gathered, feats = ba.gathered_blocks(input)
        first_row = dk.reference(lambda t: ba.error_sum(t, 0, feats), gathered).grad.reshape(p, 15)[0]
        second_row = dk.reference(lambda t: ba.error_sum(t, 1, feats), gathered).grad.reshape(p, 15)[0]
        assert_close(out["vals"][:30], np.concatenate([first_row, second_row]), 1e-10)
        assert out["vals"][-1] == -2 * input["w"]  # d(1 - w^2)/dw of the last weight
        assert out["cols"][:15] == list(range(11)) + [11 * n, 11 * n + 1, 11 * n + 2, 11 * n + 3 * m]
        assert out["cols"][-1] == 11 * n + 3 * m + p - 1 and out["rows"][-1] == 31 * p
        assert out["rows"][:3] == [0, 15, 30][:min(3, 2 * p + 1)]
        objective = tool.output("ba", "objective", input)
        errors = ba.problem(input).primal(ba.problem(input).theta)
        assert objective["reproj_error"]["repeated"] == p and objective["w_err"]["element"] == 1 - input["w"] ** 2
        ref = dk.reference(lambda t: ba.error_sum(t, 0, feats), gathered)
        assert math.isclose(objective["reproj_error"]["elements"][0] * p, ref.value, rel_tol=1e-12)
        assert errors.shape == (p, 3)


# --- the other methods on the same definitions -------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _referee(name: str, index: int) -> tuple:
    """The eval's small input number ``index`` and the referee's gradient there (computed once per session)."""
    module = load_eval(name)
    _, input = small_inputs(name)[index]
    problem = module.problem(input)
    return input, dk.reference(problem.objective, problem.theta).grad.ravel()


def _flat_gradient(driver: Driver, name: str, input) -> np.ndarray:
    grad_name = "gradient" if "gradient" in load_eval(name).FUNCTIONS else "jacobian"
    grad = driver.output(name, grad_name, input)
    return np.concatenate([np.ravel(grad[k]) for k in ("alpha", "mu", "q", "l")]) if name == "gmm" else np.ravel(grad)


NUMERIC = {"central": 1e-6, "complex_step": 1e-12}


# H v by each method's own means where they nest (forward over forward), else a central difference of its gradient
KMEANS_DIRECTION = {"forward_ad": 1e-13, "central": 1e-5, "complex_step": 1e-9, "symbolic": 1e-9}


@pytest.mark.parametrize("method", list(KMEANS_DIRECTION))
def test_every_diffkit_method_answers_kmeans_newton_direction_to_its_precision(method):
    for driver in _driver(method):
        for _, input in small_inputs("kmeans"):
            assert_close(driver.output("kmeans", "dir", input), _cluster_direction(input), KMEANS_DIRECTION[method])


@pytest.mark.parametrize("method", list(NUMERIC))
def test_numeric_methods_agree_with_the_referee_to_their_precision(method):
    for driver in _driver(method):
        for name in ("lse", "gmm", "lstm"):
            input, ref = _referee(name, 1)
            assert_close(_flat_gradient(driver, name, input), ref, NUMERIC[method])


PEERS = [m for m, module in (("torch", "torch"), ("jax", "jax"), ("autograd", "autograd"))
         if importlib.util.find_spec(module) is not None]


@pytest.mark.parametrize("method", PEERS)
def test_peers_run_the_same_definitions_and_agree_with_the_referee(method):
    for driver in _driver(method):
        _, kmeans_input = small_inputs("kmeans")[1]  # first, before any gradient: the primal is float64 too
        assert math.isclose(driver.output("kmeans", "cost", kmeans_input), _nearest_cost(kmeans_input),
                            rel_tol=1e-13)
        for name in ("lse", "det", "gmm", "lstm"):
            input, ref = _referee(name, 1)
            assert_close(_flat_gradient(driver, name, input), ref, 1e-10)
        _, input = small_inputs("kmeans")[1]
        assert_close(driver.output("kmeans", "dir", input), _cluster_direction(input), 1e-10)


# --- inputs made as the evals make them --------------------------------------------------------------------

def test_inputs_follow_the_evals_recipes():
    state = np.random.RandomState(31337)  # the evals' np.random.seed(31337) then rand(n), size after size
    first, second = state.rand(5), state.rand(3)
    (_, a), (_, b) = lse.inputs([{"n": 5}, {"n": 3}])
    assert a["x"] == first.tolist() and b["x"] == second.tolist()
    _, km = next(kmeans.inputs([{"k": 2, "n": 6, "d": 3}]))
    assert km["centroids"] == km["points"][-2:]
    _, g = next(gmm.inputs([{"d": 2, "k": 3, "n": 4}]))
    rng = np.random.default_rng(31337)
    assert g["x"][0] == rng.normal(size=2).tolist() and g["m"] == 0 and g["gamma"] == 1.0
    assert [d["ell"] for _, d in det.inputs()] == [5, 6, 7, 8, 9, 10, 11]


# --- the benchmark and its report section ------------------------------------------------------------------

def test_bench_rows_and_report_section_say_which_method_ran_and_why_one_did_not(tmp_path, monkeypatch):
    from diffkit.gradbench.bench import run_gradbench
    from diffkit.gradbench.engines import Engine, MethodUnavailable
    from diffkit.report.sections import _gradbench_table

    original = Engine.grad_hvp

    def grad_hvp(self, f):  # central made a method without a Hessian-vector product (every diffkit method has one)
        if self.method == "central":
            raise MethodUnavailable("a Hessian-vector product is needed (kmeans' Newton direction); this method has none")
        return original(self, f)
    monkeypatch.setattr(Engine, "grad_hvp", grad_hvp)
    df = run_gradbench(evals=("lse", "kmeans"), sizes={"lse": [{"n": 50}], "kmeans": [{"k": 2, "n": 9, "d": 2}]},
                       methods=("reverse", "central"), repeats=3)
    assert df[["eval", "method"]].values.tolist() == [["lse", "reverse"], ["lse", "central"],
                                                      ["kmeans", "reverse"], ["kmeans", "central"]]
    assert df.status.iloc[3] == "unavailable" and set(df.status.iloc[:3]) <= {"ok", "unreliable"}
    ok = df[df.status == "ok"]
    assert (ok.gradient_over_primal >= 1).all() and (df.max_difference.iloc[:3] < 1e-4).all()
    assert df.over_tape.iloc[0] == 1.0
    assert "Hessian-vector product" in df.note.iloc[3] and df.primal_s.iloc[3] > 0  # its primal still ran
    table = _gradbench_table(df)
    shown = table.frame.set_index(["eval", "size"])
    assert shown.loc[("kmeans", "k=2,n=9,d=2"), "tape gradient / primal"] != "–"
    assert shown.loc[("lse", "n=50"), "compiled gradient / primal"] == "–"  # not run here: a dash, no number


def test_a_gradient_timed_below_its_own_forward_is_unreliable_not_a_number():
    from diffkit.report.sections import _gradbench_table

    rows = pd.DataFrame([{"eval": "lse", "size": "n=5", "method": "reverse", "status": "unreliable",
                          "note": "gradient / primal measured 0.80 < 1", "gradient_over_primal": 0.8,
                          "over_tape": 1.0, "gradient_s": 1e-4, "primal_s": 1.25e-4}])
    table = _gradbench_table(rows)
    cell = table.frame["tape gradient / primal"].iloc[0]
    assert cell.startswith("unreliable") and "0.8" not in cell
    assert any("diffkit tape: gradient / primal measured 0.80 < 1" in n for n in table.notes)


def test_bench_command_line_errors_exit_2(capsys):
    from diffkit.cli import main

    for argv in (["bench", "--evals", "lse"], ["bench", "--gradbench", "--evals", "mnist"],
                 ["bench", "--gradbench", "--methods", "central4"], ["bench", "--gradbench", "--repeats", "2"]):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 2
    assert "valid with --gradbench" in capsys.readouterr().err
