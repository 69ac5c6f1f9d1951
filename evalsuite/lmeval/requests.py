"""lm-eval's requests for a sweep: built once, reused for every checkpoint.

`prepare(configs, shots, limit)` does what lm-eval's `simple_evaluate` does before it calls a
model (load each task with its data, set the few-shot count and lm-eval's seeds, build every
`Instance`) and keeps the result: the documents in lm-eval's order, each with its requests.
Scoring a checkpoint (evaluate.py) then only resets the responses and asks the model. Nothing
here depends on a checkpoint; it depends on the sweep's task set, shots, limit and data source,
which `RequestsKey` names. `documents()` is what the store keeps about each document.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from evalsuite.lmeval import templates
from evalsuite.lmeval.results import doc_hash, make_document
from evalsuite.records import Document

# simple_evaluate's default seeds: Python's and numpy's RNGs, and the few-shot sampler's.
RANDOM_SEED, NUMPY_SEED, FEWSHOT_SEED = 0, 1234, 1234


@dataclass(frozen=True)
class RequestsKey:
    """What the prepared requests depend on: reuse them only for the same key."""

    tasks: tuple[str, ...]
    shots: int
    limit: int | None
    data_source: str  # the local data folder, or 'hub'


@dataclass
class PreparedDoc:
    doc_id: int
    doc: dict
    requests: list[Any]  # lm-eval Instances, in lm-eval's order (by idx)
    gold: int | None  # the right choice's index, as lm-eval's metrics find it (multiple choice)

    @cached_property
    def fingerprint(self) -> str:
        """Its Document's fingerprint, which each checkpoint's samples point at (hashed once)."""
        return doc_hash(self.doc)


@dataclass
class PreparedTask:
    name: str
    task: Any  # the lm-eval Task, its Instances built
    docs: list[PreparedDoc]


@dataclass
class PreparedRequests:
    key: RequestsKey
    tasks: list[PreparedTask]

    def subset(self, names: list[str]) -> PreparedRequests:
        """The same prepared tasks, only those named (a resumed job may lack a few)."""
        tasks = [t for t in self.tasks if t.name in names]
        missing = set(names) - {t.name for t in tasks}
        if missing:
            raise ValueError(f"tasks not prepared for this sweep: {', '.join(sorted(missing))}")
        key = RequestsKey(tuple(t.name for t in tasks), self.key.shots, self.key.limit, self.key.data_source)
        return PreparedRequests(key, tasks)

    def documents(self) -> list[Document]:
        """Every prepared document as the store keeps it: its data's fingerprint, the prompt
        and choices lm-eval built, the right answer (what lm-eval's samples file logs)."""
        return [make_document(task=t.name, shots=self.key.shots, doc_id=d.doc_id, doc=d.doc,
                              arguments=[inst.args for inst in d.requests], target=d.gold)
                for t in self.tasks for d in t.docs]

    @property
    def instances(self) -> list[Any]:
        """Every request in the order lm-eval's evaluator sends them (task by task)."""
        return [inst for t in self.tasks for inst in t.task.instances]


def prepare(configs: list[dict], shots: int, limit: int | None, data_source: str) -> PreparedRequests:
    """Load the tasks (full lm-eval configs, see definitions.task_configs) and build their requests."""
    import numpy as np
    from lm_eval.evaluator_utils import get_sample_size
    from lm_eval.tasks import TaskManager

    templates.install()
    random.seed(RANDOM_SEED)
    np.random.seed(NUMPY_SEED)
    # The configs are complete: an empty manager spares indexing every lm-eval task file.
    loaded = TaskManager(include_defaults=False).load(configs)["tasks"]
    prepared = []
    for name, task in loaded.items():
        if task.get_config("num_fewshot") != 0:  # simple_evaluate's rule: a config's 0 stays 0
            task.set_config(key="num_fewshot", value=shots)
        task.set_fewshot_seed(seed=FEWSHOT_SEED)
        task_limit = get_sample_size(task, limit)
        task.build_all_requests(limit=task_limit, rank=0, world_size=1)
        prepared.append(PreparedTask(name, task, _documents(task, task_limit)))
    key = RequestsKey(tuple(t.name for t in prepared), shots, limit, data_source)
    return PreparedRequests(key, prepared)


def _documents(task, limit: int | None) -> list[PreparedDoc]:
    """The documents lm-eval's evaluator iterates, each with its requests and right choice."""
    by_doc: dict[int, list] = {}
    for inst in task.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    docs = []
    for doc_id, doc in task.doc_iterator(rank=0, limit=limit, world_size=1):
        requests = sorted(by_doc[doc_id], key=lambda inst: inst.idx)
        docs.append(PreparedDoc(doc_id, doc, requests, _gold(task, doc)))
    return docs


def _gold(task, doc) -> int | None:
    """The right choice's index as lm-eval's process_results finds it: from doc_to_target, or
    for a task that puts each choice into the context (WinoGrande: `multiple_input`) from
    doc_to_text; None for a task that is not multiple choice, or a label lm-eval cannot place."""
    if task.OUTPUT_TYPE != "multiple_choice":
        return None
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    choices = task.doc_to_choice(doc)
    if isinstance(gold, str):
        gold = choices.index(gold) if gold in choices else None
    return gold if isinstance(gold, int) and 0 <= gold < len(choices) else None
