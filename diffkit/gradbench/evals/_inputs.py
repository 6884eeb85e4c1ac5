"""Reading eval inputs: each field checked, with an error that names it and says what it must be."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["field", "vector", "matrix", "integer"]


def field(input: Any, name: str) -> Any:
    if not isinstance(input, dict):
        raise ValueError(f"the input must be a JSON object with a field {name!r}; got {type(input).__name__}")
    if name not in input:
        raise ValueError(f"the input has no field {name!r} (it has: {', '.join(map(str, input)) or 'none'})")
    return input[name]


def vector(input: Any, name: str, size: int | None = None) -> np.ndarray:
    """``input[name]`` as a non-empty 1-D float64 array (of ``size`` entries when given)."""
    try:
        value = np.asarray(field(input, name), dtype=np.float64)
    except (TypeError, ValueError) as err:
        if "has no field" in str(err) or "must be a JSON object" in str(err):
            raise
        raise ValueError(f"input.{name} must be a list of numbers: {err}") from None
    if value.ndim != 1 or value.size == 0 or (size is not None and value.size != size):
        want = f"{size} numbers" if size is not None else "a non-empty list of numbers"
        raise ValueError(f"input.{name} must be {want}; got shape {value.shape}")
    return value


def matrix(input: Any, name: str, columns: int | None = None) -> np.ndarray:
    """``input[name]`` as a 2-D float64 array (rows of equal length, ``columns`` of them when given)."""
    try:
        value = np.asarray(field(input, name), dtype=np.float64)
    except ValueError as err:
        if "has no field" in str(err) or "must be a JSON object" in str(err):
            raise
        raise ValueError(f"input.{name} must be a list of equally long lists of numbers: {err}") from None
    if value.ndim == 1 and value.size == 0 and columns == 0:
        value = value.reshape(0, 0)
    if value.ndim != 2 or (columns is not None and value.shape[1] != columns):
        want = f"rows of {columns} numbers" if columns is not None else "a list of rows"
        raise ValueError(f"input.{name} must be {want}; got shape {value.shape}")
    return value


def integer(input: Any, name: str, minimum: int = 1) -> int:
    value = field(input, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"input.{name} must be an integer >= {minimum}; got {value!r}")
    return value
