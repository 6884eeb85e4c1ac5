"""``diffkit report``: study results turned into a report that shows why backprop wins.

:func:`build_report` gathers the results (:mod:`.data`), derives one table per
table or figure (:mod:`.tables`), draws the figures (:mod:`.figures`), writes
the sections (:mod:`.sections`, with every measured sentence from
:mod:`.claims`) and renders them to Markdown and self-contained HTML
(:mod:`.document`, :mod:`.html`).  The output directory holds::

    index.md  index.html  figures/<name>.png|svg  data/<table>.csv  .diffkit-report

It is built in a temporary directory beside ``out_dir`` and moved into place
only when complete, so a failure leaves nothing half-written.  :func:`render`
does the same from data already gathered:

>>> import tempfile, pathlib
>>> from diffkit.report.data import ReportData
>>> out = render(ReportData(), pathlib.Path(tempfile.mkdtemp()) / "reports")
>>> sorted(p.name for p in out.iterdir())
['.diffkit-report', 'data', 'figures', 'index.html', 'index.md']
>>> "## 8. Why backprop wins" in (out / "index.md").read_text()
True
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .data import DEFAULT_STUDIES, ReportData, check_studies, gather
from .document import to_markdown
from .graphs import write_graphs
from .html import to_html
from .sections import build_sections
from .tables import derive

__all__ = ["build_report", "render", "check_out_dir", "ReportData", "DEFAULT_STUDIES", "check_studies"]

# A folder holding this file was made by render(), so it may be replaced; any other non-empty folder is refused
# (an index.md alone proves nothing: it may be the user's own).
MARKER = ".diffkit-report"
MARKER_TEXT = "This folder was written by `diffkit report`; the next report replaces all of it.\n"
# What a report writes: a folder holding only these (from before the marker existed) is a report too.
_REPORT_LAYOUT = {"index.md": None, "index.html": None, "figures": (".png", ".svg"), "data": (".csv",)}


def is_report_dir(path: Path) -> bool:
    """Whether ``path`` is a folder diffkit wrote: it holds the marker, or exactly a report's own files."""
    if (path / MARKER).is_file():
        return True
    if {e.name for e in path.iterdir()} != set(_REPORT_LAYOUT):  # all four, as a report from before the marker
        return False
    for entry in path.iterdir():
        kind = _REPORT_LAYOUT.get(entry.name, False)
        if kind is False or (kind is None) != entry.is_file():
            return False
        if kind is not None and any(not f.is_file() or f.suffix not in kind for f in entry.iterdir()):
            return False
    return True


def check_out_dir(out_dir) -> Path:
    """``out_dir`` as an absolute Path, or ValueError saying why a report cannot be written there.

    It must be a new directory in a writable parent, an empty one, or a report diffkit wrote (it holds the
    marker file ``.diffkit-report``): a folder with anything else in it is never replaced, so no user file
    is deleted.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out_dir}: {out} is a file, not a directory; choose a directory")
    if out.is_dir() and any(out.iterdir()) and not is_report_dir(out):
        raise ValueError(f"--out {out_dir}: {out} is not empty and holds no {MARKER} marker, so it is not a "
                         f"report diffkit wrote and would not be replaced (its files are kept); choose a new or "
                         f"empty directory")
    parent = next(p for p in (out.parent, *out.parents) if p.exists())
    if not parent.is_dir():
        raise ValueError(f"--out {out_dir}: {parent} is a file, so no directory can be made under it")
    try:  # the only reliable test (permissions, read-only file systems, root): make a directory there
        os.rmdir(tempfile.mkdtemp(prefix=".diffkit-probe-", dir=parent))
    except OSError as err:
        raise ValueError(f"--out {out_dir}: cannot write in {parent} ({err.strerror}); choose a directory you "
                         "may write to") from None
    return out


def render(data: ReportData, out_dir) -> Path:
    """Write the report for ``data`` into ``out_dir`` atomically; return its absolute path."""
    out = check_out_dir(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}-building-", dir=out.parent))
    build.chmod(0o755)  # mkdtemp makes it private; a report is for reading
    try:
        from .figures import write_figures  # matplotlib loads only when a report is drawn
        from .hessian import install
        install()  # the HVP comparison's table and figure

        tables, missing = derive(data)
        kept = kept_measurements(out, tables, missing)  # measured by other commands: carried into the new report
        figures, missing_figures = write_figures(tables, build / "figures")
        graphs, missing_graphs = write_graphs(build / "figures")  # section 2's computational graphs
        figures, missing_figures = figures + graphs, {**missing_figures, **missing_graphs}
        blocks, sources = build_sections(data, tables, {**missing, **missing_figures}, figures)
        (build / "data").mkdir()
        for name, frame in {**tables, "summary_sources": sources}.items():
            frame.to_csv(build / "data" / f"{name}.csv", index=False)
        for name, raw in kept.items():
            (build / "data" / name).write_bytes(raw)
        (build / "index.md").write_text(to_markdown(blocks), encoding="utf-8")
        (build / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        (build / "index.html").write_text(to_html(blocks, build / "figures"), encoding="utf-8")
        _replace(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return out


# CSVs a report shows but does not measure: `diffkit bench --gradbench` and studies/gpu_scaling.py write them
# into the report's data/ folder, and each regeneration keeps them (a computed result is never lost).
KEPT = {"gradbench": "gradbench.csv", "gpu_scaling": "gpu_scaling.csv", "gradbench_golden": "gradbench_golden.csv"}
HOW = {"gradbench": "`diffkit bench --gradbench`", "gpu_scaling": "`python studies/gpu_scaling.py` on a GPU machine",
       "gradbench_golden": "`python studies/gradbench_golden.py --gradbench DIR` with a GradBench checkout"}


def kept_measurements(out: Path, tables: dict, missing: dict) -> dict:
    """The kept CSVs of the report in ``out`` as bytes by file name; their frames go into ``tables``."""
    import pandas as pd

    kept = {}
    for name, filename in KEPT.items():
        path = out / "data" / filename
        if path.is_file():
            kept[filename] = path.read_bytes()
            tables[name] = pd.read_csv(path)
        else:
            missing[name] = f"no {filename} yet: run {HOW[name]}"
    return kept


def _replace(build: Path, out: Path) -> None:
    """Move ``build`` to ``out``; an old report there is moved aside first and removed after."""
    old = None
    if out.exists() and any(out.iterdir()) and not is_report_dir(out):  # checked again: it may have changed
        raise ValueError(f"{out} is not empty and holds no {MARKER} marker, so it is not a report diffkit wrote; "
                         f"nothing was replaced")
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
        os.rename(out, old / out.name)
    try:
        os.rename(build, out)
    except OSError:
        if old is not None:
            os.rename(old / out.name, out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def build_report(out_dir="reports", studies=None, full: bool = False, store=None, progress: bool = True, *,
                 run: bool = True, fresh: bool = False, command: str | None = None) -> Path:
    """Run (reusing the store) or read the studies, then write the report into ``out_dir``.

    ``studies`` defaults to :data:`DEFAULT_STUDIES`; ``full`` runs the full
    grids instead of quick mode; ``run=False`` only reads stored results
    (ValueError if the store holds none); ``fresh`` discards the studies'
    stored results first.  The output directory is checked
    before any study runs.  Example (runs studies, so not as a doctest)::

        dk.report.build_report("reports")            # the quick default report
    """
    check_out_dir(out_dir)
    if command is None:
        command = " ".join(["diffkit report", "--out", str(out_dir), *(["--studies", *studies] if studies else []),
                            *(["--full"] if full else [])])
    data = gather(studies, full=full, store=store, progress=progress, run=run, fresh=fresh, command=command)
    return render(data, out_dir)
