"""The Python operators of a trace whose namespace is ``self.ns`` (forward-mode duals, batched tangents)."""
from __future__ import annotations

__all__ = ["NamespaceOperators"]


class NamespaceOperators:
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
