"""Reproduce Baydin et al. (2018), "Automatic differentiation in machine learning: a survey", JMLR, Figure 3.

f(x) = 64 x (1 - x) (1 - 2x)^2 (1 - 8x + 8x^2)^2 at the double nearest 0.2, against f' at that double
computed exactly (it differs from the paper's f'(1/5) = 708288/78125 by 7.5e-16).  Prints, per method, the
robust minimum error (reached by at least three steps), the h of the smoothed V's minimum and the range
of h within 2x of it (a flat floor is a range, not one step), the raw lowest point, and the error model's
optimum.  Run: python studies/baydin_figure3.py [--csv FILE] [--plot FILE.png]
"""
from __future__ import annotations

import argparse

import mpmath

from diffkit.baydin import BAYDIN_DF, BAYDIN_REFERENCE, baydin_figure3, figure3_minima
from diffkit.fd_sweep import sweep_summary

# the published figure's float64 bands, read off its log axes: (min error low, high), (h at minimum low, high)
BANDS = {"forward": ((1e-9, 1e-7), (1e-9, 1e-8)), "central": ((1e-11, 1e-9), (1e-7, 1e-6)),
         "complex_step": ((0.0, 1e-14), (0.0, 1e-8))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="write the tidy sweep to this CSV file")
    parser.add_argument("--plot", help="draw the V-curves to this image file (matplotlib)")
    args = parser.parse_args()
    df = baydin_figure3()
    h_opt = sweep_summary(df).set_index("method")["h_opt"]
    print("Baydin et al. 2018, Figure 3, at x0 = the double nearest 0.2:")
    print(f"  reference f'(x0) = {mpmath.nstr(BAYDIN_REFERENCE, 25)} (exact at x0, to 25 digits)")
    print(f"  paper's f'(1/5)  = 708288/78125 = {mpmath.nstr(BAYDIN_DF, 25)}; they differ by "
          f"{mpmath.nstr(BAYDIN_REFERENCE - BAYDIN_DF, 3)}\n")
    print(f"{'method':<13} {'min error':>10} {'h at min':>10} {'h range within 2x':>21} {'lowest pt':>10} "
          f"{'h_opt':>10}  band")
    for row in figure3_minima(df).itertuples():
        band = BANDS.get(row.method)
        note = f"error {band[0]}, h {band[1]}" if band else ""
        print(f"{row.method:<13} {row.error_min:10.3g} {row.h_best:10.3g} {row.h_floor_low:10.3g}-"
              f"{row.h_floor_high:<10.3g} {row.lowest_point:10.3g} {h_opt[row.method]:10.3g}  {note}")
    if args.csv:
        df.to_csv(args.csv, index=False)
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, g in df.groupby("method", sort=False):
            ax.loglog(g["h"], g["error"].clip(lower=1e-17), marker=".", label=method)
        ax.set(xlabel="h", ylabel="|error| in f'(0.2)", title="Baydin et al. (2018), Figure 3")
        ax.legend()
        fig.savefig(args.plot, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()
