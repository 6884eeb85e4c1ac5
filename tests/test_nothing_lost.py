"""Issue 14: no silent wrong answer, no lost file, no race: f that writes to theta, report folders, the store.

Each expected gradient is derived by hand: f(t) = sum((2t)^2) = 4 sum t^2 has gradient 8t, so (8, 16, 24) at
t = (1, 2, 3); f(t) = t1^2 + t1^2 + t2^2 (after t[0] = t[1]) has gradient (0, 4 t1, 2 t2) = (0, 8, 6).
"""
from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit.cli import main
from diffkit.report import render
from diffkit.report.data import ReportData
from diffkit.studies import StoreError, run_study, study_from_dict
from diffkit.studies import runner as _runner
from diffkit.studies.store import Store

THETA = np.array([1.0, 2.0, 3.0])


def doubles_in_place(t):
    t *= 2
    return dk.namespace(t).sum(t ** 2)


def copies_an_entry(t):
    t[0] = t[1]
    return dk.namespace(t).sum(t ** 2)


EXACT = ("reverse", "symbolic")
NUMERIC = ("forward", "backward", "central", "central4", "richardson", "complex_step")


@pytest.mark.parametrize("method", EXACT + NUMERIC)
def test_f_that_scales_theta_in_place_gets_the_right_gradient(method):
    theta = THETA.copy()
    r = dk.gradient(doubles_in_place, theta, method=method)
    np.testing.assert_allclose(r.grad, [8.0, 16.0, 24.0], rtol=1e-6 if method in NUMERIC else 1e-15)
    assert r.value == pytest.approx(56.0, rel=1e-6)  # 4 (1 + 4 + 9)
    np.testing.assert_array_equal(theta, THETA)  # the caller's array is never touched


@pytest.mark.parametrize("method", ("symbolic",) + NUMERIC)
def test_f_that_assigns_into_theta_gets_the_right_gradient(method):
    r = dk.gradient(copies_an_entry, THETA, method=method)
    np.testing.assert_allclose(r.grad, [0.0, 8.0, 6.0], atol=1e-6 if method in NUMERIC else 1e-15)


def test_f_that_assigns_into_a_tape_theta_gets_a_clear_error():
    # the tape records operations, not assignments: refused, with the functional form to use instead
    for call in (lambda: dk.gradient(copies_an_entry, THETA, method="reverse"),
                 lambda: dk.reference(copies_an_entry, THETA)):
        with pytest.raises(TypeError, match=r"immutable.*xp\.at\(x\)\[index\]\.set\(value\)"):
            call()


@pytest.mark.parametrize("compiled", [False, True])
def test_the_tape_uses_the_callers_theta_without_a_copy_and_never_changes_it(compiled):
    # the tape hands f its own immutable arrays, so dk.gradient(method="reverse") reads theta where it is
    theta = np.array([0.5, -1.5, 2.0])
    for f, want in ((doubles_in_place, 8 * theta), (lambda t: dk.namespace(t).sum(t), np.ones(3))):
        r = dk.gradient(f, theta, compile=compiled)
        np.testing.assert_array_equal(r.grad, want)  # d/dt sum((2t)^2) = 8t; d/dt sum(t) = 1
        assert not np.shares_memory(r.grad, theta)
        np.testing.assert_array_equal(theta, [0.5, -1.5, 2.0])


def test_check_gradient_on_a_mutating_f_passes_with_the_right_gradient():
    check = dk.testing.check_gradient(doubles_in_place, THETA, grad=lambda t: 8 * t)
    assert check.verdict == "pass"


def test_symbolic_keeps_the_users_exception_type():
    class LossUndefined(ArithmeticError):
        pass

    def f(t):
        raise LossUndefined("the loss is undefined for this batch")
    with pytest.raises(LossUndefined, match="undefined for this batch"):
        dk.gradient(f, THETA, method="symbolic")


# --- no user file is ever deleted -------------------------------------------------------------------------------

def _user_folder(path: Path) -> dict:
    path.mkdir()
    files = {"index.md": "# my notes\n", "thesis.tex": "keep me", "figures/plot.png": "not a diffkit figure"}
    for name, text in files.items():
        (path / name).parent.mkdir(exist_ok=True)
        (path / name).write_text(text)
    return files


def test_render_refuses_a_user_folder_holding_an_index_md(tmp_path):
    files = _user_folder(tmp_path / "notes")
    with pytest.raises(ValueError, match=r"notes is not empty and holds no \.diffkit-report marker"):
        render(ReportData(), tmp_path / "notes")
    assert {n: (tmp_path / "notes" / n).read_text() for n in files} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # no debris beside it


def test_cli_report_refuses_a_user_folder_and_exits_2(tmp_path, capsys):
    files = _user_folder(tmp_path / "notes")
    with pytest.raises(SystemExit) as info:
        main(["report", "--out", str(tmp_path / "notes"), "--no-run", "--store", str(tmp_path / "r.sqlite")])
    assert info.value.code == 2 and "notes" in capsys.readouterr().err
    assert {n: (tmp_path / "notes" / n).read_text() for n in files} == files


def test_render_replaces_its_own_report_and_only_that(tmp_path):
    out = render(ReportData(), tmp_path / "reports")
    assert (out / ".diffkit-report").is_file()
    (out / "index.md").write_text("stale")
    render(ReportData(), out)  # its own folder (the marker): replaced
    assert (out / "index.md").read_text() != "stale"
    (out / ".diffkit-report").unlink()
    (out / "my-notes.txt").write_text("mine")  # now it holds a user file and no marker: refused
    with pytest.raises(ValueError, match="no .diffkit-report marker"):
        render(ReportData(), out)
    assert (out / "my-notes.txt").read_text() == "mine"


# --- the store: errors that name the path, and two runs at once -------------------------------------------------

def test_store_in_a_folder_that_is_a_file_names_it(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(StoreError, match=rf"{tmp_path / 'taken'} is a file, not a folder"):
        Store(tmp_path / "taken" / "results.sqlite")


def test_store_that_is_a_directory_names_it(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_read_only_store_names_the_path_and_still_reads(tmp_path):
    path = tmp_path / "r.sqlite"
    Store(path).begin("s", "h", "<test>", fresh=False)
    path.chmod(stat.S_IRUSR)
    store = Store(path)  # reading works
    assert "s" in store.studies()
    with pytest.raises(StoreError, match=rf"cannot write the results store {path}: it is read-only"):
        store.begin("t", "h", "<test>", fresh=False)


def test_read_only_store_error_names_the_path(tmp_path):
    # the same message whoever runs the test (root ignores file modes): sqlite's own read-only error
    path = tmp_path / "r.sqlite"
    store = Store(path)
    store.conn.close()
    store.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(StoreError, match=rf"cannot write the results store {path}: it is read-only"):
        store.begin("t", "h", "<test>", fresh=False)


def test_concurrent_first_runs_never_collide_100_of_100(tmp_path):
    # two runs opening a new store and beginning the same study at the same instant: the check-and-insert is
    # one transaction, so neither fails (before: "UNIQUE constraint failed: studies.study", 1 pair in 20)
    failures = []
    for i in range(100):
        path = tmp_path / f"race{i}.sqlite"
        barrier = threading.Barrier(2)

        def start():
            try:
                barrier.wait()
                store = Store(path)
                store.begin("scaling", "abc", "<test>", fresh=False)
                store.close()
            except Exception as err:  # noqa: BLE001  (collected and reported below)
                failures.append(f"{i}: {type(err).__name__}: {err}")
        threads = [threading.Thread(target=start) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert Store(path).studies()["scaling"]["hash"] == "abc"
    assert failures == []


SHARED = {"study": {"name": "shared"}, "timing": {"min_time_s": 0.0, "memory": False},
          "problems": [{"family": "seed_circuit"}, {"family": "seed_sigmoid_neuron"}, {"family": "seed_relu_chain"}],
          "methods": {"reverse": {}, "central": {}, "forward": {}, "backward": {}}}


def test_two_runs_on_one_store_share_the_work(tmp_path, monkeypatch):
    ran, lock = [], threading.Lock()
    real = _runner.CELL_RUNNERS["gradient"]

    def counting(study, cell, ctx, row):
        with lock:
            ran.append(cell.cell_id)
        return real(study, cell, ctx, row)
    monkeypatch.setitem(_runner.CELL_RUNNERS, "gradient", counting)
    path, barrier, frames, errors = tmp_path / "r.sqlite", threading.Barrier(2), [], []

    def go():
        try:
            barrier.wait()
            frames.append(run_study(study_from_dict(SHARED), store=Store(path), quiet=True))
        except Exception as err:  # noqa: BLE001
            errors.append(err)
    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(ran) == sorted(set(ran)) and len(ran) == 12  # every cell once, by one run or the other
    for df in frames:  # and both runs return every cell's result
        assert len(df) == 12 and set(df["status"]) == {"ok"}


# --- hypothesis: any argument type gets a clear error or a result -------------------------------------------------

ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.floats(allow_nan=True),
                     st.complex_numbers(), st.text(max_size=5), st.binary(max_size=3),
                     st.lists(st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.text(max_size=2)), max_size=4),
                     st.dictionaries(st.text(max_size=2), st.integers(), max_size=2), st.just(object()),
                     st.just(np.datetime64("2020-01-01")), st.just(np.ma.array([1.0], mask=[1])))
UNCLEAR = ("unhashable type", "not supported between", "'NoneType' object is not", "object is not subscriptable",
           "has no attribute", "object is not iterable", "could not convert", "invalid literal")


def _clear(call) -> None:
    try:
        call()
    except (TypeError, ValueError, MemoryError, FloatingPointError) as err:
        text = str(err)
        assert text and not any(u in text for u in UNCLEAR), text


def square_sum(t):
    return dk.namespace(t).sum(t ** 2)


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(theta=ANYTHING, method=st.sampled_from(["reverse", "central", "forward", "complex_step", "richardson"]))
def test_fuzz_gradient_theta(theta, method):
    _clear(lambda: dk.gradient(square_sum, theta, method=method))


@FUZZ
@given(f=ANYTHING, method=ANYTHING)
def test_fuzz_gradient_f_and_method(f, method):
    _clear(lambda: dk.gradient(f, THETA, method=method))


@FUZZ
@given(h=ANYTHING, relative=ANYTHING, levels=ANYTHING)
def test_fuzz_finite_difference_options(h, relative, levels):
    _clear(lambda: dk.gradient(square_sum, THETA, method="central", h=h, relative=relative))
    _clear(lambda: dk.gradient(square_sum, THETA, method="richardson", levels=levels))


@FUZZ
@given(digits=ANYTHING, directions=ANYTHING, certify=ANYTHING)
def test_fuzz_reference_options(digits, directions, certify):
    _clear(lambda: dk.reference(square_sum, THETA, digits=digits, directions=directions, certify=certify))


@FUZZ
@given(key=st.sampled_from(["layers", "batch", "seed", "stable", "l2", "scale", "activation", "loss"]),
       value=ANYTHING)
def test_fuzz_mlp_options(key, value):
    kwargs = {"layers": [2, 3, 2], "batch": 4, key: value}
    _clear(lambda: dk.problems.mlp(**kwargs))


@FUZZ
@given(P=ANYTHING, depth=ANYTHING)
def test_fuzz_mlp_for_size(P, depth):
    _clear(lambda: dk.problems.mlp_for_size(P, depth=depth, batch=2))


@FUZZ
@given(section=st.sampled_from(["study", "timing", "reference", "sweep"]),
       key=st.sampled_from(["name", "kind", "seeds", "budget_s", "warmup", "min_time_s", "digits", "max_p",
                            "steps", "component"]), value=ANYTHING)
def test_fuzz_study_files(section, key, value):
    content = {"study": {"name": "fuzz"}, "problems": [{"family": "seed_circuit"}], "methods": {"reverse": {}}}
    content.setdefault(section, {})[key] = value
    if not isinstance(value, (np.ma.MaskedArray, np.datetime64, bytes)) and value is not object:
        try:
            _clear(lambda: study_from_dict(content).cells())
        except (OverflowError, RecursionError):  # JSON cannot hold it: not a study file
            pass


@FUZZ
@given(theta=ANYTHING, v=ANYTHING, method=ANYTHING, h=ANYTHING)
def test_fuzz_directional_derivative(theta, v, method, h):
    _clear(lambda: dk.directional_derivative(square_sum, theta, v, method=method, h=h))
    _clear(lambda: dk.jvp(square_sum, THETA, v, method="central", h=h))


@FUZZ
@given(name=st.one_of(st.text(max_size=8), st.integers(), st.none(), st.lists(st.integers(), max_size=2)))
def test_fuzz_load_study(name):
    try:
        dk.studies.load_study(name)
    except (TypeError, ValueError) as err:
        assert str(err) and not any(u in str(err) for u in UNCLEAR), str(err)


# --- the wheel, outside the checkout (.ci/run does the same in a fresh environment) ------------------------------

@pytest.mark.slow
def test_the_wheel_ships_the_studies_and_works_outside_the_checkout(tmp_path):
    import subprocess
    import sys
    import sysconfig

    repo = Path(__file__).resolve().parents[1]
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(dist), str(repo)], check=True, capture_output=True, timeout=600)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    *map(str, dist.glob("*.whl"))], check=True, capture_output=True, timeout=300)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # the dependencies, from here
    python, env = str(venv / "bin" / "python"), {**os.environ, "DIFFKIT_STORE": str(tmp_path / "r.sqlite")}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([python, "-c", "import diffkit; print(diffkit.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.stdout.startswith(str(site)), where
    listed = subprocess.run([python, "-m", "diffkit", "study", "list"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert {"seeds", "scaling", "stability"} <= {line.split()[0] for line in listed.stdout.splitlines() if line}
    ran = subprocess.run([python, "-m", "diffkit", "study", "run", "scaling", "--quick", "--max-p", "100",
                          "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr


@FUZZ
@given(max_p=ANYTHING)
def test_fuzz_study_max_p(max_p):
    study = dk.studies.load_study("seeds")
    _clear(lambda: study.cells(max_p=max_p))
