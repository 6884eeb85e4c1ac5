"""Packages and the optional C extension for setuptools (everything else is in pyproject.toml).

pyproject's ``packages.find`` cannot add a package from another folder, so the list is made here: every
``diffkit*`` package, plus the top-level ``studies/`` folder shipped as ``diffkit.builtin_studies`` (the
built-in study files, found at run time through importlib.resources).

``diffkit.tape._ctape`` is the reverse sweep's loop in C (Python's headers only, no numpy headers). It is
optional: where no C compiler is, the build skips it and the tape runs its Python loop, which gives the same
gradients (``diffkit.tape.sweep`` says which one runs).
"""
from setuptools import Extension, find_packages, setup

setup(packages=[*find_packages(include=["diffkit*"]), "diffkit.builtin_studies"],
      package_dir={"diffkit.builtin_studies": "studies"},
      ext_modules=[Extension("diffkit.tape._ctape", ["diffkit/tape/_ctape.c"], optional=True,
                             extra_compile_args=["-O2"])])
