"""Gradient programs for :mod:`diffkit.symbolic`: sizes, the shared-DAG differentiation, and printing.

A :class:`Program` is straight-line code: ``assignments`` (temporaries
defined in order), then ``value`` and ``grad`` in terms of the temporaries
and the theta symbols.  The naive strategy's program has no assignments
until CSE adds some.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import mpmath
import numpy as np
import sympy
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import MpmathPrinter, PythonCodePrinter

__all__ = ["Program", "expression_sizes", "dag_gradient", "program_source", "load_source"]


def _own_ops(node: sympy.Basic) -> int:
    """Operations at one node, as ``sympy.count_ops`` counts them: an n-ary Add or Mul is n - 1."""
    if node.is_Atom:
        return 0
    if node.is_Add or node.is_Mul:
        return len(node.args) - 1
    return 1


def expression_sizes(exprs, memo: dict | None = None, env: dict | None = None) -> dict:
    """Tree ops/nodes (the expressions written out) and DAG ops/nodes (each distinct subexpression once).

    ``env`` maps temporaries to the (nodes, ops) of their definitions, so a
    program's gradient is measured as if every temporary were inlined.
    Linear in the DAG: tree sizes are memoized per distinct node.
    """
    memo = {} if memo is None else memo
    env = env or {}
    dag = {"dag_ops": 0, "dag_nodes": 0}

    def visit(node):
        if node in memo:
            return memo[node]
        if node in env:
            return env[node]
        if node.is_Atom:
            return 1, 0
        nodes, ops = 1, _own_ops(node)
        for a in node.args:
            n, o = visit(a)
            nodes, ops = nodes + n, ops + o
        dag["dag_ops"] += _own_ops(node)
        dag["dag_nodes"] += 1
        memo[node] = (nodes, ops)
        return nodes, ops

    total_nodes = total_ops = 0
    for e in exprs:
        n, o = visit(e)
        total_nodes, total_ops = total_nodes + n, total_ops + o
    return {"nodes": total_nodes, "ops": total_ops, **dag}


@dataclass
class Program:
    """Straight-line code: temporaries in order, then the value and the gradient components."""

    symbols: list
    assignments: list
    value: sympy.Expr
    grad: list

    def assigned(self) -> list:
        return [e for _, e in self.assignments]

    def sizes(self) -> dict:
        """``ops``/``nodes``: the gradient inlined as a tree; ``dag_ops``: shared; ``assigned_ops``: as printed."""
        env, memo, printed = {}, {}, 0
        for t, e in self.assignments:
            inlined = expression_sizes([e], memo, env)
            env[t] = inlined["nodes"], inlined["ops"]
            printed += expression_sizes([e], {}, {})["ops"]
        tree = expression_sizes(self.grad, memo, env)
        shared = expression_sizes(self.assigned() + self.grad)
        printed += expression_sizes(self.grad + [self.value], {}, {})["ops"]
        return {"ops": tree["ops"], "nodes": tree["nodes"], "dag_ops": shared["dag_ops"], "assigned_ops": printed}

    def at(self, theta) -> tuple:
        """Exact value and gradient at theta (floats are taken as the rationals of their binary values)."""
        env = {s: sympy.Rational(to) if not isinstance(to, sympy.Basic) else to
               for s, to in zip(self.symbols, np.ravel(np.asarray(theta, dtype=object)))}
        for t, e in self.assignments:
            env[t] = e.xreplace(env)
        return self.value.xreplace(env), [g.xreplace(env) for g in self.grad]


# --- the shared-DAG strategy -------------------------------------------------------------------

def _operands(node: sympy.Basic) -> list:
    """The distinct non-number subexpressions a node is computed from (Piecewise conditions included)."""
    out = []
    for a in node.args:
        if isinstance(a, (ExprCondPair, Boolean)) and not a.is_Symbol:
            out.extend(_operands(a))
        elif a.is_Symbol or not a.is_Atom:
            out.append(a)
    return list(dict.fromkeys(out))


def _postorder(root: sympy.Basic) -> list:
    """Distinct non-atom nodes of the DAG, every node after all of its operands."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
        elif node not in seen and not node.is_Atom:
            seen.add(node)
            stack.append((node, True))
            stack.extend((c, False) for c in _operands(node) if c not in seen)
    return order


def _local_partials(node: sympy.Basic, local: sympy.Expr, t: sympy.Symbol, args: list) -> list:
    """d local / d arg for each operand symbol, by sympy.diff (closed forms for the n-ary Add and Mul)."""
    if local.is_Add:
        return [sympy.Integer(1) if a in local.args else sympy.diff(local, a) for a in args]
    if local.is_Mul and all(a in local.args for a in args):
        return [sympy.Mul(*[f for f in local.args if f != a]) for a in args]
    return [sympy.diff(local, a).xreplace({local: t}) for a in args]  # exp' = exp, tanh' = 1 - tanh^2: reuse t


def dag_gradient(f: sympy.Expr, symbols: list, report: Callable) -> Program:
    """Gradient of f by local sympy.diff on each distinct node and accumulation from f back to theta."""
    if f.is_Atom:
        return Program(symbols, [], f, [sympy.diff(f, s) for s in symbols])
    order = _postorder(f)
    total = 2 * len(order)
    temp, partials, assignments = {}, {}, []
    for k, node in enumerate(order):
        ops = _operands(node)
        args = [temp.get(c, c) for c in ops]
        local = node.xreplace(dict(zip(ops, args)))
        temp[node] = t = sympy.Symbol(f"t{k}", real=True)
        assignments.append((t, local))
        partials[node] = [(c, d) for c, d in zip(ops, _local_partials(node, local, t, args)) if d != 0]
        report("diff", k + 1, total, {"dag_nodes": k + 1})
    adjoint_terms: dict = {f: [sympy.Integer(1)]}
    grads: dict = {s: [] for s in symbols}
    for k, node in enumerate(reversed(order)):
        terms = adjoint_terms.pop(node, None)
        report("diff", len(order) + k + 1, total, {})
        if not terms:
            continue
        bar = sympy.Add(*terms)
        if not bar.is_Atom:
            assignments.append((sympy.Symbol(f"a{k}", real=True), bar))
            bar = assignments[-1][0]
        for c, d in partials[node]:
            (grads[c] if c in grads else adjoint_terms.setdefault(c, [])).append(bar * d)
    return Program(symbols, assignments, temp[f], [sympy.Add(*grads[s]) for s in symbols])


# --- printing and compiling -------------------------------------------------------------------

_FLOAT64_BITS = 53


class _Float64Printer(NumPyPrinter):
    """NumPy functions on scalars: float64 constants with all 17 digits (SymPy writes 15, not round-trip),
    and Python's ``a if c else b`` for Piecewise (``numpy.select`` rejects the nested conditions that
    derivatives of ``Max`` produce, and is slow on scalars)."""

    _print_Piecewise = PythonCodePrinter._print_Piecewise
    _print_Relational = PythonCodePrinter._print_Relational
    _print_And = PythonCodePrinter._print_And
    _print_Or = PythonCodePrinter._print_Or
    _print_Not = PythonCodePrinter._print_Not

    def _print_Float(self, expr):
        if expr._prec <= _FLOAT64_BITS:
            return repr(float(expr))
        return super()._print_Float(expr)


_PRINTERS = {"numpy": _Float64Printer, "mpmath": MpmathPrinter}
_FAST_FUNCTIONS = {sympy.exp: "exp", sympy.log: "log", sympy.tanh: "tanh", sympy.sin: "sin", sympy.cos: "cos"}


# Python's compiler recurses once per operator of an a + b + c + ... chain and fails near a thousand terms
# (seen at P = 3034); longer sums and products are printed as sum([...]) and math.prod([...]).
_LONG_CHAIN = 64


def _fast(printer, module: str, e) -> str:
    """Print the nodes a gradient program is made of (sums, products, integer powers, exp/log/tanh/sin/cos
    of a symbol or number) directly; anything else goes to SymPy's printer.  SymPy's printer costs
    ~0.3 ms a line, which was half of the cold time at P = 10^4; this takes a few microseconds."""
    if e.is_Symbol:
        return e.name
    if e.is_Add or e.is_Mul:
        parts = [_fast(printer, module, a) for a in e.args]
        if len(parts) > _LONG_CHAIN:  # a flat list, not a BinOp chain that nests one level per term
            return f"{'sum' if e.is_Add else 'math.prod'}([{', '.join(parts)}])"
        if e.is_Add:
            return "(" + " + ".join(parts) + ")"
        return "*".join(parts)
    if e.is_Integer or (e.is_Float and module == "numpy" and e._prec <= _FLOAT64_BITS):
        return f"({e!r})" if e.is_Integer else f"({float(e)!r})"
    if e.is_Pow and e.exp.is_Integer and e.exp > 0:
        base = _fast(printer, module, e.base)
        return f"({base})**{int(e.exp)}" if e.base.is_Mul else f"{base}**{int(e.exp)}"
    if e.func in _FAST_FUNCTIONS and e.args[0].is_Symbol:
        return f"{module}.{_FAST_FUNCTIONS[e.func]}({e.args[0].name})"
    return f"({printer.doprint(e)})"


def program_source(program: Program, kind: str, report: Callable) -> str:
    """Python source of ``_symbolic(theta) -> (value, [grad...])`` for ``kind`` ``numpy`` or ``mpmath``."""
    printer = _PRINTERS[kind]({"fully_qualified_modules": True, "allow_unknown_functions": False})
    names = [str(s) for s in program.symbols]
    lines = ["def _symbolic(theta):", f"    [{', '.join(names)}] = theta"]
    total = len(program.assignments) + len(program.grad)
    for i, (t, e) in enumerate(program.assignments):
        lines.append(f"    {t} = {_fast(printer, kind, e)}")
        report("compile", i + 1, total, {})
    for j, g in enumerate(program.grad):
        lines.append(f"    _g{j} = {_fast(printer, kind, g)}")
        report("compile", len(program.assignments) + j + 1, total, {})
    grads = ", ".join(f"_g{j}" for j in range(len(program.grad)))
    lines.append(f"    return {_fast(printer, kind, program.value)}, [{grads}]")
    return "\n".join(lines) + "\n"


def load_source(source: str, kind: str) -> Callable:
    """Compile source made by :func:`program_source` (trusted: printed by SymPy, never user text)."""
    scope = {"numpy": np, "mpmath": mpmath, "functools": functools, "math": math}
    exec(compile(source, f"<diffkit.symbolic {kind}>", "exec"), scope)  # noqa: S102
    return scope["_symbolic"]
