"""Honest timing: warm-up, repeats until a minimum time, robust statistics, and a per-cell deadline.

Timing follows ``timeit``: the garbage collector is paused while a call is
timed (a collection triggered by an earlier cell would otherwise land in
this one), wall time is ``perf_counter`` and CPU time ``process_time`` (all
threads of the process).  A cell's deadline is a ``SIGALRM`` timer: Python
raises :class:`CellBudget` at the next bytecode after it fires, so even a
call that would run for hours stops at the budget (a long single numpy
kernel finishes first).  Off the main thread, or without SIGALRM, the
deadline is only checked between calls.
"""
from __future__ import annotations

import contextlib
import gc
import signal
import threading
import time
from typing import Callable

import numpy as np

__all__ = ["CellBudget", "deadline", "repeat", "summary"]


class CellBudget(Exception):
    """The cell ran past its time budget."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise :class:`CellBudget` inside the block once ``seconds`` of wall time have passed."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise CellBudget(f"ran past the cell budget of {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def repeat(call: Callable[[], float | None], *, min_repeats: int, max_repeats: int, min_time_s: float,
           stop_at: float) -> tuple[list[float], list[float]]:
    """Time ``call`` until ``min_repeats`` calls and ``min_time_s`` seconds are reached (or ``max_repeats``).

    ``call`` may return its own wall time (a method's time measured inside
    ``dk.gradient``, without argument checking); else the whole call is
    timed.  No call starts once the previous one says it would end after
    ``stop_at`` (a ``perf_counter`` time), but at least one is timed.
    Returns (wall times, CPU times) in seconds.
    """
    walls, cpus = [], []
    enabled = gc.isenabled()
    gc.disable()
    try:
        while len(walls) < max_repeats:
            c0, w0 = time.process_time(), time.perf_counter()
            inner = call()
            wall = time.perf_counter() - w0
            cpus.append(time.process_time() - c0)
            walls.append(wall if inner is None else inner)
            if len(walls) >= min_repeats and sum(walls) >= min_time_s:
                break
            if time.perf_counter() + wall > stop_at:
                break
    finally:
        if enabled:
            gc.enable()
    return walls, cpus


def summary(walls: list[float], cpus: list[float]) -> dict:
    """Median, min and interquartile range of the wall times; median CPU time; repeats."""
    w = np.asarray(walls, dtype=float)
    q1, q3 = np.percentile(w, [25, 75])
    return {"wall_median_s": float(np.median(w)), "wall_min_s": float(w.min()), "wall_iqr_s": float(q3 - q1),
            "cpu_median_s": float(np.median(cpus)), "repeats": int(w.size)}
