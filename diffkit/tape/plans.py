"""What a node keeps: each rule's arguments, resolved once per primitive and call pattern.

A rule's parameters name what it reads (the vocabulary is documented in
:mod:`diffkit.primitives.table`).  :func:`plan` turns those names into
a small generated function that builds a node's links, once for each
(inputs on the tape, number of inputs): a node then holds only what its rules
read, and nothing for inputs that are constants.
"""
from __future__ import annotations

from sys import getrefcount
from typing import Any

import numpy as np

from ..primitives.broadcasting import unbroadcast

__all__ = ["plan", "reads", "unbroadcast", "given", "joint_links", "one_call", "fast_recorder", "node_parents",
           "scatter", "fill_unwritten", "shared_shape", "LINKS"]
_F64 = np.dtype(np.float64)
EMPTY = np.empty  # (a name of this module: a test fills the buffers it makes with NaN, where np.empty may not)
LAZY_ZEROS = 1 << 13  # from here a theta's unreached entries are zeroed late (scatter); below, at once


def reads(prim, name: str, n_args: int) -> tuple[str, Any]:
    """What a rule's parameter ``name`` reads, in the vocabulary of :mod:`diffkit.primitives.table`:
    ``("input", k)``, ``("shape", k)`` (input k's shape), ``("ans", None)``, ``("xp", None)``, ``("res", None)``,
    ``("inputs", None)`` / ``("shapes", None)`` (a variadic op's inputs, their shapes) or ``("param", name)``.
    The eager plans, the NumPy replay and the fused writer all bind a rule's arguments from this."""
    positional = prim.inputs[:n_args] if not prim.variadic else ()
    if name in positional:
        return "input", positional.index(name)
    if name.endswith("_shape") and name[:-6] in positional:
        return "shape", positional.index(name[:-6])
    if name in ("ans", "xp", "res"):
        return name, None
    if prim.variadic and name in (prim.inputs[0], prim.inputs[0] + "_shape"):
        return ("inputs" if name == prim.inputs[0] else "shapes"), None
    if name not in prim.params:
        raise TypeError(f"rule of {prim.name} reads {name!r}, which is neither an input, a shape, ans, xp, res "
                        f"nor one of its params {sorted(prim.params)}")
    return "param", name


def _source(prim, name: str, n_args: int, value: str = "v[{k}]", prm: str = "prm", xp: str = "xp") -> str:
    """The expression of what a rule's parameter ``name`` reads: input k's value is ``value.format(k=k)``, its
    shape ``s{k}``, the params dict ``prm``, the value namespace ``xp``."""
    kind, k = reads(prim, name, n_args)
    if kind == "input":
        return value.format(k=k)
    if kind == "shape":
        return f"s{k}"
    if kind == "param":
        return f"{prm}.get({name!r}, DEFAULTS[{name!r}])"
    return {"ans": "ans", "xp": xp, "res": "res", "inputs": "v", "shapes": "shapes"}[kind]


def _links(prim, mask: int, n_args: int, parent: str, **names) -> str:
    """A node's links, flat (``parent, rule, rule's arguments, input's shape`` per input on the tape), as the
    items of a tuple display; ``parent.format(k=k)`` is input k's node, ``names`` go to :func:`_source`."""
    links = [f"{parent.format(k=k)}, R{k}, ({''.join(_source(prim, n, n_args, **names) + ', ' for n in args)}), "
             f"{_shape_slot(k)}, " for k, (rule, args) in enumerate(zip(prim.vjps[:n_args], prim.rule_args))
             if mask >> k & 1 and rule is not None]
    return "".join(links)


def _shape_slot(k: int) -> str:
    """A link's shape: None where it is the output's (the sweep then fits nothing), else the shared tuple."""
    return f"None if s{k} == sa else SHAPES.get(s{k}) or SHAPE(s{k})"


def _shapes_read(code: str, n_args: int, value: str) -> list[str]:
    """The ``s{k} = ...shape`` lines for the shapes that ``code`` reads (a numpy value's .shape is a lookup, a
    constant's may be a Python number), shared at once where a rule reads it too (``x_shape``), and the
    output's, ``sa``, where a link's shape is compared with it."""
    lines = []
    for k in range(n_args):
        if f"s{k}" in code:
            lines.append(f"s{k} = getattr({value.format(k=k)}, 'shape', ())")
            if f"s{k}" in code.replace(_shape_slot(k), ""):
                lines.append(f"s{k} = SHAPES.get(s{k}) or SHAPE(s{k})")
    return lines + (["sa = getattr(ans, 'shape', ())"] if "sa" in code else [])


def _shared_shape(shape: tuple) -> tuple:
    """``shape``, kept as the one tuple that every node holding this shape shares (numpy makes a new tuple on
    each ``.shape``; a tape of a thousand nodes holds a few shapes)."""
    if len(_SHAPES) < 4096:
        _SHAPES[shape] = shape
    return shape


_SHAPES: dict = {}


def shared_shape(shape: tuple) -> tuple:
    """The shared tuple of ``shape`` (see :func:`_shared_shape`)."""
    return _SHAPES.get(shape) or _shared_shape(shape)


def _scope(prim) -> dict:
    return {"DEFAULTS": prim.params, "SHAPES": _SHAPES, "SHAPE": _shared_shape,
            **{f"R{k}": rule for k, rule in enumerate(prim.vjps)}}


def plan(prim, mask: int, n_args: int) -> tuple:
    """``(fast, build)``, cached in ``prim.plans`` under ``mask << 8 | n_args``.

    ``build(v, ans, xp, p, prm, res)`` (values, output, value namespace, parents, params, residual) makes the
    node (see :mod:`.core`): ``(prim, parent, rule, rule's arguments, input's shape or None, ...)``, four items
    per input on the tape, or ``(prim, parents, arguments, shapes)`` for a joint rule.  It is generated from the rules' parameter names, so a
    node holds exactly what its rules read and recording runs no loop.  ``fast``: no view or joint rule.
    """
    from ..primitives.table import _rule_args
    if prim.joint is not None:
        args = ", ".join(_source(prim, n, n_args) for n in _rule_args(prim.joint))
        shapes = [f"s{k} = getattr(v[{k}], 'shape', ())" for k in range(n_args)]
        body = [*shapes, f"shapes = ({''.join(f's{k}, ' for k in range(n_args))})",
                f"return (PRIM, p, ({args}{',' if args else ''}), shapes)"]
    elif prim.scatter:
        body = ["return (PRIM,)"]
    else:
        links = _links(prim, mask, n_args, "p[{k}]")
        body = [*_shapes_read(links, n_args, "v[{k}]"), f"return (PRIM, {links})"]
    scope = {**_scope(prim), "PRIM": prim}
    exec(compile("\n    ".join(["def build(v, ans, xp, p, prm, res):", *body]), f"<plan of {prim.name}>",
                 "exec"),
         scope)  # our own table's names only
    result = prim.plans[mask << 8 | n_args] = (prim.joint is None and not prim.scatter, scope["build"])
    return result


def one_call(prim) -> bool:
    """Whether ``prim`` records in one call on a fast tape (:func:`fast_recorder`, and its C twin): one or two
    inputs, not variadic, no view, no joint rule, not a constant."""
    return not (prim.variadic or prim.scatter or prim.joint is not None or prim.kind == "constant") and \
        len(prim.inputs) in (1, 2)


def fast_recorder(prim, apply, numpy_ns, tarray, tracers, multiply) -> Any:
    """One generated function that records ``prim`` on a fast tape (numpy values, nothing beside the nodes):
    the forward, then the node with its links written inline (what :func:`plan`'s builder would return), for
    each pattern of inputs on the tape; any other call goes to ``apply``.  None for the ops it does not cover
    (variadic, indexing, joint rules, constants, more than two inputs)."""
    if not one_call(prim):
        return None
    n = len(prim.inputs)
    names = dict(value="v{k}", prm="params", xp="XP")

    def record(mask: int, values: str, indices: str, depth: int) -> list[str]:
        links = _links(prim, mask, n, "i{k}", **names)
        pad = "    " * depth
        call = ", ".join(f"v{k}" for k in range(n))
        lines = [f"{values}", f"{indices}",
                 "try:",
                 f"    ans = IMPL({call}, **params) if params else IMPL({call})",
                 "except (ValueError, TypeError, IndexError) as err:",
                 f"    raise SHAPE_ERROR(PRIM, ({call},), err) from err",
                 "ans, res = ans" if prim.residual else "res = None",
                 *_shapes_read(links, n, "v{k}"),
                 "nodes = tape.nodes",
                 f"nodes.append((PRIM, {links}))",
                 "return TArray(ans, tape, len(nodes) - 1)"]
        return [pad + line for line in lines]

    if n == 1:
        lines = ["def record(x, **params):",
                 "    if type(x) is TArray:",
                 "        tape = x.tape",
                 "        if tape.fast:",
                 *record(1, "v0 = x.value", "i0 = x.index", 3),
                 "    return APPLY(PRIM, x, **params)"]
    else:
        lines = ["def record(a, b, **params):",
                 "    if type(a) is TArray:",
                 "        tape = a.tape",
                 "        if tape.fast:",
                 "            tb = type(b)",
                 "            if tb is TArray:",
                 f"                if b.tape is tape{' and a is not b' if prim is multiply else ''}:",
                 *record(3, "v0, v1 = a.value, b.value", "i0, i1 = a.index, b.index", 5),
                 "            elif tb not in TRACERS:",
                 *record(1, "v0, v1 = a.value, b", "i0 = a.index", 4),
                 "    elif type(b) is TArray and type(a) not in TRACERS:",
                 "        tape = b.tape",
                 "        if tape.fast:",
                 *record(2, "v0, v1 = a, b.value", "i1 = b.index", 3),
                 "    return APPLY(PRIM, a, b, **params)"]
    from .anomaly import shape_error
    scope = {**_scope(prim), "PRIM": prim, "IMPL": numpy_ns.impls[prim.index], "XP": numpy_ns, "TArray": tarray,
             "TRACERS": tracers, "APPLY": apply, "SHAPE_ERROR": shape_error}
    exec(compile("\n".join(lines), f"<recorder of {prim.name}>", "exec"), scope)  # our own table's names only
    fn = scope["record"]
    fn.__name__ = fn.__qualname__ = prim.name
    return fn


class _LinkOffsets(dict):
    """Where a node's links start (every fourth item from the second), by the node's length: a tuple made once
    per length, so that the sweep makes no range per node."""

    def __missing__(self, n: int) -> tuple:
        self[n] = offsets = tuple(range(1, n, 4))
        return offsets


LINKS = _LinkOffsets()


def given(g: Any, c: Any) -> Any:
    return c  # the 'rule' of a contribution that a joint rule has already computed


def joint_links(node: tuple, g: Any) -> tuple:
    """A joint rule's node (one rule for every input), swept with ``g``: its contributions as ordinary links
    (each a :func:`given` rule), which the sweep then adds into the parents like any other."""
    prim, parents, args, shapes = node
    return (prim, *(x for p, c, s in zip(parents, prim.joint(g, *args), shapes) if p >= 0
                    for x in (p, given, (c,), s)))


def node_parents(node: Any) -> list:
    """The nodes a tape node was computed from, in argument order (tape inputs only)."""
    if node is None:
        return []
    prim = node[0]
    if prim.scatter:
        return [node[1]]
    return [p for p in node[1] if p >= 0] if prim.joint is not None else list(node[1::4])


def scatter(xp: Any, grads: list, owned: list, i: int, node: tuple, g: Any, on_edge: Any,
            unwritten: dict) -> None:
    """The sweep at view node ``i`` (``x[index]``, maybe reshaped): add ``g`` into that part of x's gradient.

    A flat leaf's gradient that blocks of theta (``theta[a:b]``) start is an empty buffer, each block written
    once where it lands; ``unwritten[p]`` lists the ``(start, stop)`` runs no block has reached yet, zeroed
    only when something else reads or adds into the buffer (:func:`fill_unwritten`), or the sweep ends.
    """
    _, p, index, view_shape, shape = node
    c = g if view_shape is None else g.reshape(view_shape) if type(g) is np.ndarray else xp.reshape(g, view_shape)
    if on_edge is not None:
        on_edge(i, p, c)
    acc = grads[p]
    flat_block = type(index) is slice and type(c) is np.ndarray and c.dtype == _F64 and len(shape) == 1 and \
        index.step in (None, 1)
    if acc is None and flat_block:  # a flat theta's first block: one pass, not zeros + add
        start, stop, _ = index.indices(shape[0])
        buf = grads[p] = EMPTY(shape)
        owned[p] = True
        np.add(c, 0.0, out=buf[start:stop])  # (0 + c as zeros + c would give: -0.0 becomes 0.0)
        runs = [run for run in ((0, start), (stop, shape[0])) if run[0] < run[1]]
        if shape[0] >= LAZY_ZEROS:
            unwritten[p] = runs
        else:  # a small buffer: zeroed now, and later blocks add (bookkeeping would cost more than the passes)
            for lo, hi in runs:
                buf[lo:hi] = 0.0
        return
    runs = unwritten.get(p)
    if runs is not None:
        if flat_block:
            start, stop, _ = index.indices(shape[0])
            for k, (lo, hi) in enumerate(runs):
                if lo <= start and stop <= hi:  # lands on entries no block has written: written, not added
                    np.add(c, 0.0, out=acc[start:stop])
                    runs[k:k + 1] = [run for run in ((lo, start), (stop, hi)) if run[0] < run[1]]
                    return
        fill_unwritten(grads, unwritten, p)
    if not owned[p] and type(acc) is np.ndarray and acc.dtype == _F64 and acc.base is None:
        owned[p] = getrefcount(acc) == 3  # held by grads[p] alone (and `acc`, and the argument): add into it
    if owned[p] and type(index) is slice and type(c) is np.ndarray:
        view = grads[p][index]
        view += c
    else:
        grads[p], owned[p] = xp.scatter_add(grads[p], owned[p], shape, index, c)


def fill_unwritten(grads: list, unwritten: dict, p: int | None = None) -> Any:
    """Zero the entries of ``grads[p]`` that no block of :func:`scatter` has written (it is read now); every
    such buffer's with ``p=None`` (the sweep's end)."""
    for q in list(unwritten) if p is None else (p,):
        for lo, hi in unwritten.pop(q):
            grads[q][lo:hi] = 0.0
    return None if p is None else grads[p]
