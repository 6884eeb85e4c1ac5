"""Honest timing: one protocol for every time and ratio diffkit prints, robust statistics, and a per-cell deadline.

``diffkit bench`` (all three of its tables), the studies and the report all
time through this module:

* **A sample** of a callable (:class:`Timed`) is the fastest of ``bursts``
  bursts, each as many back-to-back calls as fill ``sample_s`` (timeit's
  autorange idea).  On a shared machine noise only adds time (a process
  descheduled mid-burst), so the fastest burst is the one closest to the
  call's own cost.  A call too long for that takes fewer bursts (a sample
  spends about ``MAX_SAMPLE_S`` at most, or one call).
* **Rounds.**  Callables that are compared are timed in rounds: each round
  takes one sample of each, in a fresh seeded random order, so a slow spell
  of the machine touches them all alike (:func:`interleaved`).  A ratio is
  formed inside a round, per pair (:func:`paired_ratios`, :func:`paired_ratio`),
  and its median and seeded bootstrap interval are reported.  A ratio below
  its physical floor is re-measured and, if it stays there, marked
  unreliable: it is never printed as a finding.
* **Drift.**  Within one run the pairs agree, but the machine's state moves
  a ratio by 5-10 % over minutes, which an interval from back-to-back pairs
  cannot see.  So a ratio can be measured in *blocks* spread over a run (the
  round-robin of :func:`paired_ratios` spreads every ratio's pairs over the
  whole measurement, cut into its start, middle and end; a study measures a
  cell again in later passes, :func:`merge_blocks`), and its interval comes
  from a hierarchical bootstrap (:func:`block_bootstrap`): blocks resampled,
  then pairs within the chosen blocks.  Differences between blocks widen the
  stated interval, as they should.

**The garbage collector** stays as the user has it (on, by default) during
timed calls: a method whose garbage triggers collections pays for them, as it
does for a user, and ``dk.gradient`` pausing the collector while it records
and sweeps (a feature of the library) shows in its times; a benchmark that
paused the collector would hide exactly that difference between the tape and
its peers.  Collections are forced only outside timed calls, and only of the
young generations (~10 us: they walk what the last round allocated): one
when a measurement starts, followed by one untimed call of every callable,
and one between rounds, so that what one callable left behind is not
collected in the next one's time and every sample starts from the same
collector state.  A full collection is never forced: it walks every object
(~250 ms with torch and jax loaded, once per measurement that is seconds per
study) and evicts the caches, so the next call runs 2-3x slower (412 against
222 us for ``dk.gradient`` at P = 960); the collector's own full collections
are rare (CPython runs one when the long-lived objects have grown by a
quarter) and land in a burst that the fastest-of-bursts rule discards.
Measured at P = 960 with torch and jax loaded (eager tape / hand-written
backprop, 15 rounds): 2.8 with the collector on or paused alike once samples
are fastest-of-3 bursts, and 4.0 when each sample was one burst right after
a full collection.

Wall time is ``perf_counter``.  A cell's deadline is a ``SIGALRM`` timer:
Python raises :class:`CellBudget` at the next bytecode after it fires, so even
a call that would run for hours stops at the budget (a long single numpy
kernel finishes first).  Off the main thread, or without SIGALRM, the
deadline is only checked between calls.
"""
from __future__ import annotations

import contextlib
import gc
import random
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Hashable, Mapping

import numpy as np

__all__ = ["CellBudget", "deadline", "summary", "Timed", "interleaved", "Ratio", "paired_ratios", "paired_ratio",
           "PairedRatio", "bootstrap_median", "block_bootstrap", "merge_blocks", "blocks_of"]


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


RATIO_TARGET = 0.10  # stop once the bootstrap interval is within +-10 % of the median ratio
MIN_PAIRS = 7        # the median of at least 7 pairs
SAMPLE_S = 2e-3      # a burst runs the call back to back until it lasts this long
BURSTS = 3           # a sample is the fastest of this many bursts
MAX_SAMPLE_S = 0.1   # ... fewer bursts where a call is so long that they would take longer than this
BOOTSTRAP = 400      # resamples for an interval (seeded: the interval is reproducible)


# --- samples and rounds --------------------------------------------------------------------------------------

@dataclass
class Timed:
    """A callable under the protocol: ``calls`` back-to-back calls a burst, the fastest of ``bursts`` a sample.

    With ``own_time`` the callable returns its own seconds (``dk.gradient``'s
    ``cost.wall_s``, without argument checking), and a burst sums them.
    """

    fn: Callable[[], Any]
    calls: int = 1
    bursts: int = BURSTS
    own_time: bool = False

    @classmethod
    def calibrated(cls, fn: Callable[[], Any], *, clock: Callable[[], float] = time.perf_counter,
                   sample_s: float = SAMPLE_S, bursts: int = BURSTS, own_time: bool = False,
                   known_s: float = 0.0) -> "Timed":
        """Calls and bursts that fill a sample, decided by one timed call after a warm-up call.

        The first call is timed too: one that takes ``MAX_SAMPLE_S`` or more was
        its own warm-up (what a collection evicted is back within its first
        milliseconds) and decides alone; a shorter one is timed again.  A call
        already known to take that long (``known_s``, measured before) is not
        called at all; a long first call of one known to be short (a cache
        filled on the first call, as a symbolic gradient compiles) is timed
        again.
        """
        def timed_call() -> float:
            start = clock()
            t = fn()
            return max(float(t) if own_time else clock() - start, 1e-9)
        if known_s >= MAX_SAMPLE_S:
            once = known_s
        else:
            first = timed_call()
            once = first if first >= MAX_SAMPLE_S and not known_s else timed_call()
        calls = max(1, min(1000, int(sample_s / once)))
        fit = int(MAX_SAMPLE_S / (calls * once))  # bursts that fit in MAX_SAMPLE_S; 1 at least
        return cls(fn, calls, max(1, min(bursts, fit)), own_time)

    def burst(self, clock: Callable[[], float]) -> float:
        """Seconds per call of one burst."""
        start, inner = clock(), 0.0
        for _ in range(self.calls):
            t = self.fn()
            if self.own_time:
                inner += float(t)
        return (inner if self.own_time else clock() - start) / self.calls

    def sample(self, clock: Callable[[], float] = time.perf_counter) -> float:
        """Seconds per call: the fastest burst."""
        return min(self.burst(clock) for _ in range(self.bursts))


def _collect_young() -> None:
    """Before a measurement and between rounds: the young generations only (see the module docstring)."""
    gc.collect(1)


def interleaved(cases: Mapping[Hashable, Callable[[], Any]], rounds: int, *, sample_s: float = SAMPLE_S,
                bursts: int = BURSTS, clock: Callable[[], float] = time.perf_counter, seed: int = 0,
                own_time: frozenset = frozenset()) -> dict[Hashable, list[float]]:
    """One sample of every case per round, the cases in a fresh seeded random order each round.

    Returns the samples (seconds per call) of each case in round order:
    ratios of two cases are paired by round.  Cases named in ``own_time``
    return their own seconds.

    >>> now = [0.0]
    >>> def tick(cost): return lambda: now.__setitem__(0, now[0] + cost)
    >>> interleaved({"f": tick(1.0), "g": tick(3.0)}, 2, clock=lambda: now[0], sample_s=0)
    {'f': [1.0, 1.0], 'g': [3.0, 3.0]}
    """
    _collect_young()  # (each callable's warm-up call follows, in calibration)
    timed = {k: Timed.calibrated(fn, clock=clock, sample_s=sample_s, bursts=bursts, own_time=k in own_time)
             for k, fn in cases.items()}
    samples: dict = {k: [] for k in cases}
    order, rng = list(cases), random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            samples[k].append(timed[k].sample(clock))
        _collect_young()
    return samples


# --- statistics ----------------------------------------------------------------------------------------------

def bootstrap_median(values, *, resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float, float]:
    """(median, 2.5 %, 97.5 % percentile of the bootstrapped median) of ``values``.

    >>> bootstrap_median([3.0] * 7)
    (3.0, 3.0, 3.0)
    """
    return block_bootstrap(values, [0] * len(values), resamples=resamples, seed=seed)


def block_bootstrap(values, blocks, *, resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float, float]:
    """(median, 2.5 %, 97.5 % percentile) of the median of ``values`` measured in ``blocks`` (a label per value).

    Hierarchical: each resample draws as many blocks as there are, with
    replacement, then within each drawn block as many values as it holds,
    with replacement, and takes the median of them all.  A difference
    between blocks (the machine's state drifting between the start and the
    end of a run) widens the interval; with one block this is the plain
    bootstrap of the median.

    >>> block_bootstrap([3.0, 3.0, 3.3, 3.3], [0, 0, 1, 1])[1:]  # two levels: the interval spans both
    (3.0, 3.3)
    """
    v, labels = np.asarray(values, dtype=float), np.asarray(blocks)
    rng = np.random.default_rng(seed)
    names = np.unique(labels)
    if names.size <= 1:
        medians = np.median(v[rng.integers(0, v.size, size=(resamples, v.size))], axis=1)
    else:  # blocks of unequal sizes: each drawn block padded to the largest, the padding left out of the median
        sizes = np.array([np.sum(labels == b) for b in names])
        padded = np.full((names.size, sizes.max()), np.inf)
        for i, b in enumerate(names):
            padded[i, :sizes[i]] = v[labels == b]
        chosen = rng.integers(0, names.size, size=(resamples, names.size, 1))
        picks = (rng.random((resamples, names.size, sizes.max())) * sizes[chosen]).astype(int)
        drawn = np.where(np.arange(sizes.max()) < sizes[chosen], padded[chosen, picks], np.inf)
        drawn = np.sort(drawn.reshape(resamples, -1), axis=1)  # the padding (inf) sorts last
        k, rows = sizes[chosen].sum(axis=(1, 2)), np.arange(resamples)
        medians = (drawn[rows, (k - 1) // 2] + drawn[rows, k // 2]) / 2
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(np.median(v)), float(low), float(high)


def blocks_of(n: int, blocks: int) -> list[int]:
    """Block labels of ``n`` pairs in time order, cut into ``blocks`` runs as equal as can be (start, middle, end).

    >>> blocks_of(7, 3)
    [0, 0, 0, 1, 1, 2, 2]
    """
    return [min(i * blocks // n, blocks - 1) for i in range(n)] if n else []


# --- paired ratios -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairedRatio:
    """A measured ratio numerator/denominator and the evidence behind it.

    ``ratio`` is the median over pairs of (numerator time / denominator time),
    ``low``..``high`` its 95 % bootstrap interval (over ``blocks`` blocks of
    pairs, see :func:`block_bootstrap`), ``width`` the interval's half-width
    relative to ``ratio``.  ``reliable`` is False when the ratio stayed below
    ``floor`` (physics forbids it: the measurement is wrong, not the code)
    after ``attempts`` tries; ``note`` says why.  ``pair_blocks`` labels each
    pair's block.
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
    pair_blocks: tuple = ()
    blocks: int = 1

    @property
    def pair_ratios(self) -> np.ndarray:
        return np.asarray(self.numerator_samples) / np.maximum(np.asarray(self.denominator_samples), 1e-300)

    def shown(self, digits: int = 2) -> str:
        """The ratio with its interval, or why it is not shown (an unreliable ratio is never printed)."""
        if not self.reliable:
            return "unreliable"
        return f"{self.ratio:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class Ratio:
    """One ratio to measure, and the rules of its measurement (see :func:`paired_ratios`)."""

    numerator: Callable[[], Any]
    denominator: Callable[[], Any]
    floor: float = 1.0
    budget_s: float = 5.0
    target: float = RATIO_TARGET
    min_pairs: int = MIN_PAIRS
    max_pairs: int = 500
    min_time_s: float = 0.0
    attempts: int = 3
    numerator_times_itself: bool = False
    blocks: int = 1
    least_pairs: int = 2         # pairs even when the budget ends first (a block of a ratio measured apart: 1)
    numerator_known_s: float = 0.0  # the numerator's seconds a call, when measured before (see Timed.calibrated)


@dataclass
class _Running:
    """The state of one ratio during a round-robin: its samplers, the current attempt's pairs and time spent."""

    spec: Ratio
    numerator: Timed
    denominator: Timed
    nums: list = field(default_factory=list)
    dens: list = field(default_factory=list)
    spent: float = 0.0
    tries: int = 1
    result: PairedRatio | None = None

    def take_pair(self, clock: Callable[[], float]) -> None:
        start = clock()
        self.dens.append(self.denominator.sample(clock))
        self.nums.append(self.numerator.sample(clock))
        self.spent += clock() - start

    def attempt_over(self) -> bool:
        """Enough pairs and a narrow enough interval, or the budget spent (or the pair limit reached)."""
        s, n = self.spec, len(self.nums)
        out_of_time = self.spent >= s.budget_s
        if n >= s.max_pairs or (n < s.min_pairs and out_of_time and n >= s.least_pairs):
            return True
        if n < s.min_pairs:
            return False
        return (self._stats()[3] <= s.target and sum(self.nums) >= s.min_time_s) or out_of_time

    def _stats(self) -> tuple[float, float, float, float]:
        ratios = np.asarray(self.nums) / np.maximum(np.asarray(self.dens), 1e-300)
        mid, low, high = block_bootstrap(ratios, blocks_of(ratios.size, self.spec.blocks))
        width = max(mid - low, high - mid) / mid if mid > 0 else np.inf
        return mid, low, high, float(width)

    def finish_attempt(self) -> bool:
        """Record the attempt; True when the ratio is done (it clears its floor, or the attempts are spent)."""
        s = self.spec
        mid, low, high, width = self._stats()
        reliable = mid >= s.floor
        note = "" if reliable else (f"measured {mid:.3g} < floor {s.floor:.3g} after {self.tries} "
                                    f"attempt{'s' if self.tries > 1 else ''}: a timing fault, not a finding")
        if reliable and len(self.nums) < s.min_pairs:
            note = (f"{len(self.nums)} pairs only when the budget ended (a median needs {s.min_pairs}): the "
                    "interval is the spread of those pairs, not an established one")
        elif reliable and width > s.target:
            note = f"interval +-{100 * width:.0f} % (target +-{100 * s.target:.0f} %) when the budget ended"
        self.result = PairedRatio(
            ratio=mid, low=low, high=high, width=width, pairs=len(self.nums), numerator_s=float(np.median(self.nums)),
            denominator_s=float(np.median(self.dens)), floor=float(s.floor), reliable=reliable, attempts=self.tries,
            note=note, numerator_samples=tuple(self.nums), denominator_samples=tuple(self.dens),
            pair_blocks=tuple(blocks_of(len(self.nums), s.blocks)), blocks=min(s.blocks, len(self.nums)))
        if reliable or self.tries >= s.attempts:
            return True
        self.nums, self.dens, self.spent, self.tries = [], [], 0.0, self.tries + 1  # a real re-measurement
        return False


def paired_ratios(ratios: Mapping[Hashable, Ratio], *, sample_s: float = SAMPLE_S, bursts: int = BURSTS,
                  clock: Callable[[], float] = time.perf_counter, seed: int = 0) -> dict[Hashable, PairedRatio]:
    """Measure every ratio at once, round-robin: each round takes one pair of every ratio still measuring.

    A pair is one sample of the denominator then one of the numerator (see
    :class:`Timed`), so both see the same machine state; the ratio is taken
    per pair.  The ratios visit in a fresh seeded random order each round,
    so every ratio's pairs spread over the whole measurement, and with
    ``Ratio.blocks`` > 1 its interval is the hierarchical bootstrap over
    that many runs of its pairs (start, middle, end): what drifted during the
    measurement is in the interval.  A ratio takes pairs until its interval is
    within ``target`` (relative half-width) and its numerator's samples add up
    to ``min_time_s``, or its own sampling time reaches ``budget_s``; the width
    reached is recorded.  A median below ``floor`` (a gradient cheaper than its
    function, or below the matrix-product floor) is a measurement fault: its
    pairs are discarded and it is measured again, with the budget again, up to
    ``attempts`` times; if it stays below, the result says ``reliable=False``.
    """
    _collect_young()  # (each callable's warm-up call follows, in calibration)
    running = {k: _Running(r, Timed.calibrated(r.numerator, clock=clock, sample_s=sample_s, bursts=bursts,
                                               own_time=r.numerator_times_itself, known_s=r.numerator_known_s),
                           Timed.calibrated(r.denominator, clock=clock, sample_s=sample_s, bursts=bursts))
               for k, r in ratios.items()}
    active, rng = list(running), random.Random(seed)
    while active:
        rng.shuffle(active)
        for k in active:
            running[k].take_pair(clock)
        active = [k for k in active if not (running[k].attempt_over() and running[k].finish_attempt())]
        _collect_young()
    return {k: running[k].result for k in ratios}


def paired_ratio(numerator: Callable[[], Any], denominator: Callable[[], Any], *, sample_s: float = SAMPLE_S,
                 bursts: int = BURSTS, clock: Callable[[], float] = time.perf_counter, seed: int = 0,
                 **rules) -> PairedRatio:
    """Time ``numerator`` against ``denominator`` interleaved, pair by pair, and return their ratio.

    One ratio of :func:`paired_ratios`; ``rules`` are the fields of
    :class:`Ratio` (``floor``, ``budget_s``, ``target``, ``min_pairs``,
    ``max_pairs``, ``min_time_s``, ``attempts``, ``numerator_times_itself``,
    ``blocks``, ``least_pairs``, ``numerator_known_s``).  ``clock`` is
    injectable so the protocol can be tested without wall time:

    >>> now = [0.0]
    >>> def forward(): now[0] += 1.0
    >>> def gradient(): now[0] += 3.0
    >>> r = paired_ratio(gradient, forward, clock=lambda: now[0], sample_s=0, budget_s=100)
    >>> r.ratio, r.width, r.pairs, r.reliable
    (3.0, 0.0, 7, True)
    """
    spec = Ratio(numerator, denominator, **rules)
    return paired_ratios({0: spec}, sample_s=sample_s, bursts=bursts, clock=clock, seed=seed)[0]


def merge_blocks(parts: list[PairedRatio], *, target: float = RATIO_TARGET) -> PairedRatio:
    """One ratio from measurements of it taken at different times (each one block): the hierarchical bootstrap.

    Every part's pairs are pooled, each part a block (a part that was itself
    measured in blocks keeps them apart).  The result is unreliable when the
    pooled median is below the floor (the highest of the parts' floors).
    """
    good = [p for p in parts if p.reliable] or parts  # a block that stayed below its floor was a timing fault
    nums, dens, labels = [], [], []
    for part in good:
        base = max(labels, default=-1) + 1
        nums += part.numerator_samples
        dens += part.denominator_samples
        labels += [base + b for b in (part.pair_blocks or (0,) * part.pairs)]
    ratios = np.asarray(nums) / np.maximum(np.asarray(dens), 1e-300)
    mid, low, high = block_bootstrap(ratios, labels)
    width = max(mid - low, high - mid) / mid if mid > 0 else float("inf")
    floor = max(p.floor for p in parts)
    reliable = mid >= floor and good[0].reliable
    dropped = len(parts) - len(good)
    notes = [f"{dropped} of {len(parts)} blocks stayed below the floor and were left out"] if dropped else []
    if not reliable:
        notes = [f"measured {mid:.3g} < floor {floor:.3g} in every block: a timing fault, not a finding"]
    elif width > target:
        notes.append(f"interval +-{100 * width:.0f} % over {len(set(labels))} blocks (target +-{100 * target:.0f} "
                     "%): the ratio moved between blocks")
    return replace(good[0], ratio=mid, low=low, high=high, width=float(width), pairs=len(nums),
                   numerator_s=float(np.median(nums)), denominator_s=float(np.median(dens)), floor=float(floor),
                   reliable=reliable, attempts=max(p.attempts for p in parts), note="; ".join(notes),
                   numerator_samples=tuple(nums), denominator_samples=tuple(dens), pair_blocks=tuple(labels),
                   blocks=len(set(labels)))
