"""Ops with no derivative: their results are constants on every trace (indices, signs, roundings, comparisons).

On the complex step they act on the real part, so a branch is chosen by the
real value, as the derivative it carries needs.  ``sign(0) = 0`` (numpy's).

The data-dependent ops of the array API's set and search functions are here as
their index parts: ``nonzero_indices`` (``nonzero``'s indices as one (ndim, k)
array), ``unique_first_indices``, ``unique_inverse_indices`` and
``unique_value_counts`` (the parts of ``unique_all``; its values are a gather at
the first indices, composed in :data:`diffkit.backends.DERIVED`, so that each
distinct value's gradient goes to its first occurrence), and ``isin``.  Distinct
values come in ascending order; equality is ``==``, so each NaN is distinct
(after the numbers, in the order they occur), -0.0 and 0.0 are one value, and a
NaN is in no array.
"""
from __future__ import annotations

import mpmath
import numpy as np

from .lazy import held
from .table import OBJECT, Domain, defprim

ANY = Domain(shapes=(((4,),), ((2, 3),)))
PAIRS = Domain(shapes=(((3,), (3,)),))


def _lift(fn, n=1, dtype=None):
    ufunc = np.frompyfunc(fn, n, 1)
    if dtype is None:
        return lambda *xs: ufunc(*xs)
    return lambda *xs: np.asarray(ufunc(*xs), dtype=dtype)


def _real(fn):
    """The op on the real parts: the complex step's convention for non-analytic ops."""
    return lambda *xs, **kw: fn(*[np.asarray(x).real for x in xs], **kw)


def _truth(x):
    """Object arrays of numbers as booleans (numpy's logical ufuncs call methods that mpf lacks)."""
    return np.asarray(np.asarray(x, dtype=object) != 0, dtype=bool)


def _sympy_compare(op):
    return _lift(op, 2)


def _argsort(x, axis=-1, descending=False, stable=True):
    """Indices that sort x, always stably (the array API allows a stable sort where none is asked for);
    descending sorts -x, so that ties keep their order there too."""
    return np.argsort(np.negative(x) if descending else x, axis=axis, kind="stable")


def _of_truths(fn):
    """all / any / count_nonzero over ``x != 0``: numbers of any backend as truth values (NaN is true)."""
    return lambda x, axis=None, keepdims=False: fn(np.not_equal(x, 0), axis=axis, keepdims=keepdims)


def _nonzero_indices(x):
    """The indices of x's nonzero entries (NaN counts as nonzero), in row-major order, as one integer array of
    shape (ndim, k): row d holds the entries' indices along axis d."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("nonzero: x has no axes; the array API refuses nonzero of a 0-d array (reshape it to "
                         "(1,) first)")
    where = np.nonzero(_truth(x) if x.dtype == object else x)
    return np.array(where, dtype=np.intp).reshape(x.ndim, -1)


def _unique_parts(x):
    """``(first indices, inverse indices, counts)`` of the distinct values of x, flattened in row-major order:
    the distinct values in ascending order, each one's first occurrence, each entry's place among them (x's
    shape), and how often each occurs.  Equality is ``==``: each NaN is distinct (after the numbers, in the
    order they occur), -0.0 and 0.0 are one value (the first to occur).  Numbers of any backend: numpy's unique
    on float arrays, comparisons alone (a stable sort) on object arrays."""
    x = np.asarray(x)
    flat = x.reshape(-1)
    if flat.dtype != object:
        _, first, inverse, counts = np.unique(flat, return_index=True, return_inverse=True, return_counts=True,
                                              equal_nan=False)
        return first.astype(np.intp), inverse.astype(np.intp).reshape(x.shape), counts.astype(np.intp)
    nan = [bool(v != v) for v in flat]
    order = sorted((i for i in range(flat.size) if not nan[i]), key=lambda i: flat[i])  # (stable: ties in order)
    first, counts, inverse = [], [], np.empty(flat.size, dtype=np.intp)
    for i in order:
        if first and flat[i] == flat[first[-1]]:
            counts[-1] += 1
        else:
            first.append(i)
            counts.append(1)
        inverse[i] = len(first) - 1
    for i in (i for i in range(flat.size) if nan[i]):
        first.append(i)
        counts.append(1)
        inverse[i] = len(first) - 1
    return np.array(first, dtype=np.intp), inverse.reshape(x.shape), np.array(counts, dtype=np.intp)


def _isin(x1, x2, invert=False):
    """Whether each entry of x1 equals some entry of x2 (``==``: a NaN is in nothing), x1's shape."""
    x1, x2 = np.asarray(x1), np.asarray(x2)
    if x1.dtype != object and x2.dtype != object:
        return np.isin(x1, x2, invert=invert)
    members = list(x2.reshape(-1))
    found = np.array([any(bool(a == b) for b in members) for a in x1.reshape(-1)], dtype=bool).reshape(x1.shape)
    return ~found if invert else found


def _unary(name, numpy_fn, mp_fn, sympy_fn, **kw):
    defprim(name, "x", kind="constant", numpy=numpy_fn, complex=_real(numpy_fn), mpmath=_lift(mp_fn),
            sympy=_lift(sympy_fn), domain=ANY, **kw)


def _predicate(name, numpy_fn, mp_fn):
    defprim(name, "x", kind="constant", numpy=numpy_fn, complex=numpy_fn, mpmath=_lift(mp_fn, dtype=bool),
            sympy=lambda x: np.zeros(np.shape(x), dtype=bool) if name != "isfinite" else np.ones(np.shape(x), bool),
            domain=ANY)


def _compare(name, numpy_fn, op):
    defprim(name, "x y", kind="constant", numpy=numpy_fn, complex=_real(numpy_fn), mpmath=OBJECT,
            sympy=_sympy_compare(op), domain=PAIRS)


def _arg(name, numpy_fn):
    defprim(name, "x", kind="constant", params={"axis": None, "keepdims": False},
            numpy=lambda x, axis=None, keepdims=False: numpy_fn(x, axis=axis, keepdims=keepdims),
            complex=_real(lambda x, axis=None, keepdims=False: numpy_fn(x, axis=axis, keepdims=keepdims)),
            mpmath=OBJECT, sympy=OBJECT, domain=Domain(shapes=(((4,),), ((2, 3),)), params=({}, {"axis": 0})))


# fmt: off
_unary("sign", np.sign, mpmath.sign, held("sign"), convention="sign(0) = 0")
_unary("floor", np.floor, mpmath.floor, held("floor"))
_unary("ceil", np.ceil, mpmath.ceil, held("ceiling"))
_unary("trunc", np.trunc, lambda v: mpmath.floor(v) if v >= 0 else mpmath.ceil(v), lambda v: held("sign")(v) * held("floor")(held("Abs")(v)))
_unary("round", np.round, mpmath.nint, lambda v: v.round() if hasattr(v, "round") else round(v), convention="ties to even")
_predicate("isfinite", np.isfinite, mpmath.isfinite)
_predicate("isnan", np.isnan, mpmath.isnan)
_predicate("isinf", np.isinf, mpmath.isinf)
defprim("signbit", "x", kind="constant", numpy=np.signbit, complex=_real(np.signbit),
        mpmath=_lift(lambda v: v < 0 or (v == 0 and str(v).startswith("-")), dtype=bool),
        sympy=_lift(lambda v: bool(v < 0), dtype=bool), domain=ANY)
_compare("equal", np.equal, lambda a, b: a == b)
_compare("not_equal", np.not_equal, lambda a, b: a != b)
_compare("less", np.less, lambda a, b: a < b)
_compare("less_equal", np.less_equal, lambda a, b: a <= b)
_compare("greater", np.greater, lambda a, b: a > b)
_compare("greater_equal", np.greater_equal, lambda a, b: a >= b)
_arg("argmax", np.argmax)
_arg("argmin", np.argmin)
defprim("argsort", "x", kind="constant", params={"axis": -1, "descending": False, "stable": True}, numpy=_argsort,
        complex=_real(_argsort), mpmath=OBJECT, sympy=OBJECT, convention="stable: ties keep their order (descending too)",
        domain=Domain(shapes=(((4,),), ((2, 3),)), params=({}, {"descending": True})))
for _name, _fn in (("all", np.all), ("any", np.any), ("count_nonzero", np.count_nonzero)):
    defprim(_name, "x", kind="constant", params={"axis": None, "keepdims": False}, numpy=_of_truths(_fn),
            complex=_real(_of_truths(_fn)), mpmath=_of_truths(_fn), sympy=_of_truths(_fn), convention="NaN counts as true",
            domain=Domain(shapes=(((4,),), ((2, 3),)), params=({}, {"axis": 0, "keepdims": True})))
defprim("floor_divide", "x y", kind="constant", numpy=np.floor_divide, complex=_real(np.floor_divide),
        mpmath=_lift(lambda a, b: mpmath.floor(a / b), 2), sympy=_lift(lambda a, b: held("floor")(a / b), 2),
        domain=Domain(low=(-3.0, 0.5), high=(3.0, 2.0), shapes=(((3,), (3,)),)))
defprim("searchsorted", "x y", kind="constant", params={"side": "left"},
        numpy=lambda x, y, side="left": np.searchsorted(x, y, side=side),
        complex=_real(lambda x, y, side="left": np.searchsorted(x, y, side=side)), mpmath=OBJECT, sympy=OBJECT,
        convention="x sorted ascending; side='left' puts a value equal to an entry before it",
        domain=Domain(shapes=(((4,), (3,)),), params=({}, {"side": "right"}), matrix="sorted"))
defprim("logical_not", "x", kind="constant", numpy=np.logical_not, complex=np.logical_not,
        mpmath=lambda x: np.logical_not(_truth(x)), sympy=lambda x: np.logical_not(_truth(x)), domain=ANY)
for _name, _fn in (("logical_and", np.logical_and), ("logical_or", np.logical_or), ("logical_xor", np.logical_xor)):
    defprim(_name, "x y", kind="constant", numpy=_fn, complex=_fn, mpmath=lambda x, y, fn=_fn: fn(_truth(x), _truth(y)),
            sympy=lambda x, y, fn=_fn: fn(_truth(x), _truth(y)), domain=PAIRS)
defprim("nonzero_indices", "x", kind="constant", numpy=_nonzero_indices, complex=_real(_nonzero_indices), mpmath=OBJECT,
        sympy=OBJECT, convention="NaN counts as nonzero; row-major order; nonzero(x) is the tuple of the rows",
        domain=ANY)  # (no zeros drawn: a batch's members must keep one shape; tests/test_array_api_sets.py has them)
_UNIQUE = Domain(shapes=(((6,),), ((2, 3),), ((3, 4),)), integer=True)
_UNIQUE_CONVENTION = "ascending distinct values; each NaN distinct (last, in order); -0.0 == 0.0"
for _name, _part in (("unique_first_indices", 0), ("unique_inverse_indices", 1), ("unique_value_counts", 2)):
    _fn = (lambda x, part=_part: _unique_parts(x)[part])
    defprim(_name, "x", kind="constant", numpy=_fn, complex=_real(_fn), mpmath=OBJECT, sympy=OBJECT,
            convention=_UNIQUE_CONVENTION + ("; the first occurrence's index, in row-major order" if _part == 0 else ""),
            domain=_UNIQUE)
defprim("isin", "x1 x2", kind="constant", params={"invert": False}, numpy=_isin, complex=_real(_isin), mpmath=OBJECT,
        sympy=OBJECT, convention="equality is ==: a NaN is in no array",
        domain=Domain(shapes=(((4,), (3,)), ((2, 3), (5,))), params=({}, {"invert": True}), integer=True))
# fmt: on
