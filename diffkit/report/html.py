"""The report as one self-contained HTML file: figures embedded as base64 PNG data URIs, no external links
needed to display it (CSV and SVG links point to the files beside it).

>>> from diffkit.report.document import Heading, Para
>>> page = to_html([Heading(1, "R & D"), Para("a **b** `c`")], figures_dir=".")
>>> "<h1>R &amp; D</h1>" in page, "<p>a <strong>b</strong> <code>c</code></p>" in page
(True, True)
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from .document import Code, Figure, Heading, Missing, Para, Table
from .graphs import inline_svg

__all__ = ["to_html"]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5;
       color: #111; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #bbb; padding: 0.2rem 0.5rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.notes { font-size: 0.8rem; color: #333; margin: 0.2rem 0; }
th { background: #eee; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figure.graph svg { max-width: 100%; height: auto; }
figcaption, .data { font-size: 0.85rem; color: #444; }
pre { background: #f4f4f4; padding: 0.6rem; overflow-x: auto; }
.missing { color: #8a4b00; font-style: italic; }
"""


def _inline(text: str) -> str:
    """Escape, then the two inline marks paragraphs may use: **bold** and `code`."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return re.sub(r"(?<![\w*])\*(\S.*?\S|\S)\*(?![\w*])", r"<em>\1</em>", out)


def _links(csvs) -> str:
    return ", ".join(f'<a href="data/{html.escape(c)}">data/{html.escape(c)}</a>' for c in csvs)


def _table(block: Table) -> str:
    right = block.right_aligned()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block.frame.columns)
    rows = "".join("<tr>" + "".join(f'<td{" class=num" if r else ""}>{html.escape(str(v))}</td>'
                                    for v, r in zip(row, right)) + "</tr>"
                   for row in block.frame.itertuples(index=False))
    notes = "".join(f'<p class="notes">{_inline(n)}</p>' for n in block.notes)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\n{notes}<p class="data">Data: ' \
           f"{_links([block.csv])}</p>"


def _figure(block: Figure, figures_dir: Path) -> str:
    if block.inline_svg:  # the computational graphs: the SVG itself, so its numbers are text on the page
        svg = inline_svg((figures_dir / f"{block.name}.svg").read_text(encoding="utf-8"), block.name)
        return f'<figure id="fig-{block.name}" class="graph">{svg}<figcaption>{html.escape(block.caption)}' \
               f'</figcaption></figure>'
    png = base64.b64encode((figures_dir / f"{block.name}.png").read_bytes()).decode("ascii")
    caption = html.escape(block.caption)
    return (f'<figure id="fig-{block.name}"><img class="report-figure" alt="{caption}" '
            f'src="data:image/png;base64,{png}"><figcaption>{caption} '
            f'(<a href="figures/{block.name}.svg">SVG</a>; data: {_links(block.csvs)})</figcaption></figure>')


def to_html(blocks, figures_dir, title: str = "diffkit report") -> str:
    """Render blocks to a standalone HTML page, reading each figure's PNG from ``figures_dir``."""
    figures_dir = Path(figures_dir)
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{html.escape(b.text, quote=False)}</h{b.level}>")
        elif isinstance(b, Missing):
            parts.append(f'<p class="missing">{html.escape(b.text.strip("*"), quote=False)}</p>')
        elif isinstance(b, Para):
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Code):
            parts.append(f"<pre><code>{html.escape(b.text, quote=False)}</code></pre>")
        elif isinstance(b, Table):
            parts.append(_table(b))
        elif isinstance(b, Figure):
            parts.append(_figure(b, figures_dir))
        else:
            raise TypeError(f"unknown report block {type(b).__name__}")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f"<body>\n{body}\n</body></html>\n")
