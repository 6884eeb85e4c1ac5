"""``python -m diffkit.gradbench --method reverse``: a GradBench tool on stdin/stdout (see diffkit.gradbench)."""
from __future__ import annotations

import argparse
import sys

from .engines import METHOD_CHOICES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m diffkit.gradbench",
        description="A GradBench tool: reads the eval's JSON-lines messages on stdin, answers on stdout.")
    parser.add_argument("--method", default="reverse", choices=METHOD_CHOICES,
                        help="the differentiator for every gradient (default reverse, diffkit's tape; compiled: the "
                             "tape recorded once and replayed as generated code, dk.compile, its compile time "
                             "reported apart; numba: that code fused into one numba function, dk.compile(fuse=True), "
                             "or the plain replay where it cannot be, saying why)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (threadpoolctl; torch's pool too), default 1 as the suite's tools")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's allocator as it is; by default the tool asks it to keep freed memory "
                             "(mallopt, as diffkit bench does), so that a large temporary is not page-faulted in "
                             "again on every call (without it, the tape on lse at n = 1.28e6 took 1.2-1.4x as "
                             "long on this project's VM)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    from diffkit.bench import blas_threads, keep_freed_memory  # noqa: PLC0415

    if not args.system_malloc:
        keep_freed_memory()

    from .protocol import serve  # noqa: PLC0415
    with blas_threads(args.threads):
        bad = serve(sys.stdin, sys.stdout, args.method, err=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
