"""The Pythia registry and the --model / --steps grammar."""

from __future__ import annotations

import pytest

from evalsuite.catalog.pythia import (
    ALL_STEPS,
    LOG_STEPS,
    MODELS,
    PUBLISHED_STEPS,
    parse_models,
    parse_steps,
    tokens_seen,
)
from evalsuite.cli import main
from evalsuite.errors import EvalsuiteError


def test_sixteen_models_with_repo_ids():
    assert len(MODELS) == 16
    assert MODELS["pythia-1.4b-deduped"].repo_id == "EleutherAI/pythia-1.4b-deduped"
    assert sum(m.deduped for m in MODELS.values()) == 8


@pytest.mark.parametrize("name", ["pythia-70m", "pythia-1b", "pythia-2.8b", "pythia-6.9b", "pythia-12b"])
def test_parameter_counts_match_the_architecture(name):
    """The model card's counts equal a GPT-NeoX of that shape, built without allocating weights."""
    import torch
    from transformers import GPTNeoXForCausalLM

    from evalsuite.lmeval.demo import tiny_config

    m = MODELS[name]
    with torch.device("meta"):
        model = GPTNeoXForCausalLM(tiny_config(layers=m.layers, width=m.width, heads=m.heads, vocab=m.vocab))
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    assert total == m.params
    assert total - embeddings == m.non_embedding_params


def test_checkpoints():
    assert len(ALL_STEPS) == 154 and ALL_STEPS[:3] == [0, 1, 2] and ALL_STEPS[-1] == 143_000
    assert len(PUBLISHED_STEPS) == 27 and 13_000 in PUBLISHED_STEPS and 2000 not in PUBLISHED_STEPS
    assert LOG_STEPS == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert tokens_seen(143_000) == 143_000 * 2_097_152


@pytest.mark.parametrize("text,expected", [
    ("all", ALL_STEPS),
    ("published", PUBLISHED_STEPS),
    ("final", [143_000]),
    ("log", LOG_STEPS),
    ("2000,1000,1000", [1000, 2000]),
    ("step3000", [3000]),
    ("0:8", [0, 1, 2, 4, 8]),
    ("1000:5000:2000", [1000, 3000, 5000]),
    ("log,143000", LOG_STEPS + [143_000]),
])
def test_parse_steps(text, expected):
    assert parse_steps(text) == expected


@pytest.mark.parametrize("text,message", [
    ("1500", "step 1500 is not a checkpoint; valid steps: 0, 1, 2, 4 ... 512, then 1000 ... 143000 every 1000"),
    ("0:2000:500", "step 500 is not a checkpoint"),
    ("abc", "bad step 'abc'"),
    ("5000:1000", "bad step range '5000:1000'"),
    ("-5", "bad step '-5'"),
])
def test_bad_steps(text, message):
    with pytest.raises(EvalsuiteError, match=message.replace(".", r"\.")):
        parse_steps(text)


def test_parse_models():
    assert parse_models("pythia-70m, pythia-160m-deduped") == ["pythia-70m", "pythia-160m-deduped"]
    assert parse_models("all") == list(MODELS)
    with pytest.raises(EvalsuiteError, match="unknown model 'pythia-13b'; valid: pythia-70m, "):
        parse_models("pythia-13b")


def test_cli_errors_are_one_line(capsys):
    assert main(["run", "--model", "gpt2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalsuite: error: unknown model 'gpt2'; valid: pythia-70m, pythia-70m-deduped,")
    assert err.count("\n") == 1
    assert main(["run", "--model", "pythia-70m", "--steps", "1500"]) == 2
    assert capsys.readouterr().err == (
        "evalsuite: error: step 1500 is not a checkpoint; valid steps: 0, 1, 2, 4 ... 512, then "
        "1000 ... 143000 every 1000\n")
