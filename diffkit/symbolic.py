"""``method="symbolic"``: SymPy differentiates the same function, with swell metrics and budgets that never hang.

The pipeline, each stage timed in ``cost.counters`` (``build_s`` ...
``evaluate_s``):

1. **build**: run f on an object array of SymPy symbols (:mod:`diffkit.sympy_backend`);
2. **diff**: ``strategy="naive"`` calls ``sympy.diff(f, theta_j)`` for every j
   on the expression tree (the textbook route, where expressions swell);
   ``strategy="dag"`` (default) walks f's expression DAG once, asks
   ``sympy.diff`` only for each node's *local* partials (d tanh(u)/du ...) and
   accumulates them from the output back to theta, sharing every
   subexpression.  That is symbolic differentiation interleaved with common
   subexpression elimination, which is the best honest shot SymPy has (and
   exactly the relation of AD to symbolic differentiation in Baydin et al.
   2018).  The local partials come from SymPy, not from
   :mod:`diffkit.rules`, so both strategies cross-check the tape's rules;
3. **simplify**: ``"none"``, ``"cse"`` (``sympy.cse``; the DAG strategy's
   output is already in CSE form) or ``"simplify"`` (``sympy.simplify`` per
   component, or per DAG assignment);
4. **compile**: print the program as Python source with SymPy's NumPy printer
   (and, with ``mp_digits``, its mpmath printer) and compile it: this is what
   ``lambdify`` does, with our own variable layout;
5. **evaluate** at theta.

The compiled gradient is cached per (function object, theta shape, options):
a Problem's ``fn`` closes over its data, so a new theta costs stage 5 only
(``counters["cached"] == 1``).  Sizes: ``*_ops`` count operations and
``*_nodes`` nodes of the expression written out as a tree (n-ary Add/Mul
count n - 1 ops, as ``sympy.count_ops``, computed in time linear in the DAG);
``*_dag_ops`` count each distinct subexpression once.  ``swell`` is
``grad_ops / f_ops`` (trees: what the naive strategy really builds; for the
DAG strategy, the size its program would have if written out) and
``swell_dag`` is ``grad_dag_ops / f_dag_ops`` (shared sizes: what the DAG
strategy builds).

Budgets: ``max_seconds`` bounds the whole cold pipeline and ``max_ops`` the
gradient's tree size.  With ``isolate=True`` (default, Linux/POSIX) the
pipeline runs in a forked child process that streams its progress to the
parent as JSON lines over a pipe; at the deadline the parent kills it
(SIGKILL), so even a single long SymPy call stops within a fraction of a
second, and raises :class:`BudgetExceeded` with the stage, progress and sizes
reached.  Fork means f needs no pickling; the child sends back only JSON and
the generated source, which the parent compiles (trusted: printed by SymPy
from the child's own expression, never from user strings).
``isolate=False`` runs in-process and checks the budget between steps only;
so does ``isolate=True`` once JAX or PyTorch is imported, because their
native thread pools make ``fork`` unsafe (a child could deadlock on a lock
held by one of their threads).

``engine="symengine"`` (optional, ``pip install symengine``, the ``fast``
extra) runs the naive strategy's diff and CSE in SymEngine, SymPy's C++
core, and converts the CSE'd result back to SymPy for printing; without
SymEngine installed it is refused with a hint, and everything else works.

>>> import numpy as np, diffkit as dk
>>> r = dk.gradient(lambda t: (t[0] + t[1]) * t[2], np.array([-2.0, 5.0, -4.0]), method="symbolic")
>>> r.grad.tolist(), r.cost.counters["cached"]
([-4.0, -4.0, 3.0], 0)
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import sympy

from .methods import MethodOutput, check_scalar, guard, register_method, resolve, user_function
from .sympy_backend import exactify, symbols_like, to_sympy
from .symbolic_program import Program, dag_gradient, expression_sizes, load_source, program_source
from .baydin import baydin_table1, growth, logistic_map  # noqa: F401  (public here too: dk.symbolic.baydin_table1)

__all__ = ["BudgetExceeded", "symbolic_gradient", "compile_gradient", "CompiledGradient", "clear_cache",
           "baydin_table1",
           "STRATEGIES", "SIMPLIFY_LEVELS", "DEFAULT_MAX_SECONDS", "DEFAULT_MAX_OPS"]

STRATEGIES = ("dag", "naive")
SIMPLIFY_LEVELS = ("none", "cse", "simplify")
# 120 s: twice the 60 s a scaling study allows one problem; beyond it a sweep should move on.
DEFAULT_MAX_SECONDS = 120.0
# 2 M tree ops: the naive P = 90 MLP gradient has 1.31 M and already takes ~150 s to lambdify without CSE.
DEFAULT_MAX_OPS = 2_000_000
_PROGRESS_EVERY_S = 0.2  # how often the child reports progress (enough for a useful BudgetExceeded)
_clock = time.perf_counter  # the budget's clock (a seam: tests inject a fake clock instead of timing real runs)


class BudgetExceeded(RuntimeError):
    """A symbolic stage ran out of time or size: says which stage, how far it got, and the sizes reached."""

    def __init__(self, stage: str, reason: str, *, done: int = 0, total: int = 0, sizes: dict | None = None,
                 elapsed: float = 0.0):
        self.stage, self.reason, self.done, self.total = stage, reason, done, total
        self.sizes, self.elapsed = dict(sizes or {}), elapsed
        progress = f"{done}/{total} done" if total else "started"
        shown = ", ".join(f"{k}={v}" for k, v in self.sizes.items()) or "none measured yet"
        super().__init__(f"symbolic gradient stopped in stage {stage!r} after {elapsed:.1f} s: {reason}; "
                         f"progress {progress}; sizes reached: {shown}. Raise max_seconds/max_ops, try "
                         f"strategy='dag' and simplify='cse', or use method='reverse'.")

    def to_json(self) -> dict:
        return dict(stage=self.stage, reason=self.reason, done=self.done, total=self.total, sizes=self.sizes,
                    elapsed=self.elapsed)


# --- stages ----------------------------------------------------------------------------------

def _build(fn: Callable, shape: tuple, exact: bool) -> tuple[list, sympy.Expr]:
    theta = symbols_like(np.empty(shape))
    symbols = list(theta.flat)  # taken before f runs: an f that writes to its argument gets a copy
    out = fn(theta.copy())
    check_scalar(out)
    expr = to_sympy(np.reshape(np.asarray(out, dtype=object), ())[()])
    return symbols, (exactify(expr) if exact else expr)


def _naive_gradient(f: sympy.Expr, symbols: list, report: Callable, max_ops: int) -> Program:
    grads, memo, total_ops = [], {}, 0
    for j, s in enumerate(symbols):
        grads.append(sympy.diff(f, s))
        total_ops += expression_sizes([grads[-1]], memo)["ops"]
        report("diff", j + 1, len(symbols), {"grad_ops": total_ops})
        if total_ops > max_ops:
            raise BudgetExceeded("diff", f"gradient grew past max_ops={max_ops}", done=j + 1, total=len(symbols),
                                 sizes={"grad_ops": total_ops})
    return Program(symbols, [], f, grads)


def _symengine():
    try:
        import symengine
    except ImportError:
        return None
    return symengine


ENGINES = ("sympy", "symengine")


def _naive_symengine(f: sympy.Expr, symbols: list, report: Callable, max_ops: int, simplify: str) -> Program:
    """The naive strategy in SymEngine (SymPy's C++ core): diff and CSE there, then back to SymPy to print.

    SymEngine leaves d|x|, d max, d sign unevaluated, so a function with those is differentiated by SymPy.
    """
    se = _symengine()
    F, S = se.sympify(f), [se.sympify(s) for s in symbols]
    kinks = f.has(sympy.Abs, sympy.Max, sympy.Min, sympy.sign, sympy.Heaviside)
    grads, memo, total_ops = [], {}, 0
    for j, s in enumerate(S):
        grads.append(se.sympify(sympy.diff(f, symbols[j])) if kinks else F.diff(s))
        total_ops += expression_sizes([grads[-1]], memo)["ops"]
        report("diff", j + 1, len(S), {"grad_ops": total_ops})
        if total_ops > max_ops:
            raise BudgetExceeded("diff", f"gradient grew past max_ops={max_ops}", done=j + 1, total=len(S),
                                 sizes={"grad_ops": total_ops})
    plain = [sympy.Symbol(str(s)) for s in symbols]  # SymEngine symbols carry no assumptions

    def back(e):
        with sympy.evaluate(False):  # already canonical in SymEngine: skip SymPy's re-evaluation (3x faster)
            return sympy.sympify(e)
    if simplify != "cse":
        return Program(plain, [], f.xreplace(dict(zip(symbols, plain))), [back(g) for g in grads])
    repl, reduced = se.cse(grads)
    return Program(plain, [(back(t), back(e)) for t, e in repl], f.xreplace(dict(zip(symbols, plain))),
                   [back(g) for g in reduced])


def _cse(program: Program) -> Program:
    repl, reduced = sympy.cse(program.assigned() + [program.value] + program.grad,
                              symbols=sympy.numbered_symbols("c", real=True), list=True)
    k = len(program.assignments)
    return Program(program.symbols, list(zip([t for t, _ in program.assignments], reduced[:k])) + repl,
                   reduced[k], reduced[k + 1:])


def _simplify(program: Program, level: str, report: Callable) -> Program:
    if level == "cse" and not program.assignments:
        return _cse(program)
    if level == "simplify":
        total = len(program.assignments) + len(program.grad)
        assigned = []
        for i, (t, e) in enumerate(program.assignments):
            assigned.append((t, sympy.simplify(e)))
            report("simplify", i + 1, total, {})
        grads = []
        for j, g in enumerate(program.grad):
            grads.append(sympy.simplify(g))
            report("simplify", len(assigned) + j + 1, total, {})
        return Program(program.symbols, assigned, program.value, grads)
    return program  # "none", or "cse" on the DAG strategy's program, which is already in CSE form


def _pipeline(fn: Callable, shape: tuple, opts: dict, report: Callable) -> dict:
    """Stages 1-4; returns JSON-able counters and the generated source."""
    counters: dict = {}
    t0 = time.perf_counter()
    symbols, f = _build(fn, shape, opts["exact"])
    f_sizes = expression_sizes([f])
    counters.update(build_s=time.perf_counter() - t0, f_ops=f_sizes["ops"], f_nodes=f_sizes["nodes"],
                    f_dag_ops=f_sizes["dag_ops"])
    report("build", 1, 1, {"f_ops": f_sizes["ops"]})
    report("diff", 0, len(symbols), {})
    t1 = time.perf_counter()
    if opts["strategy"] == "naive" and opts["engine"] == "symengine":
        program = _naive_symengine(f, symbols, report, opts["max_ops"], opts["simplify"])
    elif opts["strategy"] == "naive":
        program = _naive_gradient(f, symbols, report, opts["max_ops"])
    else:
        program = dag_gradient(f, symbols, report)
    g_sizes = program.sizes()
    counters.update(diff_s=time.perf_counter() - t1, grad_ops=g_sizes["ops"], grad_nodes=g_sizes["nodes"],
                    grad_dag_ops=g_sizes["dag_ops"], swell=g_sizes["ops"] / max(f_sizes["ops"], 1),
                    swell_dag=g_sizes["dag_ops"] / max(f_sizes["dag_ops"], 1))
    report("diff", 1, 1, {"grad_ops": g_sizes["ops"]})
    if opts["strategy"] == "dag" and g_sizes["dag_ops"] > opts["max_ops"]:
        raise BudgetExceeded("diff", f"shared gradient program grew past max_ops={opts['max_ops']}",
                             sizes={"grad_dag_ops": g_sizes["dag_ops"]})
    report("simplify", 0, 1, {})
    t2 = time.perf_counter()
    if not (opts["engine"] == "symengine" and opts["simplify"] == "cse"):  # SymEngine did its own CSE
        program = _simplify(program, opts["simplify"], report)
    s_sizes = program.sizes()
    counters.update(simplify_s=time.perf_counter() - t2, cse_ops=s_sizes["dag_ops"] if program.assignments else 0,
                    cse_temporaries=len(program.assignments), final_ops=s_sizes["assigned_ops"])
    report("compile", 0, 1, {"final_ops": s_sizes["assigned_ops"]})
    t3 = time.perf_counter()
    sources = {"numpy": program_source(program, "numpy", report)}
    if opts["mp_digits"]:
        sources["mpmath"] = program_source(program, "mpmath", report)
    counters["compile_s"] = time.perf_counter() - t3
    return {"counters": counters, "sources": sources}


# --- running the pipeline under a budget -----------------------------------------------------

def _error_type(module: str, qualname: str) -> type | None:
    """The exception class the child raised, found in this process (fork: the child's classes are ours too).

    Walks the subclasses of Exception, so that a class defined inside a function is found as well.
    """
    todo, seen = [Exception], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls.__module__ == module and cls.__qualname__ == qualname:
            return cls
        todo.extend(cls.__subclasses__())
    return None


def _reraise(error: dict):
    """Raise the child's error as the user's own exception type (falling back to RuntimeError, named)."""
    cls = _error_type(error.get("module", "builtins"), error["error"])
    try:
        err = cls(error["message"]) if cls is not None else None
    except Exception:  # noqa: BLE001  (a class whose constructor wants other arguments)
        err = None
    if err is not None:
        raise err
    raise RuntimeError(f"{error['error']}: {error['message']} (raised while building the symbolic gradient)")


class _Progress:
    """Keeps the latest progress; forwards it (throttled) to ``sink``; optionally enforces a soft deadline."""

    def __init__(self, sink: Callable[[dict], None], deadline: float | None = None):
        self.sink, self.deadline, self.last_sent = sink, deadline, 0.0
        self.state = {"stage": "build", "done": 0, "total": 0, "sizes": {}}

    def __call__(self, stage: str, done: int, total: int, sizes: dict) -> None:
        changed = stage != self.state["stage"]
        self.state = {"stage": stage, "done": done, "total": total, "sizes": {**self.state["sizes"], **sizes}}
        now = _clock()
        if changed or now - self.last_sent > _PROGRESS_EVERY_S or done == total:
            self.last_sent = now
            self.sink({"progress": self.state})
        if self.deadline is not None and now > self.deadline:
            raise BudgetExceeded(stage, "max_seconds reached (soft check, isolate=False)", done=done, total=total,
                                 sizes=self.state["sizes"])


def _in_process(fn, shape, opts) -> dict:
    start = _clock()
    progress = _Progress(lambda msg: None, start + opts["max_seconds"])
    try:
        return _pipeline(fn, shape, opts, progress)
    except BudgetExceeded as err:
        err.elapsed = _clock() - start
        raise BudgetExceeded(err.stage, err.reason, done=err.done, total=err.total, sizes=err.sizes,
                             elapsed=err.elapsed) from None


def _child(write_fd: int, fn, shape, opts) -> None:
    with os.fdopen(write_fd, "w") as pipe:
        def send(msg: dict) -> None:
            pipe.write(json.dumps(msg) + "\n")
            pipe.flush()
        try:
            send({"result": _pipeline(fn, shape, opts, _Progress(send))})
        except BudgetExceeded as err:
            send({"budget": err.to_json()})
        except BaseException as err:  # noqa: BLE001  (everything goes back to the parent, which re-raises)
            send({"error": type(err).__qualname__, "module": type(err).__module__, "message": str(err)})


def _threaded_runtime_loaded() -> bool:
    """Whether a library with native worker threads is loaded, which makes fork() unsafe."""
    return any(name in sys.modules for name in ("jax", "torch"))


def _isolated(fn, shape, opts) -> dict:
    read_fd, write_fd = os.pipe()
    start = _clock()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: run, report, and leave without running the parent's exit handlers
        os.close(read_fd)
        try:
            _bound_to_parent(parent, opts["max_seconds"])
            _child(write_fd, fn, shape, opts)
        finally:
            os._exit(0)
    os.close(write_fd)
    messages, buffer, state = [], b"", {"stage": "build", "done": 0, "total": 0, "sizes": {}}
    try:
        while True:
            left = start + opts["max_seconds"] - _clock()
            if left <= 0:
                raise BudgetExceeded(state["stage"], f"max_seconds={opts['max_seconds']} reached (child killed)",
                                     done=state["done"], total=state["total"], sizes=state["sizes"],
                                     elapsed=_clock() - start)
            if not select.select([read_fd], [], [], min(left, 1.0))[0]:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                msg = json.loads(line)
                state = msg.get("progress", state)
                messages.append(msg)
    finally:
        os.close(read_fd)
        _reap(pid)
    return _outcome(messages, state, _clock() - start)


GRACE_S = 5.0  # how long past its budget a child may outlive a parent that could not kill it


def _bound_to_parent(parent: int, max_seconds: float) -> None:
    """In the child: die with the parent, and at the budget even if no parent is left to enforce it.

    The parent kills the child at the deadline; a parent that is itself killed (a watchdog's SIGKILL, Ctrl-C
    twice) cannot, and SymPy ran on at 100% CPU for 26 minutes so once.  Linux delivers SIGKILL to the child when
    the parent dies (``PR_SET_PDEATHSIG``); everywhere, an alarm ends the child ``GRACE_S`` past its budget."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # (the default action of SIGALRM ends the process)
    signal.setitimer(signal.ITIMER_REAL, max_seconds + GRACE_S)
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # (1: PR_SET_PDEATHSIG)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(1)


def _reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _outcome(messages: list, state: dict, elapsed: float) -> dict:
    final = next((m for m in reversed(messages) if "progress" not in m), None)
    if final is None:
        raise RuntimeError(f"the symbolic child process died in stage {state['stage']!r} without a result "
                           f"(out of memory?); sizes reached: {state['sizes']}")
    if "budget" in final:
        b = final["budget"]
        raise BudgetExceeded(b["stage"], b["reason"], done=b["done"], total=b["total"], sizes=b["sizes"],
                             elapsed=elapsed)
    if "error" in final:
        _reraise(final)
    return final["result"]


# --- the compiled gradient, its cache, and the method -------------------------------------

@dataclass
class CompiledGradient:
    """A compiled symbolic gradient: ``cg(theta) -> (value, grad)`` in float64; ``cg.mp(theta, digits)``."""

    shape: tuple
    counters: dict
    run_numpy: Callable
    run_mpmath: Callable | None = None
    options: dict = field(default_factory=dict)

    def __call__(self, theta) -> tuple[float, np.ndarray]:
        value, grad = self.run_numpy(np.asarray(theta, dtype=float).ravel().tolist())
        return float(value), np.array(grad, dtype=float).reshape(self.shape)

    def mp(self, theta, digits: int = 50):
        """Value and gradient (object array of mpmath.mpf) at ``digits`` digits; theta's floats taken exactly."""
        import mpmath
        if self.run_mpmath is None:
            raise ValueError("this gradient was compiled without mpmath; pass mp_digits=<digits> to compile it")
        with mpmath.workdps(digits):
            value, grad = self.run_mpmath([mpmath.mpf(float(v)) for v in np.ravel(theta)])
            return +mpmath.mpf(value), np.array([+mpmath.mpf(g) for g in grad], dtype=object).reshape(self.shape)


_CACHE: dict = {}


def clear_cache() -> None:
    """Forget every compiled gradient (the next call is cold again)."""
    _CACHE.clear()


def _check_options(strategy: str, simplify: str, max_seconds: float, max_ops: int, engine: str = "sympy") -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid choices: {', '.join(ENGINES)}")
    if engine == "symengine" and strategy != "naive":
        raise ValueError("engine='symengine' speeds up strategy='naive' (the DAG strategy is SymPy-only)")
    if engine == "symengine" and _symengine() is None:
        raise ValueError("engine='symengine' needs SymEngine: pip install symengine (the 'fast' extra: "
                         "pip install diffkit[fast]), or use engine='sympy'")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid choices: {', '.join(STRATEGIES)}")
    if simplify not in SIMPLIFY_LEVELS:
        raise ValueError(f"unknown simplify level {simplify!r}; valid choices: {', '.join(SIMPLIFY_LEVELS)}")
    if not max_seconds > 0 or not max_ops > 0:
        raise ValueError(f"max_seconds and max_ops must be > 0; got {max_seconds} and {max_ops}")


def compile_gradient(f: Any, theta: Any = None, *, strategy: str = "dag", simplify: str = "cse",
                     exact: bool = False, max_seconds: float = DEFAULT_MAX_SECONDS, max_ops: int = DEFAULT_MAX_OPS,
                     isolate: bool = True, mp_digits: int | None = None, cache: bool = True,
                     engine: str = "sympy") -> CompiledGradient:
    """Stages 1-4 for ``f`` (a function or Problem) at theta's shape, cached per (fn, shape, options).

    >>> import numpy as np, diffkit as dk
    >>> from diffkit.symbolic import compile_gradient
    >>> cg = compile_gradient(lambda t: t[0] * t[1] ** 2, np.zeros(2), mp_digits=30)
    >>> cg([3.0, 2.0])
    (12.0, array([ 4., 12.]))
    >>> str(cg.mp([1.0, 3.0], 30)[1][0])
    '9.0'
    """
    fn, arr, _ = resolve(f, theta)
    fn = guard(user_function(fn))  # the user's function under diffkit's wrappers: its identity is the key
    _check_options(strategy, simplify, max_seconds, max_ops, engine)
    opts = dict(strategy=strategy, simplify=simplify, exact=bool(exact), max_seconds=float(max_seconds),
                max_ops=int(max_ops), mp_digits=mp_digits, engine=engine)
    key = (user_function(fn), arr.shape, strategy, simplify, bool(exact), bool(mp_digits), engine)
    if cache and key in _CACHE:
        return _CACHE[key]
    can_fork = isolate and hasattr(os, "fork") and not _threaded_runtime_loaded()
    result = (_isolated if can_fork else _in_process)(fn, arr.shape, opts)
    t0 = time.perf_counter()
    runs = {kind: load_source(src, kind) for kind, src in result["sources"].items()}
    counters = dict(result["counters"], load_s=time.perf_counter() - t0)
    counters["compile_s"] += counters["load_s"]
    compiled = CompiledGradient(arr.shape, counters, runs["numpy"], runs.get("mpmath"), opts)
    if cache:
        _CACHE[key] = compiled
    return compiled


def symbolic_gradient(f: Any, theta: Any = None, *, strategy: str = "naive", simplify: str = "none",
                      exact: bool = False) -> Program:
    """The gradient as SymPy expressions (in-process, no budget): a :class:`Program`.

    ``program.value`` is f, ``program.grad`` the derivatives (in terms of
    ``program.symbols`` and, for the DAG strategy, ``program.assignments``);
    ``program.at(theta)`` evaluates exactly (floats taken as exact rationals).

    >>> import diffkit as dk
    >>> prog = symbolic_gradient(dk.problems.seed_relu_chain(), exact=True)
    >>> prog.at([1, 2])[1]
    [80, 40]
    """
    fn, arr, _ = resolve(f, theta)
    _check_options(strategy, simplify, 1.0, 1)
    symbols, expr = _build(fn, arr.shape, exact)

    def ignore(*args):
        return None
    program = _naive_gradient(expr, symbols, ignore, float("inf")) if strategy == "naive" else \
        dag_gradient(expr, symbols, ignore)
    return _simplify(program, simplify, ignore)


@register_method("symbolic", "symbolic", "SymPy: build, diff (naive or shared DAG), CSE, compile; cached, budgeted")
def symbolic_method(f, theta, *, strategy: str = "dag", simplify: str = "cse", exact: bool = False,
                    max_seconds: float = DEFAULT_MAX_SECONDS, max_ops: int = DEFAULT_MAX_OPS, isolate: bool = True,
                    mp_digits: int | None = None, cache: bool = True, engine: str = "sympy") -> MethodOutput:
    """Symbolic gradient; see the module docstring for the options and counters."""
    key_count = len(_CACHE)
    compiled = compile_gradient(f, theta, strategy=strategy, simplify=simplify, exact=exact, max_seconds=max_seconds,
                                max_ops=max_ops, isolate=isolate, mp_digits=mp_digits, cache=cache, engine=engine)
    cached = cache and len(_CACHE) == key_count
    t0 = time.perf_counter()
    value, grad = compiled(theta)
    counters = dict(compiled.counters, evaluate_s=time.perf_counter() - t0, cached=int(cached))
    counters["cold_s"] = sum(counters[k] for k in ("build_s", "diff_s", "simplify_s", "compile_s", "evaluate_s"))
    if mp_digits:
        import mpmath
        _, grad_mp = compiled.mp(theta, mp_digits)
        worst = max(abs(mpmath.mpf(float(g)) - m) for g, m in zip(grad.flat, grad_mp.flat))
        scale = max(max(abs(m) for m in grad_mp.flat), mpmath.mpf(1e-300))
        counters["mp_agreement_digits"] = float(min(16, -mpmath.log10(worst / scale))) if worst else 16.0
    return MethodOutput(value, grad, counters, evaluations=0 if cached else 1)
