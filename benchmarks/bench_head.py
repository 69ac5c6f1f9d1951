"""Benchmark: the fast backend's greedy check on a CPU, plain argmax against the shortcut it uses
(`fast_backend._not_argmax`: a row's maximum first, argmax only where the target is a maximum).

Same model, same requests, one process: the two variants alternate for --rounds rounds (so a
busy neighbour slows both alike); prints each round, the best of each, their ratio, and whether
the results are identical. With --profile, also torch's profiler table of one scoring pass (the
shortcut), to show where a checkpoint's scoring time goes.

    python benchmarks/bench_head.py                      # pythia-14m shape, 200 documents per task
    python benchmarks/bench_head.py --profile
"""

from __future__ import annotations

import argparse
import os
import time

import machine
from bench_backends import SHAPES, build_requests


def plain_argmax(logprobs, targets, at_target):
    return logprobs.argmax(dim=-1) != targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="14m")
    parser.add_argument("--limit", type=int, default=200, help="documents per task")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from evalsuite.lmeval import fast_backend
    from evalsuite.lmeval.demo import tiny_model, tokenizer

    print(machine.describe())
    print(f"model: pythia-{args.shape} shape {SHAPES[args.shape]}, random weights, float32, "
          f"{args.limit} documents per task, five tasks")
    lm = fast_backend.FastLM(tiny_model(seed=1, **SHAPES[args.shape]), tokenizer())
    requests = build_requests(args.limit)
    lm.loglikelihood(requests)  # tokenization and the token cache: the same for both, not timed
    variants = {"argmax": plain_argmax, "shortcut": fast_backend._not_argmax}
    times: dict[str, list[float]] = {name: [] for name in variants}
    results = {}
    try:
        for _ in range(args.rounds):
            for name, check in variants.items():
                fast_backend._not_argmax = check
                start = time.perf_counter()
                results[name] = lm.loglikelihood(requests)
                times[name].append(time.perf_counter() - start)
    finally:
        fast_backend._not_argmax = variants["shortcut"]
    for name, seconds in times.items():
        print(f"{name:9s} scoring s per pass: {' '.join(f'{s:.2f}' for s in seconds)}; best {min(seconds):.2f}")
    print(f"speed-up (best argmax / best shortcut) {min(times['argmax']) / min(times['shortcut']):.3f} x; "
          f"results identical: {results['argmax'] == results['shortcut']}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            lm.loglikelihood(requests)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
