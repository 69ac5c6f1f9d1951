"""The fast backend on architectures other than GPT-NeoX: lm-eval's `hf` numbers, or a refusal.

For every architecture lmeval/architectures.py lists, a tiny random model (tests/tiny_models.py:
short context so lm-eval truncates, short sliding windows where the architecture has them) with
a tokenizer of its family is scored through a sweep's path (prepared requests, evaluate.respond
and collect) by both backends: every loglikelihood within the float32 tolerance of
test_fast_backend, every is_greedy, acc and acc_norm equal. Any other architecture is refused by
the fast backend, and a sweep scores it with lm-eval's `hf` backend, says so once and records it.
"""

from __future__ import annotations

import re

import pytest
import tiny_models
import torch
from test_fast_backend import FP32_RTOL, compare
from tiny_models import REFUSED, REFUSED_SETTINGS, SUPPORTED

from evalsuite.lmeval import architectures, backends, evaluate
from evalsuite.lmeval.fast_backend import FastLM, TokenCache, UnsupportedArchitecture
from evalsuite.records import Run

LIMIT = 3  # documents per task


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one torch thread is fastest, and two stall each other on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prepared():
    """A sweep's requests for the five tasks, zero-shot: built once, scored by every model."""
    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.lmeval.definitions import task_configs
    from evalsuite.lmeval.requests import prepare

    suite = load_tasks()
    return prepare(task_configs(suite.select(None), suite.data_dir, 0), 0, LIMIT, "local")


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    made: dict = {}

    def get(family: str):
        if family not in made:
            made[family] = tiny_models.tokenizer(family, tmp_path_factory.mktemp(family))
        return made[family]

    return get


def _score(model, tok, backend: str, prepared):
    """What a sweep stores for this model: each request's (loglikelihood, is_greedy), and the record."""
    lm = backends.make_lm(model, tok, backend, "8")
    if backend == "fast":
        lm.token_cache = TokenCache()  # trained tokenizers are not the shared caches' business
    evaluate.respond(lm, prepared)
    answers = [inst.resps[0] for inst in prepared.instances]
    return answers, evaluate.collect(prepared, Run(run_id="r", source="local", model="m", step=1))


def test_the_supported_list_is_what_these_tests_cover():
    assert set(SUPPORTED) == set(architectures.SUPPORTED)


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_fast_matches_hf(name, prepared, tokenizers):
    arch = SUPPORTED[name]
    tok = tokenizers(arch.tokenizer)
    model = tiny_models.build(arch, tok)
    assert type(model).__name__ == name
    fast, fast_record = _score(model, tok, "fast", prepared)
    hf, hf_record = _score(model, tok, "hf", prepared)
    _, docs = compare(prepared.instances, fast, hf, FP32_RTOL)
    margins = [m for _, _, m in docs.values() if m is not None]
    worst_abs = max(abs(f[0] - h[0]) for f, h in zip(fast, hf))
    # equal choices are not luck: an argmax can differ only where a margin is below twice the
    # largest deviation; 10x keeps a factor of 5 (100x failed on Gemma's random init under
    # transformers 5.25 by chance: its closest margin is 78x, with no deviation grown)
    assert min(margins) > 10 * worst_abs, (min(margins), worst_abs)
    values = lambda record, metric: {(s.task, s.value, s.stderr) for s in record.scores if s.metric == metric}  # noqa: E731
    for metric in ("acc", "acc_norm"):
        assert values(fast_record, metric) == values(hf_record, metric)
    assert [(s.task, s.doc_id, s.correct, s.correct_norm, s.is_greedy) for s in fast_record.samples] == \
        [(s.task, s.doc_id, s.correct, s.correct_norm, s.is_greedy) for s in hf_record.samples]


def test_the_models_truncate_and_window_what_they_are_given(prepared, tokenizers):
    """The parity above covers HFLM's truncation and the sliding windows only if the documents
    reach them: some requests are longer than the context, some packed rows longer than a window."""
    lm = FastLM(tiny_models.build(SUPPORTED["MistralForCausalLM"], tokenizers("llama")), tokenizers("llama"),
                token_cache=TokenCache())
    encoded = lm.token_cache.encode(lm.tokenizer, [tuple(i.args) for i in prepared.instances])
    lengths = [len(c) + len(x) - 1 for c, x in encoded]
    assert lm.traits.max_length == tiny_models.CONTEXT and lm.traits.window == tiny_models.WINDOW
    assert max(lengths) > tiny_models.CONTEXT and min(lengths) < tiny_models.WINDOW
    rows, _, _ = lm.plan(prepared.instances)
    assert any(len(r.scored) > 1 for r in rows) and any(len(r.scored) == 1 and len(r.tokens) >= lm.traits.window
                                                         for r in rows)


@pytest.mark.parametrize("family", ["gpt-neox", "byte-level", "byte-level-bos", "no-bos", "llama", "gemma"])
def test_tokens_match_hflm_in_every_tokenizer_family(family, prepared, tokenizers):
    """TokenCache encodes as HFLM does with each family's BOS and prefix-space rules, edge cases
    included: an empty context (the BOS, or the EOS where there is no BOS, is the context), a text
    that starts with that token, trailing spaces."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    class Capture(HFLM):
        def _loglikelihood_tokens(self, requests, **kwargs):
            return [(tuple(c), tuple(x)) for _, c, x in requests]

    tok = tokenizers(family)
    prefix = tok.decode(tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id)
    pairs = [tuple(i.args) for i in prepared.instances] + [
        ("", "Hello world"), ("", f"{prefix}tail"), (f"{prefix}Q: why?", " because"),
        ("Answer:  ", "yes "), ("a b\n\n", "c"), ("x" * 3, "")]
    hflm = Capture(pretrained=tiny_models.build(SUPPORTED["LlamaForCausalLM"], tok), tokenizer=tok, batch_size=1)
    reqs = [Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)]
    assert TokenCache().encode(tok, pairs) == hflm.loglikelihood(reqs, disable_tqdm=True)


class RemoteLlama(torch.nn.Module):
    """Stands for a model class from a repository's own code (trust_remote_code), not transformers'."""


RemoteLlama.__name__ = "LlamaForCausalLM"


@pytest.mark.parametrize("case", [*REFUSED, *REFUSED_SETTINGS, "remote code"])
def test_other_architectures_are_refused_and_scored_by_hf(case, tokenizers):
    tok = tokenizers("byte-level")
    if case == "remote code":
        model, named = RemoteLlama(), "LlamaForCausalLM (not one of the architectures"
    else:
        model = tiny_models.build({**REFUSED, **REFUSED_SETTINGS}[case], tok)
        named = case if case in REFUSED_SETTINGS else f"{case} (not one of the architectures"
    with pytest.raises(UnsupportedArchitecture, match=re.escape(f"the fast backend cannot score {named}")):
        FastLM(model, tok)
    choice = backends.choose_backend(model, "fast")
    assert choice.backend == "hf" and choice.note.startswith(f"the fast backend does not score {named}")
    assert backends.choose_backend(model, "hf") == backends.BackendChoice("hf")


def test_a_sweep_scores_an_unsupported_architecture_with_hf_says_so_once_and_records_it(tmp_path, capsys):
    """A real tiny Mamba (a state-space model: no attention mask to take) with its real tokenizer
    (GPT-NeoX-20B's) at two checkpoints, through `evalsuite run --backend fast` (the default):
    one line says it is scored with lm-eval's hf backend, both runs record `hf`, and the scores
    are lm-eval's own for that model. (It runs under a catalog name, as `--model-path` needs one.)"""
    from evalsuite import store
    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.cli import main
    from evalsuite.lmeval import definitions, results

    tok = backends.load_tokenizer()
    for step in (1000, 2000):
        model = tiny_models.build(REFUSED["MambaForCausalLM"], tok, seed=step)
        model.save_pretrained(tmp_path / "mamba" / f"step{step}")
    db = tmp_path / "s.duckdb"
    status = main(["run", "--model", "pythia-70m", "--model-path", str(tmp_path / "mamba"), "--steps", "1000,2000",
                   "--tasks", "piqa", "--limit", "3", "--db", str(db)])
    out = capsys.readouterr().out
    assert status == 0
    assert [line for line in out.splitlines() if "backend" in line and "to evaluate" not in line] == [
        "pythia-70m: the fast backend does not score MambaForCausalLM (not one of the architectures its parity "
        "tests cover) exactly: scored with lm-eval's hf backend instead"]
    runs = store.read_df(db, "SELECT step, backend FROM runs WHERE source = 'local' ORDER BY step")
    assert runs.values.tolist() == [[1000, "hf"], [2000, "hf"]]
    suite = load_tasks()
    configs = definitions.task_configs(suite.select(["piqa"]), suite.data_dir, 0)
    model = tiny_models.build(REFUSED["MambaForCausalLM"], tok, seed=2000)
    want = {(m.task, m.metric): m.value for m in results.parse_results(
        backends.simple_evaluate(backends.make_lm(model, tok, "hf", "auto"), configs, 0, 3))}
    stored = store.read_df(db, "SELECT task, metric, value FROM scores WHERE source = 'local' AND step = 2000")
    assert {(r.task, r.metric): r.value for r in stored.itertuples()} == want
