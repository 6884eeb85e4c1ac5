"""DOT text for :mod:`diffkit.graph`: the lecture style, collapsed groups, and SymPy expression trees.

>>> fmt_number(-12.0), fmt_number(0.7310585786300049), fmt_number(1.5625e-05)
('-12', '0.73', '1.56e-05')
>>> summary(np.ones((32, 16)))
'32×16, norm 22.6'
"""
from __future__ import annotations

import html
import re
from typing import Any

import numpy as np

__all__ = ["fmt_number", "summary", "graph_body", "graph_dot", "expression_lines", "HEADER"]

VALUE_COLOUR, GRAD_COLOUR = "#1b7a3a", "#c0392b"  # the notes' green forward values, red gradients
HEADER = ['rankdir=LR; nodesep=0.45; ranksep=0.8; bgcolor="white"; fontname="Helvetica";',
          'node [fontname="Helvetica", fontsize=13, color="#333333"];',
          'edge [fontname="Helvetica", fontsize=11, color="#555555", arrowsize=0.7];']


def fmt_number(v: Any, decimals: int = 2) -> str:
    """A number as the notes print it: whole numbers as integers, others to ``decimals`` places."""
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    if v == round(v) and abs(v) < 1e6:
        return str(int(v))
    if 10.0 ** -decimals <= abs(v) < 1e6:
        return f"{v:.{decimals}f}"
    return f"{v:.{decimals}e}"


def summary(value: Any, decimals: int = 2) -> str:
    """A scalar; an array's entries when it has at most three; else its shape and norm."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return fmt_number(arr, decimals)
    if arr.size <= 3:
        return "[" + ", ".join(fmt_number(v, decimals) for v in arr.ravel()) + "]"
    return f"{'×'.join(map(str, arr.shape))}, norm {float(np.linalg.norm(arr)):.3g}"


def _edge_label(value: Any, grad: Any, decimals: int) -> str:
    """Forward value above, gradient below: an HTML-like label of two coloured lines."""
    top = f'<font color="{VALUE_COLOUR}">{html.escape(summary(value, decimals))}</font>'
    if grad is None:
        return f"<{top}>"
    return f'<{top}<br/><font color="{GRAD_COLOUR}">{html.escape(summary(grad, decimals))}</font>>'


def _node_line(node_id: str, node) -> str:
    label = html.escape(node.label)
    if node.is_input:
        return f'{node_id} [shape=plaintext, fontsize=15, label=<<i>{label}</i>>];'
    shape = "circle" if len(node.label) <= 4 else "box, style=rounded"
    named = f'<br/><font point-size="9">{html.escape(node.name)}</font>' if node.name else ""
    return f'{node_id} [shape={shape}, label=<{label}{named}>];'


def _shape_text(value: Any) -> str:
    shape = np.shape(value)
    return "×".join(map(str, shape)) if shape else "scalar"


def _group_line(group_id: str, group: str, members: list, grads: dict, decimals: int) -> str:
    """One box for a group: its name, its gates in order, its inputs' shapes and (in red) their gradients."""
    gates = " → ".join(html.escape(n.label) for n in members if not n.is_input)
    inputs = [n for n in members if n.is_input]
    params = ", ".join(f"{html.escape(n.label)} {_shape_text(n.value)}" for n in inputs)
    sent = ", ".join(f"∂{html.escape(n.label)}: {html.escape(summary(grads[n.index], decimals))}" for n in inputs
                     if n.index in grads)
    sent = f'<br/><font point-size="10" color="{GRAD_COLOUR}">{sent}</font>' if sent else ""
    return (f'{group_id} [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#4a6fa5", '
            f'label=<<b>{html.escape(group)}</b><br/>{gates}<br/><font point-size="10">{params}</font>{sent}>];')


def graph_body(g, collapse: bool, decimals: int = 2, prefix: str = "n", ranks: bool = True) -> list[str]:
    """The node and edge statements of ``g`` (ids start with ``prefix``, so two graphs can share one DOT)."""
    groups = sorted(g.groups, key=lambda name: g.groups[name][0]) if collapse else []  # in tape order
    group_id = {name: f"{prefix}g{k}" for k, name in enumerate(groups)}
    drawn = {i: group_id.get(node.group, f"{prefix}{i}") for i, node in g.nodes.items()}
    lines, grads = [], g.input_gradients()
    for name in groups:
        lines.append(_group_line(group_id[name], name, [g.nodes[i] for i in g.groups[name]], grads, decimals))
    for i, node in g.nodes.items():
        if drawn[i] == f"{prefix}{i}":
            lines.append(_node_line(drawn[i], node))
    out_id = f"{prefix}out"
    lines.append(f'{out_id} [shape=plaintext, fontsize=15, label=<<i>{html.escape(g.output_name)}</i>>];')
    for e in g.edges:
        head = out_id if e.child is None else drawn[e.child]
        if head != drawn[e.parent]:
            lines.append(f"{drawn[e.parent]} -> {head} [label={_edge_label(e.value, e.grad, decimals)}];")
    if ranks:  # scalar inputs on the left, as the notes draw them; a layer's weights stay beside their layer
        scalars = {n.index for n in g.inputs() if drawn[n.index] == f"{prefix}{n.index}" and np.ndim(n.value) == 0}
        first_use = list(dict.fromkeys(e.parent for e in g.edges if e.parent in scalars))
        sources = [f"{prefix}{i}" for i in first_use]
        if sources:  # (invisible flat edges keep them in the order f reads them, top to bottom: no crossings)
            chain = " -> ".join(sources) + " [style=invis];" if len(sources) > 1 else ""
            lines.append("{rank=source; " + "; ".join(sources) + "; " + chain + "}")
        lines.append(f"{{rank=sink; {out_id};}}")
    return lines


def graph_dot(g, collapse: bool, decimals: int = 2) -> str:
    """The whole DOT document of a :class:`~diffkit.graph.Graph`."""
    legend = (f'label=<<font color="{VALUE_COLOUR}">forward value</font> above each edge, '
              f'<font color="{GRAD_COLOUR}">gradient</font> below>; labelloc=b; fontsize=11;')
    name = re.sub(r"[^\w.-]+", "_", g.title) or "G"  # (the SVG's title, shown on hover)
    return "\n".join([f'digraph "{name}" {{', *HEADER, legend, *graph_body(g, collapse, decimals), "}"]) + "\n"


def _expression_label(expr) -> str:
    if expr.is_Symbol or expr.is_Number:
        return str(expr)
    return {"Add": "+", "Mul": "*", "Pow": "^"}.get(type(expr).__name__, type(expr).__name__)


def expression_lines(expr, prefix: str = "e", max_nodes: int = 2000) -> tuple[list[str], list[str]]:
    """A SymPy expression as a tree, leaves on the left: every repeated subexpression drawn again (the swell).

    Returns the DOT lines and the ids of the deepest leaves (where a graph drawn to its left attaches).
    """
    lines, todo, count, deepest, depth_max = [], [(expr, None, 0)], 0, [], -1
    while todo:
        node, parent, depth = todo.pop()
        node_id = f"{prefix}{count}"
        count += 1
        if count > max_nodes:
            raise ValueError(f"the expression tree has more than {max_nodes} nodes; too large to draw")
        leaf = not node.args
        style = 'shape=plaintext, fontsize=13' if leaf else 'shape=circle, fontsize=12, color="#7a4a9a"'
        lines.append(f'{node_id} [{style}, label="{html.escape(_expression_label(node))}"];')
        if parent is not None:
            lines.append(f"{node_id} -> {parent};")
        if leaf and depth >= depth_max:
            deepest, depth_max = ([] if depth > depth_max else deepest) + [node_id], depth
        todo.extend((arg, node_id, depth + 1) for arg in reversed(node.args))
    return lines, deepest
