"""Benchmark: checkpoints per hour on Ray workers here, and a plan for the whole Pythia suite.

Part 1, measured on this machine: K local checkpoints at a Pythia shape (random weights, float32
on the CPU), the five tasks with --limit documents each (enough that scoring one checkpoint takes
10 s or more with one thread), evaluated three ways through the real code:
    the single-process sweep (sweep.run_sweep, one torch thread),
    `--ray local` with 1 CPU worker, and with 2 CPU workers (one torch thread each).
Each prints wall time, checkpoints per hour over the whole run and in the steady state (from
the W-th to the last checkpoint finished, W = workers: start-up excluded), the mean scoring
time per checkpoint (it grows when the workers get less than a core each), the CPU seconds of
every process of the run (driver, Ray, workers: read from /proc while it runs) and the cores
they used on average (CPU s / wall s), and the load average (the machine is shared).

Part 2, estimated: the full suite (16 models x 154 checkpoints = 2,464 evaluations) on 8 and 64
GPUs, 8 per node, with the packing rule of packing.py: per phase, workers, makespan, GPU-hours
and download volume per node. Scoring cost is FLOPs (2 x non-embedding parameters per token
through the body + the LM head at scored positions + attention), using the fast backend's
measured token counts for the five full tasks, divided by an ASSUMED GPU throughput (peak x
MFU); per-checkpoint CPU work (lm-eval's metrics) is scaled from part 1; download bandwidth per
node is ASSUMED. Nothing of part 2 was measured on a GPU.

    python benchmarks/bench_cluster.py                       # 70m shape, 8 checkpoints, limit 40
    python benchmarks/bench_cluster.py --plan-only
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench_sweep import SHAPES, build_checkpoints, run_args

# Measured (benchmarks/README.md, bench_backends.py, fast backend, all documents of the five tasks):
TOKENS = 763_614  # real tokens through the transformer body per checkpoint
SCORED = 155_368  # positions through the LM head
MEAN_ROW = 93  # token-weighted mean row length (attention cost ~ tokens x row length)
DOCUMENTS = 11_634
CHECKPOINTS = 154


def run_once(root: Path, steps: list[int], args, workers: int | None):
    """One sweep in this process: the single-process loop (workers None) or --ray local."""
    import torch

    from evalsuite.cli import build_parser
    from evalsuite.sweep.cluster import RayOptions, run_ray_sweep
    from evalsuite.sweep.config import config_from_args
    from evalsuite.sweep.local import run_sweep

    torch.set_num_threads(1)
    db = f"bench-{workers or 0}.duckdb"
    cfg = config_from_args(build_parser().parse_args(run_args(root, steps, args, db)))
    if workers is None:
        return run_sweep(cfg, show_progress=False), cfg.db
    return run_ray_sweep(cfg, RayOptions("local", workers), show_progress=False), cfg.db


class CpuMeter:
    """CPU seconds of this process plus every process of the --ray local instance, read from
    /proc every half second (a process's last half second before it exits can be missed)."""

    def __init__(self):
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.started = time.process_time()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        from evalsuite.sweep.reaper import descendants

        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.wait(0.5):
            for pid in descendants({os.getpid()}) - {os.getpid()}:  # the instance's processes, and the reaper
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.seen[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    def total(self) -> float:
        self.stop.set()
        self.thread.join()
        return time.process_time() - self.started + sum(self.seen.values())


def measure(root: Path, steps: list[int], args, workers: int | None) -> dict:
    from evalsuite import store

    load, meter, started = os.getloadavg()[0], CpuMeter(), time.perf_counter()
    report, db = run_once(root, steps, args, workers)
    wall, cpu = time.perf_counter() - started, meter.total()
    finished = sorted(store.read_df(db, "SELECT finished_at FROM runs WHERE source = 'local'").finished_at)
    w = workers or 1
    steady = (len(finished) - w) / (finished[-1] - finished[w - 1]).total_seconds()
    scoring = sum(j.times.scoring_s for j in report.jobs) / len(report.jobs)
    metrics = sum(j.times.metrics_s for j in report.jobs) / len(report.jobs)
    return dict(name="single process" if workers is None else f"Ray, {workers} worker(s)", wall=wall,
                per_hour=3600 * len(report.jobs) / wall, steady=3600 * steady, scoring=scoring,
                metrics=metrics, cpu=cpu, load=(load, os.getloadavg()[0]), n=len(report.jobs))


def print_measured(rows: list[dict]) -> None:
    print(f"{'':>20} {'ckpts':>5} {'wall s':>7} {'ckpt/h':>7} {'steady ckpt/h':>13} {'scoring s':>9} "
          f"{'CPU s':>7} {'cores used':>10} {'load avg':>11}")
    for r in rows:
        print(f"{r['name']:>20} {r['n']:5d} {r['wall']:7.1f} {r['per_hour']:7.0f} {r['steady']:13.0f} "
              f"{r['scoring']:9.1f} {r['cpu']:7.1f} {r['cpu'] / r['wall']:10.2f} "
              f"{r['load'][0]:5.1f}-{r['load'][1]:<5.1f}")
    one = next((r for r in rows if r["name"].startswith("Ray, 1 ")), None)
    two = next((r for r in rows if r["name"].startswith("Ray, 2 ")), None)
    if one and two:
        print(f"2 workers over 1: {two['per_hour'] / one['per_hour']:.2f}x whole run, "
              f"{two['steady'] / one['steady']:.2f}x steady state (target >= 1.7x)")


@dataclass(frozen=True)
class Assumptions:
    gpu_tflops: float = 989.0  # H100 SXM dense float16 peak, from the datasheet
    mfu: float = 0.25  # ASSUMED fraction of peak the fast backend reaches on a GPU (not measured)
    node_gbit_s: float = 10.0  # ASSUMED download bandwidth from the Hub per node
    gpus_per_node: int = 8
    gpu_gib: float = 79.6  # an 80 GB card as torch reports it
    metrics_s_per_doc: float = 0.0  # lm-eval's metrics on the CPU, per document: from part 1


def scoring_flops(model) -> float:
    body = 2 * model.non_embedding_params * TOKENS
    head = 2 * model.width * model.vocab * SCORED
    attention = 4 * model.layers * model.width * TOKENS * MEAN_ROW
    return body + head + attention


def plan_phase(models: list, per_gpu: int, gpus: int, a: Assumptions) -> dict:
    """One phase's makespan: the slowest of the GPUs' scoring, the workers' own serial work
    (scoring, then lm-eval's metrics; the next download overlaps both) and the nodes' downloads,
    plus one job at the end (the tail)."""
    nodes = max(1, math.ceil(gpus / a.gpus_per_node))
    gpu_s = [scoring_flops(m) / (a.gpu_tflops * 1e12 * a.mfu) for m in models for _ in range(CHECKPOINTS)]
    sizes = [m.params * 2 for m in models for _ in range(CHECKPOINTS)]  # float16 weights
    cpu_s = a.metrics_s_per_doc * DOCUMENTS
    bounds = {"GPU": sum(gpu_s) / gpus, "workers": (sum(gpu_s) + cpu_s * len(gpu_s)) / (gpus * per_gpu),
              "download": sum(sizes) * 8 / (nodes * a.node_gbit_s * 1e9)}
    bound = max(bounds, key=bounds.get)
    makespan = bounds[bound] + max(gpu_s) + cpu_s
    return dict(per_gpu=per_gpu, jobs=len(gpu_s), gpu_s=(min(gpu_s), max(gpu_s)), bound=bound,
                makespan_h=makespan / 3600, gpu_h=makespan * gpus / 3600, scoring_gpu_h=sum(gpu_s) / 3600,
                tb_per_node=sum(sizes) / nodes / 1e12)


@dataclass(frozen=True)
class SuiteModel:
    """One of the Pythia suite's 16 models: its catalog parameters and its shape."""

    name: str
    size: str
    params: int
    layers: int
    width: int
    vocab: int

    @property
    def non_embedding_params(self) -> int:
        return self.params - 2 * self.vocab * self.width  # untied input and output embeddings


def suite_models() -> dict[str, SuiteModel]:
    """pythia-70m ... 12b, standard and deduped (not 14m and 31m, trained after the suite)."""
    from evalsuite.catalog import pythia
    from evalsuite.catalog.entries import builtin_catalog

    out = {}
    for spec in builtin_catalog().family("pythia", "pythia-deduped"):
        size = spec.name.removeprefix("pythia-").removesuffix("-deduped")
        if size not in ("14m", "31m") and spec.params:
            layers, width, _, vocab = pythia.SIZES[size]
            out[spec.name] = SuiteModel(spec.name, size, spec.params, layers, width, vocab)
    return out


def print_plan(a: Assumptions) -> None:
    from evalsuite.sweep import packing

    print(f"\nPlan for the full suite: 16 models x {CHECKPOINTS} checkpoints = {16 * CHECKPOINTS} evaluations, "
          f"five tasks, all {DOCUMENTS:,} documents, float16, phases by packing.py. ESTIMATES: "
          f"{a.gpu_tflops:.0f} TFLOP/s peak x {a.mfu:.0%} MFU assumed; {a.node_gbit_s:.0f} Gbit/s Hub "
          f"download per node assumed; {a.gpus_per_node} GPUs of {a.gpu_gib} GiB per node; lm-eval's "
          f"metrics {a.metrics_s_per_doc * DOCUMENTS:.1f} s per checkpoint on a worker's CPU (scaled from part 1)")
    for gpus in (8, 64):
        print(f"\n{gpus} GPUs ({max(1, gpus // a.gpus_per_node)} node(s)):")
        print(f"{'sizes (and -deduped)':>26} {'per GPU':>7} {'jobs':>5} {'GPU s/job':>11} {'bound':>8} "
              f"{'makespan h':>10} {'GPU-h':>7} {'TB/node':>7}")
        totals = dict(makespan_h=0.0, gpu_h=0.0, scoring_gpu_h=0.0, tb_per_node=0.0)
        suite = suite_models()
        for phase in packing.phases(list(suite), "float16", a.gpu_gib):
            models = [suite[m] for m in phase.models]
            row = plan_phase(models, phase.per_gpu, gpus, a)
            sizes = ",".join(dict.fromkeys(m.size for m in models))
            low, high = row["gpu_s"]
            print(f"{sizes:>26} {row['per_gpu']:7d} {row['jobs']:5d} {low:5.1f}-{high:<5.1f} {row['bound']:>8} "
                  f"{row['makespan_h']:10.2f} {row['gpu_h']:7.1f} {row['tb_per_node']:7.2f}")
            totals = {k: totals[k] + row[k] for k in totals}
        print(f"{'whole suite':>26} {'':7} {16 * CHECKPOINTS:5d} {'':11} {'':8} {totals['makespan_h']:10.2f} "
              f"{totals['gpu_h']:7.1f} {totals['tb_per_node']:7.2f}   (scoring alone: "
              f"{totals['scoring_gpu_h']:.1f} GPU-h)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="70m")
    parser.add_argument("--checkpoints", type=int, default=8)
    parser.add_argument("--limit", type=int, default=40, help="documents per task (default 40)")
    parser.add_argument("--plan-only", action="store_true", help="skip part 1 (then metrics time is 0)")
    parser.add_argument("--runs", default="single,1,2",
                        help="part 1's runs: single (one process) and/or worker counts (default single,1,2)")
    parser.add_argument("--mfu", type=float, default=Assumptions.mfu)
    parser.add_argument("--node-gbit", type=float, default=Assumptions.node_gbit_s)
    args = parser.parse_args()
    args.backend, args.device, args.dtype = "fast", "cpu", "float32"
    metrics_per_doc = 0.0
    if not args.plan_only:
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}; pythia-{args.shape} shape, random weights, float32, one torch "
              f"thread per process; {args.checkpoints} checkpoints, five tasks, {args.limit} documents each")
        with tempfile.TemporaryDirectory() as tmp:
            steps = build_checkpoints(Path(tmp), args.shape, args.checkpoints, "float32")
            runs = [None if r == "single" else int(r) for r in args.runs.split(",")]
            rows = [measure(Path(tmp), steps, args, workers) for workers in runs]
        print_measured(rows)
        metrics_per_doc = sum(r["metrics"] for r in rows) / len(rows) / (5 * args.limit)
    print_plan(Assumptions(mfu=args.mfu, node_gbit_s=args.node_gbit, metrics_s_per_doc=metrics_per_doc))


if __name__ == "__main__":
    main()
