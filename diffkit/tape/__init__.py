"""Automatic differentiation: the reverse-mode tape (:mod:`.core`) and forward-mode duals (:mod:`.dual`).

Both record or propagate the primitives of :mod:`diffkit.primitives` and nothing
else; custom ops (:mod:`.custom`), recomputed segments (:mod:`.checkpoint`), anomaly detection (:mod:`.anomaly`) and
memory accounting (:mod:`.memory`) sit beside the core.
"""
from __future__ import annotations

from . import levels  # noqa: F401  (installs the mixed-trace path and the tape namespace into .core)
from .array import TArray
from .checkpoint import checkpoint
from .core import Tape, apply, new_level, unbroadcast
from .custom import Context, Function
from .dual import Dual, jvp
from .memory import bytes_held
from .vjp import vjp

__all__ = ["TArray", "Tape", "apply", "new_level", "unbroadcast", "Function", "Context", "Dual", "jvp", "vjp",
           "bytes_held", "checkpoint"]
