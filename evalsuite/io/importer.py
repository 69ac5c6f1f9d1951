"""`evalsuite import`: lm-eval result files (0.3 and 0.4) into the store.

Reads lm-eval 0.3 files (EleutherAI's published Pythia, OPT and BLOOM results) and lm-eval 0.4
`results_*.json` files, with the `samples_<task>_<date>.jsonl` written beside them. Which model,
step and shot count a file holds comes from its content (`config.model_args`: `pretrained=`,
`revision=stepN`; `num_fewshot` / `n-shot`), never from its name. Only the tasks of tasks.yaml
are imported. Each file becomes one run whose id hashes the file's bytes and the source, so
importing a file again changes nothing. Its source is 'local' unless --source says otherwise:
'published' is for EleutherAI's numbers and only ever comes from an explicit --source.

Result files are untrusted input. Each one is read only if it is a regular file under the size
limit, parsed strictly (no duplicate keys, no 300-digit numbers), and every row it would add is
checked (evalsuite.io.checks) before anything is written: a file is stored whole or skipped with one
line saying why, and a bad file never costs the good ones.

The reference data under results/ is built with this importer: see evalsuite/reference.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite import names
from evalsuite.catalog.baselines import single_checkpoint
from evalsuite.errors import EvalsuiteError
from evalsuite.records import Run
from evalsuite.catalog.pythia import FINAL_STEP, MODELS


BATCH_ROWS = 200_000  # score + sample rows held in memory before they are written
MAX_FILE_MB = 100  # default limit on each file read (--max-file-mb); lm-eval's largest are samples files
MAX_INT_DIGITS = 300  # longer integers in a file are an attack or garbage (and would overflow a float)


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
    """The files named, and every *.json below the folders named (samples_*.jsonl ride along).

    Symlinked folders are not followed (a link loop cannot stall the walk); anything named *.json
    that is not a folder is listed, so a FIFO or device is reported as skipped, never read.
    """
    found = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            found.extend(Path(folder) / f for f in sorted(files) if f.endswith(".json"))
    return list(dict.fromkeys(found))


def read_file(path: Path, max_mb: float = MAX_FILE_MB) -> bytes:
    """A regular file's bytes, at most `max_mb` MB; SkipFile for anything else (FIFO, device, folder)."""
    max_bytes = int(max_mb * 2**20)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise SkipFile(getattr(exc, "strerror", None) or str(exc)) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile("not a regular file")
        data = file.read(max_bytes + 1)  # the size may change after fstat: count what is read
    if max(len(data), info.st_size) > max_bytes:
        raise SkipFile(f"larger than the {max_mb:g} MB limit (--max-file-mb)")
    return data


def parse_json(data: bytes | str):
    """Strict JSON: one value per key, integers of at most MAX_INT_DIGITS digits, and every
    failure (bad syntax, bad UTF-8, nesting too deep for Python) a SkipFile."""
    try:
        return json.loads(data, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except RecursionError:
        raise SkipFile("not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and the two hooks' errors
        raise SkipFile(f"not valid JSON ({names.printable(exc)[:200]})") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # Python keeps the last of two equal keys; another reader may keep the first: refuse both.
    mapping = {}
    for key, value in pairs:
        if key in mapping:
            raise ValueError(f"key {names.shown(key)} appears twice in one object")
        mapping[key] = value
    return mapping


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a {len(text)}-digit integer")
    return int(text)


def _model_args(config: dict) -> dict:
    """`config.model_args` as a dict: 0.3 and 0.4 write `k=v,k=v`; 0.4 may write a mapping."""
    args = config.get("model_args")
    if isinstance(args, dict):
        return {str(k): str(v) for k, v in args.items()}
    if not isinstance(args, str):
        return {}
    found = {}
    for key, value in (part.split("=", 1) for part in args.split(",") if "=" in part):
        if key in found:  # `revision=step1000,revision=step2000`: which one was loaded?
            raise SkipFile(f"config.model_args names {names.shown(key)} more than once")
        found[key] = value
    return found


def model_name(pretrained: str) -> tuple[str, int | None]:
    """`EleutherAI/pythia-v1.1-1b-bf16` -> pythia-1b; `facebook/opt-1.3b` -> opt-1.3b; a local
    checkpoint folder `.../pythia-70m/step1000` -> (pythia-70m, 1000)."""
    parts = [p for p in re.split(r"[/\\]", pretrained.strip()) if p]
    step = None
    if len(parts) > 1 and re.fullmatch(r"step\d{1,10}", parts[-1]):
        step, parts = int(parts[-1][4:]), parts[:-1]
    name = re.sub(r"^pythia-v\d+(\.\d+)?-", "pythia-", parts[-1] if parts else "")
    unsuffixed = re.sub(r"-(bf16|fp16)$", "", name)  # published as pythia-1b-bf16: same model
    return (unsuffixed if unsuffixed in MODELS else name), step


def _step(revision: str, model: str) -> int:
    if re.fullmatch(r"step\d{1,10}", revision):
        return int(revision[4:])
    if revision == "main" and model in MODELS:
        return FINAL_STEP  # Pythia's `main` branch is its last checkpoint
    raise SkipFile(f"revision {names.shown(revision)} is not a checkpoint step (stepN); pass --step")


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
    if not names.is_valid(model):
        raise SkipFile(f"the file names model {names.shown(found_model)}, not a usable name "
                       f"({names.RULE}); pass --model NAME")
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


def _doc_limit(config: dict) -> int | None:
    from evalsuite.lmeval.results import whole_number

    limit = config.get("limit")
    if isinstance(limit, float) and 0 < limit < 1:
        raise SkipFile(f"config.limit {limit} is a fraction of each task's documents; evalsuite "
                       "stores limits as document counts")
    try:
        return whole_number(limit, "config.limit")
    except ValueError as exc:
        raise SkipFile(str(exc)) from None


def make_run(raw: dict, ident: Identity, run_id: str, source: str) -> Run:
    config = raw.get("config") or {}
    version = raw.get("lm_eval_version") or ("0.3" if _is_v03(raw) else None)
    return Run(
        run_id=run_id, source=source, model=ident.model, step=ident.step,
        backend=_optional(config.get("model"), str), model_source=ident.model_source,
        doc_limit=_doc_limit(config), dtype=_dtype(raw),
        batch_size=_optional(config.get("batch_size"), str), device=_optional(config.get("device"), str),
        lm_eval_version=str(version) if version else None,
        transformers_version=_optional(raw.get("transformers_version"), str),
        duration_s=_optional(raw.get("total_evaluation_time_seconds"), float),
    )


def read_json(path: Path, max_mb: float) -> tuple[dict, bytes]:
    if path.name.startswith("samples_") and path.suffix == ".jsonl":
        raise SkipFile("a samples file: it is imported with the results_*.json beside it")
    data = read_file(path, max_mb)
    return parse_json(data), data


def run_id_for(data: bytes, source: str) -> str:
    return "import-" + hashlib.sha256(source.encode() + b"\0" + data).hexdigest()[:16]


def _our_tasks(suite) -> dict[str, str]:
    """{task name in a file: its tasks.yaml name}: lm-eval's names and tasks.yaml's own."""
    by_name = {spec.lm_eval_task: spec.name for spec in suite.tasks.values()}
    by_name.update({name: name for name in suite.tasks})
    return by_name


def _select(metrics, suite) -> list:
    """Only the tasks of tasks.yaml, under their tasks.yaml names."""
    by_name = _our_tasks(suite)
    return [replace(m, task=by_name[m.task]) for m in metrics if m.task in by_name]


def _samples(path: Path, tasks: set[str], ident: Identity, shots: int, run_id: str,
             max_mb: float) -> list:
    """The per-document samples lm-eval 0.4 wrote beside results_<date>.json, where present."""
    from evalsuite.lmeval.results import parse_samples

    date = path.stem.removeprefix("results_")
    docs = {}
    for task in sorted(tasks):
        file = path.with_name(f"samples_{task}_{date}.jsonl")
        if path.stem.startswith("results_") and file.is_file():
            try:
                lines = read_file(file, max_mb).split(b"\n")
                docs[task] = [parse_json(line) for line in lines if line.strip()]
            except SkipFile as exc:
                raise SkipFile(f"{names.printable(file.name)}: {exc}") from None
    try:
        return parse_samples(docs, model=ident.model, step=ident.step, shots=shots, run_id=run_id)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise SkipFile(f"samples file has an unexpected shape ({type(exc).__name__}: "
                       f"{names.printable(exc)[:200]})") from None


def load_file(path: Path, suite, source: str | None = None, model: str | None = None,
              step: int | None = None, max_mb: float = MAX_FILE_MB):
    """One result file -> (JobKey, Run, scores, samples), every row checked, or SkipFile saying why not."""
    from evalsuite.io.checks import BadRow, check_job
    from evalsuite.lmeval.results import parse_results, to_scores
    from evalsuite.store import JobKey

    raw, data = read_json(path, max_mb)
    try:
        metrics = _select(parse_results(raw, set(_our_tasks(suite))), suite)  # others are not read
    except (ValueError, TypeError, AttributeError) as exc:
        raise SkipFile(names.printable(exc) if isinstance(exc, ValueError) else "not an lm-eval results file") from None
    if not metrics:
        raise SkipFile(f"none of the tasks of tasks.yaml ({', '.join(suite.tasks)}) is in it")
    shots = {m.shots for m in metrics}
    if len(shots) > 1:
        raise SkipFile(f"tasks with different shot counts {sorted(shots)} in one file")
    ident = identify(raw, model, step)
    source = source or "local"  # never 'published' by default: that name is EleutherAI's numbers
    run = make_run(raw, ident, run_id_for(data, source), source)
    scores = to_scores(metrics, model=ident.model, step=ident.step, run_id=run.run_id, source=source,
                       doc_limit=run.doc_limit, dtype=run.dtype)
    samples = _samples(path, {m.task for m in metrics}, ident, shots.pop(), run.run_id, max_mb)
    try:
        check_job(run, scores, samples)
    except BadRow as exc:
        raise SkipFile(str(exc)) from None
    key = JobKey(ident.model, ident.step, scores[0].shots, run.doc_limit, run.dtype, source)
    return key, run, scores, samples


def _stored_run_ids(db: Path) -> set[str]:
    from evalsuite.store import read_df

    return set(read_df(db, "SELECT run_id FROM runs")["run_id"])


def import_paths(paths: list[str | Path], db: Path, source: str | None = None,
                 model: str | None = None, step: int | None = None, on_skip=None,
                 seed: bool = True, max_file_mb: float = MAX_FILE_MB) -> ImportReport:
    """Import every result file under `paths`; a file that fails is reported, the rest go on.

    A store that cannot be written (disk full, read-only) stops the import with an
    EvalsuiteError; every file stored before that is complete, and importing again adds the rest.
    """
    from evalsuite import store
    from evalsuite.catalog.tasks import load_tasks

    source = names.check("source", source) if source is not None else None
    model = names.check("model", model) if model is not None else None
    files = find_files(paths)  # a path that does not exist is reported as a skipped file
    if not files:
        raise EvalsuiteError(f"no result files (*.json) under {', '.join(map(str, paths))}")
    suite, report, batch = load_tasks(), ImportReport(), []
    store.init(db, seed=seed)
    known = _stored_run_ids(db)

    def skip(path: Path, reason: str) -> None:
        report.skipped.append((path, reason))
        if on_skip:
            on_skip(path, reason)

    for path in files:
        try:
            job = load_file(path, suite, source, model, step, max_file_mb)
        except SkipFile as exc:
            skip(path, str(exc))
            continue
        if job[1].run_id in known:  # this very file (same bytes, same source) is stored
            report.unchanged.append(path)
            continue
        known.add(job[1].run_id)
        batch.append((path, job))
        if sum(len(j[2]) + len(j[3]) for _, j in batch) >= BATCH_ROWS:
            _flush(db, batch, report, skip)
    _flush(db, batch, report, skip)
    return report


def _flush(db: Path, batch: list, report: ImportReport, skip) -> None:
    """Write the batch in one transaction; a file whose every task is stored already is unchanged.

    Every row was checked before, so an insert should not fail on data; if one does anyway, the
    batch is written again file by file so that only the file at fault is skipped.
    """
    from evalsuite.store import write_jobs

    if not batch:
        return
    try:
        try:
            written = write_jobs(db, [job for _, job in batch])
        except EvalsuiteError:
            raise
        except Exception:  # noqa: BLE001 - find the file at fault
            for path, job in batch:
                _write_alone(db, path, job, report, skip)
        else:
            for (path, job), tasks in zip(batch, written):
                _count(report, path, job, tasks)
    except EvalsuiteError as exc:  # the store itself failed (disk full, read-only, corrupt)
        raise _stopped(exc, report) from None
    batch.clear()


def _write_alone(db: Path, path: Path, job, report: ImportReport, skip) -> None:
    from evalsuite.store import write_jobs

    try:
        tasks = write_jobs(db, [job])[0]
    except EvalsuiteError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever DuckDB refused, it is this file's
        first = str(exc).strip().split("\n")[0]
        skip(path, f"the store refused it ({type(exc).__name__}: {names.printable(first)[:200]})")
        return
    _count(report, path, job, tasks)


def _count(report: ImportReport, path: Path, job, tasks: list[str]) -> None:
    """One written file: imported, or unchanged when every task of it was stored already."""
    if not tasks:
        report.unchanged.append(path)
        return
    report.imported.append(path)
    report.scores += sum(s.task in tasks for s in job[2])
    report.samples += sum(s.task in tasks for s in job[3])


def _stopped(exc: EvalsuiteError, report: ImportReport) -> EvalsuiteError:
    stored = len(report.imported)
    return EvalsuiteError(f"{exc}; import stopped after storing {stored} complete "
                          f"file{'s' if stored != 1 else ''} (importing again adds the rest)")


def import_from_args(args) -> int:
    """`evalsuite import`: per-file problems on stderr, a one-line summary, the exit status:
    0 when every file was imported or already stored, 1 when some were skipped, 2 when all were."""
    import sys

    from evalsuite.store import db_path

    if args.step is not None and args.step < 0:
        raise EvalsuiteError(f"bad --step {args.step}: steps are not negative")
    if args.source is not None and not args.source.strip():
        raise EvalsuiteError("--source is empty: give a name such as 'my-lab'")
    max_file_mb = MAX_FILE_MB if args.max_file_mb is None else args.max_file_mb
    if not 0 < max_file_mb < 2**20:
        raise EvalsuiteError(f"bad --max-file-mb {args.max_file_mb}: give a size in MB above 0")
    db = db_path(args.db)

    def skip(path: Path, reason: str) -> None:
        print(f"evalsuite: skipped {names.printable(path)}: {names.printable(reason)[:500]}", file=sys.stderr)

    report = import_paths(args.paths, db, source=args.source, model=args.model, step=args.step,
                          on_skip=skip, max_file_mb=max_file_mb)
    extra = [f"{len(report.unchanged)} already stored"] if report.unchanged else []
    extra += [f"{len(report.skipped)} skipped"] if report.skipped else []
    files = "file" if len(report.imported) == 1 else "files"
    print(f"imported {len(report.imported)} {files} ({report.scores} scores, {report.samples} samples) "
          f"into {db}" + (f"; {', '.join(extra)}" if extra else ""))
    if not report.skipped:
        return 0
    return 1 if report.imported or report.unchanged else 2
