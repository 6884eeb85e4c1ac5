"""Custom operations, in the spirit of ``torch.autograd.Function`` (seed 003)."""
from __future__ import annotations

from typing import Any, Callable

from .array import TArray
from .core import record

__all__ = ["Function", "Context", "newest_tape", "record_joint"]


class Context:
    """What a custom op's forward hands to its backward."""

    def __init__(self):
        self.saved: tuple = ()

    def save_for_backward(self, *values: Any) -> None:
        self.saved = values

    @property
    def saved_tensors(self) -> tuple:
        return self.saved


class _Custom:
    """The tape's view of a custom op: a joint rule that calls the user's backward."""

    scatter = False
    residual = False

    def __init__(self, cls: type):
        self.name = cls.__name__

        def joint(g, ctx):
            grads = cls.backward(ctx, g)
            return grads if isinstance(grads, (tuple, list)) else (grads,)
        self.joint = joint


_CUSTOM: dict[type, _Custom] = {}


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
        tape, vals = newest_tape(args)
        ans = cls.forward(ctx, *vals)
        if tape is None:
            return ans
        prim = _CUSTOM.get(cls) or _CUSTOM.setdefault(cls, _Custom(cls))
        return record_joint(tape, prim, args, vals, (ctx,), ans)


def newest_tape(args: tuple) -> tuple[Any, tuple]:
    """The newest tape among ``args`` (None if none), and the args as its values (its arrays opened)."""
    tape = max((a.tape for a in args if type(a) is TArray), key=lambda t: t.level, default=None)
    return tape, tuple(a.value if type(a) is TArray and a.tape is tape else a for a in args)


def record_joint(tape: Any, prim: Any, args: tuple, vals: tuple, rule_args: tuple, ans: Any) -> TArray:
    """Record a node whose one rule ``prim.joint(g, *rule_args)`` returns a contribution per argument."""
    parents = tuple(a.index if type(a) is TArray and a.tape is tape else -1 for a in args)
    shapes = tuple(tuple(getattr(v, "shape", ())) for v in vals)
    if tape.anomaly:
        from .anomaly import user_site
        tape.sites[len(tape.nodes)] = user_site()
    return record(tape, (prim, parents, rule_args, shapes), ans)
