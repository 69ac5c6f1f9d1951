"""Benchmark: one `evalsuite run` over K checkpoints against what a user would otherwise do, K runs
of lm-eval's own CLI (`lm-eval run --model hf`), on the same local checkpoints and data.

Builds K checkpoints with different random weights (a tiny GPT-NeoX, default pythia-14m's
shape) and, for lm-eval, task files that `include:` lm-eval's own five task definitions with
only the data location changed to the shipped local copies (evalsuite's `--data-dir` does the
same). Both sides run as fresh processes with the same torch thread count, one after the other.
Then every acc / acc_norm evalsuite stored is compared with lm-eval's results file for the same
checkpoint: they must be equal.

    python benchmarks/bench_vs_lmeval.py --checkpoints 8 --limit 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalsuite.lmeval.demo import shapes

# Pythia's shapes, and a "tiny" one below them (where fixed per-run costs dominate scoring)
SHAPES = {"tiny": dict(layers=2, width=64, heads=2), **shapes()}
STAND_IN = "pythia-70m"  # the registry name evalsuite evaluates the stand-in checkpoints under
SPLITS = ("training_split", "validation_split", "test_split")


def build_checkpoints(root: Path, shape: str, k: int) -> list[int]:
    from transformers.utils import logging

    from evalsuite.lmeval.demo import tiny_model

    logging.disable_progress_bar()
    steps = [1000 * (i + 1) for i in range(k)]
    for i, step in enumerate(steps):
        tiny_model(seed=i, **SHAPES[shape]).save_pretrained(root / f"step{step}")
    return steps


def lm_eval_task_files(folder: Path) -> list[str]:
    """`local_<task>.yaml` per task: lm-eval's own file included, the data pointed at data/tasks."""
    import yaml

    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.lmeval import definitions

    suite = load_tasks()
    folder.mkdir()
    names = []
    for spec, config in zip(suite.select(None), definitions.task_configs(suite.select(None), suite.data_dir, 0)):
        local = {k: config[k] for k in ("dataset_path", "dataset_name", "dataset_kwargs", *SPLITS) if k in config}
        body = {"include": str(definitions.task_yaml(spec.lm_eval_task)), "task": f"local_{spec.name}", **local}
        (folder / f"local_{spec.name}.yaml").write_text(yaml.safe_dump(body))
        names.append(f"local_{spec.name}")
    return names


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn):
    """(result, wall seconds, child CPU seconds) of fn(): CPU time is the steadier of the two
    on a machine that other jobs share."""
    wall, cpu = time.perf_counter(), children_cpu()
    out = fn()
    return out, time.perf_counter() - wall, children_cpu() - cpu


def run_lm_eval(root: Path, steps: list[int], limit: int, env: dict) -> dict:
    from evalsuite.paths import TOKENIZER_DIR

    tasks = lm_eval_task_files(root / "lm_eval_tasks")
    out = {}
    for step in steps:
        dest = root / "lm_eval_out" / f"step{step}"
        subprocess.run(
            [str(Path(sys.executable).parent / "lm-eval"), "run", "--model", "hf", "--model_args",
             f"pretrained={root / f'step{step}'},tokenizer={TOKENIZER_DIR},dtype=float32",
             "--tasks", ",".join(tasks), "--include_path", str(root / "lm_eval_tasks"),
             "--limit", str(limit), "--batch_size", "32", "--device", "cpu", "--output_path", str(dest)],
            env=env, check=True, capture_output=True)
        out[step] = json.loads(next(dest.rglob("results_*.json")).read_text())
    return out


def run_evalsuite(root: Path, steps: list[int], limit: int, env: dict) -> None:
    subprocess.run(
        [sys.executable, "-m", "evalsuite", "run", "--model", STAND_IN, "--model-path", str(root),
         "--steps", ",".join(map(str, steps)), "--limit", str(limit), "--db", str(root / "es.duckdb")],
        env=env, check=True, capture_output=True)


def compare(root: Path, lm_eval_out: dict) -> tuple[int, int, float]:
    """(acc values compared, acc values that differ, worst perplexity relative difference)."""
    from evalsuite import store
    from evalsuite.lmeval import results

    stored = store.read_df(root / "es.duckdb", "SELECT step, task, metric, value FROM scores WHERE source = 'local'")
    mine = {(r.step, r.task, r.metric): r.value for r in stored.itertuples()}
    compared = differ = 0
    worst_ppl = 0.0
    for step, raw in lm_eval_out.items():
        for m in results.parse_results(raw):
            value = mine[(step, m.task.removeprefix("local_"), m.metric)]
            if m.metric == "perplexity":
                worst_ppl = max(worst_ppl, abs(value - m.value) / m.value)
            else:
                compared, differ = compared + 1, differ + (value != m.value)
    return compared, differ, worst_ppl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="14m")
    parser.add_argument("--checkpoints", type=int, default=8)
    parser.add_argument("--limit", type=int, default=200, help="documents per task")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads on both sides")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false",
               HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} torch thread(s) each side, load average {os.getloadavg()[0]:.1f}")
    print(f"{args.checkpoints} checkpoints, pythia-{args.shape} shape {SHAPES[args.shape]}, random weights, "
          f"float32, {args.limit} documents per task, five tasks")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        steps = build_checkpoints(root, args.shape, args.checkpoints)
        _, ours, ours_cpu = timed(lambda: run_evalsuite(root, steps, args.limit, env))
        print(f"evalsuite run (one process, fast backend)  {ours:8.1f} s wall {ours_cpu:8.1f} s CPU "
              f"(load average {os.getloadavg()[0]:.1f})")
        out, theirs, theirs_cpu = timed(lambda: run_lm_eval(root, steps, args.limit, env))
        print(f"lm-eval run --model hf, {args.checkpoints} processes       {theirs:8.1f} s wall "
              f"{theirs_cpu:8.1f} s CPU (load average {os.getloadavg()[0]:.1f})")
        print(f"speed-up                                    {theirs / ours:8.2f} x wall "
              f"{theirs_cpu / ours_cpu:6.2f} x CPU")
        compared, differ, worst = compare(root, out)
    print(f"acc / acc_norm values compared: {compared}, different: {differ}; perplexity worst relative "
          f"difference {worst:.1e} (fast backend vs hf: float summation order)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
