"""The results store: crash safety (SIGKILL at a fixed cell mid-run), resumption, no duplicates, clear refusals."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import mpmath
import pandas as pd
import pytest

import diffkit as dk
from diffkit.studies import SCHEMA_VERSION, Store, StoreError, export, results, run_study, study_from_dict

KILL_STUDY = {
    "study": {"name": "killme", "seeds": [0, 1]},
    "problems": [{"family": "mlp", "layers": [[2, 3, 2]], "batch": 4, "activation": ["tanh", "sigmoid"]}],
    "methods": {"reverse": {}, "central": {}},
    "timing": {"min_time_s": 0, "memory": False},
    "reference": {"max_p": 0},
}
KILLED_AFTER = 3
# The child kills itself (SIGKILL: no cleanup, no exit handlers) when the runner hands the store its 4th cell, so the
# crash lands mid-run at the same point every time, whatever the machine's speed.
RUNNER = """
import json, os, signal, sys
import diffkit as dk
from diffkit.studies import store

record, done = store.Store.record, []
def record_then_crash(self, *args, **kwargs):
    if len(done) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    record(self, *args, **kwargs)
    done.append(1)
store.Store.record = record_then_crash
dk.studies.run_study(dk.studies.study_from_dict(json.loads(sys.argv[1])), store=sys.argv[2], quiet=True)
"""
REPO = Path(__file__).resolve().parents[1]


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_sigkill_mid_run_then_rerun_gives_the_same_cells_without_duplicates(tmp_path):
    killed = tmp_path / "killed.sqlite"
    child = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(KILL_STUDY), str(killed), str(KILLED_AFTER)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    total = len(study_from_dict(KILL_STUDY).cells())
    assert _count(killed) == KILLED_AFTER < total  # what was recorded before the crash survived it, nothing more
    resumed = run_study(study_from_dict(KILL_STUDY), store=killed, quiet=True)
    clean = run_study(study_from_dict(KILL_STUDY), store=tmp_path / "clean.sqlite", quiet=True)
    assert sorted(resumed["cell_id"]) == sorted(clean["cell_id"])
    assert resumed["cell_id"].is_unique and len(resumed) == total
    assert set(resumed["status"]) == {"ok"}
    with sqlite3.connect(killed) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT study || cell_id) FROM cells").fetchone() == (total,
                                                                                                          total)
    # the cells finished before the kill were kept, not redone: they were written by the killed process
    assert resumed["created_at"].min() <= clean["created_at"].min()


def test_rerun_skips_completed_cells_and_fresh_starts_over(tmp_path):
    store = tmp_path / "r.sqlite"
    study = study_from_dict({"study": {"name": "s"}, "problems": [{"family": "seed_circuit"}],
                             "methods": {"reverse": {}}, "timing": {"min_time_s": 0, "memory": False}})
    first = run_study(study, store=store, quiet=True)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE cells SET created_at='marker'")
    again = run_study(study, store=store, quiet=True)
    assert list(again["created_at"]) == list(first["created_at"])  # rows come back from the store as written
    assert Store(store).conn.execute("SELECT created_at FROM cells").fetchone()[0] == "marker"
    run_study(study, store=store, quiet=True, fresh=True)
    assert Store(store).conn.execute("SELECT created_at FROM cells").fetchone()[0] != "marker"


def test_a_different_study_file_is_refused_with_an_explanation(tmp_path):
    store = tmp_path / "r.sqlite"
    base = {"study": {"name": "s"}, "problems": [{"family": "seed_circuit"}], "methods": {"reverse": {}},
            "timing": {"min_time_s": 0, "memory": False}}
    run_study(study_from_dict(base), store=store, quiet=True)
    changed = study_from_dict({**base, "methods": {"reverse": {}, "central": {}}})
    with pytest.raises(StoreError, match=r"different study file.*--fresh"):
        run_study(changed, store=store, quiet=True)
    df = run_study(changed, store=store, quiet=True, fresh=True)
    assert sorted(df["method"]) == ["central", "reverse"]


def test_incompatible_schema_and_foreign_files_are_refused(tmp_path):
    store = tmp_path / "r.sqlite"
    Store(store).close()
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(StoreError, match=f"schema version 999.*reads version {SCHEMA_VERSION}"):
        Store(store)
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(StoreError, match="not a diffkit results store.*people"):
        Store(foreign)
    text = tmp_path / "notes.sqlite"
    text.write_text("these are not the results you are looking for" * 100)
    with pytest.raises(StoreError, match="not a diffkit results store"):
        Store(text)


def test_reference_is_cached_once_per_problem_instance_and_matches_mpmath(tmp_path):
    store = tmp_path / "r.sqlite"
    study = study_from_dict({"study": {"name": "s"}, "problems": [{"family": "seed_sigmoid_neuron"}],
                             "methods": {"reverse": {}, "central": {}}, "timing": {"min_time_s": 0, "memory": False}})
    run_study(study, store=store, quiet=True)
    rows = Store(store).conn.execute("SELECT P, digits, value, grad FROM refs").fetchall()
    assert len(rows) == 1 and rows[0][:2] == (5, 50)
    # sigma(w0 x0 + w1 x1 + w2) = sigma(1) at the seed's point: compare the stored digits with mpmath directly
    with mpmath.workdps(60):
        s = 1 / (1 + mpmath.exp(-1))
        assert abs(mpmath.mpf(rows[0][2]) - s) < mpmath.mpf(10) ** -48
        dw0 = -s * (1 - s)  # x0 = -1
        assert abs(mpmath.mpf(json.loads(rows[0][3])[0]) - dw0) < mpmath.mpf(10) ** -48


def test_export_csv_round_trips_and_parquet_says_what_it_needs(tmp_path):
    store = tmp_path / "r.sqlite"
    study = study_from_dict({"study": {"name": "s"}, "problems": [{"family": "seed_circuit"}],
                             "methods": {"reverse": {}}, "timing": {"min_time_s": 0, "memory": False}})
    df = run_study(study, store=store, quiet=True)
    back = pd.read_csv(export(df, tmp_path / "out" / "s.csv"))
    assert list(back.columns) == list(df.columns) and back.loc[0, "value"] == -12.0
    assert list(results(study, store=store)["cell_id"]) == list(df["cell_id"])
    with pytest.raises(StoreError, match=r"\.csv or \.parquet"):
        export(df, tmp_path / "s.xlsx")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(StoreError, match="pip install pyarrow"):
            export(df, tmp_path / "s.parquet")
    else:
        assert pd.read_parquet(export(df, tmp_path / "s.parquet")).loc[0, "value"] == -12.0


def test_default_store_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFKIT_STORE", str(tmp_path / "x.sqlite"))
    assert dk.studies.default_store_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("DIFFKIT_STORE")
    monkeypatch.chdir(tmp_path)
    assert dk.studies.default_store_path() == tmp_path / ".diffkit" / "results.sqlite"


def test_values_shared_by_a_cells_rows_are_stored_once(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    store.begin("s", "h", "<python>", fresh=False)
    env = json.dumps({"cpu": "a long description of the machine " * 20})
    store.record("s", "c", "ok", [{"env": env, "h": h, "error": 10.0 ** -h} for h in range(50)])
    text = store.conn.execute("SELECT rows FROM cells").fetchone()[0]
    assert text.count("a long description") == 20  # once, not 50 times
    rows = store.rows("s")
    assert len(rows) == 50 and all(r["env"] == env for r in rows) and [r["h"] for r in rows] == list(range(50))
