"""The per-document samples lm-eval 0.4 writes beside `results_<date>.json`
(`samples_<task>_<date>.jsonl`): read, checked, and turned into Samples and Documents.

A samples file is untrusted input like its results file, but it only adds to it: one that cannot
be read, or that describes its documents impossibly (a doc_id twice, a document with no
loglikelihoods, a right choice that is not one of its choices), is refused whole with one line,
and its results file is stored without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from evalsuite import names
from evalsuite.io.checks import BadRow, check_document, check_sample
from evalsuite.io.files import SkipFile, parse_json, read_file
from evalsuite.records import Document, Sample


@dataclass
class SamplesRead:
    """What a results file's samples files gave: rows per stored task, the lines for the report."""

    samples: list[Sample] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # every samples file found for it, read or refused
    size: int = 0  # bytes read


@dataclass(frozen=True)
class SamplesOf:
    """Whose samples: one results file's tasks (name in the file -> stored name and shot count)."""

    results: Path
    tasks: dict[str, tuple[str, int]]
    model: str
    step: int | None
    run_ids: dict[int, str]  # shots -> the run id of that shot count's job


def samples_file(results: Path, task: str) -> Path:
    return results.with_name(f"samples_{task}_{results.stem.removeprefix('results_')}.jsonl")


def read_samples(of: SamplesOf, max_mb: float) -> SamplesRead:
    """Every task's samples file beside `of.results`, where present."""
    out = SamplesRead()
    if not of.results.stem.startswith("results_"):
        return out
    for task, (stored, shots) in sorted(of.tasks.items()):
        file = samples_file(of.results, task)
        if not file.is_file():
            continue
        out.files.append(file)
        try:
            samples, documents, size = _one_file(file, stored, shots, of, max_mb)
        except SkipFile as exc:
            out.notes.append(f"samples file {names.printable(file.name)} left out: {exc}; "
                             f"the {names.printable(task)} scores are stored without samples")
            continue
        out.samples += samples
        out.documents += documents
        out.size += size
    return out


def _one_file(file: Path, task: str, shots: int, of: SamplesOf, max_mb: float):
    from evalsuite.lmeval.results import parse_documents, parse_samples

    data = read_file(file, max_mb)
    lines = [parse_json(line) for line in data.split(b"\n") if line.strip()]
    del data
    try:
        samples = parse_samples({task: lines}, model=of.model, step=of.step, shots=shots, run_id=of.run_ids[shots])
        documents = parse_documents({task: lines}, shots=shots)
        fingerprints = {d.doc_id: d.fingerprint for d in documents}
        for sample in samples:  # the document it was scored on, hashed here: a file's doc_hash may lie
            sample.fingerprint = fingerprints.get(sample.doc_id, sample.fingerprint)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise SkipFile(f"an unexpected shape ({type(exc).__name__}: {names.printable(exc)[:200]})") from None
    check_samples(samples, documents)
    return samples, documents, file.stat().st_size


def check_samples(samples: list[Sample], documents: Iterable[Document]) -> None:
    """A samples file's rows as one whole: each row checked, each doc_id once, each document
    with loglikelihoods and its right choice among them. SkipFile with the first problem."""
    seen: set[int] = set()
    try:
        for sample in samples:
            if sample.doc_id in seen:
                raise BadRow(f"document {sample.doc_id} appears twice")
            seen.add(sample.doc_id)
            check_sample(sample)
        choices = {s.doc_id: len(s.loglikelihoods) for s in samples}
        for document in documents:
            check_document(document, choices.get(document.doc_id))
    except BadRow as exc:
        raise SkipFile(str(exc)) from None
