"""Studies: validation of study files, the cells they expand to, their results against independent numbers."""
from __future__ import annotations

import json
import os
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit.methods import METHODS
from diffkit.studies import StudyError, fit_cost_models, load_study, loglog_slope, run_study, study_from_dict

FAST_TIMING = {"min_repeats": 1, "max_repeats": 3, "min_time_s": 0.0, "memory": False}


def printed_tolerance(text: str) -> float:
    """Half a unit in the last printed place: '0.39' -> 0.005, '80' -> 0.5."""
    return 0.5 * 10.0 ** Decimal(text).as_tuple().exponent


def tiny(**sections) -> dict:
    base = {"study": {"name": "t"}, "problems": [{"family": "seed_circuit"}], "methods": {"reverse": {}},
            "timing": dict(FAST_TIMING)}
    base.update(sections)
    return base


# --- malformed study files: each error names the field ------------------------------------------------------------

GOOD = """
[study]
name = "t"
[[problems]]
family = "mlp"
sizes = [100]
[methods.reverse]
"""

MALFORMED = [  # (what, file text, words the error must contain)
    ("unknown top key", GOOD + "\n[extra]\nx = 1\n", ["'extra'", "valid keys", "problems", "timing"]),
    ("unknown study key", GOOD.replace('name = "t"', 'name = "t"\ncolour = "red"'), ["'study.colour'", "budget_s"]),
    ("unknown problem key", GOOD.replace("sizes = [100]", "sizes = [100]\nwidth = 3"),
     ["'problems[0].width'", "activation"]),
    ("wrong type", GOOD.replace('name = "t"', 'name = "t"\nbudget_s = "fast"'), ["study.budget_s", "number", "'fast'"]),
    ("wrong type in a grid", GOOD.replace("sizes = [100]", 'sizes = [100]\nbatch = "big"'),
     ["problems[0].batch", "integer"]),
    ("empty grid", GOOD.replace("sizes = [100]", "sizes = []"), ["problems[0].sizes", "empty"]),
    ("empty activation grid", GOOD.replace("sizes = [100]", "sizes = [100]\nactivation = []"),
     ["problems[0].activation", "empty"]),
    ("empty seeds", GOOD.replace('name = "t"', 'name = "t"\nseeds = []'), ["study.seeds", "empty"]),
    ("no problems", GOOD.split("[[problems]]")[0] + "[methods.reverse]\n", ["problems", "empty", "mlp"]),
    ("unknown method", GOOD.replace("[methods.reverse]", "[methods.backprop]"),
     ["methods.backprop", "'backprop'", "reverse"]),
    ("unknown method option", GOOD.replace("[methods.reverse]", "[methods.reverse]\nstep = 1"),
     ["'methods.reverse.step'", "anomaly"]),
    ("no methods", GOOD.replace("[methods.reverse]", "[methods]"), ["[methods]", "empty"]),
    ("problem method not in [methods]", GOOD.replace("sizes = [100]", 'sizes = [100]\nmethods = ["central"]'),
     ["problems[0].methods", "'central'", "not in [methods]"]),
    ("unknown problem", GOOD.replace('family = "mlp"', 'family = "resnet"'),
     ["problems[0].family", "'resnet'", "seed_circuit"]),
    ("unknown activation", GOOD.replace("sizes = [100]", 'sizes = [100]\nactivation = "swish"'),
     ["problems[0].activation", "'swish'", "tanh"]),
    ("unknown kind", GOOD.replace('name = "t"', 'name = "t"\nkind = "speed"'), ["study.kind", "step_size"]),
    ("missing name", GOOD.replace('name = "t"', ""), ["study.name"]),
    ("sizes and layers", GOOD.replace("sizes = [100]", "sizes = [100]\nlayers = [[2, 3]]"), ["sizes", "layers"]),
    ("bad layers", GOOD.replace("sizes = [100]", "layers = [4, 3]"), ["problems[0].layers", "[[4, 16, 3]]"]),
    ("zero repeats", GOOD + "\n[timing]\nmin_repeats = 0\n", ["timing.min_repeats", ">= 1"]),
    ("quick renames", GOOD + '\n[quick.study]\nname = "u"\n', ["quick.study", "name"]),
    ("unknown quick key", GOOD + "\n[quick.colour]\n", ["'quick.colour'"]),
    ("not TOML", "[study\nname = 1", ["not valid TOML"]),
]


@pytest.mark.parametrize("what,text,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_study_files_name_the_field(tmp_path, what, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StudyError) as err:
        load_study(path)
    for word in words:
        assert word in str(err.value), (what, str(err.value))
    assert str(path) in str(err.value)


def test_good_file_loads_and_unknown_names_are_clear(tmp_path):
    (tmp_path / "ok.toml").write_text(GOOD)
    assert load_study(tmp_path / "ok.toml").cells()[0].size == 100
    with pytest.raises(StudyError, match="built-in studies: .*scaling"):
        load_study("no_such_study")
    with pytest.raises(StudyError, match="does not exist"):
        load_study(tmp_path / "missing.toml")


def test_builtin_studies_load_and_python_built_study_matches_the_file():
    assert {"accuracy", "scaling", "seeds", "step_size"} <= set(dk.studies.builtin_studies())
    for name in dk.studies.builtin_studies():
        study = load_study(name)
        assert study.cells() and study.quick().cells()
    import tomllib

    path = dk.studies.studies_dir() / "scaling.toml"
    from_file = load_study(path)
    from_dict = study_from_dict(tomllib.loads(path.read_text()))
    assert from_dict.hash == from_file.hash
    assert [c.cell_id for c in from_dict.cells()] == [c.cell_id for c in from_file.cells()]


def test_scaling_grid_reaches_a_million_and_cells_are_ordered_by_size():
    study = load_study("scaling")
    cells = study.cells()
    sizes = [c.size for c in cells]
    assert sizes == sorted(sizes) and min(sizes) == 10 and max(sizes) >= 10**6
    assert {"reverse", "central", "symbolic"} <= {c.method for c in cells}
    assert max(c.size for c in study.cells(max_p=5000)) == 3000
    # the reference is only asked for where it is affordable
    assert study.reference["max_p"] <= 20000


def test_grid_is_the_product_of_list_values():
    study = study_from_dict(tiny(problems=[{"family": "mlp", "layers": [[2, 3, 2]], "activation": ["tanh", "relu"],
                                            "loss": ["se", "bce", "softmax_ce"], "seeds": [0, 1]}]))
    cells = study.cells()
    assert len(cells) == 2 * 3 * 2
    assert len({c.cell_id for c in cells}) == len(cells)
    assert cells[0].build().size == dk.problems.mlp_size([2, 3, 2]) == 17


def test_a_problem_can_name_the_methods_that_run_on_it():
    study = study_from_dict(tiny(methods={"reverse": {}, "central": {}},
                                 problems=[{"family": "seed_circuit", "methods": ["central"]},
                                           {"family": "seed_relu_chain"}]))
    assert sorted((c.family, c.method) for c in study.cells()) == [
        ("seed_circuit", "central"), ("seed_relu_chain", "central"), ("seed_relu_chain", "reverse")]


# --- results against independent numbers ---------------------------------------------------------------------------

def test_seeds_study_gradients_equal_the_printed_numbers(tmp_path):
    df = run_study("seeds", store=tmp_path / "r.sqlite", quick=True, quiet=True)
    reverse = df[(df["method"] == "reverse") & (df["status"] == "ok")]
    assert set(reverse["problem"]) == {"seed_circuit", "seed_sigmoid_neuron", "seed_relu_chain"}
    for _, row in reverse.iterrows():
        problem = dk.problems.catalogue()[row["problem"]]()
        grad, expected = json.loads(row["grad"]), json.loads(row["expected"])
        names = [problem.component_name(i) for i in range(problem.size)]
        for key, text in expected.items():
            got = row["value"] if key == "value" else grad[names.index(key)]
            assert abs(got - float(text)) <= printed_tolerance(text), (row["cell_id"], key, got, text)
        assert row["digits"] >= 15
    circuit = df[(df["problem"] == "seed_circuit") & (df["status"] == "ok")]
    assert len(circuit) >= 2  # every method that runs reproduces the exact circuit to its own accuracy
    for _, row in circuit.iterrows():
        assert np.allclose(json.loads(row["grad"]), [-4.0, -4.0, 3.0], rtol=1e-6, atol=1e-6), row["method"]


def test_mlp_row_value_and_error_agree_with_the_reference(tmp_path):
    study = tiny(problems=[{"family": "mlp", "layers": [[3, 5, 2]], "batch": 4, "l2": 0.01}],
                 reference={"max_coordinates": 0})
    df = run_study(study, store=tmp_path / "r.sqlite", quiet=True)
    row = df.iloc[0]
    problem = dk.problems.mlp([3, 5, 2], batch=4, l2=0.01, seed=0)
    ref = dk.reference(problem, digits=30)  # certified: its own high-precision differences agree with it
    assert row["status"] == "ok" and row["P"] == problem.size == 32
    assert abs(row["value"] - ref.value) <= 1e-14 * abs(ref.value)
    assert row["digits"] >= 13 and row["max_abs"] <= 1e-12 * np.max(np.abs(ref.grad))
    assert row["worst_component"] in {problem.component_name(i) for i in range(problem.size)}
    # the ratio column is the row's own two medians (timings are not asserted: machines are noisy)
    assert row["grad_over_forward"] == pytest.approx(row["wall_median_s"] / row["forward_median_s"], rel=1e-12)
    env = json.loads(row["env"])
    assert {"numpy", "mpmath"} <= set(env["packages"]) and env["cpu"] and row["study_hash"]
    assert row["blas_threads"] == 1 or env["blas_threads"] == "unfixed"
    # the tape recorded at least the two affine layers, the activation and the cost (the exact count is the tape's
    # implementation detail)
    assert json.loads(row["counters"])["tape_length"] >= 4


def test_budget_is_recorded_and_larger_sizes_are_skipped(tmp_path):
    # central needs 2P forward evaluations: at P ~ 1e5 that is hours, far past a 1 s budget; P ~ 100 takes ms
    study = tiny(study={"name": "b", "budget_s": 1.0}, methods={"central": {}},
                 problems=[{"family": "mlp", "sizes": [100, 100000, 1000000]}], reference={"max_p": 200})
    df = run_study(study, store=tmp_path / "r.sqlite", quiet=True).set_index("size")
    assert list(df["status"]) == ["ok", "budget", "skipped"]
    assert "budget" in df.loc[100000, "reason"] and "gave out at size 100000" in df.loc[1000000, "reason"]
    # the cell's SIGALRM deadline stopped the call (2P = 2e5 forwards would run for hours): the reason says so
    assert "ran past the cell budget of 1 s" in df.loc[100000, "reason"]
    assert df.loc[100, "evaluations"] == 2 * df.loc[100, "P"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_failures_are_rows_and_the_study_goes_on(tmp_path):
    # the naive binary cross-entropy of saturated logits is log(0) * 0 = NaN: a non-finite result
    study = tiny(problems=[{"family": "mlp", "layers": [[3, 4, 2]], "loss": "bce", "stable": [False, True],
                            "scale": 2000.0}], reference={"max_p": 0})
    df = run_study(study, store=tmp_path / "r.sqlite", quiet=True)
    naive = df[df["cell_id"].str.contains("stable=False")].iloc[0]
    stable = df[df["cell_id"].str.contains("stable=True")].iloc[0]
    assert naive["status"] == "failed" and "NaN or inf" in naive["reason"]
    assert stable["status"] == "ok" and np.isfinite(stable["value"])
    assert "reference.max_p=0" in stable["reason"] and np.isnan(stable["digits"])


def test_unregistered_method_is_skipped_then_runs_once_it_lands(tmp_path, monkeypatch):
    store = tmp_path / "r.sqlite"
    central = METHODS["central"]
    monkeypatch.delitem(METHODS, "central")
    df = run_study(tiny(methods={"central": {}, "reverse": {}}), store=store, quiet=True)
    assert dict(zip(df["method"], df["status"])) == {"central": "skipped", "reverse": "ok"}
    assert "not registered" in df.set_index("method").loc["central", "reason"]
    monkeypatch.setitem(METHODS, "central", central)
    df = run_study(tiny(methods={"central": {}, "reverse": {}}), store=store, quiet=True)
    assert dict(zip(df["method"], df["status"])) == {"central": "ok", "reverse": "ok"}
    assert len(df) == 2


# --- cost models -------------------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(b=st.floats(0.5, 3.0), a=st.floats(-8, 2), n=st.integers(3, 12))
def test_loglog_slope_recovers_an_exact_power_law(b, a, n):
    P = np.logspace(1, 6, n)
    slope, low, high = loglog_slope(P, 10.0**a * P**b)
    # an exact power law has a zero-width interval, so allow rounding at its ends
    assert abs(slope - b) < 1e-9 and low - 1e-12 <= b <= high + 1e-12 and high - low < 1e-6


def test_slope_interval_covers_the_true_slope_with_noise():
    rng = np.random.default_rng(1)
    P = np.logspace(2, 6, 9)
    covered = 0
    for _ in range(200):
        y = 1e-6 * P**2 * np.exp(0.2 * rng.standard_normal(P.size))
        _, low, high = loglog_slope(P, y)
        covered += low <= 2 <= high
    assert 0.90 <= covered / 200 <= 0.99  # a 95% interval


def test_fit_cost_models_uses_ok_rows_above_p_min():
    import pandas as pd

    rows = [{"method": "m", "status": "ok", "P": P, "wall_median_s": 1e-9 * P**2, "evaluations": 2 * P,
             "grad_over_forward": 2 * P} for P in (1e3, 1e4, 1e5, 1e6)]
    rows += [{"method": "m", "status": "ok", "P": 10.0, "wall_median_s": 1.0, "evaluations": 20,
              "grad_over_forward": 20.0},
             {"method": "m", "status": "budget", "P": 1e7, "wall_median_s": 5.0, "evaluations": None,
              "grad_over_forward": None}]
    fit = fit_cost_models(pd.DataFrame(rows)).iloc[0]
    assert fit["fit"] == "fitted" and fit["n_points"] == 4
    assert abs(fit["slope"] - 2) < 1e-9 and abs(fit["evaluations_slope"] - 1) < 1e-9
    assert abs(fit["ratio_slope"] - 1) < 1e-9  # time / forward: P forward passes, the quantity ADBench reports
    assert fit["trend"] == "quadratic in P" and fit["ratio_trend"] == "linear in P"
    assert fit["ratio_median"] == np.median([20.0, 2e3, 2e4, 2e5, 2e6])  # the ratio uses every ok row


@pytest.mark.parametrize("sizes, why", [
    ((1e3, 1e4), "2 sizes"),                      # two points: a line through them has no evidence
    ((1e3, 2e3, 4e3, 8e3, 1.6e4), "1.2 decades"),  # many points, too narrow a span
])
def test_no_slope_from_too_few_sizes_or_too_narrow_a_span(sizes, why):
    import pandas as pd

    rows = [{"method": "m", "status": "ok", "P": P, "wall_median_s": 1e-6 * P, "grad_over_forward": 3.0,
             "evaluations": 1} for P in sizes]
    fit = fit_cost_models(pd.DataFrame(rows)).iloc[0]
    assert fit["fit"].startswith("points only") and why in fit["fit"]
    assert np.isnan(fit["slope"]) and np.isnan(fit["ratio_slope"]) and fit["trend"] == ""


@settings(max_examples=40, deadline=None)
@given(b=st.floats(-0.5, 2.5), half=st.floats(0.0, 0.6))
def test_trend_words_agree_with_the_fitted_slope(b, half):
    from diffkit.studies.fit import trend

    words = trend(b, b - half, b + half)
    bands = {"flat in P": (-0.2, 0.2), "linear in P": (0.8, 1.2), "quadratic in P": (1.8, 2.2)}
    if words in bands:  # a word only when the whole interval is in its band
        lo, hi = bands[words]
        assert lo <= b - half and b + half <= hi
    else:
        assert not any(lo <= b - half and b + half <= hi for lo, hi in bands.values())
        if b - half < 0 < b + half:
            assert words == "no clear trend in P"
        else:
            assert words == (f"grows like P^{b:.1f}" if b >= 0 else f"falls like P^{b:.1f}")


def test_step_size_study_gives_a_v_curve_per_method(tmp_path):
    pytest.importorskip("diffkit.finite_differences")
    study = study_from_dict({"study": {"name": "v", "kind": "step_size"}, "problems": [{"family": "seed_circuit"}],
                             "sweep": {"methods": ["forward", "central"], "steps": 17}})
    df = run_study(study, store=tmp_path / "r.sqlite", quiet=True)
    assert set(df["status"]) == {"ok"} and sorted(set(df["method"])) == ["central", "forward"]
    assert len(df) == 2 * 17 and (df["study"] == "v").all() and df["cell_id"].nunique() == 1
    # f = (x + y) z is bilinear: central differences have no truncation error, so at h = 1 (10^0) they are
    # exact up to rounding, and forward differences too (f is linear along each coordinate)
    at_one = df[np.isclose(df["h"], 1.0, rtol=1e-9, atol=0)].set_index("method")["error"]
    assert len(at_one) == 2 and (at_one < 1e-14).all()
    tiny_h = df[np.isclose(df["h"], 1e-16, rtol=1e-9, atol=0)].set_index("method")["error"]
    # round-off dominates at h = 1e-16 (or the step does not even move theta: NaN)
    assert len(tiny_h) == 2 and (tiny_h.isna() | (tiny_h > 1e-3)).all()
    assert df["h"].min() == 1e-16  # the store keeps full precision


def test_failure_reasons_name_files_from_the_package_not_the_checkout():
    import diffkit.backends
    from diffkit.studies.runner import _short_path

    assert _short_path(diffkit.backends.__file__) == os.path.join("diffkit", "backends.py")
    assert _short_path("/somewhere/else/user_code.py") == "user_code.py"


def test_two_runs_of_a_small_accuracy_study_give_bitwise_identical_accuracy(tmp_path):
    # the results a report prints may differ between runs only in timings and metadata: seeded data, one BLAS
    # thread, and budgets no cell approaches (a cell decided by the wall clock would differ on a busy machine)
    study = study_from_dict({
        "study": {"name": "repro", "blas_threads": 1, "budget_s": 120.0},
        "problems": [{"family": "seed_sigmoid_neuron"},
                     {"family": "mlp", "layers": [[3, 5, 2]], "activation": ["tanh", "relu"],
                      "loss": "binary_cross_entropy", "batch": 8, "l2": 0.001}],
        "methods": {"reverse": {}, "backward": {}, "central": {}, "richardson": {}},
        "timing": {**FAST_TIMING, "ratio_budget_s": 0.01},
        "reference": {"max_coordinates": 0}})
    runs = [run_study(study, store=tmp_path / f"run{k}.sqlite", quiet=True).sort_values("cell_id")
            .reset_index(drop=True) for k in range(2)]
    columns = ["cell_id", "status", "value", "digits", "median_digits", "max_abs", "max_rel", "worst_component",
               "grad", "evaluations"]
    assert set(runs[0]["status"]) == {"ok"}
    a, b = (r[columns].astype(str) for r in runs)
    assert a.equals(b)
