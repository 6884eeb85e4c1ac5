"""Anomaly detection (``dk.gradient(..., anomaly=True)``): name the op and the user's line that made a NaN/inf."""
from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np

from ..dispatch import namespace

__all__ = ["check_finite", "user_site", "shape_error"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_site() -> str:
    """``file:line in function`` of the innermost caller outside diffkit."""
    frame = sys._getframe(1)
    while frame is not None and _ours(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _ours(filename: str) -> bool:
    """A file of the package, or code the tape generated (``<recorder of log>``, ``<plan of sum>``)."""
    return filename.startswith(("<recorder of ", "<plan of ")) or os.path.abspath(filename).startswith(
        _PACKAGE_DIR + os.sep)


def check_finite(value: Any, what: str, site: str) -> None:
    xp = namespace(value)
    if not np.all(xp.isfinite(value)):
        bad = "nan" if np.any(xp.isnan(value)) else "inf"
        raise FloatingPointError(f"anomaly: {what} produced {bad}, called at {site}")


def shape_error(prim: Any, vals: Sequence, err: Exception) -> Exception:
    shapes = ", ".join(str(getattr(v, "shape", ())) for v in vals)
    return type(err)(f"{prim.name}: cannot combine operands of shapes {shapes}: {err}")
