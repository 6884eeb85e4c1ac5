"""dk.graph against the numbers the lecture notes print on their circuits (seeds 000-002), read back from the DOT.

The references are the seeds' printed numbers and closed forms derived by hand, never diffkit's own gradient.
Rendering tests skip, saying why, where Graphviz's ``dot`` is missing (``apt-get install graphviz``).
"""
from __future__ import annotations

import html
import re
import shutil
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit.graph import GraphvizMissing
from diffkit.graph_dot import GRAD_COLOUR, VALUE_COLOUR
from diffkit.graph_logistic import logistic_map_dot

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (apt-get install graphviz)")

NODE = re.compile(r"^(\w+) \[.*?label=<(.*)>\];$", re.M)
EDGE = re.compile(r"^(\w+) -> (\w+) \[label=<(.*)>\];$", re.M)


def _text(label: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", label)).split()[0] if label.strip() else ""


def _coloured(label: str, colour: str) -> str | None:
    m = re.search(rf'<font color="{colour}">(.*?)</font>', label)
    return html.unescape(m.group(1)) if m else None


def parse(dot: str) -> list[tuple[str, str, str, str | None]]:
    """(parent label, child label, value text, gradient text) per edge of the DOT."""
    labels = {node_id: _text(label) for node_id, label in NODE.findall(dot)}
    return [(labels[a], labels[b], _coloured(label, VALUE_COLOUR), _coloured(label, GRAD_COLOUR))
            for a, b, label in EDGE.findall(dot)]


def edges_from(dot: str, parent: str) -> list[tuple[str, str, str | None]]:
    return [(child, value, grad) for p, child, value, grad in parse(dot) if p == parent]


def matches_print(shown: str, printed: str) -> bool:
    """``shown`` agrees with the notes' ``printed`` number to the precision the notes print."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return round(float(shown), decimals) == float(printed)


def test_seed_circuit_edges_carry_the_printed_values_and_gradients():
    # seed 000: f(x, y, z) = (x + y) z at (-2, 5, -4); q = 3, f = -12; df/dx = df/dy = z = -4, df/dz = q = 3
    edges = {(p, c): (float(v), float(g)) for p, c, v, g in parse(dk.graph(dk.problems.seed_circuit()).to_dot())}
    assert edges == {("x", "+"): (-2, -4), ("y", "+"): (5, -4), ("z", "*"): (-4, 3), ("+", "*"): (3, -4),
                     ("*", "f"): (-12, 1)}


def test_sigmoid_neuron_shows_073_the_local_gradient_02_and_the_printed_gradients():
    # seeds 000/001: sigma(w0 x0 + w1 x1 + w2) at w = (2, -3, -3), x = (-1, -2) is 0.73; the sigmoid's local
    # gradient (1 - 0.73) 0.73 = 0.2 reaches every input of the add gates; then w0: -0.2, x0: 0.39 (printed
    # [2] x [0.2] = 0.4 before rounding the 0.2), w1: -0.39, x1: -0.59, w2: 0.2
    dot = dk.graph(dk.problems.seed_sigmoid_neuron()).to_dot()
    (_, value, grad), = edges_from(dot, "σ")
    assert matches_print(value, "0.73") and matches_print(grad, "1.00")
    (into_sigmoid,) = [g for p, c, v, g in parse(dot) if c == "σ"]
    assert matches_print(into_sigmoid, "0.2")
    printed = {"w0": ("2", "-0.2"), "x0": ("-1", "0.39"), "w1": ("-3", "-0.39"), "x1": ("-2", "-0.59"),
               "w2": ("-3", "0.2")}
    for name, (value, grad) in printed.items():
        (_, shown_value, shown_grad), = edges_from(dot, name)
        assert matches_print(shown_value, value) and matches_print(shown_grad, grad), name


def test_relu_chain_copy_gate_adds_its_gradients_and_w1_gets_80():
    # seed 003: L = (w2 relu(w1 x) - y)^2 / 2 at x = 5, w1 = 1, w2 = 2, y = 2: d = 8, dL/dw1 = 5 * 1 * 2 * 8 = 80.
    # 0.5 * d * d reads d twice: the copy gate of seed 002 sends back 4 + 4 = 8 = dL/dd
    dot = dk.graph(dk.problems.seed_relu_chain()).to_dot()
    assert [float(g) for _, _, g in edges_from(dot, "w1")] == [80]
    assert [float(g) for _, _, g in edges_from(dot, "w2")] == [5 * 8]  # relu(5) * (y_hat - y)
    copies = edges_from(dot, "−")
    assert [float(v) for _, v, _ in copies] == [8, 8] and sum(float(g) for _, _, g in copies) == 8
    assert [float(g) for p, c, v, g in parse(dot) if c == "−"] == [8]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=3, max_size=3))
def test_circuit_gradients_land_on_the_right_edges(theta):
    # by hand: df/dx = df/dy = z, df/dz = x + y, and the + gate's output edge carries x + y forward, z back
    x, y, z = theta
    edges = {(p, c): (float(v), float(g)) for p, c, v, g in
             parse(dk.graph(dk.problems.seed_circuit(), np.array(theta)).to_dot(decimals=6))}
    expect = {("x", "+"): (x, z), ("y", "+"): (y, z), ("z", "*"): (z, x + y), ("+", "*"): (x + y, z),
              ("*", "f"): ((x + y) * z, 1.0)}
    assert edges.keys() == expect.keys()
    for key, pair in expect.items():
        for shown, exact in zip(edges[key], pair):
            assert abs(shown - exact) <= 1e-6 * max(1.0, abs(exact)), (key, shown, exact)


def test_repeated_values_are_named_by_the_component_f_reads():
    # b and c are both -3; f reads c first: its edge must carry c's gradient (10), b's must carry 1
    dot = dk.graph(lambda t: t[2] * 10.0 + t[1], np.array([0.0, -3.0, -3.0]), names=["a", "b", "c"]).to_dot()
    assert [float(g) for _, _, g in edges_from(dot, "c")] == [10]
    assert [float(g) for _, _, g in edges_from(dot, "b")] == [1]


def test_user_names_label_gates_and_do_nothing_outside_a_graph():
    def f(t):
        q = dk.name(t[0] + t[1], "q")
        return dk.name(q * t[2], "out")
    g = dk.graph(f, np.array([-2.0, 5.0, -4.0]), names=["x", "y", "z"])
    assert [n.name for n in g.gates()] == ["q", "out"]
    assert '<br/><font point-size="9">q</font>' in g.to_dot()
    assert dk.gradient(f, np.array([-2.0, 5.0, -4.0])).grad.tolist() == [-4.0, -4.0, 3.0]


def _deep_mlp():
    # ten dense layers of 32: P = 9 * (32 * 32 + 32) + 32 * 10 + 10 = 9834 ~ 1e4, 44 nodes with the L2 term
    return dk.problems.mlp([32] * 10 + [10], activation="tanh", l2=1e-3)


def test_array_edges_show_shape_and_norm():
    prob = _deep_mlp()
    dot = dk.graph(prob).to_dot(collapse=False)
    (_, value, grad), = edges_from(dot, "W1")
    w1 = prob.theta0[:32 * 32]  # the layout: W1 first, row-major (problems module docstring)
    assert value == f"32×32, norm {np.linalg.norm(w1):.3g}"
    assert grad.startswith("32×32, norm ")
    assert [v for _, v, _ in edges_from(dot, "b1")] == [f"32, norm {np.linalg.norm(prob.theta0[9536:9568]):.3g}"]


def test_mlp_over_40_nodes_collapses_into_one_box_per_dense_layer():
    g = dk.graph(_deep_mlp())
    assert len(g.nodes) > 40 and g.collapses()
    dot = g.to_dot()
    boxes = re.findall(r"<b>(layer \d+)</b><br/>([^<]*)", dot)
    assert [b for b, _ in boxes] == [f"layer {k}" for k in range(1, 11)]
    assert {html.unescape(ops) for _, ops in boxes[:9]} == {"affine → tanh"} and boxes[9][1] == "affine"
    assert "label=<affine>" not in dot and dot.count(" -> ") < 20
    expanded = g.to_dot(collapse=False)
    assert expanded.count("label=<affine>") == 10 and "<b>layer" not in expanded
    small = dk.graph(dk.problems.mlp([4, 16, 3]))
    assert not small.collapses() and small.collapses(True)


@needs_dot
def test_mlp_of_p_1e4_renders_collapsed(tmp_path):
    prob = _deep_mlp()
    start = time.perf_counter()
    path = dk.graph(prob).render(tmp_path / "mlp.svg")
    elapsed = time.perf_counter() - start
    svg = path.read_text()
    assert re.search(r'<svg width="\d+pt" height="\d+pt"', svg) and "layer 10" in svg
    print(f"P = {prob.size}: recorded, swept and rendered collapsed in {elapsed:.3f} s")  # (no timed assert)


def svg_edge_numbers(svg: str) -> set[tuple[float, float]]:
    """(forward value, gradient) per drawn edge, read from the SVG's text by colour."""
    pairs = set()
    for group in re.findall(r'<g id="[^"]*" class="edge">(.*?)</g>', svg, re.S):
        value = re.findall(rf'fill="{VALUE_COLOUR}">([^<]*)</text>', group)
        grad = re.findall(rf'fill="{GRAD_COLOUR}">([^<]*)</text>', group)
        if value and grad:
            pairs.add((float(html.unescape(value[0])), float(html.unescape(grad[0]))))
    return pairs


@needs_dot
def test_png_render_and_the_seed_numbers_in_the_svg(tmp_path):
    g = dk.graph(dk.problems.seed_circuit())
    assert g.render(tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = g.render(tmp_path / "c.svg").read_text()
    assert svg_edge_numbers(svg) == {(-2, -4), (5, -4), (3, -4), (-4, 3), (-12, 1)}  # seed 000


def test_missing_dot_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on an empty PATH
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz"):
        dk.graph(dk.problems.seed_circuit()).render(tmp_path / "c.svg")
    assert not (tmp_path / "c.svg").exists()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="names has 2 entries; theta has 3"):
        dk.graph(dk.problems.seed_circuit(), names=["a", "b"])
    with pytest.raises(ValueError, match="scalar functions"):
        dk.graph(lambda t: t * 2.0, np.ones(2))
    with pytest.raises(ValueError, match="does not depend on theta"):
        dk.graph(lambda t: 1.0, np.ones(2))
    with pytest.raises(ValueError, match="format must be 'svg' or 'png'"):
        dk.graph(dk.problems.seed_circuit()).render("c.pdf")


def test_logistic_map_tape_beside_the_sympy_tree():
    # l2 = 4x(1 - x): dl2/dx = 4 - 8x (Baydin et al. Table 1), a tree of 5 nodes: Add(4, Mul(-8, x));
    # on the tape x feeds 4x and 1 - x, sending back 4(1 - x) = 3 and -4x = -1 at x = 0.25: 3 - 1 = 2 = 4 - 8x
    dot = logistic_map_dot(2, x=0.25)
    tape, tree = dot.split("subgraph cluster_sympy")
    assert len(re.findall(r"^e2_\d+ \[", tree, re.M)) == 5
    grads = sorted(float(g) for _, _, g in edges_from(tape, "x"))
    assert grads == [-1, 3] and sum(grads) == 4 - 8 * 0.25
    together = logistic_map_dot([1, 2, 3, 4])
    sizes = [len(re.findall(rf"^e{n}_\d+ \[", together, re.M)) for n in (1, 2, 3, 4)]
    assert sizes[0] == 1 and all(b > 2 * a for a, b in zip(sizes[1:], sizes[2:]))  # the swell: more than doubling


def test_cli_writes_dot_and_svg(tmp_path, capsys):
    from diffkit.cli import main

    assert main(["graph", "--problem", "seed_circuit", "--out", str(tmp_path / "c.dot")]) == 0
    edges = {(p, c): (float(v), float(g)) for p, c, v, g in parse((tmp_path / "c.dot").read_text())}
    assert edges[("z", "*")] == (-4, 3)
    with pytest.raises(SystemExit) as exit_:
        main(["graph", "--problem", "seed_circuit", "--out", str(tmp_path / "c.pdf")])
    assert exit_.value.code == 2 and "end it in .svg, .png or .dot" in capsys.readouterr().err
    assert not (tmp_path / "c.pdf").exists()
    if shutil.which("dot"):
        out = tmp_path / "mlp.svg"
        assert main(["graph", "--problem", "mlp", "--layers", "4,16,3", "--collapse", "--out", str(out)]) == 0
        assert "layer 2" in out.read_text()


def test_sigmoid_neuron_gate_by_gate():
    # by hand at w = (2, -3, -3), x = (-1, -2): the gates' values -1, e^-1 = 0.37, 1 + e^-1 = 1.37, 1/1.37 = 0.73;
    # back: d(1/u)/du = -1/u^2 = -0.53, through +1 unchanged, times e^-1 through exp: -0.20, times -1: 0.20
    from diffkit.report.graphs import sigmoid_neuron_gates

    g = dk.graph(sigmoid_neuron_gates())
    assert [n.label for n in g.gates()] == ["*", "*", "+", "+", "*-1", "exp", "+1", "/"]  # the notes' gates
    edges = parse(g.to_dot())
    chain = {c: (float(v), float(g)) for p, c, v, g in edges if c in ("exp", "/", "f") or p == "exp"}
    u = 1 + np.exp(-1.0)
    assert chain["exp"] == (-1, round(-np.exp(-1) / u ** 2, 2))
    assert chain["/"] == (round(u, 2), round(-1 / u ** 2, 2)) and chain["f"] == (round(1 / u, 2), 1)
    assert round(-1 / u ** 2, 2) == -0.53 and round(u, 2) == 1.37
    inputs = {p: float(g) for p, c, v, g in edges if p in ("w0", "x0", "w1", "x1", "w2")}
    assert inputs == {"w0": -0.2, "x0": 0.39, "w1": -0.39, "x1": -0.59, "w2": 0.2}  # as with the sigmoid gate


def test_theta_used_whole_and_strided_reads_are_inputs_of_their_own():
    # f = sum(t * t) + sum(t[::2]) + t[1]: by hand, t * t sends 2t back (t for each of its two uses), the strided
    # read gets ones, t[1] gets 1
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(t * t) + xp.sum(t[::2]) + t[1]
    theta = np.array([0.5, -1.0, 2.0, 3.0])
    g = dk.graph(f, theta)
    grads = {g.nodes[i].label: np.asarray(v).tolist() for i, v in g.input_gradients().items()}
    assert grads == {"theta": (2 * theta).tolist(), "theta[…]": [1.0, 1.0], "theta[1]": 1.0}


def test_gate_patterns_distribute_route_and_switch():
    # seed 001 at x = 3, y = -4, z = 2, w = -1, f = 2(xy + max(z, w)): upstream of the add gate is 2; add
    # distributes 2 to both; max routes 2 to z (the larger) and 0 to w; mul switches: x gets 2y = -8, y gets 2x = 6
    from diffkit.report.graphs import gate_patterns

    edges = {(p, c): (float(v), float(g)) for p, c, v, g in parse(dk.graph(gate_patterns()).to_dot())}
    assert edges == {("x", "*"): (3, -8), ("y", "*"): (-4, 6), ("z", "max"): (2, 2), ("w", "max"): (-1, 0),
                     ("*", "+"): (-12, 2), ("max", "+"): (2, 2), ("+", "*2"): (-10, 2), ("*2", "f"): (-20, 1)}


def test_user_groups_collapse_into_one_box():
    def f(t):
        xp = dk.namespace(t)
        h = dk.name(xp.tanh(dk.name(t[0] * t[1], "enc/z")), "enc/a")  # tanh(z): 2 gates in group "enc"
        return h * t[2]
    g = dk.graph(f, np.array([0.5, 2.0, 3.0]), names=["w", "x", "v"])
    assert g.groups == {"enc": [g.gates()[0].index, g.gates()[1].index]}
    dot = g.to_dot(collapse=True)
    assert "<b>enc</b><br/>*" in dot and "tanh" in dot and "label=<tanh" not in dot
    # the box's outgoing edge carries tanh(1) forward and 3 back: v's value times the upstream 1
    (box_edge,) = [(float(v), float(gr)) for p, c, v, gr in parse(dot) if p == "enc"]
    assert abs(box_edge[0] - np.tanh(1.0)) < 0.005 and box_edge[1] == 3
