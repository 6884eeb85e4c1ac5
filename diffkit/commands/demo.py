"""``diffkit demo``: the seeds' worked examples and one MLP, every method against the reference."""
from __future__ import annotations

import numpy as np

import diffkit as dk
from diffkit.methods import METHODS
from diffkit.api import get_method, _load_methods


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the seeds' worked examples and one MLP comparison")
    p.set_defaults(func=run)


def _methods_for(problem) -> list[str]:
    _load_methods()  # every method module present
    return [m.name for m in METHODS.values() if m.available and m.kind != "peer"]


def run(args) -> int:
    for problem in dk.problems.seed_examples():
        r = dk.gradient(problem, method="reverse")
        print(f"{problem.name}: f = {r.value:.6g} (seed prints {problem.expected.get('value', '-')})")
        for i, g in enumerate(r.grad):
            name = problem.component_name(i)
            print(f"  d f / d {name:<3} = {g:+.6g}   seed: {problem.expected.get(name, '-')}")
    prob = dk.problems.mlp([4, 16, 3], activation="tanh", loss="softmax_cross_entropy", l2=1e-3, batch=32)
    ref = dk.reference(prob, digits=50)
    print(f"\n{prob.name}, P = {prob.size}: correct digits against the 50-digit mpmath reference")
    for name in _methods_for(prob):
        try:
            r = dk.gradient(prob, method=name)
        except Exception as err:  # noqa: BLE001  (a demo shows every method it can)
            print(f"  {name:<14} failed: {err}")
            continue
        e = dk.error(r, ref)
        print(f"  {name:<14} {e.digits:5.1f} digits  {r.cost.wall_s * 1e3:9.2f} ms  {r.cost.evaluations:6d} evals")
    return 0
