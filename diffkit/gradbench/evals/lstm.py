"""GradBench ``lstm`` (ADBench's LSTM, diagonal weights): the loss of an l-layer LSTM predicting each next
character of a text, and its gradient.

Input: ``main_params`` (2l rows of 4b: a layer's weights, then its biases,
each as forget, input, output, change gates), ``extra_params`` (3 rows of b:
input weight, output weight, output bias), ``state`` (2l rows of b: a
layer's hidden, then its cell state) and ``sequence`` (c rows of b bits, one
character each).  Per character t < c - 1 the LSTM predicts y, normalises it
by ``log(sum(exp(y)) + 2)`` (the eval's logsumexp, with its + 2), and the
loss is ``-sum_t sequence[t+1] . ynorm_t / ((c - 1) b)``.  ``objective``
returns it; ``jacobian`` the gradient over ``main_params`` then
``extra_params``, each flattened row by row.  Gates use 1 / (1 + exp(-z)),
as the eval's reference does, the same operations for every method.

The eval reads c characters of a text file and draws the parameters with an
unseeded ``np.random.random``; here the text is made up (:func:`text`,
letters and spaces from a seeded generator: b = 7 bits, as for English
text) and the draws are seeded, so that inputs are reproducible.

>>> _, input = next(inputs([{"l": 1, "c": 3}]))
>>> np.shape(input["main_params"]), np.shape(input["sequence"])
((2, 28), (3, 7))
"""
from __future__ import annotations

import math

import numpy as np

import diffkit as dk

from ..jobs import Problem, as_float, gradient_job, primal_job
from ._inputs import matrix

__all__ = ["loss", "problem", "FUNCTIONS", "inputs", "text", "SIZES", "TEST_SIZES"]


def _sigmoid(z, xp):
    return 1 / (1 + xp.exp(-z))


def loss(theta, state, sequence, layers: int):
    xp = dk.namespace(theta)
    b = sequence.shape[1]
    main = xp.reshape(theta[:8 * layers * b], (2 * layers, 4 * b))
    extra = xp.reshape(theta[8 * layers * b:], (3, b))
    gates = [[row[g * b:(g + 1) * b] for g in range(4)] for row in (main[r] for r in range(2 * layers))]
    in_weight, out_weight, out_bias = extra[0], extra[1], extra[2]
    hidden, cell = [state[2 * i] for i in range(layers)], [state[2 * i + 1] for i in range(layers)]
    total = 0.0
    for t in range(sequence.shape[0] - 1):
        signal = sequence[t] * in_weight
        for i in range(layers):
            (wf, wi, wo, wc), (bf, bi, bo, bc) = gates[2 * i], gates[2 * i + 1]
            forget = _sigmoid(signal * wf + bf, xp)
            ingate = _sigmoid(hidden[i] * wi + bi, xp)
            outgate = _sigmoid(signal * wo + bo, xp)
            change = xp.tanh(hidden[i] * wc + bc)
            cell[i] = cell[i] * forget + ingate * change
            hidden[i] = outgate * xp.tanh(cell[i])
            signal = hidden[i]
        prediction = signal * out_weight + out_bias
        normaliser = xp.log(xp.sum(xp.exp(prediction)) + 2)
        total = total + xp.sum(sequence[t + 1] * (prediction - normaliser))
    return -total / ((sequence.shape[0] - 1) * b)


def problem(input) -> Problem:
    main, sequence = matrix(input, "main_params"), matrix(input, "sequence")
    b = sequence.shape[1]
    if main.shape[0] % 2 or main.shape[0] == 0 or main.shape[1] != 4 * b:
        raise ValueError(f"input.main_params must be 2l rows of 4b = {4 * b} numbers (b from input.sequence); "
                         f"got shape {main.shape}")
    if sequence.shape[0] < 2:
        raise ValueError(f"input.sequence must have at least 2 characters; got {sequence.shape[0]}")
    layers = main.shape[0] // 2
    extra = matrix(input, "extra_params", columns=b)
    state = matrix(input, "state", columns=b)
    if extra.shape[0] != 3 or state.shape[0] != 2 * layers:
        raise ValueError(f"input.extra_params must have 3 rows and input.state 2l = {2 * layers}; "
                         f"got {extra.shape[0]} and {state.shape[0]}")
    theta = np.concatenate([main.ravel(), extra.ravel()])
    return Problem(theta, lambda t: loss(t, state, sequence, layers))


FUNCTIONS = {
    "objective": lambda input, engine: primal_job(problem(input), engine, encode=as_float),
    "jacobian": lambda input, engine: gradient_job(problem(input), engine),
}

SIZES = [{"l": l, "c": c} for l in (2, 4, 6) for c in (1024, 4096, 8192)]
TEST_SIZES = [{"l": 1, "c": 2}, {"l": 1, "c": 4}, {"l": 2, "c": 3}]


def text(chars: int, seed: int = 0) -> str:
    """Made-up text: words of 1-9 lowercase letters, separated by spaces (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append("".join(rng.choice(letters, size=int(rng.integers(1, 10)))))
    return " ".join(words)[:chars]


def _bits(chars: str) -> np.ndarray:
    width = math.ceil(math.log2(max(ord(ch) for ch in chars)))
    return np.array([[int(bit) for bit in format(ord(ch), f"0{width}b")] for ch in chars], dtype=np.float64)


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` in the eval's order (by l c): state, main and extra parameters uniform [0, 1)."""
    state = np.random.RandomState(seed)
    for size in sorted(SIZES if sizes is None else sizes, key=lambda v: v["l"] * v["c"]):
        layers, chars = size["l"], size["c"]
        sequence = _bits(text(chars))
        b = sequence.shape[1]
        initial = state.random_sample((2 * layers, b))  # drawn in the eval's order: state, main, extra
        main = state.random_sample((2 * layers, 4 * b))
        extra = state.random_sample((3, b))
        yield f"l={layers},c={chars}", {"main_params": main.tolist(), "extra_params": extra.tolist(),
                                        "state": initial.tolist(), "sequence": sequence.tolist()}
