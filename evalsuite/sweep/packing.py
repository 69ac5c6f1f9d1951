"""How many Ray sweep workers share one GPU: the packing rule, and the phases it splits a sweep into.

A worker holds one model on its GPU (the next one waits in host memory) plus the fast backend's
working memory, so the rule is memory: a GPU of M GiB takes
    floor(M / (weights + WORKSPACE_GIB))   workers, at least 1 and at most MAX_PER_GPU,
where weights = parameters x bytes per parameter of the dtype. On an 80 GiB card in float16 that
is 4 workers for pythia-70m ... 2.8b, 3 for 6.9b and 2 for 12b; on a 40 GiB card 3 for 70m ...
1.4b and 1 from 6.9b up. Each worker then gets `num_gpus = 1 / workers` from Ray and caps its own
allocations at that share (torch's per-process memory fraction), so a low estimate makes a worker
score in smaller batches (the fast backend halves its batch on out-of-memory), never starve its
neighbours. WORKSPACE_GIB and the cap are estimates, not measured on a GPU: one small model does
not keep a modern GPU busy between its batches (loading, lm-eval's metrics and tokenization run on
the CPU), so a few share one; beyond four, each worker's host memory (its next checkpoint and its
own lm-eval requests) grows faster than the GPU's idle time shrinks.

A sweep over models of different sizes runs in phases, one per workers-per-GPU value, the most
workers per GPU (the smallest models) first, each with workers sized for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite.catalog import pythia

WORKSPACE_GIB = 10.0  # per worker beside the weights: CUDA context, allocator cache, 65,536-token batches
MAX_PER_GPU = 4
DEFAULT_GPU_GIB = 80.0  # assumed where the driver cannot ask a GPU (no CUDA where it looked)
BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


def workers_per_gpu(params: int, dtype: str, gpu_memory_gib: float) -> int:
    """How many workers evaluating a model of `params` parameters in `dtype` share one GPU."""
    weights_gib = params * BYTES[dtype] / 2**30
    return max(1, min(MAX_PER_GPU, int(gpu_memory_gib // (weights_gib + WORKSPACE_GIB))))


def model_params(model: str) -> int:
    """A Pythia model's parameters; the demo model (not one of the suite's models) counts as the smallest."""
    known = pythia.MODELS.get(model)
    return known.params if known else min(m.params for m in pythia.MODELS.values())


@dataclass(frozen=True)
class Phase:
    """Models whose workers share a GPU the same way; `per_gpu` is 0 for CPU workers."""

    per_gpu: int
    models: list[str]


def phases(models: list[str], dtype: str, gpu_memory_gib: float | None) -> list[Phase]:
    """The sweep's models grouped by workers per GPU, most per GPU first; one CPU phase when
    `gpu_memory_gib` is None (CPU workers)."""
    if gpu_memory_gib is None:
        return [Phase(0, list(models))]
    groups: dict[int, list[str]] = {}
    for model in models:
        groups.setdefault(workers_per_gpu(model_params(model), dtype, gpu_memory_gib), []).append(model)
    return [Phase(n, groups[n]) for n in sorted(groups, reverse=True)]
