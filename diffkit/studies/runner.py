"""Running a study: cells one at a time, each timed honestly, refereed, and stored as it completes.

A gradient cell (problem instance x method x seed):

1. builds the problem, and gets its mpmath reference from the cache (memory, then the store) or computes it
   once: not above ``reference.max_p`` (the reason is recorded in the row instead);
2. under the cell's deadline (``study.budget_s``): ``timing.warmup`` untimed calls of ``dk.gradient`` (the
   first gives the accuracy), then the gradient and one forward evaluation of the same problem timed in
   pairs (:func:`~diffkit.studies.timing.paired_ratio`: gradient/forward per pair, median and interval,
   until within ``timing.ratio_target`` or ``timing.ratio_budget_s``), then one call under tracemalloc for
   the peak memory;
3. writes its row in one transaction; with ``timing.blocks`` > 1 the ratio gets its later blocks in later
   passes over the cells (:mod:`diffkit.studies.blocks`).

Statuses: ``ok``; ``failed`` (an exception, a NaN; the reason says which); ``budget`` (past the deadline or
``BudgetExceeded``); ``skipped`` (the method gave out at a smaller size, or is not in this tree).  ``ok``,
``failed`` and ``budget`` cells are final: a rerun skips them.  ``skipped`` cells are decided again on every
run, so a method that lands later runs without ``--fresh``.
"""
from __future__ import annotations

import os
import socket
import time
import traceback

import mpmath
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from ..accuracy import error
from ..api import gradient
from ..reference import Certification, Reference, reference
from . import env as _env
from .spec import Cell, Study, load_study, registered_methods
from .store import Store, dumps
from .blocks import block_rules, later_passes, ratio_columns
from .timing import CellBudget, deadline, paired_ratio, summary

__all__ = ["run_study", "results", "GRADIENT_COLUMNS", "FINAL"]

FINAL = ("ok", "failed", "budget")
GRADIENT_COLUMNS = [
    "study", "kind", "cell_id", "problem", "problem_name", "P", "method", "options", "seed", "status", "reason",
    "value", "digits", "median_digits", "max_abs", "max_rel", "worst_component", "wall_median_s", "wall_min_s",
    "wall_iqr_s", "cpu_median_s", "forward_median_s", "grad_over_forward", "evaluations", "peak_bytes",
    "counters", "repeats", "blas_threads", "env", "diffkit_version", "git_commit", "study_hash", "created_at",
    "expected", "grad", "mode", "size", "wall_first_s", "group", "worker", "host", "ratio_low", "ratio_high",
    "ratio_width", "ratio_floor", "ratio_reliable", "ratio_blocks", "ratio_note", "ratio_pairs"]
SERIAL = "serial"  # the ``worker`` of cells computed by a serial run (a distributed run records the Dask worker)
GRAD_KEPT_UP_TO = 64  # the row keeps the whole gradient (JSON) for problems this small: the seeds' examples


def _short_path(filename: str) -> str:
    """A source path from the package's parent (``diffkit/backends.py``), so results do not depend on the checkout."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.abspath(filename)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else os.path.basename(path)


def _budget_exceeded_types() -> tuple:
    try:
        from ..symbolic import BudgetExceeded
    except ImportError:
        return (CellBudget,)
    return (CellBudget, BudgetExceeded)


class _Context:
    """Per-run caches: the current problem, its reference, and each problem's gradient/forward floor (a later
    block of a ratio keeps the floor of its first).

    ``deadline`` is the cell deadline (a Dask worker runs cells off the main thread, so it passes its own).
    """

    deadline = staticmethod(deadline)

    def __init__(self, study: Study, store: Store):
        self.study, self.store = study, store
        self.problems, self.refs, self.floors = {}, {}, {}

    def problem(self, cell: Cell):
        key = cell.problem_key
        if key not in self.problems:
            self.problems = {key: cell.build()}  # keep one: problems at P = 1e6 hold big arrays
        return self.problems[key]

    def problem_or_reason(self, cell: Cell, row: dict):
        """(problem, None), or (None, the cell's failed record) when its options cannot build a problem."""
        try:
            return self.problem(cell), None
        except Exception as err:  # noqa: BLE001  (one bad cell is a result; the study goes on)
            return None, ("failed", [{**row, "status": "failed",
                                      "reason": f"could not build the problem: {type(err).__name__}: {err}"}])

    def reference(self, cell: Cell, problem):
        """(Reference or None, reason)."""
        key, opts = cell.problem_key, self.study.reference
        if key in self.refs:
            return self.refs[key]
        if problem.size > opts["max_p"]:
            found = (None, f"no reference: P={problem.size} > reference.max_p={opts['max_p']} (the mpmath "
                           f"reference costs about 1 ms per parameter)")
        else:
            found = self._stored_reference(key, problem) or self._compute_reference(key, problem)
        self.refs = {key: found}
        return found

    def _stored_reference(self, key, problem):
        stored = self.store.get_reference(key, self.study.reference["digits"])
        return None if stored is None else (decode_reference(stored, self.study.reference["digits"], problem), "")

    def _compute_reference(self, key, problem):
        ref, stored, reason = compute_reference(self.study, problem, self.deadline)
        if stored is not None:
            self.store.put_reference(key, problem.size, self.study.reference["digits"], *stored)
        return ref, reason

    def floor(self, cell: Cell, problem) -> float:
        """The lowest gradient/forward physics allows: 1, and for the tape on a large MLP the measured floor of
        its backward matrix products (:func:`diffkit.bench.measured_floor`; below P = 1e4 they are cheap
        beside Python's overhead, and 1 stands)."""
        if cell.method_name != "reverse" or problem.meta.get("layers") is None or problem.size < FLOOR_MIN_P:
            return 1.0
        key = cell.problem_key
        if key not in self.floors:
            from ..bench import measured_floor
            self.floors[key] = measured_floor(problem, lambda: problem.fn(problem.theta0), budget_s=0.5)[0]
        return self.floors[key]


FLOOR_MIN_P = 10_000


def compute_reference(study: Study, problem, within=deadline):
    """(Reference or None, its stored form (value, grad, certification) or None, reason).

    A reference is part of its cell: it keeps to the cell's budget (``within``, the deadline of the thread
    it runs in)."""
    opts = study.reference
    try:
        with within(study.budget_s):
            ref = reference(problem, digits=opts["digits"], certify=opts["certify"], directions=opts["directions"],
                            max_coordinates=opts["max_coordinates"])
    except Exception as err:  # noqa: BLE001  (a failed reference is recorded with each row, not fatal)
        return None, None, f"reference failed: {type(err).__name__}: {err}"
    with mpmath.workdps(opts["digits"] + 10):
        grad = [str(g) for g in ref.grad_mp.flat]
        value = str(ref.value_mp)
    cert = ref.certification.__dict__ if ref.certification else None
    return ref, (value, grad, cert), ""


def decode_reference(stored, digits: int, problem) -> Reference:
    """A :class:`Reference` from its stored form (decimal strings, as in the store's ``refs`` table)."""
    value, grad, cert = stored
    with mpmath.workdps(digits + 10):
        grad_mp = np.array([mpmath.mpf(g) for g in grad], dtype=object).reshape(problem.theta0.shape)
        return Reference(mpmath.mpf(value), grad_mp, digits, Certification(**cert) if cert else None,
                         problem.component_name)


def base_row(study: Study, cell: Cell, env: dict, threads, worker: str = SERIAL) -> dict:
    return {"study": study.name, "kind": study.kind, "cell_id": cell.cell_id, "problem": cell.family,
            "group": cell.group, "size": cell.size, "method": cell.method, "options": dumps(dict(cell.options)), "seed": cell.seed, "reason": "",
            "blas_threads": threads, "env": dumps(env), "diffkit_version": __version__,
            "git_commit": env["git_commit"], "study_hash": study.hash, "mode": "quick" if study.quick_mode else "full",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "worker": worker,
            "host": socket.gethostname()}


def unavailable(cell: Cell) -> str:
    spec = registered_methods().get(cell.method_name)
    if spec is None:
        return (f"method {cell.method_name!r} is not registered in this diffkit (its module has not landed); "
                f"the cell runs once it is")
    return "" if spec.available else f"method {cell.method_name!r} is not available here: {spec.hint}"


def _gradient_cell(study: Study, cell: Cell, ctx: _Context, row: dict) -> tuple[str, list[dict]]:
    why = unavailable(cell)
    if why:
        return "skipped", [{**row, "status": "skipped", "reason": why}]
    problem, failed = ctx.problem_or_reason(cell, row)
    if failed:
        return failed
    row.update(problem_name=problem.name, P=problem.size)
    ref, ref_reason = ctx.reference(cell, problem)
    options, timing = dict(cell.options), study.timing
    start = time.perf_counter()

    def call():
        return gradient(problem, method=cell.method_name, **options)
    try:
        with ctx.deadline(study.budget_s):
            cpu0 = time.process_time()
            first = call()
            cold = ([first.cost.wall_s], [time.process_time() - cpu0])
            for _ in range(timing["warmup"] - 1):
                call()
            bad = int(np.sum(~np.isfinite(first.grad))) + (0 if np.isfinite(first.value) else 1)
            if bad:
                return "failed", [{**row, "status": "failed", "value": first.value,
                                   "reason": f"non-finite result: {bad} of {problem.size + 1} numbers (value and "
                                             f"gradient) are NaN or inf"}]
            stop_at = start + study.budget_s
            once = time.perf_counter() + first.cost.wall_s > stop_at
            ratio = None if once else _ratio(study, cell, ctx, problem, stop_at - time.perf_counter(),
                                             numerator_known_s=first.cost.wall_s)
            walls = cold[0] if once else list(ratio.numerator_samples)
            peak = _peak(call, problem, cell, options, timing, np.median(walls), stop_at)
    except _budget_exceeded_types() as err:
        return "budget", [{**row, "status": "budget", "reason": f"{type(err).__name__}: {err}",
                           "wall_median_s": time.perf_counter() - start}]
    except Exception as err:  # noqa: BLE001  (a failing cell is a result; the study goes on)
        where = traceback.extract_tb(err.__traceback__)[-1]
        return "failed", [{**row, "status": "failed",
                           "reason": f"{type(err).__name__}: {err} (at {_short_path(where.filename)}:{where.lineno})"}]
    row.update(value=first.value, evaluations=first.cost.evaluations, peak_bytes=peak, status="ok",
               counters=dumps(first.cost.counters), wall_first_s=cold[0][0])
    if once:  # a second call would not fit in the budget: the one (cold) call is the measurement, no ratio
        row.update(summary(walls, cold[1]), repeats=0, reason="; ".join(filter(None, [
            "timed once: the first call (a second would pass the budget), so no gradient/forward ratio",
            ref_reason])))
    else:
        row.update(ratio_columns(ratio, cell.method_name, ref_reason))
    if ref is not None:
        e = error(first, ref)
        row.update(digits=e.digits, median_digits=e.median_digits, max_abs=e.max_abs, max_rel=e.max_rel,
                   worst_component=e.worst_name)
    if problem.size <= GRAD_KEPT_UP_TO:
        row.update(grad=dumps(first.grad.tolist()), expected=dumps(problem.expected))
    return "ok", [row]


def _ratio(study: Study, cell: Cell, ctx: _Context, problem, seconds_left: float, **more):
    """One block of the cell's gradient/forward (:func:`~diffkit.studies.timing.paired_ratio`, the gradient's own
    time ``cost.wall_s`` over one forward evaluation): all of it with ``timing.blocks = 1``."""
    rules, budget_s = block_rules(study.timing)

    def numerator():
        return gradient(problem, method=cell.method_name, **dict(cell.options)).cost.wall_s
    return paired_ratio(numerator, lambda: problem.fn(problem.theta0), floor=ctx.floor(cell, problem),
                        budget_s=min(budget_s, max(seconds_left, 0.0)), **rules, **more)


def ratio_block(study: Study, cell: Cell, ctx: _Context, known_s: float = 0.0):
    """A later block of the cell's ratio (see :mod:`diffkit.studies.blocks`; ``known_s``: a gradient's time
    from the earlier blocks), or None when it failed or ran past the cell's budget (the row keeps what it has)."""
    start = time.perf_counter()
    try:
        with ctx.deadline(study.budget_s):
            problem = ctx.problem(cell)
            return _ratio(study, cell, ctx, problem, study.budget_s - (time.perf_counter() - start),
                          least_pairs=1, numerator_known_s=known_s)
    except Exception:  # noqa: BLE001  (CellBudget and BudgetExceeded included: the earlier blocks stand)
        return None


def _peak(call, problem, cell, options, timing, wall, stop_at):
    """Peak bytes from one call under tracemalloc, when it fits (tracing slows Python code ~2-3x)."""
    slowdown = 3  # tracemalloc's overhead on tape-heavy code, measured at about 2-3x
    if not timing["memory"] or wall > timing["memory_max_s"] or time.perf_counter() + slowdown * wall > stop_at:
        return None
    return gradient(problem, method=cell.method_name, memory=True, **options).cost.peak_bytes


def _step_size_cell(study: Study, cell: Cell, ctx: _Context, row: dict) -> tuple[str, list[dict]]:
    try:
        from ..fd_sweep import step_sweep
    except ImportError as err:
        return "skipped", [{**row, "status": "skipped", "reason": f"dk.step_sweep is not in this tree yet ({err})"}]
    problem, failed = ctx.problem_or_reason(cell, row)
    if failed:
        return failed
    row.update(problem_name=problem.name, P=problem.size)
    ref, ref_reason = ctx.reference(cell, problem)
    sweep = study.sweep
    steps = np.logspace(sweep["log10_h_min"], sweep["log10_h_max"], sweep["steps"])
    component = sweep["component"]
    if component != "norm":
        names = [problem.component_name(i) for i in range(problem.size)]
        if component not in names:
            return "failed", [{**row, "status": "failed", "reason": f"sweep.component {component!r} is not a "
                                                                    f"component of {problem.name}; it has {names}"}]
        component = names.index(component)
    try:
        with ctx.deadline(study.budget_s):
            df = step_sweep(problem, problem.theta0, methods=sweep["methods"], steps=steps, component=component,
                            reference=ref)
    except _budget_exceeded_types() as err:
        return "budget", [{**row, "status": "budget", "reason": f"{type(err).__name__}: {err}"}]
    except Exception as err:  # noqa: BLE001
        return "failed", [{**row, "status": "failed", "reason": f"{type(err).__name__}: {err}"}]
    base = {**row, "status": "ok", "reason": ref_reason}
    return "ok", [{**base, **record} for record in _records(df)]


def _stability_cell(study: Study, cell: Cell, ctx: _Context, row: dict) -> tuple[str, list[dict]]:
    try:
        from ..stability import stability_sweep
    except ImportError as err:
        return "skipped", [{**row, "status": "skipped", "reason": f"dk.stability_sweep is not in this tree ({err})"}]
    try:
        with ctx.deadline(study.budget_s):
            df = stability_sweep(**study.sweep["options"])
    except Exception as err:  # noqa: BLE001
        return "failed", [{**row, "status": "failed", "reason": f"{type(err).__name__}: {err}"}]
    return "ok", [{**row, "status": "ok", **record} for record in _records(df)]


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows of a sweep's DataFrame at full precision (DataFrame.to_json would round to 10 decimals)."""
    return df.to_dict(orient="records")


def _hessian_cell(study: Study, cell: Cell, ctx: _Context, row: dict) -> tuple[str, list[dict]]:
    from .hessian import hessian_cell  # the HVP routes (issue 15), in a module of their own
    return hessian_cell(study, cell, ctx, row)


CELL_RUNNERS = {"gradient": _gradient_cell, "step_size": _step_size_cell, "stability": _stability_cell,
                "hessian": _hessian_cell}


def _open_store(store) -> Store:
    return store if isinstance(store, Store) else Store(store)


HOOKS: dict = {}  # "distributed": the Dask runner, installed by diffkit.studies.distributed on import


def run_study(study, *, store=None, fresh: bool = False, quick: bool = False, max_p: int | None = None,
              progress: bool = True, quiet: bool = False, workers: int | None = None,
              scheduler: str | None = None, blocks_upto: int | None = None) -> pd.DataFrame:
    """Run a study's missing cells into the store and return all its results as a tidy DataFrame.

    ``study``: a built-in name ("scaling"), a TOML path, a dict or a :class:`Study`.  ``store``: a path or
    :class:`Store` (default :func:`default_store_path`).  ``fresh`` discards the study's stored cells first;
    ``quick`` runs the study's ``[quick]`` variant (stored apart); ``max_p`` leaves out cells above that size.
    A tqdm bar (after 2 s) shows the current cell and the ETA, unless ``progress=False`` or ``quiet``.
    ``workers=N`` runs the cells on a Dask ``LocalCluster`` of N processes, ``scheduler="tcp://host:port"``
    on an existing Dask cluster (:mod:`diffkit.studies.distributed`); without either the run is serial.
    ``blocks_upto=b`` stops the ratios' later passes after block b (:mod:`diffkit.studies.blocks`): a caller
    that spreads them over a longer run (the report) runs the study again later for the rest.

    >>> import tempfile, os, diffkit as dk
    >>> s = dk.studies.study_from_dict({"study": {"name": "doc"}, "problems": [{"family": "seed_circuit"}],
    ...                                 "methods": {"reverse": {}}, "timing": {"min_time_s": 0, "memory": False}})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     df = dk.studies.run_study(s, store=os.path.join(d, "r.sqlite"), quiet=True)
    >>> df[["method", "status", "value", "digits", "worker"]].values.tolist()
    [['reverse', 'ok', -12.0, 16.0, 'serial']]
    """
    study = load_study(study)
    study = study.quick() if quick else study
    cells = study.cells(max_p)  # checked before the store is touched
    if study.kind == "gradient":  # as diffkit bench: glibc keeps freed memory, so large arrays are not
        from ..bench import keep_freed_memory  # page-faulted in again on every call (that cost, not the
        keep_freed_memory()                    # arithmetic, set the tape's ratio at P = 3e5 otherwise)
    if workers is not None or scheduler is not None:
        run_distributed = HOOKS["distributed"]  # diffkit.studies.distributed, which builds on this module
        db = run_distributed(study, lambda: _begin(study, store, fresh), max_p, workers=workers,
                             scheduler=scheduler, progress=progress and not quiet, blocks_upto=blocks_upto)
        return results(study, store=db)
    db = _begin(study, store, fresh)
    done = db.statuses(study.store_key)
    ctx = _Context(study, db)
    gave_out: dict[str, int] = {}
    stale_after_s = max(10 * study.budget_s, 600.0)  # a claim older than this belongs to a run that hung
    with _env.blas_threads(study.blas_threads) as threads:
        env = _env.environment(threads)
        bar = tqdm(total=len(cells), desc=study.store_key, unit="cell", delay=2, disable=quiet or not progress,
                   leave=False)
        pending = list(cells)
        while pending:  # cells another run is computing come back here until it records them
            waiting = []
            for cell in pending:
                bar.set_postfix_str(f"{cell.method} size={cell.size}", refresh=False)
                status = done.get(cell.cell_id)
                if status not in FINAL:
                    owner = db.claim(study.store_key, cell.cell_id, stale_after_s)
                    if owner == "done":
                        status = db.statuses(study.store_key).get(cell.cell_id)
                    elif owner is not None:
                        waiting.append(cell)
                        continue
                if status in FINAL:
                    if status == "budget":
                        gave_out.setdefault(cell.series, cell.size)
                    bar.update()
                    continue
                status = _run_cell(study, cell, ctx, db, env, threads, gave_out)
                if status == "budget":
                    gave_out.setdefault(cell.series, cell.size)
                bar.update()
            if waiting:
                time.sleep(0.05)
                done = db.statuses(study.store_key)
            pending = waiting
        bar.close()
        later_passes(study, cells, db, lambda due: {c.cell_id: r for c, known_s in due
                                                    if (r := ratio_block(study, c, ctx, known_s)) is not None},
                     upto=blocks_upto)
    return results(study, store=db)


def _begin(study: Study, store, fresh: bool) -> Store:
    db = _open_store(store)
    db.begin(study.store_key, study.hash, study.source, fresh=fresh)
    return db


def gave_out_row(study: Study, cell: Cell, row: dict, size: int) -> dict:
    """The row of a cell skipped because a smaller size of its series ran past the budget."""
    return {**row, "status": "skipped", "reason": f"{cell.method} gave out at size {size} (budget "
                                                  f"{study.budget_s:g} s); larger sizes are skipped"}


def _run_cell(study: Study, cell: Cell, ctx: _Context, db: Store, env: dict, threads, gave_out: dict) -> str:
    """Run one claimed cell and record it (which releases the claim); return its status."""
    row = base_row(study, cell, env, threads)
    try:
        if cell.series in gave_out:
            status, rows = "skipped", [gave_out_row(study, cell, row, gave_out[cell.series])]
        else:
            status, rows = CELL_RUNNERS[study.kind](study, cell, ctx, row)
    except BaseException:
        db.release(study.store_key, cell.cell_id)  # interrupted: another run may take it at once
        raise
    db.record(study.store_key, cell.cell_id, status, rows)
    return status


def results(study, *, store=None, quick: bool | None = None) -> pd.DataFrame:
    """A study's stored results as a tidy DataFrame (one row per cell; sweeps: one row per point).

    ``quick=None`` gives the full run's results when there are any, else the quick run's.
    """
    db = _open_store(store)
    study = study if isinstance(study, Study) else load_study(study)
    if study.quick_mode or quick:
        key = study.quick().store_key
    else:
        key = study.store_key
        if quick is None and not db.statuses(key):
            key = study.quick().store_key
    df = pd.DataFrame(db.rows(key))
    if not df.empty:  # the study's cell order, however the cells were computed (serially, reruns, workers)
        variant = study.quick() if key.endswith("@quick") else study
        order = {c.cell_id: i for i, c in enumerate(variant.cells())}
        df = df.iloc[np.argsort(df["cell_id"].map(order).fillna(len(order)).to_numpy(), kind="stable")]
        df = df.reset_index(drop=True)
    if study.kind == "gradient":
        df = df.reindex(columns=GRADIENT_COLUMNS + [c for c in df.columns if c not in GRADIENT_COLUMNS])
    return df
