"""lm-eval's own task definitions (its task YAML files), pointed at local data where asked.

`task_configs` loads each task of tasks.yaml from lm-eval's YAML, with `dataset_path` switched to
the local JSON Lines copies (`DIR/<task>/<split>.jsonl`) unless the data is to come from the Hub;
`task_yaml` finds a task's file without parsing all of lm-eval's; `lm_eval_requests` is what a
backend is asked for some documents (the fast backend's tests and benchmarks).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from evalsuite.catalog.tasks import TaskSpec, local_data_files
from evalsuite.errors import EvalsuiteError
from evalsuite.lmeval import hub
from evalsuite.paths import TASK_DATA_DIR

SPLIT_KEYS = ("training_split", "validation_split", "test_split")


def task_configs(specs: list[TaskSpec], data_dir: Path | None, shots: int) -> list[dict]:
    """lm-eval's own task definitions, with `dataset_path` pointed at local files if asked."""
    from lm_eval.tasks._yaml_loader import load_yaml

    configs = []
    for spec in specs:
        config = load_yaml(task_yaml(spec.lm_eval_task), resolve_func=True)
        config["task"] = spec.name
        if data_dir is not None:
            config.update(_local_data(config, spec, data_dir, shots))
        else:
            _check_hub_data(spec, config["dataset_path"])
        configs.append(config)
    return configs


def _check_hub_data(spec: TaskSpec, dataset: str) -> None:
    """Fail in seconds, not after datasets' minute of retries, when the Hub is unreachable.
    Offline mode asks nothing: datasets' own cache may hold the data set, so lm-eval tries it."""
    reason = None if hub.offline() else hub.unreachable(f"datasets/{dataset}")
    if reason:
        raise EvalsuiteError(
            f"task {spec.name!r}: cannot download {dataset}: {reason}; the project ships the "
            f"data: use --data-dir {TASK_DATA_DIR} (or tasks.yaml's data_dir)")


def task_yaml(name: str) -> Path:
    """The YAML file of lm-eval's task `name`, confirmed by loading it as lm-eval does.

    lm-eval's TaskManager finds it by parsing all of its ~14,000 task files (5-10 s); a task
    file names its task on a `task: NAME` line, so a plain-text scan finds it in well under a
    second. A task the scan cannot place (defined some other way) falls back to lm-eval's index.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    for path in _task_lines().get(name, []):
        if load_yaml(path, resolve_func=False).get("task") == name:
            return path
    from lm_eval.tasks import TaskManager

    entry = TaskManager().task_index.get(name)
    if entry is None or entry.yaml_path is None:
        raise EvalsuiteError(f"lm-eval has no task {name!r}")
    return Path(entry.yaml_path)


@functools.cache
def _task_lines() -> dict[str, list[Path]]:
    """{NAME: files with a `task: NAME` line} over lm-eval's task folder: read once per process."""
    import lm_eval.tasks

    line = re.compile(r"^task:[ \t]*['\"]?([^'\"\s#]+)['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(lm_eval.tasks.__file__).parent.rglob("*.yaml")):
        for name in line.findall(path.read_text(errors="replace")):
            found.setdefault(name, []).append(path)
    return found


def _local_data(config: dict, spec: TaskSpec, data_dir: Path, shots: int) -> dict:
    files = local_data_files(data_dir, spec)
    overrides = {"dataset_path": "json", "dataset_name": None,
                 "dataset_kwargs": {"data_files": {s: str(f) for s, f in files.items()}}}
    for key in SPLIT_KEYS:  # splits the local copy lacks are switched off
        if config.get(key) and config[key] not in files:
            overrides[key] = None
    eval_split = config.get("test_split") or config.get("validation_split")
    if eval_split not in files:
        raise EvalsuiteError(
            f"task {spec.name!r}: missing data file {data_dir / spec.name / (str(eval_split) + '.jsonl')}")
    # lm-eval draws few-shot examples from the first of these its task config names; switching
    # a missing train split off would silently draw them from another split instead.
    fewshot_split = ((config.get("fewshot_config") or {}).get("split") or config.get("training_split")
                     or config.get("validation_split") or config.get("test_split"))
    if shots > 0 and fewshot_split not in files:
        raise EvalsuiteError(
            f"task {spec.name!r}: {shots}-shot needs the {fewshot_split!r} split, which is not in "
            f"{data_dir / spec.name}; use --data-dir hub or add {fewshot_split}.jsonl")
    return overrides


def lm_eval_requests(specs: list[TaskSpec], data_dir: Path | None, limit: int | None) -> list:
    """lm-eval's own zero-shot loglikelihood requests (Instances) for the first `limit` documents
    of each task: exactly what a backend is asked (the fast backend's tests and benchmark)."""
    from evalsuite.lmeval.requests import prepare

    configs = task_configs(specs, data_dir, 0)
    return prepare(configs, 0, limit, str(data_dir) if data_dir else "hub").instances
