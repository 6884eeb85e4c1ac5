"""Reductions and scans: sum, prod, mean, max, min, var, std, cumulative sums and products.

Conventions: ``max``/``min`` over an axis share ``g`` equally among tied
extrema; ``prod``'s rule is the product of the *other* entries (exclusive
scans from both ends), exact when entries are 0; ``cumprod``'s rule divides by
x and needs non-zero entries; ``axis=None`` reduces (and scans) the flattened
array, as numpy does; ``var``/``std`` take ``correction`` (the array API's
name; ``ddof`` is numpy's) and divide by ``n - correction``.
"""
from __future__ import annotations

import math

import numpy as np

from .lazy import sympy_backend
from .table import OBJECT, SAME, Domain, defprim

_PLAIN = (np.ndarray, np.float64)
_BOOL = np.dtype(bool)
AXES = Domain(shapes=(((4,),), ((2, 3),)), params=({}, {"axis": 0}, {"axis": -1, "keepdims": True}))
SCAN = Domain(0.3, 2.0, shapes=(((4,),), ((2, 3),)), params=({}, {"axis": 0}, {"axis": 1}))


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))))


def _kept_shape(x_shape, axis):
    axes = _axes(axis, len(x_shape))
    return tuple(1 if i in axes else n for i, n in enumerate(x_shape))


_SMALL = 1 << 16  # up to this many entries a filled array is cheaper than numpy's broadcast_to (~3 us of Python)


def _on_array_api(xp) -> bool:
    """Whether ``xp`` (under any traces) runs on another array library's values (numpy's fast paths do not)."""
    attrs = getattr(xp, "__dict__", {})  # (a namespace's getattr raises for names it lacks)
    while "vxp" in attrs:
        attrs = vars(attrs["vxp"])
    return attrs.get("backend") == "array_api"


def expand(g, xp, x_shape, axis, keepdims=False):
    """A reduction's gradient broadcast back to the input's shape (a view on numpy, a filled array when small)."""
    t = type(g)
    if t is float and _on_array_api(xp):  # the seed 1.0 of another library's sweep: made beside its values
        g, t = xp.asarray(g), None
    if t in _PLAIN or t is float:  # numpy values (or the sweep's seed 1.0): no dispatch through xp
        if t is float or g.size == 1 and g.dtype.kind == "f":  # one float (a full reduction's): a view of it
            one = np.float64(g) if t is float else g if t is np.float64 else g.reshape(-1)[0]  # as a numpy
            return np.ndarray(x_shape, one.dtype, one, 0, (0,) * len(x_shape))  # scalar (read-only), by numpy's
            # constructor: ~0.4 us at any size, where broadcast_to costs ~3 us and a fill a pass; the consumer's
            # pass reads it as cheaply as a filled array, and square's rule sees one number: x (2 g)
        if not keepdims and axis is not None:
            g = g.reshape(_kept_shape(x_shape, axis))
        if math.prod(x_shape) <= _SMALL:  # filled when small (broadcast_to costs ~3 us of Python)
            out = np.empty(x_shape, dtype=g.dtype)
            out[...] = g
            return out
        return np.broadcast_to(g, x_shape)
    if not keepdims:
        g = xp.reshape(g, _kept_shape(x_shape, axis))
    return xp.broadcast_to(g, x_shape)


def count(x_shape, axis) -> int:
    return int(np.prod([x_shape[a] for a in _axes(axis, len(x_shape))], dtype=np.int64))


def _extremum_parts(reduce, name):
    """max/min as the tape records them: ``(ans, res)``.  On numpy's real arrays ``res`` is where the
    extremum sits, found once in the forward: the hit mask (booleans, an eighth of x's bytes), or, where
    a slice holds tied extrema (or a NaN), ``(mask, ties per slice)``; the tape then need not keep x.
    Other values (object arrays of mpmath numbers, traces, other array libraries) keep ``(x, ans)``."""
    def parts(x, axis=None, keepdims=False):
        if type(x) is np.ndarray and x.dtype.kind in "fiub" and x.ndim:
            ans = reduce(x, axis, keepdims=keepdims)
            kept = ans.shape if keepdims else _kept_shape(x.shape, axis)
            top = ans if keepdims or type(ans) is not np.ndarray else ans.reshape(kept)
            hit = x == top  # plain booleans: ties share g equally
            if np.count_nonzero(hit) == math.prod(kept) and not np.count_nonzero(top != top):
                return ans, hit  # one hit per slice: no ties
            return ans, (hit, np.add.reduce(hit, _axes(axis, x.ndim), dtype=np.intp, keepdims=True))
        if type(x).__module__.startswith("diffkit"):  # a trace: its own max, recorded
            from ..dispatch import namespace
            ans = getattr(namespace(x), name)(x, axis=axis, keepdims=keepdims)
        elif hasattr(x, "__array_namespace__") and not isinstance(x, (np.ndarray, np.generic)):  # CuPy, array API
            ans = getattr(x.__array_namespace__(), name)(x, axis=axis, keepdims=keepdims)
        else:
            ans = reduce(x, axis, keepdims=keepdims)
        return ans, (x, ans)
    return parts


def _with_input(forward):
    """A max/min forward of another backend as the tape records it: ``(ans, (x, ans))``."""
    def parts(x, axis=None, keepdims=False):
        ans = forward(x, axis, keepdims)
        return ans, (x, ans)
    return parts


def _is_mask(v) -> bool:
    """A boolean array: numpy's, or another library's (torch, JAX, CuPy and the standard name it bool)."""
    if type(v) is np.ndarray:
        return v.dtype is _BOOL
    return str(getattr(v, "dtype", "")).endswith("bool")


def _extremum_vjp(g, res, xp, axis, keepdims):
    """max's (min's) rule from the forward's hit mask (and ties per slice), or from ``(x, ans)``."""
    # One full-size product: g (in the reduced shape) over the number of ties, times the hit mask.
    hit, ties = res if type(res) is tuple else (res, None)
    shape = getattr(hit, "shape", None)
    shape = np.shape(hit) if shape is None else shape
    kept = None if keepdims else _kept_shape(shape, axis)
    gk = g if kept is None or type(g) is float else g.reshape(kept) if type(g) in _PLAIN else xp.reshape(g, kept)
    if not _is_mask(hit):  # (x, ans): the hits found here, ties sharing g equally
        top = ties if kept is None else ties.reshape(kept) if type(ties) in _PLAIN else xp.reshape(ties, kept)
        hit = hit == top
        if type(hit) is not np.ndarray:
            ties = True  # (counted below, as floats)
        elif np.count_nonzero(hit) == math.prod(getattr(top, "shape", ())) and not np.count_nonzero(top != top):
            ties = None  # one hit per slice
        else:
            ties = np.sum(hit, axis=_axes(axis, len(shape)), keepdims=True)
    if type(hit) is not np.ndarray:  # other libraries multiply no booleans: 0/1 floats, and the shared sum
        hit = xp.to_float(hit)
        if ties is True:
            ties = xp.sum(hit, axis=_axes(axis, len(shape)), keepdims=True)
    return gk * hit if ties is None else (gk / ties) * hit


def _extremum_jvp(xp, ans, inputs, tangents, axis=None, keepdims=False):
    x, = inputs
    kept = _kept_shape(x.shape, axis)
    top = ans.reshape(kept) if type(ans) in _PLAIN else xp.reshape(ans, kept)
    hit = x == top  # plain booleans
    if type(hit) is np.ndarray and np.count_nonzero(hit) == math.prod(kept) and not np.count_nonzero(top != top):
        return _at_hits(tangents[0], hit, xp, _axes(axis, len(x.shape)), np.shape(ans))  # no ties: one per slice
    hit = xp.to_float(hit)
    share = hit / xp.sum(hit, axis=_axes(axis, len(x.shape)), keepdims=True)
    return xp.sum(tangents[0] * share, axis=axis, keepdims=keepdims)


def _at_hits(t, hit, xp, axes, shape):
    """The entries of ``t`` where ``hit`` (one per slice along ``axes``), in the reduced ``shape``: one gather
    instead of the weighted sum's five passes.  The reduced axes go last, so that the gather's C order is the
    order of the kept ones."""
    ndim = hit.ndim
    last = tuple(range(ndim - len(axes), ndim))
    if axes != last:
        t, hit = xp.moveaxis(t, axes, last), np.moveaxis(hit, axes, last)
    return xp.reshape(t[hit], shape)


def _moved_flat(x, xp, axis):
    """x with the scanned axis last (flattened when axis is None), and that axis (None: reshape back)."""
    if axis is None:
        return xp.reshape(x, (-1,)), None
    return xp.moveaxis(x, axis, -1), axis


def _exclusive_cumprod(v, xp):
    """prod of the entries before each one, along the last axis (1 for the first)."""
    ones = xp.ones_like(v[..., :1])
    return xp.concat([ones, xp.cumprod(v[..., :-1], axis=-1)], axis=-1)


def prod_of_others(x, xp, axis):
    """For each entry, the product of the other entries along ``axis``: exact where entries are 0."""
    v, ax = _moved_flat(x, xp, axis)
    others = _exclusive_cumprod(v, xp) * xp.flip(_exclusive_cumprod(xp.flip(v, axis=-1), xp), axis=-1)
    return xp.reshape(others, x.shape) if ax is None else xp.moveaxis(others, -1, ax)


def _reverse_cumsum(g, xp, axis):
    return xp.flip(xp.cumulative_sum(xp.flip(g, axis=axis), axis=axis), axis=axis)


def _scan_vjp(g, xp, x_shape, axis):
    if axis is None:  # the scan ran over the flattened array
        return xp.reshape(_reverse_cumsum(g, xp, 0), x_shape)
    return _reverse_cumsum(g, xp, axis)


def _var(x, axis=None, correction=0.0, keepdims=False):
    from ..backends import namespace
    xp = namespace(x)
    d = x - xp.mean(x, axis=axis, keepdims=True)
    return xp.sum(d * d, axis=axis, keepdims=keepdims) / (count(x.shape, axis) - correction)


def _std(x, axis=None, correction=0.0, keepdims=False):
    from ..backends import namespace
    return namespace(x).sqrt(_var(x, axis, correction, keepdims))


def _var_vjp(g, x, xp, axis, correction, keepdims):
    d = x - xp.mean(x, axis=axis, keepdims=True)
    return expand(g, xp, x.shape, axis, keepdims) * (2 * d / (count(x.shape, axis) - correction))


def _std_vjp(g, ans, x, xp, axis, correction, keepdims):
    d = x - xp.mean(x, axis=axis, keepdims=True)
    scale = expand(g / ans, xp, x.shape, axis, keepdims)
    return scale * d / (count(x.shape, axis) - correction)


def _variance_api(x, axis=None, correction=None, keepdims=False, ddof=None):
    return (x,), {"axis": axis, "correction": float(correction if correction is not None else ddof or 0.0),
                  "keepdims": keepdims}


def _scan(numpy_fn):
    return lambda x, axis=None: numpy_fn(x, axis=axis)


def _scan_api(x, axis=None, dtype=None, include_initial=False):
    if include_initial:
        raise NotImplementedError("cumulative_sum(include_initial=True) is not in diffkit's table; concatenate "
                                  "a zero in front instead")
    return (x,), {"axis": axis}


def _sympy_extremum(name):
    return lambda x, axis=None, keepdims=False: sympy_backend.reduce_with(name, x, axis, keepdims)


REDUCE = {"axis": None, "keepdims": False}

# fmt: off
defprim("sum", "x", kind="linear", params=REDUCE, numpy=lambda x, axis=None, keepdims=False: np.add.reduce(x, axis, keepdims=keepdims),
        complex=SAME, mpmath=OBJECT, sympy=OBJECT, vjp=expand,
        domain=AXES)
defprim("mean", "x", kind="linear", params=REDUCE, numpy=lambda x, axis=None, keepdims=False: np.mean(x, axis, keepdims=keepdims),
        complex=SAME, mpmath=lambda x, axis=None, keepdims=False: np.sum(x, axis, keepdims=keepdims) / count(x.shape, axis),
        sympy=lambda x, axis=None, keepdims=False: np.sum(x, axis, keepdims=keepdims) / count(x.shape, axis),
        vjp=lambda g, xp, x_shape, axis, keepdims: expand(g / count(x_shape, axis), xp, x_shape, axis, keepdims),
        domain=AXES)
defprim("prod", "x", kind="array", params=REDUCE, numpy=lambda x, axis=None, keepdims=False: np.prod(x, axis, keepdims=keepdims),
        complex=SAME, mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, x, xp, axis, keepdims: expand(g, xp, x.shape, axis, keepdims) * prod_of_others(x, xp, axis),
        jvp=lambda xp, ans, inputs, tangents, axis=None, keepdims=False:
            xp.sum(tangents[0] * prod_of_others(inputs[0], xp, axis), axis=axis, keepdims=keepdims),
        convention="the product of the other entries: exact where an entry is 0", domain=AXES)
defprim("max", "x", kind="array", params=REDUCE, residual=True, numpy=_extremum_parts(np.maximum.reduce, "max"),
        value=lambda x, axis=None, keepdims=False: np.maximum.reduce(x, axis, keepdims=keepdims),
        complex=_with_input(lambda x, axis=None, keepdims=False: _complex_extremum(x, axis, keepdims, np.argmax, "max")),
        mpmath=OBJECT, sympy=_with_input(_sympy_extremum("Max")),
        vjp=_extremum_vjp, jvp=_extremum_jvp, aliases=("amax",),
        convention="tied maxima share g equally", domain=AXES)
defprim("min", "x", kind="array", params=REDUCE, residual=True, numpy=_extremum_parts(np.minimum.reduce, "min"),
        value=lambda x, axis=None, keepdims=False: np.minimum.reduce(x, axis, keepdims=keepdims),
        complex=_with_input(lambda x, axis=None, keepdims=False: _complex_extremum(x, axis, keepdims, np.argmin, "min")),
        mpmath=OBJECT, sympy=_with_input(_sympy_extremum("Min")),
        vjp=_extremum_vjp, jvp=_extremum_jvp, aliases=("amin",),
        convention="tied minima share g equally", domain=AXES)
defprim("var", "x", kind="array", params={"axis": None, "correction": 0.0, "keepdims": False}, api=_variance_api,
        numpy=lambda x, axis=None, correction=0.0, keepdims=False: np.var(x, axis, ddof=correction, keepdims=keepdims),
        complex=_var, mpmath=_var, sympy=_var, vjp=_var_vjp,
        jvp=lambda xp, ans, inputs, tangents, axis=None, correction=0.0, keepdims=False: xp.sum(
            tangents[0] * 2 * (inputs[0] - xp.mean(inputs[0], axis=axis, keepdims=True)), axis=axis, keepdims=keepdims)
            / (count(inputs[0].shape, axis) - correction),
        domain=Domain(shapes=(((5,),), ((2, 3),)), params=({}, {"axis": 0, "correction": 1.0})))
defprim("std", "x", kind="array", params={"axis": None, "correction": 0.0, "keepdims": False}, api=_variance_api,
        numpy=lambda x, axis=None, correction=0.0, keepdims=False: np.std(x, axis, ddof=correction, keepdims=keepdims),
        complex=_std, mpmath=_std, sympy=_std, vjp=_std_vjp,
        jvp=lambda xp, ans, inputs, tangents, axis=None, correction=0.0, keepdims=False: xp.sum(
            tangents[0] * (inputs[0] - xp.mean(inputs[0], axis=axis, keepdims=True)), axis=axis, keepdims=keepdims)
            / ((count(inputs[0].shape, axis) - correction) * ans),
        domain=Domain(shapes=(((5,),), ((2, 3),)), params=({}, {"axis": 1, "correction": 1.0})))
defprim("cumulative_sum", "x", kind="linear", params={"axis": None}, api=_scan_api, numpy=_scan(np.cumsum),
        complex=SAME, mpmath=OBJECT, sympy=OBJECT, vjp=lambda g, xp, x_shape, axis: _scan_vjp(g, xp, x_shape, axis),
        aliases=("cumsum",), domain=SCAN)
defprim("cumprod", "x", kind="array", params={"axis": None}, numpy=_scan(np.cumprod), complex=SAME,
        mpmath=OBJECT, sympy=OBJECT,
        vjp=lambda g, ans, x, xp, axis: _scan_vjp(g * ans, xp, x.shape, axis) / x,
        jvp=lambda xp, ans, inputs, tangents, axis=None: ans * xp.cumulative_sum(tangents[0] / inputs[0], axis=axis),
        aliases=("cumulative_prod",), convention="the rule divides by x: entries must be non-zero", domain=SCAN)
# fmt: on


def _complex_extremum(x, axis, keepdims, arg, name):
    """The entry with the largest (smallest) real part; a tie of real parts whose imaginary parts differ is the
    kink of max/min, where the complex step has no derivative to carry: NotAnalyticError."""
    from .elementwise import _check_kink
    x = np.asarray(x)
    flat = x.reshape(-1) if axis is None else x
    along = 0 if axis is None else axis
    out = np.take_along_axis(flat, np.expand_dims(arg(flat.real, axis=along), along), axis=along)
    _check_kink(name, flat.real == out.real, flat.imag != out.imag)
    if axis is None:
        return np.reshape(out, (1,) * x.ndim) if keepdims else out[0]
    return out if keepdims else np.squeeze(out, axis=axis)
