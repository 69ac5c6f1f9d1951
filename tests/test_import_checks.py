"""`evalsuite import` on hostile and nonsensical files: each one skipped with one line saying why,
the good files beside it stored, nothing out of range in the store, no file read that is not a
regular file under the size limit. (Issue 11, items 3, 4 and 5.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.io import importer

NESTED = "[" * 100_000 + "]" * 100_000


def lm_eval_04(model_args: str = "pretrained=EleutherAI/pythia-70m,revision=step1000", acc=0.6,
               shots=0, n=1838, limit=None) -> dict:
    """A small lm-eval 0.4 results file: PIQA, acc and acc_norm."""
    return {"results": {"piqa": {"alias": "piqa", "acc,none": acc, "acc_stderr,none": 0.01,
                                 "acc_norm,none": 0.61, "acc_norm_stderr,none": 0.011}},
            "n-shot": {"piqa": shots}, "n-samples": {"piqa": {"original": 1838, "effective": n}},
            "config": {"model": "hf", "model_args": model_args, "limit": limit},
            "lm_eval_version": "0.4.13"}


def text(raw: dict, **raw_values: str) -> str:
    """The file as JSON, with placeholder strings '@name@' replaced by raw JSON text."""
    out = json.dumps(raw)
    for name, value in raw_values.items():
        out = out.replace(f'"@{name}@"', value)
    return out


GOOD = text(lm_eval_04())

# Item 3: each of these was a traceback that lost every file of the import.
CRASHERS = {
    "nested.json": NESTED,
    "digits.json": text(lm_eval_04(n="@x@"), x="9" * 5000),
    "nshot_infinity.json": text(lm_eval_04(shots="@x@"), x="Infinity"),
    "limit_infinity.json": text(lm_eval_04(limit="@x@"), x="Infinity"),
    "value_10e400.json": text(lm_eval_04(acc="@x@"), x="1" + "0" * 400),
    "float_1e400.json": text(lm_eval_04(acc="@x@"), x="1e400"),
    "huge_step.json": text(lm_eval_04("pretrained=EleutherAI/pythia-70m,revision=step99999999999")),
    "n_lots.json": text(lm_eval_04(n="lots")),
    "n_int32_overflow.json": text(lm_eval_04(n=2**31)),
}

# Item 4: each of these was stored silently.
NONSENSE = {
    "acc_nan.json": (text(lm_eval_04(acc="@x@"), x="NaN"), "piqa acc = nan is not a finite number"),
    "acc_inf.json": (text(lm_eval_04(acc="@x@"), x="Infinity"), "piqa acc = inf is not a finite number"),
    "acc_negative.json": (text(lm_eval_04(acc=-5)), "piqa acc = -5.0: an accuracy lies between 0 and 1"),
    "acc_42.json": (text(lm_eval_04(acc=42)), "piqa acc = 42.0: an accuracy lies between 0 and 1"),
    "shots_negative.json": (text(lm_eval_04(shots=-3)), "shots -3 is not a whole number from 0 to 2,147,483,647"),
    "limit_negative.json": (text(lm_eval_04(limit=-2)), "limit -2 is not a whole number from 0 to 2,147,483,647"),
    "step_never.json": (text(lm_eval_04("pretrained=EleutherAI/pythia-70m,revision=step1500")),
                        "pythia-70m has no step 1500: its checkpoints are steps 0, 1, 2, 4 ... 512, "
                        "then 1000 ... 143000 every 1000"),
    "two_revisions.json": (text(lm_eval_04("pretrained=EleutherAI/pythia-70m,revision=step1000,revision=step2000")),
                           "config.model_args names 'revision' more than once"),
    "duplicate_json_key.json": ('{"results": {}, "results": ' + json.dumps(lm_eval_04()["results"]) + "}",
                                "not valid JSON (key 'results' appears twice in one object)"),
    "model_dotdot.json": (text(lm_eval_04("pretrained=foo/..,revision=step1000")),
                          "the file names model '..', not a usable name"),
    "model_nul.json": (text(lm_eval_04("pretrained=EleutherAI/pythia\u0000x,revision=step1000")),
                       "the file names model 'pythia\\x00x', not a usable name"),
}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body)
    return folder


def _skips(err: str) -> dict[str, str]:
    """{file name: reason} from the import's stderr, every line one skip."""
    out = {}
    for line in err.splitlines():
        assert line.startswith("evalsuite: skipped "), line
        path, reason = line.removeprefix("evalsuite: skipped ").split(": ", 1)
        out[Path(path).name] = reason
    return out


def _stored(db: Path):
    return store.read_df(db, "SELECT * FROM scores WHERE source <> 'published' ORDER BY ALL")


def test_crashing_files_are_skipped_one_line_each_and_the_good_file_is_stored(tmp_path, capsys):
    folder = _write(tmp_path / "in", {"good.json": GOOD, **CRASHERS})
    db = tmp_path / "s.duckdb"
    assert main(["import", str(folder), "--db", str(db)]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"imported 1 file (2 scores, 0 samples) into {db}; {len(CRASHERS)} skipped\n"
    skips = _skips(captured.err)
    assert set(skips) == set(CRASHERS)
    assert skips["nested.json"] == "not valid JSON (nested too deeply)"
    assert skips["digits.json"] == "not valid JSON (a 5000-digit integer)"
    assert skips["nshot_infinity.json"] == "piqa shots inf is not a whole number"
    assert skips["limit_infinity.json"] == "config.limit inf is not a whole number"
    assert skips["value_10e400.json"] == "not valid JSON (a 401-digit integer)"
    assert skips["float_1e400.json"] == "piqa acc = inf is not a finite number"
    assert skips["huge_step.json"] == "revision 'step99999999999' is not a checkpoint step (stepN); pass --step"
    assert skips["n_lots.json"] == "piqa n-samples 'lots' is not a whole number"
    assert skips["n_int32_overflow.json"] == "n 2147483648 is not a whole number from 0 to 2,147,483,647"
    stored = _stored(db)
    assert list(zip(stored["metric"], stored["value"])) == [("acc", 0.6), ("acc_norm", 0.61)]


def test_nonsense_is_skipped_with_the_reason_and_never_stored(tmp_path, capsys):
    folder = _write(tmp_path / "in", {name: body for name, (body, _) in NONSENSE.items()})
    db = tmp_path / "s.duckdb"
    assert main(["import", str(folder), "--db", str(db)]) == 2  # every file skipped
    skips = _skips(capsys.readouterr().err)
    for name, (_, reason) in NONSENSE.items():
        assert skips[name].startswith(reason), (name, skips[name])
    assert _stored(db).empty
    assert store.read_df(db, "SELECT count(*) AS n FROM runs WHERE source <> 'published'").n[0] == 0


def test_a_bad_file_between_batches_costs_no_good_file(tmp_path, monkeypatch):
    # Each file its own batch: the bad one in the middle once failed its batch with a traceback,
    # leaving the batches before it stored and the ones after it not.
    monkeypatch.setattr(importer, "FLUSH_BYTES", 1)
    files = {f"a{step}.json": text(lm_eval_04(f"pretrained=EleutherAI/pythia-70m,revision=step{step}"))
             for step in (1000, 2000)}
    files["b_bad.json"] = CRASHERS["n_int32_overflow.json"]
    files.update({f"c{step}.json": text(lm_eval_04(f"pretrained=EleutherAI/pythia-70m,revision=step{step}"))
                  for step in (3000, 4000)})
    report = importer.import_paths([_write(tmp_path / "in", files)], tmp_path / "s.duckdb", seed=False)
    assert [p.name for p, _ in report.skipped] == ["b_bad.json"]
    assert sorted(p.name for p in report.imported) == ["a1000.json", "a2000.json", "c3000.json", "c4000.json"]
    assert sorted(set(_stored(tmp_path / "s.duckdb")["step"])) == [1000, 2000, 3000, 4000]


def test_a_batch_the_store_refuses_is_written_file_by_file(tmp_path, monkeypatch):
    """Should an insert fail on data after all (every row is checked first), only its file is lost."""
    import duckdb

    real = store.write_jobs

    def refuse_step_2000(db, jobs):
        if any(job.run.step == 2000 for job in jobs):
            raise duckdb.ConversionException("Conversion Error: refused")
        return real(db, jobs)

    monkeypatch.setattr(store, "write_jobs", refuse_step_2000)
    files = {f"{step}.json": text(lm_eval_04(f"pretrained=EleutherAI/pythia-70m,revision=step{step}"))
             for step in (1000, 2000, 3000)}
    report = importer.import_paths([_write(tmp_path / "in", files)], tmp_path / "s.duckdb", seed=False)
    assert report.skipped == [(tmp_path / "in" / "2000.json",
                               "the store refused it (ConversionException: Conversion Error: refused)")]
    assert sorted(set(_stored(tmp_path / "s.duckdb")["step"])) == [1000, 3000]


def _import_subprocess(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    # In a child with a memory cap, so that a regression reading /dev/zero cannot eat the machine.
    def cap():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    return subprocess.run([sys.executable, "-m", "evalsuite", "import", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=cap, stdin=subprocess.DEVNULL)


def test_only_regular_files_under_the_size_limit_are_read(tmp_path):
    folder = _write(tmp_path / "in", {"good.json": GOOD})
    os.mkfifo(folder / "fifo.json")  # open() on it would wait for a writer forever
    (folder / "zero.json").symlink_to("/dev/zero")  # read_bytes() would fill the memory
    with open(folder / "sparse.json", "wb") as big:  # over the default 100 MB, without the disk
        big.truncate(101 * 2**20)
    db = tmp_path / "s.duckdb"
    started = time.monotonic()
    done = _import_subprocess([str(folder), str(folder / "fifo.json"), "--db", str(db)])
    assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stderr
    assert _skips(done.stderr) == {"fifo.json": "not a regular file", "zero.json": "not a regular file",
                                   "sparse.json": "larger than the 100 MB limit (--max-file-mb)"}
    assert done.stdout == f"imported 1 file (2 scores, 0 samples) into {db}; 3 skipped\n"


def test_the_size_limit_is_overridable(tmp_path, capsys):
    folder = _write(tmp_path / "in", {"good.json": GOOD})
    db = tmp_path / "s.duckdb"
    assert main(["import", str(folder), "--db", str(db), "--max-file-mb", "0.0001"]) == 2
    assert _skips(capsys.readouterr().err) == {"good.json": "larger than the 0.0001 MB limit (--max-file-mb)"}
    assert main(["import", str(folder), "--db", str(db), "--max-file-mb", "1"]) == 0
    assert main(["import", str(folder), "--db", str(db), "--max-file-mb", "-1"]) == 2
    assert capsys.readouterr().err.endswith("evalsuite: error: bad --max-file-mb -1.0: give a size in MB above 0\n")


def test_a_symlink_loop_in_a_folder_does_not_stall_the_walk(tmp_path, capsys):
    folder = _write(tmp_path / "in", {"good.json": GOOD})
    (folder / "loop").symlink_to(folder)
    assert main(["import", str(folder), "--db", str(tmp_path / "s.duckdb")]) == 0
    assert capsys.readouterr().out.startswith("imported 1 file (2 scores, 0 samples)")


def test_a_fractional_limit_is_refused_and_a_whole_float_one_kept(tmp_path, capsys):
    # lm-eval's --limit is a float: 100.0 is 100 documents, 0.1 a tenth of each task.
    folder = _write(tmp_path / "in", {"tenth.json": text(lm_eval_04(limit=0.1)),
                                      "hundred.json": text(lm_eval_04(limit=100.0))})
    db = tmp_path / "s.duckdb"
    assert main(["import", str(folder), "--db", str(db)]) == 1
    assert _skips(capsys.readouterr().err) == {"tenth.json": (
        "config.limit 0.1 is a fraction of each task's documents; evalsuite stores limits as document counts")}
    assert set(_stored(db)["doc_limit"]) == {100}


@pytest.mark.parametrize("flag,value,message", [
    ("--source", "x/../../../../pwned", "bad source name 'x/../../../../pwned'"),
    ("--source", "..", "bad source name '..'"),
    ("--model", "a/b", "bad model name 'a/b'"),
    ("--model", "pythia\x00x", "bad model name 'pythia\\x00x'"),
])
def test_names_given_on_the_command_line_are_checked(tmp_path, capsys, flag, value, message):
    folder = _write(tmp_path / "in", {"good.json": GOOD})
    assert main(["import", str(folder), "--db", str(tmp_path / "s.duckdb"), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evalsuite: error: {message}: use letters, digits") and err.count("\n") == 1


# --- Issue 10: the documents a samples file describes are checked as its rows are ---

DATE = "2024-05-01T00-00-00.000000"


def sample_line(doc_id: int = 0, **changes) -> dict:
    """One line of lm-eval 0.4's samples_piqa_<date>.jsonl, as its EvaluationTracker writes it."""
    prompt = f"Question: goal {doc_id}?\nAnswer:"
    line = {"doc_id": doc_id, "doc": {"goal": f"goal {doc_id}?", "sol1": "a", "sol2": "b", "label": 0},
            "target": "0", "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": " a"},
                                         "gen_args_1": {"arg_0": prompt, "arg_1": " b"}},
            "filtered_resps": [["-1.0", "False"], ["-2.0", "False"]], "acc": 1.0, "acc_norm": 1.0}
    return {**line, **changes}


LONG = "x" * 200_001
BARE = ("doc", "arguments")  # a line that logs no document (only its outcome)


def _lines(first: dict, drop: tuple = (), twice: bool = False) -> list[dict]:
    """Three lines of a samples file, the first changed (and logged twice, or without `drop`)."""
    lines = [{k: v for k, v in sample_line(d, **(first if d == 0 else {})).items() if k not in drop} for d in range(3)]
    return [lines[0]] + lines if twice else lines


# Issue 20, item 6: the last three were stored, and the Items view then counted or failed on them.
SAMPLES_PROBLEMS = {
    "one_argument": (_lines({"arguments": {"gen_args_0": {"arg_0": "Q"}, "gen_args_1": {"arg_0": "Q"}}}),
                     "an unexpected shape (ValueError: a request's arguments are not a "
                     "(context, continuation) pair of strings)"),
    "number_prompt": (_lines({"arguments": [[1, " a"], [1, " b"]]}), "an unexpected shape"),
    "long_prompt": (_lines({"arguments": [[LONG, " a"], [LONG, " b"]]}),
                    "piqa document 0: a prompt is not text of at most 200,000 characters"),
    "three_choices": (_lines({"arguments": [["Q", " a"], ["Q", " b"], ["Q", " c"]]}),
                      "piqa document 0: 3 choices, but its sample scored 2"),
    "target_5": (_lines({"target": "5"}), "piqa document 0: the right answer 5 is not one of its 2 choices"),
    "bare_target_5": (_lines({"target": "5"}, drop=BARE),
                      "piqa document 0: the right answer 5 is not one of its 2 choices"),
    "no_loglikelihoods": (_lines({"filtered_resps": []}, drop=BARE), "piqa document 0: no loglikelihoods"),
    "doc_id_twice": (_lines({}, twice=True), "document 0 appears twice"),
}


@pytest.mark.parametrize("name", list(SAMPLES_PROBLEMS))
def test_a_bad_samples_file_is_refused_whole_and_its_results_file_stored(tmp_path, capsys, name):
    """Issue 16, item 5 (a samples file that cannot be read cost its results file too) and issue
    20, item 6 (hostile samples were stored): the samples file is refused whole with one line."""
    lines, reason = SAMPLES_PROBLEMS[name]
    folder = _write(tmp_path / "in", {f"results_{DATE}.json": GOOD,
                                      f"samples_piqa_{DATE}.jsonl": "\n".join(map(json.dumps, lines))})
    db = tmp_path / "s.duckdb"
    assert main(["import", str(folder), "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"imported 1 file (2 scores, 0 samples) into {db}")
    prefix = (f"evalsuite: {folder / f'results_{DATE}.json'}: samples file samples_piqa_{DATE}.jsonl left out: "
              f"{reason}")
    assert err.startswith(prefix) and err.endswith("; the piqa scores are stored without samples\n")
    assert err.count("\n") == 1
    for table in ("samples", "documents"):
        assert store.read_df(db, f"SELECT count(*) AS n FROM {table}").n[0] == 0
    assert len(_stored(db)) == 2


def test_samples_with_their_documents_are_stored_and_lines_without_keep_their_sample(tmp_path, capsys):
    bare = {k: v for k, v in sample_line(2).items() if k not in ("doc", "arguments")}
    folder = _write(tmp_path / "in", {f"results_{DATE}.json": GOOD, f"samples_piqa_{DATE}.jsonl": "\n".join(
        json.dumps(line) for line in (sample_line(0), sample_line(1), bare))})
    db = tmp_path / "s.duckdb"
    assert main(["import", str(folder), "--db", str(db)]) == 0
    assert capsys.readouterr().out == f"imported 1 file (2 scores, 3 samples) into {db}\n"
    docs = store.read_df(db, "SELECT doc_id, prompt, choices, contexts, target FROM documents ORDER BY doc_id")
    assert list(docs.doc_id) == [0, 1] and list(docs.target) == [0, 0]
    assert docs.prompt[1] == "Question: goal 1?\nAnswer:" and list(docs.choices[1]) == [" a", " b"]
    assert docs.contexts.isna().all()  # the choices share their prompt
