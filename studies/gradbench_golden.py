"""GradBench's own evals against diffkit's tool: validity by the suite's golden C++ tool, and time against it.

GradBench (github.com/gradbench/gradbench) validates a tool by running each eval's own Python program, which
sends the tool JSON messages and compares every output with the *golden* tool's (``tools/manual``, hand-written
C++ derivatives).  This script does what the suite's ``gradbench run`` does, without Docker or the Rust CLI: it
starts an eval's program and ``python -m diffkit.gradbench --method M``, passes each message and response
between them, and reads the eval's verdict (its ``analysis`` message) on every evaluation.  After each
``evaluate`` it runs the golden tool on the same input, so the two times are taken side by side: the ratio
is diffkit's median ``evaluate`` time over the golden tool's (the first, cold call of each left out).

Needs a checkout of the suite (``--gradbench DIR``), a C++17 compiler and nlohmann's JSON header
(``apt-get install nlohmann-json3-dev``; the suite's Makefile would download it), and an interpreter with
the suite's Python package's needs (Python >= 3.11, ``pip install pydantic dataclasses-json scipy``)::

    git clone https://github.com/gradbench/gradbench /tmp/gradbench
    python studies/gradbench_golden.py --gradbench /tmp/gradbench              # small sizes, ~10 min
    python studies/gradbench_golden.py --gradbench /tmp/gradbench --methods reverse numba --evals lse det

It writes ``reports/data/gradbench_golden.csv`` (``--out``) after every eval, so a run cut short keeps what
it measured, and prints one line per evaluation.  An eval whose data the checkout lacks (lstm's
``lstm_full.txt`` is large) is listed as skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's diffkit, run from anywhere

from diffkit.gradbench.bench import write_csv  # noqa: E402
from diffkit.gradbench.engines import METHOD_CHOICES  # noqa: E402

COLUMNS = ["eval", "description", "function", "method", "valid", "diffkit_ns", "golden_ns", "diffkit_over_golden",
           "error"]
# Small sizes of each eval (its own options); --full runs the eval's defaults.
QUICK = {"hello": [], "lse": ["-n", "2500", "20000"], "llsq": ["-n", "16", "1024", "-m", "128"],
         "det": ["-l", "5", "7", "9"], "ode": ["-n", "1000", "-s", "1", "10"],
         "gmm": ["-d", "2", "10", "64", "-k", "5", "10"], "kmeans": ["-k", "10", "100", "-n", "1000", "-d", "8", "16"],
         "lstm": ["-l", "2", "-c", "1024"], "ba": ["--min", "1", "--max", "3"],
         "ht": ["--min", "1", "--max", "4", "--model", "small"], "particle": [], "saddle": []}
DATA = {"lstm": "evals/lstm/data/lstm_full.txt", "ba": "evals/ba/data", "ht": "evals/ht/data"}
GOLDEN = ("hello", "lse", "llsq", "det", "ode", "gmm", "kmeans", "lstm", "ba", "ht")  # tools/manual's programs


def build_golden(checkout: Path, module: str) -> Path | None:
    """The golden tool's program for ``module``, built with the suite's Makefile if it is not there yet."""
    if module not in GOLDEN:
        return None  # (particle and saddle have a fixed expected answer in the eval itself)
    program = checkout / "tools/manual/bin" / module
    if program.exists():
        return program
    shim = Path(tempfile.mkdtemp())  # the sources include "json.hpp": the system's nlohmann header, if any
    (shim / "json.hpp").write_text("#include <nlohmann/json.hpp>\n")
    done = subprocess.run(["make", "-C", str(checkout / "tools/manual"), f"bin/{module}", f"CXX=c++ -I{shim}"],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"could not build the golden tool's {module} (make -C tools/manual bin/{module}):\n"
                 f"{done.stderr[-2000:]}\nIt needs a C++17 compiler and nlohmann's json.hpp "
                 "(apt-get install nlohmann-json3-dev).")
    return program


def golden_times(program: Path, function: str, payload: object, timeout: float | None = None) -> list[int]:
    """The golden tool's ``evaluate`` nanoseconds on ``payload`` (its own loop: min_runs, min_seconds); none
    when it fails or runs past ``timeout`` seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as tmp:
        json.dump(payload, tmp)
        tmp.flush()
        try:
            done = subprocess.run([str(program), tmp.name, function], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return []
    if done.returncode:
        return []
    timings = [json.loads(line) for line in done.stdout.splitlines()[1:] if line.strip()]
    return [t["nanoseconds"] for t in timings if t.get("name") == "evaluate"]


def steady(ns: list[int]) -> float | None:
    """The median of the calls after the first (the cold one), or of the one call there is."""
    return float(statistics.median(ns[1:] if len(ns) > 1 else ns)) if ns else None


def run_eval(checkout: Path, python: str, module: str, options: list[str], method: str, runs: int,
             timeout: float = 1800.0) -> list[dict]:
    """One eval program against diffkit's tool: a row per evaluation, with the eval's verdict.  Past
    ``timeout`` seconds both programs are stopped; the evaluations answered so far are kept."""
    timing = ["--min-runs", str(runs), "--min-seconds", "0"] if module != "hello" else []
    env = {**os.environ, "PYTHONPATH": str(checkout / "python/gradbench")}
    # each program leads a process group of its own: a stop kills its children too (the symbolic method's
    # budgeted build is a child that holds the tool's pipes, and would keep the relay waiting on them)
    evaluation = subprocess.Popen([python, "-m", f"gradbench.evals.{module}.run", *options, *timing],
                                  cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
    tool = subprocess.Popen([sys.executable, "-m", "diffkit.gradbench", "--method", method], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    golden = build_golden(checkout, module)
    rows: dict[int, dict] = {}

    def stop() -> None:
        print(f"{module}, method {method}: stopped after {timeout:g} s (--timeout)", file=sys.stderr)
        for process in (evaluation, tool):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:  # (already gone)
                pass
    watchdog = threading.Timer(timeout, stop)
    watchdog.start()
    try:
        for line in evaluation.stdout:
            message = json.loads(line)
            tool.stdin.write(json.dumps(message) + "\n")
            tool.stdin.flush()
            if message["kind"] == "end":
                break
            response_line = tool.stdout.readline()
            if not response_line:
                raise RuntimeError(f"diffkit's tool stopped answering during {module} (method {method})")
            response = json.loads(response_line)
            if message["kind"] == "evaluate":
                row = rows[message["id"]] = {
                    "eval": module, "description": message.get("description", ""), "function": message["function"],
                    "method": method, "valid": None, "diffkit_ns": None, "golden_ns": None,
                    "diffkit_over_golden": None, "error": response.get("error", "")}
                if response.get("success"):
                    row["diffkit_ns"] = steady([t["nanoseconds"] for t in response.get("timings", [])
                                                if t["name"] == "evaluate"])
                    if golden is not None:
                        row["golden_ns"] = steady(golden_times(golden, message["function"], message["input"],
                                                               timeout))
                    if row["diffkit_ns"] and row["golden_ns"]:
                        row["diffkit_over_golden"] = row["diffkit_ns"] / row["golden_ns"]
            elif message["kind"] == "analysis" and message["of"] in rows:
                rows[message["of"]].update(valid=message["valid"], error=message.get("error", "")[-300:])
            evaluation.stdin.write(response_line)
            evaluation.stdin.flush()
    except (BrokenPipeError, json.JSONDecodeError, RuntimeError) as err:  # the evaluations so far are kept
        if watchdog.is_alive():  # (not the watchdog's stop, which says nothing)
            print(f"{module}, method {method}: stopped early: {err}", file=sys.stderr)
    finally:
        watchdog.cancel()
        for process in (evaluation, tool):
            if process.stdin and not process.stdin.closed:
                process.stdin.close()
            process.wait(timeout=60)
    return list(rows.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gradbench", type=Path, required=True, help="a checkout of github.com/gradbench/gradbench")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs the evals (Python >= 3.11 with pydantic; default: this one)")
    parser.add_argument("--methods", nargs="+", default=["reverse", "compiled", "numba"], choices=METHOD_CHOICES,
                        metavar="METHOD", help=f"any of: {', '.join(METHOD_CHOICES)}")
    parser.add_argument("--evals", nargs="+", default=list(QUICK), choices=list(QUICK), metavar="EVAL")
    parser.add_argument("--full", action="store_true", help="the evals' own default sizes (hours), not the small ones")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per evaluation, for both tools")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds per eval and method; past it the evaluations answered so far are kept")
    parser.add_argument("--out", type=Path, default=ROOT / "reports/data/gradbench_golden.csv")
    args = parser.parse_args(argv)
    if args.runs < 1 or not args.timeout > 0:
        parser.error(f"--runs must be >= 1 and --timeout > 0; got --runs {args.runs} --timeout {args.timeout}")
    checkout = args.gradbench.resolve()
    if not (checkout / "python/gradbench/gradbench/eval.py").exists():
        parser.error(f"--gradbench {checkout}: not a GradBench checkout (no python/gradbench/gradbench/eval.py); "
                     "git clone https://github.com/gradbench/gradbench")
    probe = subprocess.run([args.python, "-c", "import gradbench.eval"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(checkout / "python/gradbench")})
    if probe.returncode:
        parser.error(f"--python {args.python} cannot import the suite's gradbench.eval (Python >= 3.11 with "
                     "pydantic and numpy; pip install pydantic dataclasses-json scipy): "
                     + probe.stderr.strip().splitlines()[-1])
    rows: list[dict] = []
    for module in args.evals:
        data = DATA.get(module)
        if data and not (checkout / data).exists():
            print(f"{module}: skipped, the checkout has no {data}")
            continue
        for method in args.methods:
            found = run_eval(checkout, args.python, module, [] if args.full else QUICK[module], method, args.runs,
                             args.timeout)
            rows.extend(found)
            write_csv(pd.DataFrame(rows, columns=COLUMNS), args.out)  # whole or not at all, after each eval
            for row in found:
                ratio = row["diffkit_over_golden"]
                verdict = {True: "valid", False: "INVALID", None: "not run"}[row["valid"]]
                print(f"{module:8s} {row['description'] or '':28s} {row['function']:9s} {method:9s} {verdict:8s} "
                      + (f"{ratio:9.2f}x golden" if ratio else (row["error"] or "").splitlines()[0][:90]
                         if row["error"] else ""), flush=True)
    invalid = [r for r in rows if r["valid"] is False]
    print(f"{len(rows)} evaluations, {len(invalid)} invalid; {args.out}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
