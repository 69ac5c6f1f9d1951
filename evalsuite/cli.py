"""The `evalsuite` command: a thin argparse shell over the Python API.

Each subcommand's arguments are parsed (arguments.py), then one function here calls the API;
heavy libraries (torch, lm_eval, streamlit) are imported inside the command that needs them, so
`evalsuite --help` is instant.
An EvalsuiteError becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from evalsuite.arguments import build_parser
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


# What each command does, by the name the parser gives it (args.command)
COMMANDS = {"run": cmd_run, "watch": cmd_watch, "ls": cmd_ls, "items": cmd_items, "compare": cmd_compare,
            "stats": cmd_stats, "export": cmd_export, "import": cmd_import, "dashboard": cmd_dashboard}


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        # every number is checked as it is parsed (numbers.py): a bad one is one line, exit 2
        args = build_parser().parse_args(argv)
        status = COMMANDS[args.command](args)  # None, or an exit status (import: 1 when some files failed)
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
