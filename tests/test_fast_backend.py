"""The fast backend gives lm-eval's `hf` numbers: same tokens, same loglikelihoods, same choices.

Real task data (small subsets of all five tasks), the real Pythia tokenizer, tiny GPT-NeoX
models with random weights: one at Pythia's init scale, one with weights scaled up so output
distributions are peaked and choice margins are far above numerical noise (ties unlikely).
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict

import pytest
import torch

from evalsuite.lmeval import agreement
from evalsuite.lmeval.demo import tiny_model, tokenizer
from evalsuite.lmeval.fast_backend import (
    FastLM,
    TokenCache,
    is_out_of_memory,
    shared_token_cache,
)

LIMIT = 8  # documents per task
FP32_RTOL = 1e-4
BF16_RTOL = 1e-2  # measured worst 6.1e-3 on CPU (hf takes log-softmax in bf16); see benchmarks/README.md
# float16 against a float32 reference of the same weights: at most one float16 rounding (2^-11).
# The fast backend keeps its log-softmax and sums in float32: measured 4.4e-5 to 8.0e-5; hf rounds
# its per-token log-probs and sums to float16: 7.3e-4 to 8.9e-4 (benchmarks/README.md, "float16")
FP16_RTOL = 2.0 ** -11


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


@pytest.fixture(scope="module")
def instances():
    """lm-eval's own loglikelihood requests for the first LIMIT documents of every task."""
    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.lmeval.definitions import lm_eval_requests

    suite = load_tasks()
    return lm_eval_requests(suite.select(None), suite.data_dir, LIMIT)


def hf_lm(model, tok):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tok, batch_size=8)


def peaked_model(seed: int = 1):
    """Random weights scaled x8: sharp next-token distributions, so choices rarely tie."""
    model = tiny_model(seed=seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return model


def choices_by_doc(instances, results):
    """(task, doc) -> (argmax of loglikelihood, argmax of per-byte loglikelihood, margin)."""
    docs = defaultdict(list)
    for inst, (ll, _) in zip(instances, results):
        docs[(inst.task_name, inst.doc_id)].append((ll, len(inst.args[1].encode())))
    out = {}
    for key, rows in docs.items():
        lls = torch.tensor([ll for ll, _ in rows], dtype=torch.float64)
        norm = lls / torch.tensor([n for _, n in rows], dtype=torch.float64)
        top = lls.sort(descending=True).values
        out[key] = (int(lls.argmax()), int(norm.argmax()), float(top[0] - top[1]) if len(rows) > 1 else None)
    return out


def compare(instances, fast, hf, rtol):
    rel = [abs(f[0] - h[0]) / abs(h[0]) for f, h in zip(fast, hf)]
    assert max(rel) <= rtol, f"worst relative loglikelihood difference {max(rel):.2e} > {rtol}"
    assert [f[1] for f in fast] == [h[1] for h in hf], "is_greedy differs"
    fast_docs, hf_docs = choices_by_doc(instances, fast), choices_by_doc(instances, hf)
    assert {k: v[:2] for k, v in fast_docs.items()} == {k: v[:2] for k, v in hf_docs.items()}
    return max(rel), hf_docs


def test_fast_matches_hf_random_weights(tok, instances):
    model = tiny_model(seed=0)
    fast = FastLM(model=model, tokenizer=tok, token_cache=TokenCache()).loglikelihood(instances)
    hf = hf_lm(model, tok).loglikelihood(instances, disable_tqdm=True)
    compare(instances, fast, hf, FP32_RTOL)


def test_fast_matches_hf_peaked_model_with_clear_margins(tok, instances):
    model = peaked_model()
    fast = FastLM(model=model, tokenizer=tok).loglikelihood(instances)
    hf = hf_lm(model, tok).loglikelihood(instances, disable_tqdm=True)
    worst, docs = compare(instances, fast, hf, FP32_RTOL)
    margins = [m for _, _, m in docs.values() if m is not None]
    worst_abs = max(abs(f[0] - h[0]) for f, h in zip(fast, hf))
    # the same choices are not luck: every margin dwarfs the numerical difference
    assert min(margins) > 100 * worst_abs, (min(margins), worst_abs)


def test_bf16_within_stated_tolerance(tok, instances):
    model = tiny_model(seed=2).to(torch.bfloat16)
    subset = [i for i in instances if i.task_name != "sciq"]  # keep bf16 (slow on CPU) short
    fast = FastLM(model=model, tokenizer=tok).loglikelihood(subset)
    hf = hf_lm(model, tok).loglikelihood(subset, disable_tqdm=True)
    rel = max(abs(f[0] - h[0]) / abs(h[0]) for f, h in zip(fast, hf))
    assert rel <= BF16_RTOL


def test_float16_is_no_worse_than_hf_against_float32(tok, instances):
    """CPU float16 has GPU float16's rounding. The reference: lm-eval's own `hf` on the same
    (float16-rounded) weights in float32. Choices may differ from hf's only on near-ties that the
    float16 error explains. (CPU float16 is slow: the first 4 documents of each task.)"""
    subset = [i for i in instances if i.doc_id < 4]
    model = tiny_model(seed=0).to(torch.float16)
    reference = hf_lm(copy.deepcopy(model).float(), tok).loglikelihood(subset, disable_tqdm=True)
    fast = FastLM(model=model, tokenizer=tok).loglikelihood(subset)
    hf = hf_lm(model, tok).loglikelihood(subset, disable_tqdm=True)
    fast_error = agreement.worst_relative_error(fast, reference)
    assert fast_error <= FP16_RTOL
    assert fast_error <= agreement.worst_relative_error(hf, reference)
    for a, b in ((fast, hf), (fast, reference)):
        differences = agreement.choice_differences(subset, a, b, reference)
        assert all(d.explained for d in differences), differences


def test_scores_do_not_depend_on_the_default_dtype(tok, instances):
    """transformers sets torch's process-wide default dtype to float16 while it builds a float16
    model; nothing the fast backend creates may follow it."""
    model, subset = tiny_model(seed=0), instances[:80]
    want = FastLM(model=model, tokenizer=tok).loglikelihood(subset)
    torch.set_default_dtype(torch.float16)
    try:
        got = FastLM(model=model, tokenizer=tok).loglikelihood(subset)
    finally:
        torch.set_default_dtype(torch.float32)
    assert got == want


def test_scoring_while_another_thread_loads_a_float16_model(tok, instances, tmp_path):
    """The sweep's situation: the prefetch thread loads the next checkpoint in float16 while this
    one is scored. (Before every tensor had an explicit dtype, this failed on the third pass.)"""
    from transformers import AutoModelForCausalLM

    tiny_model(seed=5, layers=2, width=64, heads=4).save_pretrained(tmp_path / "next")
    model, subset = tiny_model(seed=0), [i for i in instances if i.task_name == "arc_easy"]
    want = FastLM(model=model, tokenizer=tok).loglikelihood(subset)
    loaded, stop = threading.Event(), threading.Event()

    def prefetch():
        while not stop.is_set():
            AutoModelForCausalLM.from_pretrained(tmp_path / "next", dtype=torch.float16)
            loaded.set()

    thread = threading.Thread(target=prefetch, daemon=True)
    thread.start()
    try:
        assert loaded.wait(timeout=300), "the loading thread never finished a load"
        for _ in range(20):  # each pass overlaps several loads
            assert FastLM(model=model, tokenizer=tok).loglikelihood(subset) == want
    finally:
        stop.set()
        thread.join()
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.parametrize("message, retry", [
    ("CUDA error: out of memory", True),
    ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", True),
    ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", True),
    ("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED", True),
    ("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasGemmEx(handle, ...)`", False),
    ("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a "
     "non-contiguous input.", False),
    ("CUDA error: an illegal memory access was encountered", False),
    ("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x3)", False),
])
def test_out_of_memory_is_recognised_in_cuda_library_errors(message, retry):
    """The messages as ATen/cuda/Exceptions.h formats them (RuntimeError): a smaller batch helps
    when cuBLAS or cuDNN could not allocate, not when a kernel failed."""
    assert is_out_of_memory(RuntimeError(message)) is retry


def test_out_of_memory_is_recognised_in_real_allocator_errors():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    with pytest.raises(RuntimeError) as host:
        torch.empty(2**60, dtype=torch.uint8)  # more than any address space: the host allocator fails
    assert is_out_of_memory(host.value)


def test_evaluate_samples_match_per_document(tok):
    """Through lm-eval's evaluator: the same acc / acc_norm on every logged document."""
    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.lmeval.backends import make_lm, simple_evaluate
    from evalsuite.lmeval.definitions import task_configs

    suite = load_tasks()
    configs = task_configs(suite.select(None), suite.data_dir, 0)
    model = peaked_model(seed=3)
    fast = simple_evaluate(make_lm(model, tok, "fast", "auto"), configs, shots=0, limit=4)["samples"]
    hf = simple_evaluate(make_lm(model, tok, "hf", "8"), configs, shots=0, limit=4)["samples"]
    assert fast.keys() == hf.keys() and len(fast) == 5
    for task in hf:
        assert [s["doc_id"] for s in fast[task]] == [s["doc_id"] for s in hf[task]]
        for a, b in zip(fast[task], hf[task]):
            for metric in ("acc", "acc_norm"):
                assert a.get(metric) == b.get(metric), (task, a["doc_id"], metric)


def test_out_of_memory_shrinks_the_batch(tok, instances):
    """A batch over a (simulated) memory limit is retried smaller, with the same results."""
    model, limit = tiny_model(seed=0), 2000

    class Small(FastLM):
        def _run_batch(self, rows):
            if len(rows) * len(rows[0].tokens) > limit:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return super()._run_batch(rows)

    subset = instances[: len(instances) // 2]
    small = Small(model=model, tokenizer=tok, token_budget=65536)
    got = small.loglikelihood(subset)
    assert small.stats.oom_retries > 0 and small.token_budget < 65536
    want = FastLM(model=model, tokenizer=tok, token_budget=limit).loglikelihood(subset)
    assert [g[1] for g in got] == [w[1] for w in want]
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-5)  # float noise only


def test_prefix_is_encoded_once_and_logits_only_where_scored(tok, instances):
    lm = FastLM(model=tiny_model(), tokenizer=tok)
    lm.loglikelihood(instances)
    full = sum(len(c) + len(x) - 1 for c, x in TokenCache().encode(tok, [tuple(i.args) for i in instances]))
    assert lm.stats.tokens < 0.6 * full  # SciQ's paragraph and the questions once per document
    encoded = lm.token_cache.encode(tok, [tuple(i.args) for i in instances])
    assert lm.stats.scored_positions == sum(len(x) for _, x in encoded)


def test_token_cache_is_shared_across_checkpoints(tok, instances):
    first = FastLM(model=tiny_model(seed=0), tokenizer=tok)
    first.loglikelihood(instances[:50])
    second = FastLM(model=tiny_model(seed=1), tokenizer=tok)
    assert second.token_cache is first.token_cache is shared_token_cache(tok)
    size = len(second.token_cache)
    second.loglikelihood(instances[:50])
    assert len(second.token_cache) == size


def test_long_context_is_left_truncated_like_hf(tok):
    from lm_eval.api.instance import Instance

    model = tiny_model(seed=0)
    lm = FastLM(model=model, tokenizer=tok, token_cache=TokenCache())
    assert lm.traits.max_length == 2048  # Pythia's context, lm-eval's limit for it
    context = "word " * (lm.traits.max_length + 100)
    reqs = [Instance("loglikelihood", {}, (context, " end"), 0, metadata=("t", 0, 1)),
            Instance("loglikelihood", {}, (context, " stop here"), 1, metadata=("t", 0, 1))]
    fast = lm.loglikelihood(reqs)
    hf = hf_lm(model, tok).loglikelihood(reqs, disable_tqdm=True)
    compare(reqs, fast, hf, FP32_RTOL)


def test_rolling_and_generation_say_they_are_not_supported(tok):
    lm = FastLM(model=tiny_model(), tokenizer=tok)
    with pytest.raises(NotImplementedError, match="loglikelihood_rolling"):
        lm.loglikelihood_rolling([])
    with pytest.raises(NotImplementedError, match="generate"):
        lm.generate_until([])


def test_not_argmax_is_argmax_exactly_ties_included():
    """The CPU shortcut (maximum first, argmax only where the target is a maximum) gives what
    `argmax != target` gives, including ties, where argmax takes the first maximum."""
    from evalsuite.lmeval.fast_backend import _not_argmax

    gen = torch.Generator().manual_seed(0)
    logprobs = torch.randn(64, 50, generator=gen)
    logprobs[:8, 10] = logprobs[:8, 30] = logprobs[:8].amax(dim=-1) + 1  # a tie for the maximum
    targets = torch.randint(0, 50, (64,), generator=gen)
    targets[:4] = torch.tensor([10, 30, 10, 30])  # the first of the tie (greedy), the second (not)
    targets[8:24] = logprobs[8:24].argmax(dim=-1)  # plain maxima
    at_target = logprobs.gather(1, targets[:, None])[:, 0]
    got = _not_argmax(logprobs, targets, at_target)
    assert torch.equal(got, logprobs.argmax(dim=-1) != targets)
    assert got[:4].tolist() == [False, True, False, True] and not got[8:24].any() and got[24:].any()
