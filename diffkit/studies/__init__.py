"""Studies: which method, at what accuracy, at what cost, as P grows.

A study is a TOML file under ``studies/`` (format: ``studies/README.md``) or
the same content as a dict.  :func:`run_study` runs its cells one at a time
into an SQLite store (resumable, crash-safe) and returns tidy results;
:func:`fit_cost_models` fits time against P.

>>> import diffkit as dk
>>> "scaling" in dk.studies.builtin_studies()
True
>>> dk.studies.load_study("scaling").kind
'gradient'
"""
from __future__ import annotations

from . import distributed  # noqa: F401  (installs run_study's --workers/--scheduler path; dask loads on use)
from .fit import fit_cost_models, loglog_slope
from .runner import GRADIENT_COLUMNS, results, run_study
from .spec import Cell, Study, StudyError, builtin_studies, load_study, study_from_dict, studies_dir
from .store import SCHEMA_VERSION, Store, StoreError, default_store_path, export

__all__ = ["Study", "Cell", "StudyError", "load_study", "study_from_dict", "builtin_studies", "studies_dir",
           "run_study", "results", "fit_cost_models", "loglog_slope", "Store", "StoreError", "SCHEMA_VERSION",
           "default_store_path", "export", "GRADIENT_COLUMNS"]
