"""Section 2's computational graphs: the seeds' worked examples drawn by :func:`diffkit.graph`, as the notes draw
them, each number on its edge.  Drawn live from the problems (no study needed), as SVG, inlined in the HTML.

>>> "seed_circuit" in [problem for problem, _ in SEED_GRAPHS]
True
>>> inline_svg('<?xml version="1.0"?>\\n<!DOCTYPE svg>\\n<svg id="graph0"><g id="node1"/></svg>', "c")
'<svg id="c-graph0"><g id="c-node1"/></svg>'
"""
from __future__ import annotations

import re
from pathlib import Path

from .document import Figure, Heading, Missing, Para

__all__ = ["SEED_GRAPHS", "LOGISTIC", "write_graphs", "graph_blocks", "logistic_blocks", "inline_svg"]

# (problem, caption): the numbers each caption states are the ones the seeds print
SEED_GRAPHS = (
    ("seed_circuit", "f(x, y, z) = (x + y)z at x = −2, y = 5, z = −4 (seed 000): q = 3 and f = −12 forward; "
                     "the add gate distributes ∂f/∂q = z = −4 to x and y, the mul gate sends q = 3 to z."),
    ("seed_sigmoid_neuron", "The 2-D sigmoid neuron σ(w0·x0 + w1·x1 + w2) at w = (2, −3, −3), x = (−1, −2) "
                            "(seeds 000, 001): f = 0.73, the sigmoid's local gradient (1 − 0.73)·0.73 = 0.2, then "
                            "∂f/∂w0 = −0.2, ∂f/∂x0 = 0.39, ∂f/∂w1 = −0.39, ∂f/∂x1 = −0.59, ∂f/∂w2 = 0.2."),
    ("seed_relu_chain", "The scalar chain L = ½(w2·relu(w1·x) − y)² at x = 5, w1 = 1, w2 = 2, y = 2 (seed 003): "
                        "∂L/∂w1 = 5·1·2·8 = 80; ŷ − y = 8 is read twice, and the copy gate adds 4 + 4 (seed 002)."),
)
GATES = "graph_sigmoid_neuron_gates"  # the neuron as the notes first draw it, one gate per operation
GATES_CAPTION = ("The same neuron gate by gate, 1 / (1 + exp(−(w0·x0 + w1·x1 + w2))), as the notes draw it first "
                 "(seed 000): the gradients at the inputs are the same as with the one sigmoid gate.")
PATTERNS = "graph_gate_patterns"  # seed 001's add, max and mul gates
PATTERNS_CAPTION = ("The patterns in backward flow (seed 001), f = 2(x·y + max(z, w)) at x = 3, y = −4, z = 2, "
                    "w = −1: the add gate distributes its gradient to both inputs, the max gate routes it to the "
                    "larger input only, and the mul gate switches its inputs: each receives the other's value "
                    "times the upstream gradient.")
LOGISTIC = "graph_logistic_map"  # section 6: Baydin's logistic map, tape beside SymPy, n = 1..4
LOGISTIC_CAPTION = ("The logistic map l₁ = x, lₙ₊₁ = 4lₙ(1 − lₙ) for n = 1 to 4, top to bottom. Left: the tape of lₙ, "
                    "one node per operation, with its values and gradients at x = 0.25. Right: SymPy's expression "
                    "tree of dlₙ/dx, every repeated subexpression drawn again; its size is in each box's title.")
INTRO = ("The same three examples as computational graphs, drawn from diffkit's tape (`dk.graph`): inputs on the "
         "left, each gate labelled by its operation, the forward value above each edge (green) and the gradient "
         "that the backward sweep sent along it below (red).")


def sigmoid_neuron_gates():
    """The seed neuron as one gate per operation (``*``, ``+``, ``*-1``, ``exp``, ``+``, ``/``), and its theta0."""
    import diffkit as dk

    prob = dk.problems.seed_sigmoid_neuron()

    def f(theta):
        xp = dk.namespace(theta)
        w0, w1, w2, x0, x1 = (theta[i] for i in range(5))
        return 1.0 / (1.0 + xp.exp(-(w0 * x0 + w1 * x1 + w2)))
    return dk.problems.Problem("sigmoid_neuron_gates", f, prob.theta0, prob.blocks, meta=prob.meta)


def gate_patterns():
    """Seed 001's example of the add (distributor), max (router) and mul (switcher) gates, and its theta0."""
    import numpy as np

    import diffkit as dk
    from diffkit.problems import Block

    def f(theta):
        xp = dk.namespace(theta)
        x, y, z, w = (theta[i] for i in range(4))
        return (x * y + xp.maximum(z, w)) * 2.0
    blocks = tuple(Block(n, (), i) for i, n in enumerate("xyzw"))
    return dk.problems.Problem("gate_patterns", f, np.array([3.0, -4.0, 2.0, -1.0]), blocks, meta={"seed": "001"})


def _name(problem: str) -> str:
    return f"graph_{problem}"


def write_graphs(out: Path) -> tuple[list[str], dict[str, str]]:
    """Draw each seed's graph as ``out/graph_<problem>.svg``; return (names written, {name: why missing})."""
    import diffkit as dk
    from diffkit.graph import GraphvizMissing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from diffkit.graph_logistic import logistic_map_dot

    drawers = {_name(problem): (lambda p=problem: dk.graph(dk.problems.catalogue()[p]()).to_dot())
               for problem, _ in SEED_GRAPHS}
    drawers[GATES] = lambda: dk.graph(sigmoid_neuron_gates()).to_dot()
    drawers[PATTERNS] = lambda: dk.graph(gate_patterns()).to_dot()
    drawers[LOGISTIC] = lambda: logistic_map_dot([1, 2, 3, 4])
    written, missing = [], {}
    for name, dot in drawers.items():
        try:
            (out / f"{name}.svg").write_bytes(dk.graph.render_dot(dot(), "svg"))
        except GraphvizMissing as err:
            missing[name] = str(err)
            continue
        written.append(name)
    return written, missing


def graph_blocks(figures, missing: dict) -> list:
    """The blocks of section 2's graphs: a figure per seed, or a note saying what is missing."""
    blocks = [Heading(3, "The worked examples as computational graphs"), Para(INTRO)]
    for problem, caption in SEED_GRAPHS:
        name = _name(problem)
        if name in figures:
            blocks.append(Figure(name, caption, (), inline_svg=True))
        else:
            blocks.append(Missing(f"The graph of {problem}", missing.get(name, "not drawn")))
        if problem == "seed_sigmoid_neuron" and GATES in figures:
            blocks.append(Figure(GATES, GATES_CAPTION, (), inline_svg=True))
    if PATTERNS in figures:
        blocks.append(Figure(PATTERNS, PATTERNS_CAPTION, (), inline_svg=True))
    return blocks


def logistic_blocks(figures, missing: dict) -> list:
    """Section 6's side-by-side drawing of the logistic map, or a note saying what is missing."""
    blocks = [Heading(3, "The logistic map: the tape beside the symbolic derivative")]
    if LOGISTIC in figures:
        return blocks + [Figure(LOGISTIC, LOGISTIC_CAPTION, (), inline_svg=True)]
    return blocks + [Missing("The logistic-map graphs", missing.get(LOGISTIC, "not drawn"))]


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text ready to sit inside HTML: no XML prolog or doctype, its ids prefixed (unique per page)."""
    svg = re.sub(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", "", svg, flags=re.S).strip()
    return re.sub(r'\bid="', f'id="{prefix}-', svg)
