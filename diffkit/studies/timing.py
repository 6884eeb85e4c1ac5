"""Honest timing: one protocol for every ratio diffkit prints, robust statistics, and a per-cell deadline.

A ratio such as gradient/forward is measured by :func:`paired_ratio`: the
two calls are timed in turn (forward, gradient, forward, gradient ...), so
both see the same machine state; the ratio is taken per pair, and its
median and seeded bootstrap interval are reported.  On a shared machine the
load moves a forward timed a minute earlier by 4x; a pair moves together.
A ratio below its physical floor is re-measured and, if it stays there,
marked unreliable: it is never printed as a finding.  ``diffkit bench``,
the studies and the report all use it.

Timing follows ``timeit``: the garbage collector is paused while a call is
timed (a collection triggered by an earlier cell would otherwise land in
this one), wall time is ``perf_counter``.  A cell's deadline is a ``SIGALRM`` timer: Python
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
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["CellBudget", "deadline", "summary", "paired_ratio", "PairedRatio", "bootstrap_median"]


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


def summary(walls: list[float], cpus: list[float]) -> dict:
    """Median, min and interquartile range of the wall times; median CPU time; repeats."""
    w = np.asarray(walls, dtype=float)
    q1, q3 = np.percentile(w, [25, 75])
    return {"wall_median_s": float(np.median(w)), "wall_min_s": float(w.min()), "wall_iqr_s": float(q3 - q1),
            "cpu_median_s": float(np.median(cpus)), "repeats": int(w.size)}


# --- the paired protocol: one ratio, numerator and denominator timed side by side -------------------------

RATIO_TARGET = 0.10  # stop once the bootstrap interval is within +-10 % of the median ratio
MIN_PAIRS = 7        # the median of at least 7 pairs
SAMPLE_S = 2e-3      # a sample runs the call back to back until it lasts this long (timeit's autorange idea)
BURSTS = 3           # a sample is the fastest of this many bursts (noise on a shared machine only adds time)
BOOTSTRAP = 400      # resamples of the pair ratios for the interval (seeded: the interval is reproducible)


@dataclass(frozen=True)
class PairedRatio:
    """A measured ratio numerator/denominator and the evidence behind it.

    ``ratio`` is the median over pairs of (numerator time / denominator time),
    ``low``..``high`` its 95 % bootstrap interval, ``width`` the interval's
    half-width relative to ``ratio``.  ``reliable`` is False when the ratio
    stayed below ``floor`` (physics forbids it: the measurement is wrong, not
    the code) after ``attempts`` tries; ``note`` says why.
    """

    ratio: float
    low: float
    high: float
    width: float
    pairs: int
    numerator_s: float
    denominator_s: float
    floor: float
    reliable: bool
    attempts: int
    note: str = ""
    numerator_samples: tuple = ()
    denominator_samples: tuple = ()

    def shown(self, digits: int = 2) -> str:
        """The ratio with its interval, or why it is not shown (an unreliable ratio is never printed)."""
        if not self.reliable:
            return "unreliable"
        return f"{self.ratio:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_median(values, *, resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float, float]:
    """(median, 2.5 %, 97.5 % percentile of the bootstrapped median) of ``values``.

    >>> bootstrap_median([3.0] * 7)
    (3.0, 3.0, 3.0)
    """
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(0, v.size, size=(resamples, v.size))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(np.median(v)), float(low), float(high)


def _burst(fn: Callable[[], Any], calls: int, clock: Callable[[], float], own_time: bool) -> float:
    """Seconds per call of ``calls`` back-to-back calls (with ``own_time``, the sum of what the calls return)."""
    start, inner = clock(), 0.0
    for _ in range(calls):
        t = fn()
        if own_time:
            inner += float(t)
    return (inner if own_time else clock() - start) / calls


def _sample(fn: Callable[[], Any], calls: int, clock: Callable[[], float], own_time: bool, bursts: int) -> float:
    """The fastest of ``bursts`` bursts: on a shared machine noise only ever adds time (a process descheduled
    mid-burst), so the fastest burst is the one closest to the call's own cost."""
    return min(_burst(fn, calls, clock, own_time) for _ in range(bursts))


def _calls_per_sample(fn: Callable[[], Any], clock: Callable[[], float], sample_s: float, own_time: bool) -> int:
    """Calls that fill ``sample_s`` (one warm-up call, timed, decides; 1 for calls that long)."""
    start = clock()
    t = fn()
    once = float(t) if own_time else clock() - start
    return max(1, min(1000, int(sample_s / max(once, 1e-9))))


def paired_ratio(numerator: Callable[[], Any], denominator: Callable[[], Any], *, floor: float = 1.0,
                 budget_s: float = 5.0, target: float = RATIO_TARGET, min_pairs: int = MIN_PAIRS,
                 max_pairs: int = 500, min_time_s: float = 0.0, attempts: int = 3, sample_s: float = SAMPLE_S,
                 clock: Callable[[], float] = time.perf_counter, seed: int = 0,
                 numerator_times_itself: bool = False, bursts: int = BURSTS) -> PairedRatio:
    """Time ``numerator`` against ``denominator`` interleaved, pair by pair, and return their ratio.

    Each pair is one sample of the denominator then one of the numerator
    (each sample the fastest of ``bursts`` bursts of as many back-to-back
    calls as fill ``sample_s``), so both see the same machine state; the ratio is taken per pair, and its median
    and bootstrap interval are reported.  Pairs are added until the interval
    is within ``target`` (relative half-width) and the numerator's samples add
    up to ``min_time_s``, or ``budget_s`` (by ``clock``) is spent; the width
    reached is recorded.  A re-measurement gets ``budget_s`` again.  A median below ``floor`` (a
    gradient cheaper than its function, or below the matrix-product floor)
    is a measurement fault: the pairs are discarded and measured again, up to
    ``attempts`` times; if it stays below, the result says ``reliable=False``.
    With ``numerator_times_itself`` the numerator returns its own seconds
    (``dk.gradient``'s ``cost.wall_s``, without argument checking).

    ``clock`` is injectable so the protocol can be tested without wall time:

    >>> now = [0.0]
    >>> def forward(): now[0] += 1.0
    >>> def gradient(): now[0] += 3.0
    >>> r = paired_ratio(gradient, forward, clock=lambda: now[0], sample_s=0, budget_s=100)
    >>> r.ratio, r.width, r.pairs, r.reliable
    (3.0, 0.0, 7, True)
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        own = numerator_times_itself
        n_calls = _calls_per_sample(numerator, clock, sample_s, own)
        d_calls = _calls_per_sample(denominator, clock, sample_s, False)
        tries, result = 0, None
        while tries < attempts:
            tries += 1
            stop_at = clock() + budget_s  # each attempt has the whole budget: a re-measurement is a real one
            nums, dens = [], []
            width = np.inf
            while len(nums) < max_pairs:
                dens.append(_sample(denominator, d_calls, clock, False, bursts))
                nums.append(_sample(numerator, n_calls, clock, own, bursts))
                if len(nums) >= min_pairs:
                    ratios = np.asarray(nums) / np.maximum(np.asarray(dens), 1e-300)
                    mid, low, high = bootstrap_median(ratios, seed=seed)
                    width = max(mid - low, high - mid) / mid if mid > 0 else np.inf
                    if (width <= target and sum(nums) >= min_time_s) or clock() >= stop_at:
                        break
                elif clock() >= stop_at and len(nums) >= 2:
                    break
            ratios = np.asarray(nums) / np.maximum(np.asarray(dens), 1e-300)
            mid, low, high = bootstrap_median(ratios, seed=seed)
            width = max(mid - low, high - mid) / mid if mid > 0 else np.inf
            result = dict(ratio=mid, low=low, high=high, width=float(width), pairs=len(nums),
                          numerator_s=float(np.median(nums)), denominator_s=float(np.median(dens)),
                          numerator_samples=tuple(nums), denominator_samples=tuple(dens))
            if mid >= floor:
                break
    finally:
        if enabled:
            gc.enable()
    reliable = result["ratio"] >= floor
    note = "" if reliable else (f"measured {result['ratio']:.3g} < floor {floor:.3g} after {tries} "
                                f"attempt{'s' if tries > 1 else ''}: a timing fault, not a finding")
    if reliable and result["pairs"] < min_pairs:
        note = (f"{result['pairs']} pairs only when the budget ended (a median needs {min_pairs}): the interval "
                "is the spread of those pairs, not an established one")
    elif reliable and result["width"] > target:
        note = f"interval +-{100 * result['width']:.0f} % (target +-{100 * target:.0f} %) when the budget ended"
    return PairedRatio(**result, floor=float(floor), reliable=reliable, attempts=tries, note=note)
