"""The mutants of :mod:`diffkit.mutation`: one change each to a derivative rule or a finite-difference stencil.

Rules are found in the primitive table (``diffkit/primitives/*.py``, else the old ``diffkit/rules.py``) as the
``vjp=`` rules of each ``defprim`` (``lambda g, ...``: ``g`` is the incoming gradient, the table's fixed
vocabulary) and the module-level helpers they name.  Stencils are the entries of ``STENCILS`` in
``diffkit/finite_differences.py``.  See :mod:`diffkit.mutation` for the operators and how the mutants are run.
"""
from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: diffkit/mutation/ is two below
STENCIL_FILE = "diffkit/finite_differences.py"

# --- mutants ----------------------------------------------------------------------------------------------------

SWAPS = {"sin": "cos", "cos": "sin", "exp": "log", "log": "exp", "expm1": "exp", "log1p": "log", "sqrt": "exp",
         "tanh": "sin", "sign": "abs", "abs": "sign", "sinh": "cosh", "cosh": "sinh", "square": "abs"}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


@dataclass
class Mutant:
    kind: str  # rules | stencils
    file: str
    line: int
    rule: str  # the primitive (or stencil) it belongs to
    change: str
    start: tuple  # (line, col) of the replaced source segment
    end: tuple
    text: str  # the replacement
    served: list = field(default_factory=list)  # the primitives (and aliases) whose rules this code is
    killers: list = field(default_factory=list)
    status: str = "not run"

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line} [{self.rule}] {self.change}"


def _rule_files() -> list[str]:
    table = sorted(str(p.relative_to(REPO)) for p in (REPO / "diffkit" / "primitives").glob("*.py"))
    return table or ["diffkit/rules.py"]


def _is_rule_lambda(node) -> bool:
    """``lambda g, ...``: a VJP rule (``lambda g: None``, an input with no gradient, has nothing to mutate)."""
    return isinstance(node, ast.Lambda) and bool(node.args.args) and node.args.args[0].arg == "g" and not (
        isinstance(node.body, ast.Constant) and node.body.value is None)


def _entries(tree) -> list[tuple[str, tuple, ast.Call]]:
    """(name, aliases, call) of every ``defprim("name", ...)`` in a module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "defprim" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            aliases = ()
            for kw in node.keywords:
                if kw.arg == "aliases" and isinstance(kw.value, (ast.Tuple, ast.List)):
                    aliases = tuple(e.value for e in kw.value.elts if isinstance(e, ast.Constant))
            out.append((node.args[0].value, aliases, node))
    return out


def _rules_of(call: ast.Call) -> list:
    """The VJP rules of one entry, in input order: ``vjp=`` a lambda, a name, a call or a tuple of them (the old
    table: the positional lambdas after the forward, and ``joint=``)."""
    vjp = next((kw.value for kw in call.keywords if kw.arg in ("vjp", "joint")), None)
    if vjp is None:
        return [a for a in call.args[2:] if isinstance(a, ast.Lambda)]
    return list(vjp.elts) if isinstance(vjp, ast.Tuple) else [vjp]


def _targets(tree) -> list[tuple[ast.AST, str, set]]:
    """(node to mutate, label, the primitives it serves): every VJP rule lambda, and every module-level helper
    function a rule names (``_tie_weight``, ``_sech2``, ``vjp=_var_vjp`` ...) with the entries that use it.
    JVP rules (``jvp=``) are not mutated: the selected tests exercise reverse mode."""
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    users: dict[str, set] = {}
    out = []
    for name, aliases, call in _entries(tree):
        served = {name, *aliases}
        if any(kw.arg == "scatter" and getattr(kw.value, "value", False) is True for kw in call.keywords):
            continue  # x[index]: the tape adds g into the parent's gradient itself and never calls the rule
        rules = _rules_of(call)
        for k, rule in enumerate(rules, 1):
            label = name + (f"#{k}" if len(rules) > 1 else "")
            if _is_rule_lambda(rule):
                out.append((rule, label, served))
            for ref in ast.walk(rule):
                if isinstance(ref, ast.Name) and ref.id in helpers:
                    users.setdefault(ref.id, set()).update(served)
    changed = True
    while changed:  # a helper called by a helper serves the same entries
        changed = False
        for h in list(users):
            for ref in ast.walk(helpers[h]):
                if isinstance(ref, ast.Name) and ref.id in helpers and ref.id != h \
                        and not users[h] <= users.get(ref.id, set()):
                    users.setdefault(ref.id, set()).update(users[h])
                    changed = True
    out += [(helpers[h], h, served) for h, served in sorted(users.items())]
    return out


def _variants(rule) -> list[tuple[str, ast.AST]]:
    """(change, mutated copy of rule): one change each."""
    out = []
    if isinstance(rule, ast.Lambda) and not isinstance(rule.body, ast.Tuple):
        m = copy.deepcopy(rule)
        m.body = ast.UnaryOp(ast.USub(), m.body)
        out.append(("negated", m))
    nodes = list(ast.walk(rule))
    for k, node in enumerate(nodes):
        def mutated(edit, what):
            m = copy.deepcopy(rule)
            target = list(ast.walk(m))[k]
            if edit(target, m) is not False:
                out.append((what, m))
        if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS:
            sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
            new = BINOP_SWAPS[type(node.op)]
            mutated(lambda t, m: setattr(t, "op", new()),
                    f"'{ast.unparse(node)}': {sym[type(node.op)]} -> {sym[new]}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for side in ("left", "right"):
                mutated(lambda t, m, side=side: _replace(m, t, getattr(t, side)),
                        f"'{ast.unparse(node)}' -> '{ast.unparse(getattr(node, side))}'")
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) and not _in_axis(node, rule):
            mutated(lambda t, m: setattr(t, "value", t.value + 1), f"constant {node.value!r} -> {node.value + 1!r}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            mutated(lambda t, m: _replace(m, t, t.operand), f"'{ast.unparse(node)}' -> '{ast.unparse(node.operand)}'")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SWAPS:
            new = SWAPS[node.func.attr]
            mutated(lambda t, m: setattr(t.func, "attr", new), f"{node.func.attr} -> {new}")
    return out


def _in_axis(node, rule) -> bool:
    """Numbers that are axes, shapes or indices (keyword args, subscripts) are not calculus."""
    for parent in ast.walk(rule):
        if isinstance(parent, ast.keyword) and node in ast.walk(parent.value):
            return True
        if isinstance(parent, ast.Subscript) and node in ast.walk(parent.slice):
            return True
    return False


def _replace(root, old, new) -> None:
    for parent in ast.walk(root):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[[i for i, v in enumerate(value) if v is old][0]] = new
                return
    raise ValueError("node not found")  # the rule itself: not produced by the operators above


def rule_mutants() -> list[Mutant]:
    mutants = []
    for path in _rule_files():
        tree = ast.parse((REPO / path).read_text())
        for node, label, served in _targets(tree):
            seen = {ast.unparse(node)}
            for change, m in _variants(node):
                text = ast.unparse(m)
                if text in seen:  # the same change reached twice (ans * ans -> ans, either side)
                    continue
                seen.add(text)
                text = f"({text})" if isinstance(node, ast.Lambda) else text
                mutants.append(Mutant("rules", path, node.lineno, label, change, (node.lineno, node.col_offset),
                                      (node.end_lineno, node.end_col_offset), text, sorted(served)))
    return mutants


def stencil_mutants() -> list[Mutant]:
    tree = ast.parse((REPO / STENCIL_FILE).read_text())
    table = next(n for n in ast.walk(tree)
                 if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "STENCILS")
    mutants = []
    for call in ast.walk(table.value):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Stencil"):
            continue
        name = call.args[0].value
        offsets, weights = call.args[1], call.args[2]
        for o in offsets.elts:
            value = ast.literal_eval(o)
            mutants.append(Mutant("stencils", STENCIL_FILE, o.lineno, name, f"offset {value} -> {value + 1}",
                                  (o.lineno, o.col_offset), (o.end_lineno, o.end_col_offset), repr(value + 1)))
        mutants += _consistent_stencil_mutants(name, offsets, weights)
        for w in weights.elts:
            args = [ast.literal_eval(a) for a in w.args]
            src = ast.unparse(w)
            for new, what in ((-args[0], "negated"), (args[0] + 1, "numerator + 1")):
                text = f"F({', '.join(map(str, [new, *args[1:]]))})"
                mutants.append(Mutant("stencils", STENCIL_FILE, w.lineno, name, f"weight {src}: {what} -> {text}",
                                      (w.lineno, w.col_offset), (w.end_lineno, w.end_col_offset), text))
    return mutants


def _consistent_stencil_mutants(name: str, offsets: ast.Tuple, weights: ast.Tuple) -> list[Mutant]:
    """Wrong stencils that still estimate a first derivative, so the module's own check (moments 0 and 1) passes
    and only the tests can see them: the offsets doubled with the weights halved (same formula, a step twice the
    model's), and, on three or more points, the 2-point stencil of each pair of offsets (a lower order)."""
    from fractions import Fraction
    from itertools import combinations

    offs = [ast.literal_eval(o) for o in offsets.elts]
    ws = [Fraction(*[ast.literal_eval(a) for a in w.args]) for w in weights.elts]
    span = (offsets.lineno, offsets.col_offset), (weights.end_lineno, weights.end_col_offset)
    src = lambda o, w: f"({', '.join(map(str, o))},), ({', '.join(f'F({v.numerator}, {v.denominator})' for v in w)},)"  # noqa: E731
    out = [Mutant("stencils", STENCIL_FILE, offsets.lineno, name, "consistent: offsets x 2, weights / 2", *span,
                  src([2 * o for o in offs], [w / 2 for w in ws]))]
    if len(offs) >= 3:
        for a, b in combinations(range(len(offs)), 2):
            w = [Fraction(0)] * len(offs)
            w[a], w[b] = Fraction(-1, offs[b] - offs[a]), Fraction(1, offs[b] - offs[a])
            out.append(Mutant("stencils", STENCIL_FILE, offsets.lineno, name,
                              f"consistent: the 2-point stencil on offsets {offs[a]}, {offs[b]}", *span, src(offs, w)))
    return out


def apply(source: str, m: Mutant) -> str:
    lines = source.splitlines(keepends=True)
    offset = lambda line, col: sum(len(l) for l in lines[:line - 1]) + col  # noqa: E731  (ast cols: utf-8 = ascii here)
    a, b = offset(*m.start), offset(*m.end)
    return source[:a] + m.text + source[b:]
