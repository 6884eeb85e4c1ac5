"""Baydin et al. (2018), Figure 3: the issue's bands, against the exact derivative f'(1/5) = 708288/78125."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import diffkit as dk
from diffkit.fd_sweep import BAYDIN_DF, baydin_f, baydin_figure3, sweep_summary


@pytest.fixture(scope="module")
def figure():
    df = baydin_figure3()
    return df, sweep_summary(df).set_index("method")


def test_exact_values_by_sympy():
    x = sympy.Symbol("x")
    f = baydin_f([x])
    assert f.subs(x, sympy.Rational(1, 5)) == sympy.Rational(112896, 390625)
    assert sympy.diff(f, x).subs(x, sympy.Rational(1, 5)) == sympy.Rational(708288, 78125)
    assert float(BAYDIN_DF) == 708288 / 78125


def test_reference_agrees_with_exact():
    ref = dk.reference(baydin_f, np.array([0.2]), digits=50)
    # float 0.2 is 1/5 - 1.1e-17; f'' = 67.4 moves f' by 7.5e-16: relative 1e-16
    assert abs(float(ref.grad_mp[0] - BAYDIN_DF)) < 2e-15


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
