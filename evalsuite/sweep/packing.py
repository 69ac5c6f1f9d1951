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

from evalsuite.catalog.entries import load_catalog
from evalsuite.lmeval import demo

WORKSPACE_GIB = 10.0  # per worker beside the weights: CUDA context, allocator cache, 65,536-token batches
MAX_PER_GPU = 4
DEFAULT_GPU_GIB = 80.0  # assumed where the driver cannot ask a GPU (no CUDA where it looked)
BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
DEMO_SHAPE = "pythia-14m"  # the demo model is a GPT-NeoX of this shape (lmeval/demo.py)


def workers_per_gpu(params: int | None, dtype: str, gpu_memory_gib: float) -> int:
    """How many workers evaluating a model of `params` parameters in `dtype` share one GPU (a model
    of unknown size gets a GPU of its own)."""
    if params is None:
        return 1
    weights_gib = params * BYTES[dtype] / 2**30
    return max(1, min(MAX_PER_GPU, int(gpu_memory_gib // (weights_gib + WORKSPACE_GIB))))


def model_params(model: str) -> int | None:
    """A model's parameters as the catalog gives them (the demo model has pythia-14m's shape);
    None for a model of unknown size."""
    spec = load_catalog().get(DEMO_SHAPE if model == demo.DEMO_NAME else model)
    return spec.params if spec else None


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
