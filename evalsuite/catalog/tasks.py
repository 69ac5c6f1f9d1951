"""tasks.yaml: which lm-eval tasks evalsuite runs, their headline metrics, and where the data is.

Parsed once into a `TaskSuite`; a malformed file is an `EvalsuiteError` naming the file and the
problem. Knows the local data layout `DIR/<task>/<split>.jsonl`; lm-eval itself is only touched
in lmeval/definitions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from evalsuite import names
from evalsuite.errors import EvalsuiteError, first_line
from evalsuite.paths import TASKS_YAML

HUB = "hub"  # data_dir value meaning: download from the Hugging Face Hub as lm-eval does


@dataclass(frozen=True)
class TaskSpec:
    name: str
    lm_eval_task: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class TaskSuite:
    tasks: dict[str, TaskSpec]
    data_dir: Path | None  # None: the Hub

    def select(self, names: list[str] | None) -> list[TaskSpec]:
        if not names:
            return list(self.tasks.values())
        unknown = [n for n in names if n not in self.tasks]
        if unknown:
            raise EvalsuiteError(f"unknown task {unknown[0]!r}; valid: {', '.join(self.tasks)}")
        return [self.tasks[n] for n in names]

    def with_data_dir(self, value: str | None) -> TaskSuite:
        if value is None:
            return self
        return TaskSuite(self.tasks, _data_dir(value, Path.cwd()))


def load_tasks(path: Path | str = TASKS_YAML) -> TaskSuite:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise EvalsuiteError(f"{path}: tasks file not found") from None
    except yaml.YAMLError as exc:
        raise EvalsuiteError(f"{path}: not valid YAML ({first_line(exc)})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise EvalsuiteError(f"{path}: expected a mapping with a non-empty 'tasks:' mapping")
    tasks = {name: _task(path, name, body) for name, body in raw["tasks"].items()}
    data_dir = raw.get("data_dir", HUB)
    return TaskSuite(tasks, _data_dir(str(data_dir), path.parent) if data_dir else None)


def _task(path: Path, name: str, body: object) -> TaskSpec:
    if not names.is_valid(name):  # task names become stored rows and export folder names
        raise EvalsuiteError(f"{path}: bad task name {names.shown(name)}: {names.RULE}")
    if not isinstance(body, dict):
        raise EvalsuiteError(f"{path}: task {name!r} must be a mapping with lm_eval_task and metrics")
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise EvalsuiteError(f"{path}: task {name!r} needs 'metrics:' as a non-empty list of names")
    for metric in metrics:
        if not names.is_valid(metric):
            raise EvalsuiteError(f"{path}: task {name!r}: bad metric name {names.shown(metric)}: {names.RULE}")
    lm_eval_task = body.get("lm_eval_task", name)
    if not isinstance(lm_eval_task, str):
        raise EvalsuiteError(f"{path}: task {name!r}: 'lm_eval_task' must be a task name")
    return TaskSpec(str(name), lm_eval_task, tuple(metrics))


def _data_dir(value: str, base: Path) -> Path | None:
    if value == HUB:
        return None
    path = Path(value)
    path = path if path.is_absolute() else (base / path).resolve()
    if not path.is_dir():
        raise EvalsuiteError(f"data directory {path} does not exist (use 'hub' to download data)")
    return path


def local_data_files(data_dir: Path, task: TaskSpec) -> dict[str, Path]:
    """{split: file} for the JSON Lines files present under data_dir/<task>/."""
    folder = data_dir / task.name
    return {f.stem: f for f in sorted(folder.glob("*.jsonl"))}


