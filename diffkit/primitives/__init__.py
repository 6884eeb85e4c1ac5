"""The primitive table: every op diffkit knows, with its forwards for each backend and its rules.

``PRIMITIVES[name]`` is one :class:`~diffkit.primitives.table.Primitive`; the
entries live by family in the modules below, one ``defprim`` call each, so
``grep -n tanh diffkit/primitives/elementwise.py`` shows tanh's forward for
every backend, its reverse rule, its forward rule and its test domain.
"""
from __future__ import annotations

from . import constant, decompositions, elementwise, linalg, nn, reductions, structure  # noqa: F401  (each fills the table)
from .table import ALIASES, BACKENDS, OBJECT, PRIMITIVES, SAME, Domain, NotAnalytic, Primitive, Unsupported, defprim

__all__ = ["PRIMITIVES", "ALIASES", "BACKENDS", "Primitive", "Domain", "NotAnalytic", "Unsupported", "SAME",
           "OBJECT", "defprim", "coverage"]


def coverage() -> dict:
    """``{name: {backend: "yes" | reason}}`` for every primitive and value backend (plus tape and forward mode)."""
    from .table import NotAnalytic as NA, Unsupported as UN
    table = {}
    for name, prim in PRIMITIVES.items():
        row = {}
        for backend in BACKENDS:
            impl = prim.impls.get(backend)
            row[backend] = (impl.reason if isinstance(impl, (NA, UN)) else "yes") if impl is not None else "missing"
        row["reverse"] = "constant" if prim.kind == "constant" else ("yes" if prim.vjps or prim.joint else "missing")
        row["forward"] = "constant" if prim.kind == "constant" else ("yes" if prim.jvp else "missing")
        table[name] = row
    return table
