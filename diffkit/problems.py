"""Problems: the functions every method differentiates, each with its theta0 and data.

A :class:`Problem` is a function of one flat float64 vector theta, written
once against :func:`diffkit.namespace`, plus the point to differentiate at
and a map from flat indices to names such as ``W2[3,7]``.

MLP parameter layout (seed 004's ``W = randn(fan_in, fan_out) / sqrt(fan_in)``,
so layers act on rows: ``z = a @ W + b``).  theta holds the weights first,
``W1, ..., WL`` (each fan_in x fan_out, row-major), then the biases
``b1, ..., bL`` (fan_out each).  Weights first, so that the L2 term of
J(Theta), which covers weights only, is one dot product of one slice.
Indices inside the brackets are 0-based, as in numpy.

>>> import diffkit as dk
>>> prob = dk.problems.mlp([4, 16, 3], activation="tanh", loss="softmax_cross_entropy", l2=1e-3, batch=32)
>>> prob.size, prob.component_name(0), prob.component_name(prob.size - 1)
(131, 'W1[0,0]', 'b2[2]')
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import nn
from .backends import namespace

__all__ = ["Problem", "mlp", "seed_circuit", "seed_sigmoid_neuron", "seed_relu_chain", "seed_examples", "catalogue"]


@dataclass(frozen=True)
class Block:
    """One named parameter array inside theta."""

    name: str
    shape: tuple
    start: int

    @property
    def stop(self) -> int:
        return self.start + math.prod(self.shape)  # math.prod: np.prod costs ~2.5 us per call in every f


@dataclass(frozen=True)
class Problem:
    """A scalar function of a flat theta, its evaluation point, data and parameter names.

    ``expected`` holds numbers printed in a seed document, as strings exactly
    as printed (``{"value": "0.73", "w0": "-0.2"}``), for reproductions.
    """

    name: str
    fn: Callable[[Any], Any]
    theta0: np.ndarray
    blocks: tuple[Block, ...]
    data: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)

    def __call__(self, theta):
        if np.shape(theta) != self.theta0.shape:
            raise ValueError(f"theta has shape {np.shape(theta)}, but problem {self.name!r} takes a flat theta of "
                             f"{self.size} parameters (shape {self.theta0.shape})")
        return self.fn(theta)

    @property
    def size(self) -> int:
        return int(self.theta0.size)

    def component_name(self, i: int) -> str:
        for block in self.blocks:
            if block.start <= i < block.stop:
                if block.shape == ():
                    return block.name
                idx = np.unravel_index(i - block.start, block.shape)
                return f"{block.name}[{','.join(str(int(k)) for k in idx)}]"
        raise IndexError(f"component {i} is outside theta (size {self.size})")

    def unpack(self, theta) -> dict:
        """Split a flat theta into named arrays (views where possible)."""
        xp = namespace(theta)
        return {b.name: (theta[b.start] if b.shape == () else xp.reshape(theta[b.start:b.stop], b.shape))
                for b in self.blocks}

    def __repr__(self) -> str:
        return f"Problem({self.name!r}, P={self.size})"


def _scalar_blocks(names: list[str]) -> tuple[Block, ...]:
    return tuple(Block(n, (), i) for i, n in enumerate(names))


# --- the seeds' worked examples (numbers in shared/seeds/README.md) ----------------------

def seed_circuit() -> Problem:
    """f(x, y, z) = (x + y) z at (-2, 5, -4): f = -12, gradient (-4, -4, 3) (seed 000)."""
    def f(theta):
        x, y, z = theta[0], theta[1], theta[2]
        return (x + y) * z
    return Problem("seed_circuit", f, np.array([-2.0, 5.0, -4.0]), _scalar_blocks(["x", "y", "z"]),
                   meta={"seed": "000"}, expected={"value": "-12", "x": "-4", "y": "-4", "z": "3"})


def seed_sigmoid_neuron() -> Problem:
    """f(w, x) = sigma(w0 x0 + w1 x1 + w2) at w = (2, -3, -3), x = (-1, -2) (seeds 000, 001)."""
    def f(theta):
        w0, w1, w2, x0, x1 = (theta[i] for i in range(5))
        return nn.sigmoid(w0 * x0 + w1 * x1 + w2)
    return Problem("seed_sigmoid_neuron", f, np.array([2.0, -3.0, -3.0, -1.0, -2.0]),
                   _scalar_blocks(["w0", "w1", "w2", "x0", "x1"]), meta={"seed": "000"},
                   expected={"value": "0.73", "w0": "-0.2", "w1": "-0.39", "w2": "0.2", "x0": "0.39", "x1": "-0.59"})


def seed_relu_chain() -> Problem:
    """f = w1 x, g = relu(f), y_hat = w2 g, L = (y_hat - y)^2 / 2 with x = 5, y = 2 (seed 003).

    At w1 = 1, w2 = 2 the slide multiplies 5 * 1 * 2 * 8 = 80 for dL/dw1.
    """
    x, y = 5.0, 2.0

    def f(theta):
        w1, w2 = theta[0], theta[1]
        y_hat = w2 * nn.relu(w1 * x)
        d = y_hat - y
        return 0.5 * d * d
    return Problem("seed_relu_chain", f, np.array([1.0, 2.0]), _scalar_blocks(["w1", "w2"]),
                   data={"x": x, "y": y}, meta={"seed": "003"}, expected={"w1": "80"})


def seed_examples() -> list[Problem]:
    return [seed_circuit(), seed_sigmoid_neuron(), seed_relu_chain()]


# --- multilayer perceptrons -----------------------------------------------------------------

def _layout(layers: list[int]) -> tuple[Block, ...]:
    """Weight blocks W1..WL, then bias blocks b1..bL (see the module docstring)."""
    shapes = [(f"W{l}", (n_in, n_out)) for l, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:]), start=1)]
    shapes += [(f"b{l}", (n_out,)) for l, n_out in enumerate(layers[1:], start=1)]
    blocks, start = [], 0
    for name, shape in shapes:
        blocks.append(Block(name, shape, start))
        start = blocks[-1].stop
    return tuple(blocks)


def mlp_size(layers: list[int]) -> int:
    """Number of parameters P of an MLP with the given layer sizes."""
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))


def _check_choice(field_name: str, value: str, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {field_name} {value!r}; valid choices: {', '.join(sorted(choices))}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(field_name: str, value, minimum: int, hint: str = "") -> int:
    """``value`` as an int >= ``minimum``, or an error naming the field (2.5, '3', True and -1 are refused)."""
    if not _is_int(value):
        raise TypeError(f"{field_name} must be an integer >= {minimum}{hint}; got {type(value).__name__} {value!r:.60}")
    if value < minimum:
        raise ValueError(f"{field_name} must be an integer >= {minimum}{hint}; got {value}")
    return int(value)


def check_real(field_name: str, value, minimum: float | None = None, hint: str = "") -> float:
    """``value`` as a finite float (>= ``minimum`` if given), or an error naming the field."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{field_name} must be a real number{hint}; got {type(value).__name__} {value!r:.60}")
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise ValueError(f"{field_name} must be a finite number{bound}{hint}; got {value}")
    return float(value)


def check_layers(layers) -> list[int]:
    """Layer sizes as a list of ints >= 1 (at least two); a string such as "463" is refused, not split."""
    example = "; e.g. layers=[4, 16, 3]"
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple, np.ndarray)):
        raise TypeError(f"layers must be a list of layer sizes (integers){example}; got {type(layers).__name__} "
                        f"{layers!r:.60}")
    out = []
    for i, n in enumerate(layers):
        out.append(check_int(f"layers[{i}]", n, 1, example))
    if len(out) < 2:
        raise ValueError(f"layers must list at least an input and an output size{example}; got {list(layers)}")
    return out


# Refuse a problem whose arrays would not fit: numpy's MemoryError comes late and says nothing of the cause.
MEMORY_FRACTION = 0.5


def _available_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def mlp_bytes(layers: list[int], batch: int) -> int:
    """Estimated bytes the MLP problem allocates: theta0 and its draws, the data, one forward pass."""
    P = mlp_size(layers)
    widest = max(layers)
    return 8 * (3 * P + batch * (2 * layers[0] + 3 * layers[-1] + 2 * sum(layers) + 2 * widest))


def check_memory(what: str, nbytes: int) -> None:
    available = _available_bytes()
    if available is not None and nbytes > MEMORY_FRACTION * available:
        raise MemoryError(f"{what} needs about {nbytes / 2**30:.3g} GiB, more than half of the "
                          f"{available / 2**30:.3g} GiB of memory available here; choose smaller sizes")


def mlp(layers, activation: str = "tanh", loss: str = "softmax_cross_entropy", *, l2: float = 0.0,
        batch: int = 32, seed: int = 0, stable: bool = True, scale: float = 1.0) -> Problem:
    """An MLP with the given layer sizes, its cost on a synthetic batch, and Xavier theta0.

    ``loss`` is one of ``half_squared_error`` (seed 001), ``squared_error``
    (seed 004), ``binary_cross_entropy`` (J(Theta) of seed 000, K sigmoid
    outputs) or ``softmax_cross_entropy`` (seed 004); aliases ``softmax_ce``,
    ``bce``, ``half_se``, ``se``.  Squared-error nets have linear outputs;
    the cross-entropies take logits.  ``l2`` adds (lambda / 2m) sum W^2 over
    weights, not biases (seed 000).  ``stable=False`` uses the naive
    activations and costs.  ``scale`` multiplies theta0.

    Data, from ``seed``: inputs X ~ N(0, 1); targets from a random teacher
    network (one-hot classes, Bernoulli labels, or real values plus noise).
    """
    layers = check_layers(layers)
    batch = check_int("batch", batch, 1, " (examples in the data batch)")
    seed = check_int("seed", seed, 0, " (the data seed)")
    l2 = check_real("l2", l2, 0.0, " (the weight decay lambda)")
    scale = check_real("scale", scale, None, " (multiplies theta0)")
    if not isinstance(stable, (bool, np.bool_)):
        raise TypeError(f"stable must be True or False; got {type(stable).__name__} {stable!r:.60}")
    stable = bool(stable)
    _check_choice("activation", activation, nn.ACTIVATIONS)
    _check_choice("loss", loss, list(nn.COSTS) + list(nn.COST_ALIASES))
    loss = nn.COST_ALIASES.get(loss, loss)
    check_memory(f"mlp(layers={layers}, batch={batch}) (P = {mlp_size(layers):,} parameters)",
                 mlp_bytes(layers, batch))
    _check_choice("activation", activation, nn.ACTIVATIONS)
    _check_choice("loss", loss, nn.COSTS)
    rng = np.random.default_rng(seed)
    blocks = _layout(layers)
    # Xavier weights (seed 004); small random biases, so that every parameter has a generic gradient.  Drawn
    # layer by layer (W1, b1, W2, ...), whatever the order in theta, so that a seed keeps naming the same network.
    draws = {}
    for l, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        draws[f"W{l}"] = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        draws[f"b{l}"] = 0.1 * rng.standard_normal(n_out)
    theta0 = scale * np.concatenate([draws[b.name].ravel() for b in blocks])
    X = rng.standard_normal((batch, layers[0]))
    Y = _targets(rng, X, layers, loss)
    act = nn.ACTIVATIONS[activation]
    cost = nn.COSTS[loss]
    weights = [b for b in blocks if b.name[0] == "W"]
    biases = [b for b in blocks if b.name[0] == "b"]

    n_weights = weights[-1].stop  # the weights are theta[:n_weights]

    def f(theta):
        xp = namespace(theta)
        a = X
        for l, (wb, bb) in enumerate(zip(weights, biases)):
            z = nn.affine(a, xp.reshape(theta[wb.start:wb.stop], wb.shape), theta[bb.start:bb.stop])
            a = act(z, stable=stable) if l < len(weights) - 1 else z
        J = cost(a, Y, stable=stable)
        if not l2:
            return J
        return J + (l2 / (2 * batch)) * nn.sum_of_squares(theta[:n_weights])  # all the weights: one slice

    name = f"mlp{layers}-{activation}-{loss}" + ("" if stable else "-naive")
    meta = dict(layers=layers, activation=activation, loss=loss, l2=l2, batch=batch, seed=seed, stable=stable,
                scale=scale)
    return Problem(name, f, theta0, blocks, data={"X": X, "Y": Y}, meta=meta)


def _targets(rng, X, layers, loss):
    teacher = X
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        teacher = np.tanh(teacher @ rng.standard_normal((n_in, n_out)) / np.sqrt(n_in))
    logits = 3.0 * teacher
    if loss == "softmax_cross_entropy":
        classes = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
        return np.eye(layers[-1])[classes]
    if loss == "binary_cross_entropy":
        return (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(float)
    return teacher + 0.1 * rng.standard_normal(teacher.shape)


MAX_DEPTH = 10_000  # layers of an mlp_for_size network: beyond, the layer list alone would not fit


def mlp_for_size(P: int, *, depth: int = 3, n_in: int | None = None, n_out: int = 10, **kwargs) -> Problem:
    """An MLP [h]*depth + [n_out] (input width h unless given) whose P is closest to the target."""
    P = check_int("P", P, 1, " (the target parameter count)")
    depth = check_int("depth", depth, 1, " (number of width-h layers)")
    if depth > MAX_DEPTH or depth > P:
        raise ValueError(f"depth={depth}: an MLP of P ~ {P} has at most min(P, {MAX_DEPTH}) width-h layers; "
                         f"choose a depth from 1 to {min(P, MAX_DEPTH)}")
    n_out = check_int("n_out", n_out, 1, " (output width)")
    if n_in is not None:
        n_in = check_int("n_in", n_in, 1, " (input width)")

    def size(h):
        return mlp_size([n_in or h] + [h] * (depth - 1) + [n_out])
    h = 1
    if size(1) <= P:  # jump close to the answer (P grows like depth * h^2), then step
        h = max(1, int(math.isqrt(P // max(depth, 1))) - 2)
        while h > 1 and size(h) > P:
            h //= 2
    while size(h + 1) <= P:
        h += 1
    if abs(size(h + 1) - P) < abs(size(h) - P):
        h += 1
    return mlp([n_in or h] + [h] * (depth - 1) + [n_out], **kwargs)


def catalogue() -> dict[str, Callable[..., Problem]]:
    """The problem builders by name (for the CLI and study files)."""
    return {"mlp": mlp, "seed_circuit": seed_circuit, "seed_sigmoid_neuron": seed_sigmoid_neuron,
            "seed_relu_chain": seed_relu_chain}
