"""The `evalsuite` command line's arguments: one argparse subparser per command, every number
checked as it is parsed (numbers.py). What each command does is in cli.py, by its name."""

from __future__ import annotations

import argparse

from evalsuite import numbers

DB_HELP = "DuckDB store (default: $EVALSUITE_DB or results/evalsuite.duckdb)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalsuite", description="Evaluate language-model checkpoints (Pythia, the PolyPythias, your own "
        "training run, a Hub repository) with lm-eval and store every score.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_watch, _add_ls, _add_items, _add_compare, _add_stats, _add_export, _add_import,
                _add_dashboard):
        add(sub)
    return parser


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="evaluate checkpoints (default: the local demo model)")
    run.add_argument("--model", default=None,
                     help="a catalog name (pythia-70m, pythia-160m-seed3, models.yaml's), a Hub repository "
                          "ORG/NAME, any name with --model-path, a comma list, or 'all' (every Pythia model) "
                          "(default: pythia-demo, a tiny local model)")
    run.add_argument("--steps", default=None,
                     help="all, final, 1000,2000 or START:STOP:STRIDE; published and log on Pythia's schedule "
                          "(default: all)")
    _add_scoring_options(run)
    run.add_argument("--model-path", default=None,
                     help="local checkpoints: DIR/step<N>/ or DIR/checkpoint-<N>/ (HF Trainer), or those "
                          "under DIR/<model>/; a DIR with a config.json is one released checkpoint")
    _add_source_options(run)
    run.add_argument("--force", action="store_true", help="re-evaluate and replace what is already stored")
    run.add_argument("--cleanup", action="store_true", help="delete each Hub revision from the HF cache once evaluated")
    run.add_argument("--ray", default=None, metavar="ADDRESS",
                     help="run on Ray workers: local (a private instance on this machine), auto or "
                          "HOST:PORT (a running cluster)")
    run.add_argument("--workers", type=numbers.WORKERS, default=None, metavar="N",
                     help="with --ray: at most N workers (default: one per GPU slot or CPU)")


def _add_scoring_options(parser) -> None:
    """How checkpoints are scored: `run`'s options, shared by `watch`."""
    parser.add_argument("--tasks", default=None, help="comma list of tasks from tasks.yaml (default: all)")
    parser.add_argument("--shots", type=numbers.SHOTS, default=0, help="few-shot examples (default: 0)")
    parser.add_argument("--limit", type=numbers.LIMIT, default=None, help="documents per task (default: all)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if present)")
    parser.add_argument("--dtype", default=None,
                        help="float16 / bfloat16 / float32 (default: float16 on GPU, float32 on CPU)")
    parser.add_argument("--batch-size", default="auto", type=numbers.batch_size, help="batch size, or auto (default)")
    parser.add_argument("--backend", default="fast", choices=["fast", "hf"],
                        help="lm-eval model backend (default: fast)")


def _add_source_options(parser) -> None:
    """Where models, tasks and the store are: `run`'s options, shared by `watch`."""
    parser.add_argument("--tokens-per-step", type=numbers.TOKENS_PER_STEP, default=None, metavar="N",
                        help="tokens one training step consumed, for a model whose description does not say "
                             "(default: unknown; tokens seen are then not stored)")
    parser.add_argument("--models-file", default=None, help="models.yaml to use (default: the project's)")
    parser.add_argument("--data-dir", default=None,
                        help="task data: DIR/<task>/<split>.jsonl, or 'hub' (default: tasks.yaml's)")
    parser.add_argument("--tasks-file", default=None, help="tasks.yaml to use (default: the project's)")
    parser.add_argument("--db", default=None, help=DB_HELP)


def _add_watch(sub) -> None:
    watch = sub.add_parser(
        "watch", help="evaluate a training run's checkpoints as it saves them",
        description="Evaluate every complete checkpoint in DIR (stepN/, checkpoint-N/, or those under "
        "DIR/<model>/), then each new one as the training run writes it, in step order, until Ctrl-C, "
        "--until or --once. A checkpoint is read only once its files are complete and stopped changing; "
        "stored checkpoints are skipped (a restart resumes). Checkpoints are never deleted.")
    watch.add_argument("dir", metavar="DIR", help="the training run's output folder")
    watch.add_argument("--model", required=True, help="the name to store the run's scores under")
    watch.add_argument("--interval", type=numbers.INTERVAL, default=5.0, metavar="S",
                       help="seconds between looks at DIR (default: 5)")
    watch.add_argument("--until", type=numbers.UNTIL, default=None, metavar="STEP",
                       help="exit once a checkpoint at STEP or later is stored")
    watch.add_argument("--once", action="store_true", help="one pass over what is complete now, then exit")
    _add_scoring_options(watch)
    _add_source_options(watch)


def _add_ls(sub) -> None:
    ls = sub.add_parser("ls", help="show what is stored, per model x step x task")
    ls.add_argument("--model", default=None, help="only these models (comma list)")
    ls.add_argument("--source", default=None, help="only this source: local, published, ...")
    ls.add_argument("--db", default=None, help=DB_HELP)


def _add_items(sub) -> None:
    items = sub.add_parser(
        "items", help="which documents a model learns and forgets over its checkpoints",
        description="One row per document of a task, over a model's evaluated checkpoints in order: "
        "learned_at (the first step from which it is right at every later step; empty when it is "
        "wrong at the last), flips (how often its correctness changes between consecutive steps), "
        "final_correct and final_margin (the right choice's loglikelihood minus the best wrong one's, "
        "at the last step). Needs per-document samples: a sweep stores them, so does an import of "
        "lm-eval output written with --log_samples.")
    items.add_argument("--model", required=True, help="the model, e.g. pythia-160m")
    items.add_argument("--task", required=True, help="the task, e.g. arc_easy")
    items.add_argument("--shots", type=numbers.SHOTS, default=0, help="few-shot examples (default: 0)")
    items.add_argument("--metric", default="acc", choices=["acc", "acc_norm", "p_correct", "bpb"],
                       help="what 'right' means (default: acc); p_correct and bpb: acc's, and their value "
                       "at the last step (final_p_correct, final_bpb)")
    items.add_argument("--source", default=None, help="whose samples (default: the one source that has some)")
    items.add_argument("--format", default="table", choices=["table", "json"])
    items.add_argument("--out", default=None, help="write to this file instead of stdout")
    items.add_argument("--db", default=None, help=DB_HELP)


def _add_compare(sub) -> None:
    compare = sub.add_parser(
        "compare", help="is B better than A? two checkpoints compared on the documents both scored",
        description="Per task, on the documents both A and B scored: how many each gets right, how many "
        "only A and only B get right, the difference in the metric (B minus A) with a 95% interval from "
        "resampling the documents (seeded), and a p-value: exact McNemar for acc and acc_norm, paired t "
        "for p_correct and bpb; where a side has no samples (EleutherAI's published numbers), an unpaired "
        "z test from the two scores' stderrs, labelled unpaired-z.")
    compare.add_argument("a", metavar="A", help="MODEL@STEP (e.g. pythia-160m@1000), or MODEL: its last checkpoint")
    compare.add_argument("b", metavar="B", help="the same, for B")
    compare.add_argument("--task", default=None, help="only these tasks (comma list; default: every task both have)")
    compare.add_argument("--metric", default="acc", choices=["acc", "acc_norm", "p_correct", "bpb"],
                         help="default: acc")
    compare.add_argument("--shots", type=numbers.SHOTS, default=0, help="few-shot examples (default: 0)")
    compare.add_argument("--source", default=None,
                         help="both sides' source (default: each side's only source with samples, else its only one)")
    compare.add_argument("--source-a", default=None, help="A's source")
    compare.add_argument("--source-b", default=None, help="B's source")
    compare.add_argument("--format", default="table", choices=["table", "json"])
    compare.add_argument("--db", default=None, help=DB_HELP)


def _add_stats(sub) -> None:
    stats = sub.add_parser(
        "stats", help="noise, signal and their ratio per family, task, metric and shots",
        description="Per source, family, task, metric and shot count: signal, the relative dispersion "
        "(max - min) / mean of the family's scores at the last step all its models have; noise, the "
        "relative standard deviation of each model's score over its last N checkpoints, averaged over "
        "the family; snr = signal / noise (Heineman et al. 2025, 'Signal and Noise'). p_correct and bpb "
        "are computed from the stored samples.")
    stats.add_argument("--family", default=None, help="pythia, pythia-deduped, opt, bloom (default: every one)")
    stats.add_argument("--task", default=None, help="only these tasks (comma list)")
    stats.add_argument("--metric", default=None, choices=["acc", "acc_norm", "perplexity", "p_correct", "bpb"],
                       help="default: every one stored or derivable")
    stats.add_argument("--shots", type=numbers.SHOTS, default=None, help="only this shot count (default: each)")
    stats.add_argument("--source", default=None, help="only this source (default: each)")
    stats.add_argument("--last", type=numbers.LAST, default=5,
                       help="checkpoints a model's noise is measured over (default: 5)")
    stats.add_argument("--format", default="table", choices=["table", "json"])
    stats.add_argument("--db", default=None, help=DB_HELP)


def _add_export(sub) -> None:
    export = sub.add_parser("export", help="write stored scores as JSON or lm-eval result files, or samples")
    export.add_argument("--format", default="json", choices=["json", "lm-eval", "samples"],
                        help="json: scores; lm-eval: results files; samples: one row per document "
                        "per checkpoint (.jsonl or .parquet, by --out's extension)")
    export.add_argument("--out", default=None,
                        help="file (json; default stdout), folder (lm-eval) or .jsonl / .parquet file (samples)")
    export.add_argument("--model", default=None, help="only these models (comma list)")
    export.add_argument("--task", default=None, help="only these tasks (comma list)")
    export.add_argument("--source", default=None, help="only this source (default: all)")
    export.add_argument("--derived", action="store_true",
                        help="add p_correct and bpb, computed from the stored samples: one score per run "
                        "with samples (json, lm-eval), two columns per sample (samples)")
    export.add_argument("--db", default=None, help=DB_HELP)


def _add_import(sub) -> None:
    imp = sub.add_parser(
        "import", help="load lm-eval result files (0.3 published, 0.4 results_*.json) into the store",
        description="Load lm-eval result files into the store: lm-eval 0.3 files (EleutherAI's "
        "published ones) and lm-eval 0.4 results_*.json with the samples_*.jsonl beside them; "
        "every task of a file is stored (what is left out is named). Model, step and shots come from "
        "each file's content; importing a file again changes nothing. Each file is checked and stored "
        "whole, or skipped with one line saying why.",
        epilog="Exit status: 0 when every file was imported or already stored, 1 when some were "
        "skipped, 2 when all were skipped or on an error.")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="result files, or folders searched for *.json")
    imp.add_argument("--source", default=None,
                     help="source name stored with the rows (default: local; 'published' is "
                     "EleutherAI's numbers, so only name it for their files)")
    imp.add_argument("--model", default=None,
                     help="store the files' rows under this model name (the file's own name stays in "
                          "the run's model_source); needed for files that name no model")
    imp.add_argument("--step", type=numbers.STEP, default=None,
                     help="checkpoint step for files that name none (a file naming its own step keeps it)")
    imp.add_argument("--models-file", default=None, help="models.yaml to use (default: the project's)")
    imp.add_argument("--max-file-mb", type=numbers.MAX_FILE, default=None,
                     help="skip files larger than this, results and samples alike (default: 100)")
    imp.add_argument("--db", default=None, help=DB_HELP)


def _add_dashboard(sub) -> None:
    dash = sub.add_parser("dashboard", help="open the Streamlit dashboard on the store (localhost)")
    dash.add_argument("--port", type=numbers.PORT, default=8501, help="port (default: 8501)")
    dash.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default: 127.0.0.1, this machine only)")
    dash.add_argument("--db", default=None, help=DB_HELP)
