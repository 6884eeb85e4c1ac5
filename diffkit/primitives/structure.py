"""Array manipulation and indexing: reshape, permute, concat, stack, flips, rolls, tiles, gathers, functional updates.

Every rule here moves gradients without arithmetic (or sums them where
entries were copied), so each is exact.  Broadcasts are undone by the tape,
which sums a contribution back to its input's shape.

Conventions: ``getitem`` with repeated integer indices adds their gradients;
``xp.at(x)[i].set(v)`` with repeated indices keeps numpy's last write, and its
rule is only meaningful for unique indices; ``where(c, x, y)`` carries no
derivative through its condition ``c``.
"""
from __future__ import annotations

import numpy as np

from .lazy import sympy_backend
from .table import OBJECT, SAME, Domain, defprim

MATRIX = Domain(shapes=(((2, 3),), ((2, 3, 4),)))


def _normalize_shape(shape):
    return tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)


def _inverse(axes, ndim):
    axes = tuple(range(ndim))[::-1] if axes is None else axes
    return tuple(np.argsort([a % ndim for a in axes]))


def _split(g, xs_shape, axis):
    ndim = len(xs_shape[0])
    axis %= ndim
    lead, out, start = (slice(None),) * axis, [], 0
    for shape in xs_shape:
        out.append(g[lead + (slice(start, start + shape[axis]), Ellipsis)])
        start += shape[axis]
    return tuple(out)


def _unstack(g, xs_shape, axis):
    axis %= len(xs_shape[0]) + 1
    lead = (slice(None),) * axis
    return tuple(g[lead + (i, Ellipsis)] for i in range(len(xs_shape)))


def _copy_as(x, v):
    out = np.array(x, dtype=np.result_type(x, v) if np.asarray(x).dtype != object else object, copy=True)
    return out


def _at_set(x, v, index):
    out = _copy_as(x, v)
    out[index] = v
    return out


def _at_add(x, v, index):
    out = _copy_as(x, v)
    np.add.at(out, index, v)
    return out


def _tile_vjp(g, xp, x_shape, reps):
    reps = tuple(reps) if isinstance(reps, (tuple, list)) else (reps,)
    d = max(len(x_shape), len(reps))
    shape = (1,) * (d - len(x_shape)) + tuple(x_shape)
    reps = (1,) * (d - len(reps)) + reps
    split = xp.reshape(g, tuple(n for pair in zip(reps, shape) for n in pair))
    return xp.reshape(xp.sum(split, axis=tuple(range(0, 2 * d, 2))), x_shape)


def _gather_index(indices, axis, x_shape):  # indices as given (numpy's, or the values' library's)
    if axis is None:
        return (indices,)
    return (slice(None),) * (axis % len(x_shape)) + (indices,)


def _take_vjp(g, xp, x_shape, indices, axis):
    zeros = xp.zeros(x_shape if axis is not None else (int(np.prod(x_shape, dtype=np.int64)),))
    out = xp.at(zeros)[_gather_index(indices, axis, x_shape)].add(g)
    return out if axis is not None else xp.reshape(out, x_shape)


def _repeat_indices(x_shape, repeats, axis):
    n = int(np.prod(x_shape, dtype=np.int64)) if axis is None else x_shape[axis]
    return np.repeat(np.arange(n), repeats)


def _take(x, indices, axis=None):
    return np.take(x, np.asarray(indices), axis=axis)


def _expand_dims(x, axis=0):
    """``np.expand_dims``; a numpy array and one axis by a reshape (always a view), ~0.3 us where numpy's
    Python function takes ~2 (the matmul rules' ``g[..., None]``, a rule on every matrix-vector product)."""
    if type(x) is np.ndarray and type(axis) is int:
        n = x.ndim + 1
        at = axis + n if axis < 0 else axis
        if 0 <= at < n:
            shape = x.shape
            return x.reshape(shape[:at] + (1,) + shape[at:])
    return np.expand_dims(x, axis)


def _at_index_vjp_x(g, xp, index):
    return xp.at(g)[index].set(0.0)


# fmt: off
defprim("reshape", "x", kind="linear", params={"shape": ()},
        api=lambda x, shape, copy=None: ((x,), {"shape": _normalize_shape(shape)}),
        numpy=lambda x, shape: x.reshape(shape) if type(x) is np.ndarray else np.reshape(x, shape),
        complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, x_shape: xp.reshape(g, x_shape), domain=Domain(shapes=(((2, 3),),), params=({"shape": (3, 2)}, {"shape": (-1,)})))
defprim("permute_dims", "x", kind="linear", params={"axes": None}, aliases=("transpose",),
        api=lambda x, axes=None: ((x,), {"axes": None if axes is None else tuple(axes)}),
        numpy=lambda x, axes=None: np.transpose(x, axes), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, x_shape, axes: xp.permute_dims(g, _inverse(axes, len(x_shape))),
        domain=Domain(shapes=(((2, 3, 4),),), params=({}, {"axes": (1, 2, 0)})))
defprim("matrix_transpose", "x", kind="linear", numpy=lambda x: np.swapaxes(x, -1, -2), complex=SAME,
        mpmath=OBJECT, sympy=OBJECT, vjp=lambda g, xp: xp.matrix_transpose(g), domain=MATRIX)
defprim("swapaxes", "x", kind="linear", params={"axis1": 0, "axis2": 1},
        api=lambda x, axis1, axis2: ((x,), {"axis1": axis1, "axis2": axis2}),
        numpy=lambda x, axis1=0, axis2=1: np.swapaxes(x, axis1, axis2), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, axis1, axis2: xp.swapaxes(g, axis1, axis2), domain=Domain(shapes=(((2, 3, 4),),), params=({"axis1": 0, "axis2": 2},)))
defprim("moveaxis", "x", kind="linear", params={"source": 0, "destination": -1},
        api=lambda x, source, destination: ((x,), {"source": source, "destination": destination}),
        numpy=lambda x, source=0, destination=-1: np.moveaxis(x, source, destination), complex=SAME, mpmath=OBJECT,
        sympy=OBJECT, vjp=lambda g, xp, source, destination: xp.moveaxis(g, destination, source),
        domain=Domain(shapes=(((2, 3, 4),),), params=({"source": 0, "destination": -1},)))
defprim("squeeze", "x", kind="linear", params={"axis": None},
        numpy=lambda x, axis=None: np.squeeze(x, axis), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, x_shape: xp.reshape(g, x_shape), domain=Domain(shapes=(((1, 3),), ((2, 1),)), params=({},)))
defprim("expand_dims", "x", kind="linear", params={"axis": 0},
        numpy=_expand_dims, complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, x_shape: xp.reshape(g, x_shape), domain=Domain(shapes=(((3,),),), params=({"axis": 0}, {"axis": -1})))
defprim("flip", "x", kind="linear", params={"axis": None},
        numpy=lambda x, axis=None: np.flip(x, axis), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, axis: xp.flip(g, axis=axis), domain=Domain(shapes=(((4,),), ((2, 3),)), params=({}, {"axis": 0})))
defprim("roll", "x", kind="linear", params={"shift": 0, "axis": None},
        numpy=lambda x, shift=0, axis=None: np.roll(x, shift, axis), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, shift, axis: xp.roll(g, tuple(-s for s in shift) if isinstance(shift, tuple) else -shift, axis=axis),
        domain=Domain(shapes=(((5,),), ((2, 3),)), params=({"shift": 2}, {"shift": 1, "axis": 1})))
defprim("broadcast_to", "x", kind="linear", params={"shape": ()},
        api=lambda x, shape: ((x,), {"shape": _normalize_shape(shape)}),
        numpy=lambda x, shape: np.broadcast_to(x, shape), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g: g, domain=Domain(shapes=(((3,),),), params=({"shape": (2, 3)},)))
defprim("tile", "x", kind="linear", params={"reps": ()},
        api=lambda x, reps: ((x,), {"reps": _normalize_shape(reps)}),
        numpy=lambda x, reps: np.tile(x, reps), complex=SAME, mpmath=OBJECT, sympy=OBJECT, vjp=_tile_vjp,
        domain=Domain(shapes=(((3,),), ((2, 3),)), params=({"reps": (2,)}, {"reps": (2, 1)})))
defprim("repeat", "x", kind="linear", params={"repeats": 1, "axis": None},
        numpy=lambda x, repeats=1, axis=None: np.repeat(x, repeats, axis), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, x_shape, repeats, axis: _take_vjp(g, xp, x_shape, _repeat_indices(x_shape, repeats, axis), axis),
        domain=Domain(shapes=(((3,),), ((2, 3),)), params=({"repeats": 2}, {"repeats": 2, "axis": 1})))
defprim("concat", "*xs", kind="linear", params={"axis": 0}, aliases=("concatenate",),
        api=lambda arrays, axis=0: (tuple(arrays), {"axis": axis}),
        numpy=lambda *xs, axis=0: np.concatenate(xs, axis=axis), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        joint=lambda g, xs_shape, axis: _split(g, xs_shape, axis),
        domain=Domain(shapes=(((2,), (3,)), ((2, 3), (1, 3))), params=({},)))
defprim("stack", "*xs", kind="linear", params={"axis": 0},
        api=lambda arrays, axis=0: (tuple(arrays), {"axis": axis}),
        numpy=lambda *xs, axis=0: np.stack(xs, axis=axis), complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        joint=lambda g, xs_shape, axis: _unstack(g, xs_shape, axis),
        domain=Domain(shapes=(((3,), (3,)),), params=({}, {"axis": 1})))
defprim("getitem", "x", kind="linear", params={"index": ()}, api=lambda x, index: ((x,), {"index": index}),
        numpy=lambda x, index: x[index], complex=SAME, mpmath=OBJECT, sympy=OBJECT, vjp=lambda g: g, scatter=True,
        convention="repeated integer indices add their gradients",
        domain=Domain(shapes=(((5,),), ((3, 4),)), params=({"index": (slice(1, 4),)}, {"index": ([0, 2, 2],)})))
defprim("take", "x", kind="linear", params={"indices": (), "axis": None},
        api=lambda x, indices, axis=None: ((x,), {"indices": indices if hasattr(indices, "shape") else np.asarray(indices),
                                                  "axis": axis}),
        numpy=_take, complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, xp, x_shape, indices, axis: _take_vjp(g, xp, x_shape, indices, axis),
        convention="repeated indices add their gradients",
        domain=Domain(shapes=(((5,),), ((3, 4),)), params=({"indices": [0, 2, 2]}, {"indices": [1, 0], "axis": 0})))
defprim("at_set", "x v", kind="linear", params={"index": ()}, numpy=_at_set, complex=SAME, mpmath=OBJECT,
        sympy=OBJECT, vjp=(_at_index_vjp_x, lambda g, xp, index: xp.getitem(g, index)),
        convention="xp.at(x)[index].set(v); indices must be unique for its rule",
        domain=Domain(shapes=(((5,), ()), ((3, 4), (4,))), params=({"index": (1,)},)))
defprim("at_add", "x v", kind="linear", params={"index": ()}, numpy=_at_add, complex=SAME, mpmath=OBJECT,
        sympy=OBJECT, vjp=(lambda g: g, lambda g, xp, index: xp.getitem(g, index)),
        convention="xp.at(x)[index].add(v); repeated indices add", domain=Domain(shapes=(((5,), (3,)),), params=({"index": ([0, 2, 2],)},)))
defprim("where", "c x y", kind="linear", numpy=np.where, complex=lambda c, x, y: np.where(np.asarray(c, bool), x, y),
        mpmath=OBJECT, sympy=lambda c, x, y: sympy_backend.where(c, x, y), nondiff=(0,),
        vjp=(None, lambda g, c, xp: xp.where(c, g, 0.0), lambda g, c, xp: xp.where(c, 0.0, g)),
        convention="no derivative through the condition", domain=Domain(shapes=(((3,), (3,), (3,)),)))
# fmt: on
