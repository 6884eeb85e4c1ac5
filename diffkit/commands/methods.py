"""``diffkit methods``: the registered methods, one line each (name, kind, what it does)."""
from __future__ import annotations

import json

from diffkit.methods import METHODS
from diffkit.studies.spec import registered_methods


def add_parser(sub) -> None:
    p = sub.add_parser("methods", help="list the registered methods, one line each",
                       description="List the registered differentiation methods: name, kind, summary, and why a "
                                   "method is unavailable here (a missing optional package).")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    p.set_defaults(func=run)


def run(args) -> int:
    registered_methods()
    if args.json:
        print(json.dumps([{"name": m.name, "kind": m.kind, "summary": m.summary, "available": m.available,
                           "hint": m.hint, "options": list(m.options)} for m in METHODS.values()], indent=2))
    else:
        for m in METHODS.values():
            print(m.line())
    return 0
