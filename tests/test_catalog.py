"""The model catalog: the built-in entries, a user's models.yaml, bad files in one line, revision
patterns, checkpoints found in a folder or in the HF cache's refs, and --steps on them."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from evalsuite.catalog import pythia
from evalsuite.catalog.discover import cached_refs, find_checkpoints, folder_checkpoints
from evalsuite.catalog.entries import builtin_catalog, load_catalog
from evalsuite.catalog.models import KNOWN_PATTERNS, ModelSpec, RevisionPattern, name_from_repo, parse_revision
from evalsuite.catalog.steps import parse_steps
from evalsuite.cli import build_parser, main
from evalsuite.errors import EvalsuiteError
from evalsuite.sweep.config import config_from_args

from conftest import CLOSED_PORT_HUB

SIZES = ("14m", "31m", "70m", "160m", "410m")


def test_the_built_in_catalog_holds_pythia_the_polypythias_and_the_baselines():
    catalog = builtin_catalog()
    seeds = [f"pythia-{size}-seed{n}" for size in SIZES for n in range(1, 10)]
    decoupled = [f"pythia-160m-{kind}-seed{n}" for kind in ("data", "weight") for n in (1, 2, 3)]
    assert all(name in catalog for name in seeds + decoupled) and len(catalog.family("polypythias")) == 51
    assert len(catalog.family("pythia")) == 9 and len(catalog.family("pythia-deduped")) == 10  # 31m: deduped only
    assert len(catalog.family("opt")) == 8 and len(catalog.family("bloom")) == 5
    for spec in catalog:
        assert spec.card and spec.card.startswith("https://huggingface.co/"), spec.name
        assert spec.params and spec.repo, spec.name
    for name in seeds + decoupled:  # a seed has its base size's architecture, parameters and schedule
        base = catalog.get(name.split("-seed")[0].removesuffix("-data").removesuffix("-weight"))
        spec = catalog.get(name)
        assert spec.repo == f"EleutherAI/{name}" and spec.params == base.params
        assert (spec.tokens_per_step, spec.steps, spec.main) == (2_097_152, tuple(pythia.ALL_STEPS), 143_000)
    opt = catalog.get("opt-1.3b")
    assert opt.released and opt.steps is None and opt.tokens_at(None) is None
    assert catalog.by_repo("eleutherai/PYTHIA-160M-SEED3").name == "pythia-160m-seed3"


def test_a_users_models_file_adds_entries_and_a_bad_one_is_one_line(tmp_path):
    good = tmp_path / "models.yaml"
    good.write_text("shared:\n  olmo: &olmo {family: olmo, revisions: 'step{step}-tokens{tokens_b}B'}\n"
                    "models:\n  my-run: {path: runs/mine, tokens_per_step: 524288, family: mine}\n"
                    "  olmo-1b: {<<: *olmo, repo: allenai/OLMo-1B-hf, params: 1176764416}\n"
                    "  mini-seed{1..3}: {repo: 'me/{name}', revisions: 'step{step}', checkpoints: [0, 10, 20]}\n")
    catalog = load_catalog(good)
    assert catalog.get("my-run").path == tmp_path / "runs" / "mine" and catalog.get("my-run").tokens_at(10) == 5_242_880
    assert catalog.get("olmo-1b").family == "olmo" and catalog.get("olmo-1b").tokens_at(10, 42_000_000_000) == 42e9
    assert catalog.get("mini-seed3").repo == "me/mini-seed3" and catalog.get("mini-seed2").steps == (0, 10, 20)
    assert "pythia-70m" in catalog  # the built-in entries stay
    assert load_catalog().get("my-run") is None  # the project's models.yaml ships examples only, commented


@pytest.mark.parametrize("text,message", [
    ("models: [a, b]", "'models:' must map model names to their facts"),
    ("models:\n  x: {repo: a/b, color: red}", "model 'x': unknown field 'color'; valid: card, checkpoints,"),
    ("models:\n  x: {repo: a/b, params: -3}", "model 'x': params -3 is not a whole number >= 1"),
    ("models:\n  x: {repo: a/b, tokens_per_step: 1.5}", "model 'x': tokens_per_step 1.5 is not a whole number"),
    ("models:\n  x: {repo: not-a-repo}", "model 'x': repo 'not-a-repo' is not a Hub repository id (ORG/NAME)"),
    ("models:\n  x: {repo: a/b, revisions: 'ckpt-{n}'}", "model 'x': revision pattern 'ckpt-{n}' needs {step}"),
    ("models:\n  x: {family: mine}", "model 'x': say where its checkpoints are: a Hub 'repo' or a local 'path'"),
    ("models:\n  x: {repo: a/b, checkpoints: [0, 5]}", "model 'x': a checkpoint list needs 'revisions'"),
    ("models:\n  x: {repo: a/b, revisions: 'step{step}', checkpoints: [0, 5], main: 7}",
     "model 'x': main 7 is not one of its checkpoints"),
    ("models:\n  ../x: {repo: a/b}", "bad model name '../x'"),
    ("models:\n  pythia-70m: {repo: a/b}", "model 'pythia-70m' is built in; give your entry another name"),
    ("models:\n  x: {repo: a/b\n", "not valid YAML"),
    ("other: 1", "expected a mapping with 'models:'"),
])
def test_bad_models_files_are_one_line_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(EvalsuiteError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bad_models_file_is_one_cli_line(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text("models:\n  x: {repo: a/b, params: lots}")
    assert main(["run", "--model", "x", "--models-file", str(path)]) == 2
    assert capsys.readouterr().err == f"evalsuite: error: {path}: model 'x': params 'lots' is not a whole number >= 1\n"


@pytest.mark.parametrize("pattern,name,step,tokens", [
    ("step{step}", "step143000", 143_000, None),  # Pythia, the PolyPythias
    ("step{step}-tokens{tokens_b}B", "step20000-tokens84B", 20_000, 84 * 10**9),  # OLMo
    ("stage1-step{step}-tokens{tokens_b}B", "stage1-step140000-tokens294B", 140_000, 294 * 10**9),  # OLMo 2
    ("step-{step}-{tokens_b}BT", "step-001000-2BT", 1000, 2 * 10**9),  # Hugging Face's ablation models
])
def test_each_shipped_revision_pattern_reads_step_and_tokens(pattern, name, step, tokens):
    assert pattern in KNOWN_PATTERNS
    found = RevisionPattern(pattern).parse(name)
    assert (found.step, found.tokens) == (step, tokens)
    assert parse_revision(name) == found  # the first known pattern that reads it
    for other in ("main", "step", "step-1", "step99999999999", name + "x", "x" + name):
        assert RevisionPattern(pattern).parse(other) is None
    assert RevisionPattern("step{step}").name_for(7) == "step7"
    assert RevisionPattern(pattern).name_for(7) == ("step7" if pattern == "step{step}" else None)


def test_repo_names_ignore_case():
    assert name_from_repo("Qwen/Qwen2.5-1.5B") == name_from_repo("qwen/qwen2.5-1.5B") == "qwen2.5-1.5b"


def _folders(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text("{}")


def test_checkpoint_folders_of_a_training_run(tmp_path):
    _folders(tmp_path / "a", ["step0", "step100", "step20", "notes"])
    assert folder_checkpoints(tmp_path / "a", "run") == {0: tmp_path / "a/step0", 20: tmp_path / "a/step20",
                                                          100: tmp_path / "a/step100"}
    _folders(tmp_path / "b" / "run", ["checkpoint-500", "checkpoint-1000"])  # the HF Trainer, under <name>/
    assert list(folder_checkpoints(tmp_path / "b", "run")) == [500, 1000]
    _folders(tmp_path / "c", ["step5", "checkpoint-5"])
    with pytest.raises(EvalsuiteError, match="are both step 5: move one away"):
        folder_checkpoints(tmp_path / "c", "run")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.json").write_text("{}")  # a folder that is one model: released, no step
    assert folder_checkpoints(tmp_path / "d", "run") == {None: tmp_path / "d"}
    (tmp_path / "e").mkdir()
    with pytest.raises(EvalsuiteError, match=r"no checkpoints of run in .*e: looked for run/stepN/, run/checkpoint-N/"):
        folder_checkpoints(tmp_path / "e", "run")


def test_steps_on_discovered_checkpoints(tmp_path):
    steps = [0, 500, 1000, 1500, 2000]
    assert parse_steps("all", steps, None) == steps and parse_steps("final", steps, None) == [2000]
    assert parse_steps("500:1500", steps, None) == [500, 1000, 1500]
    assert parse_steps("0:2000:1000,step1500", steps, None) == [0, 1000, 1500, 2000]
    with pytest.raises(EvalsuiteError, match="step 700 is not a checkpoint; valid steps: 0, 500, 1000, 1500, 2000"):
        parse_steps("700", steps, None)
    for word in ("published", "log"):
        with pytest.raises(EvalsuiteError, match=f"--steps {word} names Pythia's checkpoint schedule, which my-run "
                                                 "does not keep; use all, final"):
            parse_steps(word, steps, None, "my-run")
    _folders(tmp_path / "run", [f"checkpoint-{s}" for s in steps])
    args = build_parser().parse_args(["run", "--model", "my-run", "--model-path", str(tmp_path / "run"),
                                      "--steps", "1000:2000", "--tokens-per-step", "1000", "--db", str(tmp_path / "s")])
    (tmp_path / "run" / "checkpoint-1000" / "tokenizer.json").write_text("{}")
    cfg = config_from_args(args)
    assert cfg.steps == {"my-run": [1000, 1500, 2000]}
    assert [c.tokens for c in cfg.checkpoints["my-run"].values()] == [1_000_000, 1_500_000, 2_000_000]
    assert cfg.about["my-run"].checkpoints == 5 and cfg.about["my-run"].tokens_per_step == 1000
    assert cfg.tokenizers["my-run"].local_dir == tmp_path / "run" / "checkpoint-1000"


def test_a_training_run_without_a_tokenizer_is_one_line(tmp_path, capsys):
    _folders(tmp_path / "run", ["step10"])
    assert main(["run", "--model", "my-run", "--model-path", str(tmp_path / "run"), "--db", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evalsuite: error: my-run: no tokenizer in {tmp_path}/run/step10 (tokenizer.json, ")
    assert err.count("\n") == 1


def _cached_repo(hub: Path, repo: str, refs: list[str], files: Path | None = None) -> None:
    """A repository in an HF cache as the Hub client lays it out: refs/<revision> -> snapshots/<sha>/."""
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    for ref in refs:
        sha = hashlib.sha1(f"{repo}@{ref}".encode()).hexdigest()
        if files:
            shutil.copytree(files, folder / "snapshots" / sha)
        (folder / "refs" / ref).write_text(sha)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT_HUB)  # unreachable at once: the cache answers
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return hub


def test_a_hub_suites_checkpoints_come_from_the_cached_refs(offline_cache):
    _cached_repo(offline_cache, "allenai/OLMo-1B-hf", ["main", "step20000-tokens84B", "step0-tokens0B", "pr-1"])
    found = find_checkpoints(ModelSpec("olmo-1b", repo="AllenAI/olmo-1b-HF"), described=False)
    assert found.spec.revisions == "step{step}-tokens{tokens_b}B"  # read by the known patterns
    assert {s: (c.repo_id, c.revision, c.tokens) for s, c in found.checkpoints.items()} == {
        0: ("allenai/OLMo-1B-hf", "step0-tokens0B", 0), 20_000: ("allenai/OLMo-1B-hf", "step20000-tokens84B", 84e9)}
    _cached_repo(offline_cache, "someone/released", ["main"])
    found = find_checkpoints(ModelSpec("released", repo="someone/released"), described=False)
    assert found.checkpoints == {None: found.checkpoints[None]} and found.checkpoints[None].revision == "main"
    assert cached_refs("nobody/nothing") is None
    with pytest.raises(EvalsuiteError, match=r"cannot list the checkpoints of nobody/nothing: the Hub \(http://"
                                             r"127.0.0.1:9\) is unreachable: .*, and the HF cache holds no revision"):
        find_checkpoints(ModelSpec("nothing", repo="nobody/nothing"), described=False)

