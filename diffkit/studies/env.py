"""The environment recorded with every row, and how BLAS threads are fixed.

BLAS threads: with ``threadpoolctl`` installed, :func:`blas_threads` limits
every BLAS/OpenMP pool for the duration of a study (in-process, reversible).
Without it the only reliable way is to set ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` *before numpy is imported*:
``diffkit study run`` then re-runs itself in a subprocess with them set (see
:func:`needs_subprocess`).  A study run from Python without threadpoolctl and
without those variables records ``blas_threads`` as None and says "unfixed".
"""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PACKAGES = ("diffkit", "numpy", "sympy", "mpmath", "pandas", "symengine", "torch", "jax", "autograd",
            "threadpoolctl")


def _threadpoolctl():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def env_threads() -> int | None:
    """The thread count fixed by the environment variables, if they all agree."""
    values = {os.environ.get(v) for v in THREAD_VARS}
    if len(values) == 1 and None not in values and values.pop().isdigit():
        return int(os.environ[THREAD_VARS[0]])
    return None


def needs_subprocess(threads: int) -> bool:
    """True when threads can be fixed only by re-running in a subprocess with THREAD_VARS set."""
    return _threadpoolctl() is None and env_threads() != threads


def subprocess_env(threads: int) -> dict:
    return {**os.environ, **{v: str(threads) for v in THREAD_VARS}}


@contextlib.contextmanager
def blas_threads(threads: int):
    """Fix BLAS threads while the block runs; yields the count in force (None when it could not be fixed)."""
    tpc = _threadpoolctl()
    if tpc is not None:
        with tpc.threadpool_limits(limits=threads):
            counts = {p["num_threads"] for p in tpc.threadpool_info()}
            yield counts.pop() if len(counts) == 1 else None
    else:
        yield env_threads()


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _blas() -> dict:
    import numpy as np

    info = {}
    with contextlib.suppress(Exception):  # the layout of show_config's dict changes between numpy versions
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        info = {k: {f: deps[k].get(f) for f in ("name", "version")} for k in ("blas", "lapack") if k in deps}
    tpc = _threadpoolctl()
    if tpc is not None:
        info["pools"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
                         for p in tpc.threadpool_info()]
    return info


def git_commit() -> str:
    """The repository's HEAD commit ("unknown" outside a git checkout); appends "+dirty" for local changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@lru_cache(maxsize=1)
def _static_env() -> dict:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "packages": versions, "blas": _blas(), "git_commit": git_commit()}


def environment(threads_in_force: int | None) -> dict:
    """Everything a reader needs to reproduce a timing: versions, BLAS, threads, CPU, commit."""
    env = dict(_static_env())
    env["blas_threads"] = threads_in_force if threads_in_force is not None else "unfixed"
    env["thread_vars"] = {v: os.environ.get(v) for v in THREAD_VARS}
    return env
