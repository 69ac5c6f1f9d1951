"""Benchmark: float16 parity of the fast backend and lm-eval's `hf`, against float32, on CPU or CUDA;
on CUDA also each SDPA kernel, rerun determinism, and out-of-memory recovery on the real card.

    python benchmarks/bench_fp16.py --device cpu --shape 14m --limit 4
    python benchmarks/bench_fp16.py --device cuda --shape 1.4b            # called by benchmarks/gpu.sh

One model with random weights at a Pythia shape, in float16; the reference is lm-eval's own `hf`
on the same (float16-rounded) weights in float32, so every difference is arithmetic, not weight
rounding. On the same lm-eval requests (the five tasks, local data, --limit documents each):

- worst relative loglikelihood error against the reference: the fast backend (with PyTorch's
  own SDPA kernel choice, and on CUDA with each kernel forced: math, memory-efficient, cuDNN,
  flash) and `hf` (which takes its log-softmax and sums in float16);
- documents whose acc / acc_norm pick differs from hf's or from the reference's, each with its
  float32 margin and whether the float16 error explains it (evalsuite/agreement.py);
- CUDA: two runs give identical numbers (deterministic sums); synchronising calls per run;
  then, under a memory cap (torch.cuda.set_per_process_memory_fraction: the card behaves as
  one with --headroom-gib free beside the model) and a huge token budget, real out-of-memory
  errors from the CUDA allocator, recovered by halving the budget, with the same results (within
  one float16 rounding: the batches differ).

The last line is the summary, `float16 parity, pythia-<shape> shape on <device>: PASS` or
`FAIL (reasons)`; the exit status is 1 on FAIL. About a minute on one GPU for the 1.4b shape
(an estimate: never run on a GPU yet).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time
import warnings

from evalsuite.lmeval.demo import shapes

SHAPES = shapes()

FP16_RTOL = 2.0 ** -11  # as tests/test_fast_backend.py: at most one float16 rounding
KERNELS = ("MATH", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "FLASH_ATTENTION")


def build_requests(limit: int):
    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.lmeval.definitions import lm_eval_requests

    suite = load_tasks()
    return lm_eval_requests(suite.select(None), suite.data_dir, limit)


def models(shape: dict, seed: int, device: str):
    """(float16 model, float32 model with the same float16-rounded weights), both on `device`."""
    import torch

    from evalsuite.lmeval.demo import tiny_model

    with torch.device(device):  # initialised where it runs: a 1.4b init on one CPU core is slow
        model32 = tiny_model(seed=seed, **shape)
    model16 = copy.deepcopy(model32).half()
    with torch.no_grad():
        for p32, p16 in zip(model32.parameters(), model16.parameters()):
            p32.copy_(p16)
    return model16, model32


def run_hf(model, tok, requests, batch: int):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tok, batch_size=batch).loglikelihood(requests, disable_tqdm=True)


def run_fast(model, tok, requests, kernel: str | None = None, **kwargs):
    """(results, FastLM) with PyTorch's kernel choice, or with one SDPA kernel forced."""
    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel

    from evalsuite.lmeval.fast_backend import FastLM

    lm = FastLM(model=model, tokenizer=tok, **kwargs)
    forced = sdpa_kernel([getattr(SDPBackend, kernel)]) if kernel else contextlib.nullcontext()
    with forced:
        return lm.loglikelihood(requests), lm


def describe_differences(name: str, requests, a, b, reference) -> tuple[int, bool]:
    """Print the documents whose picks differ; (how many, all explained by the float16 error)."""
    from evalsuite.lmeval import agreement

    diffs = agreement.choice_differences(requests, a, b, reference)
    docs = agreement.documents_with_choices(requests)
    print(f"choices {name:22s} differ on {len(diffs)} (document, metric) of {docs} documents x 2")
    for d in diffs:
        print(f"    {d.task} doc {d.doc_id} {d.metric}: float32 margin {d.margin:.2e}, "
              f"float16 allowance {d.allowance:.2e} -> {'explained' if d.explained else 'NOT EXPLAINED'}")
    return len(diffs), all(d.explained for d in diffs)


def kernel_errors(model16, tok, requests, reference, device: str) -> dict[str, str]:
    """The fast backend's worst relative error with each SDPA kernel forced (CUDA only)."""
    from evalsuite.lmeval import agreement

    out = {}
    for kernel in KERNELS if device == "cuda" else ():
        try:
            results, _ = run_fast(model16, tok, requests, kernel)
        except RuntimeError as exc:  # e.g. flash attention takes no boolean mask
            out[kernel] = "n/a"
            print(f"fast, {kernel:20s} not usable here: {str(exc).splitlines()[0][:120]}")
            continue
        out[kernel] = f"{agreement.worst_relative_error(results, reference):.2e}"
        print(f"fast, {kernel:20s} worst relative error {out[kernel]}")
    return out


def sync_count(model16, tok, requests) -> str:
    """Synchronising CUDA calls during one loglikelihood (torch's sync debug mode)."""
    import torch

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, lm = run_fast(model16, tok, requests)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    return f"{syncs} synchronising calls over {lm.stats.batches} batches"


def oom_backoff(model16, tok, requests, expected, headroom_gib: float) -> tuple[bool, str]:
    """Real CUDA out-of-memory errors under a memory cap, recovered by halving the token budget."""
    import gc

    import torch

    from evalsuite.lmeval import agreement

    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = torch.cuda.memory_allocated() + headroom_gib * 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total))
    try:
        start = time.perf_counter()
        results, lm = run_fast(model16, tok, requests, token_budget=1 << 24)
        seconds = time.perf_counter() - start
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    error = agreement.worst_relative_error(results, expected)
    line = (f"{lm.stats.oom_retries} out-of-memory retries (cap {cap / 2**30:.1f} GiB), budget 2^24 -> "
            f"{lm.token_budget} tokens, {seconds:.1f} s; vs the uncapped run {error:.2e} relative")
    if lm.stats.oom_retries == 0:
        line += "; no out-of-memory error happened: lower --headroom-gib"
    return lm.stats.oom_retries > 0 and error <= FP16_RTOL, line


def report(requests, fast, hf, reference, lm) -> tuple[float, float]:
    """Print the errors of both backends against the reference; (fast's, hf's) worst relative."""
    from evalsuite.lmeval import agreement

    fast_err, hf_err = (agreement.worst_relative_error(r, reference) for r in (fast, hf))
    print(f"fast backend (default kernels) worst relative error {fast_err:.2e}, "
          f"absolute {agreement.worst_absolute_error(fast, reference):.2e}; {lm.stats.batches} batches")
    print(f"hf backend                     worst relative error {hf_err:.2e}, "
          f"absolute {agreement.worst_absolute_error(hf, reference):.2e}")
    print(f"is_greedy differs: fast vs reference {agreement.greedy_differences(fast, reference)}, "
          f"hf vs reference {agreement.greedy_differences(hf, reference)}, fast vs hf "
          f"{agreement.greedy_differences(fast, hf)} of {len(requests)}")
    return fast_err, hf_err


def parity(args, tok, requests) -> list[str]:
    """Everything; returns the reasons for FAIL (empty: PASS)."""
    model16, model32 = models(SHAPES[args.shape], args.seed, args.device)
    reference = run_hf(model32, tok, requests, args.hf_batch)
    del model32
    hf = run_hf(model16, tok, requests, args.hf_batch)
    fast, lm = run_fast(model16, tok, requests)
    fast_err, hf_err = report(requests, fast, hf, reference, lm)
    n_hf, hf_ok = describe_differences("fast vs hf", requests, fast, hf, reference)
    n_ref, ref_ok = describe_differences("fast vs float32", requests, fast, reference, reference)
    kernels = kernel_errors(model16, tok, requests, reference, args.device)
    failures = []
    if fast_err > hf_err:
        failures.append(f"fast error {fast_err:.2e} > hf's {hf_err:.2e}")
    if fast_err > FP16_RTOL:
        failures.append(f"fast error {fast_err:.2e} > {FP16_RTOL:.2e}")
    if not (hf_ok and ref_ok):
        failures.append("a choice difference the float16 error does not explain")
    failures += [f"{k} error {e}" for k, e in kernels.items() if e != "n/a" and float(e) > FP16_RTOL]
    summary = (f"fast {fast_err:.2e}, hf {hf_err:.2e} worst relative error vs float32; choices differ "
               f"from hf on {n_hf}, from float32 on {n_ref}, all explained: {hf_ok and ref_ok}")
    if kernels:
        summary += "; kernels " + ", ".join(f"{k.split('_')[0].lower()} {e}" for k, e in kernels.items())
    print(summary)
    if args.device == "cuda":
        failures += cuda_checks(args, model16, tok, requests, fast)
    return failures


def cuda_checks(args, model16, tok, requests, fast) -> list[str]:
    again, _ = run_fast(model16, tok, requests)
    print(f"rerun identical: {again == fast}; {sync_count(model16, tok, requests)}")
    ok, line = oom_backoff(model16, tok, requests, fast, args.headroom_gib)
    print(f"out-of-memory backoff: {line}")
    failures = [] if again == fast else ["a rerun gave different numbers"]
    return failures + ([] if ok else ["out-of-memory backoff"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--shape", choices=tuple(SHAPES), default="14m")
    parser.add_argument("--limit", type=int, default=30, help="documents per task (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hf-batch", type=int, default=None, help="default 32 on CUDA, 8 on CPU")
    parser.add_argument("--headroom-gib", type=float, default=1.0, help="CUDA memory beside the model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("highest")  # a float32 reference, not TF32
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.hf_batch = args.hf_batch or (32 if args.device == "cuda" else 8)
    from evalsuite.lmeval.demo import tokenizer

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "no GPU"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {gpu}, torch {torch.__version__}")
    print(f"model: pythia-{args.shape} shape {SHAPES[args.shape]}, random weights (seed {args.seed}), "
          f"float16 on {args.device}; reference: hf in float32; documents per task: {args.limit}")
    start = time.perf_counter()
    requests = build_requests(args.limit)
    print(f"{len(requests)} requests ({time.perf_counter() - start:.1f} s to build)")
    failures = parity(args, tokenizer(), requests)
    if args.device != "cuda":
        print("out-of-memory backoff: skipped (needs --device cuda: CPU memory is not capped)")
    verdict = "PASS" if not failures else "FAIL (" + "; ".join(failures) + ")"
    print(f"float16 parity, pythia-{args.shape} shape on {args.device}: {verdict}; "
          f"{time.perf_counter() - start:.0f} s in all")
    raise SystemExit(0 if not failures else 1)


if __name__ == "__main__":
    main()
