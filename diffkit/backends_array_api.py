"""Namespaces for any array-API library (array-api-strict, CuPy ...), generated from the same primitive table.

A primitive runs on such arrays by its array-API name (the table's names are
the standard's: ``asin``, ``permute_dims``, ``concat``, ``pow`` ...), through
the library's own namespace (``array_api_compat.array_namespace``), with the
small adapters below where numpy's conventions differ (``axis=None`` scans the
flattened array, ``squeeze`` without an axis, Python scalars in ``where``).
What the standard lacks is composed from it where that is as accurate:
numpy-style gathers and scatters (:mod:`diffkit.array_api_index`), ``einsum``
(:mod:`diffkit.array_api_einsum`), ``solve_triangular`` (``linalg.solve`` of
the triangle), ``xlogy``, ``exp2``, ``cbrt``.  The special functions (erf,
erfc, lgamma, digamma, polygamma) are declared unavailable, naming the op,
the library and the reason.  There is one namespace per library and device;
its array makers default to that device.  No value reaches numpy:
array-api-strict checks it in the tests, on a simulated device whose arrays
refuse numpy (constant data written as numpy arrays joins the values' device).

>>> import pytest; strict = pytest.importorskip("array_api_strict")
>>> import diffkit as dk
>>> xp = dk.namespace(strict.asarray([1.0, 8.0]))
>>> xp.cbrt(strict.asarray([-8.0, 27.0]))
Array([-2.,  3.], dtype=array_api_strict.float64)
>>> xp.erf(strict.asarray([0.5]))
Traceback (most recent call last):
...
NotImplementedError: op 'erf' is not available in the array_api_strict backend: erf: it is not in the Python array API standard, so this array library need not have it; compute it on NumPy arrays (diffkit.array_api.to_host, then from_host) or compose it from the standard's functions
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .array_api import device_of
from .array_api_einsum import einsum
from .array_api_index import gather, index_add, index_set
from .backends import Namespace, _refusal
from .dispatch import register_backend
from .primitives import Unsupported

__all__ = ["array_api_namespace", "is_array_api"]

_NOT_STANDARD = "it is not in the Python array API standard, so this array library need not have it"


def _flat_axis(fn):
    def run(x, axis=None, **kw):
        lib = _lib_of(x)
        return fn(lib)(lib.reshape(x, (-1,)) if axis is None else x, axis=0 if axis is None else axis, **kw)
    return run


def _lib_of(x):
    import array_api_compat
    return array_api_compat.array_namespace(x)


def _squeeze(lib):
    def run(x, axis=None):
        if axis is None:
            axis = tuple(i for i, n in enumerate(x.shape) if n == 1)
        return lib.squeeze(x, axis=axis)
    return run


def _where(lib):
    def run(c, x, y):
        like = x if hasattr(x, "shape") else y if hasattr(y, "shape") else None
        dtype, device = (lib.float64, device_of(c)) if like is None else (like.dtype, device_of(like))  # (two numbers:
        as_array = (lambda v: v if hasattr(v, "shape") else lib.asarray(v, dtype=dtype, device=device))  # c's place)
        return lib.where(lib.asarray(c, device=device), as_array(x), as_array(y))
    return run


def _updated(lib, add: bool):
    """``xp.at(x)[index].add(v)`` / ``.set(v)``: any numpy-style index; repeated indices add (``np.add.at``)."""
    return lambda x, v, index: (index_add if add else index_set)(x, index, v)


def _tri(lib, lower: bool):
    def run(x, k=0):
        n, m = x.shape[-2:]
        i = lib.reshape(lib.arange(n, device=device_of(x)), (n, 1))
        j = lib.reshape(lib.arange(m, device=device_of(x)), (1, m))
        keep = (j - i <= k) if lower else (j - i >= k)
        return lib.where(keep, x, lib.zeros_like(x))
    return run


def _cholesky(lib):
    return lambda x, upper=False: lib.linalg.cholesky(x, upper=upper)


def _solve_triangular(lib):
    """scipy's solve_triangular (only the named triangle of x is read) as the standard's ``linalg.solve`` of
    that triangle: a backward-stable LU solve, not substitution, so it agrees with SciPy to cond(x) ulps."""
    triangles = {True: _tri(lib, True), False: _tri(lib, False)}
    return lambda x, y, lower=False: lib.linalg.solve(triangles[bool(lower)](x), y)


def _column_signs(lib, V):
    """+1 or -1 per column: the sign of its entry of largest magnitude (the decompositions' convention)."""
    picked = lib.take_along_axis(V, lib.argmax(lib.abs(V), axis=-2, keepdims=True), axis=-2)
    return lib.where(picked < 0, -lib.ones_like(picked), lib.ones_like(picked))


def _eigvecsh(lib):
    def run(x):
        V = lib.linalg.eigh(x).eigenvectors
        return V * _column_signs(lib, V)
    return run


def _svd_part(lib, k: int):
    def run(x):
        U, _, Vh = lib.linalg.svd(x, full_matrices=False)
        signs = _column_signs(lib, U)
        return U * signs if k == 0 else Vh * lib.matrix_transpose(signs)
    return run


def _qr_part(lib, k: int):
    def run(x):
        Q, R = lib.linalg.qr(x)
        d = lib.linalg.diagonal(R)
        d = lib.where(d < 0, -lib.ones_like(d), lib.ones_like(d))
        return Q * lib.expand_dims(d, axis=-2) if k == 0 else R * lib.expand_dims(d, axis=-1)
    return run


# --- functions outside the standard, composed from it where that is as accurate as the library's own ------------

def _xlogy(lib):
    """scipy's xlogy: 0 where x == 0 (unless y is nan), else x * log(y): the same two operations."""
    def run(x, y):
        zero = lib.logical_and(x == 0, lib.logical_not(lib.isnan(y)))
        return lib.where(zero, lib.zeros_like(x * y), x * lib.log(y))
    return run


def _exp2(lib):
    """2 ** x through pow (correctly rounded in practice; numpy's exp2 may differ by one ulp)."""
    return lambda x: lib.pow(lib.asarray(2.0, dtype=x.dtype, device=device_of(x)), x)


def _cbrt(lib):
    """The real cube root: |x| ** (1/3) with its sign, then one Newton step written as a correction,
    y + (x / y^2 - y) / 3, which neither overflows nor underflows (1/3 is not exact in binary, so the power
    alone is off by up to ~|log x| 1e-17 relative).  0, inf and nan pass through (-0.0 stays -0.0)."""
    def run(x):
        y = lib.sign(x) * lib.pow(lib.abs(x), 1.0 / 3.0)
        plain = lib.logical_and(y != 0, lib.isfinite(y))
        safe = lib.where(plain, y, lib.ones_like(y))
        return lib.where(plain, safe + (x / (safe * safe) - safe) / 3.0, x)
    return run


def _logical(lib, name: str):
    """numpy's logical ops read any number's truth (x != 0); the standard's take booleans only."""
    fn = getattr(lib, name)
    truth = (lambda v: v if not hasattr(v, "dtype") or v.dtype == lib.bool else v != 0)
    return lambda *xs: fn(*[truth(x) for x in xs])


def _nonzero_indices(lib):
    """numpy's (ndim, k) array of indices: the standard's nonzero tuple, stacked (a NaN is nonzero there too)."""
    def run(x):
        if x.ndim == 0:
            raise ValueError("nonzero: x has no axes; the array API refuses nonzero of a 0-d array (reshape it to "
                             "(1,) first)")
        return lib.stack(list(lib.nonzero(x)), axis=0)  # (one row per axis: at least one)
    return run


def _unique_part(lib, part: str):
    """A part of the standard's ``unique_all`` (first occurrences, each NaN distinct), with the distinct values put
    in ascending order (the standard leaves their order to the library) and inverse_indices in x's shape."""
    def run(x):
        u = lib.unique_all(x)
        order = lib.argsort(u.values, stable=True)
        if part == "indices":
            return lib.take(u.indices, order)
        if part == "counts":
            return lib.take(u.counts, order)
        rank = lib.argsort(order, stable=True)  # (where each old place went)
        return lib.reshape(lib.take(rank, lib.reshape(u.inverse_indices, (-1,))), x.shape)
    return run


def _isin(lib):
    """The standard's isin takes integers only: other dtypes (a trace's float64) compare every pair, an
    (x1.size, x2.size) table (``==``: a NaN is in nothing)."""
    def run(x1, x2, invert=False):
        dtypes = (getattr(x1, "dtype", None), getattr(x2, "dtype", None))
        if all(d is not None and lib.isdtype(d, "integral") for d in dtypes) and hasattr(lib, "isin"):
            return lib.isin(x1, x2, invert=invert)
        like = x1 if hasattr(x1, "shape") else x2
        x1, x2 = (v if hasattr(v, "shape") else lib.asarray(v, dtype=like.dtype, device=device_of(like))
                  for v in (x1, x2))
        found = lib.any(lib.expand_dims(x1, axis=-1) == lib.reshape(x2, (-1,)), axis=-1)
        return lib.logical_not(found) if invert else found
    return run


FORMS: dict[str, Callable[[Any], Callable]] = {
    **{name: (lambda lib, name=name: _logical(lib, name)) for name in ("logical_not", "logical_and", "logical_or",
                                                                         "logical_xor")},
    "permute_dims": lambda lib: lambda x, axes=None: lib.permute_dims(x, tuple(range(x.ndim))[::-1] if axes is None
                                                                      else axes),
    "swapaxes": lambda lib: lambda x, axis1=0, axis2=1: lib.permute_dims(x, _swapped(x.ndim, axis1, axis2)),
    "squeeze": _squeeze,
    "moveaxis": lambda lib: lambda x, source=0, destination=-1: lib.moveaxis(x, source, destination),
    "repeat": lambda lib: lambda x, repeats=1, axis=None: lib.repeat(lib.reshape(x, (-1,)) if axis is None else x,
                                                                     repeats, axis=0 if axis is None else axis),
    "tile": lambda lib: lambda x, reps: lib.tile(x, reps),
    "concat": lambda lib: lambda *xs, axis=0: lib.concat(list(xs), axis=axis),
    "stack": lambda lib: lambda *xs, axis=0: lib.stack(list(xs), axis=axis),
    "getitem": lambda lib: gather,
    "take": lambda lib: lambda x, indices, axis=None: lib.take(lib.reshape(x, (-1,)) if axis is None else x,
                                                               lib.asarray(indices, device=device_of(x)),
                                                               axis=0 if axis is None else axis),
    "at_set": lambda lib: _updated(lib, add=False),
    "at_add": lambda lib: _updated(lib, add=True),
    "where": _where,
    "cumulative_sum": lambda lib: _flat_axis(lambda l: l.cumulative_sum),
    "cumprod": lambda lib: _flat_axis(lambda l: l.cumulative_prod),
    "diagonal": lambda lib: lambda x, offset=0: lib.linalg.diagonal(x, offset=offset),
    "tril": lambda lib: _tri(lib, True),
    "triu": lambda lib: _tri(lib, False),
    "det": lambda lib: lib.linalg.det,
    "logabsdet": lambda lib: lambda x: lib.linalg.slogdet(x)[1],
    "inv": lambda lib: lib.linalg.inv,
    "solve": lambda lib: lib.linalg.solve,
    "cholesky": _cholesky,
    "eigvalsh": lambda lib: lib.linalg.eigvalsh,
    "eigvecsh": _eigvecsh,
    "svdvals": lambda lib: lib.linalg.svdvals,
    "svd_u": lambda lib: _svd_part(lib, 0),
    "svd_vh": lambda lib: _svd_part(lib, 2),
    "qr_q": lambda lib: _qr_part(lib, 0),
    "qr_r": lambda lib: _qr_part(lib, 1),
    "solve_triangular": _solve_triangular,
    "einsum": lambda lib: lambda *xs, subscripts: einsum(lib, subscripts, *xs),
    "xlogy": _xlogy,
    "exp2": _exp2,
    "cbrt": _cbrt,
    "vector_norm": lambda lib: lambda x, axis=None, keepdims=False: lib.linalg.vector_norm(x, axis=axis,
                                                                                           keepdims=keepdims),
    "argsort": lambda lib: lambda x, axis=-1, descending=False, stable=True: lib.argsort(x, axis=axis,
                                                                                descending=descending, stable=True),
    "clip": lambda lib: lambda x, min=None, max=None: lib.clip(x, min=min, max=max),
    "nonzero_indices": _nonzero_indices,
    "unique_first_indices": lambda lib: _unique_part(lib, "indices"),
    "unique_inverse_indices": lambda lib: _unique_part(lib, "inverse"),
    "unique_value_counts": lambda lib: _unique_part(lib, "counts"),
    "isin": _isin,
}


def _swapped(ndim, a, b):
    axes = list(range(ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return tuple(axes)


def _forward(prim, lib) -> tuple[Callable, Any]:
    fn, reason = _library_forward(prim, lib)
    if reason is not None:
        return fn, reason

    def run(*inputs, **params):  # constant data written as numpy arrays join the library's arrays, on their device
        if any(isinstance(x, np.ndarray) for x in inputs):
            on = _device_of(inputs)
            inputs = [lib.asarray(x, device=on) if isinstance(x, np.ndarray) else x for x in inputs]
        return fn(*inputs, **params)
    return run, None


def _device_of(values) -> Any:
    return next((device_of(v) for v in values if hasattr(v, "__array_namespace__") and not isinstance(v, np.ndarray)),
                None)


def _library_forward(prim, lib) -> tuple[Callable, Any]:
    if prim.name in FORMS:
        try:
            return FORMS[prim.name](lib), None
        except AttributeError:
            reason = Unsupported(f"{lib.__name__} lacks a function this op needs ({_NOT_STANDARD})")
            return _refusal(prim, lib.__name__, reason), reason
    numpy_impl = prim.impls["numpy"]
    if getattr(numpy_impl, "__module__", "") == "diffkit.formulas" or prim.residual:
        return numpy_impl, None  # fused forms and forwards with a residual: written against xp already
    fn = getattr(lib, prim.name, None)
    if fn is None:
        reason = Unsupported(f"{prim.name}: {_NOT_STANDARD}; compute it on NumPy arrays (diffkit.array_api.to_host, "
                             f"then from_host) or compose it from the standard's functions")
        return _refusal(prim, lib.__name__, reason), reason
    return fn, None


_NAMESPACES: dict = {}
_CONSTANTS = ("pi", "e", "inf", "nan", "newaxis", "float64", "float32", "int64", "bool", "zeros_like", "ones_like",
              "full_like", "astype", "from_dlpack", "__array_namespace_info__")
_MAKERS = ("zeros", "ones", "full", "empty", "eye", "arange", "linspace", "asarray")  # they take device=


def array_api_namespace(lib: Any, device: Any = None) -> Namespace:
    """The diffkit namespace over the array-API namespace ``lib``, one per library and device.

    Its array makers (``zeros``, ``asarray``, ``arange`` ...) make arrays on ``device`` unless told otherwise,
    so that a rule's ``xp.zeros(shape)`` or ``xp.asarray(2.0)`` lands beside the values (a GPU's, or one of
    array-api-strict's simulated devices, which refuse to mix).
    """
    key = (id(lib), str(device))
    ns = _NAMESPACES.get(key)
    if ns is None:
        consts = {n: getattr(lib, n) for n in _CONSTANTS if hasattr(lib, n)}
        consts.update({n: _on(getattr(lib, n), device) for n in _MAKERS if hasattr(lib, n)})
        ns = Namespace(f"array_api:{lib.__name__}", "array_api", lambda prim: _forward(prim, lib), consts)
        ns.to_float = lambda mask: lib.astype(mask, lib.float64)
        ns.convert = lambda v: consts["asarray"](v) if isinstance(v, np.ndarray) else v
        ns.scatter_add = _scatter_add(lib, consts["zeros"])
        ns.library, ns.device = lib, device
        _NAMESPACES[key] = ns
    return ns


def _on(make: Callable, device: Any) -> Callable:
    if device is None:
        return make

    def made(*args, **kwargs):
        kwargs.setdefault("device", device)
        return make(*args, **kwargs)
    made.__name__ = getattr(make, "__name__", "make")
    return made


def _scatter_add(lib, zeros):
    def scatter_add(buf, owned, shape, index, c):
        """The tape's sweep at ``x[index]``: ``c`` added into x's gradient (repeated indices add up)."""
        base = zeros(shape, dtype=getattr(c, "dtype", None)) if buf is None else buf  # (c: the seed 1.0, maybe)
        return index_add(base, index, c), False
    return scatter_add


def is_array_api(x: Any) -> bool:
    """An array of an array-API library other than numpy (numpy float arrays get diffkit's numpy namespace)."""
    return hasattr(x, "__array_namespace__") and type(x).__module__.split(".")[0] not in ("numpy", "diffkit")


def namespace_of(x: Any) -> Namespace:
    return array_api_namespace(_lib_of(x), device_of(x))


register_backend("array_api", is_array_api, loader=namespace_of)
