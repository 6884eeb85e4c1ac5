"""Issue 14: every bad input gets a clear error; nothing silently wrong; no user file is lost.

The corpus is data: one table per interface (the Python API, the CLI through ``main(argv)``, the pytest
plugin's ``gradcheck`` fixture).  Each case names the exception (or exit code) it must give and the words
its message must hold: the field, and the valid choices or the bound.  Python's own messages for wrong
types (``unhashable type``, ``'<' not supported``, ``NoneType is not iterable``) count as unclear.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

import diffkit as dk
from diffkit.cli import main
from diffkit.fd_sweep import step_sweep
from diffkit.testing import check_gradient
from diffkit.studies import StoreError, StudyError, run_study, study_from_dict
from diffkit.studies.store import Store

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]
UNCLEAR = re.compile(r"unhashable type|not supported between|'NoneType' object is not|object is not subscriptable|"
                     r"has no attribute|object is not iterable|could not convert|invalid literal|Traceback")


def square_sum(t):
    return dk.namespace(t).sum(t ** 2)


BLOCKER = Path(tempfile.mkdtemp(prefix="diffkit-bad-inputs-")) / "a-file"  # a file where a folder is needed
BLOCKER.write_text("not a folder")
(BLOCKER.parent / "dir.csv").mkdir()  # a folder where a file is needed
THETA = np.array([1.0, 2.0, 3.0])
ALL_METHODS = ("reverse", "forward", "backward", "central", "central4", "complex_step", "richardson", "symbolic")


def _assert_clear(err: BaseException, words) -> None:
    text = str(err)
    assert not UNCLEAR.search(text), f"unclear message: {text}"
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} missing from: {text}"


# --- the Python API ---------------------------------------------------------------------------------------------

BAD_THETAS = {  # id -> (theta, words the message must hold)
    "strings": (["a", "b"], ["theta", "string", "real"]),
    "numeric strings": (["1.5", "2"], ["theta", "string"]),
    "one string": ("123", ["theta", "str"]),
    "bools": ([True, False, True], ["theta", "bool"]),
    "bool array": (np.array([True, False]), ["theta", "bool"]),
    "datetime64": (np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"), ["theta", "datetime64"]),
    "timedelta64": (np.array([1, 2], dtype="timedelta64[s]"), ["theta", "timedelta64"]),
    "datetime objects": ([datetime.date(2020, 1, 1)], ["theta", "date"]),
    "masked array": (np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]), ["theta", "masked", "mask"]),
    "complex": (np.array([1 + 2j, 3 + 0j]), ["theta", "complex", "imaginary"]),
    "complex list": ([1.0, 2j], ["theta", "complex"]),
    "empty": ([], ["theta", "empty"]),
    "empty 2-d": (np.zeros((2, 0)), ["theta", "empty"]),
    "dict": ({"w": 1.0}, ["theta", "dict"]),
    "set": ({1.0, 2.0}, ["theta", "set"]),
    "ragged": ([[1.0, 2.0], [3.0]], ["theta", "rectangular"]),
    "nan": ([1.0, np.nan], ["theta", "non-finite", "theta[1]"]),
    "inf": ([np.inf, 1.0], ["theta", "non-finite", "theta[0]"]),
    "nan in 2-d": (np.array([[1.0, 2.0], [np.nan, 3.0]]), ["theta", "non-finite", "theta[1,0]"]),
    "-inf among 40": (np.r_[np.ones(39), -np.inf], ["theta", "non-finite", "theta[39]"]),
    "huge int": ([10 ** 400, 1], ["theta", "float64"]),
    "object": ([object()], ["theta", "object"]),
    "none in list": ([1.0, None], ["theta", "real numbers", "NoneType"]),
    "structured": (np.zeros(2, dtype=[("a", float)]), ["theta", "structured"]),
}

API_CASES: list = []  # (id, thunk, exception types, words)


def case(id_, thunk, exc, words):
    API_CASES.append(pytest.param(thunk, exc, words, id=id_))


for tid, (theta, words) in BAD_THETAS.items():
    exc = ValueError if tid in ("empty", "empty 2-d", "nan", "inf", "nan in 2-d", "-inf among 40") else TypeError
    for m in ALL_METHODS:
        case(f"theta {tid} / {m}", lambda theta=theta, m=m: dk.gradient(square_sum, theta, method=m), exc, words)
    case(f"theta {tid} / reference", lambda theta=theta: dk.reference(square_sum, theta), exc, words)
    case(f"theta {tid} / check_gradient", lambda theta=theta: dk.testing.check_gradient(square_sum, theta), exc,
         words)
    case(f"theta {tid} / step_sweep", lambda theta=theta: dk.step_sweep(square_sum, theta), exc, words)

BAD_FUNCTIONS = {  # f -> (exception, words)
    "f is None": (None, TypeError, ["f must be a function", "NoneType"]),
    "f is a number": (3.0, TypeError, ["f must be a function", "float"]),
    "f is a string": ("sum", TypeError, ["f must be a function", "str"]),
    "f is a list": ([square_sum], TypeError, ["f must be a function", "list"]),
}
for fid, (f, exc, words) in BAD_FUNCTIONS.items():
    for m in ("reverse", "central", "symbolic"):
        case(f"{fid} / {m}", lambda f=f, m=m: dk.gradient(f, THETA, method=m), exc, words)
    case(f"{fid} / reference", lambda f=f: dk.reference(f, THETA), exc, words)

BAD_OUTPUTS = {  # what f returns -> (exception, words)
    "returns None": (lambda t: None, TypeError, ["returned None", "return"]),
    "returns a string": (lambda t: "1.0", TypeError, ["return a number", "str"]),
    "returns a bool": (lambda t: True, TypeError, ["real number", "bool"]),
    "returns a list": (lambda t: [1.0, 2.0], TypeError, ["return a number", "list"]),
    "returns a vector": (lambda t: t * 2.0, ValueError, ["scalar", "shape (3,)", "vjp"]),
    "returns a dict": (lambda t: {"loss": 1.0}, TypeError, ["return a number", "dict"]),
}
for oid, (f, exc, words) in BAD_OUTPUTS.items():
    for m in ALL_METHODS:
        if oid in ("returns a bool", "returns a string") and m == "complex_step":
            continue  # the complex step refuses a real output first (NotAnalyticError, a ValueError)
        case(f"f {oid} / {m}", lambda f=f, m=m: dk.gradient(f, THETA, method=m), exc, words)

for name, value in [("nope", "nope"), ("None", None), ("a number", 3), ("a list", ["reverse"]), ("empty", "")]:
    exc = ValueError if isinstance(value, str) else TypeError
    case(f"method {name}", lambda value=value: dk.gradient(square_sum, THETA, method=value), exc,
         ["method", "reverse", "central"])
OPTION_CASES = [  # (method, options, exception, words)
    ("reverse", {"h": 1e-6}, TypeError, ["unknown option", "h", "anomaly"]),
    ("central", {"levels": 3}, TypeError, ["unknown option", "levels", "relative"]),
    ("central", {"h": -1.0}, ValueError, ["h", "> 0"]),
    ("central", {"h": 0.0}, ValueError, ["h", "> 0"]),
    ("central", {"h": np.nan}, ValueError, ["h", "finite"]),
    ("central", {"h": "small"}, TypeError, ["h", "step size", "str"]),
    ("central", {"h": True}, TypeError, ["h", "bool"]),
    ("central", {"h": [1e-6, 1e-6]}, ValueError, ["h", "shape (2,)", "(3,)"]),
    ("central", {"h": 1e300}, FloatingPointError, ["central", "inf", "smaller h"]),
    ("central", {"h": 1e308}, ValueError, ["h", "float64 range", "smaller h"]),
    ("forward", {"h": 1e300}, FloatingPointError, ["forward", "smaller h"]),
    ("central4", {"h": 1e300}, FloatingPointError, ["central4", "smaller h"]),
    ("central", {"relative": "no"}, TypeError, ["relative", "True or False"]),
    ("central", {"batch": 4}, ValueError, ["batch", "f.batched"]),
    ("richardson", {"levels": 60}, ValueError, ["levels", "2 to 12"]),
    ("richardson", {"levels": 1}, ValueError, ["levels", "2 to 12"]),
    ("richardson", {"levels": 2.5}, ValueError, ["levels", "integer"]),
    ("richardson", {"levels": "3"}, ValueError, ["levels", "integer"]),
    ("richardson", {"levels": True}, ValueError, ["levels", "integer"]),
    ("richardson", {"h": 1e300}, FloatingPointError, ["richardson", "smaller h"]),
    ("complex_step", {"h": -1.0}, ValueError, ["h", "> 0"]),
    ("complex_step", {"h": "x"}, TypeError, ["h", "step size"]),
    ("symbolic", {"strategy": "fast"}, ValueError, ["strategy", "dag", "naive"]),
    ("symbolic", {"simplify": "full"}, ValueError, ["simplify", "cse", "none"]),
    ("symbolic", {"engine": "maple"}, ValueError, ["engine", "sympy", "symengine"]),
    ("symbolic", {"max_seconds": -1.0}, ValueError, ["max_seconds", "> 0"]),
    ("symbolic", {"max_seconds": np.nan}, ValueError, ["max_seconds", "> 0"]),
    ("symbolic", {"max_ops": 0}, ValueError, ["max_ops", "> 0"]),
    ("symbolic", {"strategy": "dag", "engine": "symengine"}, ValueError, ["symengine", "naive"]),
]
for m, options, exc, words in OPTION_CASES:
    case(f"{m} {options}", lambda m=m, o=options: dk.gradient(square_sum, THETA, method=m, **o), exc, words)

MLP_CASES = [  # keyword arguments of dk.problems.mlp -> (exception, words)
    ({"layers": [4, 2.5, 3]}, TypeError, ["layers[1]", "integer", "2.5"]),
    ({"layers": "463"}, TypeError, ["layers", "list", "'463'"]),
    ({"layers": [4]}, ValueError, ["layers", "at least", "input and an output"]),
    ({"layers": []}, ValueError, ["layers", "at least"]),
    ({"layers": [4, 0, 3]}, ValueError, ["layers[1]", ">= 1"]),
    ({"layers": [4, -2, 3]}, ValueError, ["layers[1]", ">= 1"]),
    ({"layers": [4, True, 3]}, TypeError, ["layers[1]", "integer", "bool"]),
    ({"layers": None}, TypeError, ["layers", "list", "NoneType"]),
    ({"layers": 4}, TypeError, ["layers", "list", "int"]),
    ({"layers": [4, "16", 3]}, TypeError, ["layers[1]", "integer", "str"]),
    ({"layers": [4, None, 3]}, TypeError, ["layers[1]", "NoneType"]),
    ({"layers": {4: 1, 3: 1}}, TypeError, ["layers", "list", "dict"]),
    ({"layers": [4, 10 ** 9, 3]}, MemoryError, ["GiB", "layers=[4, 1000000000, 3]", "smaller"]),
    ({"batch": 10 ** 9}, MemoryError, ["GiB", "batch=1000000000", "smaller"]),
    ({"batch": 2.5}, TypeError, ["batch", "integer", "2.5"]),
    ({"batch": 0}, ValueError, ["batch", ">= 1"]),
    ({"batch": -3}, ValueError, ["batch", ">= 1"]),
    ({"batch": "32"}, TypeError, ["batch", "integer", "str"]),
    ({"batch": None}, TypeError, ["batch", "integer"]),
    ({"seed": -1}, ValueError, ["seed", ">= 0"]),
    ({"seed": "a"}, TypeError, ["seed", "integer", "str"]),
    ({"seed": 1.5}, TypeError, ["seed", "integer", "float"]),
    ({"seed": None}, TypeError, ["seed", "integer"]),
    ({"stable": "no"}, TypeError, ["stable", "True or False", "'no'"]),
    ({"stable": 0}, TypeError, ["stable", "True or False"]),
    ({"stable": None}, TypeError, ["stable", "True or False"]),
    ({"l2": np.nan}, ValueError, ["l2", "finite"]),
    ({"l2": np.inf}, ValueError, ["l2", "finite"]),
    ({"l2": -0.1}, ValueError, ["l2", ">= 0"]),
    ({"l2": "0.1"}, TypeError, ["l2", "real number", "str"]),
    ({"l2": None}, TypeError, ["l2", "real number"]),
    ({"scale": np.nan}, ValueError, ["scale", "finite"]),
    ({"scale": "big"}, TypeError, ["scale", "real number"]),
    ({"activation": "swish"}, ValueError, ["activation", "'swish'", "tanh", "relu"]),
    ({"activation": ["tanh"]}, ValueError, ["activation", "tanh", "sigmoid"]),
    ({"activation": None}, ValueError, ["activation", "tanh"]),
    ({"activation": "TANH"}, ValueError, ["activation", "tanh"]),
    ({"loss": "hinge"}, ValueError, ["loss", "'hinge'", "softmax_cross_entropy", "bce"]),
    ({"loss": {"ce": 1}}, ValueError, ["loss", "softmax_cross_entropy"]),
    ({"loss": 3}, ValueError, ["loss", "squared_error"]),
]
for kw, exc, words in MLP_CASES:
    kw = {"layers": [4, 8, 3], **kw}
    case(f"mlp {kw}", lambda kw=kw: dk.problems.mlp(**kw), exc, words)
for kw, exc, words in [({"P": 0}, ValueError, ["P", ">= 1"]), ({"P": -5}, ValueError, ["P", ">= 1"]),
                       ({"P": 2.5}, TypeError, ["P", "integer"]), ({"P": "100"}, TypeError, ["P", "integer", "str"]),
                       ({"P": 100, "depth": 0}, ValueError, ["depth", ">= 1"]),
                       ({"P": 100, "n_out": 0}, ValueError, ["n_out", ">= 1"]),
                       ({"P": 100, "n_in": 2.5}, TypeError, ["n_in", "integer"]),
                       ({"P": 100, "activation": "swish"}, ValueError, ["activation", "tanh"])]:
    case(f"mlp_for_size {kw}", lambda kw=kw: dk.problems.mlp_for_size(**kw), exc, words)

PROBLEM = dk.problems.mlp([2, 3, 2], batch=4)
for theta, shape in [(np.zeros(5), "(5,)"), (np.zeros((3, 5)), "(3, 5)"), (np.zeros(PROBLEM.size + 1), "(18,)")]:
    case(f"problem theta {shape} / gradient", lambda theta=theta: dk.gradient(PROBLEM, theta), ValueError,
         ["theta has shape", shape, "17 parameters"])
    case(f"problem theta {shape} / call", lambda theta=theta: PROBLEM(theta), ValueError,
         ["theta has shape", shape, "17 parameters"])
    case(f"problem theta {shape} / reference", lambda theta=theta: dk.reference(PROBLEM, theta), ValueError,
         ["theta has shape", shape])

REFERENCE_CASES = [
    ({"digits": float("nan")}, TypeError, ["digits", "integer", "nan"]),
    ({"digits": 15.5}, TypeError, ["digits", "integer", "15.5"]),
    ({"digits": 10}, ValueError, ["digits", ">= 15"]),
    ({"digits": "50"}, TypeError, ["digits", "integer", "str"]),
    ({"digits": None}, TypeError, ["digits", "integer"]),
    ({"digits": 200_000}, ValueError, ["digits", "at most 2000"]),
    ({"directions": -1}, ValueError, ["directions", ">= 0"]),
    ({"directions": 2.5}, TypeError, ["directions", "integer"]),
    ({"max_coordinates": -1}, ValueError, ["max_coordinates", ">= 0"]),
    ({"certify": "yes"}, TypeError, ["certify", "True or False"]),
    ({"floor": float("nan")}, ValueError, ["floor", "finite"]),
    ({"seed": -1}, ValueError, ["seed", ">= 0"]),
]
for kw, exc, words in REFERENCE_CASES:
    case(f"reference {kw}", lambda kw=kw: dk.reference(square_sum, THETA, **kw), exc, words)


def _study(**over):
    content = {"study": {"name": "bad"}, "problems": [{"family": "seed_circuit"}], "methods": {"reverse": {}}}
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            content.setdefault(section, {})[field] = value
        else:
            content[section] = value
    return content


MLP_ENTRY = {"family": "mlp", "sizes": [50]}
STUDY_CASES = [  # study content -> words
    (_study(study__budget_s=float("nan")), ["study.budget_s", "finite"]),
    (_study(study__budget_s=float("inf")), ["study.budget_s", "finite"]),
    (_study(study__budget_s=-1.0), ["study.budget_s", "> 0"]),
    (_study(study__budget_s=0), ["study.budget_s", "> 0"]),
    (_study(study__budget_s="60"), ["study.budget_s", "number"]),
    (_study(study__kind="grad"), ["study.kind", "gradient", "step_size"]),
    (_study(study__seeds=[]), ["study.seeds", "empty"]),
    (_study(study__seeds=["a"]), ["study.seeds", "list of integers"]),
    (_study(study__colour="red"), ["study.colour", "valid keys", "budget_s"]),
    (_study(study__blas_threads=0), ["study.blas_threads", ">= 1"]),
    (_study(problems=[{"family": "seed_circuit"}, {"family": "seed_circuit"}]), ["problems[1]", "repeats problems[0]"]),
    (_study(problems=[MLP_ENTRY, dict(MLP_ENTRY)]), ["problems[1]", "repeats problems[0]"]),
    (_study(problems=[{"family": "resnet"}]), ["problems[0].family", "seed_circuit", "mlp"]),
    (_study(problems=[]), ["problems", "empty", "mlp"]),
    (_study(problems=[{**MLP_ENTRY, "batch": 0}]), ["problems[0].batch", ">= 1"]),
    (_study(problems=[{**MLP_ENTRY, "l2": float("nan")}]), ["problems[0].l2", "finite"]),
    (_study(problems=[{**MLP_ENTRY, "scale": float("inf")}]), ["problems[0].scale", "finite"]),
    (_study(problems=[{**MLP_ENTRY, "l2": -1.0}]), ["problems[0].l2", ">= 0"]),
    (_study(problems=[{**MLP_ENTRY, "activation": "swish"}]), ["problems[0].activation", "tanh"]),
    (_study(problems=[{**MLP_ENTRY, "loss": "hinge"}]), ["problems[0].loss", "softmax_cross_entropy"]),
    (_study(problems=[{**MLP_ENTRY, "stable": "no"}]), ["problems[0].stable", "boolean"]),
    (_study(problems=[{"family": "mlp", "sizes": []}]), ["problems[0].sizes", "empty"]),
    (_study(problems=[{"family": "mlp", "sizes": [1]}]), ["problems[0].sizes", ">= 2"]),
    (_study(problems=[{"family": "mlp", "sizes": [2.5]}]), ["problems[0].sizes", "list of integers"]),
    (_study(problems=[{"family": "mlp"}]), ["problems[0]", "sizes", "layers"]),
    (_study(problems=[{"family": "mlp", "layers": [[4]]}]), ["problems[0].layers", "[[4, 16, 3]]"]),
    (_study(problems=[{"family": "mlp", "layers": "463"}]), ["problems[0].layers", "[[4, 16, 3]]"]),
    (_study(problems=[{**MLP_ENTRY, "depth": 0}]), ["problems[0].depth", ">= 1"]),
    (_study(problems=[{**MLP_ENTRY, "seeds": []}]), ["problems[0].seeds", "empty"]),
    (_study(problems=[{**MLP_ENTRY, "colour": 1}]), ["problems[0].colour", "valid keys"]),
    (_study(problems=[{"family": "mlp", "sizes": list(range(2, 3002)), "batch": list(range(1, 101))}]),
     ["300,000 cells", "max_p"]),
    (_study(methods={}), ["[methods]", "empty"]),
    (_study(methods={"backprop": {}}), ["methods.backprop", "reverse", "central"]),
    (_study(methods={"central": {"levels": 3}}), ["methods.central.levels", "relative"]),
    (_study(timing__warmup=0), ["timing.warmup", ">= 1"]),
    (_study(timing__min_repeats=0), ["timing.min_repeats", ">= 1"]),
    (_study(timing__min_time_s=float("nan")), ["timing.min_time_s", "finite"]),
    (_study(reference__digits=10), ["reference.digits", ">= 15"]),
    (_study(reference__digits=200_000), ["reference.digits", "at most 2000"]),
    (_study(reference__directions=-1), ["reference.directions", ">= 0"]),
    (_study(sweep__steps=1), ["sweep.steps", ">= 2"]),
    (_study(sweep__log10_h_min=0.0, sweep__log10_h_max=-3.0), ["log10_h_min", "below"]),
    (_study(quick={"study": {"name": "other"}}), ["quick.study", "name"]),
    (_study(colour={}), ["colour", "valid keys", "problems"]),
]
for content, words in STUDY_CASES:
    def build(content=content):
        return study_from_dict(content).cells()
    case(f"study {json.dumps(content, default=str)[:90]}", build, StudyError, words)

API_CASES_COUNT = len(API_CASES)


@pytest.mark.parametrize("thunk, exc, words", API_CASES)
def test_python_api_bad_input_gives_a_clear_error(thunk, exc, words):
    with pytest.raises(exc) as info:
        thunk()
    _assert_clear(info.value, words)


# --- the CLI, through main(argv) --------------------------------------------------------------------------------

CLI_CASES = [  # argv -> words in stderr (every one exits 2 and prints the subcommand's usage)
    (["gradient", "--method", ","], ["--method", "valid methods", "reverse"]),
    (["gradient", "--method", "backprop"], ["unknown backprop", "reverse"]),
    (["gradient", "--methods", "nope"], ["unknown nope", "central"]),
    (["gradient", "--method", "reverse,,nope"], ["unknown nope"]),
    (["gradient", "--problem", "resnet"], ["--problem", "seed_circuit", "baydin"]),
    (["gradient", "--layers", "4,x,3"], ["--layers", "4,16,3"]),
    (["gradient", "--layers", "4,2.5,3"], ["--layers", "4,16,3"]),
    (["gradient", "--layers", "4"], ["--layers", "at least"]),
    (["gradient", "--layers", "4,0,3"], ["layers[1]", ">= 1"]),
    (["gradient", "--layers", "4,1000000000,3"], ["GiB", "smaller"]),
    (["gradient", "--batch", "0"], ["batch", ">= 1"]),
    (["gradient", "--batch", "2.5"], ["--batch", "invalid int"]),
    (["gradient", "--batch", "1000000000"], ["GiB"]),
    (["gradient", "--seed", "-1"], ["seed", ">= 0"]),
    (["gradient", "--seed", "a"], ["--seed", "invalid int"]),
    (["gradient", "--l2", "nan"], ["l2", "finite"]),
    (["gradient", "--l2", "nan", "--json"], ["l2", "finite"]),
    (["gradient", "--l2", "-1"], ["l2", ">= 0"]),
    (["gradient", "--l2", "abc"], ["--l2", "invalid float"]),
    (["gradient", "--activation", "swish"], ["swish", "tanh"]),
    (["gradient", "--loss", "hinge"], ["hinge", "softmax_cross_entropy"]),
    (["gradient", "--reference", "--digits", "5"], ["--digits", "15"]),
    (["gradient", "--reference", "--digits", "200000"], ["--digits", "2000"]),
    (["gradient", "--digits", "x"], ["--digits", "invalid int"]),
    (["gradient", "--layers", "1000,1000,10", "--reference"], ["reference", "min", "--budget"]),
    (["gradient", "--layers", "100,100,10", "--method", "symbolic"], ["symbolic", "--budget"]),
    (["gradient", "--budget", "0"], ["--budget", "> 0"]),
    (["gradient", "--budget", "nan"], ["--budget", "> 0"]),
    (["gradient", "--colour"], ["unrecognized arguments", "--colour"]),
    (["sweep", "--methods", "nope"], ["unknown nope", "central"]),
    (["sweep", "--method", ","], ["--methods", "valid methods"]),
    (["sweep", "--methods", "reverse"], ["unknown reverse", "complex_step"]),
    (["sweep", "--problem", "resnet"], ["--problem", "baydin"]),
    (["sweep", "--steps=1,0,3"], ["--steps", "-16,0,65"]),
    (["sweep", "--steps=a,b,c"], ["--steps", "start,stop,count"]),
    (["sweep", "--steps=-16,0,1.5"], ["--steps"]),
    (["sweep", "--steps=-16,0"], ["--steps"]),
    (["sweep", "--component", "x"], ["--component", "norm"]),
    (["sweep", "--component", "9"], ["--component 9", "0 to 0"]),
    (["sweep", "--component", "-1"], ["--component", "integer"]),
    (["sweep", "--problem", "mlp", "--layers", "4,x"], ["--layers"]),
    (["sweep", "--problem", "mlp", "--activation", "swish"], ["swish", "tanh"]),
    (["bench", "--methods", "nope"], ["unknown nope", "handwritten"]),
    (["bench", "--method", ","], ["--methods", "valid methods"]),
    (["bench", "--sizes", "2.5"], ["--sizes", "integers"]),
    (["bench", "--sizes", "0"], ["--sizes", "positive"]),
    (["bench", "--sizes", "inf"], ["--sizes", "integers"]),
    (["bench", "--threads", "a"], ["--threads", "integers"]),
    (["bench", "--repeats", "3"], ["--repeats", ">= 7"]),
    (["stability", "--methods", "nope"], ["unknown nope", "reverse"]),
    (["stability", "--method", ","], ["--methods", "valid methods"]),
    (["stability", "--cases", "relu6"], ["unknown relu6", "valid cases", "softplus"]),
    (["stability", "--cases", ","], ["--cases", "valid cases"]),
    (["study", "run", "nope"], ["no study named 'nope'", "scaling"]),
    (["study", "show", "nope"], ["no study named 'nope'", "seeds"]),
    (["study", "run", "seeds", "--max-p", "0"], ["--max-p", "positive"]),
    (["study", "run", "seeds", "--max-p", "x"], ["--max-p", "invalid int"]),
    (["study", "run", "/nonexistent/file.toml"], ["/nonexistent/file.toml", "does not exist"]),
    (["study", "frobnicate"], ["invalid choice", "list", "run"]),
    (["study"], ["required", "ACTION"]),
    (["report", "--fresh", "--no-run"], ["--fresh", "--no-run"]),
    (["report", "--studies", "nope"], ["nope", "seeds"]),
    (["methods", "--colour"], ["unrecognized arguments"]),
    (["sweep", "--csv", "out.txt"], ["--csv", "end in .csv"]),
    (["sweep", "--csv", str(BLOCKER.parent) + "/"], ["--csv", "end in .csv"]),
    (["sweep", "--csv", str(BLOCKER.parent / "dir.csv")], ["--csv", "is a directory"]),
    (["sweep", "--csv", str(BLOCKER / "x.csv")], ["--csv", f"{BLOCKER} is a file"]),
    (["bench", "--csv", "table.xlsx"], ["--csv", "end in .csv"]),
    (["stability", "--csv", "out.json"], ["--csv", "end in .csv"]),
    (["stability", "--summary-csv", str(BLOCKER / "s.csv")], ["--summary-csv", "is a file"]),
    (["study", "run", "seeds", "--csv", "out.xlsx"], ["--csv", ".csv or .parquet"]),
    (["study", "show", "seeds", "--csv", str(BLOCKER / "x.csv")], ["--csv", "is a file"]),
    (["frobnicate"], ["invalid choice", "gradient"]),
    ([], ["required", "COMMAND"]),
]


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=" ".join(a) or "(nothing)") for a, w in CLI_CASES])
def test_cli_bad_usage_exits_2_with_the_subcommands_usage(capsys, argv, words):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "usage: diffkit" in err and not UNCLEAR.search(err), err
    if argv and argv[0] in ("gradient", "sweep", "bench", "stability", "report") and "--colour" not in argv:
        assert f"usage: diffkit {argv[0]}" in err  # the subcommand's usage, not the top level's
    for word in words:
        assert word.lower() in err.lower(), f"{word!r} missing from: {err}"


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return str(path)


STUDY_FILES = [  # malformed study files given to `diffkit study run`: exit 2, the key named
    ('[study]\nname = "x"\nbudget_s = nan\n[[problems]]\nfamily = "seed_circuit"\n[methods.reverse]\n',
     ["study.budget_s", "finite"]),
    ('[study]\nname = "x"\n[[problems]]\nfamily = "seed_circuit"\n[[problems]]\nfamily = "seed_circuit"\n'
     '[methods.reverse]\n', ["problems[1]", "repeats"]),
    ('[study]\nname = "x"\n[[problems]]\nfamily = "mlp"\nsizes = [50]\nbatch = 0\n[methods.reverse]\n',
     ["problems[0].batch", ">= 1"]),
    ('[study\nname = "x"\n', ["not valid TOML"]),
    ('[study]\nname = "x"\ncolour = 1\n', ["study.colour", "valid keys"]),
    ('[study]\nname = "x"\n[reference]\ndigits = 200000\n[[problems]]\nfamily = "seed_circuit"\n[methods.reverse]\n',
     ["reference.digits", "2000"]),
]


@pytest.mark.parametrize("text, words", STUDY_FILES)
def test_cli_malformed_study_file_exits_2_naming_the_key(tmp_path, capsys, text, words):
    with pytest.raises(SystemExit) as info:
        main(["study", "run", _write(tmp_path, text), "--quiet", "--store", str(tmp_path / "r.sqlite")])
    code, err = info.value.code, capsys.readouterr().err
    assert code == 2 and not UNCLEAR.search(err), err
    for word in words:
        assert word in err
    assert not (tmp_path / "r.sqlite").exists()  # refused before the store is touched


def test_cli_huge_grid_with_small_max_p_starts_at_once(tmp_path, capsys):
    # 14.4 M cells in all, none with P <= 5: the sizes are filtered before any cell is built
    text = ('[study]\nname = "huge"\n[timing]\nmin_time_s = 0.0\nmemory = false\n[reference]\nmax_p = 0\n'
            '[[problems]]\nfamily = "mlp"\nsizes = [' + ", ".join(str(s) for s in range(10, 1210)) + ']\n'
            'batch = [' + ", ".join(str(b) for b in range(1, 13)) + ']\n'
            'l2 = [' + ", ".join(f"{0.01 * i:.2f}" for i in range(100)) + ']\nseeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n'
            '[methods.reverse]\n')
    study = dk.studies.load_study(_write(tmp_path, text))
    assert study.count_cells() == 1200 * 12 * 100 * 10 == 14_400_000
    assert study.count_cells(max_p=5) == 0 and study.count_cells(max_p=10) == 12_000
    with pytest.raises(StudyError, match="14,400,000 cells"):
        study.cells()
    assert main(["study", "run", _write(tmp_path, text), "--max-p", "5", "--quiet", "--store",
                 str(tmp_path / "r.sqlite")]) == 0


def test_cli_json_has_no_bare_nan(capsys):
    from diffkit.cli import print_json

    print_json({"value": float("nan"), "grad": [1.0, float("inf")], "nested": {"x": -float("inf")}})
    assert json.loads(capsys.readouterr().out) == {"value": None, "grad": [1.0, None], "nested": {"x": None}}


def test_cli_gradient_baydin_is_accepted(capsys):
    assert main(["gradient", "--problem", "baydin", "--method", "reverse", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # Baydin et al. 2018, Fig. 3: f'(1/5) = 708288/78125 exactly
    assert abs(out["methods"][0]["grad"][0] - 708288 / 78125) < 1e-12


def test_cli_study_list_into_a_closed_pipe_is_quiet():
    done = subprocess.run(f"{sys.executable} -m diffkit study list | head -1", shell=True, capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert len(done.stdout.splitlines()) == 1 and "Broken pipe" not in done.stderr and "Error" not in done.stderr


# --- the pytest plugin ------------------------------------------------------------------------------------------

PLUGIN_CASES = [  # (gradcheck arguments as source, exception, words)
    ("square_sum, ['a', 'b']", "TypeError", "string"),
    ("square_sum, [True, False]", "TypeError", "bool"),
    ("square_sum, np.array([1 + 2j])", "TypeError", "complex"),
    ("square_sum, np.ma.array([1.0, 2.0], mask=[0, 1])", "TypeError", "masked"),
    ("square_sum, np.array(['2020-01-01'], dtype='datetime64[D]')", "TypeError", "datetime64"),
    ("square_sum, []", "ValueError", "empty"),
    ("square_sum, [np.nan, 1.0]", "ValueError", "non-finite"),
    ("square_sum, None", "ValueError", "theta is required"),
    ("None, [1.0]", "TypeError", "f must be a function"),
    ("lambda t: None, [1.0, 2.0]", "TypeError", "returned None"),
    ("lambda t: t * 2.0, [1.0, 2.0]", "ValueError", "scalar"),
    ("lambda t: 'x', [1.0, 2.0]", "TypeError", "return a number"),
    ("square_sum, [1.0, 2.0], methods=('backprop',)", "ValueError", "reverse"),
    ("square_sum, [1.0, 2.0], methods='reverse'", "TypeError", "sequence of method names"),
    ("square_sum, [1.0, 2.0], rtol=-1.0", "ValueError", "rtol"),
    ("square_sum, [1.0, 2.0], atol=float('nan')", "ValueError", "atol"),
    ("dk.problems.mlp([2, 3, 2], batch=4), np.zeros(5)", "ValueError", "theta has shape"),
    ("square_sum, [1.0, 2.0], grad=[1.0]", "ValueError", "shape"),
]


def test_pytest_plugin_bad_input_gives_a_clear_error(pytester):
    body = "\n".join(f"""
def test_case_{i}(gradcheck):
    with pytest.raises({exc}, match={words!r}) as info:
        gradcheck({args})
    assert not UNCLEAR.search(str(info.value)), str(info.value)
""" for i, (args, exc, words) in enumerate(PLUGIN_CASES))
    pytester.makepyfile(test_bad=f"""
import re
import numpy as np
import pytest
import diffkit as dk

UNCLEAR = re.compile({UNCLEAR.pattern!r})

def square_sum(t):
    return dk.namespace(t).sum(t ** 2)
{body}
""")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(PLUGIN_CASES))


def test_the_corpus_holds_at_least_300_bad_inputs():
    total = API_CASES_COUNT + len(CLI_CASES) + len(STUDY_FILES) + len(PLUGIN_CASES)
    assert total >= 300, total


@pytest.mark.parametrize("call, field", [
    (lambda f, t: check_gradient(f, t, rtol="a"), "rtol"),
    (lambda f, t: check_gradient(f, t, atol=[1e-3]), "atol"),
    (lambda f, t: step_sweep(f, t, steps="a"), "steps"),
    (lambda f, t: step_sweep(f, t, steps=[1e-3, 0.0]), "steps"),
    (lambda f, t: dk.gradient(f, t, method="central", h=[""]), "h"),
])
def test_tolerances_and_steps_that_are_not_numbers_name_the_field(call, field):
    with pytest.raises((TypeError, ValueError)) as err:
        call(lambda t: dk.namespace(t).sum(t * t), np.array([1.0, 2.0]))
    text = str(err.value)
    assert text.startswith(field) and "could not convert" not in text and "ufunc" not in text


@pytest.mark.filterwarnings("error::RuntimeWarning")  # (and quietly: the overflow is the check's, not the user's)
@pytest.mark.parametrize("size", [2, 40])
def test_a_finite_theta_whose_sum_overflows_is_accepted(size):
    # the finiteness check sums theta (past 32 entries, its squares) first: inf here, and the scan that follows
    # finds no bad entry
    theta = np.full(size, 1e308)
    r = dk.gradient(lambda t: dk.namespace(t).sum(t * 1e-300), theta)
    assert r.grad.tolist() == [1e-300] * size and r.value == pytest.approx(size * 1e8)
