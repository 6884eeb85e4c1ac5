"""The Python operators of a trace whose namespace is ``self.ns`` (forward-mode duals, batched tangents), and the
array API's array-object methods that every trace shares (tape arrays too)."""
from __future__ import annotations

import math

from ..dispatch import namespace

__all__ = ["NamespaceOperators", "ArrayObject"]


def _dropped(kind: str):
    def refuse(self):
        raise TypeError(f"{kind}() of a traced array would drop it from the trace and silently zero its derivative; "
                        f"keep it an array (xp.floor, xp.astype for integer data), or take the plain value outside "
                        f"the function being differentiated")
    return refuse


class ArrayObject:
    """The array API's array object beyond arithmetic: ``__array_namespace__``, ``//`` and ``%``, ``size``, ``mT``,
    ``device`` and ``to_device``; ``int()``, ``complex()`` and ``operator.index`` are refused, as ``float()`` is,
    since each would drop the trace.  (Bitwise operators take integer data, which is never traced: Python's
    TypeError stands.)"""

    __slots__ = ()

    def __array_namespace__(self, api_version=None):
        return namespace(self)

    def __floordiv__(self, o): return namespace(self).floor_divide(self, o)
    def __rfloordiv__(self, o): return namespace(self).floor_divide(o, self)
    def __mod__(self, o): return namespace(self).remainder(self, o)
    def __rmod__(self, o): return namespace(self).remainder(o, self)

    __float__ = _dropped("float")
    __int__ = _dropped("int")
    __index__ = _dropped("operator.index")
    __complex__ = _dropped("complex")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def mT(self):
        return namespace(self).matrix_transpose(self)

    @property
    def device(self):
        return getattr(self._inner, "device", "cpu")

    def to_device(self, device, /, *, stream=None):
        """The array itself on its own device; a trace cannot move (its tape holds the values where they are)."""
        if device == self.device:
            return self
        raise ValueError(f"to_device: a traced array stays on its device ({self.device!r}); move the inputs to "
                         f"{device!r} before differentiating")


class NamespaceOperators(ArrayObject):
    """Arithmetic, ``@``, indexing, ``.T``, ``.reshape`` and ``.sum`` through ``self.ns``; a subclass gives
    ``shape``, ``ns`` and its comparisons."""

    __slots__ = ()
    __array_priority__ = 1000  # CuPy (and numpy's legacy rule) hand a mixed operator to our reflected one
    __array_ufunc__ = None  # numpy defers to the reflected operators below

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def T(self):
        return self.ns.permute_dims(self, tuple(range(self.ndim))[::-1])

    def __add__(self, o): return self.ns.add(self, o)
    def __radd__(self, o): return self.ns.add(o, self)
    def __sub__(self, o): return self.ns.subtract(self, o)
    def __rsub__(self, o): return self.ns.subtract(o, self)
    def __mul__(self, o): return self.ns.multiply(self, o)
    def __rmul__(self, o): return self.ns.multiply(o, self)
    def __truediv__(self, o): return self.ns.divide(self, o)
    def __rtruediv__(self, o): return self.ns.divide(o, self)
    def __matmul__(self, o): return self.ns.matmul(self, o)
    def __rmatmul__(self, o): return self.ns.matmul(o, self)
    def __pow__(self, o): return self.ns.pow(self, o)
    def __rpow__(self, o): return self.ns.pow(o, self)
    def __neg__(self): return self.ns.negative(self)
    def __pos__(self): return self
    def __abs__(self): return self.ns.abs(self)
    def __getitem__(self, index): return self.ns.getitem(self, index)
    def reshape(self, *shape): return self.ns.reshape(self, shape[0] if len(shape) == 1 else shape)
    def sum(self, axis=None, keepdims=False): return self.ns.sum(self, axis=axis, keepdims=keepdims)
