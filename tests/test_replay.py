"""dk.compile: the replay against eager mode, the mpmath referee and hand-derived values; its guards."""
from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import diffkit as dk
from diffkit import nn, problems
from diffkit.backends import NUMPY
from diffkit.primitives import PRIMITIVES
from diffkit.bench_tape import user_mlp
from diffkit.handwritten import mlp_backprop
from diffkit.tape.replay import NotCompilable


def _moved(theta, seed=1):
    """A theta other than the recorded one: a replay must not have baked the recording's values in."""
    return theta * 0.8 + 0.05 * np.random.default_rng(seed).standard_normal(theta.shape)


def _check_against_referee(f, theta, recorded=None, digits=12):
    g = dk.compile(f, theta if recorded is None else recorded)
    value, grad = g(theta)
    eager = dk.gradient(f, theta)
    ref = dk.reference(f, theta, digits=30)
    assert dk.error(grad, ref).digits >= digits
    assert value == pytest.approx(float(ref.value), rel=1e-13, abs=1e-15)
    np.testing.assert_allclose(grad, eager.grad, rtol=1e-12, atol=1e-15)
    assert g.records == 1 and g.reasons == []
    return g


@pytest.mark.parametrize("activation", sorted(nn.ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(nn.COSTS))
def test_compiled_mlp_family_matches_the_referee_at_a_new_theta(activation, loss):
    prob = problems.mlp([3, 4, 2], activation=activation, loss=loss, l2=1e-2, batch=5, seed=3)
    theta = _moved(prob.theta0)
    _check_against_referee(prob.fn, theta, recorded=prob.theta0, digits=11)


@pytest.mark.parametrize("make", [problems.seed_circuit, problems.seed_sigmoid_neuron, problems.seed_relu_chain],
                         ids=lambda p: p.__name__)
def test_compiled_seed_problems_match_the_referee(make):
    prob = make()
    _check_against_referee(prob.fn, prob.theta0)


def test_compiled_seed_circuit_prints_the_seed_numbers():
    value, grad = dk.compile(problems.seed_circuit().fn, np.zeros(3))(np.array([-2.0, 5.0, -4.0]))
    assert value == -12.0 and grad.tolist() == [-4.0, -4.0, 3.0]  # seed 000, by hand: (z, z, x + y)


def test_compiled_user_mlp_equals_hand_written_backprop():
    prob = problems.mlp([6, 5, 5, 3], activation="tanh", loss="softmax_cross_entropy", l2=1e-3, batch=8, seed=2)
    f = user_mlp(prob)
    g = dk.compile(f, prob.theta0)
    theta = _moved(prob.theta0)
    value, grad = g(theta)
    hand_value, hand_grad = mlp_backprop(prob, theta)  # seed 001's delta rule, no tape involved
    assert value == pytest.approx(hand_value, rel=1e-13)
    np.testing.assert_allclose(grad, hand_grad, rtol=1e-10, atol=1e-14)
    assert g.value(theta) == pytest.approx(hand_value, rel=1e-13)


def _slices_where_max_linalg(t):
    xp = dk.namespace(t)
    A = xp.reshape(t[:4], (2, 2)) + 3.0 * xp.eye(2)
    v = t[4:6]
    pos = xp.where(v > 0.0, v, 0.1 * v)  # the mask is guarded: it is checked on replay
    sol = xp.linalg.solve(A, pos)
    return xp.linalg.det(A) + xp.max(xp.concat([sol, t[6:]])) + xp.sum(t[::2] ** 2) + xp.logsumexp(t[1:5])


def test_compiled_plain_function_with_slices_where_max_linalg_matches_the_referee():
    theta = np.array([0.3, -0.2, 0.5, 0.1, 0.7, 0.4, -0.3, 0.2])
    _check_against_referee(_slices_where_max_linalg, theta, recorded=theta + 0.01)


def test_a_branch_taking_another_way_re_records_and_says_so():
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(t * t) if t[0] > 0 else xp.sum(xp.sin(t))
    seen = []
    g = dk.compile(f, np.array([1.0, 2.0]), on_rerecord=seen.append)
    assert g(np.array([3.0, 1.0]))[1].tolist() == [6.0, 2.0]  # same branch: 2t
    value, grad = g(np.array([-1.0, 0.5]))  # other branch: cos t
    np.testing.assert_allclose(grad, np.cos([-1.0, 0.5]), rtol=1e-15)
    assert g.records == 2 and len(seen) == 1 and "greater" in seen[0]


def test_a_mask_that_changes_re_records_and_the_gradient_follows_it():
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(xp.where(t > 0, t, 0.5 * t))
    g = dk.compile(f, np.array([1.0, -1.0]))
    assert g(np.array([2.0, -3.0]))[1].tolist() == [1.0, 0.5] and g.records == 1
    assert g(np.array([-2.0, 3.0]))[1].tolist() == [0.5, 1.0] and g.records == 2


def test_a_new_shape_records_again_and_keeps_both():
    f = lambda t: dk.namespace(t).sum(dk.namespace(t).exp(t))  # noqa: E731
    g = dk.compile(f, np.zeros(3))
    np.testing.assert_allclose(g(np.ones(4))[1], np.exp(np.ones(4)), rtol=1e-15)
    np.testing.assert_allclose(g(np.ones(3) * 2)[1], np.exp(2.0) * np.ones(3), rtol=1e-15)
    assert g.records == 2 and len(g.programs) == 2 and "shape" in g.reasons[0]


def test_verbose_prints_each_re_recording(capsys):
    g = dk.compile(lambda t: dk.namespace(t).sum(t) if t[0] > 0 else 2 * dk.namespace(t).sum(t), np.ones(2),
                   verbose=True)
    g(-np.ones(2))
    assert "re-recording" in capsys.readouterr().out


def test_custom_functions_are_refused_with_a_reason():
    class Twice(dk.Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return 2 * g
    with pytest.raises(NotCompilable, match="custom"):
        dk.compile(lambda t: dk.namespace(t).sum(Twice.apply(t)), np.ones(2))


def test_compile_time_is_recorded_apart_and_the_source_is_readable():
    g = dk.compile(lambda t: dk.namespace(t).sum(dk.namespace(t).tanh(t)), np.ones(3))
    assert g.compile_s > 0 and "def grad(theta):" in g.source


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**16))
def test_replay_equals_eager_for_broadcasting_reductions(rows, cols, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, cols))

    def f(t):
        xp = dk.namespace(t)
        w, b = t[:cols], t[cols]
        z = X * w + b  # broadcasting: the replay sums back to (cols,) and ()
        return xp.sum(xp.max(z, axis=1) - xp.mean(z, axis=0, keepdims=True).sum()) + xp.sum(w * w)
    theta = rng.standard_normal(cols + 1)
    g = dk.compile(f, theta)
    other = rng.standard_normal(cols + 1)
    np.testing.assert_allclose(g(other)[1], dk.gradient(f, other).grad, rtol=1e-13, atol=1e-14)


def test_max_over_an_axis_shares_ties_equally_in_eager_and_replay():
    f = lambda t: dk.namespace(t).sum(dk.namespace(t).max(dk.namespace(t).reshape(t, (2, 3)), axis=1))  # noqa: E731
    theta = np.array([2.0, 2.0, 1.0, 0.0, 3.0, 1.0])
    by_hand = [0.5, 0.5, 0.0, 0.0, 1.0, 0.0]  # row 0 ties: each maximum gets half of g
    assert dk.gradient(f, theta).grad.tolist() == by_hand
    assert dk.compile(f, theta + 1.0)(theta)[1].tolist() == by_hand


def test_x_times_x_has_the_gradient_2x():
    assert dk.gradient(lambda t: dk.namespace(t).sum(t * t), np.array([1.5, -2.0])).grad.tolist() == [3.0, -4.0]


def test_the_replays_tanh_gradient_is_exact_at_saturated_and_healthy_entries():
    # The replay runs the table's tanh rule: 1 - a**2 from the output, 4e/(1+e)^2 where |a| saturates.
    x = np.concatenate([np.linspace(-40, 40, 1001), [0.0, -0.0, 1e-300, 19.5]])
    w = np.random.default_rng(0).standard_normal(x.shape)
    f = lambda t: dk.namespace(t).sum(w * dk.namespace(t).tanh(t))  # noqa: E731
    got = dk.compile(f, x + 0.25)(x)[1]
    exact = [float(wi * mpmath.sech(mpmath.mpf(xi)) ** 2) for wi, xi in zip(w, x)]
    assert np.allclose(got, exact, rtol=4e-13, atol=0.0)
    assert got.tolist() == dk.gradient(f, x).grad.tolist()  # and the same bits as the eager tape


def test_gradient_with_compile_true_replays_and_counts_its_recordings():
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(xp.exp(t) * t)
    for scale in (1.0, 2.0, 3.0):
        theta = scale * np.array([0.1, -0.4, 0.3])
        r = dk.gradient(f, theta, compile=True)
        np.testing.assert_allclose(r.grad, np.exp(theta) * (1 + theta), rtol=1e-15)  # d/dt t e^t, by hand
    assert r.cost.counters["records"] == 1 and r.cost.counters["compile_s"] > 0


@pytest.mark.parametrize("cut", [(2, 3), (2, 4)])
def test_slices_that_leave_part_of_theta_untouched_give_it_zero_gradient(cut):
    a, b = cut
    f = lambda t: dk.namespace(t).sum(t[:a] ** 2) + dk.namespace(t).sum(t[a:b])  # noqa: E731
    theta = np.array([1.0, -2.0, 3.0, 4.0])
    by_hand = [2.0, -4.0, 1.0, 1.0 if b == 4 else 0.0]
    g = dk.compile(f, theta)
    for _ in range(3):  # a fresh buffer each call: no stale values from an earlier replay
        assert g(theta)[1].tolist() == by_hand


def test_a_nested_gradient_is_replayed_too():
    def f(t):  # the squared norm of the gradient of sum(u sin u), itself taken with dk.vjp inside f
        _, back = dk.vjp(lambda u: dk.namespace(u).sum(dk.namespace(u).sin(u) * u), t)
        d = back(1.0)
        return dk.namespace(t).sum(d * d)
    theta = np.array([0.3, -1.2, 2.0])
    g = dk.compile(f, theta + 0.5)
    d = np.sin(theta) + theta * np.cos(theta)  # by hand: d/du (u sin u) = sin u + u cos u
    np.testing.assert_allclose(g(theta)[1], 2 * d * (2 * np.cos(theta) - theta * np.sin(theta)), rtol=1e-13)


# --- compile-time rewrites: each where it fires and where it must not --------------------------------------

def _rewritten(f, theta):
    g = dk.compile(f, theta)
    return g, next(iter(g.programs.values())).source


@pytest.mark.parametrize("reduce, scale", [("sum", 1.0), ("mean", 1 / 6)])
def test_a_reductions_gradient_stays_unspread_into_an_elementwise_op_that_has_no_other_use(reduce, scale):
    def f(t):
        xp = dk.namespace(t)
        w = xp.reshape(t, (2, 3))
        return getattr(xp, reduce)(w * w) + xp.sum(2.0 * xp.sum(xp.exp(w), axis=1, keepdims=True))
    theta = np.linspace(-1.0, 1.5, 6)
    g, source = _rewritten(f, theta)
    assert "KEPT(" in source and "EXPAND(" not in source  # both reductions: no spread gradient
    for t in (theta, _moved(theta)):
        np.testing.assert_allclose(g(t)[1], 2 * scale * t + 2 * np.exp(t), rtol=1e-15)  # by hand


def test_a_reductions_gradient_is_spread_where_its_input_has_another_use_or_a_broadcast_operand():
    def two_uses(t):  # exp(t) feeds the sum and a product: its gradient has two senders
        xp = dk.namespace(t)
        e = xp.exp(t)
        return xp.sum(e) + xp.sum(e * t)

    def broadcast_operand(t):  # t[2] (a scalar) is spread over the vector: its gradient sums what was spread
        xp = dk.namespace(t)
        return xp.sum(t[:2] - t[2])
    theta = np.array([0.3, -0.7, 1.1])
    g, source = _rewritten(two_uses, theta)
    assert source.count("EXPAND(") == 1
    np.testing.assert_allclose(g(theta)[1], np.exp(theta) * (2 + theta), rtol=1e-15)  # d/dt (e^t + t e^t)
    g, source = _rewritten(broadcast_operand, theta)
    assert "EXPAND(" in source and "KEPT(" not in source
    assert g(theta)[1].tolist() == [1.0, 1.0, -2.0]


def _shared_by_hand(x, g, reduce, axis):
    """max/min's gradient entry by entry: g over the number of tied extrema of the slice, at each of them; a slice
    holding a NaN has no extremum to send g to (NaN throughout, as g/0 * 0 gives)."""
    axes = tuple(range(x.ndim)) if axis is None else (axis,) if type(axis) is int else axis
    out = np.zeros_like(x)
    g = np.reshape(g, [1 if k in axes else n for k, n in enumerate(x.shape)])
    for index in np.ndindex(*x.shape):
        key = tuple(slice(None) if k in axes else i for k, i in enumerate(index))
        part = x[key]
        if np.isnan(part).any():
            out[index] = np.nan
            continue
        top = part.max() if reduce == "max" else part.min()
        share = g[tuple(0 if k in axes else i for k, i in enumerate(index))] / np.count_nonzero(part == top)
        out[index] = share if x[index] == top else 0.0
    return out


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (1, True), ((0, 1), False)])
def test_extremum_rule_shares_g_among_ties_from_the_mask_from_x_and_in_the_replay(reduce, axis, keepdims):

    rng = np.random.default_rng(0)
    prim = PRIMITIVES[reduce]
    for x in (rng.standard_normal((4, 3)), np.array([[1.0, 2.0, 2.0], [3.0, 3.0, 3.0], [0.0, -1.0, 0.0],
                                                     [np.nan, 1.0, 0.0]])):
        ans, res = prim.impls["numpy"](x, axis=axis, keepdims=keepdims)
        assert res.dtype == bool if type(res) is np.ndarray else res[0].dtype == bool  # no copy of x kept
        g = rng.standard_normal(np.shape(ans))
        want = _shared_by_hand(x, g, reduce, axis)
        with np.errstate(all="ignore"):  # (a NaN slice has no hit: 0/0 there)
            from_mask = prim.vjps[0](g, res, NUMPY, axis, keepdims)
            from_x = prim.vjps[0](g, (x, ans), NUMPY, axis, keepdims)  # what traces and object arrays keep
            f = lambda t: dk.namespace(t).sum(  # noqa: E731
                dk.namespace(t).asarray(g) * getattr(dk.namespace(t), reduce)(t, axis=axis, keepdims=keepdims))
            through_api = [] if np.isnan(x).any() else [dk.compile(f, x)(x)[1], dk.gradient(f, x).grad]
        for got in (from_mask, from_x, *through_api):  # (dk.gradient refuses a NaN theta, naming the entry)
            np.testing.assert_allclose(np.broadcast_to(got, x.shape), want, rtol=2e-16, atol=0)


def test_max_in_the_replay_runs_the_tables_rule_and_a_scalar_max_too():
    f = lambda t: dk.namespace(t).sum(dk.namespace(t).max(dk.namespace(t).reshape(t, (2, 2)), axis=0))  # noqa: E731
    g, source = _rewritten(f, np.array([1.0, 4.0, 3.0, 2.0]))
    assert "EXTREMUM_RULE(" not in source
    assert g(np.array([1.0, 4.0, 3.0, 2.0]))[1].tolist() == [0.0, 1.0, 1.0, 0.0]  # by hand: the column maxima
    scalar = lambda t: dk.namespace(t).max(t[0] * t[1])  # noqa: E731  (a 0-d max)
    g, source = _rewritten(scalar, np.array([2.0, 3.0]))
    assert g(np.array([2.0, 3.0]))[1].tolist() == [3.0, 2.0]
def test_subtracts_rule_for_a_broadcast_y_sums_before_it_negates_in_eager_mode_and_the_replay():
    def f(t):  # the max's gradient is -sum(g, axis=1): summed first, negated on the (3, 1) result
        xp = dk.namespace(t)
        z = xp.reshape(t, (3, 2))
        return xp.sum(xp.exp(z - xp.max(z, axis=1, keepdims=True)))
    g_rows = np.array([[1.0, 2.0], [-3.0, 0.5], [0.25, 4.0]])
    y_rule = PRIMITIVES["subtract"].vjps[1]
    assert y_rule(g_rows, (3, 1), NUMPY).tolist() == [[-3.0], [2.5], [-4.25]]  # y's shape: no (3, 2) negation
    assert y_rule(g_rows, (), NUMPY) == -4.75 and y_rule(g_rows, (3, 2), NUMPY).tolist() == (-g_rows).tolist()
    theta = np.array([0.5, -1.0, 2.0, 0.25, -0.5, -0.75])
    g, source = _rewritten(f, theta)
    want = dk.reference(f, theta).grad
    np.testing.assert_allclose(g(theta)[1], want, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(dk.gradient(f, theta).grad, want, rtol=1e-14, atol=1e-16)
    same_shape = lambda t: dk.namespace(t).sum(dk.namespace(t).exp(-t))  # noqa: E731  (nothing to sum)
    g, source = _rewritten(same_shape, theta)
    assert "c = -c" not in source
    np.testing.assert_allclose(g(theta)[1], -np.exp(-theta), rtol=1e-15)


def test_has_aux_returns_an_inner_gradient_replayed_with_the_outer_one():
    def f(t):  # value <grad g, v> with g = sum(t^3): grad g = 3 t^2, and the gradient of the value 6 t v
        xp = dk.namespace(t)
        d = dk.vjp(lambda u: dk.namespace(u).sum(u * u * u), t)[1](1.0)
        return xp.sum(d * np.array([1.0, 2.0])), d
    g = dk.compile(f, np.array([1.0, 1.0]), has_aux=True)
    value, grad, aux = g(np.array([2.0, -1.0]))
    assert value == 12.0 + 6.0 and grad.tolist() == [12.0, -12.0] and aux.tolist() == [12.0, 3.0]
    constant = dk.compile(lambda t: (dk.namespace(t).sum(t * t), 5.0), np.ones(2), has_aux=True)
    assert constant(np.array([1.0, 3.0]))[2] == 5.0
    with pytest.raises(ValueError, match="has_aux"):
        dk.compile(lambda t: dk.namespace(t).sum(t), np.ones(2), has_aux=True)


@pytest.mark.parametrize("n", [50, 20_000])
def test_a_view_parents_buffer_starts_from_its_first_contribution(n):
    # y = 2t; f = y_0 + sum(y[:-1] y[1:]) + sum(y y): df/dy_i = y_{i+1} + y_{i-1} + 2 y_i (+ 1 at i = 0),
    # df/dt = 2 df/dy.  The sweep runs backwards: y's buffer starts with the whole 2 y g (whole_first) or
    # with the slice y[1:] (slice_first); past 8192 entries an empty buffer takes the slice, zeroing the rest
    def whole_first(t):
        xp = dk.namespace(t)
        y = t * 2.0
        return y[0] + xp.sum(y[:-1] * y[1:]) + xp.sum(y * y)

    def slice_first(t):
        xp = dk.namespace(t)
        y = t * 2.0
        return y[0] + xp.sum(y * y) + xp.sum(y[:-1] * y[1:])

    t = np.random.default_rng(3).standard_normal(n)
    for sign in (1.0, -1.0):
        y = 2 * sign * t
        dy = 2 * y
        dy[:-1] += y[1:]
        dy[1:] += y[:-1]
        dy[0] += 1.0
        for fn in (whole_first, slice_first):
            compiled, source = _rewritten(fn, t)
            np.testing.assert_allclose(compiled(sign * t)[1], 2 * dy, rtol=1e-14, atol=1e-14)
            assert ("ZEROS(" in source) == (fn is slice_first and n <= 8192), source


def test_a_primitive_off_the_gradient_path_runs_its_value_only_forward():
    # max only picks where's branch (t == max t is a guarded constant): no gradient passes through it, so the
    # replay runs np.maximum.reduce alone, not the hit mask its rule would read.  By hand: 2t at the maximum, 1
    # elsewhere
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(xp.where(t == xp.max(t), t * t, t))
    theta = np.array([0.5, 3.0, -1.0, 2.0])
    g, source = _rewritten(f, theta)
    assert ", r" not in source  # no (value, residual) pair unpacked anywhere
    np.testing.assert_array_equal(g(theta)[1], [1.0, 6.0, 1.0, 1.0])
    np.testing.assert_array_equal(g(theta[::-1].copy())[1], [1.0, 1.0, 6.0, 1.0])


LARGE = 10_000  # past the replay's threshold for summing into a gradient in place (replay._ZEROED_PASS)


def test_a_large_gradient_is_summed_in_place_only_while_nothing_else_holds_its_buffer():
    def f(t):  # d = a + b hands a and b one buffer; c's contribution to a arrives while b still holds it
        xp = dk.namespace(t)
        a = t * 1.0
        b, c = a * 3.0, a * 5.0
        return xp.sum((a + b) * c)  # = 20 sum(t^2): gradient 40 t
    theta = np.linspace(-2.0, 3.0, LARGE)
    g, source = _rewritten(f, theta)
    assert "IADD(" in source
    value, grad = g(theta)
    np.testing.assert_allclose(grad, 40.0 * theta, rtol=1e-15)
    assert value == pytest.approx(20.0 * float(np.sum(theta * theta)), rel=1e-14)

    def lse(t):  # x - max(x): the max's contribution is summed into the buffer of exp's rule, ours alone
        xp = dk.namespace(t)
        top = xp.max(t)
        return top + xp.log(xp.sum(xp.exp(t - top)))
    g, source = _rewritten(lse, theta)
    assert "IADD(" in source
    softmax = np.exp(theta - theta.max()) / np.sum(np.exp(theta - theta.max()))
    np.testing.assert_allclose(g(theta)[1], softmax, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("size", [5, LARGE, 100_000])
def test_every_replay_hands_back_a_gradient_of_its_own_that_the_caller_may_write_to(size):
    sum_all = lambda t: dk.namespace(t).sum(t)  # noqa: E731  (its gradient: a spread 1.0, a view when large)
    theta = np.linspace(0.0, 1.0, size)
    g = dk.compile(sum_all, theta)
    first = g(theta)[1]
    first[:] = -7.0  # a caller's write must reach neither the replay's constants nor the next answer
    second = g(theta)[1]
    assert second.flags.writeable and not np.shares_memory(first, second)
    assert np.all(second == 1.0)


def test_has_aux_replays_an_aux_computed_after_the_value():
    def f(t):  # the value is recorded first, then aux: the replay's forward must run past the value's node
        xp = dk.namespace(t)
        return xp.sum(t * t * t), 3.0 * t * t
    g = dk.compile(f, np.array([1.0, -2.0]), has_aux=True)
    value, grad, aux = g(np.array([2.0, 0.5]))
    assert value == 8.125 and grad.tolist() == [12.0, 0.75] and aux.tolist() == [12.0, 0.75]  # by hand: 3 t^2


def test_a_branch_on_a_value_computed_after_the_output_is_replayed_and_checked():
    def f(t):  # the output, part, is recorded before sum(t), which only the branch reads
        xp = dk.namespace(t)
        part = xp.sum(xp.where(t > 0, t * t, -t))
        return part * 2.0 if xp.sum(t) > 0 else part
    g = dk.compile(f, np.array([-1.0, -2.0, 0.5]))
    # by hand: d/dt of where(t > 0, t^2, -t) is 2t or -1, doubled while sum(t) > 0
    assert g(np.array([-1.0, -3.0, 1.5])) == (6.25, pytest.approx([-1.0, -1.0, 3.0], abs=0)) and g.records == 1
    assert g.value(np.array([-1.0, -3.0, 0.5])) == 4.25
    value, grad = g(np.array([1.0, -0.5, 0.5]))  # sum(t) > 0 now: the branch's guard records again
    assert (value, grad.tolist(), g.records) == (3.5, [4.0, -2.0, 2.0], 2)
    assert g.value(np.array([-1.0, -3.0, 0.5])) == 4.25 and g.records == 3  # back: the value's re-recording
    assert g(np.array([-1.0, -3.0, 0.5]))[1].tolist() == [-1.0, -1.0, 1.0] and g.records == 3  # is the call's too
