"""Every sentence of the report that states a measured number, with each number's source.

A :class:`Sentence` is a template whose placeholders are :class:`Cell` s: a
derived table (written to ``data/<table>.csv``), a column, and a row picked by
equality filters and an optional "the row where column X is largest/smallest".
A sentence whose cells cannot all be read (the study was not run, the method
never succeeded) is left out, and the reason goes to ``summary_sources.csv``.
No number in these templates is typed by hand: all of them are read here.

>>> import pandas as pd
>>> tables = {"cost_scaling": pd.DataFrame({"method": ["reverse", "reverse"], "status": ["ok", "ok"],
...                                         "P": [10, 1000], "grad_over_forward": [2.54, 3.14159],
...                                         "evaluations": [1, 1], "label": "reverse", "batch": 128})}
>>> tables["cost_scaling"] = tables["cost_scaling"].assign(ratio_low=[2.4, 2.9], ratio_high=[2.7, 3.3])
>>> resolve(SENTENCES["methods.reverse"], tables)[0]
'Measured: at P = 1000, one gradient cost 3.1× one forward pass (bootstrap interval 2.9–3.3; gradient and forward timed in interleaved pairs).'
>>> fmt(204321.5), fmt(0.000123), fmt(131), fmt(15.96, 3)
('2.0 × 10⁵', '1.2 × 10⁻⁴', '131', '16.0')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Cell", "Sentence", "SENTENCES", "resolve", "render_sentences", "fmt"]

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt(x: float, sig: int = 2) -> str:
    """``x`` to ``sig`` significant digits; integers as integers; powers of ten outside [1e-3, 1e4).

    Integers up to 10⁹ are printed whole (they are counts and sizes, exact in the CSVs).
    """
    x = float(x)
    if x == int(x) and abs(x) < 1e9:
        return str(int(x))
    exponent = math.floor(math.log10(abs(x)))
    if -3 <= exponent < 4:  # plain decimals read best in this range
        decimals = max(sig - 1 - exponent, 0)
        return f"{x:.{decimals}f}"
    mantissa = f"{x / 10.0 ** exponent:.{sig - 1}f}"
    if mantissa.lstrip("-").startswith("10"):  # 9.96 rounded up to 10.0
        exponent += 1
        mantissa = f"{x / 10.0 ** exponent:.{sig - 1}f}"
    return f"{mantissa} × 10{str(exponent).translate(_SUPERSCRIPT)}"


@dataclass(frozen=True)
class Cell:
    """One number: ``table`` (data/<table>.csv), ``column``, and the row.

    The row is the one matching every ``where`` pair; if several match, ``pick``
    ("max:P", "min:digits") chooses the row where that column is largest or
    smallest.  A ``where`` value ``"@name"`` stands for the same column's value
    in the row already read for placeholder ``name`` of the sentence (so that
    two numbers share a P, or a problem group).
    ``sig`` is the significant digits shown.
    """

    table: str
    column: str
    where: tuple = ()
    pick: str = ""
    sig: int = 2

    def row(self, tables: dict[str, pd.DataFrame], known: dict | None = None) -> int:
        """The index of the row in ``tables[self.table]``; KeyError with the reason if there is none.

        ``known`` maps the placeholders already read to their (table, row).
        """
        frame = tables.get(self.table)
        if frame is None:
            raise KeyError(f"table {self.table} is not available")
        mask = pd.Series(True, index=frame.index)
        where = []
        for column, value in self.where:
            if isinstance(value, str) and value.startswith("@"):
                table, i = (known or {})[value[1:]]
                if column not in tables[table]:
                    raise KeyError(f"{table} has no column {column}")
                value = tables[table].loc[i, column]
            where.append((column, value))
        for column, value in where:
            if column not in frame:
                raise KeyError(f"{self.table} has no column {column}")
            mask &= frame[column] == value
        if self.column not in frame:
            raise KeyError(f"{self.table} has no column {self.column}")
        rows = frame[mask & frame[self.column].notna()]
        if self.pick:
            direction, by = self.pick.split(":")
            rows = rows[rows[by].notna()]
            if len(rows):
                rows = rows.loc[[rows[by].idxmax() if direction == "max" else rows[by].idxmin()]]
        if len(rows) != 1:
            where = ", ".join(f"{c} = {v}" for c, v in where) or "any row"
            pick = f"; {self.pick}" if self.pick else ""
            raise KeyError(f"{self.table}.{self.column}: {len(rows)} rows match ({where}{pick})")
        return int(rows.index[0])


@dataclass(frozen=True)
class Sentence:
    """A template, its cells, and the cells that must be *absent* for it to apply."""

    text: str
    cells: dict = field(default_factory=dict)
    absent: tuple = ()


def _cost(method: str, column: str, sig: int = 2) -> Cell:
    """The cost_scaling row of ``method`` at the largest P where it succeeded."""
    return Cell("cost_scaling", column, (("method", method), ("status", "ok")), "max:P", sig)


def _symbolic(column: str) -> Cell:
    """The largest-P table's row of the symbolic method: where it last succeeded, where it gave out."""
    return Cell("cost_max_p", column, (("method", "symbolic"),))


def _stable(variant: str, column: str) -> Cell:
    """The stability totals of the tape (method reverse) for one variant."""
    return Cell("stability_variants", column, (("method", "reverse"), ("variant", variant)), sig=3)


def _bench(method: str, column: str = "grad_over_forward") -> Cell:
    """The peer benchmark's row of ``method`` on one thread, at the P of the tape's largest run."""
    return Cell("bench", column, (("method", method), ("status", "ok"), ("threads", 1), ("P", "@P")))


def _at_largest_p(method: str, *extra: str) -> dict[str, Cell]:
    """P, the gradient/forward ratio and its interval (and, with "evals", the evaluations of f) at the method's
    largest P with a reliable ratio."""
    same = (("method", method), ("P", "@P"), ("label", "@P"))  # the row of P (two problem groups share a P)
    cells = {"P": _cost(method, "P"), "ratio": _cost(method, "grad_over_forward"),
             "lo": Cell("cost_scaling", "ratio_low", same), "hi": Cell("cost_scaling", "ratio_high", same)}
    if "batch" in extra:
        cells["batch"] = Cell("cost_scaling", "batch", same)
    return {**cells, "evals": _cost(method, "evaluations")} if "evals" in extra else cells


def _fit(method: str, column: str) -> Cell:
    """The fitted cost line of ``method`` reaching the largest P (lines shown as points only have no slope)."""
    return Cell("cost_fits", column, (("method", method), ("fit", "fitted")), "max:p_max")


def _worst_digits(table: str, method: str) -> Cell:
    return Cell(table, "digits", (("method", method), ("status", "ok")), "min:digits", 3)


# Keys are "<section>.<name>"; sections pick their sentences by prefix, in this order.
SENTENCES: dict[str, Sentence] = {
    # --- section 1: each method's headline figure
    "methods.reverse": Sentence(
        "Measured: at P = {P}, one gradient cost {ratio}× one forward pass (bootstrap interval {lo}–{hi}; gradient "
        "and forward timed in interleaved pairs).",
        _at_largest_p("reverse")),
    "methods.central": Sentence(
        "Measured: at P = {P}, central differences made {evals} evaluations of f and took {ratio}× one forward "
        "pass (bootstrap interval {lo}–{hi}); their worst problem had {digits} correct digits.",
        {**_at_largest_p("central", "evals"), "digits": _worst_digits("accuracy", "central")}),
    "methods.symbolic": Sentence(
        "Measured: the symbolic gradient succeeded up to P = {ok} and gave out at P = {fail}.",
        {"ok": _symbolic("max_ok_P"),
         "fail": _symbolic("gave_out_P")}),
    "methods.symbolic_all": Sentence(
        "Measured: the symbolic gradient succeeded at every size tried, up to P = {ok}.",
        {"ok": _symbolic("max_ok_P")},
        absent=(_symbolic("gave_out_P"),)),
    # --- section 8: why backprop wins
    "summary.tape": Sentence(
        "In the scaling study, at P = {P} (the MLP with a batch of {batch}) the tape (reverse mode) took {ratio}× "
        "the time of one forward pass (bootstrap interval {lo}–{hi}, over blocks spread across the run).",
        _at_largest_p("reverse", "batch")),
    "summary.central": Sentence(
        "Central differences at P = {P} took {ratio}× one forward pass (bootstrap interval {lo}–{hi}), with {evals} "
        "evaluations of f.",
        _at_largest_p("central", "evals")),
    "summary.forward": Sentence(
        "Forward differences at P = {P} took {ratio}× one forward pass (bootstrap interval {lo}–{hi}).",
        _at_largest_p("forward")),
    "summary.symbolic": Sentence(
        "Symbolic differentiation gave out at P = {fail}, after succeeding at P = {ok}.",
        {"fail": _symbolic("gave_out_P"),
         "ok": _symbolic("max_ok_P")}),
    "summary.slopes": Sentence(
        "Fitted on log-log axes over P = {p0}–{p1}, the tape's gradient time divided by its forward time: {rr_t} "
        "(slope {rr}, confidence interval {rr_lo} to {rr_hi}); its wall time: {rs_t} (slope {rs}).",
        {"rr": _fit("reverse", "ratio_slope"), "rr_t": _fit("reverse", "ratio_trend"),
         "rr_lo": _fit("reverse", "ratio_slope_ci_low"), "rr_hi": _fit("reverse", "ratio_slope_ci_high"),
         "p0": _fit("reverse", "p_min"), "p1": _fit("reverse", "p_max"), "rs": _fit("reverse", "slope"),
         "rs_t": _fit("reverse", "trend")}),
    "summary.slopes_central": Sentence(
        "Central differences' time divided by the forward time, the quantity ADBench reports: {cr_t} (slope "
        "{cr}, confidence interval {cr_lo} to {cr_hi}; two forward passes per parameter); their wall time: "
        "{cs_t} (slope {cs}).",
        {"cr": _fit("central", "ratio_slope"), "cr_t": _fit("central", "ratio_trend"),
         "cr_lo": _fit("central", "ratio_slope_ci_low"), "cr_hi": _fit("central", "ratio_slope_ci_high"),
         "cs": _fit("central", "slope"), "cs_t": _fit("central", "trend")}),
    "summary.accuracy": Sentence(
        "In accuracy, the tape's worst problem kept {rev} correct digits against {cen} for central differences "
        "and {fwd} for forward differences.",
        {"rev": _worst_digits("accuracy", "reverse"), "cen": _worst_digits("accuracy", "central"),
         "fwd": _worst_digits("accuracy", "forward")}),
    "summary.step": Sentence(
        "Central differences are at their best near h = {h} (theory: h = {h_opt}), where the error is still "
        "{err}; the tape has no step to tune.",
        {"h": Cell("step_size_optimum", "h_best", (("method", "central"),), "min:error_min"),
         "h_opt": Cell("step_size_optimum", "h_opt", (("method", "central"),), "min:error_min"),
         "err": Cell("step_size_optimum", "error_min", (("method", "central"),), "min:error_min")}),
    "summary.bench": Sentence(
        "The peer benchmark times another problem, the same MLP with a batch of {batch}: its matrix products are "
        "a smaller share of the work, and the work proportional to P (the L2 term, the gradient's accumulation) a "
        "larger one. There, on one thread at P = {P}, the tape took {rev}× its forward pass (bootstrap interval "
        "{rev_lo}–{rev_hi}) and the hand-written delta rule {hand}× its own ({hand_lo}–{hand_hi}).",
        {"P": Cell("bench", "P", (("method", "reverse"), ("status", "ok"), ("threads", 1)), "max:P"),
         "batch": _bench("reverse", "batch"),
         "rev": _bench("reverse"), "hand": _bench("handwritten"), "rev_lo": _bench("reverse", "ratio_low"),
         "rev_hi": _bench("reverse", "ratio_high"), "hand_lo": _bench("handwritten", "ratio_low"),
         "hand_hi": _bench("handwritten", "ratio_high")}),
    "summary.bench_torch": Sentence(
        "At P = {P} on one thread PyTorch took {torch}× one forward pass.",
        {"P": Cell("bench", "P", (("method", "reverse"), ("status", "ok"), ("threads", 1)), "max:P"),
         "torch": _bench("torch")}),
    "summary.seeds": Sentence(
        "On the seeds' worked examples the tape agrees with the mpmath reference to {d} digits or better.",
        {"d": _worst_digits("seeds", "reverse")}),
    "summary.stability": Sentence(
        "Across the stability sweep the tape on the naive formulas gave {naive} non-finite results, and on the "
        "stable ones {stable}, keeping at least {digits} digits of every gradient inside their domain.",
        {"naive": _stable("naive", "nonfinite"), "stable": _stable("stable", "nonfinite"),
         "digits": _stable("stable", "worst_grad_digits")}),
}


def resolve(sentence: Sentence, tables: dict[str, pd.DataFrame]) -> tuple[str, list[dict]]:
    """The sentence with its numbers filled in, and one source record per number.

    Raises KeyError (with the reason) when a cell cannot be read or an ``absent`` cell is present.
    """
    for cell in sentence.absent:
        try:
            cell.row(tables)
        except KeyError:
            continue
        raise KeyError(f"{cell.table}.{cell.column} is present, so a sibling sentence applies")
    values, rows, sources = {}, {}, []
    for name, cell in sentence.cells.items():
        i = cell.row(tables, rows)
        rows[name] = (cell.table, i)
        value = tables[cell.table].loc[i, cell.column]
        text = isinstance(value, str)  # a generated word (a trend from a fitted slope), shown as it is
        values[name] = value if text else fmt(value, cell.sig)
        sources.append({"placeholder": name, "shown": values[name], "value": math.nan if text else float(value),
                        "csv": f"{cell.table}.csv", "column": cell.column, "row": i, "word": text})
    return sentence.text.format(**values), sources


def render_sentences(prefix: str, tables: dict[str, pd.DataFrame]) -> tuple[list[str], pd.DataFrame]:
    """The sentences whose key starts with ``prefix``, and a frame of their sources (or why one was left out)."""
    texts, records = [], []
    for key, sentence in SENTENCES.items():
        if not key.startswith(prefix):
            continue
        try:
            text, sources = resolve(sentence, tables)
        except KeyError as err:
            records.append({"sentence": key, "placeholder": "", "shown": "", "value": float("nan"), "csv": "",
                            "column": "", "row": -1, "word": False, "omitted": str(err).strip("'\"")})
            continue
        texts.append(text)
        records += [{"sentence": key, **s, "omitted": ""} for s in sources]
    return texts, pd.DataFrame.from_records(records, columns=["sentence", "placeholder", "shown", "value", "csv",
                                                              "column", "row", "word", "omitted"])
