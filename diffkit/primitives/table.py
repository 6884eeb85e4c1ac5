"""What a primitive is: one entry with its forwards for every backend, its rules, its convention and its domain.

Every namespace diffkit hands to a user function (numpy floats, the complex
step, mpmath, SymPy, the reverse-mode tape, forward-mode duals) is generated
from :data:`PRIMITIVES`; nothing is spelled twice.  The entries themselves live
in the sibling modules (``elementwise``, ``reductions``, ``structure``,
``linalg``, ``nn``, ``constant``), one ``defprim`` call per primitive.

The vocabulary of an entry
--------------------------
``defprim(name, inputs, *, params, kind, numpy, complex, mpmath, sympy, vjp, jvp, ...)``

* ``inputs``: the differentiable operands, by name (``"x"``, ``"x y"``), or
  ``"*xs"`` for a variadic op (concat, stack, einsum operands).
* ``params``: the non-differentiable keyword parameters and their defaults
  (``{"axis": None, "keepdims": False}``).
* ``kind`` says how the forwards are written and how the JVP follows:

  - ``"elementwise"``: ``mpmath`` and ``sympy`` are *scalar* functions, lifted
    over object arrays; the local Jacobian is diagonal, so the JVP is the VJP
    rules applied to the tangents (``jvp="elementwise"`` is derived);
  - ``"linear"``: linear in all inputs jointly (reshape, sum, getitem...): the
    JVP is the forward applied to the tangents;
  - ``"array"``: any other op, with an explicit ``jvp`` (or ``"bilinear"`` for
    products such as matmul: f(dx, y) + f(x, dy));
  - ``"constant"``: no derivative at all (argmax, comparisons, floor): the
    result is a constant on every tape.

* ``numpy`` (required) works on float arrays; ``complex`` on complex128
  arrays for the complex step: ``SAME`` (numpy's forward is analytic and
  handles complex input), a function, or ``NotAnalytic("why")``; ``mpmath``
  and ``sympy``: a function, ``OBJECT`` (numpy's own function works on object
  arrays of that backend's numbers), or ``Unsupported("why")``.
* ``vjp``: one rule per input.  A rule's parameters say what it reads, from
  this fixed list: ``g`` (the incoming gradient, always first), ``ans`` (the
  forward's output), any input by its name, ``<input>_shape``, ``xp`` (the
  namespace of the values: numpy's, mpmath's, or a tape's when the sweep
  itself is recorded for a second derivative) and any param by name.  The
  tape keeps exactly the values a rule names, and rules are written against
  ``xp`` only, never against numpy, so that they run on every backend and can
  themselves be differentiated.
* ``jvp``: ``"elementwise"``, ``"linear"``, ``"bilinear"``, or a function
  ``jvp(xp, ans, inputs, tangents, **params)`` where an unperturbed input's
  tangent is ``None``.
* ``residual=True``: the forward returns ``(ans, res)``, where ``res`` is
  what the rules read beside ``ans`` (name it ``res``), and ``value`` is the
  numpy forward of the value alone, which the numpy namespace runs (a plain
  evaluation computes nothing for a rule that will not run).
* ``convention``: the documented choice at a kink or a branch cut.
* ``domain``: where the generated tests sample the primitive (:class:`Domain`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Primitive", "PRIMITIVES", "ALIASES", "defprim", "Domain", "NotAnalytic", "Unsupported", "SAME",
           "OBJECT", "BACKENDS"]

BACKENDS = ("numpy", "complex", "mpmath", "sympy")


@dataclass(frozen=True)
class NotAnalytic:
    """The complex step cannot differentiate this primitive; ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class Unsupported:
    """The backend has no such function; ``reason`` says why (and what to use instead)."""

    reason: str


SAME = "same as numpy"  # complex step: numpy's forward is analytic and takes complex input
OBJECT = "numpy on object arrays"  # mpmath/SymPy: numpy's function works on object arrays of their numbers


@dataclass(frozen=True)
class Domain:
    """Where tests draw a primitive's inputs: an interval and example shapes per input, kinks, example params.

    ``low``/``high`` bound every input (a tuple gives one bound per input);
    ``shapes`` lists example shape tuples, one shape per input;
    ``kinks`` are points where the derivative jumps (tested for the convention);
    ``params`` lists example keyword parameters; ``matrix`` names a structure
    the inputs must have (``"spd"``, ``"lower"``, ``"square"``) for linear algebra, ``"sorted"`` (ascending along
    the last axis) for a search; ``integer`` draws whole numbers (as floats), so that ties and zeros occur (unique,
    isin).
    """

    low: float | tuple = -3.0
    high: float | tuple = 3.0
    shapes: tuple = (((),), ((4,),), ((2, 3),))
    kinks: tuple = ()
    params: tuple = ({},)
    matrix: str = ""
    integer: bool = False


@dataclass(eq=False)
class Primitive:
    """One entry of the table; see the module docstring for each field."""

    name: str
    inputs: tuple
    variadic: bool
    params: dict
    kind: str
    impls: dict
    vjps: tuple
    jvp: Any
    convention: str = ""
    domain: Domain = field(default_factory=Domain)
    aliases: tuple = ()
    api: Callable | None = None  # user-facing signature -> (inputs, params), where it differs (concat(arrays))
    scatter: bool = False  # indexing: its rule's result is added into a slice of the parent's gradient
    residual: bool = False  # the forward returns (ans, res); the rules may name ``res``
    joint: Callable | None = None  # one rule for all inputs (variadic ops): returns a tuple
    nondiff: tuple = ()  # indices of inputs that carry no derivative (the condition of where)
    doc: str = ""
    index: int = -1
    # filled by the tape: (which inputs are on the tape, number of inputs) -> what a node keeps
    plans: dict = field(default_factory=dict, repr=False)
    rule_args: tuple = field(default=(), repr=False)
    value: Callable | None = field(default=None, repr=False)  # a residual primitive's numpy forward of the value

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __hash__(self) -> int:
        return id(self)

    @property
    def rules(self) -> tuple:
        return self.vjps

    def impl(self, backend: str) -> Any:
        """The forward for ``backend`` as declared: a function, or a :class:`NotAnalytic`/:class:`Unsupported`."""
        return self.impls.get(backend)


PRIMITIVES: dict[str, Primitive] = {}
ALIASES: dict[str, str] = {}  # numpy spelling -> the table's name (arcsin -> asin is not used: both listed)


def _rule_args(rule: Callable) -> tuple:
    code = rule.__code__  # the parameter names: the documented vocabulary above
    names = code.co_varnames[:code.co_argcount]
    if not names or names[0] != "g":
        raise TypeError(f"a VJP rule's first parameter must be 'g' (the incoming gradient); got {names}")
    return names[1:]


def defprim(name: str, inputs: str, *, numpy: Callable, kind: str = "elementwise", params: dict | None = None,
            complex: Any = None, mpmath: Any = None, sympy: Any = None, vjp: Any = (), jvp: Any = None,
            convention: str = "", domain: Domain | None = None, aliases: tuple = (), api: Callable | None = None,
            scatter: bool = False, residual: bool = False, joint: Callable | None = None, nondiff: tuple = (),
            doc: str = "", value: Callable | None = None) -> Primitive:
    """Add one primitive to :data:`PRIMITIVES` (see the module docstring for the vocabulary)."""
    if name in PRIMITIVES:
        raise ValueError(f"primitive {name!r} is defined twice")
    names = tuple(inputs.split())
    variadic = bool(names) and names[0].startswith("*")
    names = (names[0][1:],) if variadic else names
    vjps = vjp if isinstance(vjp, tuple) else (vjp,)
    if jvp is None:
        jvp = {"elementwise": "elementwise", "linear": "linear"}.get(kind)
    if kind == "constant":
        vjps, jvp = (), "constant"
    prim = Primitive(name, names, variadic, dict(params or {}), kind,
                     {"numpy": numpy, "complex": complex, "mpmath": mpmath, "sympy": sympy}, vjps, jvp,
                     convention, domain or Domain(), tuple(aliases), api, scatter, residual, joint, tuple(nondiff),
                     doc, len(PRIMITIVES))
    if residual and value is None:
        raise ValueError(f"primitive {name!r} has a residual: give value=, its numpy forward of the value alone")
    prim.value = value
    prim.rule_args = tuple(() if r is None else _rule_args(r) for r in vjps)
    PRIMITIVES[name] = prim
    for alias in aliases:
        ALIASES[alias] = name
    return prim
