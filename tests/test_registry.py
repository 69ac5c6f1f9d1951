"""Pythia's checkpoint schedule and the --model / --steps grammar."""

from __future__ import annotations

import pytest

from evalsuite.catalog import pythia
from evalsuite.catalog.entries import builtin_catalog
from evalsuite.catalog.pythia import ALL_STEPS, LOG_STEPS, PUBLISHED_STEPS
from evalsuite.catalog.steps import parse_steps
from evalsuite.cli import main
from evalsuite.errors import EvalsuiteError
from evalsuite.sweep.config import resolve_models

SUITE = [f"pythia-{size}{suffix}" for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
         for suffix in ("", "-deduped")]


def test_sixteen_models_with_repo_ids():
    catalog = builtin_catalog()
    assert all(name in catalog for name in SUITE)
    assert catalog.get("pythia-1.4b-deduped").repo == "EleutherAI/pythia-1.4b-deduped"
    assert sum(catalog.get(name).family == "pythia-deduped" for name in SUITE) == 8


@pytest.mark.parametrize("name", ["pythia-14m", "pythia-31m", "pythia-70m", "pythia-1b", "pythia-2.8b",
                                  "pythia-6.9b", "pythia-12b"])
def test_parameter_counts_match_the_architecture(name):
    """The catalog's counts equal a GPT-NeoX of that shape, built without allocating weights; its
    non-embedding part is the model card's."""
    import torch
    from transformers import GPTNeoXForCausalLM

    from evalsuite.lmeval.demo import tiny_config

    layers, width, heads, vocab = pythia.SIZES[name.removeprefix("pythia-")]
    with torch.device("meta"):
        model = GPTNeoXForCausalLM(tiny_config(layers=layers, width=width, heads=heads, vocab=vocab))
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    assert total == builtin_catalog().get(name).params
    assert total - embeddings == NON_EMBEDDING[name]


NON_EMBEDDING = {"pythia-14m": 1_189_888, "pythia-31m": 4_739_072, "pythia-70m": 18_915_328,  # the cards' table
                 "pythia-1b": 805_736_448, "pythia-2.8b": 2_517_652_480, "pythia-6.9b": 6_444_163_072,
                 "pythia-12b": 11_327_027_200}


def test_checkpoints():
    assert len(ALL_STEPS) == 154 and ALL_STEPS[:3] == [0, 1, 2] and ALL_STEPS[-1] == 143_000
    assert len(PUBLISHED_STEPS) == 27 and 13_000 in PUBLISHED_STEPS and 2000 not in PUBLISHED_STEPS
    assert LOG_STEPS == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert builtin_catalog().get("pythia-70m").tokens_at(143_000) == 143_000 * 2_097_152


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
    catalog = builtin_catalog()
    found = resolve_models("pythia-70m, pythia-160m-deduped", catalog)
    assert [f.spec.name for f in found] == ["pythia-70m", "pythia-160m-deduped"]
    assert [f.spec.name for f in resolve_models("all", catalog)] == [
        "pythia-14m", "pythia-14m-deduped", "pythia-31m", *SUITE]
    with pytest.raises(EvalsuiteError, match="unknown model 'pythia-13b'; valid: a name in models.yaml"):
        resolve_models("pythia-13b", catalog)


def test_cli_errors_are_one_line(capsys):
    assert main(["run", "--model", "gpt2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalsuite: error: unknown model 'gpt2'; valid: a name in models.yaml or the built-in "
                          "catalog (pythia-70m ... pythia-12b, -deduped,")
    assert err.count("\n") == 1
    assert main(["run", "--model", "pythia-70m", "--steps", "1500"]) == 2
    assert capsys.readouterr().err == (
        "evalsuite: error: step 1500 is not a checkpoint; valid steps: 0, 1, 2, 4 ... 512, then "
        "1000 ... 143000 every 1000\n")
