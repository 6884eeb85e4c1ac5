"""Reproduce Baydin et al. (2018), "Automatic differentiation in machine learning: a survey", JMLR, Figure 3.

f(x) = 64 x (1 - x) (1 - 2x)^2 (1 - 8x + 8x^2)^2 at x0 = 0.2, against the exact f'(1/5) = 708288/78125.
Prints, per method, the h at the minimum error (raw, and of the smoothed V), the minimum error, and the
error model's optimum.  Run: python studies/baydin_figure3.py [--csv FILE] [--plot FILE.png]
"""
from __future__ import annotations

import argparse

from diffkit.fd_sweep import baydin_figure3, sweep_summary

# the float64 bands: (min error low, high), (h at minimum low, high)
BANDS = {"forward": ((1e-9, 1e-7), (1e-9, 1e-8)), "central": ((1e-11, 1e-9), (1e-7, 1e-6)),
         "complex_step": ((0.0, 1e-14), (0.0, 1e-8))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="write the tidy sweep to this CSV file")
    parser.add_argument("--plot", help="draw the V-curves to this image file (matplotlib)")
    args = parser.parse_args()
    df = baydin_figure3()
    summary = sweep_summary(df)
    print("Baydin et al. 2018, Figure 3: f'(0.2) = 708288/78125 = 9.0660864\n")
    print(f"{'method':<13} {'h at min':>10} {'smoothed':>10} {'min error':>10} {'h_opt':>10}  band")
    for row in summary.itertuples():
        band = BANDS.get(row.method)
        note = f"error {band[0]}, h {band[1]}" if band else ""
        print(f"{row.method:<13} {row.h_at_min:10.3g} {row.h_at_min_smoothed:10.3g} {row.min_error:10.3g} "
              f"{row.h_opt:10.3g}  {note}")
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
