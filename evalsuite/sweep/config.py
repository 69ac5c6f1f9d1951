"""What `evalsuite run` was asked to do, parsed and validated once at the edge (RunConfig).

Nothing heavy is imported here: a bad --model, --steps or --tasks is a one-line error before
torch or lm-eval load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalsuite import store
from evalsuite.catalog import pythia
from evalsuite.catalog.tasks import TaskSpec, load_tasks
from evalsuite.errors import EvalsuiteError
from evalsuite.lmeval import demo


@dataclass(frozen=True)
class RunConfig:
    """Everything `evalsuite run` was asked to do, validated."""

    models: list[str]
    steps: dict[str, list[int]]  # per model
    tasks: list[TaskSpec]
    data_dir: Path | None  # None: the Hub
    db: Path
    shots: int = 0
    limit: int | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: str = "auto"
    backend: str = "fast"
    model_path: Path | None = None
    force: bool = False
    cleanup: bool = False

    @property
    def data_source(self) -> str:
        """Where the task data comes from, as runs record it: the local folder, or 'hub'."""
        return str(self.data_dir) if self.data_dir else "hub"


def config_from_args(args) -> RunConfig:
    """Parse and validate the CLI arguments before anything heavy is imported."""
    demo_run = args.model in (None, demo.DEMO_NAME)
    models = pythia.parse_models(args.model or demo.DEMO_NAME, [*pythia.MODELS, demo.DEMO_NAME])
    steps_text = args.steps or "all"
    steps = {m: pythia.parse_steps(steps_text, demo.DEMO_STEPS if m == demo.DEMO_NAME else None)
             for m in models}
    suite = load_tasks(args.tasks_file) if args.tasks_file else load_tasks()
    suite = suite.with_data_dir(args.data_dir)
    names = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    if args.shots < 0 or (args.limit is not None and args.limit < 1):
        raise EvalsuiteError("--shots must be >= 0 and --limit >= 1")
    limit = args.limit if args.limit is not None or not demo_run else demo.DEMO_LIMIT
    model_path = Path(args.model_path) if args.model_path else None
    if model_path and not model_path.is_dir():
        raise EvalsuiteError(f"--model-path {model_path} is not a directory")
    return RunConfig(
        models=models, steps=steps, tasks=suite.select(names), data_dir=suite.data_dir,
        shots=args.shots, limit=limit, device=args.device, dtype=args.dtype,
        batch_size=str(args.batch_size), backend=args.backend, model_path=model_path,
        db=store.db_path(args.db), force=args.force, cleanup=args.cleanup)
