"""Published numbers beside diffkit's: one row per claim of a source, with the band it allows and whether
diffkit's measurement falls inside it.

The sources and what they state (the band each row checks):

* Griewank and Walther (2008), *Evaluating Derivatives*, the cheap-gradient principle: a gradient by
  reverse mode costs at most omega times the function, omega in [3, 4].  Checked: the tape's
  gradient/forward at its largest P is <= 4.
* Baydin, Pearlmutter, Radul and Siskind (2018), *Automatic differentiation in machine learning: a
  survey*, JMLR 18(153): reverse mode evaluates a gradient in c ops(f) with c < 6 (a constant, not a
  function of P); Figure 3 (the forward difference bottoms out near 1e-8 at h ~ 1e-9 .. 1e-8, the centred
  difference near 1e-10 at h ~ 1e-7 .. 1e-6; truncation slopes 1 and 2, round-off slope -1); Table 1 (the
  closed forms of l_n and dl_n/dx for n <= 4; AD's cost follows the program, not the expression).
* Srajer, Kukelova and Fitzgibbon (2018), *A benchmark of selected algorithmic differentiation tools on
  some problems in computer vision and machine learning* (ADBench): finite differences' time over the
  objective's grows in proportion to P (slope 1 of time/objective against P); manual gradients cost 2-7x
  the objective.

>>> import pandas as pd
>>> t = {"cost_scaling": pd.DataFrame({"method": ["reverse"], "status": ["ok"], "P": [1000],
...      "grad_over_forward": [3.1], "ratio_low": [2.9], "ratio_high": [3.3]})}
>>> s = sources(t)
>>> s.loc[0, ["diffkit", "within"]].tolist()
['3.1 (2.9-3.3) at P = 1,000', 'yes']
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["sources", "figure3_slopes", "COLUMNS"]

COLUMNS = ["source", "claim", "source's number", "diffkit", "within", "csv"]
GW = "Griewank & Walther 2008"
BAYDIN = "Baydin et al. 2018"
ADBENCH = "ADBench (Srajer et al. 2018)"
# Figure 3 read off the published plot (log axes: a decade either way is the reading's precision)
FIG3 = {"forward": {"error": (1e-9, 1e-7), "h": (1e-9, 1e-8), "truncation": 1.0},
        "central": {"error": (1e-11, 1e-9), "h": (1e-7, 1e-6), "truncation": 2.0}}
SLOPE_BAND = 0.2  # a fitted slope within +-0.2 of the source's counts as the same law


def _row(source, claim, theirs, ours, ok, csv) -> dict:
    within = "–" if ok is None else ok if isinstance(ok, str) else ("yes" if ok else "no")
    return dict(zip(COLUMNS, [source, claim, theirs, ours, within, csv]))


def _judge(r, lo: float, hi: float):
    """'yes' when the whole interval of a measured ratio lies in [lo, hi], 'no' when none of it does, else
    'interval straddles the band' (no verdict the data cannot carry)."""
    if r is None:
        return None
    low = r["ratio_low"] if "ratio_low" in r and np.isfinite(r["ratio_low"]) else r["grad_over_forward"]
    high = r["ratio_high"] if "ratio_high" in r and np.isfinite(r["ratio_high"]) else r["grad_over_forward"]
    if lo <= low and high <= hi:
        return True
    if high < lo or low > hi:
        return False
    return "interval straddles the band"


def _largest(frame: pd.DataFrame | None, method: str, **where):
    if frame is None or "method" not in frame:
        return None
    rows = frame[(frame["method"] == method) & (frame.get("status", "ok") == "ok")]
    for k, v in where.items():
        if k in rows:
            rows = rows[rows[k] == v]
    rows = rows.dropna(subset=["grad_over_forward"]) if "grad_over_forward" in rows else rows.iloc[:0]
    return None if not len(rows) else rows.loc[rows["P"].idxmax()]


def _ratio(r) -> str:
    interval = (f" ({r['ratio_low']:.1f}-{r['ratio_high']:.1f})" if "ratio_low" in r and np.isfinite(r["ratio_low"])
                else "")
    batch = f", batch {int(r['batch'])}" if "batch" in r and np.isfinite(r["batch"]) else ""
    return f"{r['grad_over_forward']:.1f}{interval} at P = {int(r['P']):,}{batch}"


def figure3_slopes(curves: pd.DataFrame, minima: pd.DataFrame) -> pd.DataFrame:
    """Per method of the Figure 3 sweep: the log-log slope of error against h on the truncation side (h from
    10 h_best to 1e-2) and on the round-off side (1e-14 to h_best / 10), each fitted only where it has
    enough steps (:func:`diffkit.studies.fit.enough_for_a_fit`)."""
    from ..studies.fit import enough_for_a_fit, loglog_slope

    rows = []
    for m in minima.itertuples():
        g = curves[(curves["method"] == m.method) & (curves["error"] > 0) & np.isfinite(curves["error"])]
        for side, lo, hi in (("truncation", 10 * m.h_best, 1e-2), ("round-off", 1e-14, m.h_best / 10)):
            part = g[(g["h"] >= lo) & (g["h"] <= hi)]
            why = enough_for_a_fit(part["h"]) if len(part) else "no steps"
            slope, low, high = loglog_slope(part["h"], part["error"]) if not why else (math.nan,) * 3
            rows.append({"method": m.method, "side": side, "slope": slope, "slope_ci_low": low,
                         "slope_ci_high": high, "h_low": lo, "h_high": hi, "fit": why or "fitted"})
    return pd.DataFrame(rows)


def sources(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The sources table (see the module docstring); rows whose measurement is missing say so."""
    rows = []
    tape = _largest(tables.get("cost_scaling"), "reverse")
    missing = "not measured (the scaling study did not run)"
    rows.append(_row(GW, "reverse-mode gradient / function <= omega, omega in [3, 4]", "<= 4",
                     _ratio(tape) if tape is not None else missing,
                     _judge(tape, 1.0, 4.0), "cost_scaling.csv"))
    rows.append(_row(BAYDIN, "reverse mode: gradient in c ops(f), c < 6", "< 6",
                     _ratio(tape) if tape is not None else missing,
                     _judge(tape, 1.0, 6.0), "cost_scaling.csv"))
    fits = tables.get("cost_fits")
    central = None
    if fits is not None and "ratio_slope" in fits:
        c = fits[(fits["method"] == "central") & np.isfinite(fits["ratio_slope"])]
        central = c.loc[c["p_max"].idxmax()] if len(c) else None
    rows.append(_row(ADBENCH, "finite differences: time / objective time grows in proportion to P",
                     "slope 1 against P",
                     f"slope {central['ratio_slope']:.2f} ({central['ratio_slope_ci_low']:.2f} to "
                     f"{central['ratio_slope_ci_high']:.2f}), P = {int(central['p_min']):,}-{int(central['p_max']):,}"
                     if central is not None else "no fit (too few sizes) or not measured",
                     None if central is None else bool(abs(central["ratio_slope"] - 1) <= SLOPE_BAND),
                     "cost_fits.csv"))
    bench = tables.get("bench")
    hand = _largest(bench[bench["threads"] == bench["threads"].min()] if bench is not None and "threads" in bench
                    else bench, "handwritten")
    rows.append(_row(ADBENCH, "manual (hand-written) gradients cost 2-7x the objective", "2-7",
                     _ratio(hand) if hand is not None else "not measured (the peer benchmark did not run)",
                     _judge(hand, 2.0, 7.0), "bench.csv"))
    rows += _figure3_rows(tables)
    rows += _table1_rows(tables.get("baydin_table1"))
    return pd.DataFrame(rows, columns=COLUMNS)


def _figure3_rows(tables) -> list[dict]:
    minima, curves = tables.get("baydin_figure3_minima"), tables.get("baydin_figure3")
    if minima is None or curves is None:
        return [_row(BAYDIN, "Figure 3", "–", "not measured", None, "baydin_figure3_minima.csv")]
    by = minima.set_index("method")
    slopes = figure3_slopes(curves, minima).set_index(["method", "side"])
    rows = []
    for method, band in FIG3.items():
        if method not in by.index:
            continue
        m = by.loc[method]
        (e_lo, e_hi), (h_lo, h_hi) = band["error"], band["h"]
        rows.append(_row(BAYDIN, f"Figure 3, {method} difference: lowest error and its h",
                         f"{e_lo:.0e}-{e_hi:.0e} at h {h_lo:.0e}-{h_hi:.0e}",
                         f"{m['error_min']:.2g} at h = {m['h_best']:.2g}",
                         bool(e_lo <= m["error_min"] <= e_hi and h_lo <= m["h_best"] <= h_hi),
                         "baydin_figure3_minima.csv"))
        for side, expected in (("truncation", band["truncation"]), ("round-off", -1.0)):
            if (method, side) not in slopes.index:
                continue
            s = slopes.loc[(method, side)]
            ours = (f"{s['slope']:.2f} ({s['slope_ci_low']:.2f} to {s['slope_ci_high']:.2f})" if s["fit"] == "fitted"
                    else s["fit"])
            rows.append(_row(BAYDIN, f"Figure 3, {method} difference: {side} slope of error against h",
                             f"{expected:g}", ours,
                             None if s["fit"] != "fitted" else bool(abs(s["slope"] - expected) <= SLOPE_BAND),
                             "baydin_figure3.csv"))
    if "complex_step" in by.index:
        from ..baydin import BAYDIN_REFERENCE
        import mpmath

        with mpmath.workdps(60):
            floor = float(abs(mpmath.mpf(float(BAYDIN_REFERENCE)) - BAYDIN_REFERENCE))
        m = by.loc["complex_step"]
        rows.append(_row("float64 rounding (not in the paper)",
                         "complex step on Figure 3's f: floor = distance from f'(x0) to its nearest double",
                         f"{floor:.3g}", f"{m['error_min']:.3g} (h = {m['h_floor_low']:.0e}-{m['h_floor_high']:.0e})",
                         bool(abs(m["error_min"] - floor) <= 0.01 * floor), "baydin_figure3_minima.csv"))
    return rows


def _table1_rows(table: pd.DataFrame | None) -> list[dict]:
    if table is None or not {"closed_form_ok", "tape", "l_n", "n"} <= set(table):
        return [_row(BAYDIN, "Table 1", "–", "not measured", None, "baydin_table1.csv")]
    from ..baydin import growth
    from ..studies.fit import loglog_slope, trend

    forms = table["closed_form_ok"].dropna()
    rows = [_row(BAYDIN, "Table 1: closed forms of l_n and dl_n/dx, n = 1-4", f"{len(forms)} forms",
                 f"{int(forms.astype(bool).sum())} of {len(forms)} equal (simplify(a - b) == 0)",
                 bool(forms.astype(bool).all()), "baydin_table1.csv")]
    big = table[table["n"] >= 2]
    slope, low, high = loglog_slope(big["n"], big["tape"])
    rows.append(_row(BAYDIN, "Table 1: AD's cost follows the program (n steps), not the expression l_n",
                     "linear in n", f"tape nodes {trend(slope, low, high, 'n')} (log-log slope {slope:.2f}); "
                                    f"l_n's ops x{growth(table['n'], table['l_n'])['ratio']:.2f} per step",
                     trend(slope, low, high, "n") == "linear in n", "baydin_table1.csv"))
    return rows
