"""A gradient cell's gradient/forward ratio in a study row, measured in blocks spread over the run.

Within one run the pairs of a ratio agree, but the machine's state moves a
large-P ratio by 5-10 % over minutes, and an interval from back-to-back pairs
cannot see that.  With ``timing.blocks = k`` (k > 1) each gradient cell's
ratio is measured in k blocks: the first when the cell runs, the others in
later passes over the study's cells (in the study's order, once every cell has
run), so a cell's blocks lie a pass apart.  Each block takes
ceil(min_repeats / k) pairs at least and ratio_budget_s / k seconds; the row
pools the pairs of every block (the ``ratio_pairs`` column keeps them) and
states the hierarchical bootstrap interval over blocks
(:func:`~diffkit.studies.timing.merge_blocks`), so what drifted between the
start and the end of the run is inside the stated interval.  A block that
stays below the ratio's floor is left out; a block that fails or runs past
the cell's budget leaves the row as it was; a rerun adds the blocks a row
still lacks (an interrupted run resumes).
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np

from .spec import Cell, Study
from .store import Store, dumps
from .timing import PairedRatio, merge_blocks, summary

__all__ = ["block_rules", "ratio_columns", "later_passes", "blocks_in"]


def block_rules(timing: dict) -> tuple[dict, float]:
    """(the :class:`~diffkit.studies.timing.Ratio` rules of one block, its budget in seconds)."""
    k = timing["blocks"]
    rules = dict(target=timing["ratio_target"], min_pairs=-(-timing["min_repeats"] // k),
                 max_pairs=-(-timing["max_repeats"] // k), min_time_s=timing["min_time_s"] / k,
                 numerator_times_itself=True)
    return rules, timing["ratio_budget_s"] / k


def _shown_reason(r: PairedRatio, method: str) -> str:
    """What the row's reason says about an unreliable ratio ('' for a reliable one)."""
    if r.reliable:
        return ""
    why = r.note if method != "symbolic" else (
        f"measured {r.ratio:.2g} < 1 after {r.attempts} attempts: the warm symbolic gradient is one compiled "
        f"straight-line program, the forward it is divided by runs f through the array namespace, so the two are "
        f"not the same implementation of f and no floor of 1 holds between them")
    return f"gradient/forward not shown: {why}"


def ratio_columns(r: PairedRatio, method: str, ref_reason: str) -> dict:
    """The row's columns of a measured ratio: times, the ratio (left empty when unreliable, its note in
    ``reason``), its interval, blocks and pairs."""
    shown = _shown_reason(r, method)
    return {**summary(list(r.numerator_samples), [np.nan]), "forward_median_s": r.denominator_s,
            "grad_over_forward": r.ratio if r.reliable else np.nan, "ratio_low": r.low if r.reliable else np.nan,
            "ratio_high": r.high if r.reliable else np.nan, "ratio_width": r.width, "ratio_floor": r.floor,
            "ratio_reliable": r.reliable, "ratio_blocks": r.blocks, "ratio_note": shown or r.note,
            "ratio_pairs": dumps({"numerator_s": list(r.numerator_samples), "denominator_s":
                                  list(r.denominator_samples), "block": list(r.pair_blocks)}),
            "reason": "; ".join(filter(None, [shown, ref_reason]))}


def _stored(row: dict) -> tuple[PairedRatio, str] | None:
    """(the row's ratio with its pairs, the reason's part that is not about the ratio), or None."""
    text = row.get("ratio_pairs")
    if row.get("status") != "ok" or not isinstance(text, str):
        return None
    pairs = json.loads(text)
    reliable = bool(row.get("ratio_reliable"))
    shown, reason = ("" if reliable else row.get("ratio_note") or ""), row.get("reason") or ""
    ref_reason = reason[len(shown):].lstrip("; ") if shown and reason.startswith(shown) else reason
    ratio = PairedRatio(ratio=float("nan"), low=float("nan"), high=float("nan"), width=float("nan"),
                        pairs=len(pairs["block"]), numerator_s=float("nan"), denominator_s=float("nan"),
                        floor=float(row["ratio_floor"]), reliable=reliable, attempts=1,
                        numerator_samples=tuple(pairs["numerator_s"]),
                        denominator_samples=tuple(pairs["denominator_s"]), pair_blocks=tuple(pairs["block"]),
                        blocks=int(row.get("ratio_blocks") or 1))
    return ratio, ref_reason


def blocks_in(row: dict) -> int:
    """How many blocks the row's ratio holds (0: no ratio)."""
    stored = _stored(row)
    return 0 if stored is None else stored[0].blocks


def later_passes(study: Study, cells: list[Cell], db: Store,
                 measure: Callable[[list[tuple[Cell, float]]], dict[str, PairedRatio]], upto: int | None = None) -> None:
    """Passes 2..k (``upto``, at most) over the cells whose rows hold fewer blocks than ``timing.blocks``:
    ``measure([(cell, seconds of one gradient so far), ...])`` takes one block of each (in order, or on a
    cluster), and each row is recorded again with the block pooled in."""
    k = study.timing["blocks"] if study.kind == "gradient" else 1
    for block in range(2, min(k, upto or k) + 1):
        rows = {r["cell_id"]: r for r in db.rows(study.store_key)}
        due = {c.cell_id: c for c in cells if c.cell_id in rows and 0 < blocks_in(rows[c.cell_id]) < block}
        work = [(c, float(rows[c.cell_id]["wall_median_s"] or 0.0)) for c in due.values()]
        for cell_id, part in measure(work).items():
            old, ref_reason = _stored(rows[cell_id])
            merged = merge_blocks([old, part], target=study.timing["ratio_target"])
            columns = ratio_columns(merged, due[cell_id].method_name, ref_reason)
            db.record(study.store_key, cell_id, "ok", [{**rows[cell_id], **columns}])
