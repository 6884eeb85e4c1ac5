"""The report's GradBench section, rendered from the CSV that ``diffkit bench --gradbench`` writes.

>>> import pandas as pd, tempfile, os
>>> rows = [{"eval": "lse", "size": "n=2500", "method": m, "status": "ok", "gradient_s": g, "primal_s": 1e-4,
...          "gradient_over_primal": g / 1e-4, "over_tape": g / 3e-4, "max_difference": 0.0, "note": ""}
...         for m, g in (("reverse", 3e-4), ("torch", 6e-4))]
>>> path = os.path.join(tempfile.mkdtemp(), "gradbench.csv")
>>> pd.DataFrame(rows).to_csv(path, index=False)
>>> print(section(path).splitlines()[-1])
| lse | n=2500 | 3 | — | 6 | — | — | 2 | — | — | — |
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["section"]

PEERS = ("torch", "jax", "autograd")


def _ratio(x: float, digits: int = 2) -> str:
    if not np.isfinite(x):
        return "—"
    return f"{x:.{digits}g}" if x < 10 else f"{x:.0f}"


def _label(method: str) -> str:
    return "tape" if method == "reverse" else method


def section(csv_path) -> str:
    """Markdown: per eval and size, the tape's gradient/primal, each peer's, and each peer's time over the tape's.

    Cells are medians of interleaved samples on one thread; ``—`` marks a method
    that did not run (not installed, no Hessian-vector product, over budget),
    and the notes under the table say why.
    """
    path = Path(csv_path)
    df = pd.read_csv(path, keep_default_na=True)
    methods = ("reverse", "compiled") + PEERS
    header = ["eval", "size"] + [f"{_label(m)} grad / primal" for m in methods] + [f"{p} / tape" for p in PEERS] \
        + ["jax / compiled"]
    lines = [
        "## GradBench evals: the tape beside the peers",
        "",
        "Each GradBench eval's functions are written once against `dk.namespace` (`diffkit.gradbench.evals`) and "
        "run, at the eval's sizes and inputs made as the eval makes them, through diffkit's tape "
        "(`dk.gradient(..., method=\"reverse\")`), its compiled replay (`dk.compile`, compile time kept apart) "
        "and the peers on the same definitions. Gradient / primal divides "
        "by the numpy primal; *peer / tape* is the peer's gradient time over the tape's (above 1: the tape is "
        "faster); *jax / compiled* is JAX-jit's over the compiled replay's. One BLAS thread, one CPU, methods "
        "interleaved, medians; `diffkit bench --gradbench` "
        f"regenerates it (*data: [{path.name}](data/{path.name})*).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    notes = []
    for (name, size), group in df.groupby(["eval", "size"], sort=False):
        by = {row.method: row for row in group.itertuples()}

        def col(method, column):
            row = by.get(method)
            return float(getattr(row, column)) if row is not None and row.status == "ok" else float("nan")
        cells = [name, size] + [_ratio(col(m, "gradient_over_primal")) for m in methods] \
            + [_ratio(col(p, "over_tape")) for p in PEERS] \
            + [_ratio(col("jax", "gradient_s") / col("compiled", "gradient_s"))]
        lines.append("| " + " | ".join(cells) + " |")
        for row in group.itertuples():
            if row.status != "ok" and isinstance(row.note, str) and row.note:
                notes.append(f"{row.method} on {name} ({size}): {row.status}, {row.note}")
    if notes:
        lines += ["", "Not run:", ""] + [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)
