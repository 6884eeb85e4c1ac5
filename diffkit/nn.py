"""Activations and costs for every backend, each in a stable and a naive variant.

Call them on arrays of any backend; they ask :func:`diffkit.namespace` what
to do.  A backend that implements a stable form natively (the tape, with an
exact derivative rule in :mod:`diffkit.primitives.nn`) gets its own version; every
other backend runs the shared formula in :mod:`diffkit.formulas`.
``stable=False`` selects the lectures' naive formula (no fused rule: the tape
differentiates through its decomposition, which is the point of comparing).

>>> import numpy as np, diffkit as dk
>>> float(dk.nn.softplus(np.array(1000.0)))          # naive log(1 + e^1000) would overflow
1000.0
>>> float(dk.nn.sigmoid(np.array(-800.0), stable=False))
0.0
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import formulas as F
from .dispatch import namespace

__all__ = ["affine", "sum_of_squares", "sigmoid", "log_sigmoid", "softplus", "relu", "leaky_relu", "tanh", "identity", "logsumexp",
           "softmax", "log_softmax", "binary_cross_entropy", "softmax_cross_entropy", "half_squared_error",
           "squared_error", "ACTIVATIONS", "COSTS"]


def _dispatch(name: str, stable_formula: Callable, naive_formula: Callable | None, *args, stable=True, **params):
    if not stable and naive_formula is not None:
        return naive_formula(*args, **params)
    xp = namespace(*args)
    if getattr(type(xp), "from_table", False):  # a namespace generated from diffkit's table: the fused primitive
        return getattr(xp, name)(*args, **params)
    return stable_formula(*args, **params)  # a peer's namespace: the peer differentiates the stable formula


def affine(x, w, b):
    """A dense layer on rows, ``x @ w + b`` (``w`` is fan_in x fan_out, as in seed 004).

    On the tape it is one node, whose rules are ``g w^T``, ``x^T g`` and ``g``
    summed over the rows: the layer hand-written backprop computes.

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.affine(np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0)).tolist()
    [[3.0, 4.0, 5.0, 6.0], [3.0, 4.0, 5.0, 6.0]]
    """
    return _dispatch("affine", F.affine, None, x, w, b)


def sum_of_squares(x):
    """The sum of the squares of all entries of ``x``: the L2 term of J(Theta) (seed 000) without its factor.

    On the tape it is one node with rule ``2 g x``.

    >>> import numpy as np, diffkit as dk
    >>> float(dk.nn.sum_of_squares(np.array([[1.0, 2.0], [3.0, 4.0]])))
    30.0
    """
    return _dispatch("sum_of_squares", F.sum_of_squares, None, x)


def sigmoid(x, *, stable: bool = True):
    """sigma(x) = 1 / (1 + e^{-x}).  Stable: exp(-|x|) never overflows; tape rule e/(1+e)^2.

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.sigmoid(np.array([0.0, -800.0])).tolist()
    [0.5, 0.0]
    """
    return _dispatch("sigmoid", F.sigmoid, F.sigmoid_naive, x, stable=stable)


def log_sigmoid(x, *, stable: bool = True):
    """log sigma(x).  Naive log(sigma(x)) gives -inf for x < -745; stable is min(x,0) - log1p(e^{-|x|}).

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.log_sigmoid(np.array([0.0, -800.0])).tolist()       # -log 2, and -800 (naive: -inf)
    [-0.6931471805599453, -800.0]
    """
    return _dispatch("log_sigmoid", F.log_sigmoid, F.log_sigmoid_naive, x, stable=stable)


def softplus(x, *, stable: bool = True):
    """log(1 + e^x).  Naive overflows to inf for x > 709.78; stable is max(x,0) + log1p(e^{-|x|}).

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.softplus(np.array([0.0, 800.0])).tolist()             # log 2, and 800 (naive: inf)
    [0.6931471805599453, 800.0]
    """
    return _dispatch("softplus", F.softplus, F.softplus_naive, x, stable=stable)


def relu(x, *, stable: bool = True):
    """max(x, 0), with relu'(0) = 1 as in seeds 003 and 004.

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.relu(np.array([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
    >>> dk.gradient(lambda t: dk.nn.relu(t[0]), np.array([0.0])).grad.tolist()
    [1.0]
    """
    return _dispatch("relu", F.relu, None, x)


def leaky_relu(x, alpha: float = 0.01, *, stable: bool = True):
    """x for x >= 0, alpha*x below; derivative 1 at 0.

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.leaky_relu(np.array([-2.0, 3.0])).tolist()
    [-0.02, 3.0]
    """
    return _dispatch("leaky_relu", F.leaky_relu, None, x, alpha=alpha)


def tanh(x, *, stable: bool = True):
    """tanh(x).  Naive (e^x - e^-x)/(e^x + e^-x) is nan for |x| > 709.78.  Tape rule sech^2 = 4e/(1+e)^2,
    e = exp(-2|x|): exact at saturation, where 1 - tanh^2 would give 0.

    >>> import numpy as np, diffkit as dk
    >>> float(dk.gradient(lambda t: dk.nn.tanh(t[0]), np.array([20.0])).grad[0])   # sech(20)^2
    1.6993417021166355e-17
    """
    if not stable:
        return F.tanh_naive(x)
    return namespace(x).tanh(x)


def identity(x, *, stable: bool = True):
    """x unchanged (a linear layer).

    >>> import diffkit as dk
    >>> dk.nn.identity(3.0)
    3.0
    """
    return x


def logsumexp(x, axis: int = -1, keepdims: bool = False, *, stable: bool = True):
    """log(sum(exp(x), axis)), by max-shift; an all -inf slice gives -inf with zero gradient.

    >>> import numpy as np, diffkit as dk
    >>> float(dk.nn.logsumexp(np.array([1000.0, 1000.0])))          # 1000 + log 2 (naive: inf)
    1000.6931471805599
    """
    return _dispatch("logsumexp", F.logsumexp, F.logsumexp_naive, x, axis=axis, keepdims=keepdims, stable=stable)


def softmax(x, axis: int = -1, *, stable: bool = True):
    """exp(x) / sum(exp(x)), by max-shift.

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.softmax(np.array([0.0, np.log(3.0)])).round(12).tolist()
    [0.25, 0.75]
    """
    return _dispatch("softmax", F.softmax, F.softmax_naive, x, axis=axis, stable=stable)


def log_softmax(x, axis: int = -1, *, stable: bool = True):
    """x - logsumexp(x).

    >>> import numpy as np, diffkit as dk
    >>> dk.nn.log_softmax(np.array([0.0, 0.0])).tolist()            # -log 2 each
    [-0.6931471805599453, -0.6931471805599453]
    """
    return _dispatch("log_softmax", F.log_softmax, F.log_softmax_naive, x, axis=axis, stable=stable)


def binary_cross_entropy(z, y, *, stable: bool = True):
    """Mean over examples of the K-output cross-entropy of seed 000, from logits ``z``.

    Stable: from logits, max(z,0) - z y + log1p(e^{-|z|}), tape rule (sigma(z) - y)/m.
    Naive: through probabilities h = sigma(z), -[y log h + (1-y) log(1-h)].

    >>> import numpy as np, diffkit as dk
    >>> float(dk.nn.binary_cross_entropy(np.array([[0.0]]), np.array([[1.0]])))   # -log sigma(0) = log 2
    0.6931471805599453
    """
    return _dispatch("binary_cross_entropy", F.binary_cross_entropy, F.binary_cross_entropy_naive, z, y,
                     stable=stable)


def softmax_cross_entropy(z, y, *, stable: bool = True):
    """Mean over examples of -sum_k y_k log softmax(z)_k, from logits; tape rule (y_hat - y)/m (seed 004).

    >>> import numpy as np, diffkit as dk
    >>> float(dk.nn.softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])))   # log 2
    0.6931471805599453
    """
    return _dispatch("softmax_cross_entropy", F.softmax_cross_entropy, F.softmax_cross_entropy_naive, z, y,
                     stable=stable)


def half_squared_error(h, y, *, stable: bool = True):
    """Mean over examples of 1/2 ||h - y||^2 (seed 001).

    >>> import numpy as np, diffkit as dk
    >>> float(dk.nn.half_squared_error(np.array([[1.0, 2.0]]), np.zeros((1, 2))))   # (1 + 4) / 2
    2.5
    """
    xp = namespace(h)
    d = h - y
    return xp.sum(d * d) / (2 * F.batch_size(h))


def squared_error(h, y, *, stable: bool = True):
    """Mean over examples of ||y - h||^2 (seed 004's E = (y - y_hat)^2).

    >>> import numpy as np, diffkit as dk
    >>> float(dk.nn.squared_error(np.array([[1.0, 2.0]]), np.zeros((1, 2))))
    5.0
    """
    xp = namespace(h)
    d = y - h
    return xp.sum(d * d) / F.batch_size(h)


ACTIVATIONS: dict[str, Callable] = {
    "sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu, "softplus": softplus,
    "identity": identity,
}

COSTS: dict[str, Callable] = {
    "half_squared_error": half_squared_error,
    "squared_error": squared_error,
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
}

COST_ALIASES = {"softmax_ce": "softmax_cross_entropy", "bce": "binary_cross_entropy",
                "half_se": "half_squared_error", "se": "squared_error", "mse": "squared_error"}
