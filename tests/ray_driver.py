"""`evalsuite run --ray ADDRESS ...` as the CLI runs it, but with workers on GPU slots that score on
the CPU (RayOptions.slots="gpu" with --device cpu): what a sweep does on a GPU cluster, on a test
cluster whose nodes declare GPUs they do not have. Prints what the CLI prints after a sweep.

    python tests/ray_driver.py --model pythia-70m --steps 1000,2000 ... --ray 127.0.0.1:PORT
"""

from __future__ import annotations

import sys
from dataclasses import replace

from evalsuite.cli import build_parser
from evalsuite.errors import EvalsuiteError
from evalsuite.sweep.cluster import options_from_args, run_ray_sweep
from evalsuite.sweep.config import config_from_args


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(["run", "--device", "cpu", *argv])
    cfg, opts = config_from_args(args), replace(options_from_args(args), slots="gpu")
    try:
        report = run_ray_sweep(cfg, opts, show_progress=False)
    except EvalsuiteError as exc:
        print(f"evalsuite: error: {exc}", file=sys.stderr)
        return 2
    print(report.cluster_summary())
    for failure in report.failed:
        print(f"not evaluated: {failure.model} step {failure.step}: {failure.reason}", file=sys.stderr)
    return 2 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
