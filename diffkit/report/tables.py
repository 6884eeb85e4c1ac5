"""The derived tables: one frame per table or figure of the report, each written to ``data/<name>.csv``.

Every number the report shows, in a table, a figure or a sentence, is a cell of
one of these frames.  :func:`derive` returns the frames it could build and,
for the others, the reason (a missing study or source).

>>> import pandas as pd
>>> from diffkit.report.data import ReportData
>>> grad = pd.DataFrame({"study": ["scaling"] * 3, "method": ["symbolic"] * 3, "options": ["{}"] * 3,
...                      "status": ["ok", "budget", "skipped"], "P": [10, 100, 1000], "reason": ["", "too big", ""]})
>>> tables, missing = derive(ReportData(frames={"gradient": grad}))
>>> tables["cost_max_p"][["method", "max_ok_P", "gave_out_P", "gave_out_status"]].to_dict("records")
[{'method': 'symbolic', 'max_ok_P': 10, 'gave_out_P': 100, 'gave_out_status': 'budget'}]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .data import ReportData, as_float_list, json_cell
from .sources import figure3_slopes, sources

__all__ = ["derive", "FAILED"]

FAILED = ("failed", "budget")  # statuses that mean "gave out" ("skipped" cells were never tried)


def _label(method: str, options) -> str:
    opts = json_cell(options, {})
    return method if not opts else f"{method} " + ",".join(f"{k}={v}" for k, v in sorted(opts.items()))


def _study_rows(data: ReportData, study: str, *, fallback: bool = True,
                by_group: bool = False) -> pd.DataFrame | None:
    """Gradient rows of ``study``; with ``fallback``, all non-seed gradient rows when that study was not run.

    ``label`` names the method, with its options when it ran with several; with ``by_group``, also the
    problem family (``group``, the problem without its size) when it ran on several, as in the scaling study.
    """
    frame = data.frames.get("gradient")
    if frame is None:
        return None
    rows = frame[frame["study"] == study]
    if not len(rows) and fallback:
        rows = frame[frame["study"] != "seeds"]
    if not len(rows):
        return None
    rows = rows.copy()
    rows["label"] = [_label(m, o) for m, o in zip(rows["method"], rows.get("options", [""] * len(rows)))]
    alone = rows.groupby("method")["label"].transform("nunique") == 1  # one option set: the method names it
    rows.loc[alone, "label"] = rows.loc[alone, "method"]
    if by_group and "group" in rows and rows["group"].nunique() > 1:
        tags = _group_tags(rows["group"].dropna().unique())
        several = rows.groupby("method")["group"].transform("nunique") > 1
        rows.loc[several, "label"] = [f"{label} [{tags.get(g, g)}]" for label, g in
                                      zip(rows.loc[several, "label"], rows.loc[several, "group"])]
    return rows.reset_index(drop=True)


def _group_tags(groups) -> dict[str, str]:
    """What tells problem groups apart: 'mlp(a=1,batch=4)' and 'mlp(a=1,batch=128)' -> 'batch=4', 'batch=128'."""
    parts = {g: set(str(g).partition("(")[2].rpartition(")")[0].split(",")) if "(" in str(g) else {str(g)}
             for g in groups}
    common = set.intersection(*parts.values())
    return {g: ",".join(sorted(p - common)) or str(g) for g, p in parts.items()}


def _pick(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return rows[[c for c in columns if c in rows]].reset_index(drop=True)


def accuracy(data):
    rows = _study_rows(data, "accuracy")
    return None if rows is None else _pick(rows, ["problem_name", "P", "method", "label", "status", "digits",
                                                  "median_digits", "max_abs", "max_rel", "worst_component",
                                                  "reason"])


def _group_option(group, key: str):
    """An option of a problem group, as a number: 'mlp(activation=tanh,batch=128)', 'batch' -> 128.0 (NaN if none).

    >>> _group_option("mlp(activation=tanh,batch=128,depth=3)", "batch"), _group_option("seed_circuit", "batch")
    (128.0, nan)
    """
    for part in str(group).partition("(")[2].rpartition(")")[0].split(","):
        name, _, value = part.partition("=")
        if name == key:
            try:
                return float(value)
            except ValueError:
                return np.nan
    return np.nan


def cost_scaling(data):
    rows = _study_rows(data, "scaling", by_group=True)
    if rows is None:
        return None
    rows = rows.assign(batch=[_group_option(g, "batch") for g in rows.get("group", [""] * len(rows))])
    return _pick(rows.sort_values(["label", "P"]), [
        "problem_name", "group", "P", "batch", "method", "label", "status", "wall_median_s", "wall_iqr_s",
        "wall_first_s", "forward_median_s", "grad_over_forward", "ratio_low", "ratio_high", "ratio_width",
        "ratio_floor", "ratio_reliable", "ratio_blocks", "evaluations", "peak_bytes", "digits", "reason"])


def cost_max_p(tables):
    scaling = tables.get("cost_scaling")
    if scaling is None:
        return None
    rows = []
    for (method, label), part in scaling.groupby(["method", "label"], sort=False):
        ok, failed = part[part["status"] == "ok"], part[part["status"].isin(FAILED)]
        first = failed.loc[failed["P"].idxmin()] if len(failed) else None
        rows.append({"method": method, "label": label, "max_ok_P": ok["P"].max() if len(ok) else np.nan,
                     "gave_out_P": first["P"] if first is not None else np.nan,
                     "gave_out_status": first["status"] if first is not None else "",
                     "reason": str(first.get("reason", "")) if first is not None else ""})
    return pd.DataFrame(rows)


def cost_fits(data):
    """The studies' fitted cost models, labelled like the scaling rows (method, and group when there are several)."""
    fits, rows = data.frames.get("cost_models"), _study_rows(data, "scaling", by_group=True)
    if fits is None:
        return None
    keys = [k for k in ("method", "group") if k in fits and rows is not None and k in rows]
    if rows is not None and keys:
        labels = rows.drop_duplicates(keys)[[*keys, "label"]]
        fits = fits.merge(labels, how="left", on=keys)
        if {"wall_first_s", "forward_median_s"} <= set(rows):  # the cold first call, never in the warm column
            ok = rows[rows["status"] == "ok"]
            cold = (ok["wall_first_s"] / ok["forward_median_s"]).groupby([ok[k] for k in keys]).median()
            fits = fits.merge(cold.rename("cold_over_forward").reset_index(), how="left", on=keys)
    return fits.reset_index(drop=True)


def swell(data):
    """Symbolic expression sizes against P: the numeric counters of the symbolic rows, long form."""
    rows = _study_rows(data, "scaling")
    if rows is None:
        return None
    rows = rows[(rows["method"] == "symbolic") & (rows["status"] == "ok")]
    out = [{"P": r["P"], "counter": key, "value": float(value)}
           for _, r in rows.iterrows() for key, value in json_cell(r.get("counters"), {}).items()
           if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.endswith("_s")]
    return pd.DataFrame(out).sort_values(["counter", "P"]).reset_index(drop=True) if out else None


def seeds(data):
    """Seed examples: the printed number beside each method's result and the reference, with digits."""
    rows, refs = _study_rows(data, "seeds", fallback=False), data.frames.get("seed_reference")
    if rows is None or refs is None:
        return None
    out = []
    for _, r in rows.iterrows():
        ref = refs[refs["problem_name"] == r["problem_name"]].sort_values("index")
        if not len(ref):
            continue
        printed = json_cell(r.get("expected"), {})
        shown = np.array([float(printed.get(c, np.nan)) for c in ref["component"]])
        result = np.concatenate([[r["value"]], as_float_list(r.get("grad"))])
        if result.size != len(ref):  # a failed cell has no gradient
            result = np.full(len(ref), np.nan)
        table = ref.assign(method=r["method"], status=r["status"], printed=shown, result=result,
                           digits=_digits(result, ref), printed_digits=_digits(shown, ref))
        out.append(table.loc[:, ["problem_name", "component", "printed", "reference", "method", "status", "result",
                                 "digits", "printed_digits"]])
    return pd.concat(out, ignore_index=True) if out else None


def _digits(values: np.ndarray, ref: pd.DataFrame) -> np.ndarray:
    """Correct digits by dk.error's rule: the value alone, the gradient judged against its own scale."""
    import diffkit as dk

    is_value = (ref["component"] == "value").to_numpy()
    digits = np.full(values.size, np.nan)
    for part in (is_value, ~is_value):
        if part.any():
            digits[part] = dk.error(np.nan_to_num(values[part], nan=np.inf), ref["reference"].to_numpy()[part]) \
                .component_digits
    return np.where(np.isnan(values), np.nan, digits)


def step_size(data):
    """The V-curves: per problem, method and h, the error (the largest over the swept components)."""
    frame = data.frames.get("step_size")
    if frame is None:
        return None
    frame = frame[frame["status"] == "ok"] if "status" in frame else frame
    frame = frame.assign(problem=frame["problem_name"]) if "problem_name" in frame else frame
    agg = {c: "max" for c in ("error", "truncation_bound", "roundoff_bound") if c in frame}
    agg["h_opt"] = "first"
    return frame.groupby(["problem", "method", "h"], sort=True).agg(agg).reset_index()


def step_size_optimum(tables):
    """Per problem and method: the measured best step and its error beside the error model's optimum h_opt."""
    curves = tables.get("step_size")
    if curves is None:
        return None
    rows = []
    for (problem, method), part in curves.groupby(["problem", "method"], sort=False):
        part = part[(part["h"] > 0) & np.isfinite(part["error"]) & (part["error"] > 0)]
        if len(part):
            best = part.loc[part["error"].idxmin()]
            rows.append({"problem": problem, "method": method, "h_best": best["h"], "error_min": best["error"],
                         "h_opt": part["h_opt"].iloc[0]})
    return pd.DataFrame(rows) if rows else None


def baydin_figure3_minima(data):
    """Robust minima of the Figure 3 sweep (:func:`diffkit.baydin.figure3_minima`: reached by three steps at
    least; a flat floor as a range of h)."""
    from ..baydin import figure3_minima

    frame = data.frames.get("baydin_figure3")
    return None if frame is None else figure3_minima(frame)


def stability_summary(data):
    """Per case, method and variant: results, non-finite ones, the fewest digits inside the stable variant's
    documented domain, and the smallest |x| that went non-finite."""
    frame = data.frames.get("stability")
    if frame is None:
        return None
    rows = []
    for (case, method, variant), part in frame.groupby(["case", "method", "variant"], sort=True):
        bad = part[~part["finite"].astype(bool)]
        inside = part[part["in_domain"].astype(bool)] if "in_domain" in part else part
        worst = inside.groupby("quantity")["digits"].min()  # digits promised only inside the documented domain
        reasons = bad["status"].astype(str) if "status" in bad else pd.Series(dtype=str)
        rows.append({"case": case, "method": method, "variant": variant, "results": len(part),
                     "nonfinite": int(len(bad)), "worst_value_digits": worst.get("value", np.nan),
                     "worst_grad_digits": worst.get("grad", np.nan),
                     "first_nonfinite_x": bad.loc[bad["x"].abs().idxmin(), "x"] if len(bad) else np.nan,
                     "nonfinite_reason": reasons.mode().iloc[0] if len(reasons) else ""})
    return pd.DataFrame(rows)


def stability_curves(data):
    """Correct digits of each gradient against x (the stability figure), per case, method and variant."""
    frame = data.frames.get("stability")
    if frame is None:
        return None
    grad = frame[frame["quantity"] == "grad"]
    return grad[["case", "method", "variant", "x", "digits", "finite"]].sort_values(
        ["case", "method", "variant", "x"]).reset_index(drop=True)


def stability_variants(tables):
    summary = tables.get("stability_summary")
    if summary is None:
        return None
    return summary.groupby(["method", "variant"], sort=True).agg(
        results=("results", "sum"), nonfinite=("nonfinite", "sum"), worst_value_digits=("worst_value_digits", "min"),
        worst_grad_digits=("worst_grad_digits", "min")).reset_index()


def _frame(name: str):
    return lambda data: (data.frames[name].reset_index(drop=True) if name in data.frames else None)


# name -> (builder, what it needs).  Builders of the first group read the gathered data; the second, other tables.
# The raw stability sweep (~15 MB of CSV in quick mode) stays in the store: stability_summary is its table.
FROM_DATA = {
    "seeds": (seeds, "the seeds study"),
    "accuracy": (accuracy, "a gradient study (accuracy)"),
    "cost_scaling": (cost_scaling, "a gradient study (scaling)"),
    "cost_fits": (cost_fits, "the scaling study's fitted cost models"),
    "swell": (swell, "symbolic rows in the scaling study"),
    "step_size": (step_size, "the step_size study"),
    "baydin_figure3": (_frame("baydin_figure3"), "diffkit.baydin.baydin_figure3"),
    "baydin_figure3_minima": (baydin_figure3_minima, "diffkit.baydin.baydin_figure3"),
    "baydin_table1": (_frame("baydin_table1"), "diffkit.symbolic.baydin_table1"),
    "stability_summary": (stability_summary, "the stability study"),
    "stability_curves": (stability_curves, "the stability study"),
    "bench": (_frame("bench"), "diffkit.bench.run_bench"),
}
FROM_TABLES = {
    "cost_max_p": (cost_max_p, "a gradient study (scaling)"),
    "step_size_optimum": (step_size_optimum, "the step_size study"),
    "stability_variants": (stability_variants, "the stability study"),
    "baydin_figure3_slopes": (lambda t: figure3_slopes(t["baydin_figure3"], t["baydin_figure3_minima"])
                              if "baydin_figure3_minima" in t else None, "diffkit.baydin.baydin_figure3"),
    "sources": (sources, "the published numbers and diffkit's"),
}


def derive(data: ReportData) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """All derived tables that the data allows, and for each other one the reason it is missing."""
    tables, missing = {}, {}
    for group, source in ((FROM_DATA, data), (FROM_TABLES, tables)):
        for name, (build, needs) in group.items():
            try:
                frame = build(source)
            except KeyError as err:  # a column the contract promised is absent
                frame, needs = None, f"{needs} (column {err} missing)"
            if frame is None or not len(frame):
                source_reason = data.missing.get(name) or data.missing.get(name.split("_minima")[0])
                missing[name] = f"needs {needs}" + (f"; {source_reason}" if source_reason else "")
            else:
                tables[name] = frame.reset_index(drop=True)
    return tables, missing


def repro_studies(data):
    """Per study: kind, cells, statuses, study-file hash, seeds, diffkit version and commit, when it ran."""
    rows = []
    for kind, frame in data.frames.items():
        if "study" not in frame or kind not in ("gradient", "step_size", "stability"):
            continue
        for study, part in frame.groupby("study", sort=False):
            col = lambda c: sorted({str(v) for v in part[c].dropna()}) if c in part else []  # noqa: E731
            rows.append({"study": study, "kind": kind, "cells": len(part),
                         "ok": int((part["status"] == "ok").sum()) if "status" in part else len(part),
                         "study_hash": " ".join(col("study_hash")), "seeds": " ".join(col("seed")),
                         "diffkit_version": " ".join(col("diffkit_version")), "git_commit": " ".join(col("git_commit")),
                         "first_created": min(col("created_at"), default=""),
                         "last_created": max(col("created_at"), default="")})
    return pd.DataFrame(rows) if rows else None


ENV_NAMES = {"blas": "BLAS", "blas_threads": "BLAS threads", "cpu": "CPU", "cpu_count": "CPU cores",
             "git_commit": "commit", "packages": "packages", "platform": "platform", "python": "Python",
             "thread_vars": "thread variables"}


def _env_text(value) -> str:
    """An environment entry in words: a dict of libraries as "name version", nested pools flattened."""
    if isinstance(value, dict):
        if "pools" in value:  # threadpoolctl's summary: the libraries and their thread pools
            pools = [f"{p.get('internal_api', '?')} {p.get('version', '')}, {p.get('num_threads', '?')} thread(s)"
                     + (f" ({p['threading_layer']})" if p.get("threading_layer") else "") for p in value["pools"]]
            return "; ".join(pools) or "none"
        parts = []
        for k, v in value.items():
            if isinstance(v, dict):
                v = " ".join(str(x) for x in v.values())
            parts.append(f"{k} {'unset' if v is None else v}")
        return ", ".join(parts)
    return str(value)


def repro_env(data):
    """The environment the results were measured in (from the rows' env JSON), then this process's versions."""
    import platform

    import matplotlib
    import mpmath
    import sympy

    import diffkit

    env = {}
    for frame in data.frames.values():
        if "env" in frame and len(frame):
            env.update({f"measured: {ENV_NAMES.get(k, k)}": _env_text(v)
                        for k, v in json_cell(frame["env"].iloc[0], {}).items()})
            break
    env.update({"report python": platform.python_version(), "report platform": platform.platform(),
                "report diffkit": diffkit.__version__, "report numpy": np.__version__,
                "report pandas": pd.__version__, "report sympy": sympy.__version__, "report mpmath": mpmath.__version__,
                "report matplotlib": matplotlib.__version__, "mode": "full" if data.full else "quick",
                "studies": " ".join(data.studies), "store": data.store})
    return pd.DataFrame({"key": list(env), "value": list(env.values())})


FROM_DATA.update({"repro_studies": (repro_studies, "study results"), "repro_env": (repro_env, "nothing")})
