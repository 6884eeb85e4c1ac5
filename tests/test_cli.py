"""The ``diffkit`` CLI: every subcommand through a subprocess or ``diffkit.cli.main``; exit codes 0/1/2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import diffkit as dk
from diffkit.cli import main

REPO = Path(__file__).resolve().parents[1]


def diffkit(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffkit", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)


def test_methods_lists_every_registered_method():
    out = diffkit("methods")
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names[0] == "reverse" and {"central", "complex_step", "symbolic"} <= set(names)
    assert len(names) == len(dk.methods())


def test_methods_json(capsys):
    assert main(["methods", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"name": "reverse", "kind": "automatic"}.items() <= listed[0].items()


def test_gradient_table_with_reference_on_the_issue_example():
    out = diffkit("gradient", "--problem", "mlp", "--layers", "4,16,3", "--activation", "tanh", "--loss",
                  "softmax_ce", "--method", "reverse", "--reference")
    assert out.returncode == 0, out.stderr
    problem = dk.problems.mlp([4, 16, 3], activation="tanh", loss="softmax_ce")
    ref = dk.reference(problem, digits=30, max_coordinates=0)  # certified along random directions
    lines = out.stdout.splitlines()
    assert "P = 131" in lines[0] and f"{ref.value:.12g}"[:12] in lines[0]
    reverse = [l for l in lines if l.startswith("reverse")][0].split()
    assert abs(float(reverse[1]) - ref.value) <= 1e-14 * abs(ref.value)
    assert float(reverse[5]) >= 13  # correct digits against mpmath


def test_gradient_json_reproduces_the_seed_circuit(capsys):
    assert main(["gradient", "--problem", "seed_circuit", "--method", "reverse,central", "--json",
                 "--reference"]) == 0
    out = json.loads(capsys.readouterr().out)
    by = {m["method"]: m for m in out["methods"]}
    assert out["P"] == 3 and by["reverse"]["value"] == -12.0 and by["reverse"]["grad"] == [-4.0, -4.0, 3.0]
    assert by["reverse"]["digits"] == 16.0 and by["central"]["digits"] >= 8
    assert max(abs(a - b) for a, b in zip(by["central"]["grad"], [-4, -4, 3])) < 1e-6


@pytest.mark.parametrize("args,words", [
    (["--layers", "4,x,3"], "--layers"),
    (["--method", "backprop"], "backprop"),
    (["--activation", "swish"], "swish"),
    (["--problem", "resnet"], "seed_circuit"),
    (["--reference", "--digits", "5"], "--digits"),
])
def test_gradient_bad_usage_exits_2_naming_the_option(capsys, args, words):
    with pytest.raises(SystemExit) as exit_:
        main(["gradient", *args])
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


def test_gradient_failing_method_exits_1(capsys):
    # the complex step cannot differentiate relu: a failure (exit 1), printed beside the methods that worked
    assert main(["gradient", "--activation", "relu", "--method", "reverse,complex_step"]) == 1
    out = capsys.readouterr().out
    assert "complex_step" in out and "failed" in out and "\nreverse" in out


def test_study_list_names_the_builtin_studies():
    out = diffkit("study", "list")
    assert out.returncode == 0, out.stderr
    for name in ("accuracy", "scaling", "seeds", "step_size"):
        assert any(line.startswith(name) for line in out.stdout.splitlines()), name


def test_study_run_then_show_through_subprocesses(tmp_path):
    store = str(tmp_path / "r.sqlite")
    out = diffkit("study", "run", "seeds", "--quick", "--store", store, "--csv", str(tmp_path / "s.csv"))
    assert out.returncode == 0, out.stderr
    assert "reverse" in out.stdout and "cells:" in out.stdout
    shown = diffkit("study", "show", "seeds", "--quick", "--store", store)
    assert shown.returncode == 0, shown.stderr
    circuit = [l for l in shown.stdout.splitlines() if l.startswith("seed_circuit/size=3/reverse")]
    assert circuit and "16.0 digits" in circuit[0]
    import pandas as pd

    df = pd.read_csv(tmp_path / "s.csv")
    assert (df["study"] == "seeds").all() and (df["mode"] == "quick").all()


def test_study_run_quiet_max_p_and_rerun(tmp_path, capsys):
    store = str(tmp_path / "r.sqlite")
    assert main(["study", "run", "seeds", "--quick", "--quiet", "--max-p", "3", "--store", store]) == 0
    assert capsys.readouterr().out == ""
    df = dk.studies.results("seeds", store=store)
    assert set(df["P"]) == {2, 3}  # the sigmoid neuron (P = 5) is above --max-p
    assert main(["study", "run", "seeds", "--quick", "--store", store, "--fresh"]) == 0
    assert set(dk.studies.results("seeds", store=store)["P"]) == {2, 3, 5}


def test_without_threadpoolctl_study_run_fixes_threads_in_a_subprocess(tmp_path, monkeypatch):
    from diffkit.studies import env

    for var in env.THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(env, "_threadpoolctl", lambda: None)
    store = str(tmp_path / "r.sqlite")
    assert main(["study", "run", "seeds", "--quick", "--quiet", "--max-p", "3", "--store", store]) == 0
    row = dk.studies.results("seeds", store=store).iloc[0]
    assert json.loads(row["env"])["thread_vars"] == {var: "1" for var in env.THREAD_VARS}
    assert row["blas_threads"] == 1


def test_study_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\nbudget = 3\n')
    with pytest.raises(SystemExit) as exit_:
        main(["study", "run", str(bad)])
    assert exit_.value.code == 2 and "'study.budget'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["study", "run", "seeds", "--max-p", "0"])
    assert exit_.value.code == 2
    assert main(["study", "show", "seeds", "--store", str(tmp_path / "empty.sqlite")]) == 1
    assert "no results" in capsys.readouterr().err


def test_study_store_from_another_study_file_exits_1(tmp_path, capsys):
    store = str(tmp_path / "r.sqlite")
    one = tmp_path / "one.toml"
    one.write_text('[study]\nname = "same"\n[[problems]]\nfamily = "seed_circuit"\n[methods.reverse]\n'
                   '[timing]\nmin_time_s = 0.0\nmemory = false\n')
    assert main(["study", "run", str(one), "--quiet", "--store", store]) == 0
    one.write_text(one.read_text().replace("[methods.reverse]", "[methods.reverse]\n[methods.central]"))
    assert main(["study", "run", str(one), "--quiet", "--store", store]) == 1
    assert "different study file" in capsys.readouterr().err


def test_help_at_the_top_through_a_subprocess():
    out = diffkit("--help")
    assert out.returncode == 0 and "usage: diffkit" in out.stdout
    for name in ("methods", "gradient", "study"):
        assert name in out.stdout


@pytest.mark.parametrize("args", [["methods"], ["gradient"], ["study"], ["study", "run"], ["study", "show"],
                                  ["study", "list"]])
def test_help_everywhere(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])
    assert exit_.value.code == 0 and f"usage: diffkit {' '.join(args)}" in capsys.readouterr().out


def test_missing_subcommand_is_usage_error():
    out = diffkit("study")
    assert out.returncode == 2 and "ACTION" in out.stderr
