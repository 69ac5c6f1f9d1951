"""Checkpoint loading in two steps: read into host memory (the prefetch thread), then place on the
device (the main thread, once the previous model is released). What was loaded is recorded (the
commit for Hub revisions); a failed load is one line naming the checkpoint and keeps nothing
alive; and, counted with weak references, a loop that releases each model keeps one placed."""

from __future__ import annotations

import gc
import hashlib
import shutil
import socket

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from evalsuite.errors import EvalsuiteError
from evalsuite.lmeval import backends
from evalsuite.lmeval import (
    checkpoints as loading,  # `checkpoints` is the fixture of tiny checkpoints
)
from evalsuite.lmeval.checkpoints import Checkpoint
from evalsuite.lmeval.demo import tiny_model, tokenizer
from evalsuite.sweep.prefetch import Prefetcher

from conftest import CACHED_STEPS, CLOSED_PORT_HUB
from placement import CountingPlacer


def live_models() -> int:
    gc.collect()
    return sum(issubclass(type(o), PreTrainedModel) for o in gc.get_objects())


def _truncated(folder):  # a download that broke off
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _wrong_shape(folder):  # another model's weights: found only after the model is built
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in weights if k.endswith("mlp.dense_h_to_4h.weight"))
    weights[name] = torch.zeros(3, 3)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small") / "step7"
    tiny_model(seed=7, layers=2, width=64, heads=4).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("damage", [_truncated, _wrong_shape])
def test_a_failed_load_keeps_no_model_alive(tmp_path, small_checkpoint, damage):
    """The error handed over by the prefetcher is held until the sweep reports it: it must not
    hold the frames (and so the partly loaded model) of the load that failed."""
    folder = tmp_path / "step7"
    shutil.copytree(small_checkpoint, folder)
    damage(folder)
    ckpt = Checkpoint("pythia-70m", 7, local_dir=folder)
    before = live_models()
    [(_, error)] = list(Prefetcher(lambda c: loading.load_checkpoint(c, "float32", "cpu"), [ckpt]))
    assert live_models() == before, "the failed load's model is still alive"
    assert isinstance(error, EvalsuiteError) and error.__context__ is None and error.__cause__ is None
    message = str(error)
    assert message.startswith(f"pythia-70m step 7: cannot load {folder}: ") and "\n" not in message


def test_host_load_from_a_folder_then_place(checkpoints):
    ckpt = Checkpoint("pythia-70m", 1000, local_dir=checkpoints / "step1000")
    loaded = loading.load_to_host(ckpt, "float16")
    assert (loaded.checkpoint, loaded.origin, loaded.commit) == (ckpt, "folder", None)
    param = next(loaded.model.parameters())
    assert (param.device.type, param.dtype, loaded.model.training) == ("cpu", torch.float16, False)
    assert loading.place_on_device(loaded, "cpu") is loaded
    loaded.release()
    assert loaded.model is None and loaded.origin == "folder"


@pytest.fixture
def hub_cache(monkeypatch, hf_home):
    """The fake HF cache of conftest as the process's cache, and a Hub that refuses connections."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT_HUB)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_cached_revision_records_its_commit(hub_cache, checkpoints):
    ckpt = Checkpoint("pythia-70m", 2000, repo_id="EleutherAI/pythia-70m", revision="step2000")
    loaded = loading.load_to_host(ckpt, "float32")
    assert loaded.origin == "hf-cache"
    assert loaded.commit == hashlib.sha1(b"step2000").hexdigest()  # conftest's snapshot folder name
    same = loading.load_to_host(Checkpoint("pythia-70m", 2000, local_dir=checkpoints / "step2000"), "float32")
    for a, b in zip(loaded.model.parameters(), same.model.parameters()):
        assert torch.equal(a, b)


def test_uncached_revision_with_the_hub_unreachable_is_one_line(hub_cache):
    ckpt = Checkpoint("pythia-70m", 4000, repo_id="EleutherAI/pythia-70m", revision="step4000")
    with pytest.raises(EvalsuiteError) as info:
        loading.load_to_host(ckpt, "float32")
    message = str(info.value)
    assert message.startswith("cannot load EleutherAI/pythia-70m revision step4000: the Hub")
    assert "unreachable" in message and "\n" not in message


@pytest.fixture
def no_network(monkeypatch, hub_cache):
    """The fake HF cache, and every name lookup and connection this process tries refused and
    recorded."""
    tried: list[str] = []

    def refuse(host, *args, **kwargs):
        tried.append(str(host))
        raise OSError(f"no network in this test ({host})")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return tried


def test_a_cached_revisions_tokenizer_loads_without_the_network(no_network):
    # transformers asks the Hub for each tokenizer file first and, the Hub unreachable, retries
    # each with backoff for minutes before it reads the cache (a cached non-Pythia model's run
    # hung there); the weights were already read from the cache with no network at all
    ckpt = Checkpoint("pythia-70m", 2000, repo_id="EleutherAI/pythia-70m", revision="step2000")
    tok = backends.load_model_tokenizer(ckpt)
    assert tok("Hello world").input_ids == tokenizer()("Hello world").input_ids
    assert no_network == []


def _loop(checkpoints, placer, release: bool) -> list:
    """A sweep loop in miniature: prefetch to host, place, score, then release the model or not."""
    from lm_eval.api.instance import Instance

    from evalsuite.lmeval.fast_backend import FastLM

    tok, kept = tokenizer(), []
    requests = [Instance("loglikelihood", {}, ("Question: why? Answer:", " because"), 0)]
    ckpts = [Checkpoint("pythia-70m", s, local_dir=checkpoints / f"step{s}") for s in CACHED_STEPS]
    for _, loaded in Prefetcher(lambda c: loading.load_to_host(c, "float32"), ckpts):
        placed = placer(loaded, "cpu")
        lm = FastLM(model=placed.model, tokenizer=tok)
        lm.loglikelihood(requests)
        if release:
            placed.release()
            del lm, loaded, placed  # the LM holds the model too
        else:
            kept.append(lm)  # e.g. LMs kept for a summary: every model stays alive
    return kept


def test_a_loop_that_releases_each_model_places_one_at_a_time(checkpoints):
    placer = CountingPlacer()
    _loop(checkpoints, placer, release=True)
    assert placer.placed == len(CACHED_STEPS) and placer.peak == 1


def test_the_counter_sees_models_kept_alive(checkpoints):
    """The same loop, not releasing: the counter notices (it is a test that can fail)."""
    placer = CountingPlacer()
    kept = _loop(checkpoints, placer, release=False)
    assert placer.peak == len(CACHED_STEPS) == len(kept)
