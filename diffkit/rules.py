"""Every primitive of the reverse-mode tape: its forward and its derivative rule, one line each.

This is the one place where diffkit's calculus lives.  ``grep tanh
diffkit/rules.py`` answers "what is the derivative of tanh".  The mpmath
reference runs these same rules at high precision and then certifies them
against high-precision finite differences (:mod:`diffkit.reference`), so a
wrong line here is caught there.

Vocabulary of a rule's parameters (see :class:`diffkit.tape.Primitive`):
``g`` incoming gradient; ``ans`` forward output; ``x``, ``y``, ``c`` the
inputs as named by the forward; ``x_shape`` an input's shape; ``xp`` the
value namespace (numpy, or mpmath for the reference); any op parameter by
name (``axis``, ``keepdims``, ``p`` ...).  A rule names only what it reads,
and the tape keeps only that alive.

Conventions at kinks (seeds 003 and 004 write relu'(x) = 1 for x >= 0):

* ``relu'(0) = 1`` and ``leaky_relu'(0) = 1``;
* ``abs'(0) = 0`` (the sign function, as numpy's ``sign``);
* ``maximum(x, y)`` / ``minimum`` at a tie send half of ``g`` to each side;
* ``max`` over an axis with tied maxima splits ``g`` equally among them.
"""
from __future__ import annotations

import functools

import numpy as np

from . import formulas
from .tape import Primitive, TArray, apply, getitem, install, reshape_view

PRIMITIVES: dict[str, Primitive] = {}


def defprim(name, forward, *vjps, **kw) -> Primitive:
    PRIMITIVES[name] = Primitive(name, forward, *vjps, **kw)
    return PRIMITIVES[name]


def _expand(g, x_shape, axis, keepdims):
    """Broadcast a reduction's gradient back to the input's shape (a view, no copy)."""
    if axis is not None and not keepdims:
        axes = {a % len(x_shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
        g = np.reshape(g, tuple(1 if i in axes else n for i, n in enumerate(x_shape)))
    return broadcast_view(g, x_shape)


def broadcast_view(g, shape):
    """``np.broadcast_to(g, shape)`` for a ``g`` known to broadcast: a read-only view, built directly.

    ``np.broadcast_to`` costs ~5 us a call, most of a small reduction's backward
    step; the strided view below costs ~1 us.  Object arrays (mpmath) go to numpy.
    """
    g = np.asarray(g)
    if g.dtype == object or not g.flags.c_contiguous:
        return np.broadcast_to(g, shape)
    if g.ndim == 0:
        strides = (0,) * len(shape)
    else:
        lead = len(shape) - g.ndim
        strides = (0,) * lead + tuple([0 if n == 1 else s for n, s in zip(g.shape, g.strides)])
    view = np.ndarray(shape, g.dtype, g, 0, strides)
    view.flags.writeable = False
    return view


def _count(x_shape, axis):
    if axis is None:
        return int(np.prod(x_shape))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([x_shape[a] for a in axes]))


def _tie_weight(xp, a, b):
    """1 where a wins, 1/2 at a tie, 0 where b wins."""
    return (a > b) + 0.5 * (a == b)


def _max_vjp(g, ans, x, axis, keepdims):
    top = ans if (keepdims or axis is None) else np.expand_dims(ans, axis)
    hit = x == top
    return _expand(g, np.shape(x), axis, keepdims) * hit / np.sum(hit, axis=axis, keepdims=True)


def _matmul_x(g, y, x_shape):
    y_ndim = getattr(y, "ndim", 0)  # (np.ndim costs ~0.3 us a call: it is most of a small rule's overhead)
    if len(x_shape) == 2 and y_ndim == 2:  # the common case first: rows times a matrix
        return g @ y.T
    if len(x_shape) == 1 and y_ndim == 1:
        return g * y
    if y_ndim == 1:
        return np.multiply.outer(g, y)
    if len(x_shape) == 1:
        return np.matmul(y, g) if np.ndim(g) == 1 else np.matmul(g, np.swapaxes(y, -1, -2))
    return np.matmul(g, np.swapaxes(y, -1, -2))


def _matmul_y(g, x, y_shape):
    x_ndim = getattr(x, "ndim", 0)
    if x_ndim == 2 and len(y_shape) == 2:
        return x.T @ g
    if x_ndim == 1 and len(y_shape) == 1:
        return g * x
    if x_ndim == 1:
        return np.multiply.outer(x, g)
    return np.matmul(np.swapaxes(x, -1, -2), g)


def _sum_to(g, shape):
    """A bias's gradient: ``g`` summed over its rows.  Other broadcasts are left to the tape's unbroadcast."""
    if getattr(g, "ndim", 0) == 2 and len(shape) == 1 and g.shape[1:] == shape:
        return np.ones(len(g)) @ g  # a BLAS product: half the time of g.sum(0) at 64 x 4, the same additions
    return g


def _split(g, shapes, axis):
    ends = np.cumsum([s[axis] for s in shapes])
    return tuple(np.split(g, ends[:-1], axis=axis))


def _unstack(g, n, axis):
    return tuple(np.take(g, i, axis=axis) for i in range(n))


def _inverse_axes(axes):
    return None if axes is None else tuple(np.argsort(axes))


def _sigmoid_grad(xp, x):
    """sigma'(x) = e / (1 + e)^2 with e = exp(-|x|): exact to rounding at every x.

    The textbook y(1 - y) loses all digits once y rounds to 1 (x > 36.7).
    """
    e = xp.exp(-xp.abs(x))
    return e / ((1 + e) * (1 + e))


def _softmax_from_lse(xp, x, lse):
    """exp(x - logsumexp(x)), with 0 where the whole slice is -inf (no nan from -inf - -inf)."""
    finite = xp.isfinite(lse)
    return xp.where(finite, xp.exp(x - xp.where(finite, lse, 0)), 0)


# fmt: off
# --- arithmetic (broadcasting; the tape sums gradients back to each input's shape)
defprim("add",      lambda xp, x, y: x + y,        lambda g: g,          lambda g: g)
defprim("subtract", lambda xp, x, y: x - y,        lambda g: g,          lambda g: -g)
defprim("multiply", lambda xp, x, y: x * y,        lambda g, y: g * y,   lambda g, x: g * x)
defprim("divide",   lambda xp, x, y: x / y,        lambda g, y: g / y,   lambda g, ans, y: -g * ans / y)
defprim("negative", lambda xp, x: -x,              lambda g: -g)
defprim("power",    lambda xp, x, y: x ** y,
        lambda g, x, y: g * y * x ** (y - 1),      lambda g, ans, x, xp: g * ans * xp.log(x))
defprim("matmul",   lambda xp, x, y: xp.matmul(x, y),
        lambda g, y, x_shape: _matmul_x(g, y, x_shape), lambda g, x, y_shape: _matmul_y(g, x, y_shape))

defprim("affine",   lambda xp, x, w, b: xp.matmul(x, w) + b,   # a dense layer in one node (diffkit.nn.affine)
        lambda g, w, x_shape: _matmul_x(g, w, x_shape), lambda g, x, w_shape: _matmul_y(g, x, w_shape),
        lambda g, b_shape: _sum_to(g, b_shape))

defprim("sum_of_squares", lambda xp, x: formulas.sum_of_squares(x),   # the L2 term (diffkit.nn.sum_of_squares)
        lambda g, x: (2 * g) * x)

# --- elementwise functions
defprim("exp",   lambda xp, x: xp.exp(x),     lambda g, ans: g * ans)
defprim("log",   lambda xp, x: xp.log(x),     lambda g, x: g / x)
defprim("log1p", lambda xp, x: xp.log1p(x),   lambda g, x: g / (1 + x))
defprim("expm1", lambda xp, x: xp.expm1(x),   lambda g, ans: g * (ans + 1))
defprim("sqrt",  lambda xp, x: xp.sqrt(x),    lambda g, ans: g * 0.5 / ans)
defprim("tanh",  lambda xp, x: xp.tanh(x),    lambda g, ans: g * (1 - ans * ans))
defprim("sin",   lambda xp, x: xp.sin(x),     lambda g, x, xp: g * xp.cos(x))
defprim("cos",   lambda xp, x: xp.cos(x),     lambda g, x, xp: -g * xp.sin(x))
defprim("abs",   lambda xp, x: xp.abs(x),     lambda g, x, xp: g * xp.sign(x))
defprim("maximum", lambda xp, x, y: xp.maximum(x, y),
        lambda g, x, y, xp: g * _tie_weight(xp, x, y), lambda g, x, y, xp: g * _tie_weight(xp, y, x))
defprim("minimum", lambda xp, x, y: xp.minimum(x, y),
        lambda g, x, y, xp: g * _tie_weight(xp, y, x), lambda g, x, y, xp: g * _tie_weight(xp, x, y))
defprim("where", lambda xp, c, x, y: xp.where(c, x, y),
        lambda g: None, lambda g, c, xp: xp.where(c, g, 0), lambda g, c, xp: xp.where(c, 0, g))

# --- reductions
defprim("sum",  lambda xp, x, axis=None, keepdims=False: xp.sum(x, axis=axis, keepdims=keepdims),
        lambda g, x_shape, axis, keepdims: _expand(g, x_shape, axis, keepdims))
defprim("mean", lambda xp, x, axis=None, keepdims=False: xp.mean(x, axis=axis, keepdims=keepdims),
        lambda g, x_shape, axis, keepdims: _expand(g, x_shape, axis, keepdims) / _count(x_shape, axis))
defprim("max",  lambda xp, x, axis=None, keepdims=False: xp.max(x, axis=axis, keepdims=keepdims),
        lambda g, ans, x, axis, keepdims: _max_vjp(g, ans, x, axis, keepdims))

# --- structure
defprim("reshape",   lambda xp, x, shape: xp.reshape(x, shape),  lambda g, x_shape: np.reshape(g, x_shape))
defprim("transpose", lambda xp, x, axes=None: xp.transpose(x, axes),
        lambda g, axes: np.transpose(g, _inverse_axes(axes)))
defprim("getitem",   lambda xp, x, index: x[index],               lambda g: g, scatter=True)
defprim("concatenate", lambda xp, *xs, axis=0: xp.concatenate(xs, axis=axis),
        joint=lambda g, xs_shape, axis: _split(g, xs_shape, axis))
defprim("stack",     lambda xp, *xs, axis=0: xp.stack(xs, axis=axis),
        joint=lambda g, xs_shape, axis: _unstack(g, len(xs_shape), axis))

# --- fused activations and costs: forward from diffkit.formulas, exact rule here (issue: stability)
defprim("sigmoid",     lambda xp, x: formulas.sigmoid(x),           lambda g, x, xp: g * _sigmoid_grad(xp, x))
defprim("log_sigmoid", lambda xp, x: formulas.log_sigmoid(x),       lambda g, ans, xp: -g * xp.expm1(ans))
defprim("softplus",    lambda xp, x: formulas.softplus(x),          lambda g, ans, xp: -g * xp.expm1(-ans))
defprim("relu",        lambda xp, x: formulas.relu(x),              lambda g, x: g * (x >= 0))
defprim("leaky_relu",  lambda xp, x, alpha=0.01: formulas.leaky_relu(x, alpha),
        lambda g, x, alpha, xp: g * xp.where(x >= 0, 1.0, alpha))
defprim("logsumexp",   lambda xp, x, axis=-1, keepdims=False: formulas.logsumexp(x, axis, keepdims),
        lambda g, ans, x, axis, keepdims, xp: _expand(g, np.shape(x), axis, keepdims)
        * _softmax_from_lse(xp, x, ans if keepdims else np.expand_dims(ans, axis)))
defprim("softmax",     lambda xp, x, axis=-1: formulas.softmax(x, axis),
        lambda g, ans, axis, xp: ans * (g - xp.sum(g * ans, axis=axis, keepdims=True)))
defprim("log_softmax", lambda xp, x, axis=-1: formulas.log_softmax(x, axis),
        lambda g, ans, axis, xp: g - xp.exp(ans) * xp.sum(g, axis=axis, keepdims=True))
defprim("binary_cross_entropy", lambda xp, z, y: formulas.binary_cross_entropy(z, y),
        lambda g, z, y: formulas.sigmoid_minus(z, y) * (g / formulas.batch_size(z)), lambda g: None)
defprim("softmax_cross_entropy", lambda xp, z, y: formulas.softmax_cross_entropy_parts(z, y),
        lambda g, res, y, z_shape: formulas.softmax_minus(res, y) * (g / formulas.rows(z_shape)),
        lambda g: None, residual=True)
# fmt: on


class TapeNamespace:
    """The namespace handed to functions of tape arrays: every primitive by name.

    Ops the tape lacks raise ``NotImplementedError`` naming the op.
    """

    name = "tape"

    def __init__(self, primitives: dict[str, Primitive]):
        self.fused = {n: self._op(primitives[n]) for n in formulas.FUSED}
        for n, prim in primitives.items():
            if n not in self.fused and not hasattr(type(self), n):  # methods below adapt numpy's signatures
                setattr(self, n, self._op(prim))
        self.pow = self.power
        self.sub = self.subtract
        self.mul = self.multiply
        self.true_divide = self.divide

    @staticmethod
    def _op(prim):
        return functools.partial(apply, prim)  # a C-level call: no extra Python frame per op

    def reshape(self, x, shape):
        if type(shape) is not tuple:
            shape = shape if isinstance(shape, (int, np.integer)) else tuple(shape)
        view = reshape_view(x, shape) if type(x) is TArray else None
        return view if view is not None else apply(PRIMITIVES["reshape"], x, shape=shape)

    def transpose(self, x, axes=None):
        return apply(PRIMITIVES["transpose"], x, axes=None if axes is None else tuple(axes))

    def concatenate(self, arrays, axis=0):
        return apply(PRIMITIVES["concatenate"], *arrays, axis=axis)

    def stack(self, arrays, axis=0):
        return apply(PRIMITIVES["stack"], *arrays, axis=axis)

    def getitem(self, x, index):
        return getitem(PRIMITIVES["getitem"], x, index)

    def where(self, c, x, y):
        return apply(PRIMITIVES["where"], np.asarray(getattr(c, "value", c), dtype=bool), x, y)

    def sign(self, x):
        return np.sign(getattr(x, "value", x))

    def isfinite(self, x):
        return np.isfinite(getattr(x, "value", x))

    def __getattr__(self, op: str):
        if op.startswith("__"):
            raise AttributeError(op)
        if hasattr(np, op):  # constants and array constructors (zeros, pi, float64 ...) are not recorded
            attr = getattr(np, op)
            if not callable(attr) or op in _CONSTRUCTORS:
                return attr
        raise NotImplementedError(
            f"op {op!r} is not available in the tape backend; compose it from the tape's primitives "
            f"(diffkit.rules.PRIMITIVES) or define it with dk.Function"
        )

    def __repr__(self) -> str:
        return "<diffkit namespace 'tape'>"


_CONSTRUCTORS = {"zeros", "ones", "full", "eye", "arange", "linspace", "asarray", "array", "zeros_like", "ones_like",
                 "float64", "int64", "newaxis", "shape", "ndim", "size"}

TAPE = TapeNamespace(PRIMITIVES)
install(TAPE, PRIMITIVES["getitem"])
