"""Which (model, step) jobs a sweep still has to do, and where each checkpoint loads from.

Resuming is planning again: a task whose key (model, step, shots, limit, dtype, source) is
already stored is skipped unless --force; a job is one checkpoint with the tasks it still lacks.
Where a checkpoint loads from was found once, when the command was parsed (sweep/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite import store
from evalsuite.catalog.models import Checkpoint
from evalsuite.catalog.tasks import TaskSpec
from evalsuite.lmeval import demo
from evalsuite.records import JobKey
from evalsuite.sweep.config import RunConfig


@dataclass(frozen=True)
class Job:
    model: str
    step: int | None  # None: a released model's one checkpoint
    tasks: list[TaskSpec]  # the tasks still to run
    tokens: int | None = None  # tokens seen at this checkpoint, where known


def plan(cfg: RunConfig, dtype: str) -> list[Job]:
    """The jobs still to do: (model, step) pairs with the tasks not yet stored."""
    jobs = []
    for model in cfg.models:
        key = JobKey(model=model, step=None, shots=cfg.shots, doc_limit=cfg.limit, dtype=dtype)
        stored = {} if cfg.force else store.stored_tasks_by_step(cfg.db, key)
        for step in cfg.steps[model]:
            todo = [t for t in cfg.tasks if t.name not in stored.get(step, set())]
            if todo:
                jobs.append(Job(model, step, todo, cfg.checkpoints[model][step].tokens))
    return jobs


def checkpoint_for(cfg: RunConfig, model: str, step: int | None) -> Checkpoint:
    """Where (model, step) is loaded from: as found when the command was parsed; the demo
    model's folder is built first where it is not yet (on this machine, or a local Ray worker)."""
    ckpt = cfg.checkpoints[model][step]
    if model == demo.DEMO_NAME and not cfg.model_path:
        demo.build_demo_checkpoints()
    return ckpt
