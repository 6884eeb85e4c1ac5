"""Test-run hooks: doctests that need an optional extra are skipped, with the reason, where it is not installed."""
from __future__ import annotations

import importlib.util

import pytest

# doctest module -> (the packages its examples need, how to install them)
DOCTEST_EXTRAS = {"diffkit/peers.py": (("torch", "array_api_compat"), "pip install 'diffkit[peers]'")}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.nodeid.split("::")[0]
        if path not in DOCTEST_EXTRAS or not item.nodeid.startswith(f"{path}::diffkit."):
            continue
        modules, hint = DOCTEST_EXTRAS[path]
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"not installed ({', '.join(missing)}): {hint}"))
