"""Gathering: run (or reuse) the studies and the other data sources, and nothing else.

This is the only module of :mod:`diffkit.report` that runs studies or other
modules' experiments; the rest derives tables from what :func:`gather` returns
and renders them.  A :class:`ReportData` holds the
study result frames by *kind* ("gradient", "step_size", "stability"), the
extra sources by name, and for everything missing the reason why.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["ReportData", "gather", "DEFAULT_STUDIES", "seed_references", "EmptyStoreError"]

REFERENCE_DIGITS = 50  # the project's referee precision (mpmath at 50+ digits), as in the studies' [reference]
# The studies `diffkit report` runs when none are named (resolved against builtin_studies()).
DEFAULT_STUDIES = ("seeds", "accuracy", "scaling", "step_size", "stability", "hessian")


class EmptyStoreError(ValueError):
    """The store holds no results for a study, and the report was told not to run it."""


@dataclass
class ReportData:
    """``frames`` by kind or source name; ``missing`` source name -> reason; run settings."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    studies: tuple[str, ...] = ()
    full: bool = False
    command: str = "diffkit report"
    store: str = ""


def _log(progress: bool, message: str, start: float) -> None:
    if progress:
        print(f"[report {time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)


def _studies_module():
    try:
        return importlib.import_module("diffkit.studies")
    except ModuleNotFoundError as err:
        if err.name != "diffkit.studies":
            raise
        raise RuntimeError("the studies package diffkit.studies is not installed; the report needs it") from None


def check_studies(names) -> tuple[str, ...]:
    """The study names, validated against the built-in studies (ValueError lists the valid ones)."""
    known = list(_studies_module().builtin_studies())
    if names is None:
        return tuple(n for n in DEFAULT_STUDIES if n in known) or tuple(known)
    names = tuple(names)
    unknown = [n for n in names if n not in known and not str(n).endswith(".toml")]
    if not names or unknown:
        raise ValueError(f"unknown study {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"valid studies: {', '.join(known)} (or a path to a .toml study file)")
    return names


def gather(studies=None, *, full: bool = False, store=None, progress: bool = True, run: bool = True,
           fresh: bool = False, command: str = "diffkit report") -> ReportData:
    """Run (or, with ``run=False``, only read from the store) each study, then the extra sources.

    Quick mode unless ``full``; results already in the store are reused by the
    studies package.  ValueError for an unknown study; :class:`EmptyStoreError` when ``run=False`` and
    the store holds no results for any of the studies (a study without results becomes a placeholder).
    """
    st = _studies_module()
    names = check_studies(studies)
    start = time.perf_counter()
    data = ReportData(studies=names, full=full, command=command, store=str(store or st.default_store_path()))
    # A study measured in blocks (timing.blocks) gets its first block when its cells run, its second once every
    # study has run and its last after the other sources: each ratio's blocks span the whole report, so its
    # interval holds what drifted during it.
    frames = _studies(st, names, data, start, progress, run=run, full=full, store=store, fresh=fresh, upto=1)
    if not frames:
        raise EmptyStoreError(f"the store {data.store} holds no results for the studies {', '.join(names)}; run "
                              f"`diffkit study run {names[0]}` first, or let `diffkit report` run them (drop --no-run)")
    if run:
        _studies(st, names, data, start, progress, run=run, full=full, store=store, upto=2,
                 note="second blocks of the ratios")
    for name, fn in _extra_sources(full).items():
        _log(progress, f"source {name}", start)
        _source(data, name, fn)
    if run:
        frames = _studies(st, names, data, start, progress, run=run, full=full, store=store,
                          note="last blocks of the ratios")
    by_kind: dict[str, list[pd.DataFrame]] = {}
    for frame in frames.values():
        for kind, part in frame.groupby("kind", sort=False):
            by_kind.setdefault(str(kind), []).append(part)
    data.frames.update({kind: pd.concat(parts, ignore_index=True) for kind, parts in by_kind.items()})
    gradient = data.frames.get("gradient")
    if gradient is not None and "scaling" in set(gradient["study"]):
        _source(data, "cost_models", lambda: st.fit_cost_models(gradient[gradient["study"] == "scaling"]))
    if gradient is not None and "seeds" in set(gradient["study"]):
        _source(data, "seed_reference", seed_references)
    _log(progress, "data gathered", start)
    return data


def _studies(st, names, data: ReportData, start: float, progress: bool, *, run: bool, full: bool, store,
             fresh: bool = False, upto: int | None = None, note: str = "") -> dict[str, pd.DataFrame]:
    """Each study's result frame (run, reusing stored cells, with its ratios' blocks up to ``upto``; or read)."""
    frames = {}
    if note:
        _log(progress, f"the studies' {note}", start)
    for name in names:
        study = st.load_study(name)
        if run:
            if not note:
                _log(progress, f"study {name} ({'full' if full else 'quick'}): running, reusing stored cells", start)
            frame = st.run_study(study, store=store, quick=not full, fresh=fresh, progress=progress,
                                 quiet=not progress, blocks_upto=upto)
        else:
            frame = st.results(study, store=store)
        if frame is None or len(frame) == 0:
            data.missing[f"study {name}"] = f"the store holds no results for study {name!r}"
            _log(progress, f"study {name}: no results in the store; its sections will say so", start)
            continue
        data.missing.pop(f"study {name}", None)
        frames[name] = frame
        if not note:
            _log(progress, f"study {name}: {len(frame)} cells", start)
    return frames


def _extra_sources(full: bool) -> dict[str, Callable[[], pd.DataFrame]]:
    """The sources owned by other modules: (module, function, keyword arguments) each."""
    def call(modules: tuple[str, ...], function: str, **kwargs) -> Callable[[], pd.DataFrame]:
        def load():
            for module in modules:
                try:
                    return getattr(importlib.import_module(module), function)(**kwargs)
                except ModuleNotFoundError as err:
                    if err.name != module:
                        raise
            raise ModuleNotFoundError(f"{function} needs {' or '.join(modules)}, which is not installed")
        return load
    return {
        "baydin_figure3": call(("diffkit.baydin",), "baydin_figure3"),
        "baydin_table1": call(("diffkit.baydin",), "baydin_table1", n_max=8),
        # one BLAS thread, the report's only table of it; `diffkit bench` also times two
        "bench": call(("diffkit.bench",), "run_bench", quick=not full, threads=(1,),
                      ratio_budget_s=None if full else 0.7),
    }


def _source(data: ReportData, name: str, fn: Callable[[], pd.DataFrame]) -> None:
    """Store ``fn()`` under ``name``, or the reason it failed (a missing source is a placeholder section)."""
    try:
        frame = fn()
    except Exception as err:  # noqa: BLE001  (one failing source must not sink the whole report)
        data.missing[name] = f"{type(err).__name__}: {err}"
        print(f"[report] {name} not available: {data.missing[name]}", file=sys.stderr)
        return
    if frame is None or len(frame) == 0:
        data.missing[name] = f"{name} returned no rows"
    else:
        data.frames[name] = pd.DataFrame(frame).reset_index(drop=True)


def seed_references() -> pd.DataFrame:
    """The mpmath reference of each seed example: problem_name, component, index, reference, digits."""
    import diffkit as dk

    rows = []
    for problem in dk.problems.seed_examples():
        ref = dk.reference(problem, digits=REFERENCE_DIGITS)
        rows.append({"problem_name": problem.name, "component": "value", "index": -1, "reference": ref.value,
                     "digits": ref.digits})
        rows += [{"problem_name": problem.name, "component": problem.component_name(i), "index": i,
                  "reference": float(g), "digits": ref.digits} for i, g in enumerate(ref.grad)]
    return pd.DataFrame(rows)


def json_cell(text, default):
    """A JSON text cell of a result frame, decoded (``default`` when empty or not JSON)."""
    if isinstance(text, (dict, list)):
        return text
    if not isinstance(text, str) or not text.strip():
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default


def as_float_list(text) -> np.ndarray:
    return np.asarray(json_cell(text, []), dtype=float)
