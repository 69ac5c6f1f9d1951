"""`evalsuite run --ray ADDRESS ...` as the CLI runs it, but with workers on GPU slots that score on
the CPU (RayOptions.slots="gpu" with --device cpu): what a sweep does on a GPU cluster, on a test
cluster whose nodes declare GPUs they do not have. Prints what the CLI prints during and after a
sweep.

    python tests/ray_driver.py --model pythia-70m --steps 1000,2000 ... --ray 127.0.0.1:PORT
    python tests/ray_driver.py --kill-loading 2000 ...   # loading step 2000 kills its worker

--kill-loading STEP: the workers are a subclass, defined here, whose loading of that step ends the
worker's process at once (os._exit: no exception, no cleanup), as a checkpoint that crashes the
loader would. Defined in __main__, Ray ships the class to the workers by value; evalsuite itself
has no such hook.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

from evalsuite.cli import build_parser
from evalsuite.errors import EvalsuiteError
from evalsuite.sweep import cluster_worker
from evalsuite.sweep.cluster import options_from_args, run_ray_sweep
from evalsuite.sweep.config import config_from_args


class LoadingKills(cluster_worker.EvalWorker):
    step: int | None = None  # set before the first worker starts

    def _load(self, job):
        if job.step == self.step:
            os._exit(1)
        return cluster_worker.EvalWorker._load(self, job)


def main(argv: list[str]) -> int:
    if "--kill-loading" in argv:
        at = argv.index("--kill-loading")
        LoadingKills.step = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
        cluster_worker.EvalWorker = LoadingKills  # type: ignore[misc]  # what cluster_pool starts
    args = build_parser().parse_args(["run", "--device", "cpu", *argv])
    cfg, opts = config_from_args(args), replace(options_from_args(args), slots="gpu")
    try:
        report = run_ray_sweep(cfg, opts, show_progress=False, say=print,
                               warn=lambda line: print(line, file=sys.stderr, flush=True))
    except EvalsuiteError as exc:
        print(f"evalsuite: error: {exc}", file=sys.stderr)
        return 2
    print(report.cluster_summary())
    for failure in report.failed:
        print(f"not evaluated: {failure.model} step {failure.step}: {failure.reason}", file=sys.stderr)
    return 2 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
