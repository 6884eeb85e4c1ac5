"""dk.checkpoint: a segment's intermediates recomputed in the sweep.  Gradients against the same function without
it (the recomputation is the same operations) and against the mpmath referee; what the tape holds against a count
made by hand; second derivatives against closed forms."""
from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
from diffkit.tape import Tape, bytes_held

RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 8))


def _block(a, W):
    xp = dk.namespace(a, W)
    for _ in range(6):
        a = xp.tanh(a @ W) * 0.9 + a
    return a


def _net(checkpointed: bool, segments: int = 4, data: np.ndarray = X):
    block = dk.checkpoint(_block) if checkpointed else _block

    def f(t):
        xp = dk.namespace(t)
        W = xp.reshape(t, (8, 8))
        a = data
        for _ in range(segments):
            a = block(a, W)
        return xp.sum(a * a) / a.shape[0]
    return f


THETA = RNG.standard_normal(64) * 0.1


def test_the_gradient_is_the_plain_one_to_rounding_and_the_referees():
    plain, ck = dk.gradient(_net(False), THETA).grad, dk.gradient(_net(True), THETA).grad
    assert np.allclose(ck, plain, rtol=1e-13, atol=0)
    ref = dk.reference(_net(False, segments=2, data=X[:2]), THETA, digits=30)
    assert dk.error(dk.gradient(_net(True, segments=2, data=X[:2]), THETA), ref).digits >= 13


def test_the_tape_keeps_each_segments_input_only():
    # per segment: its input a (32 x 8 floats; W is a view of theta, which owns nothing); then a * a keeps a:
    # 4 + 1 arrays of 2,048 bytes.  Without it, each of the 24 layers keeps its product's input and its tanh
    # output, 48 such arrays and more
    held = {}
    for ck in (False, True):
        tape = Tape()
        _net(ck)(tape.leaf(THETA))
        held[ck] = (len(tape), bytes_held(tape))
    assert held[True] == (1 + 1 + 4 + 3, 5 * X.nbytes)  # leaf, the reshape (a view), 4 segments, a * a, sum, / 32
    assert held[False][1] >= 48 * X.nbytes


@pytest.mark.parametrize("mode", ["forward_over_reverse", "reverse_over_reverse"])
def test_second_derivatives_go_through_the_recomputation(mode):
    # f = sum(t^3) inside the segment: H v = 6 t v
    t, v = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -1.0])
    f = lambda x: dk.namespace(x).sum(dk.checkpoint(lambda a: a ** 3)(x))  # noqa: E731
    assert np.allclose(dk.hvp(f, t, v, mode=mode).hvp, 6 * t * v, rtol=1e-15)
    assert np.allclose(dk.hvp(_net(True, 2), THETA, THETA, mode=mode).hvp,
                       dk.hvp(_net(False, 2), THETA, THETA, mode=mode).hvp, rtol=1e-12, atol=1e-14)


def test_forward_mode_and_plain_values_run_the_function_itself():
    value, jv = dk.jvp(_net(True), THETA, THETA)
    want_value, want_jv = dk.jvp(_net(False), THETA, THETA)
    assert value == want_value and jv == want_jv
    assert dk.checkpoint(lambda a: a * 2)(np.ones(2)).tolist() == [2.0, 2.0]


def test_constants_pass_through_and_an_unread_input_gets_no_gradient():
    def segment(a, k, unused):
        return a ** k

    f = lambda t: dk.namespace(t).sum(dk.checkpoint(segment)(t[:2], 3, t[2:]))  # noqa: E731
    assert dk.gradient(f, np.array([1.0, 2.0, 5.0])).grad.tolist() == [3.0, 12.0, 0.0]


def test_a_traced_array_read_from_a_closure_is_refused():
    def f(t):
        return dk.namespace(t).sum(dk.checkpoint(lambda a: a * t[0])(t))
    with pytest.raises(ValueError, match="closure.*pass every traced array it reads as an argument"):
        dk.gradient(f, np.ones(3))


def test_a_segment_that_returns_several_arrays_is_refused_with_the_fix():
    f = lambda t: dk.namespace(t).sum(dk.checkpoint(lambda a: (a * 2, a * 3))(t)[0])  # noqa: E731
    with pytest.raises(TypeError, match="returned a tuple; a checkpointed segment returns one array"):
        dk.gradient(f, np.ones(2))


def test_compile_refuses_a_checkpoint_and_says_what_to_do():
    with pytest.raises(ValueError, match="checkpoint.*cannot be replayed; call dk.gradient"):
        dk.compile(_net(True), THETA)


def test_bytes_held_counts_what_a_custom_function_saved():
    class Square(dk.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x * 1.0)  # (a fresh array: owned by the tape)
            return x * x

        @staticmethod
        def backward(ctx, g):
            return 2 * g * ctx.saved[0]

    tape = Tape()
    Square.apply(tape.leaf(np.ones(100)))
    assert bytes_held(tape) == 800


def test_integer_and_boolean_arguments_are_constants_of_the_recomputation():
    def segment(a, idx, mask):
        return dk.namespace(a).where(mask, a[idx] ** 2, 0.0)

    idx, mask = np.array([2, 0, 1]), np.array([True, False, True])
    f = lambda t: dk.namespace(t).sum(dk.checkpoint(segment)(t, idx, mask))  # noqa: E731
    # a[2]^2 and a[1]^2 survive the mask: gradient 2 a there
    assert dk.gradient(f, np.array([1.0, 2.0, 3.0])).grad.tolist() == [0.0, 4.0, 6.0]
