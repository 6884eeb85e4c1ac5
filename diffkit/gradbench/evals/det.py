"""GradBench ``det`` (cmpad's det_by_minor): the determinant by expansion by minors, and its gradient.

Input ``{"A": [ell * ell floats, row-major], "ell": int}``; ``primal`` returns
the determinant, ``gradient`` its gradient with respect to A (row-major).  The
eval seeds 31337 and draws ``A = rand(ell * ell)`` for ell = 5 ... 11.

The expansion runs along the rows, top to bottom, as the recursive algorithm
does: a minor on the last m rows and the column set S is
``sum_p (-1)^p A[ell - m, S_p] det(minor on the last m - 1 rows, S without S_p)``.
Here each distinct minor is computed once, a whole level of them (all
column sets of one size) per array operation: ``ell 2^(ell-1)`` products in
``ell`` levels instead of the recursion's ``~e ell!`` scalar ones.  The
products are those of the expansion, so the value and its rounding behave as
the eval's; only the repetition is gone (which is why the tape does not see
the 40 million scalar nodes of ell = 11).

>>> A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
>>> round(float(determinant(A.ravel(), 3)), 12), round(float(np.linalg.det(A)), 12)
(18.0, 18.0)
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations

import numpy as np

import diffkit as dk

from ..jobs import Problem, gradient_job, primal_job
from ._inputs import integer, vector

__all__ = ["determinant", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]


@lru_cache(maxsize=None)
def minor_plan(ell: int) -> tuple:
    """Per level m = 2 .. ell: (flat indices into A, indices into the level below, signs), each (C(ell, m), m)."""
    below = {(c,): c for c in range(ell)}
    plan = []
    for m in range(2, ell + 1):
        sets = list(combinations(range(ell), m))
        row = (ell - m) * ell
        entry = np.array([[row + c for c in s] for s in sets], dtype=np.intp)
        sub = np.array([[below[s[:p] + s[p + 1:]] for p in range(m)] for s in sets], dtype=np.intp)
        signs = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
        plan.append((entry.ravel(), sub.ravel(), signs, len(sets), m))
        below = {s: i for i, s in enumerate(sets)}
    return tuple(plan)


def determinant(a, ell: int):
    """det of the ell x ell matrix ``a`` (flat, row-major) by expansion by minors, a level per step."""
    xp = dk.namespace(a)
    minors = a[(ell - 1) * ell:]  # the 1 x 1 minors: the last row
    for entry, sub, signs, count, m in minor_plan(ell):
        terms = xp.reshape(a[entry] * minors[sub], (count, m))
        minors = xp.sum(terms * signs, axis=1)
    return xp.sum(minors)  # one minor is left: the determinant (the sum makes it a scalar)


def problem(input) -> Problem:
    ell = integer(input, "ell")
    a = vector(input, "A", size=ell * ell)
    return Problem(a, lambda theta: determinant(theta, ell))


FUNCTIONS = {
    "primal": lambda input, engine: primal_job(problem(input), engine),
    "gradient": lambda input, engine: gradient_job(problem(input), engine),
}

SIZES = [{"ell": ell} for ell in (5, 6, 7, 8, 9, 10, 11)]
TEST_SIZES = [{"ell": 1}, {"ell": 2}, {"ell": 4}]


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` per ell, one seeded stream of ``rand(ell * ell)`` draws."""
    state = np.random.RandomState(seed)
    for size in SIZES if sizes is None else sizes:
        ell = size["ell"]
        yield f"{ell}", {"A": state.random_sample(ell * ell).tolist(), "ell": ell}
