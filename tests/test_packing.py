"""The packing rule of Ray sweeps: how many workers share a GPU, and the phases of a mixed sweep."""

from __future__ import annotations

import pytest

from evalsuite.catalog.entries import builtin_catalog
from evalsuite.sweep import packing

PARAMS = {spec.name: spec.params for spec in builtin_catalog()}

SIZES = ["70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"]


def _per_gpu(gib: float, dtype: str = "float16") -> list[int]:
    return [packing.workers_per_gpu(PARAMS[f"pythia-{s}"], dtype, gib) for s in SIZES]


def test_an_80_gib_card_takes_four_small_workers_and_two_of_12b():
    assert _per_gpu(79.6) == [4, 4, 4, 4, 4, 4, 3, 2]  # an H100 80GB reports 79.6 GiB


def test_smaller_cards_and_float32_take_fewer():
    assert _per_gpu(39.4) == [3, 3, 3, 3, 3, 2, 1, 1]  # A100 40GB
    assert _per_gpu(23.6) == [2, 2, 2, 1, 1, 1, 1, 1]  # 24 GB cards
    assert _per_gpu(79.6, "float32") == [4, 4, 4, 4, 4, 3, 2, 1]


def test_a_model_too_big_for_the_card_still_gets_one_worker():
    assert packing.workers_per_gpu(PARAMS["pythia-12b"], "float32", 16.0) == 1


def test_a_mixed_sweep_runs_the_most_packed_models_first():
    models = ["pythia-12b", "pythia-70m", "pythia-6.9b-deduped", "pythia-160m", "pythia-6.9b"]
    phases = packing.phases(models, "float16", 79.6)
    assert [(p.per_gpu, p.models) for p in phases] == [
        (4, ["pythia-70m", "pythia-160m"]), (3, ["pythia-6.9b-deduped", "pythia-6.9b"]), (2, ["pythia-12b"])]


def test_cpu_workers_run_everything_in_one_phase():
    assert packing.phases(["pythia-12b", "pythia-70m"], "float32", None) == [
        packing.Phase(0, ["pythia-12b", "pythia-70m"])]


@pytest.mark.parametrize("model", ["pythia-demo", "pythia-14m"])
def test_the_demo_model_counts_as_pythia_14m_whose_shape_it_has(model):
    assert packing.model_params(model) == PARAMS["pythia-14m"]


def test_a_model_of_unknown_size_gets_a_gpu_of_its_own():
    assert packing.model_params("my-run") is None
    assert packing.phases(["my-run", "pythia-70m"], "float16", 80.0) == [
        packing.Phase(4, ["pythia-70m"]), packing.Phase(1, ["my-run"])]
