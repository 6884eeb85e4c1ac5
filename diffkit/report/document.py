"""The report as a list of blocks, rendered to Markdown here and to HTML in :mod:`diffkit.report.html`.

Paragraph text may use ``**bold**`` and ```code``` only; both renderers understand exactly that.

>>> import pandas as pd
>>> print(to_markdown([Heading(2, "Cost"), Para("It is **cheap**."),
...                    Table(pd.DataFrame({"method": ["reverse"], "ratio": ["3.1"]}), "cost.csv")]))
## Cost
<BLANKLINE>
It is **cheap**.
<BLANKLINE>
| method | ratio |
| --- | ---: |
| reverse | 3.1 |
<BLANKLINE>
*Data: [data/cost.csv](data/cost.csv)*
<BLANKLINE>
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["Heading", "Para", "Table", "Figure", "Code", "Missing", "to_markdown"]


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Table:
    """A table already formatted for display (strings); ``csv`` names the data file behind it; ``notes`` are
    its footnotes (the reason behind each marked cell)."""

    frame: pd.DataFrame
    csv: str
    notes: tuple = ()

    def right_aligned(self) -> list[bool]:
        """Per column: right-align it when its cells are numbers (a dash or a marked status does not count)."""
        def number(text: str) -> bool:
            t = str(text).strip().lstrip("−-+~≈<>≤≥")
            return bool(t) and (t[0].isdigit() or t.startswith("."))
        flags = []
        for column in self.frame.columns:
            cells = [c for c in self.frame[column].astype(str) if c.strip() not in ("", "–", "-")]
            flags.append(bool(cells) and sum(map(number, cells)) >= max(1, len(cells) // 2))
        return flags


@dataclass
class Figure:
    name: str  # figures/<name>.png and .svg
    caption: str
    csvs: tuple[str, ...]
    inline_svg: bool = False  # only figures/<name>.svg (the computational graphs): inlined in the HTML


@dataclass
class Code:
    text: str


@dataclass
class Missing:
    what: str
    reason: str

    @property
    def text(self) -> str:
        return f"*{self.what} not available: {self.reason}.*"


def _data_links(csvs) -> str:
    return ", ".join(f"[data/{c}](data/{c})" for c in csvs)


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, (Para, Missing)):
            out.append(b.text)
        elif isinstance(b, Code):
            out.append(f"```bash\n{b.text}\n```")
        elif isinstance(b, Table):
            head = "| " + " | ".join(map(_cell, b.frame.columns)) + " |"
            rule = "| " + " | ".join("---:" if right else "---" for right in b.right_aligned()) + " |"
            rows = ["| " + " | ".join(map(_cell, row)) + " |" for row in b.frame.itertuples(index=False)]
            notes = "".join(f"\n\n{n}" for n in b.notes)
            out.append("\n".join([head, rule, *rows]) + notes + f"\n\n*Data: {_data_links([b.csv])}*")
        elif isinstance(b, Figure) and b.inline_svg:
            out.append(f"![{b.caption}](figures/{b.name}.svg)\n\n*{b.caption}*")
        elif isinstance(b, Figure):
            out.append(f"![{b.caption}](figures/{b.name}.png)\n\n*{b.caption}* "
                       f"([SVG](figures/{b.name}.svg); data: {_data_links(b.csvs)})")
        else:
            raise TypeError(f"unknown report block {type(b).__name__}")
    return "\n\n".join(out) + "\n"
