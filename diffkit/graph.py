"""Computational graphs drawn as the lecture notes draw them (seeds 000-002).

``dk.graph(f, theta)`` records ``f`` on the reverse tape, sweeps it backward
once, and keeps what the notes write on their circuits: each gate's op, the
forward value carried by each edge (drawn above it, green) and the gradient
that the backward sweep sent along it (below it, red).  Inputs are on the
left, the output on the right.

>>> import numpy as np, diffkit as dk
>>> g = dk.graph(dk.problems.seed_circuit())
>>> [(e.parent_name, e.child_name, float(e.value), float(e.grad)) for e in g.edges]  # doctest: +NORMALIZE_WHITESPACE
[('x', '+', -2.0, -4.0), ('y', '+', 5.0, -4.0), ('+', '*', 3.0, -4.0), ('z', '*', -4.0, 3.0),
 ('*', 'f', -12.0, 1.0)]
>>> g
Graph(seed_circuit: 3 inputs, 2 gates, 5 edges, 0 groups)
>>> "digraph" in g.to_dot()
True

Indexing theta (``x, y, z = t[0], t[1], t[2]``) is drawn as named inputs:
the names come from ``names=``, a problem's component names (``W2`` for a
whole block, ``x`` for a scalar), or :func:`name` inside ``f``.  Edges that
carry arrays show their shape and a summary (the entries when there are at
most three, else the norm).  A graph of more than ``max_nodes`` (40) nodes
collapses into named groups (one box per dense layer of an MLP, from the
blocks ``W<l>``, ``b<l>``); ``collapse=False`` expands it.
"""
from __future__ import annotations

import contextvars
import re
import sys
import types
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["graph", "name", "Graph", "Node", "Edge", "render_dot", "GraphvizMissing", "MAX_NODES"]

MAX_NODES = 40  # more nodes than this and the drawing collapses into groups (issue 18)
GATE_SYMBOLS = {"add": "+", "subtract": "−", "multiply": "*", "divide": "/", "negative": "*-1", "matmul": "@",
                "power": "^", "sigmoid": "σ", "maximum": "max", "minimum": "min", "reciprocal": "1/x",
                "getitem": "[ ]"}
INSTALL_HINT = ("Graphviz's `dot` program is needed to draw graphs: install it with `apt-get install graphviz` "
                "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`, and the Python "
                "package with `pip install 'diffkit[graph]'`; DOT text (Graph.to_dot) needs neither")

# The names given with dk.name while dk.graph records f: (tape, {node index: name}).
_RECORDING: contextvars.ContextVar = contextvars.ContextVar("diffkit_graph_names", default=None)


class GraphvizMissing(RuntimeError):
    """Graphviz (the ``dot`` program or the ``graphviz`` Python package) is not installed."""


def name(x: Any, label: str) -> Any:
    """Name the node ``x`` in a graph that :func:`graph` is drawing; return ``x`` unchanged.

    Outside ``dk.graph`` (a plain run, ``dk.gradient``) it does nothing, so
    ``f`` may call it unconditionally.  A ``"group/name"`` label also puts the
    node in that group when the graph collapses.

    >>> import numpy as np, diffkit as dk
    >>> def f(t):
    ...     z1 = dk.name(t[0] * t[1], "z1")
    ...     return z1 + t[2]
    >>> [n.name for n in dk.graph(f, np.array([1.0, 2.0, 3.0]), names=["a", "b", "c"]).gates()]
    ['z1', None]
    >>> dk.name(3.0, "ignored")
    3.0
    """
    recording = _RECORDING.get()
    if recording is not None and getattr(x, "tape", None) is recording[0]:
        recording[1][x.index] = str(label)
    return x


@dataclass(frozen=True)
class Node:
    """One drawn node: an input (a component or block of theta, or theta itself) or a gate."""

    index: int  # the tape node
    op: str  # the primitive ("input" for inputs)
    value: Any  # its forward value
    name: str | None = None
    group: str | None = None
    constant: str = ""  # "+1", "*-1": the notes' c + x and a x gates, read off a scalar gate's values

    @property
    def is_input(self) -> bool:
        return self.op == "input"

    @property
    def label(self) -> str:
        """What the drawing writes: an input's name, else the gate's symbol."""
        if self.is_input:
            return self.name or f"node {self.index}"
        return self.constant or GATE_SYMBOLS.get(self.op, self.op)


def _constant(tape, i: int) -> str:
    """``+c`` or ``*c`` for an add or multiply of one tape scalar and a constant (commutative, so its value and
    its parent's say what c is); empty otherwise."""
    op, parents = tape.op_name(i), tape.parents(i)
    if op not in ("add", "multiply") or len(parents) != 1 or np.ndim(tape.values[i]) or np.ndim(
            tape.values[parents[0]]):
        return ""
    value, x = float(tape.values[i]), float(tape.values[parents[0]])
    if op == "add":
        c = format(value - x, ".4g")
        return c if c.startswith("-") else f"+{c}"
    return f"*{value / x:.4g}" if x != 0 else ""


@dataclass(frozen=True)
class Edge:
    """``parent -> child``: the forward value the parent sends, and the gradient the sweep sent back.

    ``child`` is None for the edge leaving the output (its gradient is the
    cotangent the sweep started from, 1 for a loss).  ``grad`` is None where
    the sweep sent nothing (a constant branch).
    """

    parent: int
    child: int | None
    value: Any
    grad: Any
    parent_name: str = ""
    child_name: str = ""


@dataclass
class Graph:
    """A recorded function: nodes in tape order, edges, and the output node.  See :func:`graph`."""

    nodes: dict[int, Node]
    edges: list[Edge]
    output: int
    output_name: str = "f"
    title: str = ""
    groups: dict[str, list[int]] = field(default_factory=dict)

    def gates(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.is_input]

    def inputs(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_input]

    def input_gradients(self) -> dict[int, Any]:
        """Each input node's gradient: the sum over its outgoing edges (fan-out adds, seed 002's copy gate).

        >>> import diffkit as dk
        >>> g = dk.graph(dk.problems.seed_relu_chain())
        >>> {g.nodes[i].label: float(v) for i, v in g.input_gradients().items()}
        {'w1': 80.0, 'w2': 40.0}
        """
        total: dict[int, Any] = {}
        for e in self.edges:
            if self.nodes[e.parent].is_input and e.grad is not None:
                total[e.parent] = total.get(e.parent, 0) + e.grad
        return total

    def collapses(self, collapse: bool | None = None, max_nodes: int = MAX_NODES) -> bool:
        """Whether the drawing collapses: ``collapse`` if given, else when it has more than ``max_nodes`` nodes
        and some groups to collapse into."""
        if collapse is None:
            return bool(self.groups) and len(self.nodes) > max_nodes
        return bool(collapse) and bool(self.groups)

    def to_dot(self, collapse: bool | None = None, *, max_nodes: int = MAX_NODES, decimals: int = 2) -> str:
        """Graphviz DOT text (``collapse``: None collapses graphs over ``max_nodes`` nodes, True/False force)."""
        from .graph_dot import graph_dot

        return graph_dot(self, self.collapses(collapse, max_nodes), decimals)

    def __repr__(self) -> str:
        return (f"Graph({self.title or 'f'}: {len(self.inputs())} inputs, {len(self.gates())} gates, "
                f"{len(self.edges)} edges, {len(self.groups)} groups)")

    def _repr_svg_(self) -> str | None:
        """Jupyter shows the drawing (nothing, so the repr, without Graphviz)."""
        try:
            return render_dot(self.to_dot(), "svg").decode("utf-8")
        except GraphvizMissing:
            return None

    def render(self, path, format: str | None = None, *, collapse: bool | None = None,
               max_nodes: int = MAX_NODES, decimals: int = 2) -> Path:
        """Draw the graph to ``path`` (``format`` ``"svg"`` or ``"png"``, default from the suffix); return the path.

        Raises :class:`GraphvizMissing`, saying how to install it, without Graphviz.
        """
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".") or "svg").lower()
        data = render_dot(self.to_dot(collapse, max_nodes=max_nodes, decimals=decimals), fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")  # written whole, then moved: nothing half-written
        tmp.write_bytes(data)
        tmp.replace(path)
        return path


def render_dot(dot: str, format: str = "svg") -> bytes:
    """DOT text drawn by Graphviz's ``dot`` as ``svg`` or ``png`` bytes."""
    if format not in ("svg", "png"):
        raise ValueError(f"format must be 'svg' or 'png'; got {format!r}")
    try:
        import graphviz
    except ImportError:
        raise GraphvizMissing(f"the graphviz Python package is not installed. {INSTALL_HINT}") from None
    try:
        return graphviz.Source(dot).pipe(format=format, engine="dot")
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing(f"the `dot` program was not found on PATH. {INSTALL_HINT}") from None


def graph(f: Any, theta: Any = None, *, names: Any = None, cotangent: float = 1.0, output_name: str = "f") -> Graph:
    """Record ``f`` (a function of theta, or a :class:`~diffkit.problems.Problem`) at ``theta`` as a :class:`Graph`.

    ``names``: one name per component of theta (a list), or a function of the
    flat index; a Problem names its own.  ``cotangent`` is the gradient the
    backward sweep starts from (1: d f / d f).
    """
    from .methods import resolve
    from .problems import Problem

    fn, theta, namer = resolve(f, theta)
    blocks = f.blocks if isinstance(f, Problem) else ()
    if names is not None:
        namer = _namer(names, theta.size)
    theta = np.ascontiguousarray(theta)  # views of it locate the blocks an MLP reads
    tape, leaf, out, user_names, sent = _record(fn, theta, cotangent)
    kept = _ancestors(tape, out.index)
    reads = _reads_of_leaf(tape, kept, leaf.index)  # t[0], t[a:b], t[::2]: each drawn as an input of its own
    where = _components(fn, theta, tape, reads)
    nodes = {}
    for i in sorted(kept):
        if i == leaf.index and not _leaf_drawn(tape, kept, leaf.index):
            continue
        if i in reads or i == leaf.index:
            span = where.get(i, range(theta.size)) if i == leaf.index or i in where else None
            label = user_names.get(i) or (_span_name(span, theta.size, namer, blocks) if span else "theta[…]")
            nodes[i] = Node(i, "input", tape.values[i], label, _group(label))
        else:
            label = user_names.get(i)
            nodes[i] = Node(i, tape.op_name(i), tape.values[i], label, _group(label), _constant(tape, i))
    nodes = _inherit_groups(nodes, tape)
    edges = _edges(tape, nodes, sent)
    edges.append(Edge(out.index, None, out.value, np.asarray(cotangent, dtype=float), nodes[out.index].label,
                      output_name))
    groups: dict[str, list[int]] = defaultdict(list)
    for node in nodes.values():
        if node.group is not None:
            groups[node.group].append(node.index)
    title = f.name if isinstance(f, Problem) else getattr(f, "__name__", "")
    return Graph(nodes, edges, out.index, output_name, title, {g: m for g, m in groups.items() if len(m) > 1})


def _record(fn, theta: np.ndarray, cotangent: float):
    """f on a tape that keeps every node's value, swept once: (tape, leaf, out, user names, gradients per edge)."""
    from .tape import TArray, Tape  # (import diffkit has installed the tape namespace)

    tape = Tape(record_values=True)
    leaf = tape.leaf(theta)
    user_names: dict[int, str] = {}
    token = _RECORDING.set((tape, user_names))
    try:
        out = fn(leaf)
    finally:
        _RECORDING.reset(token)
    if type(out) is not TArray:
        raise ValueError("f(theta) does not depend on theta (it returned a constant), so there is no graph to draw")
    if np.ndim(out.value) != 0:
        raise ValueError(f"dk.graph draws scalar functions; f returned shape {np.shape(out.value)} "
                         "(sum it, or pick one output)")
    sent: dict[tuple[int, int], list] = defaultdict(list)
    # copied: the sweep may add into a contribution in place once it has become a parent's accumulator
    tape.backward(out, cotangent, retain=True,
                  on_edge=lambda child, parent, g: sent[(child, parent)].append(np.array(g, dtype=float)))
    return tape, leaf, out, user_names, sent


def _edges(tape, nodes: dict[int, Node], sent: dict) -> list[Edge]:
    """One edge per argument of each gate, in argument order; ``x * x`` has two (its gradients add)."""
    edges = []
    for i, node in nodes.items():
        if node.is_input:
            continue
        for p in tape.parents(i):
            if p in nodes:
                grads = sent.get((i, p))
                edges.append(Edge(p, i, tape.values[p], grads.pop(0) if grads else None, nodes[p].label,
                                  node.label))
    return edges


def _namer(names: Any, size: int) -> Callable[[int], str]:
    if callable(names):
        return names
    names = [str(n) for n in names]
    if len(names) != size:
        raise ValueError(f"names has {len(names)} entries; theta has {size} components (give one name each)")
    return names.__getitem__


def _ancestors(tape, out: int) -> set[int]:
    """The nodes the output was computed from (others, such as a slice an MLP reshaped, are not drawn)."""
    seen, todo = {out}, [out]
    while todo:
        for p in tape.parents(todo.pop()):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def _reads_of_leaf(tape, kept: set[int], leaf: int) -> list[int]:
    return [i for i in sorted(kept) if tape.op_name(i) == "getitem" and tape.parents(i) == [leaf]]


def _leaf_drawn(tape, kept: set[int], leaf: int) -> bool:
    """theta itself is drawn only where f uses it other than by indexing it."""
    return any(leaf in tape.parents(i) and tape.op_name(i) != "getitem" for i in kept)


def _components(fn, theta: np.ndarray, tape, reads: list[int]) -> dict[int, range]:
    """For each node that indexes theta, the flat components it reads (when they are contiguous)."""
    where, scalars = {}, []
    base = theta.__array_interface__["data"][0]
    for i in reads:
        value = tape.values[i]
        if isinstance(value, np.ndarray) and value.size and value.flags.c_contiguous and \
                np.shares_memory(value, theta):  # a view: its address says where it starts
            start = (value.__array_interface__["data"][0] - base) // theta.itemsize
            where[i] = range(start, start + value.size)
        elif np.ndim(value) == 0:
            scalars.append(i)
    if scalars:
        where.update(_probe_scalars(fn, theta, tape, scalars))
    return where


def _probe_scalars(fn, theta: np.ndarray, tape, scalars: list[int]) -> dict[int, range]:
    """Which component each scalar read ``t[k]`` is: values repeat (the neuron's w1 = w2 = -3), so record f
    once more with component k moved by (k + 1) h and read k off each node's shift."""
    from .tape import Tape

    h = 2.0 ** -20 * max(1.0, float(np.max(np.abs(theta)))) / theta.size  # far above round-off, far below branches
    probe = Tape(record_values=True)
    token = _RECORDING.set(None)
    try:
        fn(probe.leaf(theta + h * np.arange(1, theta.size + 1)))
    except Exception:  # noqa: BLE001  (f is the user's: without the probe the reads are just not named)
        return {}
    finally:
        _RECORDING.reset(token)
    if len(probe) < max(scalars) + 1 or any(probe.op_name(i) != tape.op_name(i) for i in scalars):
        return {}
    found = {}
    for i in scalars:
        shift = (float(probe.values[i]) - float(tape.values[i])) / h
        k = int(round(shift)) - 1
        if 0 <= k < theta.size and abs(shift - (k + 1)) < 0.25:
            found[i] = range(k, k + 1)
    return found


def _span_name(span: range, size: int, namer: Callable[[int], str], blocks) -> str:
    """A block's name when the span is one block, a component's for one component, else first…last."""
    for block in blocks:
        if block.shape != () and (block.start, block.stop) == (span.start, span.stop):
            return block.name
    if len(span) == 1:
        return namer(span.start)
    starts = {b.start: b.name for b in blocks}
    stops = {b.stop: b.name for b in blocks}
    if span.start in starts and span.stop in stops:  # whole blocks, such as all the weights of an L2 term
        return f"{starts[span.start]}…{stops[span.stop]}"
    if len(span) == size:
        return "theta"
    return f"{namer(span.start)}…{namer(span.stop - 1)}"


def _group(label: str | None) -> str | None:
    """``layer l`` for the blocks of dense layer l (``W2``, ``b2``); ``g`` for a user's ``"g/name"``."""
    if not label:
        return None
    if "/" in label:
        return label.split("/", 1)[0]
    match = re.fullmatch(r"[A-Za-z]+(\d+)", label)
    return f"layer {match.group(1)}" if match else None


def _inherit_groups(nodes: dict[int, Node], tape) -> dict[int, Node]:
    """A gate joins the group of the grouped inputs it reads (a layer's affine reads W_l and b_l), or, reading
    one node and keeping its shape (the activation after the affine), that node's group."""
    out = dict(nodes)
    for i, node in nodes.items():
        if node.is_input or node.group is not None:
            continue
        parents = [p for p in tape.parents(i) if p in out]
        groups = {out[p].group for p in parents if out[p].is_input and out[p].group}
        if not groups and len(parents) == 1 and np.shape(node.value) == np.shape(out[parents[0]].value):
            groups = {out[parents[0]].group} - {None}
        if len(groups) == 1:
            out[i] = Node(i, node.op, node.value, node.name, groups.pop(), node.constant)
    return out


class _CallableModule(types.ModuleType):
    """``dk.graph(f, theta)`` is this module's :func:`graph` (importing ``diffkit.graph`` sets the package's
    ``graph`` attribute to the module, so the module itself must be the function)."""

    def __call__(self, *args, **kwargs) -> Graph:
        return graph(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
