"""Which (model, step) jobs a sweep still has to do, and where each checkpoint loads from.

Resuming is planning again: a task whose key (model, step, shots, limit, dtype, source) is
already stored is skipped unless --force; a job is one checkpoint with the tasks it still lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite import store
from evalsuite.catalog import pythia
from evalsuite.catalog.tasks import TaskSpec
from evalsuite.lmeval import demo
from evalsuite.lmeval.checkpoints import Checkpoint
from evalsuite.records import JobKey
from evalsuite.sweep.config import RunConfig


@dataclass(frozen=True)
class Job:
    model: str
    step: int
    tasks: list[TaskSpec]  # the tasks still to run


def plan(cfg: RunConfig, dtype: str) -> list[Job]:
    """The jobs still to do: (model, step) pairs with the tasks not yet stored."""
    jobs = []
    for model in cfg.models:
        key = JobKey(model=model, step=None, shots=cfg.shots, doc_limit=cfg.limit, dtype=dtype)
        stored = {} if cfg.force else store.stored_tasks_by_step(cfg.db, key)
        for step in cfg.steps[model]:
            todo = [t for t in cfg.tasks if t.name not in stored.get(step, set())]
            if todo:
                jobs.append(Job(model, step, todo))
    return jobs


def checkpoint_for(cfg: RunConfig, model: str, step: int) -> Checkpoint:
    """Where (model, step) is loaded from: --model-path, the demo folder, or the Hub."""
    revision = pythia.revision(step)
    if cfg.model_path:
        nested = cfg.model_path / model / revision
        return Checkpoint(model, step, local_dir=nested if nested.exists() else cfg.model_path / revision)
    if model == demo.DEMO_NAME:
        return Checkpoint(model, step, local_dir=demo.build_demo_checkpoints() / revision)
    return Checkpoint(model, step, repo_id=pythia.MODELS[model].repo_id, revision=revision)
