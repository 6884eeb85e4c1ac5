"""Benchmark: central differences against P for the MLP family, and the batched evaluation mode.

Run ``python -m diffkit.bench_fd [--sizes 100,300,1000,3000] [--batch 64]``.  For each
size it prints the wall time of ``dk.gradient(method="central")``, one forward
evaluation of f, and their ratio ``wall / (P x forward)``, which the cost model
(2P evaluations, nothing else) puts at 2 for every P.  With ``--batch k`` it
repeats the gradient with k perturbed thetas per array call (``f.batched``, see
:func:`diffkit.finite_differences.batched_function`) and prints the speed-up.
It prints ratios only; it asserts nothing about time.
"""
from __future__ import annotations

import argparse

import numpy as np

import diffkit as dk
from diffkit import nn
from diffkit.studies.timing import Timed

__all__ = ["batched_mlp", "forward_seconds", "main"]

REPEATS = 5  # best of 5: the minimum is the least noisy estimate of a deterministic cost


def forward_seconds(f, theta, repeats: int = REPEATS) -> float:
    """Seconds of one evaluation f(theta): one sample of diffkit's timing protocol, the fastest of ``repeats``
    bursts of back-to-back calls lasting ~20 ms each (:class:`diffkit.studies.timing.Timed`)."""
    return Timed.calibrated(lambda: f(theta), sample_s=0.02, bursts=repeats).sample()


def _per_example_cost(loss: str):
    """Per-example costs for a leading batch-of-thetas axis: (k, m, K) -> (k, m)."""
    costs = {
        "softmax_cross_entropy": lambda z, y: nn.logsumexp(z, axis=-1) - np.sum(y * z, axis=-1),
        "half_squared_error": lambda z, y: 0.5 * np.sum((z - y) ** 2, axis=-1),
        "squared_error": lambda z, y: np.sum((y - z) ** 2, axis=-1),
    }
    if loss not in costs:
        raise ValueError(f"batched_mlp supports the losses {', '.join(costs)}; got {loss!r}")
    return costs[loss]


def batched_mlp(problem):
    """A function of theta for ``problem`` (a dk.problems.mlp) that also declares ``.batched`` (k thetas per call).

    The batched form is the same network with a leading axis of k parameter
    vectors (matmul broadcasts over it); the benchmark checks that it agrees
    with ``problem.fn`` before timing it.
    """
    meta, X, Y = problem.meta, problem.data["X"], problem.data["Y"]
    act, cost = nn.ACTIVATIONS[meta["activation"]], _per_example_cost(meta["loss"])
    weights = [b for b in problem.blocks if b.name[0] == "W"]
    biases = [b for b in problem.blocks if b.name[0] == "b"]

    def batched(T):
        k, a = T.shape[0], X[None]
        for l, (wb, bb) in enumerate(zip(weights, biases)):
            z = a @ T[:, wb.start:wb.stop].reshape((k,) + wb.shape) + T[:, None, bb.start:bb.stop]
            a = act(z, stable=meta["stable"]) if l < len(weights) - 1 else z
        J = np.mean(cost(a, Y), axis=-1)
        if meta["l2"]:
            J = J + meta["l2"] / (2 * meta["batch"]) * sum(np.sum(T[:, w.start:w.stop] ** 2, axis=-1) for w in weights)
        return J

    def f(theta):
        return problem.fn(theta)
    f.batched = batched
    return f


def run(sizes, batch: int | None, depth: int = 3) -> list[dict]:
    rows = []
    for P in sizes:
        prob = dk.problems.mlp_for_size(P, depth=depth, activation="tanh", loss="softmax_cross_entropy", batch=32)
        f, theta = batched_mlp(prob), prob.theta0
        t_f = forward_seconds(prob.fn, theta)
        r = dk.gradient(prob, method="central")
        row = {"P": prob.size, "forward_s": t_f, "central_s": r.cost.wall_s, "evaluations": r.cost.evaluations,
               "ratio": r.cost.wall_s / (prob.size * t_f)}
        if batch:
            assert abs(f.batched(theta[None])[0] - prob.fn(theta)) <= 1e-12 * abs(prob.fn(theta))
            rb = dk.gradient(f, theta, method="central", batch=batch)
            row.update(batched_s=rb.cost.wall_s, speedup=r.cost.wall_s / rb.cost.wall_s,
                       max_diff=float(np.max(np.abs(rb.grad - r.grad))), array_calls=rb.cost.counters["array_calls"])
        rows.append(row)
        _print(row, batch)
    return rows


def _print(row: dict, batch) -> None:
    line = (f"P={row['P']:>6}  forward {row['forward_s'] * 1e6:8.1f} us  central {row['central_s']:8.3f} s  "
            f"evals {row['evaluations']:>6}  wall/(P*forward) {row['ratio']:5.2f}")
    if batch:
        line += (f"  | batch={batch}: {row['batched_s']:8.3f} s, {row['array_calls']} calls, "
                 f"speed-up {row['speedup']:5.1f}x, max |diff| {row['max_diff']:.1e}")
    print(line, flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="central differences: wall time against P for the MLP family")
    parser.add_argument("--sizes", default="100,300,1000,3000", help="comma-separated target P (default %(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="thetas per call in batched mode; 0 turns it off")
    parser.add_argument("--depth", type=int, default=3, help="layers of the MLP family (default %(default)s)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print("central differences, tanh MLP, softmax cross-entropy, batch 32; cost model: ratio = 2")
    run(sizes, args.batch or None, args.depth)


if __name__ == "__main__":
    main()
