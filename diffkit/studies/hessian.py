"""Study kind ``"hessian"``: the four Hessian-vector-product routes, for accuracy and cost against P.

One cell per problem instance.  It draws a direction v (seeded by the cell's seed), takes the certified
mpmath reference H v (:func:`diffkit.reference_hvp`, up to ``reference.max_p``), and times every route of
``sweep.routes`` together with the reverse-mode gradient of the same problem, interleaved in each repeat so
that drift hits all alike.  Each route gives one row: ``method`` (the route), ``digits`` (against the
referee), ``predicted_digits`` (finite differences' error model), ``wall_median_s``, ``gradient_median_s``
and ``hvp_over_gradient`` (paired, :func:`~diffkit.studies.timing.paired_ratios`: every route's HVP and a
gradient timed in turn, all routes round-robin; ``ratio_low``/``ratio_high`` its interval), ``passes``.  The symbolic route runs only up to ``sweep.symbolic_max_p``
(its expressions swell with every derivative).
"""
from __future__ import annotations

import math
import time
import traceback

import numpy as np

from ..higher import HVP_MODES, hvp
from ..api import gradient
from .store import dumps
from .timing import CellBudget, Ratio, deadline, paired_ratios

__all__ = ["hessian_cell", "ROUTES"]

ROUTES = HVP_MODES


def _digits(a: np.ndarray, ref: np.ndarray) -> float:
    err = float(np.max(np.abs(a - ref)))
    scale = max(float(np.max(np.abs(ref))), np.finfo(float).tiny)
    return 16.0 if err == 0 else min(16.0, -math.log10(err / scale))


def hessian_cell(study, cell, ctx, row: dict) -> tuple[str, list[dict]]:
    sweep, timing = study.sweep, study.timing
    routes = [r for r in sweep["routes"] if r in ROUTES]
    unknown = sorted(set(sweep["routes"]) - set(ROUTES))
    if unknown:
        return "failed", [{**row, "status": "failed", "reason": f"sweep.routes names {unknown[0]!r}; valid routes: "
                                                              f"{', '.join(ROUTES)}"}]
    problem = ctx.problem(cell)
    row.update(problem_name=problem.name, P=problem.size)
    theta = problem.theta0
    v = np.random.default_rng(cell.seed).standard_normal(theta.shape)
    too_big = problem.size > sweep["symbolic_max_p"]
    live = [r for r in routes if not (r == "symbolic" and too_big)]
    ref, reason = None, ""
    start = time.perf_counter()
    try:
        with deadline(study.budget_s):
            if problem.size <= study.reference["max_p"]:
                from ..reference_higher import reference_hvp
                ref = reference_hvp(problem, theta, v, digits=study.reference["digits"],
                                    certify=study.reference["certify"]).hvp
            else:
                reason = f"no reference: P={problem.size} > reference.max_p={study.reference['max_p']}"
            first = {r: hvp(problem, theta, v, mode=r) for r in live}
            left = study.budget_s - (time.perf_counter() - start)
            ratios = paired_ratios({r: Ratio(
                lambda r=r: hvp(problem, theta, v, mode=r).wall_s, lambda: gradient(problem, method="reverse"),
                floor=0.0 if r == "symbolic" else 1.0,  # the other routes run the gradient's work and more
                numerator_times_itself=True, min_pairs=timing["min_repeats"], max_pairs=timing["max_repeats"],
                min_time_s=timing["min_time_s"], target=timing["ratio_target"], blocks=timing["blocks"],
                budget_s=min(timing["ratio_budget_s"], left / max(len(live), 1))) for r in live})
    except CellBudget as err:
        return "budget", [{**row, "status": "budget", "reason": f"CellBudget: {err}",
                           "wall_median_s": time.perf_counter() - start}]
    except Exception as err:  # noqa: BLE001  (a failing cell is a result; the study goes on)
        where = traceback.extract_tb(err.__traceback__)[-1]
        return "failed", [{**row, "status": "failed", "reason": f"{type(err).__name__}: {err} (line {where.lineno})"}]
    rows = []
    for r in routes:
        out = {**row, "method": r, "status": "ok", "reason": reason}
        if r not in live:
            out.update(status="skipped", reason=f"symbolic HVP only up to sweep.symbolic_max_p="
                                                f"{sweep['symbolic_max_p']} (expressions swell with each derivative)")
        else:
            m = ratios[r]
            out.update(wall_median_s=m.numerator_s, wall_min_s=float(np.min(m.numerator_samples)),
                       gradient_median_s=m.denominator_s, repeats=m.pairs, ratio_blocks=m.blocks,
                       hvp_over_gradient=m.ratio if m.reliable else np.nan, ratio_low=m.low if m.reliable else np.nan,
                       ratio_high=m.high if m.reliable else np.nan, ratio_reliable=m.reliable,
                       reason="; ".join(filter(None, [m.note if not m.reliable else "", reason])),
                       passes=first[r].passes, wall_first_s=first[r].wall_s,
                       predicted_digits=first[r].counters.get("predicted_digits"),
                       counters=dumps(first[r].counters))
            if ref is not None:
                out["digits"] = _digits(first[r].hvp, ref)
        rows.append(out)
    return "ok", rows
