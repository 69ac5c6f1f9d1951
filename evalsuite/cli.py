"""The `evalsuite` command: a thin argparse shell over the Python API.

Each subcommand parses its arguments and calls one function; heavy libraries (torch, lm_eval,
streamlit) are imported inside the command that needs them, so `evalsuite --help` is instant.
An EvalsuiteError becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from evalsuite import numbers
from evalsuite.errors import EvalsuiteError, Stopped


def cmd_run(args) -> None:
    from evalsuite import store
    from evalsuite.io.report import run_summary
    from evalsuite.lmeval import demo
    from evalsuite.sweep.cluster import options_from_args
    from evalsuite.sweep.config import config_from_args
    from evalsuite.sweep.local import SweepReport, run_sweep

    cfg, ray_opts = config_from_args(args), options_from_args(args)
    if cfg.models == [demo.DEMO_NAME]:
        print(f"Evaluating the demo model ({demo.DEMO_NAME}): a tiny GPT-NeoX built here with the "
              f"real Pythia tokenizer, NOT Pythia; {cfg.limit} documents per task.")
    store.init(cfg.db)  # an unusable store path fails now, not after the demo model is trained
    if demo.DEMO_NAME in cfg.models and not cfg.model_path and not demo.is_built():
        print(f"Building the demo model's checkpoints in {demo.DEMO_MODEL_DIR} (once, seconds).")
        demo.build_demo_checkpoints(progress=True)
    if ray_opts:
        from evalsuite.sweep.cluster import run_ray_sweep  # imports ray only when asked for

        on_ray = run_ray_sweep(cfg, ray_opts, say=print, warn=lambda line: print(line, file=sys.stderr, flush=True))
        summary = "\n".join(filter(None, [run_summary(cfg.db, on_ray, shots=cfg.shots), on_ray.cluster_summary()]))
        report: SweepReport = on_ray
    else:
        with _stop_on_sigterm():  # as Ctrl-C: the checkpoint in flight is committed (or kept) first
            report = run_sweep(cfg, say=print)
        summary = run_summary(cfg.db, report, shots=cfg.shots)
    if summary:
        print(summary)
    for failure in report.failed:
        where = f"step {failure.step}" if failure.step is not None else "(released)"
        print(f"not evaluated: {failure.model} {where}: {failure.reason}", file=sys.stderr)
    for line in report.unstored:
        print(f"evaluated, not stored: {line}", file=sys.stderr)
    if report.unstored:
        raise EvalsuiteError(f"{len(report.unstored)} evaluated checkpoint(s) are not in the store yet "
                             "(listed above); run the same command again once the store is free")
    if report.failed:
        raise EvalsuiteError(
            f"{len(report.failed)} checkpoint(s) could not be evaluated (listed above); the others "
            "are stored. Run the same command again to retry them")


def cmd_watch(args) -> None:
    from evalsuite.sweep.watch import options_from_args, watch

    report = watch(args, options_from_args(args), say=lambda line: print(line, flush=True))
    print(report.summary())  # each checkpoint that would not load was said when it failed


def cmd_ls(args) -> None:
    from evalsuite.io.report import listing

    print(listing(args.db, model=args.model, source=args.source))


def cmd_export(args) -> None:
    from evalsuite.io.export import export_from_args

    with _stop_on_sigterm():  # a stop removes the temporary files: the finally blocks run
        sys.stdout.write(export_from_args(args))


def cmd_items(args) -> None:
    from evalsuite.io.items import items_from_args

    with _stop_on_sigterm():
        print(items_from_args(args))


def cmd_compare(args) -> None:
    from evalsuite.io.compare import compare_from_args

    print(compare_from_args(args))


def cmd_stats(args) -> None:
    from evalsuite.io.stats import stats_from_args

    print(stats_from_args(args))


def cmd_import(args) -> int:
    from evalsuite import names
    from evalsuite.io.importer import ImportInterrupted, import_from_args

    def skip(path, reason: str) -> None:
        print(f"evalsuite: skipped {names.printable(path)}: {names.printable(reason)[:500]}", file=sys.stderr)

    def note(path, line: str) -> None:
        print(f"evalsuite: {names.printable(path)}: {names.printable(line)[:500]}", file=sys.stderr)

    try:
        report = import_from_args(args, on_skip=skip, on_note=note)
    except ImportInterrupted as exc:
        print(f"evalsuite: interrupted: {exc}", file=sys.stderr)
        return 130
    print(report.summary())
    return report.exit_status()


def cmd_dashboard(args) -> None:
    from dashboard.launch import launch

    launch(args.db, host=args.host, port=args.port, say=lambda line: print(line, flush=True),
           warn=lambda line: print(line, file=sys.stderr))


@contextlib.contextmanager
def _stop_on_sigterm():
    """SIGTERM stops the command as Ctrl-C does (KeyboardInterrupt), so what it was writing is
    cleaned up and it ends with one line, not killed mid-write."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


STOPPED = {"run": "finished checkpoints are stored",
           "export": "nothing was written; an earlier output file is as it was",
           "items": "nothing was written; an earlier output file is as it was"}


def _stopped(args, stop: KeyboardInterrupt) -> str:
    """The one line for a Ctrl-C (or a SIGTERM) of this command, with what it kept."""
    notes = "; ".join(getattr(stop, "__notes__", []))
    said = STOPPED.get(getattr(args, "command", None) or "", "stopped")
    return f"evalsuite: interrupted; {said}" + (f"; {notes}" if notes else "")


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
    run.set_defaults(func=cmd_run)


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
    watch.set_defaults(func=cmd_watch)


def _add_ls(sub) -> None:
    ls = sub.add_parser("ls", help="show what is stored, per model x step x task")
    ls.add_argument("--model", default=None, help="only these models (comma list)")
    ls.add_argument("--source", default=None, help="only this source: local, published, ...")
    ls.add_argument("--db", default=None, help=DB_HELP)
    ls.set_defaults(func=cmd_ls)


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
    items.set_defaults(func=cmd_items)


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
    compare.set_defaults(func=cmd_compare)


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
    stats.set_defaults(func=cmd_stats)


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
    export.set_defaults(func=cmd_export)


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
    imp.set_defaults(func=cmd_import)


def _add_dashboard(sub) -> None:
    dash = sub.add_parser("dashboard", help="open the Streamlit dashboard on the store (localhost)")
    dash.add_argument("--port", type=numbers.PORT, default=8501, help="port (default: 8501)")
    dash.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default: 127.0.0.1, this machine only)")
    dash.add_argument("--db", default=None, help=DB_HELP)
    dash.set_defaults(func=cmd_dashboard)


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        # every number is checked as it is parsed (numbers.py): a bad one is one line, exit 2
        args = build_parser().parse_args(argv)
        status = args.func(args)  # None, or an exit status (import: 1 when some files failed)
    except EvalsuiteError as exc:
        print(f"evalsuite: error: {exc}", file=sys.stderr)
        return 2
    except Stopped as exc:  # SIGTERM or SIGHUP, where a command turns them into a clean stop
        notes = "".join(f"; {note}" for note in getattr(exc, "__notes__", []))
        print(f"evalsuite: stopped by {exc.signal_name}; finished checkpoints are stored{notes}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt as stop:
        print(_stopped(args, stop), file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a Ctrl-C DuckDB caught in a query of its own is this, not a KeyboardInterrupt
        if str(exc) != "Query interrupted":
            raise
        print(_stopped(args, KeyboardInterrupt()), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader stopped early (`evalsuite export | head`): not our error, and no traceback;
        # stdout goes to /dev/null so the interpreter's last flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
