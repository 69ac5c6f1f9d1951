"""The typed shape of what evalsuite stores: one run, its scores, its per-document outcomes, the
documents themselves, and what is known about each model.

Every row carries its own identity (model, step, task, metric, shots, source, run id); nothing is
parsed out of file names. store/schema.py maps these to DuckDB tables of the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime


@dataclass
class Run:
    """Provenance of one (model, step) job, or of one imported result file."""

    run_id: str
    source: str  # 'local' for runs made here, 'published' for EleutherAI's, or an import name
    model: str
    step: int | None  # None: a model with a single checkpoint (OPT, BLOOM)
    backend: str | None = None  # lm-eval model backend ('hf', 'evalsuite-fast') or None
    model_source: str | None = None  # 'EleutherAI/pythia-70m@step1000' or a local directory
    model_commit: str | None = None  # the Hub commit actually loaded (revisions are branches that can move)
    data_source: str | None = None  # 'hub' or the local data directory
    doc_limit: int | None = None  # --limit: documents per task, None for the full set
    dtype: str | None = None
    batch_size: str | None = None
    device: str | None = None
    gpu_name: str | None = None
    hostname: str | None = None
    evalsuite_commit: str | None = None
    lm_eval_version: str | None = None
    transformers_version: str | None = None
    torch_version: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None


@dataclass
class Score:
    """One aggregate metric of one task at one checkpoint."""

    model: str
    step: int | None
    tokens: int | None = field(metadata={"sql": "BIGINT"})  # tokens seen at this step
    task: str
    metric: str  # 'acc', 'acc_norm', 'perplexity'
    shots: int
    value: float
    stderr: float | None
    n: int | None  # documents evaluated
    doc_limit: int | None
    dtype: str | None
    run_id: str
    source: str


@dataclass
class Sample:
    """One document's outcome: enough to study item-level training dynamics."""

    run_id: str
    model: str
    step: int | None
    task: str
    shots: int
    doc_id: int
    target: int | None  # index of the right choice; None for LAMBADA
    correct: bool  # acc for this document
    correct_norm: bool | None  # acc_norm for this document, where the task has it
    loglikelihoods: list[float]  # one per choice (LAMBADA: one, the target word)
    is_greedy: list[bool]
    # the Document's fingerprint it was scored on: another source's text for the same doc_id is
    # another Document; None in stores made before samples carried it, where it was ambiguous.
    # Stored as its number in the fingerprints table (schema.py): 64 hex digits on each of a
    # full sweep's 28.7M sample rows were two thirds of the store.
    fingerprint: str | None = field(default=None, metadata={"interned": "fingerprints"})


@dataclass
class Fingerprint:
    """A document fingerprint, stored once: what a samples row's `fingerprint_id` stands for."""

    fingerprint_id: int  # 1, 2, ... in the order first stored
    fingerprint: str


@dataclass
class SampleMean:
    """A derived metric (p_correct, bpb: store/metrics.py) over one run's samples of a task: its
    mean over the documents, as the scores table holds acc. Not a measurement of its own: worked
    out again from the samples and their documents whenever either is written (store/means.py),
    so a curve of every checkpoint reads these rows, not every sample's loglikelihoods."""

    run_id: str
    model: str
    step: int | None
    task: str
    shots: int
    metric: str
    value: float
    stderr: float | None  # the sample standard deviation over sqrt(n), as lm-eval's mean_stderr
    n: int  # documents with a finite value (a run with none has no row)


@dataclass
class Document:
    """One evaluated document, stored once (not once per checkpoint): what a sample's doc_id is.

    Built from lm-eval's requests for it, as a sweep prepared them or as lm-eval's samples file
    logs them: each request is a (context, continuation) pair. Multiple-choice tasks share one
    context (`prompt`) across their choices; WinoGrande puts each option into its own context
    (`contexts`) and scores the same continuation after each; LAMBADA has one request.
    """

    task: str
    shots: int  # few-shot examples in the prompt: the same document has another prompt at 5-shot
    doc_id: int
    fingerprint: str  # lm-eval's doc_hash: sha256 of the document's data as JSON
    prompt: str  # the first request's context, as lm-eval built it (few-shot examples included)
    choices: list[str]  # each request's continuation, in lm-eval's order
    contexts: list[str] | None  # each request's own context where they differ (WinoGrande), else None
    target: int | None  # index of the right choice; None where there is one continuation (LAMBADA)


@dataclass
class Model:
    """What a store knows about one model, so that a reader without the catalog (the dashboard,
    from a wheel) can group, colour and place it: written in the transaction of each job of the
    model, and seeded for the built-in catalog. Unknown facts stay None."""

    model: str
    family: str  # 'pythia', 'pythia-deduped', 'polypythias', 'opt', 'bloom', a user's, or 'other'
    params: int | None = field(default=None, metadata={"sql": "BIGINT"})  # from the catalog, or counted
    tokens_per_step: int | None = field(default=None, metadata={"sql": "BIGINT"})
    repo: str | None = None  # Hugging Face Hub repository
    main: int | None = None  # the step the repository's main revision holds
    checkpoints: int | None = None  # how many checkpoints the model has, where known
    card: str | None = None  # where the facts come from


@dataclass
class Sweep:
    """One `evalsuite run` in flight or over: what the dashboard's progress bar and ETA read."""

    sweep_id: str
    models: str  # comma list
    planned: int  # checkpoints it set out to evaluate
    done: int = 0  # checkpoints stored so far (counted in each job's own transaction)
    status: str = "running"  # running, done, stopped; a killed sweep stays 'running', not updated
    started_at: datetime | None = None
    updated_at: datetime | None = None
    hostname: str | None = None
    note: str | None = None  # what `evalsuite watch` is waiting for (the next checkpoint, an incomplete one)


@dataclass
class WorkerState:
    """One worker of a Ray sweep as its driver last saw it: what the dashboard's Runs view lists."""

    sweep_id: str
    worker: int  # 0, 1, ... in the order started; a replacement for a lost worker gets a new number
    state: str  # starting, idle, evaluating, lost, stopped
    node: str | None = None  # host name of the worker's machine
    node_id: str | None = None  # Ray's node id (several nodes may share a host name)
    gpu: str | None = None  # the GPU it sees and its share ("0 (1/4)"), or "cpu"
    pid: int | None = None
    model: str | None = None  # the checkpoint it is scoring now (or loading, before the first)
    step: int | None = None
    done: int = 0  # checkpoints it evaluated
    updated_at: datetime | None = None


@dataclass(frozen=True)
class JobKey:
    """What makes two evaluations the same: resuming skips a task whose key is already stored."""

    model: str
    step: int | None
    shots: int
    doc_limit: int | None
    dtype: str | None
    source: str = "local"

    def where(self, task: str | None = None, every_step: bool = False) -> tuple[str, list]:
        """The SQL condition (and its parameters) selecting the scores stored under this key:
        one task's or all, this step's or every step's."""
        clause = ("model = ? AND shots = ? AND source = ? AND doc_limit IS NOT DISTINCT FROM ? "
                  "AND dtype IS NOT DISTINCT FROM ?")
        params: list = [self.model, self.shots, self.source, self.doc_limit, self.dtype]
        if not every_step:
            clause, params = clause + " AND step IS NOT DISTINCT FROM ?", params + [self.step]
        if task is not None:
            clause, params = clause + " AND task = ?", params + [task]
        return clause, params


@dataclass
class JobTimes:
    """Where one checkpoint's time went in a sweep (not stored; printed and benchmarked)."""

    load_wait_s: float = 0.0  # blocked on the prefetched checkpoint (read into host memory)
    place_s: float = 0.0  # moving it to the device, once the previous model is gone
    scoring_s: float = 0.0  # the backend's loglikelihood call
    metrics_s: float = 0.0  # lm-eval's filters, per-document metrics, aggregation; sample records
    wall_s: float = 0.0  # the checkpoint's share of the sweep's wall time (commit excluded)
    commit_s: float = 0.0  # the store transaction, which overlaps the next checkpoint


@dataclass
class JobRecord:
    """One evaluated checkpoint (or imported file): its run, scores and per-document samples,
    committed to the store together in one transaction. An imported file also carries the
    documents its samples file describes (a sweep stores its documents once, before its jobs)."""

    run: Run
    shots: int
    scores: list[Score]
    samples: list[Sample]
    times: JobTimes = field(default_factory=JobTimes)
    documents: list[Document] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines for whoever watches (a backend fallback); not stored
    model: Model | None = None  # what is known about the model, stored with the job

    @property
    def key(self) -> JobKey:
        run = self.run
        return JobKey(run.model, run.step, self.shots, run.doc_limit, run.dtype, run.source)


def columns(record_type) -> list[str]:
    return [f.name for f in fields(record_type)]

