"""Study sweeps on Dask: the same cells as a serial run, budgets, a killed worker, a killed coordinator.

Every test runs on a real ``LocalCluster`` of 2 worker processes (shared by the module: starting one costs a
few seconds); they skip, saying why, where dask[distributed] is not installed.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from diffkit.cli import main
from diffkit.studies import load_study, results, run_study, study_from_dict

from test_store import REPO, _count as _cells  # the cells a running study has stored so far

SMALL = {
    "study": {"name": "dsmall", "seeds": [0]},
    "problems": [{"family": "seed_circuit"}, {"family": "seed_sigmoid_neuron"},
                 {"family": "mlp", "layers": [[2, 3, 2]], "batch": 4, "activation": ["tanh", "relu"]}],
    "methods": {"reverse": {}, "central": {}},
    "timing": {"min_time_s": 0, "memory": False},
}
# Each cell times its gradient for at least 0.3 s, so a run of 8 cells lasts long enough to kill in the middle.
SLOW = {
    "study": {"name": "dslow", "seeds": [0, 1]},
    "problems": [{"family": "mlp", "layers": [[2, 3, 2]], "batch": 4, "activation": ["tanh", "sigmoid"]}],
    "methods": {"reverse": {}, "central": {}},
    "timing": {"min_repeats": 1, "max_repeats": 100000, "min_time_s": 0.3, "memory": False},
    "reference": {"max_p": 0},
}


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="the Dask study runner needs dask[distributed]: "
                                                            "pip install 'diffkit[distributed]'")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, distributed.Client(local) as client:
        yield local.scheduler_address, client


def _stored_once(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT study || cell_id) FROM cells").fetchone()
    return total == distinct


def _by_cell(df):
    return df.set_index("cell_id").sort_index()


def test_distributed_run_gives_the_serial_runs_cells_bit_for_bit(cluster, tmp_path):
    address, client = cluster
    serial = _by_cell(run_study(study_from_dict(SMALL), store=tmp_path / "s.sqlite", quiet=True))
    spread = _by_cell(run_study(study_from_dict(SMALL), store=tmp_path / "d.sqlite", quiet=True, scheduler=address))
    assert list(spread.index) == list(serial.index) and len(serial) == 8
    assert set(spread["status"]) == {"ok"}
    for column in ("value", "grad", "digits", "max_abs", "max_rel", "evaluations", "P"):
        assert spread[column].tolist() == serial[column].tolist(), column
    # independent of both runs: the circuit's gradient as the seed prints it (f = (x + y) z at (-2, 5, -4))
    assert json.loads(spread.loc["seed_circuit/size=3/reverse/seed=0", "grad"]) == [-4.0, -4.0, 3.0]
    assert set(serial["worker"]) == {"serial"}
    assert set(spread["worker"]) <= set(client.scheduler_info()["workers"])
    assert set(spread["host"]) == {socket.gethostname()}
    assert _stored_once(tmp_path / "d.sqlite")


def test_later_blocks_of_each_ratio_run_on_the_workers(cluster, tmp_path):
    address, _ = cluster
    study = {**SMALL, "study": {"name": "dblocks"}, "timing": {**SMALL["timing"], "blocks": 2, "min_repeats": 2}}
    df = run_study(study_from_dict(study), store=tmp_path / "k.sqlite", quiet=True, scheduler=address)
    assert set(df["status"]) == {"ok"} and (df["ratio_blocks"] == 2).all()
    assert all(set(json.loads(text)["block"]) == {0, 1} for text in df["ratio_pairs"])
    assert _stored_once(tmp_path / "k.sqlite")


def test_a_series_that_gives_out_skips_its_larger_sizes_on_workers_too(cluster, tmp_path):
    # central at P = 200000 needs 400000 forwards (a minute or more): past a 3 s budget, while P = 24 takes
    # milliseconds (3 s leaves room for a loaded machine). Workers run cells off their main thread, where SIGALRM
    # cannot reach: the worker's own deadline must stop it, or the cell would be stored ok.
    study = {"study": {"name": "dbudget", "budget_s": 3.0},
             "problems": [{"family": "mlp", "sizes": [10, 200000, 400000]}],
             "methods": {"central": {}}, "timing": {"min_time_s": 0, "memory": False}, "reference": {"max_p": 0}}
    address, _ = cluster
    df = _by_cell(run_study(study_from_dict(study), store=tmp_path / "b.sqlite", quiet=True, scheduler=address))
    assert df["status"].tolist() == ["ok", "budget", "skipped"]  # sizes 10, 200000, 400000 in cell_id order
    assert "CellBudget: ran past the cell budget of 3 s" in df["reason"].iloc[1]
    assert "gave out at size 200000" in df["reason"].iloc[2] and df["worker"].iloc[2] == "coordinator"


def test_a_killed_workers_cell_is_rerun_elsewhere_and_stored_once(cluster, tmp_path):
    address, client = cluster
    store = tmp_path / "k.sqlite"
    failures = []

    def coordinator():
        try:
            run_study(study_from_dict(SLOW), store=store, quiet=True, scheduler=address)
        except BaseException as err:  # noqa: BLE001  (reported by the assertion below)
            failures.append(err)
    thread = threading.Thread(target=coordinator)
    thread.start()
    pids = client.run(os.getpid)
    executing = {}
    deadline = time.monotonic() + 120
    while not executing and time.monotonic() < deadline:
        if _cells(store) >= 1:  # mid-run: some cells stored, some executing
            running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
            executing = {w: keys for w, keys in running.items() if any("diffkit-cell" in k for k in keys)}
        time.sleep(0.02)
    assert executing, "no cell was seen executing"
    victim, keys = next(iter(executing.items()))
    os.kill(pids[victim], signal.SIGKILL)
    time.sleep(0.5)  # a result the victim sent just before it died may still land: that cell was not in flight
    with sqlite3.connect(store) as conn:
        done_before_the_kill = {row[0] for row in conn.execute("SELECT cell_id FROM cells")}
    thread.join(180)
    assert not thread.is_alive() and not failures, failures
    df = _by_cell(results(study_from_dict(SLOW), store=store))
    expected = sorted(c.cell_id for c in study_from_dict(SLOW).cells())
    assert list(df.index) == expected and set(df["status"]) == {"ok"}
    assert _stored_once(store)
    killed = [k.split(" ")[1] for k in keys]  # the key is "diffkit-cell CELL_ID HASH"
    in_flight = [cell for cell in killed if cell not in done_before_the_kill]
    assert all(df.loc[cell, "worker"] != victim for cell in in_flight), "a cell in flight on the killed worker"
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the next tests


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            for child in (task / "children").read_text().split():
                out.add(int(child))
                todo.append(int(child))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


SLOW_TOML = """
[study]
name = "dslow"
seeds = [0, 1]
[[problems]]
family = "mlp"
layers = [[2, 3, 2]]
batch = 4
activation = ["tanh", "sigmoid"]
[methods.reverse]
[methods.central]
[timing]
min_repeats = 1
max_repeats = 100000
min_time_s = 0.3
memory = false
[reference]
max_p = 0
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the cluster's processes through /proc")
def test_a_killed_coordinator_takes_its_cluster_along_and_a_rerun_resumes(cluster, tmp_path, capsys):
    address, client = cluster
    study_file, store = tmp_path / "dslow.toml", tmp_path / "c.sqlite"
    study_file.write_text(SLOW_TOML)
    assert load_study(study_file).hash == study_from_dict(SLOW).hash
    child = subprocess.Popen([sys.executable, "-m", "diffkit", "study", "run", str(study_file), "--workers", "2",
                              "--quiet", "--store", str(store)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _cells(store) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the study ended before it could be killed: " + child.stderr.read().decode()
    workers = _descendants(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = _cells(store)
    total = len(study_from_dict(SLOW).cells())
    assert 2 <= before < total
    deadline = time.monotonic() + 30
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and not any(map(_alive, workers)), "worker processes outlived their coordinator"

    assert main(["study", "run", str(study_file), "--scheduler", address, "--quiet", "--store", str(store)]) == 0
    df = _by_cell(results(study_file, store=store))
    assert list(df.index) == sorted(c.cell_id for c in study_from_dict(SLOW).cells())
    assert set(df["status"]) == {"ok"} and _stored_once(store)
    ours = set(client.scheduler_info()["workers"])
    assert (~df["worker"].isin(ours)).sum() == before  # the killed run's cells were kept, not redone
    capsys.readouterr()
    assert main(["study", "show", str(study_file), "--store", str(store)]) == 0
    shown = capsys.readouterr().out
    assert all(f"on {w} (host {socket.gethostname()})" in shown for w in set(df["worker"]))
    assert "computed on: " in shown


def test_cluster_flags_are_checked_before_anything_is_written(tmp_path, capsys, monkeypatch):
    store = tmp_path / "never.sqlite"
    for flags, words in ((["--workers", "0"], "positive number"), (["--workers", "2", "--scheduler", "tcp://h:1"],
                                                                   "not both"),
                         (["--scheduler", "localhost:8786"], "tcp://HOST:8786")):
        with pytest.raises(SystemExit) as exit_:
            main(["study", "run", "seeds", "--store", str(store), *flags])
        assert exit_.value.code == 2 and words in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask were not installed
    with pytest.raises(SystemExit) as exit_:
        main(["study", "run", "seeds", "--store", str(store), "--workers", "2"])
    assert exit_.value.code == 2 and "pip install 'diffkit[distributed]'" in capsys.readouterr().err
    assert not store.exists()


def test_an_unreachable_scheduler_is_an_error_that_says_how_to_start_one(tmp_path, capsys):
    dask = pytest.importorskip("dask", reason="needs dask[distributed]")
    pytest.importorskip("distributed", reason="needs dask[distributed]")
    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "never.sqlite"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        assert main(["study", "run", "seeds", "--store", str(store), "--scheduler", f"tcp://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and "dask worker" in err
    assert not store.exists()
