"""The ``convnet`` command: ``info``, ``verify`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import platform
import sys


def cmd_info(args) -> int:
    import numpy as np

    import convnet as cn

    print(f"convnet {cn.__version__}")
    print(f"python {platform.python_version()} on {platform.machine()} ({platform.system()})")
    print(f"numpy {np.__version__}")
    for mod in ("numba", "torch", "cupy"):
        try:
            version = __import__(mod).__version__
        except ImportError:
            version = "not installed"
        print(f"{mod} {version}")
    print(f"threads {cn.get_num_threads()}")
    native = cn.kernels._registry.get("native")
    print(f"cpu SIMD level (native build) {native.simd_level() if native else '-'}")
    print("backends:")
    for name, info in cn.backends().items():
        state = "available  " if info["available"] else "unavailable"
        print(f"  {name:<7} {state} {info['detail']}")
    return 0


def cmd_verify(args) -> int:
    from . import verify

    backends = args.backend or None
    rows, ok = verify.run(backends)
    print(verify.format_rows(rows))
    print("all kernels agree with the references" if ok else "MISMATCH: see the FAIL rows above")
    return 0 if ok else 1


def cmd_bench(args) -> int:
    from . import bench

    backends = args.backend or bench.available_cpu_backends()
    cases = bench.all_cases(quick=args.quick, groups=set(args.only) if args.only else None)
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.group}: {case.name}", file=sys.stderr, flush=True)
        results.append(bench.run_case(case, backends, min_time=args.min_time))
    print(bench.format_table(results, backends))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="versions, backends (and why one is missing), threads, SIMD")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("verify", help="check every kernel on every backend against references")
    p.add_argument("--backend", action="append", choices=["native", "numba", "cuda"],
                   help="only this backend (repeatable); default: all available")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="time the kernels against NumPy/PyTorch, print ratios")
    p.add_argument("--backend", action="append", choices=["native", "numba"],
                   help="only this backend (repeatable); default: all available")
    p.add_argument("--only", action="append", choices=["gemm", "conv", "pool", "bn"],
                   help="only this group of kernels (repeatable)")
    p.add_argument("--quick", action="store_true", help="fewer and smaller shapes")
    p.add_argument("--min-time", type=float, default=0.6,
                   help="seconds of timing per implementation and case (default 0.6)")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import convnet as cn

    if getattr(args, "threads", None):
        cn.set_num_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
