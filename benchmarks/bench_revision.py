"""Benchmark: the fast backend of this working tree against the fast backend of a git revision.

Same model, same lm-eval requests, one process: the revision's evalsuite/lmeval/ modules are
read with `git show` into a temporary package (their imports of evalsuite.lmeval pointed at it),
each side gets its own token cache, warmed once (tokenization is not timed), then the two
alternate for --rounds rounds, so a busy neighbour slows both alike. Prints each round, the best
and the median of each, their ratios, and whether the results are identical bit for bit
(loglikelihoods as floats, is_greedy).

    python benchmarks/bench_revision.py                       # against main, pythia-14m shape, 100 documents per task
    python benchmarks/bench_revision.py --rev 3d06370 --shape 70m --limit 50
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
from bench_backends import SHAPES, build_requests

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "revision_lmeval"


def load_revision(rev: str, folder: Path):
    """The fast_backend module of `rev`, importable beside this tree's as PACKAGE.fast_backend."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{rev}:evalsuite/lmeval/"],
                           capture_output=True, text=True, check=True).stdout.split()
    package = folder / PACKAGE
    package.mkdir()
    for name in (n for n in names if n.endswith(".py")):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:evalsuite/lmeval/{name}"],
                              capture_output=True, text=True, check=True).stdout
        text = text.replace("evalsuite.lmeval.", f"{PACKAGE}.").replace("from evalsuite.lmeval import",
                                                                         f"from {PACKAGE} import")
        (package / name).write_text(text.replace('@register_model("evalsuite-fast")', ""))  # one registration
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{PACKAGE}.fast_backend")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--shape", choices=SHAPES, default="14m")
    parser.add_argument("--limit", type=int, default=100, help="documents per task")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from evalsuite.lmeval import fast_backend
    from evalsuite.lmeval.demo import tiny_model, tokenizer

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev],
                            capture_output=True, text=True, check=True).stdout.strip()
    print(machine.describe())
    print(f"model: pythia-{args.shape} shape {SHAPES[args.shape]}, random weights, float32, "
          f"{args.limit} documents per task, five tasks; this tree against {args.rev} ({commit})")
    model, tok, requests = tiny_model(seed=1, **SHAPES[args.shape]), tokenizer(), build_requests(args.limit)
    with tempfile.TemporaryDirectory() as folder:
        old = load_revision(args.rev, Path(folder))
        sides = {args.rev: old.FastLM(model, tok, token_cache=old.TokenCache()),
                 "this tree": fast_backend.FastLM(model, tok, token_cache=fast_backend.TokenCache())}
        results = {name: lm.loglikelihood(requests) for name, lm in sides.items()}  # warm the token caches
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, lm in sides.items():
                start = time.perf_counter()
                results[name] = lm.loglikelihood(requests)
                times[name].append(time.perf_counter() - start)
    for name, seconds in times.items():
        print(f"{name:10s} scoring s per pass: {' '.join(f'{s:.2f}' for s in seconds)}; "
              f"best {min(seconds):.2f}, median {statistics.median(seconds):.2f}")
    ours, theirs = times["this tree"], times[args.rev]
    print(f"this tree / {args.rev}: {min(ours) / min(theirs):.3f} x the time (best passes), "
          f"{statistics.median(ours) / statistics.median(theirs):.3f} x (medians); "
          f"results identical bit for bit: {results['this tree'] == results[args.rev]}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
