"""Fuzz: thousands of malformed and hostile result files and names thrown at import, export and ls.

A seeded generator (the same cases on every run, so a failure reproduces) mutates small valid
lm-eval 0.4 and 0.3 files: hostile values at the fields evalsuite reads (NaN, infinities, 5000-digit
and 10**400 integers, 1e400, negative and int32-overflowing counts, wrong types, deep nesting,
path-traversal, NUL, terminal-escape and markdown names, duplicate keys, forged revisions), and
broken bytes (truncation, flipped bytes, bad UTF-8, a BOM). They are imported in one folder,
with valid files among them, in small batches. Then export and ls run on the store, and hostile
names go through every name flag. Asserted: no traceback, every stderr line one line, every
valid file stored, nothing stored out of range, no file written outside --out, the store still
readable. Counts (README "Trust and safety"): HOSTILE_FILES + VALID_FILES files, NAME_CASES names.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from evalsuite import names, store
from evalsuite.catalog.pythia import ALL_STEPS
from evalsuite.cli import main
from evalsuite.io import importer

pytestmark = pytest.mark.slow

SEED = 11
HOSTILE_FILES = 5000
VALID_FILES = 100  # pythia-410m at its first 100 checkpoints; no hostile file uses that model
NAME_CASES = 300

HOSTILE_STRINGS = [
    "..", ".", "", " ", "../../../../tmp/pwned", "/etc/passwd", "a/b", "a\\b", "pythia-70m\x00", "a\x00b",
    "\x1b[2J\x1b]0;owned\x07", "[sign in](https://evil.example)", "![x](https://evil.example/x.png)",
    "\u202eevil", "https://evil.example", "<img src=x onerror=alert(1)>", ":red[x]", "$x$", "`x`",
    "step99999999999", "step1500", "step-1", "main", "step" + "9" * 5000, "a,b", "a=b", "-x", "x" * 1000,
    "pythia-410m\n", "ü", "pythia-70m", "piqa", "acc", "published", "local", "float16",
]
MODEL_ARGS = [
    "pretrained=foo/..,revision=step1000", "pretrained=..,revision=step1000",
    "pretrained=EleutherAI/pythia-70m,revision=step1000,revision=step2000",
    "pretrained=EleutherAI/pythia-70m,revision=step99999999999", "pretrained=EleutherAI/pythia-70m,revision=step1500",
    "pretrained=EleutherAI/pythia-70m,revision=step" + "9" * 5000, "pretrained=/x/pythia-70m/step" + "9" * 5000,
    "pretrained=../../../../tmp/pwned,revision=step0", "pretrained=EleutherAI/pythia\x00,revision=step1",
    "pretrained=EleutherAI/pythia-70m,dtype=a/b,revision=step1000", "pretrained=EleutherAI/pythia-70m,dtype=..",
    "pretrained=EleutherAI/pythia-70m", "pretrained=EleutherAI/pythia-70m,revision=main", "revision=step1000",
    "pretrained=[sign in](https://evil.example),revision=step1000", "pretrained=/ckpt/pythia-demo/step7",
    "pretrained=" + "x" * 5000 + "/pythia-70m,revision=step1000",
]
RAW_VALUES = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "9" * 5000, "-5", "42", "-3",
    str(2**31), str(2**63), str(-(2**31) - 1), "0.5", "1.5", "0", "1", "5e-324", "-0.0", "1e308",
    "true", "false", "null", '"lots"', '"N/A"', '"5"', "[]", "{}", "[1, 2]", '{"effective": 5}',
    "[" * 3000 + "]" * 3000, '"' + "a" * 100_000 + '"',
] + [json.dumps(s) for s in HOSTILE_STRINGS] + [json.dumps(a) for a in MODEL_ARGS]


def _base(rng: random.Random) -> tuple[dict, list[tuple]]:
    """A small valid file (lm-eval 0.4 or 0.3 shape) of a model other than pythia-410m, and the
    paths of the fields evalsuite reads in it."""
    model = rng.choice(["pythia-70m", "pythia-160m-deduped", "opt-125m", "bloom-560m", "pythia-demo"])
    args = {"opt-125m": "pretrained=facebook/opt-125m", "bloom-560m": "pretrained=bigscience/bloom-560m",
            "pythia-demo": f"pretrained=/ckpt/pythia-demo/step{rng.randrange(1000)}"}.get(
        model, f"pretrained=EleutherAI/{model},revision=step{rng.choice(ALL_STEPS)}")
    if rng.random() < 0.5:  # lm-eval 0.4
        raw = {"results": {"piqa": {"alias": "piqa", "acc,none": 0.6, "acc_stderr,none": 0.01,
                                    "acc_norm,none": 0.61, "acc_norm_stderr,none": 0.01},
                           "lambada_openai": {"acc,none": 0.3, "acc_stderr,none": 0.01,
                                              "perplexity,none": 40.0, "perplexity_stderr,none": 2.0}},
               "n-shot": {"piqa": 0, "lambada_openai": 0},
               "n-samples": {"piqa": {"original": 1838, "effective": 100}, "lambada_openai": {"effective": 100}},
               "config": {"model": "hf", "model_args": args, "limit": 100.0, "batch_size": "8", "device": "cpu"},
               "lm_eval_version": "0.4.13", "transformers_version": "4.50.0", "total_evaluation_time_seconds": "12.5"}
        fields = [("results", "piqa", "acc,none"), ("results", "piqa", "acc_stderr,none"),
                  ("results", "lambada_openai", "perplexity,none"), ("n-shot", "piqa"), ("n-shot",),
                  ("n-samples", "piqa", "effective"), ("n-samples", "piqa"), ("n-samples",),
                  ("lm_eval_version",), ("transformers_version",), ("total_evaluation_time_seconds",)]
    else:  # lm-eval 0.3, the published files' shape
        raw = {"results": {"piqa": {"acc": 0.6, "acc_stderr": 0.01, "acc_norm": 0.61, "acc_norm_stderr": 0.01},
                           "lambada": {"ppl": 40.0, "ppl_stderr": 2.0, "acc": 0.3, "acc_stderr": 0.01}},
               "config": {"model": "hf-causal", "model_args": args, "num_fewshot": 0, "limit": None,
                          "batch_size": 16, "device": "cuda:0"}}
        fields = [("results", "piqa", "acc"), ("results", "piqa", "acc_stderr"), ("results", "lambada", "ppl"),
                  ("config", "num_fewshot")]
    fields += [("config", "limit"), ("config", "model_args"), ("config", "batch_size"), ("config", "device"),
               ("config", "model"), ("config", "model_dtype"), ("config",), ("results",), ("results", "piqa")]
    return raw, fields


def _set(raw: dict, path: tuple, value) -> None:
    node = raw
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def hostile_file(rng: random.Random) -> bytes:
    """One file: a valid base with 1-3 hostile values, then sometimes broken bytes."""
    raw, fields = _base(rng)
    if rng.random() < 0.1:  # a task key that is itself hostile
        raw["results"][rng.choice(HOSTILE_STRINGS)] = raw["results"].pop("piqa")
    raws = {}
    for i in range(rng.randint(1, 3)):
        marker = f"@@raw{i}@@"
        _set(raw, rng.choice(fields), marker)
        raws[marker] = rng.choice(RAW_VALUES)
    text = json.dumps(raw)
    for marker, value in raws.items():
        text = text.replace(json.dumps(marker), value)
    data = text.encode("utf-8", "surrogatepass")
    return _break(rng, data) if rng.random() < 0.25 else data


def _break(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return data[: rng.randrange(len(data) + 1)]
    if kind == 1:
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 5)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return bytes(flipped)
    if kind == 2:
        return b"\xef\xbb\xbf" + data  # a BOM
    if kind == 3:
        return data.replace(b'"results": ', b'"results": {}, "results": ', 1)  # a duplicate key
    if kind == 4:
        return b"\xff\xfe" + data[:50]  # not UTF-8
    return rng.choice([b"", b"null", b"[]", b'"results"', b"{}", b"[" * 200_000])


def valid_file(step: int, rng: random.Random) -> tuple[bytes, float]:
    acc = round(rng.uniform(0.2, 0.9), 6)
    raw = {"results": {"piqa": {"acc,none": acc, "acc_stderr,none": 0.01}}, "n-shot": {"piqa": 0},
           "n-samples": {"piqa": {"effective": rng.randint(1, 5000)}},
           "config": {"model_args": f"pretrained=EleutherAI/pythia-410m,revision=step{step}", "limit": None},
           "lm_eval_version": "0.4.13"}
    return json.dumps(raw).encode(), acc


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """The folder of files (hostile and valid, interleaved), imported in batches of ~50 rows."""
    rng = random.Random(SEED)
    root = tmp_path_factory.mktemp("fuzz")
    folder = root / "in"
    folder.mkdir()
    valid = {}
    slots = set(rng.sample(range(HOSTILE_FILES + VALID_FILES), VALID_FILES))
    steps = iter(ALL_STEPS[:VALID_FILES])
    for i in range(HOSTILE_FILES + VALID_FILES):
        path = folder / f"{i:05d}.json"
        if i in slots:
            data, acc = valid_file(step := next(steps), rng)
            valid[step] = (path, acc)
        else:
            data = hostile_file(rng)
        path.write_bytes(data)
    return root, folder, valid


def test_hostile_files_never_crash_and_never_cost_a_valid_one(fuzzed, capsys, monkeypatch):
    root, folder, valid = fuzzed
    db = root / "s.duckdb"
    monkeypatch.setattr(importer, "FLUSH_BYTES", 20_000)  # many batch boundaries between bad files
    status = main(["import", str(folder), "--db", str(db)])  # any exception fails this test
    assert status == 1
    captured = capsys.readouterr()
    every = captured.err.splitlines()  # skipped files, and what a stored file left out (a task)
    assert all(line.startswith("evalsuite: ") and line.isprintable() for line in every)
    lines = [line for line in every if line.startswith("evalsuite: skipped ")]
    skipped = {line.removeprefix("evalsuite: skipped ").split(": ", 1)[0] for line in lines}
    assert not skipped & {str(path) for path, _ in valid.values()}
    stored = store.read_df(db, "SELECT step, value FROM scores WHERE model = 'pythia-410m' AND metric = 'acc' "
                                "AND source = 'local'")
    assert dict(zip(stored["step"], stored["value"])) == {step: acc for step, (_, acc) in valid.items()}
    assert len(lines) > HOSTILE_FILES / 2  # most hostile files really are refused
    _nothing_out_of_range(db)


def _nothing_out_of_range(db: Path) -> None:
    scores = store.read_df(db, "SELECT * FROM scores WHERE source <> 'published'")
    runs = store.read_df(db, "SELECT * FROM runs WHERE source <> 'published'")
    for column in ("model", "task", "metric", "source"):
        assert all(names.is_valid(v) for v in scores[column]), column
    assert all(names.is_valid(v) for v in scores["dtype"].dropna())
    assert scores["value"].map(math.isfinite).all()
    assert scores.loc[scores.metric.str.startswith("acc"), "value"].between(0, 1).all()
    assert (scores.loc[scores.metric.str.contains("perplexity"), "value"] > 0).all()
    assert (scores["stderr"].dropna() >= 0).all() and scores["stderr"].dropna().map(math.isfinite).all()
    assert (scores["shots"] >= 0).all() and (scores["n"].dropna() >= 0).all()
    assert (scores["doc_limit"].dropna() >= 0).all()
    pythia = scores[scores.model.str.startswith("pythia-") & (scores.model != "pythia-demo")]
    assert set(pythia["step"]) <= set(ALL_STEPS)
    for column in ("backend", "model_source", "batch_size", "device", "lm_eval_version", "transformers_version"):
        assert all(v.isprintable() for v in runs[column].dropna()), column


def test_export_and_ls_of_the_fuzzed_store_stay_inside_and_printable(fuzzed, capsys):
    root, _, _ = fuzzed
    db = root / "s.duckdb"
    before = {p for p in root.rglob("*")}
    out = root / "sandbox" / "out"
    assert main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(out), "--source", "local"]) == 0
    assert main(["export", "--db", str(db), "--out", str(root / "sandbox" / "scores.json")]) == 0
    assert main(["ls", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and all(line.isprintable() for line in captured.out.splitlines())
    new = {p for p in root.rglob("*")} - before
    assert all(p.is_relative_to(out) or p in (out.parent, root / "sandbox" / "scores.json") for p in new)
    rows = json.loads((root / "sandbox" / "scores.json").read_text(), parse_constant=_no_constant)
    assert len(rows) == store.read_df(db, "SELECT count(*) AS n FROM scores").n[0]
    again = importer.import_paths([out], root / "again.duckdb", source="local", seed=False)
    assert again.skipped == []  # everything exported reads back


def _no_constant(name):
    raise ValueError(f"{name} in exported JSON")


def test_hostile_names_in_every_flag_are_one_line(fuzzed, capsys):
    root, _, valid = fuzzed
    db = root / "s.duckdb"
    rng = random.Random(SEED + 1)
    one_file = str(next(iter(valid.values()))[0])
    pool = HOSTILE_STRINGS + ["pythia-410m", "local", "piqa", "my-lab", "x" * 101]
    out = root / "names-out"
    before = {p for p in root.rglob("*")}
    for _ in range(NAME_CASES):
        name = rng.choice(pool) + (rng.choice(HOSTILE_STRINGS) if rng.random() < 0.3 else "")
        argv = rng.choice([
            ["ls", f"--model={name}"], ["ls", f"--source={name}"],
            ["export", f"--model={name}", "--format", "lm-eval", "--out", str(out)],
            ["export", f"--task={name}", "--out", str(out / "x.json")], ["export", f"--source={name}"],
            ["import", one_file, f"--source={name}"], ["import", one_file, f"--model={name}"],
        ])
        status = main(argv + ["--db", str(db)])
        captured = capsys.readouterr()
        assert status in (0, 1, 2), argv
        err = captured.err.splitlines()
        assert len(err) <= 1 and all(line.startswith("evalsuite: ") and line.isprintable() for line in err), err
    new = {p for p in root.rglob("*")} - before
    assert all(p.is_relative_to(out) or p == out for p in new), sorted(new - {out})
    assert main(["ls", "--db", str(db)]) == 0  # the store is still readable
    _nothing_out_of_range(db)
