"""``einsum`` from the array API standard: operands contracted pairwise, each pair as one batched ``matmul``.

The standard has no einsum.  Each step takes the running result and the next
operand, sums the letters only one of them has and nothing later needs,
lays the pair out as (batch, free, contracted) and (batch, contracted, free)
and multiplies them with ``matmul``; the last step sums what the output
drops and permutes to its order.  The subscripts are diffkit's (explicit
letters, no ``...``, no letter repeated within one operand; the implicit
output is numpy's: the letters used once, sorted).  The summation order is
matmul's, not numpy's einsum loops': results agree to rounding.

>>> import pytest; xp = pytest.importorskip("array_api_strict")
>>> a, b = xp.reshape(xp.arange(6.0), (2, 3)), xp.reshape(xp.arange(12.0), (3, 4))
>>> einsum(xp, "ij,jk->ik", a, b)
Array([[20., 23., 26., 29.],
       [56., 68., 80., 92.]], dtype=array_api_strict.float64)
>>> einsum(xp, "ij,ij->j", a, a)
Array([ 9., 17., 29.], dtype=array_api_strict.float64)
"""
from __future__ import annotations

from math import prod
from typing import Any

__all__ = ["einsum"]


def einsum(lib: Any, subscripts: str, *operands: Any) -> Any:
    """numpy's ``einsum(subscripts, *operands)`` for the arrays of the array-API namespace ``lib``."""
    from .primitives.linalg import _parse  # the table's reading of subscripts (one place for its rules)

    terms, out = _parse(subscripts, len(operands))
    sizes = {}
    for term, x in zip(terms, operands):
        if len(term) != len(x.shape):
            raise ValueError(f"einsum term {term!r} names {len(term)} axes; its operand has shape {tuple(x.shape)}")
        for c, n in zip(term, x.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum letter {c!r} has sizes {sizes[c]} and {n}")
    term, acc = terms[0], operands[0]
    for k in range(1, len(operands)):
        later = set(out).union(*terms[k + 1:])
        acc, term = _pair(lib, acc, term, operands[k], terms[k], later, sizes)
    acc, term = _sum_letters(lib, acc, term, set(out))
    return lib.permute_dims(acc, tuple(term.index(c) for c in out)) if term != out else acc


def _sum_letters(lib: Any, x: Any, term: str, keep: set) -> tuple:
    drop = tuple(i for i, c in enumerate(term) if c not in keep)
    if not drop:
        return x, term
    return lib.sum(x, axis=drop), "".join(c for c in term if c in keep)


def _pair(lib: Any, a: Any, ta: str, b: Any, tb: str, later: set, sizes: dict) -> tuple:
    a, ta = _sum_letters(lib, a, ta, set(tb) | later)
    b, tb = _sum_letters(lib, b, tb, set(ta) | later)
    batch = [c for c in ta if c in tb and c in later]
    summed = [c for c in ta if c in tb and c not in later]
    free_a, free_b = [c for c in ta if c not in tb], [c for c in tb if c not in ta]

    def laid_out(x, term, first, second, third):
        x = lib.permute_dims(x, tuple(term.index(c) for c in first + second + third))
        return lib.reshape(x, tuple(prod(sizes[c] for c in part) for part in (first, second, third)))

    product = laid_out(a, ta, batch, free_a, summed) @ laid_out(b, tb, batch, summed, free_b)
    letters = batch + free_a + free_b
    return lib.reshape(product, tuple(sizes[c] for c in letters)), "".join(letters)
