"""Sections 1-9 of the report as blocks.  Prose carries no measured number of its own:
every number is a table cell, a figure, or a sentence from :mod:`diffkit.report.claims`.

>>> from diffkit.report.data import ReportData
>>> blocks, sources = build_sections(ReportData(), {}, {"seeds": "needs the seeds study"}, [])
>>> [b.text for b in blocks if type(b).__name__ == "Heading"][:3]
['diffkit report: why backprop wins', '1. Three ways to differentiate', "2. The seeds' worked examples"]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .claims import render_sentences
from .data import ReportData
from .document import Code, Figure, Heading, Missing, Para, Table
from .graphs import graph_blocks, logistic_blocks

__all__ = ["build_sections", "SUMMARY_HEADING"]

SUMMARY_HEADING = "8. Why backprop wins"

METHOD_PROSE = {
    "reverse": (
        "**Reverse mode (backpropagation, the tape).** The forward pass computes z⁽ˡ⁾ = a⁽ˡ⁻¹⁾W⁽ˡ⁾ + b⁽ˡ⁾ and "
        "a⁽ˡ⁾ = g(z⁽ˡ⁾) layer by layer and records each operation on a tape. One backward sweep then applies the "
        "chain rule from J(Θ) back to every parameter, the delta rule δ⁽ˡ⁾ = (δ⁽ˡ⁺¹⁾W⁽ˡ⁺¹⁾ᵀ) ⊙ g′(z⁽ˡ⁾), "
        "∂J/∂W⁽ˡ⁾ = a⁽ˡ⁻¹⁾ᵀδ⁽ˡ⁾. Each recorded operation is visited once more, so the gradient costs a small "
        "multiple of one forward pass; the price is memory for the tape."),
    "central": (
        "**Finite differences (numerical).** Perturb one parameter at a time: ∂J/∂θᵢ ≈ (J(Θ + h eᵢ) − "
        "J(Θ − h eᵢ)) / 2h. It needs nothing but the forward pass (\"easy, not very accurate\", seed 003), but "
        "it re-evaluates J twice for every parameter (2P evaluations), and its accuracy is a "
        "trade between truncation error (large h) and round-off (small h)."),
    "symbolic": (
        "**Symbolic differentiation (SymPy).** Write J(Θ) as one expression in the symbols θ₁ … θ_P and "
        "apply the rules of calculus to it (\"accurate, tedious\", seed 003). The result is exact, but the "
        "expression repeats shared subexpressions and swells with depth and P; building and compiling it (the "
        "cold first call) costs far more than evaluating it once compiled (warm), so the two are shown apart."),
}

BAYDIN_FIGURE3 = (
    "Baydin et al. (2018), *Automatic differentiation in machine learning: a survey*, Figure 3, plots the "
    "error of the forward difference (f(x + h) − f(x)) / h and of the centred difference "
    "(f(x + h) − f(x − h)) / 2h against the derivative computed by automatic differentiation, for "
    "f(x) = 64x(1 − x)(1 − 2x)²(1 − 8x + 8x²)², as h varies over many decades. Left of each minimum round-off "
    "dominates; right of it, truncation. The centred difference reaches a lower minimum at a larger h. "
    "The input is the double nearest 0.2, so the reference is f′ at that double, computed exactly (it differs "
    "from the paper's f′(1/5) = 708288/78125 by 7.5 × 10⁻¹⁶). A minimum is the lowest error that at least "
    "three steps reach, at the lowest point of the V smoothed over ±half a decade; a flat floor (the complex "
    "step) is given as the range of h within 2× of it, not as whichever step tied lowest.")

BAYDIN_TABLE1 = (
    "Baydin et al. (2018), Table 1, iterates the logistic map lₙ₊₁ = 4lₙ(1 − lₙ), l₁ = x, and shows that the "
    "symbolic derivative dlₙ/dx grows far faster than lₙ itself unless it is simplified. Two naive counts are "
    "shown: the derivative of the nested program (what SymPy's diff gives for the loop), and the paper's "
    "naive form, the product rule applied to its closed form of lₙ (n ≤ 4, where the paper gives one). "
    "The operations recorded by reverse mode follow the program, not the expression: see the sources table.")

# human column headers, one place for all tables
HEADERS = {
    "problem_name": "problem", "component": "component", "printed": "printed in the notes",
    "printed_digits": "printed: digits", "reference": "mpmath reference", "method": "method", "label": "method",
    "h_best": "h at minimum", "error_min": "lowest error (3+ steps)", "h_opt": "h* (theory)",
    "points_at_min": "steps at it", "h_floor_low": "h within 2×: from", "h_floor_high": "to",
    "lowest_point": "lowest single step", "max_ok_P": "largest P done", "gave_out_P": "gave out at P",
    "gave_out_status": "why", "reason": "reason", "n": "n", "l_n": "lₙ ops", "naive": "nested d/dx ops",
    "paper_naive": "paper's naive ops", "expanded": "expanded ops", "cse": "after CSE", "tape": "tape nodes",
    "dag": "shared-DAG ops", "closed_form_ok": "= paper (n ≤ 4)", "case": "case", "variant": "variant",
    "results": "results", "nonfinite": "non-finite", "worst_value_digits": "value: fewest digits",
    "worst_grad_digits": "gradient: fewest digits", "first_nonfinite_x": "first non-finite x",
    "key": "setting", "value": "value", "study": "study", "kind": "kind", "cells": "cells", "ok": "ok",
    "study_hash": "study-file hash", "seeds": "seeds", "diffkit_version": "diffkit", "git_commit": "commit",
    "first_created": "first cell (UTC)", "last_created": "last cell (UTC)",
    "predicted_digits": "digits (error model)", "wall_median_s": "time (s, median)",
    "gradient_median_s": "one gradient (s, median)", "hvp_over_gradient": "H v time / gradient time",
}


def _display(frame: pd.DataFrame, formats: dict | None = None) -> pd.DataFrame:
    """Text for a table: the columns named in ``formats`` by their spec (or function); other numbers as
    integers when whole, else to three significant digits; missing values as a dash; headers in words."""
    formats = formats or {}
    out = frame.copy()
    for column in out.columns:
        spec = formats.get(column)
        numeric = pd.api.types.is_float_dtype(out[column]) or pd.api.types.is_integer_dtype(out[column])
        if spec is None and not numeric:
            continue
        fn = spec if callable(spec) else (lambda v, s=spec: format(v, s) if s else _number(v))
        out[column] = [("–" if pd.isna(v) else fn(v)) for v in out[column]]
    return out.fillna("–").astype(str).rename(columns=HEADERS)


class Footnotes:
    """Numbered reasons for marked cells: ``mark(reason)`` gives ' ¹' (one number per distinct reason)."""

    SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

    def __init__(self):
        self.reasons: list[str] = []

    def mark(self, reason: str) -> str:
        reason = " ".join(str(reason).split()) or "no reason recorded"
        if reason not in self.reasons:
            self.reasons.append(reason)
        return " " + str(self.reasons.index(reason) + 1).translate(self.SUP)

    def notes(self) -> tuple:
        return tuple(f"{str(k + 1).translate(self.SUP)} {r}" for k, r in enumerate(self.reasons))


def _interval(value, low, high, spec: str = ".2f") -> str:
    if pd.isna(value):
        return "–"
    return format(value, spec) + ("" if pd.isna(low) else f" ({format(low, spec)}–{format(high, spec)})")


def _number(v) -> str:
    """Whole numbers whole; three significant digits otherwise, with thousands grouped, never 1.22e+03."""
    if pd.isna(v):
        return "–"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    if 1e3 <= abs(v) < 1e15:
        return f"{float(f'{v:.3g}'):,.0f}"
    return f"{v:.3g}"


def _digits(v) -> str:
    return f"{v:.1f}"


def _figure(figures, name: str, caption: str, needs, missing) -> list:
    if name in figures:
        return [Figure(name, caption, tuple(f"{t}.csv" for t in needs))]
    return [Missing(f"Figure ({name})", missing.get(name, "no data"))]


def _table(tables, name: str, missing, formats: dict, what: str, columns=None) -> list:
    if name not in tables:
        return [Missing(what, missing.get(name, "no data"))]
    frame = tables[name] if columns is None else tables[name][[c for c in columns if c in tables[name]]]
    return [Table(_display(frame, formats), f"{name}.csv")]


def intro(data: ReportData) -> list:
    mode = "full" if data.full else "quick"
    return [Heading(1, "diffkit report: why backprop wins"),
            Para(f"Generated by `{data.command}` ({mode} mode) from the studies "
                 f"{', '.join(f'`{s}`' for s in data.studies) or '(none)'}. Every number below is read from "
                 "the study results; the CSV behind each table and figure is in `data/`.")]


def methods(tables) -> tuple[list, list]:
    blocks, frames = [Heading(2, "1. Three ways to differentiate")], []
    for method, prose in METHOD_PROSE.items():
        texts, sources = render_sentences(f"methods.{method}", tables)
        blocks.append(Para(" ".join([prose, *texts])))
        frames.append(sources)
    return blocks, frames


def seeds(tables, missing) -> list:
    blocks = [Heading(2, "2. The seeds' worked examples"),
              Para("Each seed document prints a few numbers; beside them, each method's result, the "
                   "high-precision mpmath reference, and the correct digits of the result (and of the printed "
                   "number) against that reference.")]
    if "seeds" not in tables:
        return blocks + [Missing("The seeds table", missing.get("seeds", "no data"))]
    long = tables["seeds"]
    wide = long.drop_duplicates(["problem_name", "component"])[
        ["problem_name", "component", "printed", "printed_digits", "reference"]].reset_index(drop=True)
    for method, part in long.groupby("method", sort=False):
        shown = [f"{r:.6g} ({d:.1f})" if np.isfinite(r) else s for r, d, s in
                 zip(part["result"], part["digits"], part["status"])]
        wide = wide.merge(part[["problem_name", "component"]].assign(**{f"{method} (digits)": shown}),
                          how="left", on=["problem_name", "component"])
    formats = {"printed": "g", "printed_digits": _digits, "reference": ".10g"}
    return blocks + [Table(_display(wide, formats), "seeds.csv")]


def accuracy(tables, missing, figures) -> list:
    blocks = [Heading(2, "3. Accuracy"),
              Para("Correct digits, −log₁₀ of the worst relative error over the significant components "
                   "(`dk.error`), of each method on each problem, against the high-precision mpmath reference.")]
    if "accuracy" in tables:
        acc = tables["accuracy"]
        notes = Footnotes()
        reasons = acc["reason"] if "reason" in acc else pd.Series([""] * len(acc))
        cell = [(s + notes.mark(r)) if s != "ok" else ("no reference" + notes.mark(r) if pd.isna(d) else f"{d:.1f}")
                for d, s, r in zip(acc["digits"], acc["status"], reasons)]
        names = [f"{p} (P = {_number(n)})" for p, n in zip(acc["problem_name"], acc["P"])]
        wide = acc.assign(cell=cell, problem=names) \
            .pivot_table(index="problem", columns="label", values="cell", aggfunc="first", sort=False).reset_index()
        blocks.append(Table(_display(wide, {}), "accuracy.csv", notes.notes()))
    else:
        blocks.append(Missing("The accuracy table", missing.get("accuracy", "no data")))
    return blocks + _figure(figures, "accuracy", "Correct digits per method and problem.", ("accuracy",), missing)


def step(tables, missing, figures) -> list:
    blocks = [Heading(2, "4. Error against step size"),
              Para("The V-curves of the finite-difference formulas: truncation error falls with h, round-off "
                   "grows as h shrinks. Open circles mark the theoretical optimum h* from each formula's error "
                   "model; the table compares it with the measured best step.")]
    blocks += _figure(figures, "step_size", "Gradient error against step size h, with the theoretical optimum.",
                      ("step_size", "step_size_optimum"), missing)
    optimum = _table(tables, "step_size_optimum", missing, {"h_best": ".2e", "error_min": ".2e", "h_opt": ".2e"},
                     "The step-size optimum table")
    for block in optimum:  # the measured lowest point of each V (one step), beside the theory's h*
        if isinstance(block, Table):
            block.frame = block.frame.rename(columns={HEADERS["error_min"]: "lowest error (one step)"})
    blocks += optimum
    blocks += [Heading(3, "Baydin et al. 2018, Figure 3, reproduced"), Para(BAYDIN_FIGURE3)]
    blocks += _figure(figures, "baydin_figure3", "Reproduction of Baydin et al. 2018, Figure 3.",
                      ("baydin_figure3", "baydin_figure3_minima"), missing)
    return blocks + _table(tables, "baydin_figure3_minima", missing,
                           {c: ".2e" for c in ("h_best", "error_min", "h_floor_low", "h_floor_high", "lowest_point")},
                           "The Figure 3 minima", columns=["method", "error_min", "points_at_min", "h_best",
                                                           "h_floor_low", "h_floor_high", "lowest_point"])


INSTALL = {"torch": "pip install 'diffkit[peers]' (or pip install torch)",
           "jax": "pip install 'diffkit[peers]' (or pip install jax)",
           "autograd": "pip install 'diffkit[peers]' (or pip install autograd)"}
PEER_NAMES = {"handwritten": "hand-written backprop", "reverse": "diffkit tape", "torch": "PyTorch",
              "jax": "JAX (jit)", "autograd": "autograd", "central": "central differences", "symbolic": "symbolic"}


def _fits_table(fits: pd.DataFrame) -> Table:
    """The fitted cost models: wall-time slope and time/forward slope, each with its interval and its words;
    warm and cold symbolic ratios in separate columns."""
    label = fits["label"].fillna(fits["method"]) if "label" in fits else fits["method"]
    shown = pd.DataFrame({
        "method": label,
        "evidence": [f if f != "fitted" else f"fitted: {int(n)} sizes" for f, n in zip(fits["fit"], fits["n_points"])],
        "P range": [f"{_number(a)}–{_number(b)}" for a, b in zip(fits["p_min"], fits["p_max"])],
        "wall-time slope (95 %)": [_interval(v, lo, hi) for v, lo, hi in
                                   zip(fits["slope"], fits["slope_ci_low"], fits["slope_ci_high"])],
        "wall time": fits["trend"].replace("", "–"),
        "time/forward slope (95 %)": [_interval(v, lo, hi) for v, lo, hi in
                                      zip(fits["ratio_slope"], fits["ratio_slope_ci_low"], fits["ratio_slope_ci_high"])],
        "time/forward": fits["ratio_trend"].replace("", "–"),
        "gradient/forward, warm (median)": [_number(v) for v in fits["ratio_median"]],
        "first call/forward, cold (median)": [_number(v) for v in fits.get("cold_over_forward",
                                                                          pd.Series([np.nan] * len(fits)))],
    })
    return Table(shown.fillna("–").astype(str), "cost_fits.csv", (
        "Slopes are fitted only from at least 4 sizes spanning at least 1.5 decades of P; other lines are shown "
        "as points. Trend words are generated from the interval: 'flat', 'linear' or 'quadratic' only when the "
        "whole 95 % interval lies within ±0.2 of 0, 1 or 2. 'warm': the compiled gradient called again; 'cold': "
        "its first call, which for symbolic includes building, differentiating and compiling.",))


def _peers_table(bench: pd.DataFrame) -> Table:
    notes = Footnotes()
    cells = []
    for r in bench.itertuples():
        if r.status == "ok":
            cells.append(_interval(r.grad_over_forward, getattr(r, "ratio_low", np.nan), getattr(r, "ratio_high", np.nan)))
        elif r.status == "unreliable":
            cells.append("unreliable" + notes.mark(f"below its floor after re-measuring (a timing fault, not a "
                                                   f"result): {r.note}"))
        elif r.status == "skipped" and r.method in INSTALL and "pip" in str(r.note):
            cells.append("not installed" + notes.mark(f"{PEER_NAMES[r.method]}: install with {INSTALL[r.method]}"))
        else:
            cells.append(r.status + notes.mark(r.note))
    wide = bench.assign(ratio=cells).pivot_table(index="method", columns="P", values="ratio", aggfunc="first",
                                                 sort=False)
    sizes = list(wide.columns)
    wide.columns = [f"P = {int(p):,}" for p in wide.columns]
    wide.index = [PEER_NAMES.get(m, m) for m in wide.index]
    wide = wide.rename_axis("method").reset_index().fillna("–")
    extra = _floor_rows(bench, sizes, list(wide.columns[1:]))
    if extra is not None:
        wide = pd.concat([wide, extra], ignore_index=True)
    return Table(wide.astype(str), "bench.csv", notes.notes() + (
        "Floors: no gradient costs less than its own forward (1). A numpy backprop also runs the backward "
        "matrix products after its forward, timed here beside the forward: 1 + their time / forward time is the "
        "measured floor, which the hand-written, tape and autograd ratios must clear. It reaches the matmul-flop "
        "floor (backprop's flops / forward's flops) only where the matrix products are the whole forward; the "
        "row 'forward time in matrix products' says how far that is from true here.",))


def _floor_rows(bench: pd.DataFrame, sizes: list, columns: list) -> pd.DataFrame | None:
    """The floors beside the ratios: measured (numpy backprops), matmul flops, and the forward's BLAS share."""
    if "floor" not in bench or "layers" not in bench:
        return None
    import json

    from ..bench import NUMPY_BACKPROP, matmul_flop_floor

    rows = {"floor, numpy backprops (measured)": [], "floor, matmul flops (BLAS only)": [],
            "forward time in matrix products": []}
    for P in sizes:
        part = bench[(bench["P"] == P) & bench["method"].isin(NUMPY_BACKPROP)]
        floor = part["floor"].dropna()
        share = part["blas_share"].dropna() if "blas_share" in part else pd.Series(dtype=float)
        layers = bench.loc[bench["P"] == P, "layers"].dropna()
        rows["floor, numpy backprops (measured)"].append(f"{floor.iloc[0]:.2f}" if len(floor) else "–")
        rows["floor, matmul flops (BLAS only)"].append(f"{matmul_flop_floor(json.loads(layers.iloc[0])):.2f}"
                                                       if len(layers) else "–")
        rows["forward time in matrix products"].append(f"{100 * share.iloc[0]:.0f} %" if len(share) else "–")
    return pd.DataFrame([[name, *values] for name, values in rows.items()], columns=["method", *columns])


def _blocks_words(scaling) -> str:
    """How many blocks the scaling study's ratios were measured in, when more than one."""
    k = int(scaling["ratio_blocks"].fillna(1).max()) if scaling is not None and "ratio_blocks" in scaling else 1
    return "" if k < 2 else (f" Each ratio was measured in up to {k} blocks spread over the run, one when its cell ran "
                             "and the others in later passes over all the cells; its interval is a bootstrap over the "
                             "blocks (blocks drawn again, then pairs within them), so a drift of the machine during "
                             "the run widens it.")


def cost(tables, missing, figures) -> list:
    blocks = [Heading(2, "5. Cost against P"),
              Para("Median wall time of one gradient against the parameter count P on log-log axes, and the "
                   "gradient time divided by one forward pass of the same problem. Each ratio is measured in "
                   "pairs: forward, gradient, forward, gradient … in the same cell on one BLAS thread, the ratio "
                   "taken per pair, until the 95 % bootstrap interval of its median is within ±10 % or the "
                   "cell's time runs out. A ratio below what physics allows (a gradient cheaper than its "
                   "forward, or below the backward matrix products' floor) is measured again and, if it stays "
                   "there, shown as unreliable, never as a result." + _blocks_words(tables.get("cost_scaling")))]
    blocks += _figure(figures, "cost", "Gradient time and gradient/forward ratio against P.",
                      ("cost_scaling", "cost_fits"), missing)
    blocks += [Para("The largest P each method reached within its budget, and where it gave out:")]
    blocks += _table(tables, "cost_max_p", missing, {"max_ok_P": "g", "gave_out_P": "g"}, "The largest-P table",
                     columns=["label", "max_ok_P", "gave_out_P", "gave_out_status"])
    blocks += [Para("Fitted cost models (log-log least squares against P), for the wall time of one gradient and "
                    "for the gradient time divided by the forward time:")]
    blocks += ([_fits_table(tables["cost_fits"])] if "cost_fits" in tables
               else [Missing("The cost models", missing.get("cost_fits", "no data"))])
    blocks += [Heading(3, "Peers side by side"),
               Para("Each implementation's gradient time over its own forward pass (median of interleaved pairs, "
                    "95 % interval), one BLAS thread; every row, with times, floors and memory, is in the CSV. All "
                    "the ratios are measured in one round-robin, a pair of each in turn, so each one's pairs span "
                    "the whole benchmark, and its interval is a bootstrap over the run's start, middle and end.")]
    if "bench" not in tables:
        return blocks + [Missing("The peer benchmark", missing.get("bench", "no data"))]
    bench = tables["bench"]
    if "threads" in bench:
        bench = bench[bench["threads"] == bench["threads"].min()]
    return blocks + [_peers_table(bench)]


def swell(tables, missing, figures) -> list:
    blocks = [Heading(2, "6. Expression swell"),
              Para("Sizes of the symbolic gradient expressions (the symbolic method's counters) against P.")]
    blocks += _figure(figures, "swell", "Symbolic expression sizes against P.", ("swell",), missing)
    blocks += [Heading(3, "Baydin et al. 2018, Table 1, reproduced"), Para(BAYDIN_TABLE1)]
    blocks += _table(tables, "baydin_table1", missing, {}, "The Table 1 reproduction",
                     columns=["n", "l_n", "naive", "paper_naive", "expanded", "cse", "tape", "dag", "closed_form_ok"])
    return blocks + _figure(figures, "baydin_table1", "Operation counts of the logistic-map derivatives.",
                            ("baydin_table1",), missing) + logistic_blocks(figures, missing)


def stability(tables, missing, figures) -> list:
    blocks = [Heading(2, "7. Numerical stability"),
              Para("Stable against naive formulas (seed 002) over the stability sweep: how many results (values and "
                   "gradients) were NaN or inf, the fewest correct digits inside the documented domain, and the "
                   "smallest |x| that went non-finite. Central differences never evaluate f itself (their value "
                   "is the stencil's average), so their value digits are marked not meaningful.")]
    blocks += _figure(figures, "stability", "Gradient digits against x, stable (solid) and naive (dashed).",
                      ("stability_curves",), missing)
    if "stability_summary" not in tables:
        return blocks + [Missing("The stability table", missing.get("stability_summary", "no data"))]
    long = tables["stability_summary"].copy()
    notes = Footnotes()
    value_cells = []
    for r in long.itertuples():
        if pd.isna(r.worst_value_digits):
            value_cells.append("not meaningful" + notes.mark("central differences never evaluate f at x: their "
                                                             "value is the stencil's average of f(x ± h)")
                               if r.method in ("central", "central4", "richardson") else "–")
        else:
            value_cells.append(_digits(r.worst_value_digits))
    long["value digits"] = value_cells
    fd_note = ("finite differences: the stencil's own error (truncation, round-off, and cancellation where "
               "f(x + h) and f(x − h) round to the same double, so the estimate is 0), not the formula's")
    long["gradient digits"] = [_digits(v) + (notes.mark(fd_note) if m in ("central", "central4", "forward")
                                             and v < 13 else "") for v, m in zip(long["worst_grad_digits"],
                                                                                 long["method"])]
    long["non-finite"] = [str(n) + (notes.mark(why) if n and why else "") for n, why in
                          zip(long["nonfinite"], long.get("nonfinite_reason", [""] * len(long)))]
    long["first non-finite x"] = [("–" if pd.isna(v) else f"{v:.6g}") for v in long["first_nonfinite_x"]]
    shown = long[["case", "method", "variant", "non-finite", "value digits", "gradient digits", "first non-finite x"]]
    blocks.append(Table(shown.astype(str), "stability_summary.csv", notes.notes()))
    return blocks + _table(tables, "stability_variants", missing, {"worst_value_digits": _digits,
                                                                    "worst_grad_digits": _digits}, "The totals")


def published(tables, missing) -> list:
    blocks = [Heading(2, "9. Published numbers beside diffkit's"),
              Para("Each row: what a source states, the band its number allows, what diffkit measured here, and "
                   "whether that lies within the band. Sources: Griewank and Walther, *Evaluating Derivatives* "
                   "(2008); Baydin, Pearlmutter, Radul and Siskind, *Automatic differentiation in machine "
                   "learning: a survey*, JMLR 18(153) (2018); Srajer, Kukelova and Fitzgibbon, *A benchmark of "
                   "selected algorithmic differentiation tools on some problems in computer vision and machine "
                   "learning* (ADBench, 2018).")]
    return blocks + _shown(tables, "sources", missing, "The sources table",
                           lambda t: t.drop(columns=["csv"]).astype(str))


def summary(tables, missing=None) -> tuple[list, pd.DataFrame]:
    texts, sources = render_sentences("summary.", tables)
    text = " ".join(texts) or "*No measured numbers are available for a summary: run the studies first.*"
    return [Heading(2, SUMMARY_HEADING), Para(text)], sources


def reproducibility(tables, missing, data: ReportData) -> list:
    blocks = [Heading(2, "10. Reproducibility"),
              Para("The studies, their study-file hashes and seeds, the code version that measured them, and the "
                   "environment. What changes when this report is regenerated on the same machine: every time and "
                   "every ratio of times (within their intervals, bootstraps over blocks spread across the run; a "
                   "machine busier or quieter than in this run can move them further), the dates and the commit. "
                   "What does not: "
                   "every accuracy column (digits, errors, values, gradients) is bitwise identical, because the "
                   "data are seeded, BLAS runs on one thread (so sums are taken in one order), and no accuracy "
                   "cell comes near its time budget. A cell recorded as 'budget' (the scaling study's largest "
                   "sizes) is decided by the clock and can move by one size on a busier machine.")]
    blocks += _table(tables, "repro_studies", missing, {}, "The study list")
    blocks += _table(tables, "repro_env", missing, {}, "The environment")
    return blocks + [Para("Regenerate this report with:"), Code(f"pip install -e .\n{data.command}")]


def _gradbench_table(frame: pd.DataFrame) -> Table:
    """One row per eval and size: the tape's and the replay's gradient / primal, each peer's time over the
    tape's, JAX's over the replay's; a cell that did not run carries its reason in a footnote."""
    notes, rows = Footnotes(), []
    for (name, size), group in frame.groupby(["eval", "size"], sort=False):
        by = {r.method: r for r in group.itertuples()}

        def cell(method, value):
            r = by.get(method)
            if r is None:
                return "–"
            if r.status != "ok":
                return r.status + notes.mark(f"{GRADBENCH_NAMES.get(method, method)}: {r.note}")
            said = r.note if isinstance(r.note, str) else ""  # (a fused row that ran the plain replay says why)
            return _number(value(r)) + (notes.mark(f"{GRADBENCH_NAMES.get(method, method)}: {said}") if said else "")
        tape = by.get("reverse")
        if tape is not None and tape.status == "ok" and pd.isna(tape.primal_s):  # a nested eval: no primal
            tape_cell = f"{_number(tape.gradient_s)} s" + notes.mark(
                "particle and saddle have no primal: the seconds of one call (a gradient descent over gradients)")
        else:
            tape_cell = cell("reverse", lambda r: r.gradient_over_primal)
        row = {"eval": name, "size": size, "tape gradient / primal": tape_cell,
               "compiled gradient / primal": cell("compiled", lambda r: r.gradient_over_primal),
               "fused gradient / primal": cell("numba", lambda r: r.gradient_over_primal)}
        for peer in ("torch", "jax", "autograd"):
            row[f"{PEER_NAMES[peer]} time / tape time"] = cell(peer, lambda r: r.over_tape)
        for method in ("compiled", "numba"):  # JAX over each replay: above 1, the replay is faster
            replay = by.get(method)
            row[f"JAX time / {GRADBENCH_NAMES[method]} time"] = cell(
                "jax", lambda r, replay=replay: r.gradient_s / replay.gradient_s) \
                if replay is not None and replay.status == "ok" else "–"
        rows.append(row)
    return Table(pd.DataFrame(rows), "gradbench.csv", notes.notes() + (
        "A gradient / primal below 1 (a gradient cheaper than its own forward) is a timing fault and is shown as "
        "unreliable, never as a number.",))


GRADBENCH_NAMES = {**PEER_NAMES, "compiled": "compiled replay", "numba": "fused replay"}


def gradbench(tables, missing) -> list:
    blocks = [Heading(2, "11. An outside benchmark: GradBench evals"),
              Para("The evals of GradBench (the successor of ADBench), each written once against `dk.namespace` "
                   "(`diffkit.gradbench.evals`; `python -m diffkit.gradbench` speaks its protocol) and timed "
                   "through the tape, its compiled replay (`dk.compile`, compile time kept apart), that replay "
                   "fused into one numba function (`dk.compile(fuse=True)`; where a program cannot be fused, the "
                   "footnote says why and the plain replay's time is shown) and the "
                   "installed peers on the same definitions, one BLAS thread, interleaved, "
                   "medians of the quick sizes. Gradient / primal divides by the numpy primal (for ht the derivative is "
                   "a 3c x 28 Jacobian, one forward-mode pass carrying 28 tangents, not one gradient; the replays record "
                   "that pass with `dk.compile(jacobian=True)`); a peer's time over "
                   "the tape's above 1 means the tape is faster. `diffkit bench --gradbench` measures it; the "
                   "report keeps the last measurement.")]
    blocks += [Missing("The GradBench table", missing.get("gradbench", "no data"))] if "gradbench" not in tables \
        else [_gradbench_table(tables["gradbench"])]
    blocks.append(Para("The suite's own check: each eval's own program (from a GradBench checkout) sends its messages "
                       "to `python -m diffkit.gradbench` and judges every output against the golden tool, GradBench's "
                       "hand-written C++ derivatives (`tools/manual`), which `studies/gradbench_golden.py` also times "
                       "on the same input right after diffkit's answer; a time over the golden tool's below 1 means "
                       "diffkit is faster. The study keeps its last measurement."))
    if "gradbench_golden" not in tables:
        return blocks + [Missing("The golden-tool table", missing.get("gradbench_golden", "no data"))]
    return blocks + [_golden_table(tables["gradbench_golden"])]


PRIMALS = {"primal", "objective", "cost", "square"}  # each eval's function that takes no derivative


def _golden_table(frame: pd.DataFrame) -> Table:
    """One row per eval and size: how many of its evaluations the eval's own validator found valid (every
    method, every function), and each method's derivative time over the golden tool's."""
    notes, rows = Footnotes(), []
    for (name, size), group in frame.groupby(["eval", "description"], sort=False, dropna=False):
        judged = group[group.valid.notna()]
        row = {"eval": name, "size": "" if pd.isna(size) else size,
               "valid / judged": f"{int((judged.valid.astype(str) == 'True').sum())} / {len(judged)}"}
        derivative = group[~group.function.isin(PRIMALS)]
        for method, runs in derivative.groupby("method", sort=False):
            ratios = runs.diffkit_over_golden.dropna()
            failed = runs.error.dropna().astype(str)
            row[f"{GRADBENCH_NAMES.get(method, method)} / golden"] = _number(ratios.median()) if len(ratios) else (
                "failed" + notes.mark(f"{method}: {failed.iloc[0].splitlines()[0][:200]}") if len(failed) and
                failed.iloc[0] else "–")
        rows.append(row)
    return Table(pd.DataFrame(rows).fillna("–"), "gradbench_golden.csv", notes.notes() + (
        "det: diffkit's det computes each distinct minor once (a level of minors per array operation), the "
        "golden tool recurses through all ell! products, so det's time ratio compares two algorithms.",
        "hello sends no repeat count, so its times are of one call each.",))


def _shown(tables, name: str, missing, what: str, display) -> list:
    """The table ``name`` as ``display`` shows it, or why it is missing."""
    if name not in tables:
        return [Missing(what, missing.get(name, "no data"))]
    return [Table(display(tables[name]), f"{name}.csv")]


def hessian_blocks(tables, missing, figures) -> list:
    blocks = [Heading(2, "12. Second derivatives: four routes to H v"),
              Para("`dk.hvp` computes Hessian-vector products forward-over-reverse (a dual pass over the tape), "
                   "reverse-over-reverse (the tape records its own sweep), by central differences of the gradient "
                   "and symbolically; each is judged against the certified 50-digit mpmath Hessian-vector product "
                   "and timed against one reverse gradient in pairs, HVP and gradient in turn (the `hessian` study).")]
    blocks += _table(tables, "hvp", missing, {"digits": ".1f", "predicted_digits": ".1f",
                                              "hvp_over_gradient": ".2f"}, "The HVP table")
    return blocks + _figure(figures, "hvp", "Correct digits of H v against the referee, and H v time over one "
                            "reverse gradient, for each route against P.", ("hvp",), missing)


def build_sections(data: ReportData, tables: dict, missing: dict, figures: list) -> tuple[list, pd.DataFrame]:
    """All blocks of the report, and the sources of every number stated in a sentence."""
    head, sources = methods(tables)
    closing, summary_sources = summary(tables, missing)
    blocks = (intro(data) + head + seeds(tables, missing) + graph_blocks(figures, missing)
              + accuracy(tables, missing, figures)
              + step(tables, missing, figures) + cost(tables, missing, figures) + swell(tables, missing, figures)
              + stability(tables, missing, figures) + closing + published(tables, missing)
              + reproducibility(tables, missing, data) + gradbench(tables, missing)
              + hessian_blocks(tables, missing, figures))
    return blocks, pd.concat([*sources, summary_sources], ignore_index=True)
