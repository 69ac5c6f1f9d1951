"""Requests built once per sweep score every checkpoint exactly as a fresh lm-eval run does.

The reference is lm-eval's own `simple_evaluate` (through backends.simple_evaluate), run afresh for each
checkpoint; the prepared path builds the tasks' requests once and reuses them for checkpoints
with different weights. Every score (value, stderr, n) and every per-document sample
(loglikelihoods, is_greedy, correctness, target) must be identical, zero- and few-shot; and the
documents a sweep stores are the ones lm-eval's own samples describe.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from evalsuite.catalog.tasks import load_tasks
from evalsuite.lmeval import backends, definitions, evaluate, results
from evalsuite.lmeval.demo import tiny_model, tokenizer
from evalsuite.lmeval.requests import prepare
from evalsuite.records import Run

LIMIT = 12


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


def _configs(names, shots):
    suite = load_tasks()
    return definitions.task_configs(suite.select(names), suite.data_dir, shots)


def _fresh(model, tok, configs, shots, backend="fast"):
    """What a separate lm-eval run on this checkpoint stores: scores and samples."""
    raw = backends.simple_evaluate(backends.make_lm(model, tok, backend, "8"), configs, shots, LIMIT)
    metrics = results.parse_results(raw)
    samples = results.parse_samples(raw["samples"], model="m", step=1, shots=shots, run_id="r")
    return metrics, samples


def _prepared(model, tok, prepared, backend="fast"):
    evaluate.respond(backends.make_lm(model, tok, backend, "8"), prepared)
    record = evaluate.collect(prepared, Run(run_id="r", source="local", model="m", step=1))
    return record


def _same(record, metrics, samples):
    got = {(s.task, s.metric): (s.value, s.stderr, s.n, s.shots) for s in record.scores}
    want = {(m.task, m.metric): (m.value, m.stderr, m.n, m.shots) for m in metrics}
    assert got == want
    key = lambda s: (s.task, s.doc_id)  # noqa: E731
    assert sorted(record.samples, key=key) == sorted(samples, key=key)


@pytest.mark.parametrize("names,shots", [(None, 0), (["arc_easy", "lambada_openai"], 2)])
def test_prepared_requests_equal_a_fresh_lm_eval_run_per_checkpoint(tok, names, shots):
    configs = _configs(names, shots)
    prepared = prepare(configs, shots, LIMIT, "local")
    for seed in (0, 1, 2):  # different weights: nothing may carry over between checkpoints
        model = tiny_model(seed=seed)
        record = _prepared(model, tok, prepared)
        _same(record, *_fresh(model, tok, configs, shots))
    assert len(record.samples) == len(prepared.tasks) * LIMIT


@pytest.mark.parametrize("names,shots", [(None, 0), (["arc_easy", "lambada_openai"], 2)])
def test_documents_are_what_lm_eval_logs_about_each(tok, names, shots):
    """The data's doc_hash, the prompt of prompt_hash, every request's (context, continuation),
    and the right choice: the one lm-eval's own acc rewards (WinoGrande included, whose logged
    target is not an index)."""
    configs = _configs(names, shots)
    documents = {(d.task, d.doc_id): d for d in prepare(configs, shots, LIMIT, "local").documents()}
    raw = backends.simple_evaluate(backends.make_lm(tiny_model(seed=3), tok, "fast", "8"), configs, shots, LIMIT)
    assert len(documents) == LIMIT * len(raw["samples"])
    for task, lines in raw["samples"].items():
        for line in lines:
            doc = documents[(task, line["doc_id"])]
            assert (doc.task, doc.shots, doc.fingerprint) == (task, shots, line["doc_hash"])
            assert hashlib.sha256(doc.prompt.encode()).hexdigest() == line["prompt_hash"]
            contexts = doc.contexts or [doc.prompt] * len(doc.choices)
            assert list(zip(contexts, doc.choices)) == [tuple(args) for args in line["arguments"]]
            lls = [resp[0] for resp in line["filtered_resps"]]
            if len(lls) > 1:
                assert line["acc"] == (lls.index(max(lls)) == doc.target)
            else:
                assert doc.target is None  # LAMBADA: one continuation, the right word
    logged = {(d.task, d.doc_id): d for d in results.parse_documents(raw["samples"], shots=shots)}
    assert logged.keys() == documents.keys()
    # read from lm-eval's samples as `evalsuite import` reads them: the same documents, WinoGrande's
    # right choice included (its samples log no index: it follows from acc and the loglikelihoods)
    assert logged == documents
    samples = results.parse_samples(raw["samples"], model="m", step=0, shots=shots, run_id="r")
    assert [s.target for s in samples] == [documents[(s.task, s.doc_id)].target for s in samples]


def test_hf_backend_through_prepared_requests(tok):
    configs = _configs(["piqa", "lambada_openai"], 0)
    prepared = prepare(configs, 0, LIMIT, "local")
    model = tiny_model(seed=5)
    _same(_prepared(model, tok, prepared, "hf"), *_fresh(model, tok, configs, 0, "hf"))


def test_responses_of_the_last_checkpoint_do_not_leak(tok):
    """A backend that fails midway leaves no stale answers behind for the next checkpoint."""
    prepared = prepare(_configs(["sciq"], 0), 0, 4, "local")

    class Broken:
        def loglikelihood(self, requests):
            return [(-1.0, False)] * (len(requests) - 1)

    _prepared(tiny_model(seed=0), tok, prepared)
    with pytest.raises(RuntimeError, match="answered"):
        evaluate.respond(Broken(), prepared)
    assert all(inst.resps == [] and inst.filtered_resps == {} for inst in prepared.instances)


def test_subset_keeps_the_prepared_tasks(tok):
    prepared = prepare(_configs(["piqa", "sciq"], 0), 0, 3, "local")
    only = prepared.subset(["sciq"])
    assert [t.name for t in only.tasks] == ["sciq"] and only.tasks[0] is prepared.tasks[1]
    with pytest.raises(ValueError, match="winogrande"):
        prepared.subset(["winogrande"])


def test_bootstrap_is_lm_evals_bit_for_bit(monkeypatch):
    from lm_eval.api import metrics as lm_metrics

    monkeypatch.setenv("DISABLE_MULTIPROC", "1")  # lm-eval's own single-process loop
    rng = random.Random(7)
    for n, iters in ((5, 1000), (300, 2000)):
        xs = [-abs(rng.gauss(3, 2)) for _ in range(n)]
        want = lm_metrics.bootstrap_stderr(lm_metrics.perplexity, xs, iters)
        assert evaluate.bootstrap_stderr(lm_metrics.perplexity, xs, iters) == want


def test_task_files_are_found_as_lm_evals_index_finds_them():
    from lm_eval.tasks import TaskManager

    index = TaskManager().task_index
    for name in ("lambada_openai", "piqa", "winogrande", "arc_easy", "sciq", "arc_challenge", "hellaswag"):
        assert definitions.task_yaml(name) == index[name].yaml_path


def test_templates_render_as_lm_eval_does():
    """The compiled-template cache returns lm-eval's own text for every document."""
    from lm_eval import utils

    from evalsuite.lmeval import templates

    original = utils.env.from_string
    templates.install()
    for template, doc in (("Question: {{question}}\nAnswer:", {"question": "why?"}),
                          ("{{[sol1, sol2]}}", {"sol1": "a", "sol2": "b'c"}),
                          ("{{text.split(' ')[:-1]|join(' ')}}", {"text": "the cat sat"})):
        assert utils.apply_template(template, doc) == original(template).render(**doc)
