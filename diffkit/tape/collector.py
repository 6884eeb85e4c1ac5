"""Python's cyclic garbage collector paused while a trace is recorded or swept, and restored as it was.

Recording and sweeping allocate a few objects per op and make no reference cycles, so a collection that
starts inside one finds nothing to free, but walks every node made so far: a third of a small gradient's
time, and more in a process that holds many objects (a test suite, a notebook).  Every trace pauses it:
the reverse sweep, ``dk.gradient``'s and ``dk.vjp``'s recording, and ``dk.jvp``'s forward pass.

>>> import gc
>>> with paused_collector():
...     gc.isenabled()
False
>>> gc.isenabled()                        # (as it was before: on, unless the caller had turned it off)
True
"""
from __future__ import annotations

import gc

__all__ = ["paused_collector"]


class paused_collector:  # noqa: N801  (used as a statement: ``with paused_collector():``)
    """Context manager: the collector off inside, then back as it was (on only if it was on: nesting is safe)."""

    __slots__ = ("was_enabled",)

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info) -> None:
        if self.was_enabled:
            gc.enable()
