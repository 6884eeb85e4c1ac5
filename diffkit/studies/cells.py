"""Cells: the units of work of a study (a problem instance x a method x a seed), built lazily from its grid.

:meth:`diffkit.studies.Study.cells` counts a grid before it builds it and filters sizes first, so a huge grid
with a small ``max_p`` starts at once.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from .. import problems as _problems

__all__ = ["Cell", "MAX_CELLS", "entry_cells", "entry_count"]


@dataclass(frozen=True)
class Cell:
    """One unit of work and one stored record: a problem instance x a method x a seed."""

    cell_id: str
    series: str            # the cell_id without its size: one budget chain
    group: str             # the problem without its size, e.g. "mlp(activation=tanh,batch=128,...)"
    family: str            # problem family (a name in dk.problems.catalogue())
    params: tuple          # builder keyword arguments, as sorted (key, value) pairs
    size: int              # target P (mlp sizes) or the exact P
    method: str            # label in the study
    method_name: str       # registered method name
    options: tuple         # method options, sorted (key, value) pairs
    seed: int

    def build(self):
        """The :class:`~diffkit.problems.Problem` of this cell."""
        params = dict(self.params)
        if self.family != "mlp":
            return _problems.catalogue()[self.family]()
        if "layers" in params:
            return _problems.mlp(params.pop("layers"), seed=self.seed, **params)
        return _problems.mlp_for_size(self.size, seed=self.seed, **params)

    @property
    def problem_key(self) -> str:
        """Identifies the problem instance (the reference cache key)."""
        return f"{self.family}{json.dumps(dict(self.params), sort_keys=True)}size={self.size}/seed={self.seed}"




MAX_CELLS = 200_000  # a grid past this is a typo more often than a plan; it would take minutes to build


def _shape_size(shape_key: str, shape) -> int:
    return _problems.mlp_size(shape) if shape_key == "layers" else shape


def _entry_methods(study: "Study", entry: dict) -> list:
    return [(label, m) for label, m in study.methods.items() if entry["methods"] in (None, [])
            or label in entry["methods"]] if study.kind == "gradient" else [(study.kind, (study.kind, {}))]


def entry_count(study: "Study", entry: dict, max_p: int | None) -> int:
    shapes = [s for s in entry["shapes"] if max_p is None or _shape_size(*s) <= max_p]
    combos = math.prod(len(v) if isinstance(v, list) else 1 for v in entry["grid"].values())
    return combos * len(shapes) * len(entry["seeds"]) * len(_entry_methods(study, entry))


def entry_cells(study: "Study", entry: dict, max_p: int | None = None) -> list[Cell]:
    family = entry["family"]
    grid = [(k, v if isinstance(v, list) else [v]) for k, v in sorted(entry["grid"].items())]
    shapes = [s for s in entry["shapes"] if max_p is None or _shape_size(*s) <= max_p]
    if not shapes:
        return []
    methods = _entry_methods(study, entry)
    cells = []
    for combo in itertools.product(*(values for _, values in grid)):
        params = tuple(zip((k for k, _ in grid), combo)) + entry["fixed"]
        for (shape_key, shape), seed, (label, (name, options)) in itertools.product(
                shapes, entry["seeds"], methods):
            full = tuple(sorted(params + ((("layers", shape),) if shape_key == "layers" else ())))
            size = _shape_size(shape_key, shape)
            described = ",".join(f"{k}={v}" for k, v in full if k != "layers")
            problem = f"{family}({described})" if described else family
            series = f"{problem}/{label}/seed={seed}"
            where = f"layers={'-'.join(map(str, shape))}" if shape_key == "layers" else f"size={size}"
            cell_id = f"{problem}/{where}/{label}/seed={seed}"
            cells.append(Cell(cell_id, series, problem, family, _freeze(full), size, label, name,
                              _freeze(tuple(sorted(options.items()))), seed))
    return cells


def _freeze(pairs):
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in pairs)


