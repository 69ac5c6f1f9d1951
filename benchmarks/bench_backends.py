"""Benchmark: evalsuite's fast backend against lm-eval's `hf`, in one process, same model, same data.

Builds lm-eval's loglikelihood requests for the five tasks once (local data, --limit docs per
task or all), then times `loglikelihood` of each backend on the same requests (wall and process
CPU time; tokenization included, fast backend with a cold token cache) and compares every result.
The floor: one forward pass of the model body over just the fast backend's unique tokens (each
shared prefix once), packed densely into rows as wide as the token-weighted mean row (no
padding, plain causal mask), plus the LM head at the scored positions only: the least work any
backend must do. Then the time between checkpoints with and without the
Prefetcher, over local checkpoints with a simulated download delay.

    python benchmarks/bench_backends.py --shape 14m [--limit 200] [--hf-batch 32]
    python benchmarks/bench_backends.py --shape 70m --limit 100
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import machine

from evalsuite.lmeval.demo import shapes

SHAPES = shapes()


def build_requests(limit: int | None):
    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.lmeval.definitions import lm_eval_requests

    suite = load_tasks()
    return lm_eval_requests(suite.select(None), suite.data_dir, limit)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def hf_tokens(pairs, batch: int) -> tuple[int, int]:
    """Tokens HFLM feeds the model (its one-token-continuation cache deduplicates equal inputs),
    and the padded total of its batches of `batch` rows sorted longest first."""
    inputs = {tuple((c + x)[-2049:][:-1]) for c, x in pairs}
    lengths = sorted((len(i) for i in inputs), reverse=True)
    padded = sum(lengths[i] * len(lengths[i:i + batch]) for i in range(0, len(lengths), batch))
    return sum(lengths), padded


def floor_pass(model, rows, scored: int, budget: int) -> tuple[float, float, int]:
    """(wall s, CPU s, row width) of the model body over exactly the rows' tokens, packed densely
    into rows as wide as the token-weighted mean row (no padding), + the LM head at `scored`."""
    import torch

    from evalsuite.lmeval.fast_backend import HEAD_CHUNK

    tokens = [t for row in rows for t in row.tokens]
    width = max(1, round(sum(len(r.tokens) ** 2 for r in rows) / len(tokens)))
    dense = torch.tensor(tokens[: len(tokens) // width * width]).view(-1, width)
    step = max(1, budget // width)

    def run():
        with torch.inference_mode():
            for i in range(0, len(dense), step):
                hidden = model.base_model(input_ids=dense[i:i + step], use_cache=False).last_hidden_state
            chunk = HEAD_CHUNK["cpu"]  # the fast backend's own head: log-softmax in small chunks
            h = hidden.reshape(-1, hidden.shape[-1])[:1].expand(chunk, -1).contiguous()
            head = model.get_output_embeddings()
            for i in range(0, scored, chunk):
                torch.log_softmax(head(h[: min(chunk, scored - i)]), dim=-1).argmax(-1)

    _, wall, cpu = timed(run)
    return wall, cpu, width


def compare(requests, fast, hf) -> dict:
    rel = max(abs(f[0] - h[0]) / abs(h[0]) for f, h in zip(fast, hf))
    absd = max(abs(f[0] - h[0]) for f, h in zip(fast, hf))
    greedy = sum(f[1] != h[1] for f, h in zip(fast, hf))
    docs = defaultdict(list)
    for req, f, h in zip(requests, fast, hf):
        docs[(req.task_name, req.doc_id)].append((f[0], h[0], len(req.args[1].encode())))
    differ = 0
    for rows in docs.values():
        differ += any(_pick(rows, 0, n) != _pick(rows, 1, n) for n in (False, True))
    return dict(rel=rel, abs=absd, greedy=greedy, docs=len(docs), docs_differ=differ)


def _pick(rows: list, k: int, norm: bool) -> int:
    """The chosen answer by loglikelihood column k (per byte when norm)."""
    return max(range(len(rows)), key=lambda j: rows[j][k] / (rows[j][2] if norm else 1))


def bench_backends(args, model, tok, requests) -> None:
    from lm_eval.models.huggingface import HFLM

    from evalsuite.lmeval.fast_backend import FastLM, TokenCache

    fast_lm = FastLM(model=model, tokenizer=tok, token_cache=TokenCache())
    fast, fast_wall, fast_cpu = timed(lambda: fast_lm.loglikelihood(requests))
    st = fast_lm.stats
    hf_lm = HFLM(pretrained=model, tokenizer=tok, batch_size=args.hf_batch)
    hf, hf_wall, hf_cpu = timed(lambda: hf_lm.loglikelihood(requests, disable_tqdm=True))
    rows, _, _ = fast_lm.plan(requests)
    floor, floor_cpu, width = floor_pass(model, rows, st.scored_positions, fast_lm.token_budget)
    pairs = fast_lm.token_cache.encode(tok, [tuple(r.args) for r in requests])
    hf_real, hf_padded = hf_tokens(pairs, args.hf_batch)
    cmp = compare(requests, fast, hf)
    print(f"requests                 {len(requests):,} ({st.unique_requests:,} unique, {cmp['docs']:,} documents)")
    print(f"tokens: hf               {hf_real:,} real, {hf_padded:,} padded (batch {args.hf_batch}); "
          f"LM head at every position")
    print(f"tokens: fast             {st.tokens:,} real, {st.padded_tokens:,} padded "
          f"({st.rows:,} rows, {st.batches} batches, budget {fast_lm.token_budget}); "
          f"LM head at {st.scored_positions:,} scored positions")
    print(f"hf backend               {hf_wall:8.1f} s wall  {hf_cpu:8.1f} s CPU")
    print(f"fast backend             {fast_wall:8.1f} s wall  {fast_cpu:8.1f} s CPU "
          f"(tokenize {st.tokenize_s:.1f} s)")
    print(f"speed-up                 {hf_wall / fast_wall:8.2f} x wall {hf_cpu / fast_cpu:8.2f} x CPU")
    print(f"floor (unique tokens)    {floor:8.1f} s wall  {floor_cpu:8.1f} s CPU (dense rows of {width}); "
          f"fast / floor = {fast_wall / floor:.2f} wall, {fast_cpu / floor_cpu:.2f} CPU; "
          f"hf / floor = {hf_cpu / floor_cpu:.2f} CPU (the most an exact backend can gain)")
    print(f"fast, warm token cache   {fast_wall - st.tokenize_s:8.1f} s wall (2nd+ checkpoint of a sweep); "
          f"speed-up {hf_wall / (fast_wall - st.tokenize_s):.2f} x")
    print(f"largest difference       {cmp['rel']:.2e} relative, {cmp['abs']:.2e} absolute; "
          f"is_greedy differs on {cmp['greedy']}; acc/acc_norm choice differs on "
          f"{cmp['docs_differ']} of {cmp['docs']} documents")


def bench_prefetch(args, model, tok, requests) -> None:
    """Seconds between the end of one checkpoint's evaluation and the start of the next."""
    from transformers import AutoModelForCausalLM

    from evalsuite.lmeval.fast_backend import FastLM
    from evalsuite.sweep.prefetch import Prefetcher

    subset = requests[: args.prefetch_requests]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for step in range(args.checkpoints):
            dirs.append(Path(tmp) / f"step{step}")
            model.save_pretrained(dirs[-1])

        def load(path):
            time.sleep(args.load_delay)  # the download a Hub checkpoint would need
            return AutoModelForCausalLM.from_pretrained(path).eval()

        for name, source in (("serial", ((d, load(d)) for d in dirs)), ("prefetch", Prefetcher(load, dirs))):
            gaps, evals, last_end, start = [], [], None, time.perf_counter()
            for _, loaded in source:
                t0 = time.perf_counter()
                if last_end is not None:
                    gaps.append(t0 - last_end)
                FastLM(model=loaded, tokenizer=tok).loglikelihood(subset)
                last_end = time.perf_counter()
                evals.append(last_end - t0)
            print(f"{name:9s} {args.checkpoints} checkpoints: total {last_end - start:6.1f} s; "
                  f"evaluation {sum(evals) / len(evals):5.1f} s each; "
                  f"between checkpoints {sum(gaps) / len(gaps):5.1f} s (load delay {args.load_delay} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="14m")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--hf-batch", type=int, default=32)
    parser.add_argument("--checkpoints", type=int, default=3)
    parser.add_argument("--load-delay", type=float, default=5.0)
    parser.add_argument("--prefetch-requests", type=int, default=600)
    parser.add_argument("--skip-prefetch", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared, busy machine 2 threads stall each other)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from evalsuite.lmeval.demo import tiny_model, tokenizer

    print(machine.describe())
    print(f"model: pythia-{args.shape} shape {SHAPES[args.shape]}, random weights, float32; "
          f"documents per task: {args.limit or 'all'}")
    requests, build_s, _ = timed(lambda: build_requests(args.limit))
    print(f"lm-eval request building {build_s:8.1f} s (same for both backends, not timed below)")
    model, tok = tiny_model(seed=0, **SHAPES[args.shape]), tokenizer()
    bench_backends(args, model, tok, requests)
    if not args.skip_prefetch:
        bench_prefetch(args, model, tok, requests)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
