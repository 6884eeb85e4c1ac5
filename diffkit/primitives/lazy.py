"""Modules the table names but imports only on first use (SymPy and SciPy take a second or more to import)."""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Lazy", "sympy", "special", "scipy_linalg", "sympy_backend", "held"]


class Lazy:
    """A module proxy: ``Lazy("sympy").tanh`` imports SymPy the first time it is read."""

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


sympy = Lazy("sympy")
special = Lazy("scipy.special")
scipy_linalg = Lazy("scipy.linalg")
sympy_backend = Lazy("diffkit.sympy_backend")


def held(name: str):
    """SymPy's ``name`` held unevaluated on symbolic arguments, evaluated on numbers.

    SymPy's automatic evaluation (tanh(-u) -> -tanh(u) ...) queries assumptions
    over the whole argument: 20 s of a 20 s MLP build at P = 960.  On numbers it
    still evaluates (exp(0) -> 1), so exact results stay exact.
    """
    def apply(*args):
        fn = getattr(sympy, name)
        if all(getattr(a, "is_Number", True) for a in args):
            return fn(*args)
        return fn(*args, evaluate=False)
    apply.__name__ = name
    return apply
