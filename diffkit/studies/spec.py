"""Study definitions: TOML files (or dicts built in Python), validated into a :class:`Study`.

Every key a study file may hold is listed once, in the tables below, with its
type, its default and what it means; anything else is rejected with the key's
name and the valid ones.  ``studies/README.md`` documents the format.

>>> s = study_from_dict({"study": {"name": "tiny"}, "problems": [{"family": "seed_circuit"}],
...                      "methods": {"reverse": {}}})
>>> [c.cell_id for c in s.cells()]
['seed_circuit/size=3/reverse/seed=0']
>>> study_from_dict({"study": {"name": "x", "colour": 1}})
Traceback (most recent call last):
...
diffkit.studies.spec.StudyError: <python>: unknown key 'study.colour'; valid keys: blas_threads, budget_s, description, kind, name, seeds
"""
from __future__ import annotations

import hashlib
import math
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .. import problems as _problems
from ..nn import ACTIVATIONS, COST_ALIASES, COSTS
from .cells import MAX_CELLS, Cell, entry_cells, entry_count

__all__ = ["Study", "Cell", "StudyError", "load_study", "study_from_dict", "builtin_studies", "studies_dir",
           "KINDS", "PLANNED_METHODS"]

KINDS = ("gradient", "step_size", "stability", "hessian")
# Methods that other modules of diffkit provide (finite differences, symbolic, peers).  A study may name them
# before their module exists in this tree: such cells are recorded as "skipped" with the reason, and run once
# the module lands.  Any other unregistered name is a typo and is rejected.
PLANNED_METHODS = ("forward", "backward", "central", "central4", "complex_step", "richardson", "symbolic",
                   "torch", "jax", "autograd")


class StudyError(ValueError):
    """A study file or dict is malformed; the message names the key and the valid choices."""


# --- the one table of keys: (type check, default, description) per section -----------------------------------

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPES = {  # type name -> predicate
    "string": lambda v: isinstance(v, str), "integer": _is_int, "number": _is_num,
    "boolean": lambda v: isinstance(v, bool), "table": lambda v: isinstance(v, dict),
    "list of integers": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    "list of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}

SECTIONS: dict[str, dict[str, tuple[str, Any, str]]] = {
    "study": {
        "name": ("string", None, "the study's name (required); results are stored under it"),
        "kind": ("string", "gradient", "gradient | step_size | stability | hessian"),
        "description": ("string", "", "one line shown by `diffkit study list`"),
        "seeds": ("list of integers", [0], "data seeds of the MLP problems (the seeds' examples ignore them)"),
        "budget_s": ("number", 60.0, "wall seconds one cell may take; past it the cell is recorded as 'budget' "
                                     "and larger sizes of the same method are 'skipped'"),
        "blas_threads": ("integer", 1, "BLAS threads, fixed while the study runs and recorded in each row"),
    },
    "timing": {
        "warmup": ("integer", 1, "untimed calls before timing, at least 1 (the first gives the accuracy and the "
                                 "cold time wall_first_s)"),
        "min_repeats": ("integer", 3, "timed (gradient, forward) pairs at least"),
        "max_repeats": ("integer", 200, "timed pairs at most"),
        "min_time_s": ("number", 0.2, "keep pairing until the timed gradients add up to this many seconds"),
        "ratio_target": ("number", 0.10, "pair gradient and forward until the interval of gradient/forward is "
                                         "within this relative half-width ..."),
        "ratio_budget_s": ("number", 5.0, "... or this many seconds have gone (the width reached is recorded)"),
        "blocks": ("integer", 1, "measure gradient/forward in this many blocks spread over the run: the first when "
                                 "the cell runs, the others in later passes over the study's cells, each with a "
                                 "share of the pairs and the budget; the interval is a bootstrap over blocks, so "
                                 "it holds what drifted between them"),
        "memory": ("boolean", True, "measure peak bytes with tracemalloc, in one extra call"),
        "memory_max_s": ("number", 5.0, "skip the memory call when one gradient takes longer than this"),
    },
    "reference": {
        "digits": ("integer", 50, "digits of the mpmath reference"),
        "max_p": ("integer", 20000, "no reference above this P (the mpmath reference costs ~1 ms per parameter); "
                                    "such rows say why their error columns are empty"),
        "certify": ("boolean", True, "certify the reference by high-precision differences"),
        "directions": ("integer", 2, "random directions of the certification"),
        "max_coordinates": ("integer", 50, "certify every coordinate when P is at most this"),
    },
    "sweep": {
        "methods": ("list of strings", ["forward", "central", "complex_step", "richardson"],
                    "step_size: the finite-difference methods of the V-curves"),
        "log10_h_min": ("number", -16.0, "step_size: smallest step, as a power of ten"),
        "log10_h_max": ("number", 0.0, "step_size: largest step, as a power of ten"),
        "steps": ("integer", 65, "step_size: number of log-spaced steps"),
        "component": ("string", "norm", "step_size: 'norm' (the whole gradient) or a component name such as 'w0'"),
        "options": ("table", {}, "stability: keyword arguments of dk.stability_sweep"),
        "routes": ("list of strings", ["forward_over_reverse", "reverse_over_reverse", "finite_difference",
                                       "symbolic"], "hessian: the Hessian-vector-product routes of dk.hvp"),
        "symbolic_max_p": ("integer", 30, "hessian: the symbolic route only up to this P (expressions swell)"),
    },
}

MLP_GRID = {  # mlp keys that may be one value or a list of values (the study runs their product)
    "activation": ("string", "tanh", f"one of {', '.join(ACTIVATIONS)}"),
    "loss": ("string", "softmax_cross_entropy", f"one of {', '.join(list(COSTS) + list(COST_ALIASES))}"),
    "batch": ("integer", 32, "examples in the data batch"),
    "l2": ("number", 0.0, "weight decay lambda"),
    "stable": ("boolean", True, "stable (true) or the lectures' naive (false) activations and costs"),
    "scale": ("number", 1.0, "multiplies theta0"),
}
# every problem table may also hold `methods`: the [methods] labels to run on it (default: all of them)
MLP_SHAPE = {
    "sizes": ("list of integers", None, "target parameter counts P; layers [h]*depth + [n_out] with P closest"),
    "layers": ("list", None, "explicit layer sizes, e.g. [[4, 16, 3], [8, 8, 3]] (instead of sizes)"),
    "depth": ("integer", 3, "with sizes: number of width-h layers"),
    "n_out": ("integer", 10, "with sizes: output width"),
}
TOP_KEYS = ("study", "problems", "methods", "timing", "reference", "sweep", "quick")


def _check_type(where: str, key: str, value: Any, type_name: str) -> None:
    check = _TYPES.get(type_name)
    if check is not None and not check(value):
        raise StudyError(f"{where}: {key} must be {type_name}; got {type(value).__name__} {value!r}")


def _check_keys(where: str, prefix: str, given: dict, valid) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise StudyError(f"{where}: unknown key '{prefix}{unknown[0]}'; valid keys: {', '.join(sorted(valid))}")


def _section(where: str, name: str, given: dict) -> dict:
    table = SECTIONS[name]
    _check_type(where, name, given, "table")
    _check_keys(where, f"{name}.", given, table)
    out = {}
    for key, (type_name, default, _doc) in table.items():
        value = given.get(key, default)
        if key in given:
            _check_type(where, f"{name}.{key}", value, type_name)
            if type_name == "number" and not math.isfinite(value):
                raise StudyError(f"{where}: {name}.{key} must be a finite number; got {value} ({_doc})")
        out[key] = float(value) if type_name == "number" else value
    return out


def _check_value(where: str, at: str, key: str, value) -> None:
    """The MLP builder's own checks, at load time: a bad value stops the file, not the study halfway."""
    checks = {"batch": lambda v: _problems.check_int(key, v, 1), "l2": lambda v: _problems.check_real(key, v, 0.0),
              "scale": lambda v: _problems.check_real(key, v)}
    try:
        checks.get(key, lambda v: None)(value)
    except (TypeError, ValueError) as err:
        raise StudyError(f"{where}: {at}: {err}") from None


def _positive(where: str, key: str, value, minimum=1) -> None:
    if value < minimum:
        raise StudyError(f"{where}: {key} must be >= {minimum}; got {value}")


# --- studies ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Study:
    """A validated study.  Build it with :func:`load_study` or :func:`study_from_dict`."""

    name: str
    kind: str
    description: str
    seeds: tuple
    budget_s: float
    blas_threads: int
    timing: dict
    reference: dict
    sweep: dict
    problems: tuple
    methods: dict          # label -> (method name, options dict)
    content: dict = field(repr=False, default_factory=dict)   # the parsed file (canonical content)
    source: str = "<python>"
    quick_mode: bool = False

    @property
    def hash(self) -> str:
        """sha256 of the study's content (canonical JSON): comments and formatting do not count."""
        text = json.dumps(self.content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def store_key(self) -> str:
        """Name the results are stored under: quick runs are kept apart from full ones."""
        return f"{self.name}@quick" if self.quick_mode else self.name

    def quick(self) -> Study:
        """The study with its ``[quick]`` table merged over it (the ``--quick`` variant)."""
        if self.quick_mode:
            return self
        content = {k: v for k, v in self.content.items() if k != "quick"}
        merged = _merge(content, self.content.get("quick", {}))
        return _validate(merged, self.source, quick_mode=True)

    def count_cells(self, max_p: int | None = None) -> int:
        """How many cells :meth:`cells` would give, counted without building them."""
        if max_p is not None:
            try:
                _problems.check_int("max_p", max_p, 1, " (the largest parameter count to run)")
            except (TypeError, ValueError) as err:
                raise StudyError(str(err)) from None
        return sum(entry_count(self, entry, max_p) for entry in self.problems)

    def cells(self, max_p: int | None = None) -> list[Cell]:
        """Every cell, smallest sizes first; ``max_p`` drops cells whose size exceeds it.

        Sizes are filtered before any cell is built, so a huge grid with a small ``max_p`` starts at once;
        a grid of more than :data:`MAX_CELLS` cells (after ``max_p``) is refused with its count.
        """
        count = self.count_cells(max_p)
        if count > MAX_CELLS:
            raise StudyError(f"{self.source}: the study's grid has {count:,} cells{' up to P=' + str(max_p) if max_p else ''}, "
                             f"more than {MAX_CELLS:,}; narrow its lists (sizes, seeds, activation ...) or pass a "
                             f"smaller --max-p (max_p=)")
        cells = [c for entry in self.problems for c in entry_cells(self, entry, max_p)]
        cells.sort(key=lambda c: (c.size, c.series))
        seen: dict[str, int] = {}
        for c in cells:
            seen[c.cell_id] = seen.get(c.cell_id, 0) + 1
        repeated = [k for k, n in seen.items() if n > 1]
        if repeated:
            raise StudyError(f"{self.source}: {len(repeated)} cell(s) appear more than once, e.g. {repeated[0]!r}: "
                             f"two [[problems]] entries overlap; remove the repeated sizes or values")
        return cells


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --- validation ----------------------------------------------------------------------------------------------------

def _validate_problem(where: str, i: int, entry: Any, seeds: list) -> dict:
    at = f"problems[{i}]"
    _check_type(where, at, entry, "table")
    catalogue = _problems.catalogue()
    family = entry.get("family")
    if family not in catalogue:
        raise StudyError(f"{where}: {at}.family {family!r} is not a problem; valid problems: {', '.join(catalogue)}")
    entry_seeds = entry.get("seeds", seeds)
    _check_type(where, f"{at}.seeds", entry_seeds, "list of integers")
    only = entry.get("methods")
    if only is not None:
        _check_type(where, f"{at}.methods", only, "list of strings")
        if not only:
            raise StudyError(f"{where}: {at}.methods is empty: leave it out to run every method on this problem")
    if family != "mlp":
        _check_keys(where, f"{at}.", entry, ("family", "methods"))
        size = catalogue[family]().size
        return {"family": family, "grid": {}, "fixed": (), "shapes": [("size", size)], "seeds": [0],
                "methods": only}
    _check_keys(where, f"{at}.", entry, ("family", "seeds", "methods", *MLP_GRID, *MLP_SHAPE))
    if ("sizes" in entry) == ("layers" in entry):
        raise StudyError(f"{where}: {at} needs exactly one of 'sizes' (target P values) or 'layers' (lists of layer "
                         f"sizes such as [[4, 16, 3]])")
    grid = {}
    for key, (type_name, _default, doc) in MLP_GRID.items():
        if key in entry:
            values = entry[key] if isinstance(entry[key], list) else [entry[key]]
            if not values:
                raise StudyError(f"{where}: {at}.{key} is an empty list; give at least one value ({doc})")
            for v in values:
                _check_type(where, f"{at}.{key}", v, type_name)
                _check_value(where, f"{at}.{key}", key, v)
            grid[key] = entry[key]
    for key, choices in (("activation", ACTIVATIONS), ("loss", list(COSTS) + list(COST_ALIASES))):
        values = grid.get(key, [])
        for v in values if isinstance(values, list) else [values]:
            if v not in choices:
                raise StudyError(f"{where}: {at}.{key} {v!r} is not valid; valid choices: {', '.join(choices)}")
    if "sizes" in entry:
        _check_type(where, f"{at}.sizes", entry["sizes"], "list of integers")
        shapes = [("size", int(s)) for s in entry["sizes"]]
        fixed = []
        for key in ("depth", "n_out"):
            if key in entry:
                _check_type(where, f"{at}.{key}", entry[key], "integer")
                _positive(where, f"{at}.{key}", entry[key])
                fixed.append((key, entry[key]))
        for _, s in shapes:
            _positive(where, f"{at}.sizes", s, 2)
    else:
        layers = entry["layers"]
        if not isinstance(layers, list) or not all(_TYPES["list of integers"](l) and len(l) >= 2 for l in layers):
            raise StudyError(f"{where}: {at}.layers must be a list of layer-size lists, e.g. [[4, 16, 3]]; "
                             f"got {layers!r}")
        shapes, fixed = [("layers", list(l)) for l in layers], []
        for key in ("depth", "n_out"):
            if key in entry:
                raise StudyError(f"{where}: {at}.{key} goes with 'sizes' only; with 'layers' the sizes are explicit")
    if not shapes:
        raise StudyError(f"{where}: {at}.{'sizes' if 'sizes' in entry else 'layers'} is empty: the size grid needs "
                         f"at least one value")
    if not entry_seeds:
        raise StudyError(f"{where}: {at}.seeds is empty: give at least one seed, e.g. seeds = [0]")
    return {"family": family, "grid": grid, "fixed": tuple(fixed), "shapes": shapes, "seeds": list(entry_seeds),
            "methods": only}


def registered_methods() -> dict:
    """dk's registered methods; a method module that fails to import costs only its own methods."""
    from ..methods import METHODS
    from ..api import _load_methods

    try:
        _load_methods()
    except Exception:  # noqa: BLE001  (its cells fail with the import error, the study still loads)
        pass
    return METHODS


def _validate_methods(where: str, methods: Any) -> dict:
    _check_type(where, "methods", methods, "table")
    if not methods:
        raise StudyError(f"{where}: [methods] is empty: name at least one method, e.g. [methods.reverse]")
    METHODS = registered_methods()
    known = list(METHODS) + [m for m in PLANNED_METHODS if m not in METHODS]
    out = {}
    for label, options in methods.items():
        _check_type(where, f"methods.{label}", options, "table")
        options = dict(options)
        name = options.pop("method", label)
        if name not in known:
            raise StudyError(f"{where}: methods.{label}: unknown method {name!r}; valid methods: {', '.join(known)}")
        if name in METHODS and METHODS[name].run is not None:
            valid = METHODS[name].options
            _check_keys(where, f"methods.{label}.", options, (*valid, "method"))
        out[label] = (name, options)
    return out


def _validate(content: dict, where: str, quick_mode: bool = False) -> Study:
    if not isinstance(content, dict):
        raise StudyError(f"{where}: a study is a table of sections; got {type(content).__name__}")
    _check_keys(where, "", content, TOP_KEYS)
    if "study" not in content or "name" not in content.get("study", {}):
        raise StudyError(f"{where}: missing key 'study.name': every study starts with [study] name = \"...\"")
    head = _section(where, "study", content["study"])
    if head["kind"] not in KINDS:
        raise StudyError(f"{where}: study.kind {head['kind']!r} is not valid; valid kinds: {', '.join(KINDS)}")
    if not head["seeds"]:
        raise StudyError(f"{where}: study.seeds is empty: give at least one seed, e.g. seeds = [0]")
    if not head["budget_s"] > 0:
        raise StudyError(f"{where}: study.budget_s must be > 0 seconds; got {head['budget_s']}")
    _positive(where, "study.blas_threads", head["blas_threads"])
    timing = _section(where, "timing", content.get("timing", {}))
    _positive(where, "timing.warmup", timing["warmup"])
    _positive(where, "timing.min_repeats", timing["min_repeats"])
    _positive(where, "timing.max_repeats", timing["max_repeats"], timing["min_repeats"])
    _positive(where, "timing.blocks", timing["blocks"])
    reference = _section(where, "reference", content.get("reference", {}))
    _positive(where, "reference.digits", reference["digits"], 15)
    from ..reference import MAX_DIGITS
    if reference["digits"] > MAX_DIGITS:
        raise StudyError(f"{where}: reference.digits must be at most {MAX_DIGITS} (mpmath's cost grows faster than "
                         f"the digits); got {reference['digits']}")
    for key in ("directions", "max_coordinates", "max_p"):
        _positive(where, f"reference.{key}", reference[key], 0)
    for key in ("min_time_s", "memory_max_s"):
        _positive(where, f"timing.{key}", timing[key], 0)
    sweep = _section(where, "sweep", content.get("sweep", {}))
    _positive(where, "sweep.steps", sweep["steps"], 2)
    if sweep["log10_h_min"] >= sweep["log10_h_max"]:
        raise StudyError(f"{where}: sweep.log10_h_min ({sweep['log10_h_min']:g}) must be below sweep.log10_h_max "
                         f"({sweep['log10_h_max']:g})")
    if "quick" in content:
        _check_type(where, "quick", content["quick"], "table")
        _check_keys(where, "quick.", content["quick"], [k for k in TOP_KEYS if k != "quick"])
        if "name" in content["quick"].get("study", {}) or "kind" in content["quick"].get("study", {}):
            raise StudyError(f"{where}: quick.study may not change the study's name or kind")
    entries = content.get("problems", [])
    if head["kind"] != "stability":
        if not isinstance(entries, list) or not entries:
            raise StudyError(f"{where}: problems is empty: add at least one [[problems]] table with a family "
                             f"(valid problems: {', '.join(_problems.catalogue())})")
    problems = tuple(_validate_problem(where, i, e, head["seeds"]) for i, e in enumerate(entries))
    canonical = [json.dumps(p, sort_keys=True, default=str) for p in problems]
    for i, text in enumerate(canonical):
        if text in canonical[:i]:
            raise StudyError(f"{where}: problems[{i}] repeats problems[{canonical.index(text)}] (same family, sizes "
                             f"and options): its cells would run twice and be stored once; remove one of them")
    if head["kind"] == "gradient":
        methods = _validate_methods(where, content.get("methods"))
        for i, entry in enumerate(problems):
            unknown = sorted(set(entry["methods"] or ()) - set(methods))
            if unknown:
                raise StudyError(f"{where}: problems[{i}].methods names {unknown[0]!r}, which is not in [methods]; "
                                 f"valid: {', '.join(methods)}")
    elif "methods" in content:
        raise StudyError(f"{where}: [methods] belongs to kind 'gradient'; a {head['kind']} study lists its methods "
                         f"in [sweep]")
    else:
        methods = {}
    if head["kind"] == "stability":
        problems = ({"family": "stability", "grid": {}, "fixed": (), "shapes": [("size", 0)], "seeds": [0],
                     "methods": None},)
    return Study(head["name"], head["kind"], head["description"], tuple(head["seeds"]), head["budget_s"],
                 head["blas_threads"], timing, reference, sweep, problems, methods, content, where, quick_mode)


def study_from_dict(content: dict, source: str = "<python>") -> Study:
    """Validate a study given as a dict with the same sections as a TOML file."""
    return _validate(json.loads(json.dumps(content)), source)


def studies_dir() -> Path:
    """The built-in study files: the repository's ``studies/`` folder, or the installed copy of it.

    A checkout (also an editable install) reads ``studies/`` beside the package; a wheel ships the same
    files as the data package ``diffkit.builtin_studies`` (see setup.py), found through importlib.resources.
    """
    checkout = Path(__file__).resolve().parents[2] / "studies"
    if (checkout / "README.md").is_file() and any(checkout.glob("*.toml")):
        return checkout
    from importlib import resources
    try:
        installed = resources.files("diffkit.builtin_studies")
    except ModuleNotFoundError:
        return checkout  # neither: builtin_studies() is empty and load_study says so
    return Path(str(installed.joinpath("README.md"))).parent  # a namespace package: its one real folder


def builtin_studies() -> list[str]:
    """Names of the built-in studies (the ``*.toml`` files in :func:`studies_dir`)."""
    return sorted(p.stem for p in studies_dir().glob("*.toml"))


def load_study(study: Any) -> Study:
    """A :class:`Study` from a built-in name ("scaling"), a path to a TOML file, a dict, or a Study."""
    if isinstance(study, Study):
        return study
    if isinstance(study, dict):
        return study_from_dict(study)
    if not isinstance(study, (str, Path)) or not str(study).strip():
        raise StudyError(f"a study is a built-in name ({', '.join(builtin_studies())}), the path of a .toml file, "
                         f"a dict or a Study; got {type(study).__name__} {study!r:.60}")
    path = Path(study)
    if not path.suffix and not path.exists():
        path = studies_dir() / f"{study}.toml"
        if not path.exists():
            raise StudyError(f"no study named {study!r}; built-in studies: {', '.join(builtin_studies())} "
                             f"(or give the path of a .toml file)")
    if not path.is_file():
        raise StudyError(f"study file {str(path)!r} does not exist")
    try:
        content = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{path}: not valid TOML: {err}") from None
    return _validate(content, str(path))
