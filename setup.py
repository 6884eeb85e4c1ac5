"""Packages for setuptools (everything else is in pyproject.toml).

pyproject's ``packages.find`` cannot add a package from another folder, so the list is made here: every
``diffkit*`` package, plus the top-level ``studies/`` folder shipped as ``diffkit.builtin_studies`` (the
built-in study files, found at run time through importlib.resources).
"""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["diffkit*"]), "diffkit.builtin_studies"],
      package_dir={"diffkit.builtin_studies": "studies"})
