"""`evalsuite import`: lm-eval result files (0.3 and 0.4) into the store.

Reads lm-eval 0.3 files (EleutherAI's published Pythia, OPT and BLOOM results) and lm-eval 0.4
`results_*.json` files, with the `samples_<task>_<date>.jsonl` written beside them. Which model,
step and shot count a file holds comes from its content (`config.model_args`: `pretrained=`,
`revision=stepN`; `num_fewshot` / `n-shot`), never from its name. Only the tasks of tasks.yaml
are imported. Each file becomes one run whose id hashes the file's bytes and the source, so
importing a file again changes nothing.

The reference data under results/ is built with this importer: see evalsuite/reference.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite.baselines import single_checkpoint
from evalsuite.errors import EvalsuiteError
from evalsuite.records import Run
from evalsuite.registry import FINAL_STEP, MODELS


BATCH_ROWS = 200_000  # score + sample rows held in memory before they are written


class SkipFile(Exception):
    """This one file cannot be imported; the message says why. The other files go on."""


@dataclass(frozen=True)
class Identity:
    model: str
    step: int | None
    model_source: str | None


@dataclass
class ImportReport:
    imported: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)  # already in the store
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    scores: int = 0
    samples: int = 0


def find_files(paths: list[str | Path]) -> list[Path]:
    """The files named, and every *.json below the folders named (samples_*.jsonl ride along)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def _model_args(config: dict) -> dict:
    """`config.model_args` as a dict: 0.3 and 0.4 write `k=v,k=v`; 0.4 may write a mapping."""
    args = config.get("model_args")
    if isinstance(args, dict):
        return {str(k): str(v) for k, v in args.items()}
    if not isinstance(args, str):
        return {}
    return dict(part.split("=", 1) for part in args.split(",") if "=" in part)


def model_name(pretrained: str) -> tuple[str, int | None]:
    """`EleutherAI/pythia-v1.1-1b-bf16` -> pythia-1b; `facebook/opt-1.3b` -> opt-1.3b; a local
    checkpoint folder `.../pythia-70m/step1000` -> (pythia-70m, 1000)."""
    parts = [p for p in re.split(r"[/\\]", pretrained.strip()) if p]
    step = None
    if len(parts) > 1 and re.fullmatch(r"step\d+", parts[-1]):
        step, parts = int(parts[-1][4:]), parts[:-1]
    name = re.sub(r"^pythia-v\d+(\.\d+)?-", "pythia-", parts[-1] if parts else "")
    unsuffixed = re.sub(r"-(bf16|fp16)$", "", name)  # published as pythia-1b-bf16: same model
    return (unsuffixed if unsuffixed in MODELS else name), step


def _step(revision: str, model: str) -> int:
    if re.fullmatch(r"step\d+", revision):
        return int(revision[4:])
    if revision == "main" and model in MODELS:
        return FINAL_STEP  # Pythia's `main` branch is its last checkpoint
    raise SkipFile(f"revision {revision!r} is not a checkpoint step (stepN); pass --step")


def identify(raw: dict, model: str | None = None, step: int | None = None) -> Identity:
    """Model and step from the file's model_args; --model/--step fill in what it does not say."""
    args = _model_args(raw.get("config") or {})
    pretrained = args.get("pretrained")
    found_model, found_step = model_name(pretrained) if pretrained else (None, None)
    revision = args.get("revision")
    if revision is None and found_model in MODELS and pretrained.startswith("EleutherAI/"):
        revision = "main"  # lm-eval loaded the Hub's default branch: Pythia's final checkpoint
    if revision is not None:
        found_step = _step(revision, found_model or model or "")
    for what, given, found in (("model", model, found_model), ("step", step, found_step)):
        if given is not None and found is not None and given != found:
            raise SkipFile(f"the file says {what} {found}, not --{what} {given}")
    model, step = model or found_model, step if step is not None else found_step
    if not model:
        raise SkipFile("the file does not say which model it evaluated (no pretrained= in "
                       "config.model_args); pass --model NAME (and --step N)")
    if step is None and not single_checkpoint(model):
        raise SkipFile(f"the file does not say which step of {model} it evaluated (no "
                       "revision=stepN in config.model_args); pass --step N")
    return Identity(model, step, f"{pretrained}@{revision}" if pretrained and revision else pretrained)


def _is_v03(raw: dict) -> bool:
    return "n-shot" not in raw and not any(
        "," in key for values in raw["results"].values() if isinstance(values, dict) for key in values)


def _dtype(raw: dict) -> str | None:
    config = raw.get("config") or {}
    dtype = _model_args(config).get("dtype") or config.get("model_dtype")
    return str(dtype).removeprefix("torch.") if dtype else None


def _optional(value, kind):
    try:
        return None if value in (None, "") else kind(value)
    except (TypeError, ValueError):
        return None


def make_run(raw: dict, ident: Identity, run_id: str, source: str) -> Run:
    config = raw.get("config") or {}
    version = raw.get("lm_eval_version") or ("0.3" if _is_v03(raw) else None)
    return Run(
        run_id=run_id, source=source, model=ident.model, step=ident.step,
        backend=_optional(config.get("model"), str), model_source=ident.model_source,
        doc_limit=_optional(config.get("limit"), int), dtype=_dtype(raw),
        batch_size=_optional(config.get("batch_size"), str), device=_optional(config.get("device"), str),
        lm_eval_version=str(version) if version else None,
        transformers_version=_optional(raw.get("transformers_version"), str),
        duration_s=_optional(raw.get("total_evaluation_time_seconds"), float),
    )


def read_json(path: Path) -> tuple[dict, bytes]:
    if path.name.startswith("samples_") and path.suffix == ".jsonl":
        raise SkipFile("a samples file: it is imported with the results_*.json beside it")
    try:
        data = path.read_bytes()
        return json.loads(data), data
    except OSError as exc:
        raise SkipFile(exc.strerror or str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkipFile(f"not valid JSON ({exc})") from None


def run_id_for(data: bytes, source: str) -> str:
    return "import-" + hashlib.sha256(source.encode() + b"\0" + data).hexdigest()[:16]


def _select(metrics, suite) -> list:
    """Only the tasks of tasks.yaml, under their tasks.yaml names."""
    names = {spec.lm_eval_task: spec.name for spec in suite.tasks.values()}
    names.update({name: name for name in suite.tasks})
    return [replace(m, task=names[m.task]) for m in metrics if m.task in names]


def _samples(path: Path, tasks: set[str], ident: Identity, shots: int, run_id: str) -> list:
    """The per-document samples lm-eval 0.4 wrote beside results_<date>.json, where present."""
    from evalsuite.results import parse_samples

    date = path.stem.removeprefix("results_")
    docs = {}
    for task in sorted(tasks):
        file = path.with_name(f"samples_{task}_{date}.jsonl")
        if path.stem.startswith("results_") and file.is_file():
            try:
                docs[task] = [json.loads(line) for line in file.open(encoding="utf-8") if line.strip()]
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SkipFile(f"cannot read {file.name}: {exc}") from None
    try:
        return parse_samples(docs, model=ident.model, step=ident.step, shots=shots, run_id=run_id)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SkipFile(f"samples file has an unexpected shape ({type(exc).__name__}: {exc})") from None


def load_file(path: Path, suite, source: str | None = None, model: str | None = None,
              step: int | None = None):
    """One result file -> (JobKey, Run, scores, samples), or SkipFile saying why not."""
    from evalsuite.results import parse_results, to_scores
    from evalsuite.store import JobKey

    raw, data = read_json(path)
    try:
        metrics = _select(parse_results(raw), suite)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SkipFile(str(exc) if isinstance(exc, ValueError) else "not an lm-eval results file") from None
    if not metrics:
        raise SkipFile(f"none of the tasks of tasks.yaml ({', '.join(suite.tasks)}) is in it")
    shots = {m.shots for m in metrics}
    if len(shots) > 1:
        raise SkipFile(f"tasks with different shot counts {sorted(shots)} in one file")
    ident = identify(raw, model, step)
    source = source or ("published" if _is_v03(raw) else "local")
    run = make_run(raw, ident, run_id_for(data, source), source)
    scores = to_scores(metrics, model=ident.model, step=ident.step, run_id=run.run_id, source=source,
                       doc_limit=run.doc_limit, dtype=run.dtype)
    samples = _samples(path, {m.task for m in metrics}, ident, shots.pop(), run.run_id)
    key = JobKey(ident.model, ident.step, scores[0].shots, run.doc_limit, run.dtype, source)
    return key, run, scores, samples


def _stored_run_ids(db: Path) -> set[str]:
    from evalsuite.store import read_df

    return set(read_df(db, "SELECT run_id FROM runs")["run_id"])


def import_paths(paths: list[str | Path], db: Path, source: str | None = None,
                 model: str | None = None, step: int | None = None, on_skip=None,
                 seed: bool = True) -> ImportReport:
    """Import every result file under `paths`; a file that fails is reported, the rest go on."""
    from evalsuite import store
    from evalsuite.tasks import load_tasks

    files = find_files(paths)  # a path that does not exist is reported as a skipped file
    if not files:
        raise EvalsuiteError(f"no result files (*.json) under {', '.join(map(str, paths))}")
    suite, report, batch = load_tasks(), ImportReport(), []
    store.init(db, seed=seed)
    known = _stored_run_ids(db)
    for path in files:
        try:
            job = load_file(path, suite, source, model, step)
        except SkipFile as exc:
            report.skipped.append((path, str(exc)))
            if on_skip:
                on_skip(path, str(exc))
            continue
        if job[1].run_id in known:  # this very file (same bytes, same source) is stored
            report.unchanged.append(path)
            continue
        known.add(job[1].run_id)
        batch.append((path, job))
        if sum(len(j[2]) + len(j[3]) for _, j in batch) >= BATCH_ROWS:
            _flush(db, batch, report)
    _flush(db, batch, report)
    return report


def _flush(db: Path, batch: list, report: ImportReport) -> None:
    """Write the batch in one transaction; a file whose every task is stored already is unchanged."""
    from evalsuite.store import write_jobs

    for (path, (_, _, scores, samples)), written in zip(batch, write_jobs(db, [j for _, j in batch])):
        if not written:
            report.unchanged.append(path)
            continue
        report.imported.append(path)
        report.scores += sum(s.task in written for s in scores)
        report.samples += sum(s.task in written for s in samples)
    batch.clear()


def import_from_args(args) -> int:
    """`evalsuite import`: per-file problems on stderr, a one-line summary, the exit status."""
    import sys

    from evalsuite.store import db_path

    if args.step is not None and args.step < 0:
        raise EvalsuiteError(f"bad --step {args.step}: steps are not negative")
    if args.source is not None and not args.source.strip():
        raise EvalsuiteError("--source is empty: give a name such as 'published' or 'my-lab'")
    db = db_path(args.db)

    def skip(path: Path, reason: str) -> None:
        print(f"evalsuite: skipped {path}: {reason}", file=sys.stderr)

    report = import_paths(args.paths, db, source=args.source, model=args.model, step=args.step,
                          on_skip=skip)
    extra = [f"{len(report.unchanged)} already stored"] if report.unchanged else []
    extra += [f"{len(report.skipped)} skipped"] if report.skipped else []
    files = "file" if len(report.imported) == 1 else "files"
    print(f"imported {len(report.imported)} {files} ({report.scores} scores, {report.samples} samples) "
          f"into {db}" + (f"; {', '.join(extra)}" if extra else ""))
    if not report.skipped:
        return 0
    return 1 if report.imported or report.unchanged else 2
