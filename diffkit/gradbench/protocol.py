"""The GradBench protocol, tool side: one JSON message in, one JSON response out, each with the same ``id``.

Messages (from the eval) and responses (from this tool):

==========  ==============================================  ==================================================
kind        message fields                                  response fields
==========  ==============================================  ==================================================
start       ``eval`` (optional)                             ``tool``, ``config`` (method, diffkit version)
define      ``module``                                      ``success``; ``error`` when it is false
evaluate    ``module``, ``function``, ``input``             ``success``, ``output``, ``timings``; or ``error``
anything    (e.g. ``analysis``)                             ``id`` only
==========  ==============================================  ==================================================

Timings of one ``evaluate``, in nanoseconds, in this order:

* ``prepare``: unpacking the input and preparing the method (once);
* ``compile``: (method ``compiled`` only) the seconds ``dk.compile`` spent
  recording the tape and generating its replay, taken out of ``warmup``;
* ``warmup``: the first call, timed apart: it holds jax's tracing and
  compilation, the symbolic method's build and numpy's first-touch costs;
* ``evaluate``: one entry per timed call, at least ``input["min_runs"]`` calls
  and until they add up to ``input["min_seconds"]`` (1 and 0 when absent,
  as in ``hello``).  The output is the last call's; JSON encoding is not timed.

A failure in any message (unknown module or function, bad input, a method
that is not available) becomes ``success: false`` with an ``error`` naming
what was wrong; the tool keeps serving.

>>> tool = Tool("reverse")
>>> tool.handle({"id": 0, "kind": "start", "eval": "hello"})["tool"]
'diffkit'
>>> tool.handle({"id": 1, "kind": "define", "module": "hello"})
{'id': 1, 'success': True}
>>> r = tool.handle({"id": 2, "kind": "evaluate", "module": "hello", "function": "double", "input": 3.0})
>>> r["output"], [t["name"] for t in r["timings"]]
(6.0, ['prepare', 'warmup', 'evaluate'])
"""
from __future__ import annotations

import importlib
import json
import time
from typing import Any, Iterable, TextIO

import diffkit as dk

from .engines import MethodUnavailable, engine_for

__all__ = ["Tool", "EVALS", "NESTED", "FORMER_NAMES", "load_eval", "serve", "timed_runs"]

EVALS = ("hello", "lse", "llsq", "det", "ode", "gmm", "kmeans", "lstm", "ba", "ht", "particle", "saddle")
NESTED = ("particle", "saddle")  # gradient descent over gradients: four functions (ff, fr, rf, rr), no primal
# The names earlier GradBench releases gave these evals (the same inputs and outputs), so that an older harness
# finds them too.
FORMER_NAMES = {"logsumexp": "lse", "llsq_obj": "llsq", "det_by_minor": "det", "an_ode": "ode"}


def load_eval(module: str):
    """The eval module ``diffkit.gradbench.evals.<module>``; ValueError naming the evals for another name.

    >>> load_eval("logsumexp") is load_eval("lse")  # a former name
    True
    """
    name = FORMER_NAMES.get(module, module) if isinstance(module, str) else module
    if name not in EVALS:
        raise ValueError(f"no eval {module!r} in diffkit's GradBench tool; it implements: {', '.join(EVALS)} "
                         f"(and, by their former names, {', '.join(FORMER_NAMES)})")
    return importlib.import_module(f"diffkit.gradbench.evals.{name}")


def timed_runs(run, min_runs: int = 1, min_seconds: float = 0.0) -> tuple[Any, int, list[int]]:
    """One warm-up call, then calls until both ``min_runs`` and ``min_seconds`` are reached.

    Returns ``(last output, warm-up ns, [ns of each timed call])``.
    """
    start = time.perf_counter_ns()
    out = run()
    warmup = time.perf_counter_ns() - start
    times: list[int] = []
    total = 0
    while len(times) < min_runs or total < min_seconds * 1e9:
        start = time.perf_counter_ns()
        out = run()
        times.append(time.perf_counter_ns() - start)
        total += times[-1]
    return out, warmup, times


def _runs(input: Any) -> tuple[int, float]:
    if not isinstance(input, dict):
        return 1, 0.0
    min_runs, min_seconds = input.get("min_runs", 1), input.get("min_seconds", 0.0)
    if not isinstance(min_runs, int) or min_runs < 1:
        raise ValueError(f"input.min_runs must be an integer >= 1; got {min_runs!r}")
    if not isinstance(min_seconds, (int, float)) or min_seconds < 0:
        raise ValueError(f"input.min_seconds must be a number >= 0; got {min_seconds!r}")
    return min_runs, float(min_seconds)


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


class Tool:
    """The protocol state of one session: the method, and the modules defined so far."""

    def __init__(self, method: str):
        self.method = method
        self.defined: set[str] = set()
        try:
            self.engine, self.unavailable = engine_for(method), None
        except MethodUnavailable as err:
            self.engine, self.unavailable = None, err

    def handle(self, message: Any) -> dict:
        if not isinstance(message, dict) or "id" not in message:
            raise ValueError(f"a message must be a JSON object with an 'id'; got {str(message)[:80]!r}")
        response = {"id": message["id"]}
        kind = message.get("kind")
        if kind == "start":
            response.update(tool="diffkit", config={"method": self.method, "diffkit": dk.__version__})
        elif kind == "define":
            response.update(self._define(message.get("module")))
        elif kind == "evaluate":
            response.update(self._evaluate(message))
        return response

    def _define(self, module: Any) -> dict:
        try:
            load_eval(module)
            if self.unavailable is not None:
                raise self.unavailable
        except (ValueError, MethodUnavailable, ImportError) as err:
            return {"success": False, "error": _error(err)}
        self.defined.add(module)
        return {"success": True}

    def _evaluate(self, message: dict) -> dict:
        try:
            module, function = message.get("module"), message.get("function")
            evaluation = load_eval(module)
            if self.unavailable is not None:
                raise self.unavailable
            if function not in evaluation.FUNCTIONS:
                raise ValueError(f"eval {module!r} has no function {function!r}; "
                                 f"its functions: {', '.join(evaluation.FUNCTIONS)}")
            input = message.get("input")
            min_runs, min_seconds = _runs(input)
            start = time.perf_counter_ns()
            job = evaluation.FUNCTIONS[function](input, self.engine)
            prepare = time.perf_counter_ns() - start
            compiled_before = self.engine.compile_ns
            out, warmup, times = timed_runs(job.run, min_runs, min_seconds)
            compile_ns = self.engine.compile_ns - compiled_before
            output = job.encode(out)
            json.dumps(output, allow_nan=False)  # a NaN or inf is no valid JSON: say so instead
        except Exception as err:  # noqa: BLE001  (every failure is answered, and the tool keeps serving)
            return {"success": False, "error": _error(err)}
        timings = [{"name": "prepare", "nanoseconds": prepare}]
        if compile_ns:  # (a re-recording during the timed calls stays in their times: it is what they cost)
            timings.append({"name": "compile", "nanoseconds": compile_ns})
        timings.append({"name": "warmup", "nanoseconds": max(0, warmup - compile_ns)})
        timings += [{"name": "evaluate", "nanoseconds": ns} for ns in times]
        return {"success": True, "output": output, "timings": timings}


def serve(lines: Iterable[str], out: TextIO, method: str, err: TextIO | None = None) -> int:
    """Answer each JSON line of ``lines`` on ``out``; a line that is no message is reported on ``err``; a closed
    ``out`` (the eval has exited) ends the session.

    Returns the number of lines that could not be answered (0 in a clean session).
    """
    tool, bad = Tool(method), 0
    for line in lines:
        if not line.strip():
            continue
        try:
            response = tool.handle(json.loads(line))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            bad += 1
            if err is not None:
                print(f"diffkit gradbench: cannot answer {line.strip()[:80]!r}: {exc}", file=err, flush=True)
            continue
        try:
            out.write(json.dumps(response) + "\n")
            out.flush()
        except BrokenPipeError:  # the eval has gone (it stops after a failed define): nobody is listening
            break
    return bad
