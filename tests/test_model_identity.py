"""What a result file's model is, through the catalog, and what the store keeps about each model:
Hub repository ids without regard to case, `main` as the step the entry says it is, released
models with step None (never refused, never an invented step), tokens from the model's
description, and the models table (seeded, migrated, merged, written with each job)."""

from __future__ import annotations

import json

import duckdb
import pytest
from test_import_checks import lm_eval_04

from evalsuite import store
from evalsuite.catalog.entries import builtin_catalog
from evalsuite.io.files import SkipFile
from evalsuite.io.identity import identify
from evalsuite.io.importer import import_paths
from evalsuite.records import Model

import factory


def _rows(frame) -> list[list]:
    """A frame's rows as lists, missing values as None."""
    return frame.astype(object).where(frame.notna(), None).values.tolist()


def _ident(model_args: str, **given):
    return identify({"config": {"model_args": model_args}}, **given)


def test_hub_repository_ids_name_one_model_whatever_their_case():
    for args in ("pretrained=EleutherAI/pythia-160m-seed3,revision=step2000",
                 "pretrained=eleutherai/PYTHIA-160M-SEED3,revision=step2000"):
        ident = _ident(args)
        assert (ident.model, ident.step, ident.tokens) == ("pythia-160m-seed3", 2000, 2000 * 2_097_152)
        assert ident.about.family == "polypythias" and ident.about.params == 162_322_944
    one, two = _ident("pretrained=Qwen/Qwen2.5-1.5B"), _ident("pretrained=qwen/qwen2.5-1.5B")
    assert one.model == two.model == "qwen2.5-1.5b"
    assert one.model_source == "Qwen/Qwen2.5-1.5B" and two.model_source == "qwen/qwen2.5-1.5B"  # as the file says


def test_main_is_the_step_the_entry_says_and_otherwise_a_released_model():
    assert _ident("pretrained=EleutherAI/pythia-70m,revision=main").step == 143_000
    assert _ident("pretrained=EleutherAI/pythia-160m-seed3").step == 143_000  # no revision: lm-eval loaded main
    released = _ident("pretrained=mistralai/Mistral-7B-v0.1")
    assert (released.model, released.step, released.tokens) == ("mistral-7b-v0.1", None, None)
    assert released.about.repo == "mistralai/Mistral-7B-v0.1" and released.about.family == "other"
    opt = _ident("pretrained=facebook/opt-1.3b")
    assert (opt.model, opt.step, opt.tokens, opt.about.params) == ("opt-1.3b", None, None, 1_315_758_080)
    local = _ident("pretrained=/home/me/7B")  # a local folder with no step: its one checkpoint
    assert (local.model, local.step) == ("7B", None)


def test_revisions_of_other_suites_give_step_and_the_tokens_they_name():
    olmo = _ident("pretrained=allenai/OLMo-1B-hf,revision=step20000-tokens84B")
    assert (olmo.model, olmo.step, olmo.tokens) == ("olmo-1b-hf", 20_000, 84 * 10**9)
    trainer = _ident("pretrained=/runs/mine/checkpoint-1500")
    assert (trainer.model, trainer.step, trainer.tokens) == ("mine", 1500, None)  # tokens unknown: None
    with pytest.raises(SkipFile, match=r"revision 'v1.0' is not a checkpoint step \(stepN or stepN-tokensNB\)"):
        _ident("pretrained=allenai/OLMo-1B-hf,revision=v1.0")


def test_an_adapters_base_model_revision_is_not_read():
    """The step of an adapter's file is --step's, whatever its base model's revision: a branch name
    there refused the file, --model and all; a base checkpoint's step was parsed, then set aside."""
    for revision in ("instruct-v2", "step1000", "main"):
        ident = _ident(f"pretrained=EleutherAI/pythia-160m,revision={revision},peft=/runs/lora/checkpoint-300",
                       model="pythia-160m-lora")
        assert (ident.model, ident.step, ident.tokens) == ("pythia-160m-lora", None, None)
        assert ident.model_source == f"EleutherAI/pythia-160m@{revision} + peft=/runs/lora/checkpoint-300"
    given = _ident("pretrained=EleutherAI/pythia-160m,revision=instruct-v2,peft=/runs/lora", model="lora", step=300)
    assert (given.model, given.step) == ("lora", 300)


def test_checkpoint_folders_as_trainers_name_them_give_the_model_and_step():
    """Hugging Face Trainer, DeepSpeed, Megatron and by-hand folder names: the folder above is the
    model, never the checkpoint folder itself."""
    for folder, step in (("checkpoint-1500", 1500), ("global_step1500", 1500), ("iter_0001500", 1500),
                         ("step_1500", 1500), ("step1500", 1500), ("checkpoint_1500", 1500)):
        ident = _ident(f"pretrained=/runs/mine/{folder}")
        assert (ident.model, ident.step) == ("mine", step), folder


SNAPSHOT = "/home/me/.cache/huggingface/hub/models--{}/snapshots/" + "50f5173d932e8e61f858120bcb800b97af589f46"


def test_a_hugging_face_cache_snapshot_is_its_repository_at_that_commit():
    """lm-eval given a cache path: the model is the repository, not the commit hash folder; a
    released model's commit is its one checkpoint; which checkpoint of a suite a commit holds is
    not known from the path, so --step says it."""
    opt = _ident("pretrained=" + SNAPSHOT.format("facebook--opt-1.3b"))
    assert (opt.model, opt.step, opt.about.params) == ("opt-1.3b", None, 1_315_758_080)
    assert opt.model_source == SNAPSHOT.format("facebook--opt-1.3b")  # as the file says
    pythia = "pretrained=" + SNAPSHOT.format("EleutherAI--pythia-160m") + "/"
    with pytest.raises(SkipFile, match="is not a checkpoint step .*; pass --step"):
        _ident(pythia)
    given = _ident(pythia, step=3000)
    assert (given.model, given.step, given.tokens) == ("pythia-160m", 3000, 3000 * 2_097_152)


def test_another_organisations_repository_is_not_the_catalog_model_of_that_name():
    ident = _ident("pretrained=EleutherAI/pythia-v1.1-1b-bf16,revision=step128")  # EleutherAI's own: pythia-1b
    assert (ident.model, ident.step) == ("pythia-1b", 128)
    with pytest.raises(SkipFile, match="someone/pythia-70m would be named 'pythia-70m', which is another model's"):
        _ident("pretrained=someone/pythia-70m,revision=step1000")


def test_imported_released_and_suite_models_are_stored_with_their_tokens_and_description(tmp_path):
    files = {"qwen.json": "pretrained=Qwen/Qwen2.5-1.5B",
             "seed.json": "pretrained=EleutherAI/pythia-70m-seed1,revision=step4",
             "olmo.json": "pretrained=allenai/OLMo-1B-hf,revision=step20000-tokens84B"}
    for name, args in files.items():
        (tmp_path / name).write_text(json.dumps(lm_eval_04(args)))
    db = tmp_path / "s.duckdb"
    report = import_paths([tmp_path], db, seed=False)
    assert report.skipped == [] and len(report.imported) == 3
    stored = store.read_df(db, "SELECT DISTINCT model, step, tokens FROM scores ORDER BY model")
    assert _rows(stored) == [
        ["olmo-1b-hf", 20_000, 84 * 10**9], ["pythia-70m-seed1", 4, 4 * 2_097_152], ["qwen2.5-1.5b", None, None]]
    models = _rows(store.read_df(db, "SELECT model, family, params, repo FROM models WHERE model IN "
                                     "('qwen2.5-1.5b', 'pythia-70m-seed1') ORDER BY model"))
    assert models == [["pythia-70m-seed1", "polypythias", 70_426_624, "EleutherAI/pythia-70m-seed1"],
                      ["qwen2.5-1.5b", "other", None, "Qwen/Qwen2.5-1.5B"]]


def test_a_new_store_knows_the_catalogs_models(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    rows = store.read_df(db, "SELECT * FROM models")
    assert len(rows) == len(builtin_catalog().specs)
    row = rows[rows.model == "pythia-160m-seed3"].iloc[0]
    assert (row.family, row.params, row.tokens_per_step, row.checkpoints, row.main) == (
        "polypythias", 162_322_944, 2_097_152, 154, 143_000)


def test_an_older_store_gains_the_models_table_and_loses_made_up_token_counts(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    store.write_job(db, factory.job("pythia-70m", 1000))
    store.write_job(db, factory.job("mamba2-130m", 1000))
    with duckdb.connect(str(db)) as con:  # as a version before the models table wrote them
        con.execute("DROP TABLE models")
        con.execute("UPDATE scores SET tokens = step * 2097152")
    store.init(db)
    tokens = dict(_rows(store.read_df(db, "SELECT model, tokens FROM scores")))
    assert tokens["pythia-70m"] == 1000 * 2_097_152 and tokens["mamba2-130m"] is None
    assert "pythia-70m" in set(store.read_df(db, "SELECT model FROM models").model)


def test_what_a_store_knows_about_a_model_is_merged_never_forgotten(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    counted = Model("my-run", "mine", params=1234, tokens_per_step=None, checkpoints=5)
    later = Model("my-run", "other", params=None, tokens_per_step=4096, repo=None)
    for about, dtype in ((counted, "float32"), (later, "float16")):  # two evaluations of one checkpoint
        record = factory.job("my-run", 10, run_id=f"run-{dtype}", dtype=dtype)
        record.model = about
        store.write_job(db, record)
    row = store.read_df(db, "SELECT * FROM models WHERE model = 'my-run'").iloc[0]
    assert (row.family, row.params, row.tokens_per_step, row.checkpoints) == ("mine", 1234, 4096, 5)

