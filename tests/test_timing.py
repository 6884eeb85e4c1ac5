"""The paired timing protocol, tested with injected clocks: no wall time is asserted anywhere."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diffkit.studies.timing import bootstrap_median, paired_ratio


class FakeMachine:
    """A clock that only moves when a fake call runs; ``load(t)`` multiplies every call's cost (the shared
    machine's noise), so forward and gradient timed at different moments see different loads."""

    def __init__(self, load=lambda t: 1.0):
        self.now, self.load = 0.0, load

    def clock(self) -> float:
        return self.now

    def call(self, cost: float):
        def run():
            self.now += cost * self.load(self.now)
        return run


def test_constant_costs_give_the_exact_ratio_with_zero_width():
    m = FakeMachine()
    r = paired_ratio(m.call(3.0), m.call(1.0), clock=m.clock, sample_s=0, budget_s=1e6)
    assert (r.ratio, r.low, r.high, r.width, r.pairs) == (3.0, 3.0, 3.0, 0.0, 7)
    assert r.reliable and r.attempts == 1 and r.note == ""
    assert (r.numerator_s, r.denominator_s) == (3.0, 1.0)


def test_pairing_cancels_a_load_that_moves_4x_between_samples():
    # the load steps between 1 and 4 every 5 time units: a forward timed at one moment and a gradient at
    # another would disagree by up to 4x; timed in pairs they see nearly the same load
    m = FakeMachine(lambda t: 4.0 if int(t // 50) % 2 else 1.0)
    r = paired_ratio(m.call(2.5), m.call(1.0), clock=m.clock, sample_s=0, budget_s=1e6, target=0.1)
    assert r.reliable
    assert r.low <= 2.5 <= r.high and r.width <= 0.1
    assert r.ratio == pytest.approx(2.5, rel=0.05)


def test_a_ratio_below_its_floor_is_remeasured_then_marked_unreliable():
    m = FakeMachine()
    r = paired_ratio(m.call(0.5), m.call(1.0), floor=1.0, clock=m.clock, sample_s=0, budget_s=1e6, attempts=3)
    assert not r.reliable and r.attempts == 3
    assert "< floor 1" in r.note and "timing fault" in r.note
    assert r.shown() == "unreliable"


def test_a_ratio_that_recovers_on_remeasuring_is_reliable():
    # the first attempt's gradients run while the load is low (a fault); the second attempt sees the truth
    calls = {"n": 0}
    m = FakeMachine()

    def gradient():
        calls["n"] += 1
        m.now += 0.5 if calls["n"] <= 22 else 2.0  # one calibration call + 7 pairs x 3 bursts: the first attempt
    r = paired_ratio(gradient, m.call(1.0), floor=1.0, clock=m.clock, sample_s=0, budget_s=1e6)
    assert r.reliable and r.attempts == 2 and r.ratio == 2.0


def test_a_sample_is_its_fastest_burst_so_a_descheduled_burst_does_not_count():
    m = FakeMachine()
    n = {"g": 0}

    def gradient():  # every third call is descheduled for 100x its cost
        n["g"] += 1
        m.now += 2.0 * (100 if n["g"] % 3 == 0 else 1)
    r = paired_ratio(gradient, m.call(1.0), clock=m.clock, sample_s=0, budget_s=1e6)
    assert r.ratio == 2.0 and r.width == 0.0


def test_noise_past_the_budget_records_the_width_reached():
    rng = np.random.default_rng(0)
    m = FakeMachine(lambda t: float(np.exp(rng.normal(0, 1.0))))  # independent heavy noise per call
    r = paired_ratio(m.call(2.0), m.call(1.0), clock=m.clock, sample_s=0, budget_s=60.0, target=0.01, bursts=1)
    assert r.reliable
    assert r.width > 0.01 and "when the budget ended" in r.note
    assert r.pairs >= 7  # the budget allowed at least the minimum


def test_samples_fill_the_sample_time_with_back_to_back_calls():
    m = FakeMachine()
    counts = {"f": 0}

    def forward():
        counts["f"] += 1
        m.now += 1e-4
    r = paired_ratio(m.call(3e-4), forward, clock=m.clock, sample_s=2e-3, budget_s=1e6)
    assert r.ratio == pytest.approx(3.0) and r.denominator_s == pytest.approx(1e-4)
    # 1 calibration call, then 7 samples, each the fastest of 3 bursts of 2e-3 / 1e-4 = 20 calls
    assert counts["f"] == 1 + 7 * 3 * 20


def test_a_numerator_that_times_itself():
    m = FakeMachine()

    def gradient():
        m.now += 10.0  # argument checking and the rest, not part of the method's time
        return 3.0
    r = paired_ratio(gradient, m.call(1.0), clock=m.clock, sample_s=0, budget_s=1e6, numerator_times_itself=True)
    assert r.ratio == 3.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.1, 10.0), min_size=3, max_size=40))
def test_bootstrap_interval_holds_the_median(values):
    mid, low, high = bootstrap_median(values)
    assert mid == pytest.approx(float(np.median(values)))
    assert min(values) <= low <= high <= max(values)
    assert bootstrap_median(values) == (mid, low, high)  # seeded: the same interval every time


def test_a_ratio_cut_short_by_its_budget_says_its_interval_is_not_established():
    now = [0.0]

    def forward():
        now[0] += 1.0

    def gradient():
        now[0] += 3.0
    r = paired_ratio(gradient, forward, clock=lambda: now[0], sample_s=0, budget_s=10, bursts=1)
    assert r.pairs == 3 and r.ratio == 3.0 and "3 pairs only" in r.note and "not an established" in r.note
