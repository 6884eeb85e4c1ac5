"""``diffkit primitives``: the coverage table, every primitive of the table against every backend."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("primitives", help="list every primitive and the backends that run it",
                       description="One row per primitive of diffkit's table (diffkit/primitives/): whether numpy, "
                                   "the complex step, mpmath, SymPy, the reverse-mode tape and forward mode run it, "
                                   "and the reason where one does not.")
    p.add_argument("--reasons", action="store_true", help="print the reason under each missing cell")
    p.add_argument("--markdown", action="store_true", help="a Markdown table instead of aligned text")
    p.set_defaults(func=run)


COLUMNS = ("numpy", "complex", "mpmath", "sympy", "reverse", "forward")
MARK = {"yes": "yes", "constant": "const"}


def rows() -> list[tuple[str, str, list[str], list[str]]]:
    """``(name, family, cells, reasons)`` for each primitive, in table order."""
    from diffkit.primitives import PRIMITIVES, coverage

    out = []
    for name, row in coverage().items():
        family = PRIMITIVES[name].kind
        cells = [MARK.get(row[c], "no") for c in COLUMNS]
        reasons = [f"{c}: {row[c]}" for c in COLUMNS if row[c] not in MARK]
        out.append((name, family, cells, reasons))
    return out


def run(args) -> int:
    table = rows()
    if args.markdown:
        print("| primitive | kind | " + " | ".join(COLUMNS) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |")
        for name, kind, cells, _ in table:
            print(f"| `{name}` | {kind} | " + " | ".join(cells) + " |")
    else:
        print(f"{'primitive':<22} {'kind':<12} " + " ".join(f"{c:<8}" for c in COLUMNS))
        for name, kind, cells, reasons in table:
            print(f"{name:<22} {kind:<12} " + " ".join(f"{c:<8}" for c in cells))
            if args.reasons:
                for reason in reasons:
                    print(f"{'':<35}{reason}")
    full = sum(all(c != "no" for c in cells) for _, _, cells, _ in table)
    print(f"\n{len(table)} primitives; {full} run on every backend, the others say why not (--reasons)")
    return 0
