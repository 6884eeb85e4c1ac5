"""Issue 7: the stability sweep against mpmath, hand-derived float64 thresholds, and the gradient traps."""
from __future__ import annotations

import math
import subprocess
import sys

import mpmath
import numpy as np
import pandas as pd
import pytest

import diffkit as dk
from diffkit.methods import METHODS
from diffkit.api import get_method
from diffkit.stability import CASES, EDGES, first_failures, stability_sweep, sweep_grid

U = 2.0 ** -53  # unit roundoff
# float64 edges derived by hand: 1 + 2^-53 rounds to 1; DBL_MAX = (2 - 2^-52) 2^1023; exp rounds to 0 below 2^-1075
ONE = 53 * math.log(2)
OVERFLOW = math.log((2 - 2.0 ** -52) * 2.0 ** 1023)
UNDERFLOW = 1075 * math.log(2)
DELTA = 1e-6  # far above the rounding of exp/log near the edges (~1e-13), far below the grid spacing


def test_edges_are_the_hand_derived_float64_constants():
    assert EDGES["one_plus_tiny"] == pytest.approx(ONE, rel=1e-15) and ONE == pytest.approx(36.7368005696771)
    assert EDGES["exp_overflow"] == pytest.approx(OVERFLOW, rel=1e-15) and OVERFLOW == pytest.approx(709.782712893384)
    assert EDGES["exp_underflow"] == pytest.approx(UNDERFLOW, rel=1e-15) and UNDERFLOW == pytest.approx(745.1332191019412)
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(OVERFLOW + DELTA)) and np.isfinite(np.exp(OVERFLOW - DELTA))
    assert np.exp(-UNDERFLOW - DELTA) == 0.0 and np.exp(-UNDERFLOW + DELTA) > 0.0
    assert 1.0 + np.exp(-ONE - DELTA) == 1.0 and 1.0 + np.exp(-ONE + DELTA) > 1.0


@pytest.mark.parametrize("name", list(CASES))
def test_referee_closed_forms_match_mpmath_diff(name):
    """The sweep's exact derivatives (closed forms) agree with mpmath's own numerical differentiation."""
    case = CASES[name]
    with mpmath.workdps(40):
        for x in (-30.5, -3.0, -0.25, 0.7, 2.5, 30.5):
            x = mpmath.mpf(x)
            numeric = mpmath.diff(case.value, x)
            assert abs(numeric - case.deriv(x)) <= mpmath.mpf(10) ** -30 * max(1, abs(numeric)), (name, x)


@pytest.fixture(scope="module")
def stable_sweep():
    grid = sweep_grid(coarse=101, edge_halfwidth=0.5, edge_points=11, tiny_points=20)
    return stability_sweep(variants=["stable"], methods=["reverse"], grid=grid)


def test_stable_variants_finite_and_within_1e_13_of_mpmath(stable_sweep):
    df = stable_sweep
    assert len(df) == 9 * 2 * df.x.nunique() and (df.status == "ok").all()
    assert df.finite.all(), df[~df.finite].head()
    inside = df[df.in_domain]
    worst = inside.loc[inside.rel_error.idxmax()]
    assert worst.rel_error <= 1e-13, worst.to_dict()
    # outside the documented domains (tanh', softmax', log_softmax' at saturation) the absolute error is rounding
    outside = df[~df.in_domain]
    assert set(outside.case) == {"tanh", "softmax", "log_softmax"} and set(outside.quantity) == {"grad"}
    assert (abs(outside.computed - outside.exact) <= 4 * U).all()


def test_documented_domains_are_where_the_stable_rules_first_lose_3_digits():
    # dense grid: the first loss of 3 digits lies outside each documented domain (derivations in diffkit.stability)
    df = stability_sweep(cases=["tanh", "softmax", "log_softmax"], variants=["stable"], methods=["reverse"],
                         grid=np.linspace(-12, 12, 241))
    ff = first_failures(df, lost=(3,)).set_index(["case", "quantity", "side"]).x_lost_3
    cancel = math.log(1e-13 / U)  # 6.80
    # tanh' = 4e/(1+e)^2 with e = exp(-2|x|) keeps every digit (1 - tanh^2 lost 3 digits past |x| = 3.4)
    assert np.isnan(ff["tanh", "grad", "positive"]) and np.isnan(ff["tanh", "grad", "negative"])
    assert cancel < ff["softmax", "grad", "positive"] < cancel + 1
    assert cancel < ff["log_softmax", "grad", "positive"] < cancel + 2
    assert ff.drop([("softmax", "grad", "positive"), ("log_softmax", "grad", "positive")]).isna().all()


# first non-finite input, scanning outward from 0, for each naive case: derived by hand in the comments
NAIVE_NONFINITE = {
    # 1/(1+e^-x): e^-x = inf below -OVERFLOW gives 0 (finite); its tape gradient 0 * inf = nan there
    ("sigmoid", "grad", "negative"): -OVERFLOW,
    # log(sigma): sigma = 0 below -OVERFLOW, log 0 = -inf; gradient 1/sigma = inf
    ("log_sigmoid", "value", "negative"): -OVERFLOW, ("log_sigmoid", "grad", "negative"): -OVERFLOW,
    # log(1 + e^x): inf above OVERFLOW; gradient (1/inf) * inf = nan
    ("softplus", "value", "positive"): OVERFLOW, ("softplus", "grad", "positive"): OVERFLOW,
    # (e^x - e^-x)/(e^x + e^-x): inf/inf = nan beyond OVERFLOW on both sides
    ("tanh", "value", "negative"): -OVERFLOW, ("tanh", "value", "positive"): OVERFLOW,
    ("tanh", "grad", "negative"): -OVERFLOW, ("tanh", "grad", "positive"): OVERFLOW,
    # log(e^x + e^0) = log(inf) above OVERFLOW
    ("logsumexp", "value", "positive"): OVERFLOW, ("logsumexp", "grad", "positive"): OVERFLOW,
    # e^x / (e^x + 1) = inf/inf
    ("softmax", "value", "positive"): OVERFLOW, ("softmax", "grad", "positive"): OVERFLOW,
    # log(e^x/(e^x+1)): the quotient is 0 (log = -inf) once e^x underflows; its gradient 1/quotient overflows
    # already when the quotient e^x < 1/DBL_MAX, i.e. below -OVERFLOW
    ("log_softmax", "value", "negative"): -UNDERFLOW, ("log_softmax", "grad", "negative"): -OVERFLOW,
    ("log_softmax", "value", "positive"): OVERFLOW, ("log_softmax", "grad", "positive"): OVERFLOW,
    # -[1 log h + 0 log(1 - h)]: h = 0 below -OVERFLOW (log 0); h = 1 above ONE, so 0 * log(0) = nan
    ("bce", "value", "negative"): -OVERFLOW, ("bce", "grad", "negative"): -OVERFLOW,
    ("bce", "value", "positive"): ONE, ("bce", "grad", "positive"): ONE,
    # -[0 log s0 + 1 log s1]: s0 = 0 below -UNDERFLOW, 0 * log 0 = nan; s = inf/inf above OVERFLOW
    ("softmax_ce", "value", "negative"): -UNDERFLOW, ("softmax_ce", "grad", "negative"): -UNDERFLOW,
    ("softmax_ce", "value", "positive"): OVERFLOW, ("softmax_ce", "grad", "positive"): OVERFLOW,
}


@pytest.fixture(scope="module")
def edge_sweep():
    grid = [s * x for s in (1, -1) for e in (ONE, OVERFLOW, UNDERFLOW) for x in (e - DELTA, e + DELTA)]
    return stability_sweep(methods=["reverse"], grid=[0.5, -0.5, 20.0, -20.0] + grid)


def test_naive_variants_first_fail_exactly_at_the_hand_derived_edges(edge_sweep):
    ff = first_failures(edge_sweep).set_index(["case", "variant", "quantity", "side"]).x_nonfinite
    for (case, variant, quantity, side), x in ff.items():
        if variant == "stable":
            assert np.isnan(x), (case, quantity, side, x)
            continue
        edge = NAIVE_NONFINITE.get((case, quantity, side))
        if edge is None:
            assert np.isnan(x), (case, quantity, side, x)
        else:  # the first grid point beyond the edge, never the one just inside it
            assert x == pytest.approx(edge + math.copysign(DELTA, edge), abs=1e-9), (case, quantity, side, x)


def test_naive_values_are_exactly_zero_beyond_53_log_2(edge_sweep):
    """log(1 + e^x) is exactly 0 once 1 + e^x rounds to 1, i.e. x < -53 log 2 (all digits lost, no nan)."""
    df = edge_sweep[(edge_sweep.variant == "naive") & (edge_sweep.quantity == "value")]
    for case, side in (("softplus", -1), ("logsumexp", -1), ("log_sigmoid", 1), ("softmax_ce", -1)):
        at = df[df.case == case].set_index("x").computed
        assert at[side * (ONE + DELTA)] == 0.0 and at[side * (ONE - DELTA)] != 0.0, case
    rows = edge_sweep[(edge_sweep.variant == "naive") & (edge_sweep.case == "softplus") & (edge_sweep.x == -ONE - DELTA)]
    assert (rows[rows.quantity == "value"].digits == 0).all()


def test_naive_tanh_loses_every_digit_at_tiny_magnitudes():
    # e^x and e^-x both round to 1 for |x| < 2^-54, so (e^x - e^-x) is exactly 0 while tanh(x) = x
    df = stability_sweep(cases=["tanh"], methods=["reverse"], grid=[1e-300, 1e-17, 1e-3])
    val = df[df.quantity == "value"].set_index(["variant", "x"]).computed
    assert val["naive", 1e-300] == 0.0 and val["naive", 1e-17] == 0.0 and val["stable", 1e-300] == 1e-300
    assert val["naive", 1e-3] == pytest.approx(math.tanh(1e-3), rel=1e-12)


# --- the gradient traps --------------------------------------------------------------------------

def test_trap_logsumexp_all_minus_inf_gives_minus_inf_and_zero_gradient():
    mask = np.full(3, -np.inf)
    with np.errstate(divide="ignore"):  # log1p(-1) = -inf is the intended value
        r = dk.gradient(lambda t: dk.nn.logsumexp(t + mask), np.array([0.5, -1.0, 2.0]))
    assert r.value == -np.inf and r.grad.tolist() == [0.0, 0.0, 0.0]
    # one finite entry: logsumexp = that entry exactly, gradient the unit vector (closed form)
    r = dk.gradient(lambda t: dk.nn.logsumexp(t + np.array([0.0, -np.inf, -np.inf])), np.array([0.5, -1.0, 2.0]))
    assert r.value == 0.5 and r.grad.tolist() == [1.0, 0.0, 0.0]
    # the naive form also gives -inf, but its gradient through log(0) is nan
    with np.errstate(all="ignore"):
        r = dk.gradient(lambda t: dk.nn.logsumexp(t + mask, stable=False), np.array([0.5, -1.0, 2.0]))
    assert r.value == -np.inf and np.isnan(r.grad).all()


def _xlogx_single(t):
    xp = dk.namespace(t)
    return xp.sum(xp.where(t > 0, t * xp.log(t), 0.0))


def _xlogx_double(t):
    xp = dk.namespace(t)
    safe = xp.where(t > 0, t, 1.0)  # the untaken branch never sees x <= 0
    return xp.sum(xp.where(t > 0, safe * xp.log(safe), 0.0))


def test_trap_where_with_nan_in_the_untaken_branch_needs_the_double_where():
    theta = np.array([0.0, -1.0, 0.5, 2.0])
    exact = [0.0, 0.0, math.log(0.5) + 1, math.log(2.0) + 1]  # d/dx (x log x) = log x + 1; 0 where x <= 0
    with np.errstate(all="ignore"):
        single = dk.gradient(_xlogx_single, theta)
    assert np.isnan(single.grad[:2]).all()  # 0 * log(0) = 0 * -inf and 0 * log(-1) = 0 * nan
    assert single.grad[2:] == pytest.approx(exact[2:], rel=1e-15)
    double = dk.gradient(_xlogx_double, theta)
    assert double.grad == pytest.approx(exact, rel=1e-15, abs=0)
    assert double.value == pytest.approx(0.5 * math.log(0.5) + 2 * math.log(2.0), rel=1e-15)


@pytest.mark.parametrize("x", [-1000.0, -740.0, -40.0, 40.0, 750.0, 1000.0])
def test_trap_softplus_gradient_at_large_abs_x(x):
    r = dk.gradient(lambda t: dk.nn.softplus(t)[0], np.array([x]))
    with mpmath.workdps(50):
        exact = 1 / (1 + mpmath.exp(-x))  # softplus' = sigma
    assert np.isfinite(r.grad[0])
    assert abs(mpmath.mpf(r.grad[0]) - exact) <= 2 * U * max(exact, np.finfo(float).tiny)
    with np.errstate(all="ignore"):
        naive = dk.gradient(lambda t: dk.nn.softplus(t, stable=False)[0], np.array([x]))
    assert np.isnan(naive.grad[0]) == (x > OVERFLOW)


# --- results that explain themselves ---------------------------------------------------------------

def test_a_non_finite_result_never_has_status_ok():
    # naive softplus overflows past log(DBL_MAX) = 709.78 (exp(x) = inf): by hand, x = 800 is non-finite
    df = stability_sweep(cases=["softplus", "sigmoid"], variants=["naive", "stable"], methods=["reverse"],
                         grid=[-800.0, 0.0, 800.0])
    bad = df[~df.finite]
    assert len(bad) and not (bad.status == "ok").any()
    assert bad.status.str.startswith("non-finite").all() and bad.status.str.contains("709.78").all()
    assert (df[df.finite].status == "ok").all()


def test_symbolic_rows_say_which_expression_overflows():
    get_method("reverse")
    if "symbolic" not in METHODS or not METHODS["symbolic"].available:
        pytest.skip("symbolic method not available")
    df = stability_sweep(cases=["softplus"], variants=["stable"], methods=["symbolic"], grid=[800.0])
    bad = df[~df.finite]
    for status in bad.status:  # SymPy writes the stable form as its closed form, exact but overflowing
        assert status.startswith("non-finite: SymPy evaluates stable softplus as ") and "exp(" in status


def test_central_value_digits_are_marked_not_meaningful():
    df = stability_sweep(cases=["tanh"], variants=["stable"], methods=["central", "forward", "reverse"],
                         grid=[-1.0, 0.5])
    value = df[df.quantity == "value"].set_index("method")
    # central's stencil has offsets -1, +1 only: it never evaluates f at x; forward's has 0 and reverse is exact
    assert (~value.loc["central", "meaningful"].astype(bool)).all() and value.loc["central", "digits"].isna().all()
    assert value.loc["forward", "meaningful"].all() and value.loc["reverse", "digits"].notna().all()
    assert df[df.quantity == "grad"]["digits"].notna().all()


# --- the sweep's other methods, the table, bad input, CLI ------------------------------------------

def test_other_methods_run_in_the_sweep_or_are_recorded_as_skipped():
    get_method("reverse")
    methods = ["central", "symbolic", "no_such_method"]
    df = stability_sweep(cases=["sigmoid", "softplus"], variants=["stable"], methods=methods, grid=[-2.0, 0.5, 3.0])
    have = {m for m in methods if m in METHODS}
    assert set(df.method) == have and "no_such_method" in df.attrs["skipped"]
    if "central" in have:  # central differences: ~10 digits at the default step on these smooth functions
        g = df[(df.method == "central") & (df.quantity == "grad")]
        assert (g.rel_error < 1e-8).all() and (g.rel_error > 0).any()
    if "symbolic" in have:
        g = df[(df.method == "symbolic") & (df.status == "ok")]
        assert len(g) and (g.rel_error <= 1e-13).all()


def test_sweep_grid_is_dense_at_the_edges_and_covers_tiny_magnitudes():
    g = sweep_grid()
    assert g[0] == -1000.0 and g[-1] == 1000.0 and np.all(np.diff(g) > 0)
    for e in (ONE, OVERFLOW, UNDERFLOW):
        for s in (1, -1):
            near = g[np.abs(g - s * e) <= 1.0]
            assert len(near) >= 200 and np.max(np.diff(near)) <= 0.0101
    assert np.min(np.abs(g[g != 0])) == pytest.approx(1e-300)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cases=["sigmoid", "relu6"]), "unknown case.*relu6.*valid cases: sigmoid"),
    (dict(variants=["fast"]), "variant.*fast.*valid variants: stable, naive"),
    (dict(grid=[0.0, np.inf]), "finite"),
])
def test_sweep_bad_input_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stability_sweep(methods=["reverse"], **kwargs)


def test_sweep_grid_bad_input():
    with pytest.raises(ValueError, match="lo < hi"):
        sweep_grid(lo=5.0, hi=1.0)


def test_cli_stability_writes_the_tidy_table(tmp_path):
    out, summary = tmp_path / "st.csv", tmp_path / "ff.csv"
    cmd = [sys.executable, "-m", "diffkit", "stability", "--quick", "--cases", "softplus", "--methods", "reverse",
           "--csv", str(out), "--summary-csv", str(summary)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    df = pd.read_csv(out)
    assert {"case", "variant", "method", "x", "quantity", "rel_error", "digits", "finite"} <= set(df.columns)
    ff = pd.read_csv(summary).set_index(["variant", "quantity", "side"])
    assert ff.x_nonfinite["naive", "value", "positive"] > OVERFLOW and np.isnan(ff.x_nonfinite["stable", "value",
                                                                                                   "positive"])
    bad = subprocess.run(cmd[:4] + ["--cases", "relu6"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "relu6" in bad.stderr and "valid cases" in bad.stderr
