"""``dk.compile(f, theta, fuse=True)``: the recording as one numba-compiled function (diffkit/tape/fused.py).

Fused gradients are checked against independent references: the mpmath referee (``dk.reference``), the
hand-written MLP backprop, and derivatives worked by hand.  Each fused program checks itself against the NumPy
replay at the recording's theta only, so every test here calls it somewhere else.  numba compiles each
program for seconds: the fast tests compile four programs; the table-wide test is slow.
"""
from __future__ import annotations

import re
import numpy as np
import pytest

import diffkit as dk
from diffkit import problems
from diffkit.bench_tape import user_mlp
from diffkit.handwritten import mlp_backprop
from diffkit.tape import fused

pytest.importorskip("numba")


def _matches_referee(g, f, theta, rtol: float, atol: float) -> None:
    """The compiled ``g``'s value and gradient at ``theta`` against the mpmath referee's for ``f``."""
    value, grad = g(theta)
    want = dk.reference(f, theta)
    assert value == pytest.approx(want.value, rel=1e-13)
    np.testing.assert_allclose(grad, want.grad, rtol=rtol, atol=atol)


def test_the_user_written_mlp_fuses_and_matches_hand_written_backprop_with_saturated_units():
    prob = problems.mlp_for_size(200, depth=3, n_out=4, activation="tanh", loss="softmax_cross_entropy", l2=1e-3,
                                 batch=8, seed=3)
    f = user_mlp(prob)
    g = dk.compile(f, prob.theta0, fuse=True)
    assert g.fused, g.fuse_reason
    theta = 6.0 * prob.theta0  # large weights: some units saturate (|x| > 3.47), where the rule needs sech^2
    value, grad = g(theta)
    want_value, want_grad = mlp_backprop(prob, theta)
    assert value == pytest.approx(want_value, rel=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-12 * np.abs(want_grad).max())
    assert "for _k in range(" in g.source  # tanh's rule: sech^2 in an element loop, only where saturated


def _many_ops(t):
    """Elementwise maths, broadcasting, reductions with ties, products of vectors, matrices and stacks,
    reshapes, transposes, a concat and a gather with a repeated index: one program, one compile."""
    xp = dk.namespace(t)
    a = xp.reshape(t[:6], (2, 3))
    b = t[6:9]
    stack = xp.reshape(t[9:21], (2, 3, 2))
    picked = t[np.array([0, 4, 4, 7])]  # index 4 twice: its gradient adds up
    top = xp.max(xp.reshape(xp.concat([a[0], xp.asarray([2.0, 2.0, 2.0])]), (2, 3)), axis=1, keepdims=True)
    smooth = xp.sum(xp.exp(a - top)) + xp.sum(xp.log(xp.sqrt(b * b + 1.0))) + xp.sum(xp.sin(a) * xp.cos(b))
    tanh_part = xp.sum(xp.tanh(3.0 * a) * a)
    products = xp.sum(a @ b) + xp.sum(b @ xp.permute_dims(a)) + xp.sum(a @ stack) + xp.min(picked * picked)
    return smooth + tanh_part / (2.0 + xp.sum(a * a)) + products - xp.sum(xp.negative(b) / 3.0) ** 2.0


def _stacks_and_gathers(t):
    """Stacks of matrices times one matrix (one product of the rows), broadcast stacks (small ones as loops,
    larger ones by np.dot per matrix; a stack repeated along leading axes read in place), a stack of arrays,
    and a gather beside a slice with a repeated column."""
    xp = dk.namespace(t)
    a = xp.reshape(t[:6], (2, 3))
    columns = a[:, np.array([2, 0, 2])]
    return (xp.sum(xp.stack([a, a * a]) @ xp.reshape(t[0:6], (3, 2)))
            + xp.sum(xp.reshape(t[9:21], (2, 1, 3, 2)) @ xp.reshape(t[0:12], (3, 2, 2)))
            + xp.sum((xp.reshape(t[0:20], (1, 4, 5)) @ xp.reshape(t[1:21], (2, 5, 2))) ** 2.0) / 7.0
            + xp.sum(xp.sin(columns) * columns)
            + xp.sum(_three(xp, xp.reshape(t[0:20], (4, 5))) @ xp.reshape(_two(xp, xp.reshape(t[1:21], (5, 4))),
                                                                       (2, 1, 5, 4))) / 9.0)


def _three(xp, m):  # (3, 4, 5): a stack of three matrices, read over a (2, 3) stack of products (s % 3)
    return xp.stack([m, m * m, xp.sin(m)])


def _two(xp, m):
    return xp.stack([m, m * m])


def test_a_program_of_many_table_ops_fuses_and_matches_the_mpmath_referee_away_from_its_recording():
    rng = np.random.default_rng(7)
    g = dk.compile(_many_ops, rng.uniform(-1.0, 1.0, 21), fuse=True)
    assert g.fused, g.fuse_reason
    tie = np.r_[[2.0, 1.0, 2.0], rng.uniform(-1.5, 1.5, 18)]  # the max over (2, 1, 2) and a row of 2s: ties
    for theta, certify in ((rng.uniform(-1.5, 1.5, 21), True), (tie, False)):  # (a tie is a kink: the convention)
        value, grad = g(theta)
        want = dk.reference(_many_ops, theta, certify=certify)
        assert value == pytest.approx(want.value, rel=1e-13)
        np.testing.assert_allclose(grad, want.grad, rtol=1e-11, atol=1e-13)


def test_a_costly_operand_broadcast_over_rows_is_computed_once_and_stays_exact():
    rows = np.arange(1.0, 13.0).reshape(4, 3)

    def f(t):
        xp = dk.namespace(t)
        return xp.sum(rows * xp.cos(t) + xp.exp(t) / rows)  # cos(t), exp(t): (3,), read over 4 rows

    g = dk.compile(f, np.array([0.1, 0.2, 0.3]), fuse=True)
    assert g.fused, g.fuse_reason
    assert re.search(r"\bb\d+ = \(np\.cos\(", g.source), g.source  # (exp(t) is read twice: a variable anyway)
    theta = np.array([0.7, -1.3, 2.1])
    value, grad = g(theta)
    sums, inverse_sums = rows.sum(axis=0), (1.0 / rows).sum(axis=0)  # by hand: d/dt_j = -sin(t_j) S_j + exp(t_j) R_j
    assert value == pytest.approx(float(sums @ np.cos(theta) + inverse_sums @ np.exp(theta)), rel=1e-14)
    np.testing.assert_allclose(grad, -np.sin(theta) * sums + np.exp(theta) * inverse_sums, rtol=1e-14)


def test_3d_operands_broadcast_along_trailing_or_middle_axes_are_read_in_place_and_match_the_referee():
    def f(t):
        xp = dk.namespace(t)
        whole = xp.reshape(t[0:24], (2, 3, 4))
        trailing = xp.reshape(t[0:6], (2, 3, 1))  # entry (i, j) for all 4 of the last axis: _k // 4
        middle = xp.reshape(t[6:9], (3, 1))  # entry j for all i and the last axis: (_k // 4) % 3
        return xp.sum(xp.sin(whole * trailing + middle))

    rng = np.random.default_rng(5)
    g = dk.compile(f, rng.uniform(-1.0, 1.0, 24), fuse=True)
    assert g.fused, g.fuse_reason
    assert "[(_k // 4)]" in g.source and "[(_k // 4) % 3]" in g.source, g.source
    theta = rng.uniform(-1.5, 1.5, 24)
    _matches_referee(g, f, theta, rtol=1e-11, atol=1e-13)


def test_a_first_block_is_written_with_zeros_around_it_and_an_indexed_expression_is_computed_where_taken(monkeypatch):
    monkeypatch.setattr(fused, "LOOP_MIN", 2)  # (the loops that large arrays get, on small ones)

    def f(t):
        xp = dk.namespace(t)
        first = t[0]
        whole = xp.sin(t) * 3.0 + t
        block = t[2:5]  # swept first: written into theta's fresh gradient buffer, [0:2] and [5:8] zeroed, no +=
        return whole[-1] * first + xp.sum(xp.sin(block) * block)  # whole[-1]: one entry computed, not eight

    g = dk.compile(f, np.linspace(-1.0, 1.0, 8), fuse=True)
    assert g.fused, g.fuse_reason
    assert re.search(r"t\d+\[0:2\] = 0\.0", g.source) and re.search(r"t\d+\[5:8\] = 0\.0", g.source), g.source
    assert re.search(r"np\.sin\(theta\[-1\]\)", g.source), g.source
    assert re.search(r"t\d+_out\d*\[2 \+ _k\] = ", g.source), g.source  # (the block's expression: one loop into it)
    for theta in (np.array([0.3, -1.2, 0.8, 2.0, -0.4, 1.1, 0.05, -2.5]), np.linspace(2.0, -1.0, 8)):
        g(theta)  # (its gradient, freed at once, is the memory the next call's np.empty hands back)
        value, grad = g(theta)
        want = dk.reference(f, theta)
        assert value == pytest.approx(want.value, rel=1e-13)
        np.testing.assert_allclose(grad, want.grad, rtol=1e-12, atol=1e-14)
        assert grad[1] == 0.0 and grad[5] == 0.0 and grad[6] == 0.0  # the zeroed entries (f does not read them)


def test_blocks_of_rows_are_written_and_added_by_one_loop_at_their_offsets_and_match_the_referee(monkeypatch):
    monkeypatch.setattr(fused, "LOOP_MIN", 2)  # (the loops that large arrays get, on small ones)

    def f(t):
        xp = dk.namespace(t)
        m = xp.reshape(t, (4, 3))
        head = xp.sum(m[0] * m[3])
        middle = xp.sum(xp.sin(m[1:3]) * m[1:3])  # rows 1-2, flat entries 3..8: added into the buffer, one loop
        return head + middle + xp.sum(xp.cos(m[2:4]) * m[2:4])  # rows 2-3, swept first: written at 6..11

    g = dk.compile(f, np.linspace(-1.0, 1.0, 12), fuse=True)
    assert g.fused, g.fuse_reason  # (a wrong offset disagrees with the replay where f was recorded: not fused)
    assert re.search(r"t\d+_out\d*\[6 \+ _k\] = ", g.source), g.source
    assert re.search(r"t\d+_out\d*\[3 \+ _k\] \+= ", g.source), g.source
    theta = np.linspace(0.3, -1.7, 12)
    _matches_referee(g, f, theta, rtol=1e-12, atol=1e-14)


def test_a_looped_block_takes_no_temporarys_number_so_both_writings_name_the_same_temporaries():
    # the first writing (no read counts yet) writes every block as one line; the second loops over large ones.
    # A number taken by the loop's flat view would rename every later temporary in the second writing only, and
    # the read counts that decide inlining would be looked up under the wrong names
    w = fused.Writer(uses={})
    x = fused.Sym(w, "a", (fused.LOOP_MIN,))
    buffer = w.line(f"np.empty(({fused.LOOP_MIN},))", (fused.LOOP_MIN,))
    expression = w.binary("*", x, x)  # (read once: inlined, a tree)
    before = w.count
    w.block(buffer, slice(0, fused.LOOP_MIN), expression, "+=")
    assert w.count == before
    assert any(line.strip().startswith(f"{buffer.text}_out0[_k] += ") for line in w.lines), w.lines


@pytest.mark.parametrize("numpy_faster", [True, False])
def test_an_elementwise_function_of_a_large_array_is_numpys_where_numpys_loop_is_faster(monkeypatch, numpy_faster):
    # where numpy's exp/log/tanh are SIMD (AVX-512) they beat numba's scalar libm calls: the compiled code calls them
    monkeypatch.setattr(fused, "SIMD_MIN", 4)  # (the large-array path, on small arrays)
    monkeypatch.setattr(fused, "_NUMPY_FASTER", {name: numpy_faster for name in ("exp", "log", "tanh")})
    # (on arrays this small a call from the compiled code costs more than it saves: keep the fused program anyway)
    monkeypatch.setattr(fused, "best_times", lambda fused_grad, replay_grad, theta: (1.0e-3, 1.0e-3))

    def f(t):
        xp = dk.namespace(t)
        grid = xp.reshape(t[:12], (3, 4))
        cube = xp.reshape(t[:24], (2, 3, 4))
        return xp.sum(xp.exp(grid * 0.5) * xp.log(2.0 + t[12:16])) + xp.sum(xp.tanh(cube) * cube) + xp.exp(t[0])

    rng = np.random.default_rng(17)
    g = dk.compile(f, rng.uniform(-1.0, 1.0, 24), fuse=True)
    assert g.fused, g.fuse_reason
    calls = re.findall(r"with numba\.objmode\(t\d+='(float64\[[:, ]*::1\])'\):\n\s+t\d+ = np\.(\w+)\(", g.source)
    if numpy_faster:  # 2-D exp, 1-D log, 3-D tanh; exp(t[0]) is one number: numba's
        assert {("float64[:, ::1]", "exp"), ("float64[::1]", "log"), ("float64[:, :, ::1]", "tanh")} <= set(calls), g.source
    else:
        assert not calls, g.source
    _matches_referee(g, f, rng.uniform(-1.5, 1.5, 24), rtol=1e-12, atol=1e-14)


def test_a_concatenation_of_expressions_is_written_part_by_part_and_matches_the_referee(monkeypatch):
    monkeypatch.setattr(fused, "LOOP_MIN", 2)  # (the loops that large arrays get, on small ones)
    row = np.array([0.5, -2.0, 1.5])

    def f(t):
        xp = dk.namespace(t)
        shifted = xp.concat([t[:1], t[1:] * xp.sin(t[:-1])])  # ode's rate: a copied part, then an expression
        grid = xp.reshape(t[0:6], (2, 3))
        last = xp.cos(xp.reshape(t[6:9], (1, 3))) + 1.0
        stacked = xp.concat([xp.exp(grid) * row, grid, last], axis=0)  # (5, 3), with row (3,) read over two rows
        return xp.sum(shifted * shifted) + xp.sum(stacked * xp.reshape(t[0:15] / 3.0, (5, 3)))

    rng = np.random.default_rng(13)
    g = dk.compile(f, rng.uniform(-1.0, 1.0, 15), fuse=True)
    assert g.fused, g.fuse_reason
    assert "np.concatenate" not in g.source, g.source
    assert re.search(r"t\d+_out\d*\[1 \+ _k\] = ", g.source) and re.search(r"t\d+_out\d*\[12 \+ _k\] = ", g.source), g.source
    theta = rng.uniform(-1.5, 1.5, 15)
    _matches_referee(g, f, theta, rtol=1e-11, atol=1e-13)


def test_stacked_products_and_gathers_beside_a_slice_fuse_and_match_the_mpmath_referee():
    rng = np.random.default_rng(11)
    g = dk.compile(_stacks_and_gathers, rng.uniform(-1.0, 1.0, 21), fuse=True)
    assert g.fused, g.fuse_reason
    assert "STACKED_MATMUL(" in g.source  # broadcast stacks: one loop function, compiled once per program
    theta = rng.uniform(-1.5, 1.5, 21)
    _matches_referee(g, _stacks_and_gathers, theta, rtol=1e-11, atol=1e-13)


def _long_program(t):
    """Blocks of t (views: their gradients are added into one buffer, across parts), 3-D arrays elementwise with
    broadcasting, a 3-D transpose, a mask from a comparison (a guard), and a where on a constant condition."""
    xp = dk.namespace(t)
    cube = xp.reshape(t[:24], (2, 3, 4))
    row = xp.reshape(t[4:8], (1, 1, 4))  # broadcast along leading axes: read at a flat index modulo 4
    column = xp.reshape(t[8:16], (2, 1, 4))  # broadcast along a middle axis: copied out to (2, 3, 4)
    total = 0.0
    for k in range(3):
        layer = xp.exp(cube * (0.3 + 0.1 * k)) * (row - cube) + xp.sin(cube) / (2.0 + k) + column * cube
        total = total + xp.sum(xp.permute_dims(layer, (1, 0, 2))[0] * row) + xp.sum(t[k:k + 5] ** 2.0)
    masked = xp.where(t[:6] > 0, t[:6] * t[:6], -t[:6])
    return total + xp.sum(masked) + xp.sum(xp.where(True, t[6:9], t[9:12]) * t[6:9])


def test_a_long_program_is_compiled_in_parts_that_hand_each_other_their_variables(monkeypatch):
    # numba compiles a long function for minutes; past PART_LINES lines the program is cut into functions
    # called in turn: each takes what earlier ones made (the block buffer, updated in place, included)
    monkeypatch.setattr(fused, "PART_LINES", 12)
    rng = np.random.default_rng(5)
    recorded = rng.uniform(-1.0, 1.0, 24)
    g = dk.compile(_long_program, recorded, fuse=True)
    assert g.fused, g.fuse_reason
    program = next(iter(g.programs.values()))
    assert program.grad.parts >= 3 and "for _k in range(24)" in g.source  # 3-D: flat loops, not array expressions
    assert "[_k % 4]" in g.source and "np.broadcast_to(" in g.source
    assert "np.where(True" not in g.source and "RERECORD" in g.source
    theta = rng.uniform(0.2, 1.5, 24) * np.sign(recorded)  # elsewhere, on the recorded mask's side
    value, grad = g(theta)
    assert g.records == 1
    want = dk.reference(_long_program, theta)
    assert value == pytest.approx(want.value, rel=1e-13)
    np.testing.assert_allclose(grad, want.grad, rtol=1e-11, atol=1e-13)
    assert g.value(theta) == pytest.approx(want.value, rel=1e-13)  # the forward alone, compiled on first use
    from diffkit.tape import compiled
    monkeypatch.setattr(compiled, "MAX_FUSED_RERECORDS", 0)  # (recorded again, replayed in NumPy: no compile)
    value, grad = g(-theta)  # the mask's other side: a guard inside a part fails, and f is recorded again
    want = dk.reference(_long_program, -theta)
    assert g.records == 2 and value == pytest.approx(want.value, rel=1e-13)
    np.testing.assert_allclose(grad, want.grad, rtol=1e-11, atol=1e-13)


def test_a_tie_in_max_shares_the_gradient_equally_as_the_table_documents():
    f = lambda t: dk.namespace(t).max(t * 1.0)  # noqa: E731
    g = dk.compile(f, np.array([0.0, 1.0, 2.0]), fuse=True)
    assert g.fused, g.fuse_reason
    assert g(np.array([3.0, 1.0, 3.0]))[1].tolist() == [0.5, 0.0, 0.5]  # by hand: two maxima, half each


def test_has_aux_and_the_forward_alone_are_fused_too():
    def f(t):  # value sum(t^3); aux its gradient 3 t^2, an array of the tape handed back as the caller's own
        xp = dk.namespace(t)
        cube = t * t * t
        return xp.sum(cube), 3.0 * t * t
    g = dk.compile(f, np.array([1.0, -2.0]), fuse=True, has_aux=True)
    assert g.fused, g.fuse_reason
    value, grad, aux = g(np.array([2.0, 0.5]))
    assert value == 8.125 and grad.tolist() == [12.0, 0.75] and aux.tolist() == [12.0, 0.75]
    aux[:] = 0.0  # (the caller's own array)
    assert g(np.array([2.0, 0.5]))[2].tolist() == [12.0, 0.75]
    before = g.compile_s
    assert g.value(np.array([1.0, 3.0])) == 28.0  # the fused forward, compiled on this first use
    assert g.compile_s > before + 0.05  # (its numba compile counts as compile time, as the gradient's does)
    program = next(iter(g.programs.values()))
    assert program.fused and program._forward.parts == 1


def _branchy(t):
    """A mask from a comparison and a Python branch on data: both are guards of the recording."""
    xp = dk.namespace(t)
    part = xp.sum(xp.where(t > 0, t * t, -t))
    return part * 2.0 if xp.sum(t) > 0 else part


def test_a_branch_on_data_is_fused_with_its_guards_and_a_changed_path_records_again(monkeypatch):
    from diffkit.tape import compiled
    monkeypatch.setattr(compiled, "MAX_FUSED_RERECORDS", 1)
    g = dk.compile(_branchy, np.array([0.5, -1.0, 2.0]), fuse=True)
    assert g.fused, g.fuse_reason
    assert "RERECORD" in g.source
    # by hand: d/dt of where(t > 0, t^2, -t) is 2t or -1, doubled while sum(t) > 0
    assert g(np.array([1.0, -2.0, 3.0]))[1].tolist() == [4.0, -2.0, 12.0] and g.records == 1  # the same path
    assert g.value(np.array([-1.0, -2.0, 0.5])) == 3.25  # mask and branch changed: the fused forward's guards
    assert g.records == 2 and g.fused  # (a changed path is fused again, up to MAX_FUSED_RERECORDS times)
    assert g(np.array([-1.0, -2.0, 0.5]))[1].tolist() == [-1.0, -1.0, 1.0]
    assert g(np.array([3.0, 1.0, -1.0]))[1].tolist() == [12.0, 4.0, -2.0]  # changed again: the NumPy replay now
    assert g.records == 3 and not g.fused and "guards failed 2 times" in g.fuse_reason


def test_what_the_writer_cannot_spell_runs_the_numpy_replay_and_says_why(monkeypatch):
    theta = np.array([0.5, -1.0, 2.0])
    running = lambda t: dk.namespace(t).sum(dk.namespace(t).cumulative_sum(t) * t)  # noqa: E731
    g = dk.compile(running, theta, fuse=True)
    assert not g.fused and "cumulative_sum" in g.fuse_reason
    # by hand: d/dt_k sum_i t_i (t_1 + ... + t_i) = cumsum(t)_k + sum_{i >= k} t_i
    assert g(np.array([1.0, -2.0, 3.0]))[1].tolist() == [3.0, 0.0, 5.0]
    monkeypatch.setattr(fused, "MAX_LINES", 2)
    g = dk.compile(lambda t: dk.namespace(t).sum(dk.namespace(t).exp(t) * t), theta, fuse=True)
    assert not g.fused and "more than 2" in g.fuse_reason


def test_a_fused_program_slower_than_the_numpy_replay_where_it_was_recorded_is_not_kept(monkeypatch):
    monkeypatch.setattr(fused, "best_times", lambda fused_grad, replay_grad, theta: (1.2e-3, 1.0e-3))
    g = dk.compile(lambda t: dk.namespace(t).sum(t * t * t), np.array([1.0, 2.0]), fuse=True)
    assert not g.fused and "NumPy replay was faster" in g.fuse_reason and "1.2 ms fused" in g.fuse_reason
    assert g(np.array([2.0, -1.0]))[1].tolist() == [12.0, 3.0]  # 3 t^2, by hand
    monkeypatch.setattr(fused, "best_times", lambda fused_grad, replay_grad, theta: (1.05e-3, 1.0e-3))
    assert dk.compile(lambda t: dk.namespace(t).sum(t * t * t), np.array([1.0, 2.0]), fuse=True).fused  # within 1.1x


def test_a_fused_program_that_disagrees_with_the_replay_is_refused_not_returned(monkeypatch):
    # a writer that spells exp as sin: the check at the recording's theta must catch it, and the replay runs
    monkeypatch.setattr(fused.Writer, "exp", lambda self, x: self.unary("sin", x))
    f = lambda t: dk.namespace(t).sum(dk.namespace(t).exp(t))  # noqa: E731
    g = dk.compile(f, np.array([0.1, 0.2]), fuse=True)
    assert not g.fused and "differs from the NumPy replay" in g.fuse_reason
    np.testing.assert_allclose(g(np.array([1.0, 2.0]))[1], np.exp([1.0, 2.0]), rtol=1e-15)


def test_without_numba_fuse_true_says_how_to_get_it(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == "numba":
            raise ImportError("no numba here")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_numba)
    g = dk.compile(lambda t: dk.namespace(t).sum(t * t), np.array([1.0, 2.0]), fuse=True)
    assert not g.fused and "pip install numba" in g.fuse_reason
    assert g(np.array([3.0, 4.0]))[1].tolist() == [6.0, 8.0]


# --- generated from the table: every differentiable primitive the writer spells, against the catalogue -------

FUSED_AT_LEAST = {"add", "subtract", "multiply", "divide", "negative", "square", "pow", "exp", "log", "sqrt", "sin",
                  "cos", "tanh", "sum", "mean", "max", "min", "matmul", "reshape", "permute_dims", "concat"}


def _weighted(prim, inputs, params, seed):
    from test_primitives import _call, _unpacked
    from diffkit.backends import NUMPY
    f, theta, _ = _unpacked(prim, inputs, params)
    w = np.random.default_rng(seed).standard_normal(np.shape(_call(NUMPY, prim, inputs, params)))
    return f, theta, w


def _spelled(prim, f, theta, w) -> str | None:
    """None when the writer spells f's program; else why not (no numba compile)."""
    from diffkit.tape.core import Tape
    tape = Tape(program=True, record_values=True)
    x = tape.leaf(theta)
    out = dk.namespace(x).sum(f(x) * w)
    try:
        fused.write(tape, out)
    except (fused.NotFusable, TypeError, ValueError, AttributeError, IndexError) as err:
        return f"{type(err).__name__}: {err}"
    return None


@pytest.mark.slow
def test_every_primitive_the_writer_spells_fuses_and_matches_the_catalogue_derivative():
    from test_primitives import DIFFERENTIABLE, catalogue_gradient, draw
    import catalogue as C
    from diffkit.primitives import PRIMITIVES
    spelled, refused = [], {}
    for name in DIFFERENTIABLE:
        prim = PRIMITIVES[name]
        try:
            inputs, params = draw(prim, 1, 0)
        except AssertionError:
            continue
        f, theta, w = _weighted(prim, inputs, params, 5)
        why = _spelled(prim, f, theta, w)
        if why is None:
            spelled.append((name, prim, inputs, params))
        else:
            refused[name] = why
    missing = FUSED_AT_LEAST - {name for name, *_ in spelled}
    assert not missing, {name: refused.get(name) for name in missing}
    for start in range(0, len(spelled), 12):  # one numba compile per batch of primitives, each on its own slice
        batch = spelled[start:start + 12]
        parts, evals, wants, offset = [], [], [], 0
        for name, prim, inputs, params in batch:
            f, theta_eval, w = _weighted(prim, inputs, params, 5)
            recorded, _ = draw(prim, 2, 0)  # the same shapes, other values: the program is recorded there
            _, theta_rec, _ = _weighted(prim, recorded, params, 5)
            parts.append((f, w, slice(offset, offset + theta_eval.size), theta_rec))
            evals.append(theta_eval)
            wants.append(catalogue_gradient(name, prim, inputs, params, w))
            offset += theta_eval.size

        def total(t, parts=parts):
            xp = dk.namespace(t)
            return sum(xp.sum(f(t[part]) * w) for f, w, part, _ in parts)
        g = dk.compile(total, np.concatenate([p[3] for p in parts]), fuse=True)
        names = [b[0] for b in batch]
        assert g.fused, (names, g.fuse_reason)
        _, grad = g(np.concatenate(evals))
        for (name, *_), (_, _, part, _), want in zip(batch, parts, wants):
            rtol = 1e-12 if C.derivative_kind(name) == "scalar" else 1e-9
            np.testing.assert_allclose(grad[part], want, rtol=rtol, atol=rtol * max(1.0, np.abs(want).max()),
                                       err_msg=f"fused rule of {name}")
