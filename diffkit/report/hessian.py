"""The report's HVP comparison: the four Hessian-vector-product routes, digits and cost against P.

Drawn from the stored rows of the ``hessian`` study (``diffkit study run hessian``): :func:`hvp_table`
derives the table (one row per route and P), :func:`hvp_figure` draws it (digits against the referee;
HVP time over the gradient's, timed in pairs), :func:`hvp_markdown` writes a short section and
:func:`render_section` does all three into a folder.  Every number in the text comes from the table.

>>> import pandas as pd, tempfile, pathlib
>>> rows = pd.DataFrame({"method": ["forward_over_reverse", "finite_difference"] * 2, "P": [24, 24, 90, 90],
...                      "status": ["ok"] * 4, "digits": [15.5, 9.4, 15.5, 10.0], "predicted_digits": [None, 10.4, None, 10.4],
...                      "wall_median_s": [1e-3, 2e-3, 2e-3, 4e-3], "gradient_median_s": [5e-4, 5e-4, 6e-4, 6e-4]})
>>> text = render_section(rows, pathlib.Path(tempfile.mkdtemp()))
>>> "forward_over_reverse" in text and "hvp.png" in text
True
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figures import DPI, SIZE, _finish, _lines, plt

__all__ = ["hvp_table", "hvp_figure", "hvp_markdown", "render_section"]

COLUMNS = ["method", "P", "digits", "predicted_digits", "wall_median_s", "gradient_median_s", "hvp_over_gradient"]


def hvp_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per route and P (median over seeds) from the ``hessian`` study's rows."""
    ok = rows[rows["status"] == "ok"].copy()
    if "hvp_over_gradient" not in ok:  # (rows from before the paired ratio: the quotient of the medians)
        ok["hvp_over_gradient"] = ok["wall_median_s"] / ok["gradient_median_s"]
    cols = [c for c in COLUMNS[2:] if c in ok]
    return ok.groupby(["method", "P"], as_index=False)[cols].median().reindex(columns=COLUMNS)


def hvp_figure(table: pd.DataFrame):
    fig, (left, right) = plt.subplots(1, 2, figsize=(SIZE[0] * 1.7, SIZE[1]))
    _lines(left, table.dropna(subset=["digits"]), "method", "P", "digits")
    _finish(left, "parameter count P", "correct digits of H v (against mpmath)", "HVP accuracy", log="x",
            legend=False)
    _lines(right, table.dropna(subset=["hvp_over_gradient"]), "method", "P", "hvp_over_gradient")
    _finish(right, "parameter count P", "HVP time / reverse gradient time (ratio)", "HVP cost", log="xy",
            legend=False)
    handles = dict(zip(*reversed(left.get_legend_handles_labels())))
    handles.update(dict(zip(*reversed(right.get_legend_handles_labels()))))
    right.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=True)
    fig.tight_layout()
    return fig


def _fmt(v, spec: str) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


def hvp_markdown(table: pd.DataFrame, figure: str = "hvp.png") -> str:
    """A short Markdown section: what was measured, the figure, and the worst digits / cost per route."""
    lines = ["## Second derivatives: four routes to H v", "",
             "`dk.hvp` offers forward-over-reverse (a dual pass over the tape), reverse-over-reverse (the tape "
             "records its own backward sweep), central differences of the gradient and SymPy. Digits are "
             "against the certified mpmath referee (`dk.reference_hvp`); cost is HVP time over the reverse "
             "gradient's, the two timed in turn (the median of their paired ratios).", "", f"![HVP accuracy and cost against P]({figure})", "",
             "| route | P range | worst digits | predicted (FD model) | HVP / gradient (median) |",
             "|---|---|---|---|---|"]
    for method, part in table.groupby("method", sort=False):
        lines.append(f"| {method} | {int(part['P'].min())}–{int(part['P'].max())} | {_fmt(part['digits'].min(), '.1f')}"
                     f" | {_fmt(part['predicted_digits'].min(), '.1f')} | "
                     f"{_fmt(part['hvp_over_gradient'].median(), '.2g')} |")
    return "\n".join(lines) + "\n"


def render_section(rows: pd.DataFrame, out: Path) -> str:
    """Write ``hvp.png`` and ``hvp_routes.csv`` into ``out``; return the Markdown section."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = hvp_table(rows)
    table.to_csv(out / "hvp_routes.csv", index=False)
    fig = hvp_figure(table)
    try:
        fig.savefig(out / "hvp.png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return hvp_markdown(table)


def _hvp_rows(data):
    frame = data.frames.get("hessian")
    return None if frame is None else hvp_table(frame)


def install() -> None:
    """Add the HVP table and figure to the report's derived tables and figures (drawn only with a report)."""
    from .figures import FIGURES, FigureSpec
    from .tables import FROM_DATA
    FROM_DATA["hvp"] = (_hvp_rows, "the hessian study")
    FIGURES["hvp"] = FigureSpec(lambda tables: hvp_figure(tables["hvp"]), ("hvp",))
