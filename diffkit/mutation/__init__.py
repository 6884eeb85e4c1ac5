"""The mutation score of diffkit's derivative rules and finite-difference stencils (a development tool).

``python -m diffkit.mutation`` plants one wrong rule or stencil coefficient at a time in a copy of the checkout
and counts the tests that fail: see :mod:`diffkit.mutation.runner` for the options and the operators
(:mod:`diffkit.mutation.mutants`).  It needs the source checkout (tests/) and stays out of the test run: it is slow.
"""
from .runner import main

__all__ = ["main"]
