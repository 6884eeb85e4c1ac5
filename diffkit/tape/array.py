"""Tape arrays, and how an op that mixes arrays of several traces picks the one that records it."""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..dispatch import register_tracer, strip
from .native import ArrayFields
from .operators import ArrayObject

__all__ = ["TArray"]


def _comparison(op, name: str):
    def compare(self, other):
        if self.tape.program is None:
            return op(self.value, strip(other))
        return getattr(self.tape.ns, name)(self, other)
    return compare


class Operators:
    """A tape array's arithmetic, ``@`` and indexing, in Python: ``x + y`` is ``x.tape.ns.add(x, y)``.

    The reference, and what runs where the C extension is not built: where it is, the C struct of the fields
    (:mod:`.native`) has the same operators, which come first in TArray's bases and skip a Python frame.
    """

    __slots__ = ()

    def __add__(self, other): return self.tape.ns.add(self, other)
    def __radd__(self, other): return self.tape.ns.add(other, self)
    def __sub__(self, other): return self.tape.ns.subtract(self, other)
    def __rsub__(self, other): return self.tape.ns.subtract(other, self)
    def __mul__(self, other): return self.tape.ns.multiply(self, other)
    def __rmul__(self, other): return self.tape.ns.multiply(other, self)
    def __truediv__(self, other): return self.tape.ns.divide(self, other)
    def __rtruediv__(self, other): return self.tape.ns.divide(other, self)
    def __matmul__(self, other): return self.tape.ns.matmul(self, other)
    def __rmatmul__(self, other): return self.tape.ns.matmul(other, self)
    def __neg__(self): return self.tape.ns.negative(self)
    def __getitem__(self, index): return self.tape.ns.index_op(self, index=index)


class TArray(ArrayFields, Operators, ArrayObject):
    """An array recorded on a tape.  Arithmetic, ``@``, indexing, ``.T`` and the methods below are recorded.

    ``TArray(value, tape, index)``: its fields (a C struct where the extension is built, :mod:`.native`).
    Comparisons return plain boolean arrays: they carry no gradient.
    """

    __slots__ = ()

    @property
    def _level(self) -> int:
        return self.tape.level

    @property
    def _inner(self) -> Any:
        return self.value

    @property
    def shape(self) -> tuple:
        return getattr(self.value, "shape", ())

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self):
        return getattr(self.value, "dtype", np.dtype(object))

    @property
    def T(self) -> "TArray":
        return self.tape.ns.permute_dims(self, tuple(range(self.ndim))[::-1])

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"TArray({self.value!r}, node={self.index})"

    def __float__(self):
        raise TypeError("float() of a tape array would drop it from the tape and silently zero its gradient; "
                        "use .value if you really want the number")

    def __bool__(self) -> bool:
        result = bool(self.value)
        if self.tape.program is not None:  # a branch on a traced value: dk.compile checks it on replay
            self.tape.program.append(("bool", self.index, result))
        return result

    __array_priority__ = 1000  # CuPy (and numpy's legacy rule) hand a mixed operator to our reflected one
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy's operators on (ndarray, tape array) land here: record them; any other numpy call is a mistake
        op = _OPERATOR_UFUNCS.get(ufunc.__name__) if method == "__call__" and not kwargs else None
        if op is None:
            raise TypeError(f"numpy.{ufunc.__name__} was called on a tape array, which numpy cannot record; "
                            f"write xp = dk.namespace(x) and call xp.{_XP_NAME.get(ufunc.__name__, ufunc.__name__)}"
                            f"(...) instead of numpy.{ufunc.__name__}(...)")
        return getattr(self.tape.ns, op)(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func in _INTROSPECTION:  # shape, ndim, size: facts about the array, nothing to record
            return getattr(args[0], func.__name__) if type(args[0]) is TArray else func(*args, **kwargs)
        raise TypeError(f"numpy.{func.__name__} was called on a tape array, which numpy cannot record; write "
                        f"xp = dk.namespace(x) and call xp.{func.__name__}(...) instead")

    def __pow__(self, other): return self.tape.ns.pow(self, other)
    def __rpow__(self, other): return self.tape.ns.pow(other, self)
    def __pos__(self): return self
    def __abs__(self): return self.tape.ns.abs(self)

    def __setitem__(self, index, value):
        raise TypeError("tape arrays are immutable (an in-place write would corrupt the recorded values); "
                        "use the functional update y = xp.at(x)[index].set(value) (or .add(value))")

    def reshape(self, *shape): return self.tape.ns.reshape(self, shape[0] if len(shape) == 1 else shape)
    def sum(self, axis=None, keepdims=False): return self.tape.ns.sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return self.tape.ns.mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return self.tape.ns.max(self, axis=axis, keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return self.tape.ns.min(self, axis=axis, keepdims=keepdims)
    def prod(self, axis=None, keepdims=False): return self.tape.ns.prod(self, axis=axis, keepdims=keepdims)
    def dot(self, other): return self.tape.ns.dot(self, other)
    def ravel(self): return self.tape.ns.reshape(self, (-1,))
    def transpose(self, *axes): return self.tape.ns.transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    def squeeze(self, axis=None): return self.tape.ns.squeeze(self, axis)

    # Comparisons carry no gradient; under dk.compile (tape.program set) they go through the namespace,
    # which notes each one as a guard checked on replay.
    __lt__ = _comparison(operator.lt, "less")
    __le__ = _comparison(operator.le, "less_equal")
    __gt__ = _comparison(operator.gt, "greater")
    __ge__ = _comparison(operator.ge, "greater_equal")
    __eq__ = _comparison(operator.eq, "equal")
    __ne__ = _comparison(operator.ne, "not_equal")
    __hash__ = object.__hash__


register_tracer(TArray, lambda a: a.tape.ns)

_OPERATOR_UFUNCS = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
                    "true_divide": "divide", "matmul": "matmul", "power": "pow", "negative": "negative",
                    "greater": "greater", "less": "less", "greater_equal": "greater_equal",
                    "less_equal": "less_equal", "equal": "equal", "not_equal": "not_equal"}
_INTROSPECTION = (np.shape, np.ndim, np.size)
_XP_NAME = {"absolute": "abs", "arcsin": "asin", "true_divide": "divide"}
