"""The timing protocol, tested with injected clocks: no wall time is asserted anywhere.

Fake calls cost milliseconds of fake time (as real calls do), so that the
protocol's choices that depend on a call's length (calls per burst, bursts
per sample) are the ones a real run makes.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diffkit.studies import timing
from diffkit.studies.timing import (Ratio, Timed, block_bootstrap, blocks_of, bootstrap_median, interleaved,
                                    merge_blocks, paired_ratio, paired_ratios)

MS = 2.0 ** -10  # about a millisecond, and exact in binary: sums and differences of fake times are exact


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
    r = paired_ratio(m.call(3 * MS), m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=1e6)
    assert (r.ratio, r.low, r.high, r.width, r.pairs) == (3.0, 3.0, 3.0, 0.0, 7)
    assert r.reliable and r.attempts == 1 and r.note == ""
    assert (r.numerator_s, r.denominator_s) == (3 * MS, 1 * MS)


def test_pairing_cancels_a_load_that_moves_4x_between_samples():
    # the load steps between 1 and 4 every 50 ms: a forward timed at one moment and a gradient at another would
    # disagree by up to 4x; timed in pairs they see nearly the same load
    m = FakeMachine(lambda t: 4.0 if int(t // 0.05) % 2 else 1.0)
    r = paired_ratio(m.call(2.5 * MS), m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=1e6, target=0.1)
    assert r.reliable
    assert r.low <= 2.5 <= r.high and r.width <= 0.1
    assert r.ratio == pytest.approx(2.5, rel=0.05)


def test_a_ratio_below_its_floor_is_remeasured_then_marked_unreliable():
    m = FakeMachine()
    r = paired_ratio(m.call(0.5 * MS), m.call(1 * MS), floor=1.0, clock=m.clock, sample_s=0, budget_s=1e6,
                     attempts=3)
    assert not r.reliable and r.attempts == 3
    assert "< floor 1" in r.note and "timing fault" in r.note
    assert r.shown() == "unreliable"


def test_a_ratio_that_recovers_on_remeasuring_is_reliable():
    # the first attempt's gradients run while the load is low (a fault); the second attempt sees the truth
    calls = {"n": 0}
    m = FakeMachine()

    def gradient():
        calls["n"] += 1
        m.now += (0.5 if calls["n"] <= 23 else 2.0) * MS  # warm-up + calibration + 7 pairs x 3 bursts: attempt 1
    r = paired_ratio(gradient, m.call(1 * MS), floor=1.0, clock=m.clock, sample_s=0, budget_s=1e6)
    assert r.reliable and r.attempts == 2 and r.ratio == 2.0


def test_a_sample_is_its_fastest_burst_so_a_descheduled_burst_does_not_count():
    m = FakeMachine()
    n = {"g": 0}

    def gradient():  # every third call is descheduled for 100x its cost
        n["g"] += 1
        m.now += 2 * MS * (100 if n["g"] % 3 == 0 else 1)
    r = paired_ratio(gradient, m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=1e6)
    assert r.ratio == 2.0 and r.width == 0.0


def test_noise_past_the_budget_records_the_width_reached():
    rng = np.random.default_rng(0)
    m = FakeMachine(lambda t: float(np.exp(rng.normal(0, 1.0))))  # independent heavy noise per call
    r = paired_ratio(m.call(2 * MS), m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=0.2, target=0.01, bursts=1)
    assert r.reliable
    assert r.width > 0.01 and "when the budget ended" in r.note
    assert r.pairs >= 7  # the budget allowed at least the minimum


def test_samples_fill_the_sample_time_with_back_to_back_calls():
    m = FakeMachine()
    counts = {"f": 0}

    def forward():
        counts["f"] += 1
        m.now += MS / 8
    r = paired_ratio(m.call(3 * MS / 8), forward, clock=m.clock, sample_s=20 * MS / 8, budget_s=1e6)
    assert r.ratio == 3.0 and r.denominator_s == MS / 8
    # 1 warm-up and 1 calibration call, then 7 samples, each the fastest of 3 bursts of 20 calls (the sample time)
    assert counts["f"] == 2 + 7 * 3 * 20


def test_a_call_too_long_for_several_bursts_takes_fewer():
    m = FakeMachine()
    assert Timed.calibrated(m.call(1 * MS), clock=m.clock).bursts == 3  # 3 bursts of 2 calls: 6 ms
    long = Timed.calibrated(m.call(70 * MS), clock=m.clock)
    assert (long.calls, long.bursts) == (1, 1)  # two would pass MAX_SAMPLE_S = 0.1 s
    assert Timed.calibrated(m.call(30 * MS), clock=m.clock).bursts == 3  # three take 0.09 s


def test_a_numerator_that_times_itself():
    m = FakeMachine()

    def gradient():
        m.now += 10 * MS  # argument checking and the rest, not part of the method's time
        return 3 * MS
    r = paired_ratio(gradient, m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=1e6, numerator_times_itself=True)
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
        now[0] += 1 * MS

    def gradient():
        now[0] += 3 * MS
    r = paired_ratio(gradient, forward, clock=lambda: now[0], sample_s=0, budget_s=10 * MS, bursts=1)
    assert r.pairs == 3 and r.ratio == 3.0 and "3 pairs only" in r.note and "not an established" in r.note


# --- drift: blocks and the hierarchical bootstrap -------------------------------------------------------------

def test_blocks_of_cut_pairs_in_time_order_into_start_middle_and_end():
    assert blocks_of(9, 3) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert blocks_of(2, 3) == [0, 1] and blocks_of(5, 1) == [0] * 5 and blocks_of(0, 3) == []


def test_block_bootstrap_covers_a_drift_planted_between_blocks():
    # the machine's state moves the ratio between the start, middle and end of a run: 3.0, 3.3, 3.15, each block's
    # 15 pairs agreeing to 0.3 %; the pairs' plain bootstrap sees only the pooled median's spread
    rng = np.random.default_rng(1)
    levels = [3.0, 3.3, 3.15]
    values = np.concatenate([lv * (1 + 0.003 * rng.standard_normal(15)) for lv in levels])
    labels = np.repeat([0, 1, 2], 15)
    mid, low, high = block_bootstrap(values, labels)
    assert low <= 3.0 * 1.003 and high >= 3.3 * 0.997  # every block's level is inside the stated interval
    _, plain_low, plain_high = bootstrap_median(values)
    assert plain_low > 3.0 * 1.01 or plain_high < 3.3 * 0.99  # one block: the drift is not in the interval
    assert mid == pytest.approx(float(np.median(values)))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.5, 8.0), min_size=2, max_size=30), st.integers(1, 4))
def test_block_bootstrap_interval_lies_within_the_values(values, blocks):
    mid, low, high = block_bootstrap(values, blocks_of(len(values), blocks))
    assert min(values) <= low <= high <= max(values)
    assert mid == pytest.approx(float(np.median(values)))
    assert block_bootstrap(values, blocks_of(len(values), blocks)) == (mid, low, high)  # seeded


def test_merge_blocks_pools_measurements_taken_apart_and_states_their_spread():
    m = FakeMachine()
    early = paired_ratio(m.call(3.0 * MS), m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=1e6)
    late = paired_ratio(m.call(3.3 * MS), m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=1e6)
    faulty = paired_ratio(m.call(0.5 * MS), m.call(1 * MS), clock=m.clock, sample_s=0, budget_s=1e6)
    merged = merge_blocks([early, late, faulty])
    assert merged.reliable and merged.blocks == 2 and merged.pairs == 14
    assert merged.low == pytest.approx(3.0) and merged.high == pytest.approx(3.3)
    assert merged.note == "1 of 3 blocks stayed below the floor and were left out"
    assert "+-5 % over 2 blocks (target +-1 %): the ratio moved between blocks" in merge_blocks([early, late],
                                                                                              target=0.01).note
    assert not merge_blocks([faulty]).reliable


def test_round_robin_spreads_every_ratios_pairs_over_the_whole_measurement():
    # two ratios: A is settled after its 7 pairs, B is noisy and keeps measuring; from round 5 on (t > 40 ms) the
    # machine's state makes A's gradient 10 % dearer against its forward
    m = FakeMachine()
    seen: list[str] = []
    rng = np.random.default_rng(0)

    def cost(name, base, drifts=False, noisy=False):
        def run():
            seen.append(name)
            drift = 1.1 if drifts and m.now > 0.04 else 1.0
            m.now += base * drift * (float(np.exp(rng.normal(0, 0.3))) if noisy else 1.0)
        return run
    ratios = {"A": Ratio(cost("gA", 3 * MS, drifts=True), cost("fA", 1 * MS), budget_s=1e6, blocks=3),
              "B": Ratio(cost("gB", 2 * MS, noisy=True), cost("fB", 1 * MS), budget_s=0.3, target=0.01, blocks=3)}
    out = paired_ratios(ratios, clock=m.clock, sample_s=0, bursts=1)
    a, b = out["A"], out["B"]
    assert a.pairs == 7 and b.pairs > 7
    first_rounds = seen[8:8 + 4 * 7]  # after the warm-up and calibration calls (2 each of 4 callables)
    for r in range(7):  # each of the first 7 rounds: one pair (forward, then gradient) of each ratio
        pairs = first_rounds[4 * r:4 * r + 4]
        assert sorted(pairs) == ["fA", "fB", "gA", "gB"]
        assert pairs.index("fA") + 1 == pairs.index("gA") and pairs.index("fB") + 1 == pairs.index("gB")
    assert len({tuple(first_rounds[4 * r:4 * r + 4]) for r in range(7)}) > 1  # the order changes between rounds
    assert a.low == pytest.approx(3.0) and a.high == pytest.approx(3.3)  # A's drift, start to end, is in it
    assert set(a.pair_blocks) == {0, 1, 2}


def test_interleaved_takes_one_sample_of_each_case_per_round_in_a_seeded_order():
    m = FakeMachine()
    seen: list[str] = []

    def case(name, cost):
        def run():
            seen.append(name)
            m.now += cost
        return run
    cases = {"x": case("x", 1 * MS), "y": case("y", 2 * MS), "z": case("z", 4 * MS)}
    out = interleaved(cases, 5, clock=m.clock, sample_s=0, bursts=1)
    assert out == {"x": [1 * MS] * 5, "y": [2 * MS] * 5, "z": [4 * MS] * 5}
    rounds = [tuple(seen[6 + 3 * r:9 + 3 * r]) for r in range(5)]
    assert all(sorted(r) == ["x", "y", "z"] for r in rounds) and len(set(rounds)) > 1
    seen[:] = []
    interleaved(cases, 5, clock=m.clock, sample_s=0, bursts=1)
    assert seen[6:] == [c for r in rounds for c in r]  # seeded: the same order every time


def test_collections_happen_outside_timed_calls_and_a_warm_up_call_follows_the_first(monkeypatch):
    # the convention: the collector as the user has it while calls are timed; young collections only, one before
    # the measurement (followed by an untimed call of every case) and one after each round; never a full one
    log: list = []
    monkeypatch.setattr(timing.gc, "collect", lambda generation=2: log.append(("collect", generation)))
    m = FakeMachine()

    def case(name):
        def run():
            log.append((name, gc.isenabled()))
            m.now += MS
        return run
    interleaved({"f": case("f"), "g": case("g")}, 3, clock=m.clock, sample_s=0, bursts=1)
    assert log[0] == ("collect", 1)
    assert log[1:5] == [("f", True), ("f", True), ("g", True), ("g", True)]  # warm-up, then calibration
    body = log[5:]
    assert [e for e in body if e[0] == "collect"] == [("collect", 1)] * 3  # one after each round
    assert all(body[3 * r + 2] == ("collect", 1) for r in range(3))  # never inside a round's samples
    assert all(enabled for name, enabled in log if name != "collect")  # timed with the collector on


def test_the_collector_stays_as_the_user_has_it():
    m = FakeMachine()
    seen = []

    def call():
        seen.append(gc.isenabled())
        m.now += MS
    gc.disable()
    try:
        interleaved({"f": call}, 2, clock=m.clock, sample_s=0)
        assert not gc.isenabled() and not any(seen)
    finally:
        gc.enable()


def test_a_long_call_measured_before_is_not_called_again_to_calibrate():
    m = FakeMachine()
    count = {"n": 0}

    def gradient():
        count["n"] += 1
        m.now += 200 * MS
    long = Timed.calibrated(gradient, clock=m.clock, known_s=0.2)
    assert count["n"] == 0 and (long.calls, long.bursts) == (1, 1)
    Timed.calibrated(gradient, clock=m.clock)  # unknown: the first call took 0.2 s, its own warm-up, and decided
    assert count["n"] == 1


def test_a_slow_first_call_of_a_call_known_to_be_short_is_timed_again():
    # a cache filled on the first call (a symbolic gradient compiles): 0.5 s, then 0.1 ms warm
    m = FakeMachine()
    count = {"n": 0}

    def gradient():
        count["n"] += 1
        m.now += 0.5 if count["n"] == 1 else MS / 8
    timed = Timed.calibrated(gradient, clock=m.clock, known_s=MS / 8)
    assert count["n"] == 2 and timed.calls == int(timing.SAMPLE_S / (MS / 8)) and timed.bursts == 3


def test_a_block_measured_apart_may_end_its_budget_with_one_pair():
    m = FakeMachine()
    one = paired_ratio(m.call(300 * MS), m.call(100 * MS), clock=m.clock, sample_s=0, budget_s=0.1, least_pairs=1)
    two = paired_ratio(m.call(300 * MS), m.call(100 * MS), clock=m.clock, sample_s=0, budget_s=0.1)
    assert (one.pairs, two.pairs) == (1, 2) and one.ratio == two.ratio == 3.0
