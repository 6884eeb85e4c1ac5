"""Mutation score of diffkit's derivative rules and finite-difference stencils: ``python -m diffkit.mutation``.

Why not mutmut: mutmut (3.x) stops a mutant's run at its first failing test, so it cannot say *how many* tests
kill each mutant, nor whether one of them is independent of the rules.  This runner is small and does only that:

1. **Mutants.**  In the rule table (``diffkit/primitives/*.py`` once it exists, else ``diffkit/rules.py``) every
   derivative rule is a ``lambda g, ...`` (``g``: the incoming gradient, the table's fixed vocabulary) or a helper
   ``def ..._grad/..._vjp(...)``.  Each gets one mutant per change, one change at a time: the whole rule negated;
   each ``+ - * /`` swapped (``+``/``-``, ``*``/``/``); each product ``a * b`` replaced by ``a`` and by ``b`` (a
   dropped factor); each number ``c`` replaced by ``c + 1``; each unary minus dropped; each call of a known
   function swapped (``sin``/``cos``, ``exp``/``log``, ``sqrt`` -> ``exp`` ...).  (``getitem``'s rule is not
   mutated: the tape adds g into the parent's gradient itself and never calls it.)  In
   ``diffkit/finite_differences.py`` each weight ``F(p)``/``F(p, q)`` of :data:`STENCILS` gets ``-p`` and
   ``p + 1``, and each offset ``o`` gets ``o + 1``.
2. **Runs.**  The repository is copied to a temporary folder once; for each mutant the one changed file is
   written there and the selected tests run (:func:`selection`: for a rule, the oracle cases of the
   primitives it serves) (``pytest``, no ``-x``: every test runs) in a forked child that imports the copy's
   diffkit afresh; the failing and erroring tests are the mutant's killers.  The unmutated baseline must pass first.
3. **Score.**  ``killed / mutants``; a mutant is *strongly* killed when at least two tests kill it and at least
   one of them is oracle-independent (listed in :data:`INDEPENDENT`: tests whose expected numbers come from
   mpmath's differentiation of the definition, closed forms or the seeds, never from diffkit's rules or
   stencils).  The surviving and weakly killed mutants are printed with their killers.

``--plant`` runs only the issue's planted bugs (tanh ``1 - ans^2`` -> ``1 - ans``, sin ``cos`` -> ``-cos``,
divide's denominator sign, exp, cos, sqrt), each with the referee's certification on and off (``--plant`` patches
``certify=True`` to ``False`` in ``diffkit/reference.py`` of the copy), and prints how many tests fail.

Examples::

    python -m diffkit.mutation --list                 # the mutants, nothing run
    python -m diffkit.mutation --plant                # the planted bugs, certification on and off
    python -m diffkit.mutation                        # everything (slow: ~2-10 s per mutant on 2 cores)
    python -m diffkit.mutation --only stencils --json mutation.json
    python -m diffkit.mutation --files linalg --json linalg.json   # one file's rules; --summary linalg.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from .mutants import REPO, Mutant, apply, rule_mutants, stencil_mutants

# the fast, targeted selections (what a wrong rule or stencil should fail), and the long ones they skip
TESTS = {
    # (tests/test_core.py, whose per-op and MLP tests also kill rule mutants, doubles the time of a run:
    # add it here for a fuller count of killers)
    "rules": ["tests/test_rule_oracles.py", "tests/test_rule_oracles_conventions.py"],
    "stencils": ["tests/test_finite_differences.py", "tests/test_baydin_figure3.py"],
}
# the slowest tests of the selection, whose work the oracle tests and the per-op tests cover
DESELECT = ["tests/test_core.py::test_tape_agrees_with_reference_to_13_digits",
            "tests/test_core.py::test_every_activation_and_cost_certified_per_coordinate"]

# Oracle-independent tests: their expected numbers never come from the code under mutation.
INDEPENDENT = {
    "rules": ("tests/test_rule_oracles.py::test_tape_rule_matches_the_mpmath_oracle",
              "tests/test_rule_oracles.py::test_referee_without_certification_matches_the_mpmath_oracle",
              "tests/test_rule_oracles.py::test_forward_mode_matches_the_mpmath_oracle",
              "tests/test_rule_oracles_conventions.py",  # the documented numbers at kinks, written out by hand
              "tests/test_core.py::test_tape_reproduces_the_seeds_printed_numbers",
              "tests/test_core.py::test_seed_numbers_exactly",
              "tests/test_core.py::test_tape_matches_handwritten_backprop",
              "tests/test_core.py::test_vjp_of_a_vector_function_matches_closed_form",
              "tests/test_core.py::test_relu_derivative_at_zero", "tests/test_core.py::test_abs_derivative_at_zero",
              "tests/test_core.py::test_maximum_tie", "tests/test_core.py::test_max_reduction_ties",
              "tests/test_core.py::test_max_routes", "tests/test_core.py::test_fan_out"),
    # every stencil test compares with the mpmath reference, closed forms or exact counts: none uses a stencil
    "stencils": ("tests/test_finite_differences.py", "tests/test_baydin_figure3.py"),
}

# --- runs -------------------------------------------------------------------------------------------------------

def _copy_repo() -> Path:
    if not (REPO / "tests").is_dir():
        raise SystemExit(f"the mutation runner needs diffkit's source checkout (its tests/ folder); {REPO} has none")
    dest = Path(tempfile.mkdtemp(prefix="diffkit-mutation-"))
    ignore = shutil.ignore_patterns(".git", ".ci-venv", "__pycache__", ".hypothesis", ".pytest_cache", "*.sqlite",
                                    "reports", "*.egg-info")
    for item in REPO.iterdir():
        if item.name in (".git", ".ci-venv", "reports"):
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=ignore)
        else:
            shutil.copy2(item, dest / item.name)
    return dest


PRELOAD = ("numpy", "scipy", "mpmath", "sympy", "pandas", "hypothesis", "pytest")  # never mutated: imported once


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def selection(m: "Mutant") -> list[str]:
    """The mutant's tests: for a rule, the oracle cases of the primitives it serves (``-k``)."""
    if m.kind != "rules":
        return TESTS[m.kind]
    names = [n for n in m.served if n.isidentifier()]
    return TESTS["rules"] + (["-k", " or ".join(names)] if names else [])


def run_tests(root: Path, tests: list[str], timeout: float = 600) -> tuple[str, list[str]]:
    """('ok' | 'failed' | 'timeout', the node ids of failing or erroring tests).

    pytest runs in a forked child of this process, which has imported the third-party libraries once
    (:data:`PRELOAD`); the child forgets the diffkit modules it inherits and imports the copy's (mutated) one.
    """
    report = root / "junit.xml"
    report.unlink(missing_ok=True)
    args = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "-m", "not slow", "-W", "ignore",
            f"--junitxml={report}", *[f"--deselect={d}" for d in DESELECT], *tests]
    pid = os.fork()
    if pid == 0:  # the child: run pytest on the copy, quietly, and leave without the parent's exit handlers
        code = 3
        try:
            for name in [n for n in sys.modules if n == "diffkit" or n.startswith("diffkit.")]:
                del sys.modules[name]  # (this runner is part of diffkit: the child imports the copy's afresh)
            os.chdir(root)
            sys.path.insert(0, str(root))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest
            code = int(pytest.main(args))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", []
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    if not report.exists():
        return "failed", [f"(no test ran: exit code {code})"]
    killers = []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            if not case.get("classname"):  # the module failed to import: the mutant broke it before any test ran
                killers.append(f"collection error: {case.get('name')}")
                continue
            path = case.get("classname", "").replace(".", "/")
            killers.append(f"{path}.py::{case.get('name')}")
    return ("failed" if killers or code not in (0, 5) else "ok"), killers


CERTIFY_SWITCH = ("if certify else None", "if False else None")  # in diffkit/reference.py: the referee's certification


def run_mutants(mutants: list[Mutant], certification: bool = True, say=print, save=None) -> set:
    """Run each mutant's selection; returns the tests that fail without any mutant (excluded from the killers)."""
    _preload()
    root = _copy_repo()
    originals = {m.file: (root / m.file).read_text() for m in mutants}
    if not certification:  # every dk.reference call skips its certification, as if each passed certify=False
        ref = root / "diffkit" / "reference.py"
        text = ref.read_text()
        if CERTIFY_SWITCH[0] not in text:
            raise SystemExit(f"cannot switch the certification off: {CERTIFY_SWITCH[0]!r} is not in {ref}")
        ref.write_text(text.replace(*CERTIFY_SWITCH))
    baseline = set()
    for kind in sorted({m.kind for m in mutants}):
        status, failing = run_tests(root, TESTS[kind])
        if status == "timeout" or (certification and failing):
            raise SystemExit(f"the unmutated {kind} selection does not pass ({status}): {failing[:5]}")
        baseline |= set(failing)
    if baseline:
        say(f"(excluded: {len(baseline)} tests that fail with the certification off and no mutant, e.g. "
            f"{sorted(baseline)[:2]})")
    for i, m in enumerate(mutants, 1):
        (root / m.file).write_text(apply(originals[m.file], m))
        status, failing = run_tests(root, selection(m))
        (root / m.file).write_text(originals[m.file])
        m.killers = [k for k in failing if k not in baseline]
        m.status = "timeout" if status == "timeout" else "ok" if not m.killers else "import" if all(
            k.startswith("collection error") for k in m.killers) else "killed"
        say(f"[{i}/{len(mutants)}] {len(m.killers):3d} killers  {m.key}")
        if save:
            save()
    shutil.rmtree(root, ignore_errors=True)
    return baseline


def independent(m: Mutant) -> list[str]:
    return [k for k in m.killers if k.startswith(INDEPENDENT[m.kind])]


def summary(mutants: list[Mutant]) -> str:
    unrun = len([m for m in mutants if m.status == "not run"])
    mutants = [m for m in mutants if m.status != "not run"]
    killed = [m for m in mutants if m.status != "ok"]
    strong = [m for m in killed if len(m.killers) >= 2 and independent(m)]
    lines = [f"mutation score: {len(killed)}/{len(mutants)} killed ({100 * len(killed) / max(len(mutants), 1):.1f}%); "
             f"{len(strong)} killed by >= 2 tests with >= 1 oracle-independent"
             + (f" ({unrun} mutants not run)" if unrun else "")]
    for kind in sorted({m.kind for m in mutants}):
        ms = [m for m in mutants if m.kind == kind]
        k = sum(m.status != "ok" for m in ms)
        lines.append(f"  {kind}: {k}/{len(ms)} killed")
    survivors = [m for m in mutants if m.status == "ok"]
    if survivors:
        lines.append("surviving mutants:")
        lines += [f"  {m.key}" for m in survivors]
    at_import = [m for m in killed if m.status == "import"]
    if at_import:
        lines.append(f"killed at import by the code's own consistency check (no test needed): {len(at_import)}, "
                     f"e.g. {at_import[0].key}")
    weak = [m for m in killed if m not in strong and m.status != "import"]
    if weak:
        lines.append("killed, but by < 2 tests or by no oracle-independent test:")
        lines += [f"  {m.key}: {len(m.killers)} killer(s), {len(independent(m))} independent: {m.killers[:3]}"
                  for m in weak]
    lines.append("killers per mutant (all / oracle-independent):")
    lines += [f"  {len(m.killers):3d} / {len(independent(m)):3d}  {m.key}" for m in mutants]
    return "\n".join(lines)


# the planted bugs, picked from the generated mutants by (primitive, change)
# (the new table's tanh rule is g * _sech2(x, xp), sech^2 = 4e / (1 + e)^2: its factor change stands in for
# the 1 - ans^2 -> 1 - ans)
PLANTED = [("tanh", "'ans * ans' -> 'ans'"), ("_sech2", "'4 * e' -> 'e'"), ("sin", "negated"), ("divide#2", "negated"),
           ("exp", "negated"),
           ("cos", "'-g' -> 'g'"), ("sqrt", "constant 0.5 -> 1.5")]


def planted(mutants: list[Mutant]) -> list[Mutant]:
    picked = []
    for rule, change in PLANTED:
        found = [m for m in mutants if m.rule == rule and m.change.startswith(change)]
        if found:
            picked.append(found[0])
        else:
            pass  # (a rule of the other table layout)
    return picked


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffkit.mutation", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("rules", "stencils"), help="one target table only")
    p.add_argument("--filter", help="only mutants of these primitives, helpers or stencils (comma-separated)")
    p.add_argument("--files", help="only mutants in files whose path contains this (e.g. elementwise)")
    p.add_argument("--change", help="only mutants whose change contains this (e.g. consistent)")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--plant", action="store_true", help="the issue's planted bugs, certification on and off")
    p.add_argument("--json", metavar="FILE", help="write every mutant and its killers to FILE (after each mutant)")
    p.add_argument("--summary", metavar="FILE", help="print the summary of a --json file (of a partial run too)")
    args = p.parse_args(argv)
    if args.summary:
        print(summary([Mutant(**{**m, "start": tuple(m["start"]), "end": tuple(m["end"])})
                       for m in json.loads(Path(args.summary).read_text())]))
        return 0
    # stencils first, then the calculus proper (elementwise, nn, reductions), then linear algebra and structure:
    # a run stopped part way has scored what matters most
    mutants = ([] if args.only == "rules" else stencil_mutants()) + sorted(
        [] if args.only == "stencils" else rule_mutants(),
        key=lambda m: [f in m.file for f in ("nn.py", "elementwise", "reductions", "linalg", "structure")].index(True)
        if any(f in m.file for f in ("nn.py", "elementwise", "reductions", "linalg", "structure")) else 9)
    if args.filter:
        mutants = [m for m in mutants if m.rule.split("#")[0] in args.filter.split(",")]
    if args.files:
        mutants = [m for m in mutants if args.files in m.file]
    if args.change:
        mutants = [m for m in mutants if args.change in m.change]
    if args.list:
        print("\n".join(m.key for m in mutants))
        print(f"{len(mutants)} mutants")
        return 0
    if args.plant:
        bugs = planted(mutants)
        results = {}
        for certification in (True, False):
            run_mutants(bugs, certification)
            for m in bugs:
                results.setdefault(m.key, []).append((len(m.killers), len(independent(m))))
        print("planted bug: failing tests (oracle-independent) with certification on | off")
        for key, ((on, on_i), (off, off_i)) in results.items():
            print(f"  {key}: {on} ({on_i}) | {off} ({off_i})")
        return 0 if all(min(on, off) >= 2 for (on, _), (off, _) in results.values()) else 1
    def save():
        Path(args.json).write_text(json.dumps([asdict(m) for m in mutants], indent=1))
    run_mutants(mutants, save=save if args.json else None)
    print(summary(mutants))
    return 0 if all(m.status != "ok" for m in mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
