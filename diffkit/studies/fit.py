"""Cost models: log-log least squares of time (and evaluations) against P, with confidence intervals.

The slope b of ``log10 t = a + b log10 P`` says how cost grows: b = 1 for
reverse mode on an MLP (one forward, one backward, each O(P)), b = 2 for
central differences (2P forward evaluations of O(P) each) once P is large
enough that a forward evaluation is dominated by arithmetic, not by Python
overhead; that is why the fit starts at ``p_min``.  The interval is the
Student-t 95% interval of the least-squares slope.

>>> import pandas as pd
>>> df = pd.DataFrame({"method": ["m"] * 4, "status": ["ok"] * 4, "P": [1e3, 1e4, 1e5, 1e6],
...                    "wall_median_s": [1e-3, 1e-1, 1e1, 1e3], "evaluations": [2e3, 2e4, 2e5, 2e6],
...                    "grad_over_forward": [3.0, 3.5, 4.0, 4.0]})
>>> fit = fit_cost_models(df).iloc[0]
>>> [round(float(fit[k]), 6) for k in ("slope", "evaluations_slope", "ratio_median")]
[2.0, 1.0, 3.75]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["fit_cost_models", "loglog_slope"]

# Two-sided 95% Student-t quantiles by degrees of freedom (from scipy.stats.t.ppf(0.975, dof)); for dof > 30
# the normal value 1.96 is within 2%.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


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
        return float(slope), np.nan, np.nan
    resid = ly - (intercept + slope * lx)
    se = np.sqrt(resid @ resid / (n - 2) / np.sum((lx - lx.mean()) ** 2))
    half = _t95(n - 2) * se
    return float(slope), float(slope - half), float(slope + half)


# Below a few hundred parameters a forward evaluation of the MLP family costs mostly Python overhead (~50 us),
# so time does not grow with P yet; the fits start above it.
P_MIN = 500


def fit_cost_models(df: pd.DataFrame, *, p_min: float = P_MIN, by=("method", "group")) -> pd.DataFrame:
    """One line per method and problem group (the problem without its size): slope of wall time vs P (and CI), slope of evaluations, median gradient/forward.

    Uses the ``ok`` rows with P >= ``p_min`` (or all ok rows, if fewer than two P values reach it).
    ``slope_top`` is the slope between the two largest P (the asymptotic regime); ``cpu_slope`` fits CPU
    time, which a machine shared with other work disturbs less than wall time.
    """
    lines = []
    by = [k for k in ([by] if isinstance(by, str) else by) if k in df]
    ok = df[df["status"] == "ok"].dropna(subset=["P", "wall_median_s"])
    for name, rows in ok.groupby(by, sort=False):
        rows = rows.sort_values("P")
        big = rows[rows["P"] >= p_min]
        used = big if big["P"].nunique() >= 2 else rows
        slope, low, high = loglog_slope(used["P"], used["wall_median_s"])
        evals = used.dropna(subset=["evaluations"])
        eval_slope = loglog_slope(evals["P"], evals["evaluations"])[0] if len(evals) else np.nan
        cpu = used.dropna(subset=["cpu_median_s"]) if "cpu_median_s" in used else used.iloc[:0]
        lines.append({**dict(zip(by, name)), "slope": slope, "slope_ci_low": low, "slope_ci_high": high,
                      "n_points": int(len(used)), "p_min": float(used["P"].min()), "p_max": float(used["P"].max()),
                      "slope_top": loglog_slope(used["P"].iloc[-2:], used["wall_median_s"].iloc[-2:])[0],
                      "cpu_slope": loglog_slope(cpu["P"], cpu["cpu_median_s"])[0] if len(cpu) else np.nan,
                      "evaluations_slope": eval_slope,
                      "ratio_median": float(rows["grad_over_forward"].median()),
                      "ratio_max": float(rows["grad_over_forward"].max())})
    columns = [*by, "slope", "slope_ci_low", "slope_ci_high", "n_points", "p_min", "p_max", "slope_top", "cpu_slope",
               "evaluations_slope", "ratio_median", "ratio_max"]
    return pd.DataFrame(lines, columns=columns)
