"""Benchmark: where a sweep's time goes, checkpoint by checkpoint, through the real sweep code.

Builds K local checkpoints with different (random) weights at a Pythia shape, runs
`evalsuite run` on them in this process (sweep.run_sweep: prefetch, requests built once,
background commits), and prints for each checkpoint: waiting for its load, request building
(the first only), backend scoring, metrics + samples, the commit (on its own thread, overlapping
the next checkpoint), the checkpoint's wall time, and the overhead: wall minus backend scoring.
Then the start-up before the first checkpoint was scored, and the interpreter + CLI start.

    python benchmarks/bench_sweep.py --shape 14m --checkpoints 4      # all documents, five tasks
    python benchmarks/bench_sweep.py --shape 70m --checkpoints 4
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {"14m": dict(layers=6, width=128, heads=4), "70m": dict(layers=6, width=512, heads=8)}
STAND_IN = "pythia-70m"  # the registry name the stand-in checkpoints are evaluated under


def build_checkpoints(root: Path, shape: str, k: int) -> list[int]:
    """root/step<N>/ for K steps, each with its own random weights."""
    from evalsuite.demo import tiny_model

    steps = [1000 * (i + 1) for i in range(k)]
    for i, step in enumerate(steps):  # quietly: transformers draws a bar per saved shard
        tiny_model(seed=i, **SHAPES[shape]).save_pretrained(root / f"step{step}", safe_serialization=True)
    return steps


def sweep(root: Path, steps: list[int], limit: int | None, backend: str):
    from evalsuite.cli import build_parser
    from evalsuite.sweep import config_from_args, run_sweep

    argv = ["run", "--model", STAND_IN, "--model-path", str(root), "--db", str(root / "bench.duckdb"),
            "--steps", ",".join(map(str, steps)), "--backend", backend]
    cfg = config_from_args(build_parser().parse_args(argv + (["--limit", str(limit)] if limit else [])))
    return run_sweep(cfg, show_progress=False)


def print_jobs(report) -> None:
    print(f"{'checkpoint':>11} {'load wait':>9} {'requests':>9} {'scoring':>9} {'metrics':>9} "
          f"{'commit*':>8} {'wall':>8} {'overhead':>9} {'share':>6}")
    for job in report.jobs:
        t = job.times
        overhead = t.wall_s - t.scoring_s
        print(f"{'step' + str(job.step):>11} {t.load_wait_s:9.2f} {t.requests_s:9.2f} {t.scoring_s:9.2f} "
              f"{t.metrics_s:9.2f} {t.commit_s:8.2f} {t.wall_s:8.2f} {overhead:9.2f} "
              f"{100 * overhead / t.wall_s:5.1f}%")
    later = report.jobs[1:]
    if later:
        shares = [(j.times.wall_s - j.times.scoring_s) / j.times.wall_s for j in later]
        print(f"overhead of checkpoints 2..{len(report.jobs)}: mean {100 * sum(shares) / len(shares):.1f}%, "
              f"worst {100 * max(shares):.1f}% of each checkpoint's wall time (target <= 5%)")
    print("* the commit runs on its own thread while the next checkpoint is evaluated; "
          "only the last one is waited for")


def print_startup(root: Path, steps: list[int], limit: int | None, backend: str) -> None:
    """The real command in a fresh process, one checkpoint: its own start-up line, and the
    interpreter + CLI start before it (`evalsuite --help`)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evalsuite", "--help"], capture_output=True, check=True)
    cli = time.perf_counter() - started
    argv = [sys.executable, "-m", "evalsuite", "run", "--model", STAND_IN, "--model-path", str(root),
            "--db", str(root / "startup.duckdb"), "--steps", str(steps[0]), "--backend", backend,
            *(["--limit", str(limit)] if limit else [])]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    whole = time.perf_counter() - started
    line = next(ln for ln in out.splitlines() if ln.startswith("start-up"))
    print(f"a fresh `evalsuite run` of one checkpoint took {whole:.1f} s; interpreter + CLI "
          f"{cli:.2f} s, then its own report: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="14m")
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--backend", choices=["fast", "hf"], default="fast")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{args.checkpoints} checkpoints, pythia-{args.shape} shape {SHAPES[args.shape]}, random weights "
          f"(one seed each), float32, backend {args.backend}; documents per task: {args.limit or 'all'}")
    with tempfile.TemporaryDirectory() as tmp:
        steps = build_checkpoints(Path(tmp), args.shape, args.checkpoints)
        started = time.perf_counter()
        report = sweep(Path(tmp), steps, args.limit, args.backend)
        total = time.perf_counter() - started
        print_jobs(report)
        print(f"whole sweep in this process: {total:.1f} s")
        print_startup(Path(tmp), steps, args.limit, args.backend)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
