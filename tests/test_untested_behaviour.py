"""Behaviour the README documents that no other test checked, each against an independent number.

The independent numbers: the seeds' printed values (transcribed below with their file), closed forms derived by
hand and evaluated in mpmath, and finite differences computed here in plain float64.
"""
from __future__ import annotations

import re

import mpmath
import numpy as np
import pandas as pd
import pytest

import diffkit as dk
from diffkit.cli import main
from diffkit.commands import demo
from diffkit.methods import METHODS, MethodOutput

# What the seed documents print (/work/shared/seeds/): 002 (the circuit f = (x + y) z at (-2, 5, -4), and the
# sigmoid neuron, 0.73 and its five partials to two places), 003 (the relu chain: dL/dw1 = 80).
SEED_PRINTED = {
    "seed_circuit": {"value": -12.0, "x": -4.0, "y": -4.0, "z": 3.0},
    "seed_sigmoid_neuron": {"value": 0.73, "w0": -0.2, "w1": -0.39, "w2": 0.2, "x0": 0.39, "x1": -0.59},
    "seed_relu_chain": {"w1": 80.0},
}


def _sigmoid_neuron_closed_form():
    """sigma(w0 x0 + w1 x1 + w2) at w = (2, -3, -3), x = (-1, -2): the argument is 1; d sigma = s (1 - s)."""
    with mpmath.workdps(40):
        s = 1 / (1 + mpmath.e ** -1)
        w0, w1, x0, x1 = 2, -3, -1, -2
        return {"value": s, "w0": s * (1 - s) * x0, "w1": s * (1 - s) * x1, "w2": s * (1 - s),
                "x0": s * (1 - s) * w0, "x1": s * (1 - s) * w1}


# --- diffkit demo ---------------------------------------------------------------------------------------------

def test_demo_prints_the_seeds_numbers_and_the_digits_of_each_method(capsys, monkeypatch):
    # the symbolic method takes ~20 s at P = 131 (its budget is tested in test_symbolic.py); the rest run here
    every = demo._methods_for
    monkeypatch.setattr(demo, "_methods_for", lambda prob: [m for m in every(prob) if m != "symbolic"])
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for problem, printed in SEED_PRINTED.items():
        block = out.split(f"{problem}: ")[1].split("\n\n")[0].split("seed_")[0]
        for name, number in printed.items():
            if name == "value":
                got = float(re.match(r"f = (\S+)", block).group(1))
            else:
                got = float(re.search(rf"d f / d {name}\s+= (\S+)", block).group(1))
            # the seeds print two decimals: the demo's 6 significant digits round to them
            assert abs(got - number) <= 0.005 + 1e-12, (problem, name, got, number)
    closed = _sigmoid_neuron_closed_form()
    neuron = out.split("seed_sigmoid_neuron: ")[1].split("seed_relu_chain")[0]
    for name in ("w0", "w1", "w2", "x0", "x1"):
        got = float(re.search(rf"d f / d {name}\s+= (\S+)", neuron).group(1))
        assert abs(got - float(closed[name])) <= 5e-7 * abs(float(closed[name]))  # printed to 6 digits
    digits = {m: float(d) for m, d in re.findall(r"^  (\w+)\s+([\d.]+) digits", out, flags=re.M)}
    # the error model's floors at P = 131 (see test_finite_differences.py): exact methods keep ~14 digits,
    # forward differences about half of float64's
    assert digits["reverse"] >= 13 and digits["complex_step"] >= 13
    assert 4 <= digits["forward"] <= 9 and 6 <= digits["central"] <= 11 and digits["richardson"] >= 8


# --- diffkit sweep --------------------------------------------------------------------------------------------

def _baydin(x):
    """Baydin et al. (2018) Fig. 3: f(x) = 64 x (1 - x) (1 - 2x)^2 (1 - 8x + 8x^2)^2, written here again."""
    return 64 * x * (1 - x) * (1 - 2 * x) ** 2 * (1 - 8 * x + 8 * x ** 2) ** 2


def test_sweep_csv_errors_are_the_hand_computed_differences_against_the_closed_form(tmp_path, capsys):
    path = tmp_path / "sweep.csv"
    assert main(["sweep", "--problem", "baydin", "--methods", "forward,central", "--steps=-7,-3,5",
                 "--csv", str(path)]) == 0
    assert "wrote 10 rows" in capsys.readouterr().out
    df = pd.read_csv(path)
    with mpmath.workdps(40):
        x0 = mpmath.mpf(1) / 5
        exact = mpmath.diff(_baydin, x0)  # mpmath differentiates the polynomial itself: no diffkit in the way
        second = mpmath.diff(_baydin, x0, 2)
        # the exact rational that the polynomial's expansion gives (mpmath.diff is numerical, to ~35 digits)
        assert abs(exact - mpmath.mpf(708288) / 78125) < mpmath.mpf(10) ** -30
    x = 0.2
    for _, row in df.iterrows():
        h = (x + row["h"]) - x  # a relative step at |x| < 1 is absolute; the divisor is the representable step
        if row["method"] == "forward":
            estimate = (_baydin(x + h) - _baydin(x)) / h
        else:
            estimate = (_baydin(x + h) - _baydin(x - h)) / (2 * h)
        assert row["error"] == pytest.approx(abs(estimate - float(exact)), rel=1e-9, abs=1e-15), row.to_dict()
    # where truncation dominates (h = 1e-3), the forward error is h |f''| / 2 to leading order
    big = df[(df["method"] == "forward") & np.isclose(df["h"], 1e-3)].iloc[0]
    assert big["error"] == pytest.approx(0.5e-3 * abs(float(second)), rel=0.05)


# --- a successful diffkit report ------------------------------------------------------------------------------

def _seeds_table(markdown: str) -> pd.DataFrame:
    section = markdown.split("## 2. The seeds' worked examples")[1].split("\n## ")[0]
    lines = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith("| ---")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return pd.DataFrame([[c.strip() for c in l.strip("|").split("|")] for l in lines[1:]], columns=header)


def _check_seeds_table_against_closed_forms(markdown: str) -> None:
    table = _seeds_table(markdown).rename(columns={"problem": "problem_name", "mpmath reference": "reference",
                                                   "printed: digits": "printed_digits"})
    table = table.set_index(["problem_name", "component"])
    closed = _sigmoid_neuron_closed_form()
    for name, value in closed.items():
        row = table.loc[("seed_sigmoid_neuron", name)]
        # the reference column, to its 10 printed digits, is the closed form
        assert abs(float(row["reference"]) - float(value)) <= 1e-9 * abs(float(value)), (name, row["reference"])
        # the printed number's digits: -log10 of its relative error against the closed form, to one decimal
        printed = SEED_PRINTED["seed_sigmoid_neuron"][name]
        digits = -mpmath.log10(abs((printed - value) / value))
        assert float(row["printed_digits"]) == pytest.approx(float(digits), abs=0.051), name
    assert table.loc[("seed_circuit", "x"), "reference"] == "-4" and table.loc[("seed_relu_chain", "w1"),
                                                                                "reference"] == "80"


def test_committed_report_agrees_with_the_closed_forms():
    from pathlib import Path

    _check_seeds_table_against_closed_forms((Path(__file__).resolve().parents[1] / "reports" / "index.md").read_text())


@pytest.mark.slow
def test_report_on_the_seeds_study_writes_numbers_that_agree_with_the_closed_forms(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--studies", "seeds", "--out", str(out), "--store", str(tmp_path / "r.sqlite"),
                 "--quiet"]) == 0
    assert "report written to" in capsys.readouterr().out
    assert (out / "index.html").stat().st_size > 0 and (out / "data" / "seeds.csv").exists()
    _check_seeds_table_against_closed_forms((out / "index.md").read_text())


# --- dk.register_method ---------------------------------------------------------------------------------------

def test_a_registered_method_is_what_dk_gradient_runs(monkeypatch):
    calls = []

    def closed_form(f, theta, *, scale=1.0):
        """The exact gradient of f = sum(t^3) / 3, t^2, derived by hand (f itself is evaluated once)."""
        calls.append(theta.copy())
        return MethodOutput(f(theta), scale * theta ** 2, {"note": "by hand"})
    monkeypatch.setitem(METHODS, "toy", METHODS.get("reverse"))  # a slot restored (and the toy removed) after
    dk.register_method("toy", "automatic", "sum(t^3)/3 by hand")(closed_form)
    theta = np.array([1.0, -2.0, 0.5])
    r = dk.gradient(lambda t: dk.namespace(t).sum(t ** 3) / 3, theta, method="toy")
    assert r.grad.tolist() == [1.0, 4.0, 0.25] and r.value == pytest.approx((1 - 8 + 0.125) / 3, rel=1e-15)
    assert r.method == "toy" and r.cost.evaluations == 1 and r.cost.counters == {"note": "by hand"}
    assert len(calls) == 1 and calls[0].tolist() == theta.tolist()
    assert dk.gradient(lambda t: dk.namespace(t).sum(t), theta, method="toy", scale=2.0).grad.tolist() == [2, 8, .5]
    assert any(line.startswith("toy") and "sum(t^3)/3 by hand" in line for line in dk.methods())
    with pytest.raises(TypeError, match="unknown option.*bogus.*its options are: scale"):
        dk.gradient(lambda t: t[0], theta, method="toy", bogus=1)


# --- the kink convention and its certification ----------------------------------------------------------------

def _relu_sum(t):
    return dk.namespace(t).sum(dk.nn.relu(t))


def test_certification_raises_exactly_at_a_kink_and_the_convention_is_relu_prime_0_equals_1():
    theta = np.array([0.0, 1.5, -2.0])
    with pytest.raises(dk.CertificationError, match=r"along theta\[0\].*kink.*certify=False"):
        dk.reference(_relu_sum, theta)
    ref = dk.reference(_relu_sum, theta, certify=False)
    assert ref.grad.tolist() == [1.0, 1.0, 0.0]  # relu'(0) = 1 by convention; relu' = 1 above 0, 0 below
    assert dk.gradient(_relu_sum, theta).grad.tolist() == [1.0, 1.0, 0.0]  # the tape keeps the same convention
    away = np.array([1e-3, 1.5, -2.0])  # off the kink, certification passes
    assert dk.reference(_relu_sum, away).grad.tolist() == [1.0, 1.0, 0.0]


# --- the complex step refuses kinks ---------------------------------------------------------------------------

def _minimum(t):
    xp = dk.namespace(t)
    return xp.minimum(t[0], t[1])


def _maximum_with_0(t):
    xp = dk.namespace(t)
    return xp.sum(xp.maximum(t, 0.0))


@pytest.mark.parametrize("f,theta", [(_minimum, [1.0, 1.0]), (_maximum_with_0, [0.0, 2.0]),
                                     (lambda t: dk.namespace(t).sum(dk.namespace(t).abs(t)), [0.0, 1.0]),
                                     (_relu_sum, [0.5, 1.0])], ids=["minimum-tie", "maximum-kink", "abs-0", "relu"])
def test_complex_step_refuses_a_kink(f, theta):
    with pytest.raises(dk.NotAnalyticError, match="complex step|relu"):
        dk.gradient(f, np.array(theta), method="complex_step")


def test_complex_step_off_the_kink_is_the_one_sided_derivative():
    assert dk.gradient(_minimum, np.array([1.0, 2.0]), method="complex_step").grad.tolist() == [1.0, 0.0]
    assert dk.gradient(lambda t: dk.namespace(t).max(t), np.array([1.0, 3.0]),
                       method="complex_step").grad.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("op", ["max", "min"])
def test_complex_step_refuses_max_and_min_at_a_tie(op):
    with pytest.raises(dk.NotAnalyticError, match=rf"{op}: .*equal real parts.*method='central' or 'reverse'"):
        dk.gradient(lambda t: getattr(dk.namespace(t), op)(t), np.array([1.0, 1.0]), method="complex_step")
    with pytest.raises(dk.NotAnalyticError, match=op):  # a tie along an axis, in the second row only
        dk.gradient(lambda t: dk.namespace(t).sum(getattr(dk.namespace(t), op)(t, axis=1)),
                    np.array([[1.0, 2.0], [3.0, 3.0]]), method="complex_step")


def test_complex_step_at_a_tie_of_unperturbed_entries_is_the_derivative():
    # a direction that leaves the tied entries alone: max(2, 2, 1 + ih) moves nowhere, so no kink is crossed
    theta = np.array([[2.0, 2.0, 1.0], [0.5, 4.0, 3.0]])
    v = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    got = dk.fd_jvp(lambda t: dk.namespace(t).sum(dk.namespace(t).max(t, axis=1)), theta, v, method="complex_step")
    assert float(got) == 1.0  # only row 2's maximum t[1, 1] moves, at unit speed


def _where_kink(t):
    xp = dk.namespace(t)
    return xp.sum(xp.where(t > 0, t, 2 * t))


@pytest.mark.parametrize("theta,expected", [([0.0, 1.0], [2.0, 1.0]), ([-1e-300, 1e-300], [2.0, 1.0])])
def test_complex_step_comparisons_look_at_the_real_part(theta, expected):
    # at t = 0 the real f takes the 2t branch (0 > 0 is false): its left derivative is 2, as the tape's
    # convention; numpy alone would order 0 + ih > 0 by the imaginary part and take the t branch
    got = dk.gradient(_where_kink, np.array(theta), method="complex_step").grad.tolist()
    assert got == expected == dk.gradient(_where_kink, np.array(theta)).grad.tolist()
    v = np.array([1.0, 0.0])  # the directional complex step too
    assert float(dk.fd_jvp(_where_kink, np.array(theta), v, method="complex_step")) == expected[0]


def test_complex_step_comparisons_survive_the_namespace_ops():
    # np.where and concatenate return plain arrays; the complex namespace keeps the real-part comparison after them
    def f(t):
        xp = dk.namespace(t)
        u = xp.concatenate([t[:1], t[1:]])
        return xp.sum(xp.where(u >= 0, 3 * u, u) + xp.where(u == 0, 5 * u, 0 * u))
    assert dk.gradient(f, np.array([0.0, -1.0]), method="complex_step").grad.tolist() == [8.0, 1.0]


# --- GradientResult's repr inside nested differentiation ------------------------------------------------------

def test_gradient_result_repr_shows_a_traced_value_inside_an_outer_differentiation():
    shown = []

    def g(t):  # sum of grad(sum t^3) = sum 3 t^2: its gradient is 6 t
        inner = dk.gradient(lambda s: dk.namespace(s).sum(s ** 3), t)
        shown.append(repr(inner))
        return dk.namespace(t).sum(inner.grad)
    theta = np.array([1.0, 2.0])
    assert dk.gradient(g, theta).grad.tolist() == [6.0, 12.0]
    assert shown[-1].startswith("GradientResult(method='reverse', value=TArray(") and "9.0" in shown[-1]
    value, tangent = dk.jvp(g, theta, np.array([1.0, 0.0]))  # forward over reverse: d/dt0 of 3 t0^2 + 3 t1^2
    assert (float(value), float(tangent)) == (15.0, 6.0)
    assert "value=Dual(" in shown[-1] and "tangent=np.float64(3.0)" in shown[-1]  # d/dt0 of t0^3 + t1^3 at 1
    assert repr(dk.gradient(lambda s: dk.namespace(s).sum(s ** 3), theta)).startswith(
        "GradientResult(method='reverse', value=9, grad shape=(2,)")
