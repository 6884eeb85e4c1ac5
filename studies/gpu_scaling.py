"""GPU cost scaling: the MLP gradient on a GPU, P = 1e3 .. 1e8, diffkit beside PyTorch CUDA and JAX.

The function is the scaling study's: an MLP [h, h, h, 10], tanh, softmax cross-entropy, batch 128, the
same weights and data as ``dk.problems.mlp_for_size(P, batch=128)``.  It is written once against an array
namespace ``xp``; diffkit gets ``xp = dk.namespace(theta)`` of CuPy values and differentiates it through
``dk.gradient`` (the tape, ``method="reverse"``; and ``method="central"``, while 2P forwards fit the budget);
PyTorch runs it on CUDA tensors (``loss.backward()``), JAX as ``jax.jit(jax.value_and_grad(f))``.

Timing is interleaved: each round calls every method once, in rotated order, each call ended by a device
synchronisation; the CSV keeps the median, min and IQR over rounds, the first (cold, compiling) call apart,
each library's forward time and gradient/forward.  Every gradient is checked against PyTorch's (max relative
difference), so a fast wrong answer shows.  ``grad_on_host`` says whether ``dk.gradient`` returned the gradient
on the host (its time then includes the copy).

Run (NVIDIA GPU, ``pip install 'diffkit[gpu]'``, optionally torch with CUDA and ``jax[cuda12]``)::

    python studies/gpu_scaling.py                  # writes reports/data/gpu_scaling.csv; under 8 min on an H200
    python studies/gpu_scaling.py --cpu-check      # the same code on NumPy / CPU at small P: checks the script;
                                                   # diffkit also on array-api-strict's simulated device, the
                                                   # path CuPy values take (no numpy call on a value)

Without a GPU and CuPy it refuses, saying what is missing.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX would take 75% of the GPU's memory at once
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's diffkit, run from anywhere

import diffkit as dk  # noqa: E402
from diffkit.array_api import to_host  # noqa: E402

SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000, 30_000_000, 100_000_000)
BATCH = 128
COLUMNS = ["device", "library", "method", "P", "layers", "batch", "status", "reason", "rounds", "wall_median_s",
           "wall_min_s", "wall_iqr_s", "first_s", "forward_median_s", "grad_over_forward", "max_rel_diff_vs_torch",
           "grad_on_host", "versions", "created_at"]


def mlp_loss(theta, X, Y, shapes, xp):
    """The MLP's mean softmax cross-entropy: standard array-API names only, so any namespace runs it."""
    a, start = X, 0
    for layer, (n_in, n_out) in enumerate(shapes):
        W = xp.reshape(theta[start:start + n_in * n_out], (n_in, n_out))
        b = theta[start + n_in * n_out:start + n_in * n_out + n_out]
        start += n_in * n_out + n_out
        a = xp.matmul(a, W) + b  # (not a @ W: a library's array @ a tape array need not defer; strict's refuses)
        if layer < len(shapes) - 1:
            a = xp.tanh(a)
    m = xp.max(a, axis=1, keepdims=True)
    lse = xp.log(xp.sum(xp.exp(a - m), axis=1)) + m[:, 0]
    return xp.mean(lse - xp.sum(a * Y, axis=1))


def problem(P: int):
    """The scaling study's network of about P parameters: (theta0, X, Y, layer shapes) on the host."""
    prob = dk.problems.mlp_for_size(P, batch=BATCH)
    layers = prob.meta["layers"]
    shapes = list(zip(layers[:-1], layers[1:]))
    # mlp_for_size lays theta out as its blocks say; mlp_loss reads W1, b1, W2, ... in order: regroup
    by_name = {b.name: prob.theta0[b.start:b.stop] for b in prob.blocks}
    theta = np.concatenate([by_name[f"{k}{l}"].ravel() for l in range(1, len(shapes) + 1) for k in "Wb"])
    return theta, prob.data["X"], prob.data["Y"], shapes, layers


# --- the contestants: (library, method) -> prepare(theta, X, Y, shapes) -> (grad call, forward call, sync) ---

def _cupy_methods(cpu_check: bool):
    """diffkit on CuPy; in the CPU check, on NumPy and on array-api-strict's simulated device (the path CuPy
    values take: the array-API namespace, whose arrays refuse numpy and other devices)."""
    if not cpu_check:
        import cupy
        return _diffkit_methods("cupy", cupy.asarray, cupy.cuda.Device().synchronize)
    methods = _diffkit_methods("numpy", np.asarray, lambda: None)
    try:
        import array_api_strict as strict
    except ImportError:
        return methods
    from diffkit.array_api import from_host
    like = strict.asarray([0.0], device=strict.Device("device1"))
    return {**methods, **_diffkit_methods("array_api_strict", lambda v: from_host(np.asarray(v), like), lambda: None)}


def _diffkit_methods(lib: str, to_lib, sync):
    def prepare(method):
        def setup(theta, X, Y, shapes):
            t, Xd, Yd = (to_lib(v) for v in (theta, X, Y))

            def user_loss(th):  # what a user writes
                return mlp_loss(th, Xd, Yd, shapes, dk.namespace(th))
            return (lambda: dk.gradient(user_loss, t, method=method).grad), (lambda: user_loss(t)), sync
        return setup
    return {(f"diffkit-{lib}", "reverse"): prepare("reverse"), (f"diffkit-{lib}", "central"): prepare("central")}


def _torch_methods(cpu_check: bool):
    try:
        import torch
        import array_api_compat.torch as xp
    except ImportError as err:
        return {("torch", "autograd"): f"torch or array-api-compat is not installed ({err})"}
    if not cpu_check and not torch.cuda.is_available():
        return {("torch", "autograd"): "torch has no CUDA here (install a CUDA build of torch)"}
    device = "cpu" if cpu_check else "cuda"
    sync = (lambda: None) if cpu_check else torch.cuda.synchronize

    def setup(theta, X, Y, shapes):
        t, Xd, Yd = (torch.as_tensor(v, dtype=torch.float64, device=device) for v in (theta, X, Y))

        def grad():
            leaf = t.detach().requires_grad_()
            mlp_loss(leaf, Xd, Yd, shapes, xp).backward()
            return leaf.grad

        def forward():
            with torch.no_grad():
                return mlp_loss(t, Xd, Yd, shapes, xp)
        return grad, forward, sync
    return {("torch", "autograd"): setup}


def _jax_methods(cpu_check: bool):
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
    except ImportError as err:
        return {("jax", "value_and_grad"): f"jax is not installed ({err})"}
    kind = "cpu" if cpu_check else "gpu"
    try:
        device = jax.devices(kind)[0]
    except RuntimeError as err:
        return {("jax", "value_and_grad"): f"jax has no {kind} backend here (install jax[cuda12]): {err}"}

    def setup(theta, X, Y, shapes):
        t, Xd, Yd = (jax.device_put(jnp.asarray(v, dtype=jnp.float64), device) for v in (theta, X, Y))
        vg = jax.jit(jax.value_and_grad(lambda th: mlp_loss(th, Xd, Yd, shapes, jnp)))
        fwd = jax.jit(lambda th: mlp_loss(th, Xd, Yd, shapes, jnp))
        return (lambda: vg(t)[1].block_until_ready()), (lambda: fwd(t).block_until_ready()), (lambda: None)
    return {("jax", "value_and_grad"): setup}


# --- timing ------------------------------------------------------------------------------------------------------

def _timed(call, sync) -> tuple[float, object]:
    sync()
    start = time.perf_counter()
    out = call()
    sync()
    return time.perf_counter() - start, out


def measure(P: int, contestants: dict, rounds: int, budget_s: float, device: str, versions: str) -> list[dict]:
    theta, X, Y, shapes, layers = problem(P)
    rows, live, grads = [], {}, {}
    for (library, method), setup in contestants.items():
        row = {"device": device, "library": library, "method": method, "P": theta.size,
               "layers": "-".join(map(str, layers)), "batch": BATCH, "versions": versions, "rounds": 0,
               "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        rows.append(row)
        if isinstance(setup, str):
            row.update(status="skipped", reason=setup)
            continue
        try:
            grad, forward, sync = setup(theta, X, Y, shapes)
            forward_s = min(_timed(forward, sync)[0] for _ in range(3))
            if method == "central" and 2 * theta.size * forward_s > budget_s:
                row.update(status="skipped", reason=f"2P forwards would take ~{2 * theta.size * forward_s:.0f} s "
                                                    f"> the {budget_s:g} s budget")
                continue
            first, g = _timed(grad, sync)
        except Exception as err:  # noqa: BLE001  (a failing contestant is a row; the others go on)
            row.update(status="failed", reason=f"{type(err).__name__}: {err}"[:300])
            continue
        grads[library, method] = to_host(g).astype(np.float64).reshape(-1)
        row.update(first_s=first, grad_on_host=isinstance(g, np.ndarray))
        live[library, method] = (grad, forward, sync, row, [], [])
    order = list(live)
    for r in range(rounds):  # interleaved: every contestant once per round, rotated
        for key in order[r % len(order):] + order[:r % len(order)] if order else []:
            grad, forward, sync, row, walls, fwds = live[key]
            if key[1] == "central" and r and sum(walls) > budget_s / 2:
                continue  # slow contestant: fewer rounds
            walls.append(_timed(grad, sync)[0])
            fwds.append(_timed(forward, sync)[0])
    reference = grads.get(("torch", "autograd"))
    for key, (_g, _f, _s, row, walls, fwds) in live.items():
        q = np.percentile(walls, [25, 75])
        fwd = statistics.median(fwds)
        noise = statistics.median(walls) < fwd  # physics forbids it: the gradient includes a forward
        row.update(status="ok", reason="gradient timed below its forward: timer noise, rerun" if noise else "",
                   rounds=len(walls), wall_median_s=statistics.median(walls),
                   wall_min_s=min(walls), wall_iqr_s=q[1] - q[0], forward_median_s=fwd,
                   grad_over_forward=statistics.median(walls) / fwd)
        if reference is not None:
            row["max_rel_diff_vs_torch"] = float(np.max(np.abs(grads[key] - reference)) / np.max(np.abs(reference)))
    return rows


# --- the device, and the refusal -------------------------------------------------------------------------------

def gpu_device() -> str:
    """The GPU's name and memory (nvidia-smi, else CuPy's device properties); raises SystemExit without one."""
    try:
        import cupy
    except ImportError as err:
        raise SystemExit(f"gpu_scaling: CuPy does not import ({err}): this script needs an NVIDIA GPU and CuPy, "
                         f"pip install 'diffkit[gpu]'. To check the script on a CPU: --cpu-check") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # noqa: BLE001  (CUDA driver missing: cupy raises its own runtime error)
        count, why = 0, f" ({type(err).__name__}: {err})"
    else:
        why = ""
    if not count:
        raise SystemExit(f"gpu_scaling: CuPy is installed but sees no GPU{why}; run on a machine with an NVIDIA "
                         f"GPU and its driver. To check the script on a CPU: --cpu-check")
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader",
                              "-i", "0"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().replace(",", ";")
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"{name}; {props['totalGlobalMem'] / 2**30:.0f} GiB"


def _versions(cpu_check: bool) -> str:
    from importlib import metadata
    found = []
    for name in ("cupy-cuda12x", "cupy", "torch", "jax", "jaxlib", "numpy", "array-api-compat"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return "; ".join(found + [f"diffkit {dk.__version__}"] + (["cpu-check"] if cpu_check else []))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-check", action="store_true", help="run the same code on NumPy/CPU at small P "
                                                                  "(checks the script; default --max-p 1e4)")
    parser.add_argument("--max-p", type=float, help="largest P (default 1e8, or 1e4 with --cpu-check)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per size (default 5)")
    parser.add_argument("--budget-s", type=float, default=20.0, help="seconds central differences may take at "
                                                                     "one size (estimated from 2P forwards)")
    parser.add_argument("--deadline-s", type=float, default=420.0, help="start no new size after this many "
                                                                        "seconds (default 420)")
    parser.add_argument("--out", type=Path, help="CSV path (default reports/data/gpu_scaling.csv; with "
                                                 "--cpu-check gpu_scaling_cpu_check.csv in the current folder)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1; got {args.rounds}")
    device = f"CPU check: {platform.processor() or platform.machine()}" if args.cpu_check else gpu_device()
    max_p = args.max_p or (1e4 if args.cpu_check else 1e8)
    out = args.out or (Path("gpu_scaling_cpu_check.csv") if args.cpu_check
                       else ROOT / "reports" / "data" / "gpu_scaling.csv")
    contestants = {**_cupy_methods(args.cpu_check), **_torch_methods(args.cpu_check), **_jax_methods(args.cpu_check)}
    versions = _versions(args.cpu_check)
    print(f"device: {device}\n{versions}", flush=True)
    start, rows = time.perf_counter(), []
    for P in [p for p in SIZES if p <= max_p]:
        if time.perf_counter() - start > args.deadline_s:
            print(f"stopping before P={P}: past --deadline-s {args.deadline_s:g}", flush=True)
            break
        rows += measure(P, contestants, args.rounds, args.budget_s, device, versions)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as fh:  # rewritten after every size: a cut-off run keeps what it measured
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        for r in rows[-len(contestants):]:
            ratio = "noise" if r["reason"] else f"{r['grad_over_forward']:7.2f}"
            timing = (f"{r['wall_median_s'] * 1e3:9.3f} ms  grad/fwd {ratio:>7}  "
                      f"vs torch {r.get('max_rel_diff_vs_torch', float('nan')):.1e}" if r["status"] == "ok"
                      else f"{r['status']}: {r['reason']}")
            print(f"P={r['P']:>11,}  {r['library']:>14} {r['method']:<15} {timing}", flush=True)
    print(f"wrote {out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
