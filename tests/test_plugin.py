"""Issue 7: the pytest plugin (pytest11 entry point), run in a throwaway example project through pytester."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = '''
import numpy as np
import pytest
import diffkit as dk


def cube(t):
    return dk.namespace(t).sum(t ** 3)


def test_right(gradcheck):
    check = gradcheck(cube, np.array([1.0, -2.0]), grad=lambda t: 3 * t ** 2)
    assert check.verdict == "pass"


def test_missing_factor_3(gradcheck):
    gradcheck(cube, np.array([1.0, -2.0]), grad=lambda t: t ** 2)


@pytest.mark.gradcheck(rtol=1e-14)
def test_tighter_than_finite_differences_can_resolve(gradcheck):
    gradcheck(cube, np.array([1.0, -2.0]), grad=lambda t: 3 * t ** 2)


def test_diffkit_methods_on_a_problem(gradcheck):
    prob = dk.problems.mlp([2, 3, 2], activation="sigmoid", loss="binary_cross_entropy", batch=4)
    gradcheck(prob)
'''


def test_plugin_is_registered_through_the_pytest11_entry_point():
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("diffkit") == "diffkit.pytest_plugin"


def test_gradcheck_fixture_in_a_fresh_project(pytester):
    pytester.makepyfile(test_example=EXAMPLE)
    result = pytester.runpytest("-rs", "--strict-markers")  # strict markers: the plugin registers its marker
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*test_missing_factor_3*", "*grad disagrees with reverse*theta[[]1]*"])
    result.stdout.fnmatch_lines(["*SKIPPED*gradient check inconclusive*"])
    assert "During handling of the above exception" not in result.stdout.str()


def test_strict_and_precision_options(pytester):
    pytester.makepyfile(test_example=EXAMPLE)
    # at rtol 1e-3 the factor-3 bug still fails; the marker's rtol 1e-14 wins over the option, is below the
    # finite-difference floor, and --gradcheck-strict turns that inconclusive check into a failure
    result = pytester.runpytest("--gradcheck-strict", "--gradcheck-rtol=1e-3")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*gradient check inconclusive (strict)*"])
    # at rtol 1e-15 every correct check is finer than central differences can resolve: skipped, not failed
    result = pytester.runpytest("--gradcheck-rtol=1e-15", "-k", "right or problem")
    result.assert_outcomes(skipped=2)


def test_marker_takes_keywords_only(pytester):
    pytester.makepyfile(test_bad='''
import numpy as np, pytest

@pytest.mark.gradcheck(1e-6)
def test_positional(gradcheck):
    gradcheck(lambda t: (t * t).sum(), np.ones(2), grad=lambda t: 2 * t)
''')
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*takes keyword options only*"])
    assert result.ret != 0
