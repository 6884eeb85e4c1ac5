"""Study sweeps on a Dask cluster: each cell a task, the coordinator alone writing the store.

``diffkit study run STUDY --workers N`` starts a ``dask.distributed.LocalCluster`` of N worker processes
(one thread each); ``--scheduler tcp://HOST:PORT`` uses a running cluster (``dask scheduler`` and
``dask worker tcp://HOST:PORT`` on each machine, every one with this diffkit installed).  Without either the
run is serial (:func:`~diffkit.studies.runner.run_study`).

- **Tasks.**  Each problem's mpmath reference is one task (unless the store has it), and each cell one task
  that takes the reference as its input; the coordinator writes the reference and each cell's rows, one
  transaction per cell, as they arrive.  Workers never open the store, so they may be on other machines.
- **Timing.**  A gradient cell times its method, so it runs alone on its worker (an exclusive per-process
  lock) with BLAS threads pinned (threadpoolctl), and its row records the ``worker`` (Dask address) and the
  ``host``.  References and sweep cells (accuracy work) share a worker's threads.
- **Blocks.**  With ``timing.blocks`` > 1, the later blocks of each ratio (:mod:`~diffkit.studies.blocks`) run as
  tasks too, one pass over the cells at a time, each alone on its worker.
- **Budgets.**  A size of a series is submitted once the smaller one is stored, so "gave out at size N,
  larger sizes skipped" holds as in a serial run.  A worker runs tasks off its main thread, where SIGALRM
  cannot reach, so its deadline raises the budget exception in the task's thread instead
  (``PyThreadState_SetAsyncExc``: at the next bytecode, like the serial deadline).
- **Faults.**  A cell whose worker dies is rerun by the scheduler on another worker; its result is stored
  once (the coordinator writes each cell once, and the store's key replaces, never duplicates).  A cell that
  kills ``distributed.scheduler.allowed-failures`` + 1 workers is recorded as failed with the reason.  A
  killed coordinator takes its LocalCluster with it; rerunning resumes from the store, as a serial run does.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import threading
from collections import deque

from tqdm.auto import tqdm

from . import env as _env
from .blocks import later_passes
from .runner import (CELL_RUNNERS, FINAL, HOOKS, _Context, base_row, compute_reference, decode_reference,
                     gave_out_row, ratio_block, unavailable)
from .spec import Cell, Study
from .store import Store
from .timing import CellBudget, deadline

__all__ = ["run_distributed", "check_cluster_options", "ClusterError", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'diffkit[distributed]'"
COORDINATOR = "coordinator"  # the ``worker`` of rows decided without running (a series that gave out)


_MAIN_GUARD = ("Worker processes start by importing the calling script: a script that calls run_study(workers=N) "
               "must do so under `if __name__ == '__main__':`")


class ClusterError(RuntimeError):
    """The Dask cluster cannot be used as asked (not installed, unreachable); the message says what to do."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--workers and --scheduler run cells on Dask, which is not installed here: "
                           f"{INSTALL_HINT} (or run without them, serially)") from None
    return distributed


def check_cluster_options(workers: int | None, scheduler: str | None) -> None:
    """Raise ValueError for flags that cannot go together, ClusterError when Dask is missing."""
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers N (a local cluster of N processes) or --scheduler tcp://HOST:PORT (a "
                         "running cluster), not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be a positive number of worker processes; got {workers!r}")
    if scheduler is not None and "://" not in scheduler:
        raise ValueError(f"--scheduler must be a Dask scheduler address such as tcp://HOST:8786; got {scheduler!r}")
    _distributed()


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None):
    distributed = _distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler)  # waits distributed.comm.timeouts.connect
        except (OSError, TimeoutError) as err:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} ({err}); start one with `dask "
                               f"scheduler` and workers with `dask worker {scheduler}`, or use --workers N for "
                               f"a local cluster") from None
        with client:
            yield client
        return
    if getattr(sys.modules.get("__main__"), "__name__", "") == "__mp_main__":  # a worker importing the script
        raise ClusterError(_MAIN_GUARD)
    # One thread per process: cells run side by side in processes, never sharing an interpreter.
    try:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
    except RuntimeError as err:
        raise ClusterError(f"the local Dask cluster did not start ({err}). {_MAIN_GUARD}") from err
    with cluster, distributed.Client(cluster) as client:
        yield client


# --- the worker side -----------------------------------------------------------------------------------------

class _CellLock:
    """Per worker process: a timing cell holds it alone; accuracy work (references, sweeps) shares it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._shared, self._exclusive = 0, False

    @contextlib.contextmanager
    def hold(self, alone: bool):
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not (alone and self._shared))
            if alone:
                self._exclusive = True
            else:
                self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if alone:
                    self._exclusive = False
                else:
                    self._shared -= 1
                self._cond.notify_all()


_LOCK = _CellLock()
_LOCAL = threading.local()  # one context per worker thread: the problem and forward-time caches


@contextlib.contextmanager
def thread_deadline(seconds: float):
    """:func:`~diffkit.studies.timing.deadline` for any thread: CellBudget at the next bytecode after ``seconds``.

    >>> import time
    >>> def slow():
    ...     with thread_deadline(0.05):
    ...         while True:
    ...             time.sleep(0.001)
    >>> box = []
    >>> t = threading.Thread(target=lambda: box.append(_catch(slow))); t.start(); t.join()
    >>> box
    ['CellBudget: ran past the cell budget of 0.05 s']
    """
    if threading.current_thread() is threading.main_thread():
        with deadline(seconds):
            yield
        return
    message = f"ran past the cell budget of {seconds:g} s"
    # Raised by class (SetAsyncExc takes no instance): a subclass named like its parent carries the message.
    budget = type("CellBudget", (CellBudget,), {"__init__": lambda self, *a: CellBudget.__init__(self, message)})
    tid, guard, armed = threading.get_ident(), threading.Lock(), [True]

    def expire():
        with guard:
            if armed[0]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(budget))
    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with guard:
            armed[0] = False
            timer.cancel()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), None)  # drop one not yet raised


def _catch(fn) -> str:
    try:
        fn()
    except CellBudget as err:
        return f"{type(err).__name__}: {err}"
    return "no exception"


class _WorkerContext(_Context):
    """A worker's context: no store; the reference comes from the coordinator or its reference task."""

    deadline = staticmethod(thread_deadline)

    def __init__(self, study: Study):
        super().__init__(study, None)
        self.given = (None, "")

    def _stored_reference(self, key, problem):
        stored, _reason = self.given
        return None if stored is None else (decode_reference(stored, self.study.reference["digits"], problem), "")

    def _compute_reference(self, key, problem):
        return None, self.given[1]


def _worker_context(study: Study) -> _WorkerContext:
    ctx = getattr(_LOCAL, "ctx", None)
    if ctx is None or ctx.study.hash != study.hash or ctx.study.store_key != study.store_key:
        ctx = _LOCAL.ctx = _WorkerContext(study)
    return ctx


def _worker_address() -> str:
    from distributed import get_worker
    try:
        return get_worker().address
    except ValueError:  # run outside a worker (a direct call): name the process
        return "local"


def reference_task(study: Study, cell: Cell):
    """On a worker: the cell's problem's reference in its stored form, or None and the reason."""
    with _LOCK.hold(alone=False), _env.blas_threads(study.blas_threads):
        problem = cell.build()
        if problem.size > study.reference["max_p"]:
            return None, ""  # the cell's context words this reason itself
        _ref, stored, reason = compute_reference(study, problem, thread_deadline)
        return stored, reason


def block_task(study: Study, cell: Cell, known_s: float):
    """On a worker: a later block of a cell's gradient/forward (:mod:`diffkit.studies.blocks`), run alone."""
    with _LOCK.hold(alone=True), _env.blas_threads(study.blas_threads):
        return ratio_block(study, cell, _worker_context(study), known_s)


def _blocks_on(client, study: Study, due: list) -> dict:
    """One later block of each (cell, seconds a gradient) in ``due``, on the cluster: {cell_id: PairedRatio}."""
    futures = {c.cell_id: client.submit(block_task, study, c, known_s, pure=False) for c, known_s in due}
    out = {}
    for cell_id, future in futures.items():
        try:
            part = future.result()
        except Exception:  # noqa: BLE001  (a worker lost mid-block: the row keeps its earlier blocks)
            continue
        if part is not None:
            out[cell_id] = part
    return out


def cell_task(study: Study, cell: Cell, given) -> tuple[str, list[dict]]:
    """On a worker: one cell's (status, rows); a gradient cell runs alone on the worker."""
    with _LOCK.hold(alone=study.kind == "gradient"), _env.blas_threads(study.blas_threads) as threads:
        row = base_row(study, cell, _env.environment(threads), threads, worker=_worker_address())
        ctx = _worker_context(study)
        if cell.problem_key not in ctx.refs:  # a new problem: its reference, never the last one's
            ctx.given = given or (None, "")
        try:
            return CELL_RUNNERS[study.kind](study, cell, ctx, row)
        except CellBudget as err:  # the deadline fired outside the runner's own handler
            return "budget", [{**row, "status": "budget", "reason": f"{type(err).__name__}: {err}"}]


# --- the coordinator -----------------------------------------------------------------------------------------

class _Coordinator:
    """Submits each series' cells in size order, writes results as they complete."""

    def __init__(self, study: Study, db: Store, client, distributed, bar):
        self.study, self.db, self.client, self.distributed, self.bar = study, db, client, distributed, bar
        self.refs: dict[str, object] = {}     # problem key -> stored form, or the Future computing it
        self.ref_keys: dict[object, str] = {}  # reference Future -> problem key
        self.running: dict[object, Cell] = {}  # cell Future -> cell
        self.chains: dict[str, deque] = {}
        self.gave_out: dict[str, int] = {}
        self.done: dict[str, str] = {}
        self.queue = distributed.as_completed()
        with _env.blas_threads(study.blas_threads) as threads:
            self.env, self.threads = _env.environment(threads), threads

    def run(self, cells: list[Cell], done: dict[str, str]) -> None:
        self.done = done
        for cell in cells:
            self.chains.setdefault(cell.series, deque()).append(cell)
        for series in list(self.chains):
            self._advance(series)
        for future in self.queue:
            if future in self.ref_keys:
                self._reference_done(future)
            else:
                self._cell_done(future)

    def _advance(self, series: str) -> None:
        """Submit the series' next cell to run; record the ones decided here (stored, or gave out)."""
        chain = self.chains[series]
        while chain:
            cell = chain.popleft()
            status = self.done.get(cell.cell_id)
            if status in FINAL:
                if status == "budget":
                    self.gave_out.setdefault(series, cell.size)
                continue
            if series in self.gave_out:
                row = base_row(self.study, cell, self.env, self.threads, worker=COORDINATOR)
                self._record(cell, "skipped", [gave_out_row(self.study, cell, row, self.gave_out[series])])
                continue
            future = self.client.submit(cell_task, self.study, cell, self._reference(cell), pure=False,
                                        key=f"diffkit-cell {cell.cell_id} {self.study.hash}-{id(self)}")
            self.running[future] = cell
            self.queue.add(future)
            return

    def _reference(self, cell: Cell):
        if self.study.kind not in ("gradient", "step_size") or (self.study.kind == "gradient" and unavailable(cell)):
            return None
        key = cell.problem_key
        if key not in self.refs:
            stored = self.db.get_reference(key, self.study.reference["digits"])
            if stored is not None:
                self.refs[key] = (stored, "")
            else:
                future = self.client.submit(reference_task, self.study, cell, pure=False,
                                            key=f"diffkit-reference {key} {id(self)}")
                self.refs[key], self.ref_keys[future] = future, key
                self.queue.add(future)
        return self.refs[key]

    def _reference_done(self, future) -> None:
        key = self.ref_keys.pop(future)
        try:
            stored, reason = future.result()
        except Exception:  # noqa: BLE001  (its cells fail with the same error, and say so)
            self.refs.pop(key, None)
            return
        if stored is not None:  # P is the gradient's length
            self.db.put_reference(key, len(stored[1]), self.study.reference["digits"], *stored)
        self.refs[key] = (stored, reason)

    def _cell_done(self, future) -> None:
        cell = self.running.pop(future)
        try:
            status, rows = future.result()
        except Exception as err:  # noqa: BLE001  (a worker that died every time, a task error: a result)
            why = str(err) or "no message"
            if isinstance(err, self.distributed.KilledWorker):
                why = (f"its worker died on every try ({why}): a crash or running out of memory; the rerun limit is "
                       f"distributed.scheduler.allowed-failures")
            row = base_row(self.study, cell, self.env, self.threads, worker=COORDINATOR)
            status, rows = "failed", [{**row, "status": "failed", "reason": f"{type(err).__name__}: {why}"}]
        self._record(cell, status, rows)
        if status == "budget":
            self.gave_out.setdefault(cell.series, cell.size)
        self._advance(cell.series)

    def _record(self, cell: Cell, status: str, rows: list[dict]) -> None:
        self.db.record(self.study.store_key, cell.cell_id, status, rows)
        self.done[cell.cell_id] = status
        self.bar.set_postfix_str(f"{cell.method} size={cell.size} on {rows[0].get('worker')}", refresh=False)
        self.bar.update(1)


def run_distributed(study: Study, open_store, max_p: int | None = None, *, workers: int | None = None,
                    scheduler: str | None = None, progress: bool = True, blocks_upto: int | None = None) -> Store:
    """Run the study's missing cells on a Dask cluster; returns the store.

    ``open_store()`` opens the store (and checks the study's hash) once the cluster is up, so a cluster that
    cannot start leaves no file behind.  Use it through :func:`~diffkit.studies.runner.run_study`.
    """
    check_cluster_options(workers, scheduler)
    distributed = _distributed()
    with _client(workers, scheduler) as client:
        db = open_store()
        cells, done = study.cells(max_p), db.statuses(study.store_key)
        todo = sum(done.get(c.cell_id) not in FINAL for c in cells)
        n = len(client.scheduler_info().get("workers", {}))
        bar = tqdm(total=todo, desc=f"{study.store_key} on {n} workers", unit="cell", delay=2,
                   disable=not progress, leave=False)
        try:
            _Coordinator(study, db, client, distributed, bar).run(cells, done)
        finally:
            bar.close()
        later_passes(study, cells, db, lambda due: _blocks_on(client, study, due), upto=blocks_upto)
    return db


HOOKS["distributed"] = run_distributed
