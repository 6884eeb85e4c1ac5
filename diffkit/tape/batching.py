"""How each primitive runs on values with a leading batch axis: the rules behind :class:`.batched.Batched`.

A rule takes ``(prim, vals, which, params, k, xp)``: the inner values (a
batched one carries the batch axis of size ``k`` in front), which of them are
batched, the primitive's params and the inner values' namespace; it returns
the result with the batch axis in front.
Families, by what a primitive does to axes:

* elementwise (and comparisons, ``where``, ``clip``): batched inputs get ones
  inserted after the batch axis up to the common rank, so that numpy's
  right-aligned broadcasting lines the axes up;
* an ``axis`` param: a non-negative axis moves up by one (a negative one counts
  from the end and stays); ``axis=None`` becomes every axis but the batch one,
  or, where None flattens (scans, ``take``, ``repeat``, ``argmax``), each
  member is flattened on its own;
* matrix ops on the last two axes (``det``, ``inv``, ``tril``...) need nothing;
* the rest have their own rule (``reshape``, ``getitem``, ``matmul``,
  ``einsum``, ``solve``...);
* any primitive without one (the fused costs) runs once per member and stacks
  the results: always right, k calls.

>>> import numpy as np
>>> from diffkit.primitives import PRIMITIVES
>>> batched_call(PRIMITIVES["sum"], [np.arange(6.0).reshape(2, 3)], [True], {"axis": None}, 2).tolist()
[3.0, 12.0]
"""
from __future__ import annotations

import string
from typing import Any, Callable

import numpy as np

from ..backends import NUMPY
from ..dispatch import namespace
from ..primitives import PRIMITIVES

__all__ = ["batched_call", "RULES"]


def _shape(v: Any) -> tuple:
    return tuple(getattr(v, "shape", ()))


def _ndim(v: Any) -> int:
    return len(getattr(v, "shape", ()))


def _reshape(v: Any, shape: tuple) -> Any:
    return v.reshape(shape) if type(v) is np.ndarray else namespace(v).reshape(v, shape)


def _lift(v: Any, rank: int) -> Any:
    """A batched value with ``rank`` axes after its batch axis: ones inserted right after it."""
    shape = _shape(v)
    missing = rank + 1 - len(shape)
    return v if missing <= 0 else _reshape(v, shape[:1] + (1,) * missing + shape[1:])


def _spread(v: Any, k: int) -> Any:
    """An unbatched value repeated along a new batch axis (a view on numpy)."""
    return namespace(v).broadcast_to(v, (k,) + _shape(v))


def _call(prim, vals: list, params: dict, xp: Any) -> Any:
    if prim.residual and xp is NUMPY:  # numpy's value alone: no batched rule reads a residual
        return prim.value(*vals, **params)
    out = xp.impls[prim.index](*vals, **params) if params else xp.impls[prim.index](*vals)
    return out[0] if prim.residual else out


def _shift(axis: Any) -> Any:
    if isinstance(axis, (tuple, list)):
        return tuple(_shift(a) for a in axis)
    return axis + 1 if axis >= 0 else axis


def _loop(prim, vals, which, params, k, xp):
    """The definition: the primitive on each member, stacked."""
    outs = [_call(prim, [v[i] if w else v for v, w in zip(vals, which)], params, xp) for i in range(k)]
    return namespace(*outs).stack(outs, axis=0)


def _data_dependent(prim, vals, which, params, k, xp):
    """nonzero's and unique's parts: each member on its own, stacked where their results have one shape."""
    outs = [_call(prim, [v[i] if w else v for v, w in zip(vals, which)], params, xp) for i in range(k)]
    shapes = sorted({_shape(o) for o in outs})
    if len(shapes) > 1:
        raise ValueError(f"{prim.name} over a batch: the members' results have the shapes {shapes}, which cannot "
                         f"stack into one batched array (the shape depends on each member's values); run the "
                         f"members one at a time")
    return namespace(*outs).stack(outs, axis=0)


def _elementwise(prim, vals, which, params, k, xp):
    if len(vals) == 1:
        return _call(prim, vals, params, xp)
    if len(vals) == 2:  # (most ops: no loops)
        (x, y), (bx, by) = vals, which
        nx, ny = _ndim(x) - bx, _ndim(y) - by
        if bx and nx < ny:
            x = _lift(x, ny)
        elif by and ny < nx:
            y = _lift(y, nx)
        return _call(prim, [x, y], params, xp)
    rank = max(_ndim(v) - w for v, w in zip(vals, which))
    return _call(prim, [_lift(v, rank) if w else v for v, w in zip(vals, which)], params, xp)


def _as_is(prim, vals, which, params, k, xp):
    """Ops on the last axes (matrices), one batched input: the batch axis is one more leading axis."""
    return _call(prim, vals, params, xp)


def _axis(none: str, key: str = "axis") -> Callable:
    """A one-input op with an axis param; ``none`` says what ``axis=None`` means: ``"all"`` axes, or the
    ``"flat"`` array."""
    def rule(prim, vals, which, params, k, xp):
        x, axis = vals[0], params.get(key, prim.params.get(key))
        if axis is not None:
            return _call(prim, [x, *vals[1:]], {**params, key: _shift(axis)}, xp)
        if none == "all":
            return _call(prim, [x, *vals[1:]], {**params, key: tuple(range(1, _ndim(x)))}, xp)
        out = _call(prim, [_reshape(x, (k, -1)), *vals[1:]], {**params, key: 1}, xp)
        if prim.name == "roll":
            return _reshape(out, _shape(x))
        return _reshape(out, (k,) + (1,) * (_ndim(x) - 1)) if params.get("keepdims") else out
    return rule


def _squeeze(prim, vals, which, params, k, xp):
    x, axis = vals[0], params.get("axis")
    if axis is None:
        axis = tuple(i + 1 for i, n in enumerate(_shape(x)[1:]) if n == 1)
        return _reshape(x, (k,) + tuple(n for n in _shape(x)[1:] if n != 1)) if axis else x
    return _call(prim, vals, {**params, "axis": _shift(axis)}, xp)


def _axes_pair(*keys: str) -> Callable:
    def rule(prim, vals, which, params, k, xp):
        return _call(prim, vals, {**params, **{key: _shift(params.get(key, prim.params[key])) for key in keys}}, xp)
    return rule


def _permute_dims(prim, vals, which, params, k, xp):
    x, axes = vals[0], params.get("axes")
    nd = _ndim(x) - 1
    axes = tuple(range(nd, 0, -1)) if axes is None else tuple(a % nd + 1 for a in axes)
    return _call(prim, vals, {"axes": (0,) + axes}, xp)


def _reshape_rule(prim, vals, which, params, k, xp):
    return _reshape(vals[0], (k,) + tuple(params["shape"]))


def _broadcast_to(prim, vals, which, params, k, xp):
    shape = tuple(params["shape"])
    return _call(prim, [_lift(vals[0], len(shape))], {"shape": (k,) + shape}, xp)


def _tile(prim, vals, which, params, k, xp):
    reps = tuple(params["reps"])
    rank = max(_ndim(vals[0]) - 1, len(reps))
    return _call(prim, [_lift(vals[0], rank)], {"reps": (1,) * (rank + 1 - len(reps)) + reps}, xp)


def _joined(prim, vals, which, params, k, xp):
    """concat and stack: every input batched (an unbatched one repeated), the axis moved up."""
    vals = [v if w else _spread(v, k) for v, w in zip(vals, which)]
    axis = params.get("axis", 0)
    if axis is None:  # concat of the flattened arrays
        return _call(prim, [_reshape(v, (k, -1)) for v in vals], {"axis": 1}, xp)
    return _call(prim, vals, {"axis": _shift(axis)}, xp)


def _advanced_apart(index: tuple) -> bool:
    """Whether numpy would move the indexed axes to the front: advanced indices (arrays, and integers beside
    them) not next to each other.  The batch axis would then no longer come first."""
    arrays = [i for i, p in enumerate(index) if isinstance(p, (list, np.ndarray)) or hasattr(p, "shape")
              and not isinstance(p, np.generic)]
    if not arrays:
        return False
    advanced = [i for i, p in enumerate(index) if i in arrays or isinstance(p, (int, np.integer))]
    return advanced[-1] - advanced[0] + 1 != len(advanced)


def _batched_index(index: Any) -> tuple | None:
    parts = index if type(index) is tuple else (index,)
    return None if _advanced_apart(parts) else (slice(None),) + parts


def _getitem(prim, vals, which, params, k, xp):
    index = _batched_index(params["index"])
    if index is None:
        return _loop(prim, vals, which, params, k, xp)
    return _call(prim, vals, {"index": index}, xp)


def _at(prim, vals, which, params, k, xp):
    """at_set / at_add: the target repeated when only the update is batched; the update lined up with the
    indexed part."""
    index = _batched_index(params["index"])
    if index is None:
        return _loop(prim, vals, which, params, k, xp)
    x, v = vals
    if not which[0]:
        x = _spread(x, k)
    if which[1]:
        part = np.broadcast_to(np.empty((), dtype=bool), _shape(x))[index]  # a view: no copy of x
        v = _lift(v, part.ndim - 1)
    return _call(prim, [x, v], {"index": index}, xp)


def _take(prim, vals, which, params, k, xp):
    x, axis = vals[0], params.get("axis")
    if axis is None:
        return _call(prim, [_reshape(x, (k, -1))], {**params, "axis": 1}, xp)
    return _call(prim, vals, {**params, "axis": _shift(axis)}, xp)


def _matmul(prim, vals, which, params, k, xp):
    """Vectors become matrices (a row on the left, a column on the right), batched operands are lifted to a
    common rank, and the added axis is dropped again.  (A batch of matrices times one matrix is then the
    table's matmul of a stack and a matrix: one product of the stacked rows.)"""
    (x, y), (bx, by) = vals, which
    xv, yv = _ndim(x) - bx == 1, _ndim(y) - by == 1
    if xv:
        x = xp.expand_dims(x, axis=-2)
    if yv:
        y = xp.expand_dims(y, axis=-1)
    rank = max(_ndim(x) - bx, _ndim(y) - by)
    out = xp.matmul(_lift(x, rank) if bx else x, _lift(y, rank) if by else y)
    if yv:
        return out[..., 0, 0] if xv else out[..., 0]
    return out[..., 0, :] if xv else out


def _einsum(prim, vals, which, params, k, xp):
    """A fresh letter for the batch axis on every batched operand and in front of the output."""
    from ..primitives.linalg import _parse
    terms, out = _parse(params["subscripts"], len(vals))
    letter = next(c for c in string.ascii_letters if c not in params["subscripts"])
    spec = ",".join(letter + t if w else t for t, w in zip(terms, which)) + "->" + letter + out
    return _call(prim, vals, {"subscripts": spec}, xp)


def _solve(prim, vals, which, params, k, xp):
    """One matrix and batched right-hand sides: the batch joins the columns, one solve for all."""
    (a, b), (ba, bb) = vals, which
    if ba or not bb or _ndim(a) != 2:
        return _loop(prim, vals, which, params, k, xp)
    cols = xp.moveaxis(b, 0, -1)  # (n, ..., k)
    shape = _shape(cols)
    out = _call(prim, [a, _reshape(cols, (shape[0], -1))], params, xp)
    return xp.moveaxis(_reshape(out, shape), -1, 0)


def _affine(prim, vals, which, params, k, xp):
    """x @ w + b by the matmul and elementwise rules."""
    x, w, b = vals
    prod = _matmul(PRIMITIVES["matmul"], [x, w], list(which[:2]), {}, k, xp)
    return _elementwise(PRIMITIVES["add"], [prod, b], [which[0] or which[1], which[2]], {}, k, xp)


_ALL = ("sum", "mean", "prod", "max", "min", "var", "std", "vector_norm", "logsumexp", "softmax", "log_softmax",
        "flip", "all", "any", "count_nonzero")
_FLAT = ("cumulative_sum", "cumprod", "argmax", "argmin", "argsort", "repeat", "roll")
# data-dependent shapes (nonzero, unique): each member on its own (results of different sizes are refused)
_DATA_DEPENDENT = ("nonzero_indices", "unique_first_indices", "unique_inverse_indices", "unique_value_counts")
_MATRIX = ("matrix_transpose", "tril", "triu", "diagonal", "det", "logabsdet", "inv", "cholesky", "eigvalsh",
           "eigvecsh", "svdvals", "svd_u", "svd_vh", "qr_q", "qr_r")
_OWN = {"squeeze": _squeeze, "expand_dims": _axes_pair("axis"), "swapaxes": _axes_pair("axis1", "axis2"),
        "moveaxis": _axes_pair("source", "destination"), "permute_dims": _permute_dims, "reshape": _reshape_rule,
        "broadcast_to": _broadcast_to, "tile": _tile, "concat": _joined, "stack": _joined, "getitem": _getitem,
        "take": _take, "at_set": _at, "at_add": _at, "matmul": _matmul, "einsum": _einsum, "solve": _solve,
        "solve_triangular": _solve, "affine": _affine, "where": _elementwise, "clip": _elementwise,
        **{name: _data_dependent for name in _DATA_DEPENDENT}}


def _rule_for(prim) -> Callable:
    if prim.name in _OWN:
        return _OWN[prim.name]
    if prim.name in _ALL or prim.name in _FLAT:
        return _axis("all" if prim.name in _ALL else "flat")
    if prim.name in _MATRIX:
        return _as_is
    elementwise = prim.kind == "elementwise" or prim.jvp == "elementwise"
    if elementwise or prim.kind == "constant" and not prim.params:
        return _elementwise
    return _loop  # (the fused costs: binary_cross_entropy, softmax_cross_entropy, sum_of_squares)


RULES: list = [None] * len(PRIMITIVES)
for _prim in PRIMITIVES.values():
    RULES[_prim.index] = _rule_for(_prim)


def batched_call(prim, vals: list, which: list, params: dict, k: int, xp: Any = None) -> Any:
    """``prim`` on ``vals`` (of namespace ``xp``) where ``which`` says which carry a leading batch axis of size
    ``k``: the result has that axis in front."""
    return RULES[prim.index](prim, vals, which, params, k, namespace(*vals) if xp is None else xp)
