"""In-loop evaluation: a model already in memory, scored at a training step and stored as a sweep
stores a checkpoint (`evalsuite.evaluate_model`; lmeval/callback.py builds the Trainer callback on it).

The same path as `run`: lm-eval's requests built once per process for each task set, shot count,
limit and data (cached here), the fast backend where it scores the architecture exactly, one
JobRecord with the run's provenance written in its own transaction. The training loop's state
is put back afterwards (lmeval/training_state.py): mode, grad mode, device, random generators.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from evalsuite import names, store
from evalsuite.catalog.entries import load_catalog
from evalsuite.catalog.models import Checkpoint, ModelSpec
from evalsuite.catalog.tasks import load_tasks
from evalsuite.errors import EvalsuiteError
from evalsuite.records import Run, Score
from evalsuite.sweep.config import RunConfig
from evalsuite.sweep.plan import Job

_PREPARED: dict = {}  # RequestsKey -> PreparedRequests: built once per process
_DOCUMENTS: set[tuple[str, object]] = set()  # (store, RequestsKey) whose documents are written
_ENV: dict = {}  # the provenance every run of this process shares, by device


@dataclass(frozen=True)
class Evaluated:
    """What evaluate_model stored: the run, its scores, and which tasks were new to the store
    (a task already stored at this step, shots, limit and dtype is kept, not written twice)."""

    run: Run
    scores: list[Score]
    written: list[str]

    def score(self, task: str, metric: str = "acc") -> float:
        found = next((s.value for s in self.scores if s.task == task and s.metric == metric), None)
        if found is None:
            raise KeyError(f"no {metric} of {task} in this evaluation")
        return found


def evaluate_model(model, tokenizer, *, model_name: str, step: int, tasks: list[str] | None = None,
                   shots: int = 0, limit: int | None = None, db: str | Path | None = None,
                   backend: str = "fast", batch_size: str = "auto") -> Evaluated:
    """Score `model` (in memory, on whatever device it is) at `step` on `tasks` (default: all of
    tasks.yaml) and store it under `model_name`; the model and the training loop's random state
    are left as they were."""
    from evalsuite.lmeval.checkpoints import LoadedCheckpoint
    from evalsuite.lmeval.training_state import preserved
    from evalsuite.sweep.job import Session, evaluate_job, new_run

    cfg = _config(model_name, tasks, shots, limit, db, backend, batch_size)
    first = next(iter(model.parameters()))
    device, dtype = str(first.device), str(first.dtype).removeprefix("torch.")
    store.init(cfg.db)
    per_step = cfg.about[model_name].tokens_per_step
    job = Job(model_name, step, cfg.tasks, step * per_step if per_step is not None else None)
    with preserved(model):
        prepared = _prepared(cfg)
        session = Session(device, dtype, tokenizer, _environment(device), None)
        loaded = LoadedCheckpoint(Checkpoint(model_name, step), model, commit=None, origin="memory")
        run = replace(new_run(cfg, job, loaded, session), model_source="in memory (evalsuite.evaluate_model)")
        record = evaluate_job(cfg, job, model, run, session, prepared)
    written = store.write_job(cfg.db, record)
    return Evaluated(record.run, record.scores, written)


def _config(model_name: str, tasks: list[str] | None, shots: int, limit: int | None, db, backend: str,
            batch_size: str) -> RunConfig:
    names.check("model", model_name)
    if shots < 0 or (limit is not None and limit < 1):
        raise EvalsuiteError("shots must be >= 0 and limit >= 1")
    suite = load_tasks()
    spec = load_catalog().get(model_name) or ModelSpec(model_name)
    return RunConfig(models=[model_name], steps={}, tasks=suite.select(tasks), data_dir=suite.data_dir,
                     db=store.db_path(db), shots=shots, limit=limit, backend=backend, batch_size=str(batch_size),
                     about={model_name: spec.record()})


def _prepared(cfg: RunConfig):
    """The sweep's prepared requests for this configuration: built on the first call, reused after;
    the documents written once per store."""
    from evalsuite.lmeval.requests import RequestsKey
    from evalsuite.sweep.job import prepare_requests

    key = RequestsKey(tuple(t.name for t in cfg.tasks), cfg.shots, cfg.limit, cfg.data_source)
    if key not in _PREPARED:
        _PREPARED[key] = prepare_requests(cfg)
    if (str(cfg.db), key) not in _DOCUMENTS:
        store.write_documents(cfg.db, _PREPARED[key].documents())
        _DOCUMENTS.add((str(cfg.db), key))
    return _PREPARED[key]


def _environment(device: str) -> dict:
    from evalsuite.lmeval import backends, checkpoints
    from evalsuite.sweep.job import git_commit

    if device not in _ENV:
        backends.quiet_libraries()
        _ENV[device] = {**checkpoints.environment(device), "evalsuite_commit": git_commit()}
    return _ENV[device]
