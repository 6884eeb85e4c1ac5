"""The reverse-mode tape: a Wengert list of array operations and one backward sweep.

The machinery only.  Every primitive, with its forward computation and its
derivative rule side by side, lives in :mod:`diffkit.rules`.

How it works, in five sentences.  A :class:`TArray` wraps an array (numpy
float64 or mpmath object array) and the index of the node that made it.  Each
operation on tape arrays runs the primitive's forward on the raw values and
appends one node: the primitive, its parents' indices, and *only* the values
its rule names (so a ``tanh`` node keeps its output, not its input).  The
backward sweep walks the nodes in reverse, calls each rule with the incoming
gradient ``g``, and accumulates contributions into the parents, summing away
broadcast dimensions.  Fan-out therefore adds (the copy gate of seed 002 is an
adder), and nodes are freed as the sweep passes them.

What keeps it lean (issue 8): nothing is kept for the rules of constant inputs;
each primitive resolves once per call pattern which values its rules read
(:func:`_plan`), and a node holds one link (parent, rule, kept values, shape)
per input on the tape, nothing for the others; one- and two-input ops record
without loops; a contribution the sweep has just made becomes its parent's
accumulator, added into in place; basic slices, and reshapes of them, are view
nodes whose gradient is added straight into a slice of the parent's buffer.
At P = 90 the per-op cost of Python (about 1 us to record a node and 1 us to
sweep it) is what is left: the MLP's 19 nodes cost about as much again as their
numpy arithmetic.
"""
from __future__ import annotations

import inspect
import operator
import os
import sys
from sys import getrefcount
from typing import Any, Callable, Sequence

import numpy as np

from .backends import namespace, register_backend

__all__ = ["TArray", "Tape", "Primitive", "Function", "apply", "vjp"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Primitive:
    """One differentiable operation: a forward on raw values and its VJP rules.

    ``forward(xp, *inputs, **params)`` computes on raw arrays; ``xp`` is the
    value namespace (numpy, or mpmath for the reference).  Each rule is a
    function whose *parameter names* say what it reads: ``g`` (the incoming
    gradient, always first), ``ans`` (the forward output), an input by its
    name in ``forward``, ``<input>_shape``, ``xp``, or a param.  The tape keeps
    exactly those values alive, and nothing else: the values named by the
    rules of inputs that are constants (no tape array) are not kept either.

    ``vjps`` holds one rule per input; ``joint`` instead is one rule returning
    a tuple for all inputs (variadic ops).  ``scatter=True`` marks indexing:
    its rule's result is added into a slice of the parent's gradient buffer.
    ``residual=True``: the forward returns ``(ans, res)``, where ``res`` is an
    intermediate its rules reuse (named ``res``) instead of recomputing it.
    """

    __slots__ = ("name", "forward", "inputs", "defaults", "vjps", "rules", "joint", "needs", "scatter", "residual",
                 "variadic", "plans")

    def __init__(self, name: str, forward: Callable, *vjps: Callable, joint: Callable | None = None,
                 scatter: bool = False, residual: bool = False):
        self.name = name
        self.forward = forward
        sig = inspect.signature(forward).parameters.values()
        self.inputs = tuple(p.name for p in sig if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))[1:]
        self.variadic = next((p.name for p in sig if p.kind is p.VAR_POSITIONAL), None)
        self.defaults = {p.name: p.default for p in sig if p.default is not p.empty}
        self.joint = (joint, _arg_names(joint)) if joint else None
        self.vjps = tuple((rule, _arg_names(rule)) for rule in vjps)
        self.rules = tuple(vjps)
        self.scatter = scatter
        self.residual = residual
        names = set()
        for _, used in self.vjps + ((self.joint,) if self.joint else ()):
            names.update(used)
        self.needs = frozenset(names)
        self.plans: dict = {}  # (which inputs are on the tape, number of inputs) -> what to keep; see _plan

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def _pool_index(prim: Primitive, name: str, n_args: int, params: list) -> int:
    """Where a rule argument sits in apply's pool ``[*vals, *shapes, ans, xp, vals, shapes, *params]``."""
    positional = prim.inputs[:n_args]
    if name in positional:
        return positional.index(name)
    if name.endswith("_shape") and name[:-6] in positional:
        return n_args + positional.index(name[:-6])
    special = {"ans": 0, "xp": 1, "res": 4}
    if prim.variadic:
        special.update({prim.variadic: 2, prim.variadic + "_shape": 3})
    if name in special:
        return 2 * n_args + special[name]
    if name not in params:
        params.append(name)
    return 2 * n_args + 5 + params.index(name)


def _getter(indices: list) -> Callable:
    """A C-level function pool -> the rule's arguments (a tuple, or a one-element list)."""
    if len(indices) == 1:
        return operator.itemgetter(slice(indices[0], indices[0] + 1))
    return operator.itemgetter(*indices) if indices else operator.itemgetter(slice(0, 0))


def _plan(prim: Primitive, mask: int, n_args: int) -> tuple:
    """What a node keeps, per call pattern: ``(getters, param names)``.

    ``getters`` holds ``(k, rule, getter)`` for each input ``k`` on the tape,
    where ``getter`` picks the rule's arguments from the pool; constant inputs
    have none (their rule never runs, so nothing is kept for it).  For a
    ``joint`` rule it is the one getter of that rule.
    """
    key = (mask, n_args)
    plan = prim.plans.get(key)  # (apply looks the plan up itself first; this builds it once)
    if plan is None:
        params: list = []
        if prim.joint is not None:
            getters = _getter([_pool_index(prim, n, n_args, params) for n in prim.joint[1]])
        elif prim.scatter:
            getters = ()
        else:
            getters = tuple((k, rule, _getter([_pool_index(prim, n, n_args, params) for n in names]))
                            for k, (rule, names) in enumerate(prim.vjps[:n_args]) if mask >> k & 1)
        plan = prim.plans[key] = (getters, tuple(params))
    return plan


def _arg_names(rule: Callable) -> tuple[str, ...]:
    names = tuple(inspect.signature(rule).parameters)
    if not names or names[0] != "g":
        raise TypeError(f"a VJP rule's first parameter must be 'g' (the incoming gradient); got {names}")
    return names[1:]


class TArray:
    """An array recorded on a tape.  Arithmetic, ``@``, indexing and ``.T`` are recorded.

    Comparisons return plain boolean arrays: they carry no gradient.
    """

    __slots__ = ("value", "tape", "index")
    __array_ufunc__ = None  # numpy defers to our reflected operators: ndarray @ TArray works

    def __init__(self, value: Any, tape: "Tape", index: int):
        self.value = value
        self.tape = tape
        self.index = index

    # --- array attributes
    @property
    def shape(self) -> tuple:
        return np.shape(self.value)

    @property
    def ndim(self) -> int:
        return np.ndim(self.value)

    @property
    def size(self) -> int:
        return int(np.size(self.value))

    @property
    def dtype(self):
        return getattr(self.value, "dtype", np.dtype(object))

    @property
    def T(self) -> "TArray":
        return _OPS.transpose(self)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"TArray({self.value!r}, node={self.index})"

    def __float__(self):
        raise TypeError(
            "float() of a tape array would drop it from the tape and silently zero its gradient; "
            "use .value if you really want the number"
        )

    def __bool__(self) -> bool:
        return bool(self.value)

    # --- recorded operations (the primitives live in diffkit.rules)
    def __add__(self, other): return _OPS.add(self, other)
    def __radd__(self, other): return _OPS.add(other, self)
    def __sub__(self, other): return _OPS.subtract(self, other)
    def __rsub__(self, other): return _OPS.subtract(other, self)
    def __mul__(self, other): return _OPS.multiply(self, other)
    def __rmul__(self, other): return _OPS.multiply(other, self)
    def __truediv__(self, other): return _OPS.divide(self, other)
    def __rtruediv__(self, other): return _OPS.divide(other, self)
    def __matmul__(self, other): return _OPS.matmul(self, other)
    def __rmatmul__(self, other): return _OPS.matmul(other, self)
    def __neg__(self): return _OPS.negative(self)
    def __pos__(self): return self
    def __pow__(self, other): return _OPS.power(self, other)
    def __rpow__(self, other): return _OPS.power(other, self)
    def __abs__(self): return _OPS.abs(self)
    def __getitem__(self, index): return getitem(_GETITEM, self, index)

    def reshape(self, *shape):
        return _OPS.reshape(self, shape[0] if len(shape) == 1 else shape)

    def sum(self, axis=None, keepdims=False): return _OPS.sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return _OPS.mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return _OPS.max(self, axis=axis, keepdims=keepdims)

    # --- comparisons act on values and are not differentiable
    def __lt__(self, other): return self.value < _value(other)
    def __le__(self, other): return self.value <= _value(other)
    def __gt__(self, other): return self.value > _value(other)
    def __ge__(self, other): return self.value >= _value(other)
    def __eq__(self, other): return self.value == _value(other)
    def __ne__(self, other): return self.value != _value(other)
    __hash__ = object.__hash__


def _value(x: Any) -> Any:
    return x.value if type(x) is TArray else x


_OPS: Any = None  # the tape namespace; diffkit.rules installs it (the primitives live there)
_GETITEM: Any = None  # the indexing primitive, also installed by diffkit.rules


class Tape:
    """A Wengert list.  ``vxp`` is the namespace of the raw values (numpy or mpmath).

    With ``anomaly=True`` every op checks its output (and every rule its
    contribution) for NaN/inf and raises ``FloatingPointError`` naming the op
    and the line of user code that called it.
    """

    __slots__ = ("nodes", "vxp", "anomaly", "values")

    def __init__(self, vxp: Any = np, anomaly: bool = False, record_values: bool = False):
        self.nodes: list = []
        self.vxp = vxp
        self.anomaly = anomaly
        self.values: list | None = [] if record_values else None  # node i's forward value, for dk.graph

    def op_name(self, i: int) -> str:
        """The primitive that made node ``i`` (``"input"`` for a leaf)."""
        node = self.nodes[i]
        return "input" if node is None else node[0].name

    def parents(self, i: int) -> list:
        """The nodes that node ``i`` was computed from, in argument order (tape inputs only)."""
        node = self.nodes[i]
        if node is None:
            return []
        prim, links, _ = node
        if prim.scatter:
            return [links[0]]
        if prim.joint is not None:
            return [p for p in links[0] if p >= 0]
        return [link[0] for link in links]

    def leaf(self, value: Any) -> TArray:
        """Start recording: a tape array for an input whose gradient we want."""
        self.nodes.append(None)
        if self.values is not None:
            self.values.append(value)
        return TArray(value, self, len(self.nodes) - 1)

    def __len__(self) -> int:
        return len(self.nodes)

    def bytes_held(self) -> int:
        """Bytes of the arrays that the recorded nodes keep for the backward sweep."""
        seen, total = set(), 0
        for node in self.nodes:
            if node is None or node[0].scatter:
                continue
            prim, links, _ = node
            for args in ((links[1],) if prim.joint is not None else (link[2] for link in links)):
                for v in args:
                    if type(v) is np.ndarray and v.base is None and id(v) not in seen:  # views own nothing
                        seen.add(id(v))
                        total += v.nbytes
        return total

    def backward(self, out: TArray, cotangent: Any = 1.0, *, retain: bool = False, on_edge: Any = None) -> list:
        """Sweep backward from ``out``; return the list of gradients per node (leaves kept).

        Unless ``retain`` is set, each node is freed as soon as the sweep has
        passed it, so the tape can be swept only once.  ``on_edge(child, parent,
        contribution)``, when given, sees every gradient the sweep sends along an
        edge (for :func:`diffkit.graph`).
        """
        nodes, xp, anomaly = self.nodes, self.vxp, self.anomaly
        grads: list = [None] * len(nodes)
        owned = [False] * len(nodes)  # whether grads[i] is a buffer of ours that we may add into in place
        grads[out.index] = cotangent
        for i in range(out.index, -1, -1):
            g = grads[i]
            if g is None:
                continue
            node = nodes[i]
            if node is None:
                continue
            prim, links, site = node
            grads[i] = None
            if not retain:
                nodes[i] = None
            if prim.scatter:  # x[index] (or a reshape of it): add g into that part of x's gradient buffer
                p, index, view_shape, shape = links
                c = prim.rules[0](g)
                if view_shape is not None:
                    c = c.reshape(view_shape) if type(c) is np.ndarray else np.reshape(c, view_shape)
                if on_edge is not None:
                    on_edge(i, p, c)
                if owned[p] and type(index) is slice and not anomaly:  # the common case, inline: a slice
                    view = grads[p][index]
                    view += c
                else:
                    _scatter(grads, owned, p, shape, index, c, xp, anomaly, prim, site)
                continue
            if prim.joint is not None:  # one rule for all inputs: its results become links of their own
                parents, args, shapes = links
                links = [(p, _given, (c,), shape) for p, c, shape in zip(parents, prim.joint[0](g, *args), shapes)
                         if p >= 0]
            for p, rule, args, shape in links:  # (links name only the inputs on the tape)
                c = rule(g, *args)
                if c is None:
                    continue
                if anomaly:
                    _check_finite(c, f"the derivative rule of {prim.name}", site)
                if getattr(c, "shape", ()) != shape:
                    c = unbroadcast(c, shape)
                if on_edge is not None:
                    on_edge(i, p, c)
                acc = grads[p]
                if acc is None:
                    # An array the rule has just made, held by nothing but this loop (the count: `c` and
                    # getrefcount's argument), becomes the accumulator: later contributions add into it in place.
                    owned[p] = type(c) is np.ndarray and c.base is None and c.dtype == _F64 and getrefcount(c) == 2
                    grads[p] = c
                elif owned[p] and type(acc) is np.ndarray:  # numpy scalars are immutable: += would rebind only
                    acc += c
                else:
                    grads[p], owned[p] = acc + c, True
        return grads


def _given(g: Any, c: Any) -> Any:
    """The 'rule' of a contribution a joint rule has already computed."""
    return c


def _scatter(grads, owned, p, shape, index, c, xp, anomaly, prim, site) -> None:
    """Add the gradient ``c`` of ``x[index]`` into the gradient buffer of ``x`` (node ``p``)."""
    if p < 0 or c is None:
        return
    if anomaly:
        _check_finite(c, f"the derivative rule of {prim.name}", site)
    buf = grads[p]
    if not owned[p]:
        buf = xp.zeros(shape) if buf is None else buf + xp.zeros(shape)
        grads[p], owned[p] = buf, True
    if type(index) is slice or _is_basic_index(index):
        view = buf[index]  # a view: adding into it writes into buf, with no temporary copy
        if type(view) is np.ndarray:
            view += c
        else:  # a single element comes back as a scalar, not a view
            buf[index] = view + c
    else:  # repeated integer indices must add up, which buf[index] += c would not do
        np.add.at(buf, index, c)


def _is_basic_index(index) -> bool:
    if type(index) is slice:
        return True
    parts = index if type(index) is tuple else (index,)
    return all(type(p) in _BASIC or isinstance(p, (int, np.integer)) for p in parts)


_BASIC = (slice, int, type(None), type(Ellipsis))
_F64 = np.dtype(np.float64)


def unbroadcast(c: Any, shape: tuple) -> Any:
    """Sum ``c`` down to ``shape``, undoing numpy broadcasting."""
    cshape = np.shape(c)
    lead = len(cshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and cshape[i + lead] != 1
    )
    if type(c) is not np.ndarray or c.dtype == object:  # object sums may return a bare mpf, which has no .reshape
        return np.reshape(np.sum(c, axis=axes) if axes else c, shape)
    return (c.sum(axis=axes) if axes else c).reshape(shape)  # the methods skip numpy's dispatch wrappers


def _user_site() -> str:
    """``file:line in function`` of the innermost caller outside diffkit."""
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _check_finite(value, what: str, site: str) -> None:
    xp = namespace(value)
    if not np.all(xp.isfinite(value)):
        bad = "nan" if np.any(xp.isnan(value)) else "inf"
        raise FloatingPointError(f"anomaly: {what} produced {bad}, called at {site}")


def _shape_error(prim: Primitive, vals: Sequence, err: Exception) -> Exception:
    shapes = ", ".join(str(np.shape(v)) for v in vals)
    return type(err)(f"{prim.name}: cannot combine operands of shapes {shapes}: {err}")


def _gather(prim: Primitive, args: tuple) -> tuple:
    """``(tape, vals, parents, mask)`` of any number of arguments; ``tape`` is None when none is on one."""
    tape = None
    mask, bit = 0, 1  # bit k of mask: argument k is a tape array
    vals, parents = [], []
    for a in args:
        if type(a) is TArray:
            if tape is None:
                tape = a.tape
            elif a.tape is not tape:
                raise _two_tapes(prim)
            mask |= bit
            vals.append(a.value)
            parents.append(a.index)
        else:
            vals.append(a)
            parents.append(-1)
        bit <<= 1
    return tape, vals, parents, mask


def _two_tapes(prim: Primitive) -> ValueError:
    return ValueError(f"{prim.name}: operands come from two different tapes; nested differentiation is not supported")


def apply(prim: Primitive, *args: Any, **params: Any) -> Any:
    """Run ``prim`` on ``args``; record a node when any argument is on a tape."""
    # One and two arguments (nearly every op) take a path without loops or lists: recording is per-op overhead.
    n = len(args)
    if n == 1:
        a = args[0]
        if type(a) is not TArray:
            return _apply_plain(prim, args, params)
        tape, v = a.tape, a.value
        vals, parents, shapes, mask = (v,), (a.index,), (getattr(v, "shape", ()),), 1
    elif n == 2:
        a, b = args
        if type(a) is TArray:
            tape, v = a.tape, a.value
            if type(b) is TArray:
                if b.tape is not tape:
                    raise _two_tapes(prim)
                w = b.value
                vals, parents, mask = (v, w), (a.index, b.index), 3
            else:
                w = b
                vals, parents, mask = (v, w), (a.index, -1), 1
        elif type(b) is TArray:
            tape, v, w = b.tape, a, b.value
            vals, parents, mask = (v, w), (-1, b.index), 2
        else:
            return _apply_plain(prim, args, params)
        shapes = (getattr(v, "shape", ()), getattr(w, "shape", ()))
    elif n == 3 and type(args[0]) is not TArray and type(args[1]) is TArray and type(args[2]) is TArray:
        a, b, c = args  # a constant and two tape arrays: a dense layer's x @ W + b
        tape, v, w = b.tape, b.value, c.value
        if c.tape is not tape:
            raise _two_tapes(prim)
        vals, parents, mask = (a, v, w), (-1, b.index, c.index), 6
        shapes = (getattr(a, "shape", ()), getattr(v, "shape", ()), getattr(w, "shape", ()))
    else:
        tape, vals, parents, mask = _gather(prim, args)
        if tape is None:
            return _apply_plain(prim, args, params)
        shapes = [getattr(v, "shape", ()) for v in vals]
    xp = tape.vxp
    try:
        ans = prim.forward(xp, *vals, **params)
    except (ValueError, TypeError, IndexError) as err:
        raise _shape_error(prim, vals, err) from err
    res = None
    if prim.residual:  # the forward also returned a value its rule reuses (``res``), not part of the output
        ans, res = ans
    site = None
    if tape.anomaly:
        site = _user_site()
        _check_finite(ans, prim.name, site)
    if prim.scatter:  # (getitem records through getitem() below; this serves other scatter primitives)
        return _record_view(prim, tape, parents[0], params["index"], None, shapes[0], ans)
    getters, pnames = prim.plans.get((mask, n)) or _plan(prim, mask, n)
    pool = [*vals, *shapes, ans, xp, vals, shapes, res]
    if pnames:
        defaults = prim.defaults
        pool += [params[n] if n in params else defaults[n] for n in pnames]
    if prim.joint is not None:
        links = (parents, getters(pool), shapes)
    elif len(getters) == 1:  # per input on the tape: (its node, its rule, what the rule reads, its shape)
        (k, rule, get), = getters  # (one or two inputs, unrolled: a comprehension is a call of its own in 3.11)
        links = ((parents[k], rule, get(pool), shapes[k]),)
    elif len(getters) == 2:
        (k, rule, get), (j, rule_j, get_j) = getters
        links = ((parents[k], rule, get(pool), shapes[k]), (parents[j], rule_j, get_j(pool), shapes[j]))
    else:
        links = [(parents[k], rule, get(pool), shapes[k]) for k, rule, get in getters]
    nodes = tape.nodes
    nodes.append((prim, links, site))
    if tape.values is not None:
        tape.values.append(ans)
    return TArray(ans, tape, len(nodes) - 1)


def _apply_plain(prim: Primitive, args: tuple, params: dict) -> Any:
    """``prim`` on arguments none of which is on a tape: just the forward, in their own namespace."""
    ans = prim.forward(namespace(*args), *args, **params)
    return ans[0] if prim.residual else ans


def getitem(prim: Primitive, x: Any, index: Any) -> Any:
    """``x[index]`` for the scatter primitive ``prim``: a node that keeps only the index."""
    if type(x) is not TArray:
        return _apply_plain(prim, (x,), {"index": index})
    tape = x.tape
    try:
        value = prim.forward(tape.vxp, x.value, index)
    except (IndexError, TypeError, ValueError) as err:
        raise _shape_error(prim, [x.value], err) from err
    return _record_view(prim, tape, x.index, index, None, np.shape(x.value), value)


def _record_view(prim: Primitive, tape: "Tape", parent: int, index: Any, view_shape: Any, parent_shape: tuple,
                 value: Any) -> TArray:
    site = None
    if tape.anomaly:
        site = _user_site()
        _check_finite(value, prim.name, site)
    nodes = tape.nodes
    nodes.append((prim, (parent, index, view_shape, parent_shape), site))
    if tape.values is not None:
        tape.values.append(value)
    return TArray(value, tape, len(nodes) - 1)


def reshape_view(x: TArray, shape: Any) -> TArray | None:
    """``reshape`` of a basic slice ``y[index]`` of a tape array, recorded as one scatter node onto ``y``.

    The view's gradient is then added straight into ``y``'s buffer, with no
    node between (an MLP's ``reshape(theta[a:b], shape)`` is one node).  The
    slice's own node stays on the tape, and the sweep skips it when nothing
    else used it.  None when ``x`` is not such a slice.
    """
    tape = x.tape
    node = tape.nodes[x.index]
    if node is None or not node[0].scatter or type(x.value) is not np.ndarray:
        return None
    prim, (parent, index, view_shape, parent_shape), _ = node
    if view_shape is not None or not _is_basic_index(index):
        return None
    try:
        value = x.value.reshape(shape)
    except (ValueError, TypeError):
        return None  # the reshape primitive reports it, naming the op and the shapes
    return _record_view(prim, tape, parent, index, x.value.shape, parent_shape, value)


# --- custom operations, in the spirit of torch.autograd.Function (seed 003) --------------

class Context:
    """What a custom op's forward hands to its backward."""

    def __init__(self):
        self.saved: tuple = ()

    def save_for_backward(self, *values: Any) -> None:
        self.saved = values

    @property
    def saved_tensors(self) -> tuple:
        return self.saved


class Function:
    """Define an operation by its forward and backward, like ``torch.autograd.Function``.

    ``forward(ctx, *inputs)`` gets raw arrays and may ``ctx.save_for_backward``
    what the backward needs; ``backward(ctx, g)`` returns one gradient per
    input (``None`` for inputs that need none).

    >>> import numpy as np, diffkit as dk
    >>> class Multiply(dk.Function):
    ...     @staticmethod
    ...     def forward(ctx, x, y):
    ...         ctx.save_for_backward(x, y)
    ...         return x * y
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         x, y = ctx.saved
    ...         return g * y, g * x
    >>> f = lambda t: dk.namespace(t).sum(Multiply.apply(t[0], t[1]))
    >>> dk.gradient(f, np.array([3.0, 4.0])).grad.tolist()
    [4.0, 3.0]
    """

    forward: Callable
    backward: Callable

    @classmethod
    def apply(cls, *args: Any) -> Any:
        ctx = Context()
        tape = next((a.tape for a in args if type(a) is TArray), None)
        vals = [a.value if type(a) is TArray else a for a in args]
        ans = cls.forward(ctx, *vals)
        if tape is None:
            return ans
        prim = _custom_primitive(cls)
        parents = tuple(a.index if type(a) is TArray else -1 for a in args)
        shapes = tuple(getattr(v, "shape", ()) for v in vals)
        site = _user_site() if tape.anomaly else None
        tape.nodes.append((prim, (parents, (ctx,), shapes), site))
        if tape.values is not None:
            tape.values.append(ans)
        return TArray(ans, tape, len(tape.nodes) - 1)


_CUSTOM: dict[type, Primitive] = {}


def _custom_primitive(cls: type) -> Primitive:
    if cls not in _CUSTOM:
        def joint(g, ctx):
            grads = cls.backward(ctx, g)
            return grads if isinstance(grads, (tuple, list)) else (grads,)
        _CUSTOM[cls] = Primitive(cls.__name__, lambda xp, *xs: None, joint=joint)
    return _CUSTOM[cls]


# --- VJP for any output -------------------------------------------------------------------

def vjp(f: Callable, theta: Any) -> tuple[Any, Callable]:
    """Evaluate ``f(theta)`` on a tape; return its value and a VJP function.

    ``vjp_fn(cotangent)`` returns ``cotangent . J`` (shape of ``theta``), for
    outputs of any shape.  It may be called repeatedly.

    >>> import numpy as np, diffkit as dk
    >>> value, vjp_fn = dk.vjp(lambda t: t * t, np.array([1.0, 2.0, 3.0]))
    >>> vjp_fn(np.array([1.0, 0.0, 1.0])).tolist()
    [2.0, 0.0, 6.0]
    """
    theta = np.asarray(theta, dtype=float)
    tape = Tape(np)
    x = tape.leaf(theta)
    out = f(x)
    if type(out) is not TArray:
        value = np.asarray(out, dtype=float)
        return value, lambda cot: np.zeros_like(theta)

    def vjp_fn(cotangent):
        cot = np.asarray(cotangent, dtype=float)
        if cot.shape != out.shape:
            raise ValueError(f"cotangent has shape {cot.shape}; the output has shape {out.shape}")
        g = tape.backward(out, cot, retain=True)[x.index]
        return np.zeros_like(theta) if g is None else np.array(np.broadcast_to(g, theta.shape), dtype=float)

    return np.asarray(out.value, dtype=float), vjp_fn


def _is_tape(x: Any) -> bool:
    return type(x) is TArray


def install(ops: Any, getitem_primitive: Primitive) -> None:
    """Make ``ops`` (diffkit.rules.TAPE) the namespace of tape arrays, and ``getitem_primitive`` their indexing."""
    global _OPS, _GETITEM
    _OPS, _GETITEM = ops, getitem_primitive
    register_backend("tape", _is_tape, ops, priority=0, array_type=TArray)
