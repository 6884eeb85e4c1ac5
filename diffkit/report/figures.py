"""The report's figures: matplotlib (Agg), written as PNG and SVG, each drawn from one or two derived tables.

Every series gets a colour (Okabe-Ito, chosen to stay apart in greyscale and
for colour-blind readers), a marker *and* a line style, so the figures read in
print.  Axes are labelled with units; decades-spanning axes are logarithmic.

>>> import pandas as pd, tempfile, pathlib
>>> t = {"baydin_table1": pd.DataFrame({"n": [1, 2, 3], "naive derivative ops": [3, 20, 90], "tape ops": [2, 4, 6]})}
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> write_figures(t, out)[0]
['baydin_table1']
>>> sorted(p.name for p in out.iterdir())
['baydin_table1.png', 'baydin_table1.svg']
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["write_figures", "FIGURES", "style_for"]

# Okabe-Ito colours (distinct for colour-blind readers and in greyscale together with markers and dashes).
# Eight colours and six dash patterns cycle with different periods, so two series that share a colour never
# share a dash; the twelve markers are all different for the twelve methods of ORDER.
COLOURS = ("#000000", "#E69F00", "#0072B2", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#999999")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
DASHES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
# Preferred order, so that a method keeps its style in every figure and from one report to the next.
ORDER = ("reverse", "handwritten", "forward", "backward", "central", "central4", "complex_step", "richardson",
         "symbolic", "torch", "jax", "autograd")
DPI = 120  # PNG resolution: sharp on screen, small enough to embed in the HTML
SIZE = (6.4, 4.2)  # inches, one panel
plt.rcParams.update({"svg.hashsalt": "diffkit", "font.size": 9, "legend.fontsize": 7.5, "axes.grid": True,
                     "grid.alpha": 0.3})


def style_for(labels) -> dict[str, dict]:
    """A fixed (colour, marker, line style) per label, the same in every figure: a label's method (its first
    word) keeps its place in ORDER; other labels follow, sorted."""
    labels = list(dict.fromkeys(str(s) for s in labels))
    others = sorted(s for s in labels if s.split()[0] not in ORDER)
    styles, variants = {}, {}
    for s in labels:
        method = s.split()[0]
        i = ORDER.index(method) if method in ORDER else len(ORDER) + others.index(s)
        j = variants[method] = variants.get(method, -1) + 1  # 2nd, 3rd ... label of one method: same colour,
        styles[s] = {"color": COLOURS[i % len(COLOURS)], "marker": MARKERS[i % len(MARKERS)],  # other dash,
                     "linestyle": DASHES[(i + j) % len(DASHES)], "markersize": 5, "linewidth": 1.4}  # hollow marker
        if j:
            styles[s]["markerfacecolor"] = "white"
    return styles


def _lines(ax, frame: pd.DataFrame, by: str, x: str, y: str, names: dict | None = None) -> None:
    """One line per value of ``by``, each in its own style."""
    styles = style_for(frame[by].astype(str))
    for key, part in frame.groupby(by, sort=False):
        part = part.sort_values(x)
        ax.plot(part[x], part[y], label=(names or {}).get(key, str(key)), **styles[str(key)])


def _finish(ax, xlabel: str, ylabel: str, title: str, log: str = "", legend: bool = True) -> None:
    """Labels, log axes, and the legend outside the axes on the right (never over the data)."""
    if "x" in log:
        ax.set_xscale("log")
    if "y" in log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=True)


def accuracy(t):
    """Digits per problem as points (problems are categories, so no connecting lines), methods side by side."""
    frame = t["accuracy"]
    frame = frame[frame["status"] == "ok"]
    problems = frame.sort_values("P").drop_duplicates("problem_name")
    position = {p: i for i, p in enumerate(problems["problem_name"])}
    labels = list(style_for(frame["label"]))
    styles = style_for(labels)
    width = 0.6 / max(len(labels), 1)  # spread the methods over 60% of the gap between problems
    fig, ax = plt.subplots(figsize=(SIZE[0] + 0.6, SIZE[1] + 0.6))
    for k, label in enumerate(labels):
        part = frame[frame["label"] == label]
        x = part["problem_name"].map(position) + (k - (len(labels) - 1) / 2) * width
        ax.plot(x, part["digits"], label=label, **{**styles[label], "linestyle": "none", "markersize": 6})
    ax.set_xticks(range(len(position)), [f"{p}\nP = {int(n)}" for p, n in zip(problems["problem_name"], problems["P"])],
                  rotation=20, ha="right", fontsize=7)
    ax.set_ylim(-0.5, 16.5)  # digits are clipped to [0, 16] by dk.error
    _finish(ax, "problem (parameter count P)", "correct digits, −log₁₀(max relative error)",
            "Accuracy against the high-precision mpmath reference")
    return fig


def _mark_optimum(ax, curves, optimum, by: str) -> None:
    """An open circle on each curve at the theoretical optimum h* (interpolated on log axes)."""
    styles = style_for(curves[by].astype(str))
    labelled = False
    for _, row in optimum.iterrows():
        part = curves[curves[by] == row[by]].sort_values("h")
        h = row.get("h_opt", np.nan)
        if not np.isfinite(h) or len(part) < 2:
            continue
        y = 10 ** np.interp(np.log10(h), np.log10(part["h"]), np.log10(part["error"]))
        ax.plot([h], [y], linestyle="none", marker="o", markersize=10, markerfacecolor="none",
                markeredgecolor=styles[str(row[by])]["color"], markeredgewidth=1.6,
                label=None if labelled else "theoretical optimum h*")
        labelled = True


def _positive(curves: pd.DataFrame) -> pd.DataFrame:
    """The points a log-log plot can show: h > 0 and a finite error > 0."""
    return curves[(curves["h"] > 0) & np.isfinite(curves["error"]) & (curves["error"] > 0)]


def step_size(t):
    curves = _positive(t["step_size"])
    problems = list(dict.fromkeys(curves["problem"]))[:3]  # at most three panels stay readable
    fig, axes = plt.subplots(1, len(problems), figsize=(SIZE[0] * len(problems) * 0.8, SIZE[1]), squeeze=False)
    for k, (ax, problem) in enumerate(zip(axes[0], problems)):
        part = curves[curves["problem"] == problem]
        _lines(ax, part, "method", "h", "error")
        if "step_size_optimum" in t:
            opt = t["step_size_optimum"]
            _mark_optimum(ax, part, opt[opt["problem"] == problem], "method")
        _finish(ax, "step size h (units of θ)", "absolute error of the gradient", f"Error against h: {problem}",
                log="xy", legend=k == len(problems) - 1)  # one legend, right of the last panel
    fig.tight_layout()
    return fig


def baydin_figure3(t):
    curves = _positive(t["baydin_figure3"])
    fig, ax = plt.subplots(figsize=SIZE)
    _lines(ax, curves, "method", "h", "error")
    minima = t.get("baydin_figure3_minima")
    if minima is not None:  # the robust minimum (three steps reach it) at the smoothed V's lowest h
        ax.plot(minima["h_best"], minima["error_min"], linestyle="none", marker="*", markersize=12, color="#000000",
                label="minimum (reached by 3+ steps)")
    _finish(ax, "step size h", "absolute error of f′(x)", "Baydin et al. 2018, Figure 3 (reproduced)", log="xy")
    return fig


def cost(t):
    scaling = t["cost_scaling"]
    scaling = scaling[(scaling["status"] == "ok") & (scaling["wall_median_s"] > 0)]
    # several problems of one size (or seeds): one point per method and P, their median
    scaling = scaling.groupby(["method", "label", "P"], as_index=False)[["wall_median_s", "grad_over_forward"]].median()
    scaling = pd.concat([scaling, _first_calls(t["cost_scaling"])], ignore_index=True)
    slopes = {}
    if "cost_fits" in t:  # a slope only where the fit has >= 4 sizes over >= 1.5 decades; else points
        fits = t["cost_fits"]
        keys = fits["label"].fillna(fits["method"]) if "label" in fits else fits["method"]
        slopes = {k: (f" (slope {s:.2f} [{lo:.2f}, {hi:.2f}])" if np.isfinite(s) else " (points only)")
                  for k, s, lo, hi in zip(keys, fits["slope"], fits["slope_ci_low"], fits["slope_ci_high"])}
    names = {label: label + slopes.get(label, "") for label in scaling["label"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(SIZE[0] * 1.7, SIZE[1]))
    _lines(left, scaling, "label", "P", "wall_median_s", names)
    _finish(left, "parameter count P", "gradient wall time, median (s)",
            "Gradient time against P (slope of wall time, 95 % interval)",
            log="xy", legend=False)
    ratios = scaling[scaling["grad_over_forward"] > 0]
    _lines(right, ratios, "label", "P", "grad_over_forward", names)
    _finish(right, "parameter count P", "gradient time / one forward pass (paired, median)", "Gradient / forward",
            log="xy", legend=False)
    handles = dict(zip(*reversed(left.get_legend_handles_labels())))  # the left panel has every series
    right.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=True)
    fig.tight_layout()
    return fig


def _first_calls(rows: pd.DataFrame) -> pd.DataFrame:
    """The symbolic method's cold first call (build, diff, compile) as a series of its own: its median is the
    warm, cached evaluation, which alone would hide what symbolic costs."""
    cold = rows[(rows["method"] == "symbolic") & (rows["status"] == "ok")]
    if "wall_first_s" not in cold or cold.empty:
        return pd.DataFrame()
    cold = cold.groupby(["method", "P"], as_index=False)[["wall_first_s"]].median()
    return cold.assign(label="symbolic first call (build+compile)", wall_median_s=cold["wall_first_s"],
                       grad_over_forward=np.nan).drop(columns="wall_first_s")


# legends in words, not counter names
COUNTER_NAMES = {"f_ops": "f: operations (tree)", "f_nodes": "f: tree nodes", "f_dag_ops": "f: operations (shared DAG)",
                 "grad_ops": "gradient: operations (tree)", "grad_nodes": "gradient: tree nodes",
                 "grad_dag_ops": "gradient: operations (shared DAG)", "cse_ops": "gradient after CSE: operations",
                 "final_ops": "compiled gradient: operations"}
TABLE1_NAMES = {"l_n": "lₙ itself", "naive": "d/dx of the nested program (unsimplified)",
                "paper_naive": "paper's naive: product rule on the closed form", "expanded": "expanded polynomial",
                "cse": "after common-subexpression elimination", "tape": "reverse-mode tape nodes",
                "dag": "diffkit's shared-DAG gradient"}


def swell(t):
    """The size counters (names ending in _ops or _nodes); ratios and the rest stay in the CSV only."""
    frame = t["swell"]
    frame = frame[(frame["value"] > 0) & frame["counter"].str.endswith(("_ops", "_nodes"))]
    frame = frame.groupby(["counter", "P"], as_index=False)["value"].max()
    fig, ax = plt.subplots(figsize=SIZE)
    _lines(ax, frame, "counter", "P", "value", COUNTER_NAMES)
    _finish(ax, "parameter count P", "expression size (count)", "Symbolic expression swell", log="xy")
    return fig


def baydin_table1(t):
    table = t["baydin_table1"]
    counts = [c for c in table.columns if c != "n" and pd.api.types.is_numeric_dtype(table[c])
              and not pd.api.types.is_bool_dtype(table[c])]
    long = table.melt(id_vars=["n"], value_vars=counts, var_name="column", value_name="ops")
    long = long[long["ops"] > 0]
    fig, ax = plt.subplots(figsize=SIZE)
    _lines(ax, long, "column", "n", "ops", TABLE1_NAMES)
    _finish(ax, "iterations n of the logistic map", "operation count", "Baydin et al. 2018, Table 1 (reproduced)",
            log="y")
    return fig


def stability(t):
    """Correct digits of the gradient against x for each case, stable (solid) beside naive (dashed), per method;
    a non-finite result is drawn at -1 digits (below the axis' 0) so that it is seen, not hidden."""
    curves = t["stability_curves"]
    cases = list(dict.fromkeys(curves["case"]))
    methods = [m for m in ORDER if m in set(curves["method"])] + sorted(set(curves["method"]) - set(ORDER))
    cols = 3
    rows = -(-len(cases) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(SIZE[0] * 1.6, 1.9 * rows + 0.6), squeeze=False, sharex=True,
                             sharey=True)
    styles = style_for(methods)
    for ax, case in zip(axes.flat, cases):
        part = curves[curves["case"] == case]
        for method in methods:
            for variant, dash in (("stable", "-"), ("naive", "--")):
                g = part[(part["method"] == method) & (part["variant"] == variant)].sort_values("x")
                if not len(g):
                    continue
                y = np.where(g["finite"].astype(bool), g["digits"], -1.0)
                ax.plot(g["x"], y, color=styles[method]["color"], linestyle=dash, linewidth=1.0,
                        label=f"{method}, {variant}")
        ax.set_title(case, fontsize=8)
        ax.set_ylim(-1.5, 16.5)
        ax.set_xscale("symlog", linthresh=1.0)
    for ax in axes.flat[len(cases):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("x (symmetric log scale)")
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient: correct digits")
    handles = dict(zip(*reversed(axes.flat[0].get_legend_handles_labels())))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(4, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Stable against naive formulas: gradient digits against x (−1: NaN or inf)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


@dataclass(frozen=True)
class FigureSpec:
    draw: Callable[[dict], plt.Figure]
    needs: tuple[str, ...]  # derived tables, i.e. the CSVs behind the figure


FIGURES = {
    "accuracy": FigureSpec(accuracy, ("accuracy",)),
    "step_size": FigureSpec(step_size, ("step_size", "step_size_optimum")),
    "baydin_figure3": FigureSpec(baydin_figure3, ("baydin_figure3", "baydin_figure3_minima")),
    "cost": FigureSpec(cost, ("cost_scaling", "cost_fits")),
    "swell": FigureSpec(swell, ("swell",)),
    "baydin_table1": FigureSpec(baydin_table1, ("baydin_table1",)),
    "stability": FigureSpec(stability, ("stability_curves",)),
}


def write_figures(tables: dict[str, pd.DataFrame], out: Path) -> tuple[list[str], dict[str, str]]:
    """Draw every figure whose tables exist into ``out`` (``<name>.png`` and ``.svg``); return (written, missing).

    A figure whose table lacks a column the contract promised is reported missing with the column's name.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, missing = [], {}
    for name, spec in FIGURES.items():
        if spec.needs[0] not in tables:
            missing[name] = f"needs the table {spec.needs[0]}"
            continue
        try:
            fig = spec.draw(tables)
        except KeyError as err:
            missing[name] = f"the table {spec.needs[0]} has no column {err}"
            continue
        try:
            fig.savefig(out / f"{name}.png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
            fig.savefig(out / f"{name}.svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
        finally:
            plt.close(fig)
        written.append(name)
    return written, missing
