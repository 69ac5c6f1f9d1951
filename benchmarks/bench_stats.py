"""Benchmark: the statistics of issue 18 on a store of full-suite size.

On the store benchmarks/bench_items.py builds (16 models x 154 checkpoints x 11,634 documents =
28.7M sample rows; `python benchmarks/bench_items.py --keep` builds it once, then pass its path
here), times, each call opening its own read-only connections as the CLI and the dashboard do:

- a compare of two checkpoints (stats.paired.compare: every task, paired tests, bootstrap
  intervals), the largest model's last two, by acc and by p_correct; and the same through the
  `evalsuite compare` command in a fresh process (interpreter and imports included);
- the significance markers of one training curve (stats.curve.changes: every consecutive pair
  of the largest model's 154 LAMBADA checkpoints, McNemar or paired t, Holm's correction), by
  acc and p_correct; and its bootstrap bands (stats.curve.intervals), which have no target;
- `evalsuite stats` computed on EleutherAI's published numbers (a freshly seeded store) and on
  the big store's own runs (every family, task and metric, p_correct and bpb from the samples).

    python benchmarks/bench_stats.py --db results/bench_items.duckdb

Targets (issue 18): the compare and the curve's markers <= 1 s each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine

from evalsuite import store
from evalsuite.paths import RESULTS_DIR
from evalsuite.stats import curve, paired, signal
from evalsuite.store.items import ItemsKey
from evalsuite.store.values import Checkpoint

MODEL = "pythia-12b-deduped"  # the largest: its LAMBADA curve is 793,562 sample rows


def timed(fn, *args, repeats: int = 3, **kwargs) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return times, result


def line(label: str, times: list[float], note: str = "") -> str:
    return (f"{label:62s} {min(times):6.3f} s {statistics.median(times):6.3f} s {max(times):6.3f} s  {note}").rstrip()


def cli_compare(db: Path) -> list[float]:
    """`evalsuite compare` in a fresh process: wall seconds, three runs."""
    argv = [sys.executable, "-m", "evalsuite", "compare", f"{MODEL}@142000", f"{MODEL}@143000", "--db", str(db),
            "--source", "local"]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=RESULTS_DIR / "bench_items.duckdb")
    args = parser.parse_args()
    if not args.db.exists():
        sys.exit(f"no store at {args.db}: build it with 'python benchmarks/bench_items.py --keep'")
    print(machine.describe())
    print(f"store {args.db} ({args.db.stat().st_size / 2**30:.2f} GiB)")
    print(f"{'(3 runs each)':62s} {'min':>8s} {'median':>8s} {'max':>8s}")
    a, b = Checkpoint(MODEL, 142000, "local"), Checkpoint(MODEL, 143000, "local")
    for metric in ("acc", "p_correct"):
        times, frame = timed(paired.compare, args.db, a, b, metric)
        print(line(f"compare {MODEL} 142000 vs 143000, {metric}, 5 tasks", times, f"{frame['n_docs'].sum():,} docs"))
    print(line("the same, `evalsuite compare` in a fresh process (acc)", cli_compare(args.db)))
    for metric in ("acc", "p_correct"):
        key = ItemsKey(MODEL, "lambada_openai", 0, metric, "local")
        times, frame = timed(curve.changes, args.db, key)
        print(line(f"curve markers {MODEL} lambada_openai {metric}", times,
                   f"{len(frame)} pairs, {int(frame['significant'].sum())} significant (holm)"))
        times, frame = timed(curve.intervals, args.db, key)
        print(line(f"curve bands (bootstrap) {MODEL} lambada_openai {metric}", times, f"{len(frame)} checkpoints"))
    with tempfile.TemporaryDirectory() as folder:
        published = store.init(Path(folder) / "published.duckdb")
        times, frame = timed(lambda: signal.signal_noise(signal.family_scores(published)))
        print(line("stats on the published numbers (every family, task, metric)", times, f"{len(frame)} rows"))
    times, frame = timed(lambda: signal.signal_noise(signal.family_scores(args.db, source="local")), repeats=1)
    print(line("stats on the store's own runs (with p_correct and bpb)", times, f"{len(frame)} rows"))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
