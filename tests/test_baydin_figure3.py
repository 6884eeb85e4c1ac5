"""Baydin et al. (2018), Figure 3: the published bands, against f' at the double nearest 0.2 (exact)."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import diffkit as dk
import mpmath

from diffkit.baydin import BAYDIN_REFERENCE, figure3_minima
from diffkit.baydin import BAYDIN_DF, baydin_f, baydin_figure3
from diffkit.fd_sweep import sweep_summary


@pytest.fixture(scope="module")
def figure():
    df = baydin_figure3()
    return df, sweep_summary(df).set_index("method")


@pytest.fixture(scope="module")
def minima(figure):
    return figure3_minima(figure[0]).set_index("method")


def test_reference_is_f_prime_at_the_double_nearest_one_fifth():
    # by hand: x0 = 0.2 + d with d = float(0.2) - 1/5 = 2^-54 / 5 * ... ; f'(x0) = f'(1/5) + f''(1/5) d + O(d^2)
    x = sympy.Symbol("x")
    f = baydin_f([x])
    d = sympy.Rational(0.2) - sympy.Rational(1, 5)
    f2 = sympy.diff(f, x, 2).subs(x, sympy.Rational(1, 5))
    with mpmath.workdps(60):
        first_order = mpmath.mpf(708288) / 78125 + mpmath.mpf(f2.p) / f2.q * mpmath.mpf(d.p) / d.q
        assert abs(BAYDIN_REFERENCE - first_order) < 1e-30  # the O(d^2) term is ~1e-31
        # the issue's 7.5e-16 between f' at the double and at 1/5: not a float's rounding
        assert 7.4e-16 < BAYDIN_REFERENCE - BAYDIN_DF < 7.6e-16


def test_complex_step_floor_is_about_7e_16_from_several_steps(minima):
    cs = minima.loc["complex_step"]
    # f'(x0) = 9.0660864000000007482..., whose nearest double is 9.066086400000000 + 6.85e-16 away
    with mpmath.workdps(60):
        nearest = mpmath.mpf(float(BAYDIN_REFERENCE))
        gap = float(abs(nearest - BAYDIN_REFERENCE))
    assert cs["error_min"] == pytest.approx(gap, rel=1e-6) and 6e-16 < cs["error_min"] < 8e-16
    assert cs["points_at_min"] >= 3  # reached at many steps of the flat floor, not one
    assert cs["h_floor_low"] <= 1e-15 and cs["h_floor_high"] >= 1e-10  # the floor is a range of h


def test_minima_are_not_one_lucky_point(minima):
    assert (minima["points_at_min"] >= 3).all()
    assert (minima["error_min"] >= minima["lowest_point"]).all()
    assert 1e-7 <= minima.loc["central", "h_best"] <= 1e-6 and 1e-11 <= minima.loc["central", "error_min"] <= 1e-9


def test_exact_values_by_sympy():
    x = sympy.Symbol("x")
    f = baydin_f([x])
    assert f.subs(x, sympy.Rational(1, 5)) == sympy.Rational(112896, 390625)
    assert sympy.diff(f, x).subs(x, sympy.Rational(1, 5)) == sympy.Rational(708288, 78125)
    assert float(BAYDIN_DF) == 708288 / 78125


def test_reference_agrees_with_exact():
    ref = dk.reference(baydin_f, np.array([0.2]), digits=50)
    # float 0.2 is 1/5 + 1.1e-17; f'' = 67.4 moves f' by 7.5e-16; the referee agrees with the exact value at x0
    assert abs(ref.grad_mp[0] - BAYDIN_REFERENCE) < 1e-40


def test_forward_band(figure):
    _, s = figure
    assert 1e-9 <= s.loc["forward", "min_error"] <= 1e-7
    assert 1e-9 <= s.loc["forward", "h_at_min"] <= 1e-8


def test_central_band(figure):
    _, s = figure
    assert 1e-11 <= s.loc["central", "min_error"] <= 1e-9
    # the raw argmin sits on the noisy round-off side (measured 5.6e-8); the smoothed V has its minimum in band
    assert 1e-7 <= s.loc["central", "h_at_min_smoothed"] <= 1e-6
    assert 1e-7 <= s.loc["central", "h_opt"] <= 1e-6


def test_complex_step_floor(figure):
    df, s = figure
    cs = df[df["method"] == "complex_step"]
    assert cs[cs["h"] <= 1e-9]["error"].max() <= 1e-14
    # at h = 1e-8 the error is the truncation term h^2 |f'''| / 6 with f'''(1/5) = -3948.87168 (not round-off):
    at = cs[np.isclose(cs["h"], 1e-8)].iloc[0]
    assert at["error"] == pytest.approx(1e-16 * 3948.87168 / 6, rel=0.05)
    assert 1e-9 <= s.loc["complex_step", "h_opt"] <= 1e-8


def test_richardson_beats_central(figure):
    _, s = figure
    assert s.loc["richardson", "min_error"] < 1e-12 < s.loc["central", "min_error"]
