"""Reproduce Baydin et al. 2018 (JMLR 18:153), Table 1: expression swell on the logistic map.

    python studies/baydin_table1.py [--n-max 8]

l_1 = x, l_{n+1} = 4 l_n (1 - l_n).  Prints, for n = 1..n_max, ``count_ops``
of l_n, of the derivative of the nested program (unsimplified: the "naive"
column), of the paper's naive form (the product rule on its closed form,
n <= 4), of the expanded derivative, after CSE, the
reverse tape's node count for the same program, and the ops of diffkit's
shared-DAG symbolic gradient; then the paper's closed forms for n = 1..4
beside diffkit's, each checked by ``simplify(a - b) == 0``; then the fitted
growth of every column.
"""
from __future__ import annotations

import argparse

import numpy as np
import sympy

from diffkit.baydin import X, BAYDIN_CLOSED_FORMS, baydin_table1, growth, logistic_map

COLUMNS = ("l_n", "naive", "expanded", "cse", "tape", "dag")
HEADERS = {"l_n": "l_n", "naive": "nested d/dx", "paper_naive": "paper naive", "expanded": "expanded",
           "cse": "after CSE", "tape": "tape nodes", "dag": "DAG program"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-max", type=int, default=8, help="largest n (default 8, as the paper)")
    args = parser.parse_args(argv)
    table = baydin_table1(args.n_max)
    print("Expression sizes (sympy.count_ops; nested d/dx: diff of the program l_{n+1} = 4 l_n (1 - l_n); paper "
          "naive: the product rule on the paper's closed form, n <= 4; tape: nodes recorded, leaf and indexing "
          "included)\n")
    print(table.rename(columns=HEADERS).to_string(index=False))

    print("\nClosed forms of the paper (n = 1..4) beside diffkit's, checked by simplify(a - b) == 0\n")
    for n, (l_paper, d_paper) in BAYDIN_CLOSED_FORMS.items():
        ln = logistic_map(X, n)
        d = sympy.diff(ln, X)
        print(f"n={n}  l_n  paper: {l_paper}\n        diffkit: {ln}\n"
              f"      dl/dx paper: {d_paper}\n        diffkit: {sympy.factor(d)}\n"
              f"      equal: {sympy.simplify(ln - l_paper) == 0 and sympy.simplify(d - d_paper) == 0}\n")

    n = table["n"].to_numpy()
    print("Fitted growth: ratio r of ops ~ c r^n (per step), slope b of ops ~ a + b n\n")
    for col in COLUMNS:
        fit = growth(n, table[col])
        print(f"  {col:<9} ratio {fit['ratio']:6.3f}   slope {fit['slope']:9.2f}")
    big = n >= 3
    naive = table["naive"].to_numpy()[big]
    print(f"\n  naive / (n 2^n)   for n >= 3: {np.round(naive / (n[big] * 2.0 ** n[big]), 3).tolist()}")
    print(f"  naive / (n^2 2^n) for n >= 3: {np.round(naive / (n[big] ** 2 * 2.0 ** n[big]), 3).tolist()}"
          f"  (SymPy flattens 4 l (1 - l) into one n-factor product, so its naive derivative has n terms of"
          f" n factors: n^2 2^n, one factor n above the paper's n 2^n)")
    print(f"  tape nodes = 3n - 1 exactly: {bool(np.all(table['tape'] == 3 * n - 1))}  (linear: 3 ops per step), "
          f"while l_n's own op count grows by {growth(n, table['l_n'])['ratio']:.2f}x per step: the tape grows "
          f"with the program's length n, not with the size of the expression l_n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
