"""A derivative inside a derivative, where the inner function closes over the outer variable.

``d/dw sum(grad_y h(y, w) at a plain point x)``: the inner derivative is taken at plain
values, while ``h`` reads ``w``, a trace of the enclosing derivative (JAX lifts such a
closed-over tracer; so does diffkit's tape, :func:`diffkit.tape.levels.lift`).  With
``h(y, w) = sum(w y^3 + sin(w y))``, grad_y h = 3 w y^2 + w cos(w y), and by hand

    F(w)  = sum_i 3 w x_i^2 + w cos(w x_i)
    F'(w) = sum_i 3 x_i^2 + cos(w x_i) - w x_i sin(w x_i).
"""
from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk

X = np.array([0.3, -1.2, 2.0])
W = 0.7


def h(y, w):
    xp = dk.namespace(y, w)
    return xp.sum(w * y * y * y + xp.sin(w * y))


def h_reshaped_first(y, w):
    # the same h, but y's ops come before w is met: rules recorded at plain values then get a traced gradient
    xp = dk.namespace(y)
    cubes = xp.sum(xp.reshape(y * y * y, (1, -1)), axis=0)
    column = xp.reshape(y, (-1, 1))
    xw = dk.namespace(cubes, w)
    return xw.sum(w * cubes) + xw.sum(xw.sin(column * w))


INNER = {
    "vjp": lambda f, x: dk.vjp(f, x)[1](1.0),
    "gradient reverse": lambda f, x: dk.gradient(f, x).grad,
    "gradient forward_ad": lambda f, x: dk.gradient(f, x, method="forward_ad").grad,
    "jvp, one tangent per entry": lambda f, x: dk.jvp(f, x, np.eye(x.size), batch=True)[1],
}


def outer_value(inner, h):
    def F(t):
        g = inner(lambda y: h(y, t[0]), X)
        return dk.namespace(g).sum(g)
    return F


def by_hand(w):
    return np.sum(3 * w * X ** 2 + w * np.cos(w * X)), np.sum(3 * X ** 2 + np.cos(w * X) - w * X * np.sin(w * X))


@pytest.mark.parametrize("inner", INNER, ids=list(INNER))
@pytest.mark.parametrize("outer", ["reverse", "forward_ad", "jvp"])
@pytest.mark.parametrize("h", [h, h_reshaped_first], ids=["h", "y's ops first"])
def test_an_inner_derivative_at_plain_values_differentiates_through_the_closed_over_variable(inner, outer, h):
    F = outer_value(INNER[inner], h)
    value, slope = by_hand(W)
    theta = np.array([W])
    if outer == "jvp":
        got_value, got_slope = dk.jvp(F, theta, np.array([1.0]))
    else:
        r = dk.gradient(F, theta, method=outer)
        got_value, got_slope = r.value, r.grad[0]
    assert float(got_value) == pytest.approx(value, rel=1e-14)
    assert float(got_slope) == pytest.approx(slope, rel=1e-14)


def test_the_inner_result_is_plain_where_nothing_outer_is_read():
    # no closure over w: the inner gradient is a plain float64 array, as at top level
    g = dk.gradient(lambda t: dk.namespace(t).sum(t * t * t), X).grad
    assert type(g) is np.ndarray and g.tolist() == (3 * X ** 2).tolist()


def test_compiling_a_function_that_closes_over_an_outer_trace_is_refused_by_name():
    # a replay would bake the enclosing derivative's value into its code: refused, saying what to call instead
    from diffkit.tape.replay import NotCompilable

    def F(t):
        return dk.compile(lambda y: h(y, t[0]), X)(X)[0]
    with pytest.raises(NotCompilable, match="enclosing derivative.*dk.gradient"):
        dk.gradient(F, np.array([W]))


@pytest.mark.parametrize("method, passes", [("reverse", 1), ("forward_ad", X.size)])
def test_an_inner_gradient_closed_over_a_trace_counts_its_evaluations(method, passes):
    # one recording for reverse mode, one pass per entry of x for forward mode, as at top level
    counts = []

    def F(t):
        r = dk.gradient(lambda y: h(y, t[0]), X, method=method)
        counts.append(r.cost.evaluations)
        return dk.namespace(r.grad).sum(r.grad)
    assert dk.gradient(F, np.array([W])).grad[0] == pytest.approx(by_hand(W)[1], rel=1e-14)
    assert counts == [passes]
