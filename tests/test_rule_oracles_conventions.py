"""The documented conventions where no derivative exists (kinks, ties, 0/0), against their stated numbers.

No oracle can differentiate there, so the expected numbers are the conventions themselves, written out by hand
(the rule table's docstrings; seeds 003 and 004 write relu'(x) = 1 for x >= 0), on the tape and in the mpmath
referee, and on array-API values for the rule's branch that those libraries take.
"""
from __future__ import annotations

import mpmath
import numpy as np
import pytest

import diffkit as dk

# --- the conventions at kinks (documented in the rule table; seeds 003 and 004 write relu'(x) = 1 for x >= 0) ---
# No derivative exists there, so no oracle can differentiate: the expected numbers are the documented conventions.

def _sum_of(op):
    return lambda t: dk.namespace(t).sum(op(dk.namespace(t), t))


CONVENTIONS = [
    ("relu'(0) = 1", _sum_of(lambda xp, t: dk.nn.relu(t)), [0.0, -1.0, 2.0], [1.0, 0.0, 1.0]),
    ("leaky_relu'(0) = 1", _sum_of(lambda xp, t: dk.nn.leaky_relu(t)), [0.0, -1.0], [1.0, 0.01]),
    ("abs'(0) = 0", _sum_of(lambda xp, t: xp.abs(t)), [0.0, -2.0], [0.0, -1.0]),
    ("maximum tie: half each", lambda t: dk.namespace(t).maximum(t[0], t[1]), [1.5, 1.5], [0.5, 0.5]),
    ("minimum tie: half each", lambda t: dk.namespace(t).minimum(t[0], t[1]), [1.5, 1.5], [0.5, 0.5]),
    ("maximum without a tie", lambda t: dk.namespace(t).maximum(t[0], t[1]), [1.5, 0.5], [1.0, 0.0]),
    ("minimum without a tie", lambda t: dk.namespace(t).minimum(t[0], t[1]), [1.5, 0.5], [0.0, 1.0]),
    ("hypot at the origin: gradient 0", lambda t: dk.namespace(t).hypot(t[0], t[1]), [0.0, 0.0], [0.0, 0.0]),
    ("vector_norm at 0: gradient 0", lambda t: dk.namespace(t).linalg.vector_norm(t) + t[0], [0.0, 0.0], [1.0, 0.0]),
    ("vector_norm of a zero row: gradient 0 there", lambda t: dk.namespace(t).sum(
        dk.namespace(t).linalg.vector_norm(dk.namespace(t).reshape(t, (2, 2)), axis=1)), [0.0, 0.0, 3.0, -4.0],
     [0.0, 0.0, 0.6, -0.8]),
    ("pow: d/dy x**y = 0 at x = 0", lambda t: t[0] ** t[1], [0.0, 2.0], [0.0, 0.0]),
    ("clip: 0 below and above, 1 inside and at both bounds", _sum_of(lambda xp, t: xp.clip(t, -1.0, 1.0)),
     [-2.0, -1.0, 0.5, 1.0, 3.0], [0.0, 1.0, 1.0, 1.0, 0.0]),
    ("max: ties split equally", lambda t: dk.namespace(t).max(t), [2.0, 1.0, 2.0, 2.0], [1 / 3, 0.0, 1 / 3, 1 / 3]),
]


@pytest.mark.parametrize("what,f,theta,expected", CONVENTIONS, ids=[c[0] for c in CONVENTIONS])
def test_kink_conventions_on_the_tape(what, f, theta, expected):
    assert dk.gradient(f, np.array(theta)).grad.tolist() == pytest.approx(expected, rel=1e-15, abs=0)


@pytest.mark.parametrize("what,f,theta,expected", CONVENTIONS, ids=[c[0] for c in CONVENTIONS])
def test_kink_conventions_in_the_referee(what, f, theta, expected):
    ref = dk.reference(f, np.array(theta), digits=30, certify=False)  # at a kink the certification must fail
    assert [float(g) for g in np.ravel(ref.grad_mp)] == pytest.approx(expected, rel=1e-15, abs=0)


@pytest.mark.parametrize("backend", ["numpy", "mpmath"])
def test_kink_conventions_logsumexp_of_a_row_of_minus_inf(backend):
    # a row that is all -inf has no softmax (0/0): its gradient is 0 by convention; the row (0, log 3) has the
    # softmax (1/4, 3/4), a closed form
    with mpmath.workdps(30), np.errstate(divide="ignore"):
        num = float if backend == "numpy" else mpmath.mpf
        x = np.array([[num("-inf")] * 2, [num(0), mpmath.log(3) if backend == "mpmath" else np.log(3.0)]],
                     dtype=float if backend == "numpy" else object)
        _, vjp_fn = dk.vjp(lambda t: dk.nn.logsumexp(t, axis=-1), x)
        got = vjp_fn(np.array([num(1), num(1)], dtype=x.dtype))
        assert [float(v) for v in got.ravel()] == pytest.approx([0.0, 0.0, 0.25, 0.75], rel=1e-15, abs=0)


@pytest.mark.parametrize("op,theta,expected", [
    ("max", [[2.0, 1.0, 2.0], [0.0, 3.0, 1.0]], [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]),
    ("min", [[2.0, 1.0, 1.0], [0.0, 3.0, 0.0]], [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])])
def test_kink_conventions_max_min_ties_on_array_api_values(op, theta, expected):
    # the rule's branch for libraries that multiply no booleans (0/1 floats): tied extrema share g equally
    strict = pytest.importorskip("array_api_strict", reason="needs array-api-strict: pip install 'diffkit[array-api]'")
    from diffkit.array_api import from_host, to_host

    def f(t):
        return dk.namespace(t).sum(getattr(dk.namespace(t), op)(t, axis=1))
    got = dk.gradient(f, from_host(np.array(theta), like=strict.asarray([0.0])), method="reverse")
    assert to_host(got.grad).tolist() == expected
