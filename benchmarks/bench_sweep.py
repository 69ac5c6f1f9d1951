"""Benchmark: where a sweep's time goes, checkpoint by checkpoint, through the real sweep code.

Builds K local checkpoints with different (random) weights at a Pythia shape, runs
`evalsuite run` on them in this process (sweep.run_sweep: prefetch, requests built once,
background commits), and prints the request building (once, while the first checkpoint loads)
and for each checkpoint: waiting for its load, moving it to the device, backend scoring,
metrics + samples, the commit (on its own thread, overlapping the next checkpoint), the
checkpoint's wall time, and the overhead: wall minus backend scoring.
Then the start-up before the first checkpoint was scored, and the interpreter + CLI start.

    python benchmarks/bench_sweep.py --shape 14m --checkpoints 4      # all documents, five tasks
    python benchmarks/bench_sweep.py --shape 70m --checkpoints 4
    python benchmarks/bench_sweep.py --shape 1.4b --device cuda --dtype float16 --checkpoints 3

On CUDA it also prints the peak GPU memory against one model's size: with the next checkpoint
prefetched into host memory only, the peak stays below two models.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine

from evalsuite.lmeval.demo import shapes

SHAPES = shapes()
STAND_IN = "pythia-70m"  # the registry name the stand-in checkpoints are evaluated under


def build_checkpoints(root: Path, shape: str, k: int, dtype: str) -> list[int]:
    """root/step<N>/ for K steps, each with its own random weights, saved in `dtype`."""
    import torch
    from transformers.utils import logging

    from evalsuite.lmeval.demo import tiny_model

    logging.disable_progress_bar()  # a bar per saved shard
    steps = [1000 * (i + 1) for i in range(k)]
    for i, step in enumerate(steps):
        tiny_model(seed=i, **SHAPES[shape]).to(getattr(torch, dtype)).save_pretrained(root / f"step{step}")
    return steps


def sweep(root: Path, steps: list[int], args):
    from evalsuite.cli import build_parser
    from evalsuite.sweep.config import config_from_args
    from evalsuite.sweep.local import run_sweep

    cfg = config_from_args(build_parser().parse_args(run_args(root, steps, args, "bench.duckdb")))
    return run_sweep(cfg, show_progress=False)


def run_args(root: Path, steps: list[int], args, db: str) -> list[str]:
    return ["run", "--model", STAND_IN, "--model-path", str(root), "--db", str(root / db),
            "--steps", ",".join(map(str, steps)), "--backend", args.backend, "--device", args.device,
            "--dtype", args.dtype, *(["--limit", str(args.limit)] if args.limit else [])]


def print_jobs(report) -> None:
    print(f"lm-eval's requests, built once while the first checkpoint loaded: {report.startup.requests_s:.2f} s")
    print(f"{'checkpoint':>11} {'load wait':>9} {'to device':>9} {'scoring':>9} {'metrics':>9} "
          f"{'commit*':>8} {'wall':>8} {'overhead':>9} {'share':>6}")
    for job in report.jobs:
        t = job.times
        overhead = t.wall_s - t.scoring_s
        print(f"{'step' + str(job.step):>11} {t.load_wait_s:9.2f} {t.place_s:9.2f} {t.scoring_s:9.2f} "
              f"{t.metrics_s:9.2f} {t.commit_s:8.2f} {t.wall_s:8.2f} {overhead:9.2f} "
              f"{100 * overhead / t.wall_s:5.1f}%")
    later = report.jobs[1:]
    if later:
        shares = [(j.times.wall_s - j.times.scoring_s) / j.times.wall_s for j in later]
        print(f"overhead of checkpoints 2..{len(report.jobs)}: mean {100 * sum(shares) / len(shares):.1f}%, "
              f"worst {100 * max(shares):.1f}% of each checkpoint's wall time (target <= 5%)")
    print("* the commit runs on its own thread while the next checkpoint is evaluated; "
          "only the last one is waited for")


def print_startup(root: Path, steps: list[int], args) -> None:
    """The real command in a fresh process, one checkpoint: its own start-up line, and the
    interpreter + CLI start before it (`evalsuite --help`)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evalsuite", "--help"], capture_output=True, check=True)
    cli = time.perf_counter() - started
    argv = [sys.executable, "-m", "evalsuite", *run_args(root, steps[:1], args, "startup.duckdb")]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    whole = time.perf_counter() - started
    line = next(ln for ln in out.splitlines() if ln.startswith("start-up"))
    print(f"a fresh `evalsuite run` of one checkpoint took {whole:.1f} s; interpreter + CLI "
          f"{cli:.2f} s, then its own report: {line}")


def print_gpu_memory(checkpoint: Path) -> None:
    """Peak GPU memory of the sweep against the size of one checkpoint's weights."""
    import torch

    model_bytes = sum(f.stat().st_size for f in checkpoint.glob("*.safetensors"))
    peak = torch.cuda.max_memory_allocated()
    print(f"GPU memory: peak allocated {peak / 2**30:.2f} GiB; one model's weights "
          f"{model_bytes / 2**30:.2f} GiB; peak / model = {peak / model_bytes:.2f} "
          f"({'at most one model resident' if peak < 2 * model_bytes else 'two models were resident'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="14m")
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--backend", choices=["fast", "hf"], default="fast")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(machine.describe())
    print(f"{args.checkpoints} checkpoints, pythia-{args.shape} shape {SHAPES[args.shape]}, random weights "
          f"(one seed each), {args.dtype} on {args.device}, backend {args.backend}; documents per task: "
          f"{args.limit or 'all'}")
    with tempfile.TemporaryDirectory() as tmp:
        steps = build_checkpoints(Path(tmp), args.shape, args.checkpoints, args.dtype)
        started = time.perf_counter()
        report = sweep(Path(tmp), steps, args)
        total = time.perf_counter() - started
        print_jobs(report)
        print(f"whole sweep in this process: {total:.1f} s")
        if args.device.startswith("cuda"):
            print_gpu_memory(Path(tmp) / f"step{steps[0]}")
        print_startup(Path(tmp), steps, args)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
