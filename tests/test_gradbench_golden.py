"""studies/gradbench_golden.py: the relay between an eval's own program and the tool, the golden tool's times,
and the report's table of them.  A stand-in checkout holds an eval program that judges lse's gradient by the
softmax (its closed form) and a golden tool that answers with fixed timings."""
from __future__ import annotations

import importlib.util
import json
import math
import stat
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
X = [0.5, -1.0, 2.0]

EVAL_PROGRAM = textwrap.dedent(f"""
    import json, math, sys

    def send(message):
        print(json.dumps(message), flush=True)
        return json.loads(sys.stdin.readline()) if message["kind"] != "end" else None

    x = {X!r}
    send({{"id": 0, "kind": "start", "eval": "lse"}})
    send({{"id": 1, "kind": "define", "module": "lse"}})
    wrong = "--wrong" in sys.argv  # judges against a wrong closed form: the analysis must say invalid
    for id, function in ((2, "primal"), (4, "gradient")):
        runs = [a for a in sys.argv if a.startswith("--min-runs")]
        response = send({{"id": id, "kind": "evaluate", "module": "lse", "function": function, "description": "n=3",
                          "input": {{"x": x, "min_runs": int(sys.argv[sys.argv.index("--min-runs") + 1]),
                                     "min_seconds": 0}}}})
        total = sum(math.exp(v) for v in x)
        expect = math.log(total) if function == "primal" else [math.exp(v) / total for v in x]
        if wrong and function == "gradient":
            expect = [1.0 / len(x)] * len(x)
        got = response["output"]
        valid = abs(got - expect) < 1e-12 if function == "primal" else all(
            abs(a - b) < 1e-12 for a, b in zip(got, expect))
        send({{"id": id + 1, "kind": "analysis", "of": id, "valid": valid}})
    send({{"id": 6, "kind": "end"}})
""")

# the golden tool's command line: <program> <input.json> <function>; prints the output, then timing lines
GOLDEN = textwrap.dedent("""\
    #!/bin/sh
    echo '0.0'
    echo '{"name": "prepare", "nanoseconds": 5}'
    echo '{"name": "evaluate", "nanoseconds": 900000}'
    echo '{"name": "evaluate", "nanoseconds": 1000}'
    echo '{"name": "evaluate", "nanoseconds": 3000}'
""")


def _script():
    spec = importlib.util.spec_from_file_location("gradbench_golden", REPO / "studies" / "gradbench_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkout(root: Path) -> Path:
    package = root / "python/gradbench/gradbench"
    (package / "evals/lse").mkdir(parents=True)
    for folder in (package, package / "evals", package / "evals/lse"):
        (folder / "__init__.py").write_text("")
    (package / "eval.py").write_text("")
    (package / "evals/lse/run.py").write_text(EVAL_PROGRAM)
    golden = root / "tools/manual/bin/lse"
    golden.parent.mkdir(parents=True)
    golden.write_text(GOLDEN)
    golden.chmod(golden.stat().st_mode | stat.S_IEXEC)
    return root


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in golden tool is a shell script")
def test_relay_reads_the_evals_verdicts_and_times_diffkit_against_the_golden_tool(tmp_path):
    script = _script()
    rows = script.run_eval(_checkout(tmp_path), sys.executable, "lse", [], "reverse", runs=3)
    assert [(r["function"], r["valid"]) for r in rows] == [("primal", True), ("gradient", True)]
    for row in rows:
        assert row["golden_ns"] == 2000.0  # the median of the calls after the cold first one
        assert row["diffkit_ns"] > 0 and math.isclose(row["diffkit_over_golden"], row["diffkit_ns"] / 2000.0)
        assert row["description"] == "n=3" and row["method"] == "reverse"


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in golden tool is a shell script")
def test_an_invalid_verdict_is_kept_and_the_run_exits_1_with_its_csv_written(tmp_path, capsys):
    script = _script()
    checkout = _checkout(tmp_path / "gradbench")
    run = checkout / "python/gradbench/gradbench/evals/lse/run.py"
    run.write_text(run.read_text().replace('wrong = "--wrong" in sys.argv', "wrong = True"))
    out = tmp_path / "golden.csv"
    code = script.main(["--gradbench", str(checkout), "--methods", "reverse", "--evals", "lse", "--out", str(out)])
    assert code == 1
    frame = pd.read_csv(out)
    assert frame.valid.tolist() == [True, False] and frame.function.tolist() == ["primal", "gradient"]
    assert "1 invalid" in capsys.readouterr().out


def test_a_folder_that_is_no_checkout_or_an_unknown_method_is_refused_with_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        _script().main(["--gradbench", str(tmp_path)])
    assert refused.value.code == 2
    assert "not a GradBench checkout" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        _script().main(["--gradbench", str(tmp_path), "--methods", "bogus"])
    assert refused.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        _script().main(["--gradbench", str(tmp_path), "--runs", "0"])
    assert refused.value.code == 2 and "--runs must be >= 1" in capsys.readouterr().err


def test_a_golden_tool_past_its_time_gives_no_times_instead_of_stopping_the_study(tmp_path):
    slow = tmp_path / "golden"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(slow.stat().st_mode | stat.S_IEXEC)
    assert _script().golden_times(slow, "gradient", {"x": [1.0]}, timeout=1) == []


def test_steady_time_leaves_the_cold_call_out():
    steady = _script().steady
    assert steady([900, 10, 30, 20]) == 20 and steady([7]) == 7 and steady([]) is None


def test_report_table_counts_verdicts_and_shows_each_methods_derivative_over_golden():
    from diffkit.report.sections import _golden_table

    rows = [("lse", "n=3", "primal", "reverse", True, 2.0, ""), ("lse", "n=3", "gradient", "reverse", True, 6.0, ""),
            ("lse", "n=3", "gradient", "numba", False, 1.5, "mismatch"),
            ("ba", "ba1", "jacobian", "compiled", None, None, "MethodUnavailable: cannot\nsecond line")]
    frame = pd.DataFrame(rows, columns=["eval", "description", "function", "method", "valid",
                                        "diffkit_over_golden", "error"])
    table = _golden_table(frame).frame.set_index("eval")
    assert table.loc["lse", "valid / judged"] == "2 / 3"
    assert table.loc["lse", "diffkit tape / golden"] == "6" and table.loc["lse", "fused replay / golden"] == "1.5"
    assert table.loc["ba", "valid / judged"] == "0 / 0"
    assert table.loc["ba", "compiled replay / golden"].startswith("failed")


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in golden tool is a shell script")
def test_an_eval_that_hangs_is_stopped_and_the_evaluations_answered_so_far_are_kept(tmp_path):
    import time

    script = _script()
    checkout = _checkout(tmp_path)
    run = checkout / "python/gradbench/gradbench/evals/lse/run.py"
    program = run.read_text()
    run.write_text(program.replace("    got = response", "    __import__('time').sleep(60)\n    got = response"))
    assert run.read_text() != program
    # and a child of the eval that holds its pipes (as the symbolic method's budgeted build holds the tool's)
    program = run.read_text()
    run.write_text(program.replace("import json, math, sys", "import json, math, subprocess, sys\n"
                                   "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])"))
    start = time.perf_counter()
    rows = script.run_eval(checkout, sys.executable, "lse", [], "reverse", runs=1, timeout=8)
    assert time.perf_counter() - start < 40
    assert [(r["function"], r["valid"]) for r in rows] == [("primal", None)] and rows[0]["golden_ns"] == 2000.0
