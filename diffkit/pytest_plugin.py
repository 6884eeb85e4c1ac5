"""diffkit's pytest plugin (registered through the ``pytest11`` entry point): the ``gradcheck`` fixture.

In a test, ``gradcheck(f, theta, grad=None, **options)`` runs
:func:`diffkit.testing.check_gradient`: a disagreement fails the test with
the check's report; an *inconclusive* check (the finite-difference noise
floor above the requested tolerance) skips it with the reason, or fails it
under ``--gradcheck-strict``.

Precision, per test or per run:

* ``@pytest.mark.gradcheck(rtol=1e-8, atol=0, methods=..., reference=True, strict=True)``
  sets options for the ``gradcheck`` calls of one test;
* ``--gradcheck-rtol``, ``--gradcheck-atol`` and ``--gradcheck-strict`` set
  them for the whole run (the marker wins, then the call's own keywords).

Example test file::

    import numpy as np, diffkit as dk

    @pytest.mark.gradcheck(rtol=1e-7)
    def test_my_gradient(gradcheck):
        gradcheck(lambda t: dk.namespace(t).sum(t ** 3), np.array([1.0, 2.0]), grad=lambda t: 3 * t ** 2)
"""
from __future__ import annotations

import pytest

MARKER = "gradcheck"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("diffkit", "diffkit gradient checks")
    group.addoption("--gradcheck-rtol", type=float, default=None, metavar="RTOL",
                    help="relative tolerance of the gradcheck fixture (default: the finite-difference error model)")
    group.addoption("--gradcheck-atol", type=float, default=None, metavar="ATOL",
                    help="absolute tolerance of the gradcheck fixture (default: the finite-difference error model)")
    group.addoption("--gradcheck-strict", action="store_true", default=False,
                    help="fail (instead of skip) tests whose gradient check is inconclusive")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(rtol=None, atol=None, methods=('reverse', 'central'), reference=False, strict=False, "
                   f"...): options of diffkit's gradcheck fixture for this test")


def _options(request) -> dict:
    config = request.config
    opts = {"rtol": config.getoption("--gradcheck-rtol"), "atol": config.getoption("--gradcheck-atol"),
            "strict": config.getoption("--gradcheck-strict")}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword options only (rtol=, atol=, methods=, "
                                    f"reference=, strict=, ...); got positional {marker.args!r}")
        opts.update(marker.kwargs)
    return opts


@pytest.fixture
def gradcheck(request):
    """``gradcheck(f, theta=None, grad=None, **options)``: diffkit.testing.check_gradient inside a test.

    Fails the test on a disagreement; skips it when the check is
    inconclusive (fails it under strict).  Returns the GradientCheck.
    """
    from diffkit.testing import GradientCheckInconclusive, check_gradient

    defaults = _options(request)

    def check(f, theta=None, grad=None, **options):
        merged = {**defaults, **options}
        strict = merged.pop("strict", False)
        try:
            return check_gradient(f, theta, grad, strict=True, **merged)
        except GradientCheckInconclusive as why:
            report, inconclusive = str(why), True
        except AssertionError as err:
            report, inconclusive = str(err), False
        # outside the except blocks, so that the report is not followed by a chained traceback
        if inconclusive and not strict:
            pytest.skip(f"gradient check inconclusive: {report.splitlines()[0]}")
        pytest.fail(f"gradient check inconclusive (strict):\n{report}" if inconclusive else report, pytrace=False)

    return check
