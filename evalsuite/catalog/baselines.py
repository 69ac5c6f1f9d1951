"""Which family a model belongs to and how many parameters it has, for scaling plots.

Pythia's sizes come from registry.MODELS. The OPT and BLOOM baselines (the models the Pythia model
card plots beside Pythia, published in data/pythia-published) have one checkpoint each; their
parameter counts below are the number of distinct parameter tensors' elements of
`OPTForCausalLM` / `BloomForCausalLM` built on the meta device from each paper's architecture
table (layers, heads, width; OPT vocab 50272, BLOOM vocab 250880), tied embeddings counted once.
tests/test_import.py rebuilds them the same way and checks this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite.catalog.pythia import MODELS

OPT_PARAMS = {
    "opt-125m": 125_239_296,
    "opt-350m": 331_196_416,
    "opt-1.3b": 1_315_758_080,
    "opt-2.7b": 2_651_596_800,
    "opt-6.7b": 6_658_473_984,
    "opt-13b": 12_853_473_280,
    "opt-30b": 29_974_540_288,
    "opt-66b": 65_719_701_504,
}

BLOOM_PARAMS = {
    "bloom-560m": 559_214_592,
    "bloom-1b1": 1_065_314_304,
    "bloom-1b7": 1_722_408_960,
    "bloom-3b": 3_002_557_440,
    "bloom-7b1": 7_069_016_064,
}

FAMILIES = ("pythia", "pythia-deduped", "opt", "bloom")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # one of FAMILIES
    params: int


def model_info(name: str) -> ModelInfo | None:
    """Family and total parameters of a known model; None for any other name (e.g. pythia-demo)."""
    if name in MODELS:
        model = MODELS[name]
        return ModelInfo(name, "pythia-deduped" if model.deduped else "pythia", model.params)
    if name in OPT_PARAMS:
        return ModelInfo(name, "opt", OPT_PARAMS[name])
    if name in BLOOM_PARAMS:
        return ModelInfo(name, "bloom", BLOOM_PARAMS[name])
    return None


def single_checkpoint(name: str) -> bool:
    """OPT and BLOOM publish one final checkpoint: their rows have step None."""
    return name in OPT_PARAMS or name in BLOOM_PARAMS
