"""Array-API helpers: the namespace of any array library's values, and host copies for the mpmath referee.

Rules, forwards and stencils take ``xp`` from their values (:func:`array_namespace_of`, through
``array_api_compat.array_namespace``), so the same code runs on NumPy, CuPy (a GPU) and ``array-api-strict``
(the standard's checker, which refuses every call outside the standard).  mpmath works on Python numbers:
:func:`to_host` gives it a NumPy copy, :func:`from_host` moves a host result back beside the values.

>>> import numpy as np
>>> xp = array_namespace_of(np.ones(3))
>>> xp.__name__
'array_api_compat.numpy'
>>> to_host(xp.asarray([1.0, 2.0])).tolist()
[1.0, 2.0]
>>> from_host(np.array([3.0]), like=np.ones(2)).tolist()
[3.0]
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["ArrayAPIError", "array_namespace_of", "device_of", "to_host", "from_host", "library_of", "INSTALL_HINTS"]

# The top-level module of an array's type -> what to install for it (the extras of pyproject.toml).
INSTALL_HINTS = {
    "cupy": "CuPy arrays need CuPy and array-api-compat: pip install 'diffkit[gpu]' (CUDA 12; see cupy.dev for "
            "other CUDA versions)",
    "array_api_strict": "array-api-strict arrays need array-api-compat: pip install 'diffkit[array-api]'",
    "numpy": "pip install 'diffkit[array-api]' (array-api-compat)",
    "torch": "PyTorch tensors need array-api-compat: pip install 'diffkit[peers]'",
    "jax": "JAX arrays need array-api-compat: pip install 'diffkit[peers]'",
}
SUPPORTED = "NumPy, CuPy, array-api-strict, and any library array_api_compat knows (PyTorch, JAX, Dask, ndonnx)"


class ArrayAPIError(TypeError):
    """Values whose array namespace cannot be found; the message names the library and what to install."""


def library_of(x: Any) -> str:
    """The top-level module of ``x``'s type: ``'numpy'``, ``'cupy'``, ``'array_api_strict'`` ...

    >>> library_of(np.zeros(2)), library_of(1.5)
    ('numpy', 'builtins')
    """
    return type(x).__module__.split(".")[0]


def _compat() -> ModuleType | None:
    try:
        import array_api_compat
    except ImportError:
        return None
    return array_api_compat


def array_namespace_of(*values: Any) -> ModuleType:
    """The array-API namespace of ``values`` (Python numbers among them are ignored).

    >>> array_namespace_of(np.ones(2), 2.0).__name__
    'array_api_compat.numpy'
    >>> array_namespace_of([1.0, 2.0])
    Traceback (most recent call last):
    ...
    diffkit.array_api.ArrayAPIError: no array among the values (list): give NumPy, CuPy or array-api-strict arrays
    """
    arrays = [v for v in values if not isinstance(v, (bool, int, float, complex))]
    if not arrays or all(isinstance(v, (list, tuple)) for v in arrays):
        kinds = ", ".join(sorted({type(v).__name__ for v in values})) or "none"
        raise ArrayAPIError(f"no array among the values ({kinds}): give NumPy, CuPy or array-api-strict arrays")
    compat = _compat()
    libraries = sorted({library_of(v) for v in arrays})
    if compat is None:
        raise ArrayAPIError(f"finding the array namespace of {', '.join(libraries)} values needs array-api-compat; "
                            + "; ".join(INSTALL_HINTS.get(lib, "pip install array-api-compat") for lib in libraries))
    try:
        return compat.array_namespace(*arrays)
    except TypeError as err:
        if len(libraries) > 1:
            raise ArrayAPIError(f"values from different array libraries ({', '.join(libraries)}) cannot be mixed: "
                                f"move them to one (e.g. xp.asarray, or diffkit.array_api.from_host)") from None
        kind = f"{type(arrays[0]).__module__}.{type(arrays[0]).__qualname__}"
        hint = INSTALL_HINTS.get(libraries[0])
        if libraries[0] == "cupy" and not _importable("cupy"):
            raise ArrayAPIError(f"a CuPy array ({kind}) but CuPy does not import here; {hint}") from None
        raise ArrayAPIError(f"{kind} is not an array-API array ({err}); supported: {SUPPORTED}"
                            + (f"; {hint}" if hint else "")) from None


def device_of(x: Any) -> Any:
    """The device of ``x`` (``array_api_compat.device``), or None where it cannot say (a JAX tracer): the
    ``device=`` to pass when making arrays beside x (None: the library's default).

    >>> device_of(np.ones(2))
    'cpu'
    """
    try:
        from array_api_compat import device
        return device(x)
    except (AttributeError, TypeError, ValueError, ImportError):
        return None


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy of ``x`` (any device): what the mpmath referee and the CSV writers read.

    >>> a = np.arange(3.0); b = to_host(a); b[0] = 9.0; a[0]
    np.float64(0.0)
    """
    if isinstance(x, np.ndarray):
        return x.copy()
    library = library_of(x)
    if library == "cupy":
        return x.get()  # device -> host; from_dlpack cannot cross devices
    if library == "torch":
        return x.detach().cpu().numpy().copy()
    if library == "array_api_strict" and str(x.device) != "CPU_DEVICE":  # the checker's simulated devices
        import array_api_strict

        x = x.to_device(array_api_strict.Device("CPU_DEVICE"))
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x).copy()
        except (TypeError, RuntimeError, BufferError):
            pass
    return np.array(x, copy=True)


def from_host(arr: np.ndarray, like: Any) -> Any:
    """``arr`` (host data) as an array of ``like``'s library, on ``like``'s device.

    >>> from_host(np.array([1.0, 2.0]), like=np.zeros(1)).dtype
    dtype('float64')
    >>> import pytest; strict = pytest.importorskip("array_api_strict")
    >>> from_host(np.float64(2.0), like=strict.asarray([0.0])).shape  # a 0-d array stays 0-d
    ()
    """
    xp = array_namespace_of(like)
    if isinstance(like, np.ndarray):
        return np.asarray(arr)
    from array_api_compat import device

    return xp.asarray(np.asarray(arr, order="C"), device=device(like))  # (ascontiguousarray makes 0-d 1-d)
