"""Peak memory of `evalsuite import` for 1 and for many lm-eval 0.4 output files of ~20 MB each
(results_<date>.json with a samples_piqa_<date>.jsonl of five-shot-sized prompts), the working
tree's importer against a git revision's (default `main`), each import in a fresh subprocess (its
own peak RSS, ru_maxrss), the same files for both. Prints each peak and the ratios many/1.

    python benchmarks/bench_import.py                      # 1 and 15 files of 20 MB, against main
    python benchmarks/bench_import.py --files 6 --mb 5 --rev 79e2c7c
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ("Question: How do I ready a guinea pig cage for its new occupants?\nAnswer: Provide the guinea pig "
          "with a cage full of a few inches of bedding made of ripped paper strips.\n\n") * 12  # ~2.3 KB
CHILD = """
import json, resource, sys, time
from pathlib import Path
from evalsuite.io.importer import import_paths
files, db = [Path(p) for p in sys.argv[1:-1]], Path(sys.argv[-1])
start = time.perf_counter()
report = import_paths(files, db, seed=False, source="bench")
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s":
                  time.perf_counter() - start, "samples": report.samples, "skipped": len(report.skipped)}))
"""


def sample_line(doc_id: int) -> dict:
    """One line as lm-eval 0.4's EvaluationTracker writes it for a five-shot PIQA document."""
    prompt = f"{PROMPT}Question: goal {doc_id}?\nAnswer:"
    return {"doc_id": doc_id, "doc": {"goal": f"goal {doc_id}?", "sol1": "a" * 80, "sol2": "b" * 80, "label": 0},
            "target": "0", "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": " " + "a" * 80},
                                         "gen_args_1": {"arg_0": prompt, "arg_1": " " + "b" * 80}},
            "resps": [[["-1.5", "False"]], [["-2.5", "False"]]],
            "filtered_resps": [["-1.5", "False"], ["-2.5", "False"]],
            "doc_hash": "0" * 64, "prompt_hash": "1" * 64, "target_hash": "2" * 64, "acc": 1.0, "acc_norm": 1.0}


def make_files(folder: Path, count: int, mb: float) -> list[Path]:
    """`count` results files of pythia-70m at steps 1000, 2000, ..., each with a samples file of
    about `mb` MB (the same documents: checkpoints of one model)."""
    line = json.dumps(sample_line(0))
    docs = max(1, int(mb * 2**20 / len(line)))
    body = "\n".join(json.dumps(sample_line(d)) for d in range(docs)) + "\n"
    paths = []
    for i in range(count):
        date = f"2024-01-{i + 1:02d}T00-00-00.000000"
        run = folder / f"run{i}"
        run.mkdir(parents=True)
        args = f"pretrained=EleutherAI/pythia-70m,revision=step{1000 * (i + 1)}"
        results = {"results": {"piqa": {"alias": "piqa", "acc,none": 0.6, "acc_stderr,none": 0.01}},
                   "n-shot": {"piqa": 5}, "n-samples": {"piqa": {"original": 1838, "effective": docs}},
                   "config": {"model": "hf", "model_args": args},
                   "lm_eval_version": "0.4.8"}
        (run / f"results_{date}.json").write_text(json.dumps(results))
        (run / f"samples_piqa_{date}.jsonl").write_text(body)
        paths.append(run)
    return paths


def peak(src: Path, files: list[Path], db: Path) -> dict:
    """One import in a fresh process with `src` first on its path: its peak RSS and wall time."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", CHILD, *map(str, files), str(db)], env=env,
                          capture_output=True, text=True, cwd=src)
    if done.returncode:
        raise SystemExit(f"the import under {src} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def checkout(rev: str, into: Path) -> Path:
    """The revision's package and the files it reads (tasks.yaml, models.yaml, results/, data/)."""
    paths = [p for p in ("evalsuite", "tasks.yaml", "models.yaml", "results")
             if subprocess.run(["git", "cat-file", "-e", f"{rev}:{p}"], cwd=ROOT, capture_output=True).returncode == 0]
    archive = subprocess.run(["git", "archive", rev, *paths], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "data").symlink_to(ROOT / "data")  # the task data it checks for (large; not imported)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=15)
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--rev", default="main")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{args.files} files of {args.mb:g} MB; baseline {args.rev}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        files = make_files(tmp_path / "files", args.files, args.mb)
        base = checkout(args.rev, tmp_path / "base")
        sides = {"this tree": ROOT, args.rev: base}
        results = {}
        for name, src in sides.items():
            for count in (1, args.files):
                start = time.perf_counter()
                out = peak(src, files[:count], tmp_path / f"{name.replace(' ', '-')}-{count}.duckdb")
                results[(name, count)] = out
                print(f"{name:>10}: {count:>3} files  peak RSS {out['rss_mb']:7.0f} MB  import {out['wall_s']:6.1f} s "
                      f"({out['samples']} samples, {out['skipped']} skipped; "
                      f"{time.perf_counter() - start:.1f} s in all)")
        for name in sides:
            ratio = results[(name, args.files)]["rss_mb"] / results[(name, 1)]["rss_mb"]
            print(f"{name:>10}: peak RSS {args.files} files / 1 file = {ratio:.2f}")
        many = results[("this tree", args.files)]["rss_mb"] / results[(args.rev, args.files)]["rss_mb"]
        print(f"this tree / {args.rev} at {args.files} files: peak RSS x{many:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
