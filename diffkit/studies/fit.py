"""Cost models: log-log least squares of time (and time/forward) against P, with intervals, only where the
data can carry a slope.

The slope b of ``log10 t = a + b log10 P`` says how cost grows: b = 1 for
reverse mode on an MLP (one forward, one backward, each O(P)), b = 2 for
central differences' wall time (2P forward evaluations of O(P) each) once P
is large enough that a forward evaluation is dominated by arithmetic, not by
Python overhead; that is why the fit starts at ``p_min``.  Two slopes are
fitted, and every sentence names which: ``slope`` (wall time of one
gradient) and ``ratio_slope`` (gradient time / forward time, measured in
pairs: the quantity ADBench reports; 0 for reverse mode, 1 for finite
differences).  The interval is the Student-t 95 % interval of the
least-squares slope.

A slope is fitted only from at least :data:`MIN_SIZES` sizes spanning at
least :data:`MIN_DECADES` decades of P; anything less is reported as points
(``fit`` says why) and gets no slope.

>>> import pandas as pd
>>> df = pd.DataFrame({"method": ["m"] * 4, "status": ["ok"] * 4, "P": [1e3, 1e4, 1e5, 1e6],
...                    "wall_median_s": [1e-3, 1e-1, 1e1, 1e3], "evaluations": [2e3, 2e4, 2e5, 2e6],
...                    "grad_over_forward": [2e3, 2e4, 2e5, 2e6]})
>>> fit = fit_cost_models(df).iloc[0]
>>> [round(float(fit[k]), 6) for k in ("slope", "ratio_slope", "evaluations_slope")], fit["fit"]
([2.0, 1.0, 1.0], 'fitted')
>>> trend(1.0, 0.93, 1.08), trend(0.05, -0.1, 0.12), trend(1.4, 1.2, 1.6)
('linear in P', 'flat in P', 'grows like P^1.4')
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["fit_cost_models", "loglog_slope", "trend", "enough_for_a_fit", "MIN_SIZES", "MIN_DECADES"]

MIN_SIZES = 4       # a slope needs at least this many sizes ...
MIN_DECADES = 1.5   # ... spanning at least this many decades of P

# Two-sided 95% Student-t quantiles by degrees of freedom (from scipy.stats.t.ppf(0.975, dof)); for dof > 30
# the normal value 1.96 is within 2%.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}

# trend words and the slope interval that earns each: the whole interval must lie inside the band
TRENDS = (("flat", -0.2, 0.2), ("linear", 0.8, 1.2), ("quadratic", 1.8, 2.2))


def _t95(dof: int) -> float:
    if dof > 30:
        return 1.96
    return _T95[max(k for k in _T95 if k <= dof)]


def loglog_slope(x, y) -> tuple[float, float, float]:
    """(slope, 95% CI low, high) of log10 y against log10 x; the CI is NaN with fewer than 3 points."""
    lx, ly = np.log10(np.asarray(x, dtype=float)), np.log10(np.asarray(y, dtype=float))
    n = lx.size
    if n < 2 or np.ptp(lx) == 0:
        return np.nan, np.nan, np.nan
    slope, intercept = np.polyfit(lx, ly, 1)
    if n < 3:
        return _clean(slope), np.nan, np.nan
    resid = ly - (intercept + slope * lx)
    se = np.sqrt(resid @ resid / (n - 2) / np.sum((lx - lx.mean()) ** 2))
    half = _t95(n - 2) * se
    return _clean(slope), _clean(slope - half), _clean(slope + half)


def _clean(x: float) -> float:
    """A slope rounded to 1e-12: least squares leaves 1e-18 where the slope is 0, which no reader needs."""
    return float(round(float(x), 12)) + 0.0


def enough_for_a_fit(P) -> str:
    """'' when these sizes can carry a slope, else why not (too few sizes, too narrow a span)."""
    sizes = np.unique(np.asarray(P, dtype=float))
    decades = float(np.log10(sizes.max() / sizes.min())) if sizes.size else 0.0
    if sizes.size < MIN_SIZES or decades < MIN_DECADES:
        return (f"points only: {sizes.size} size{'s' if sizes.size != 1 else ''} spanning {decades:.1f} decades "
                f"(a fit needs >= {MIN_SIZES} sizes over >= {MIN_DECADES:g} decades)")
    return ""


def trend(slope: float, low: float, high: float, var: str = "P") -> str:
    """The words for a fitted log-log slope: 'flat', 'linear', 'quadratic' (in ``var``) only when the whole
    interval lies in that band (+-0.2); 'no clear trend' when the interval holds 0 but is wider than the flat
    band; else 'grows like P^b'; '' without a fit (no trend word is ever typed by hand)."""
    if not np.isfinite(slope):
        return ""
    if np.isfinite(low) and np.isfinite(high):
        for word, lo, hi in TRENDS:
            if lo <= low and high <= hi:
                return f"{word} in {var}"
        if low < 0 < high:  # the data cannot tell growth from decline
            return f"no clear trend in {var}"
    return f"grows like {var}^{slope:.1f}" if slope >= 0 else f"falls like {var}^{slope:.1f}"


# Below a few hundred parameters a forward evaluation of the MLP family costs mostly Python overhead (~50 us),
# so time does not grow with P yet; the fits start above it.
P_MIN = 500


def _fit(rows: pd.DataFrame, column: str) -> tuple[float, float, float]:
    use = rows.dropna(subset=[column])
    use = use[use[column] > 0]
    if enough_for_a_fit(use["P"]) if len(use) else "none":
        return np.nan, np.nan, np.nan
    return loglog_slope(use["P"], use[column])


def fit_cost_models(df: pd.DataFrame, *, p_min: float = P_MIN, by=("method", "group")) -> pd.DataFrame:
    """One line per method and problem group (the problem without its size): the slopes of wall time and of
    gradient/forward against P (each with its interval), of evaluations, and the median gradient/forward.

    Uses the ``ok`` rows with P >= ``p_min`` (or all ok rows, if fewer than :data:`MIN_SIZES` sizes reach it).
    ``fit`` is 'fitted', or why the line is points only (then every slope is NaN); ``trend`` and
    ``ratio_trend`` are the words for the two slopes (:func:`trend`).
    """
    lines = []
    by = [k for k in ([by] if isinstance(by, str) else by) if k in df]
    ok = df[df["status"] == "ok"].dropna(subset=["P", "wall_median_s"])
    for name, rows in ok.groupby(by, sort=False):
        rows = rows.sort_values("P")
        big = rows[rows["P"] >= p_min]
        used = big if big["P"].nunique() >= MIN_SIZES else rows
        why = enough_for_a_fit(used["P"])
        slope, low, high = _fit(used, "wall_median_s")
        r_slope, r_low, r_high = _fit(used, "grad_over_forward") if "grad_over_forward" in used else (np.nan,) * 3
        e_slope = _fit(used, "evaluations")[0] if "evaluations" in used else np.nan
        ratios = rows["grad_over_forward"].dropna() if "grad_over_forward" in rows else pd.Series(dtype=float)
        lines.append({**dict(zip(by, name if isinstance(name, tuple) else (name,))), "fit": why or "fitted",
                      "slope": slope, "slope_ci_low": low, "slope_ci_high": high, "trend": trend(slope, low, high),
                      "ratio_slope": r_slope, "ratio_slope_ci_low": r_low, "ratio_slope_ci_high": r_high,
                      "ratio_trend": trend(r_slope, r_low, r_high),
                      "n_points": int(used["P"].nunique()), "p_min": float(used["P"].min()),
                      "p_max": float(used["P"].max()), "evaluations_slope": e_slope,
                      "ratio_median": float(ratios.median()) if len(ratios) else np.nan,
                      "ratio_max": float(ratios.max()) if len(ratios) else np.nan})
    columns = [*by, "fit", "slope", "slope_ci_low", "slope_ci_high", "trend", "ratio_slope", "ratio_slope_ci_low",
               "ratio_slope_ci_high", "ratio_trend", "n_points", "p_min", "p_max", "evaluations_slope",
               "ratio_median", "ratio_max"]
    return pd.DataFrame(lines, columns=columns)
