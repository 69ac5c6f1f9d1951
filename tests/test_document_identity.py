"""Documents are identified by their content fingerprint as well as their doc_id: each sample
points at the document it was scored on, so an imported file's text for the same doc_id never
replaces a sweep's in the Items view; stores made before samples carried it are backfilled where
the document is unambiguous. (Issue 20, item 5.)"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from evalsuite import store
from evalsuite.io.export import write_samples
from evalsuite.io.importer import import_paths
from evalsuite.lmeval.results import doc_hash
from evalsuite.stats.curve import changes
from evalsuite.stats.paired import compare
from evalsuite.store import items
from evalsuite.store.items import ItemsKey
from evalsuite.store.values import Checkpoint, derived_scores

from conftest import open_app
from factory import documents, job, outcomes

DATE = "2024-05-01T00-00-00.000000"
SWEPT = ItemsKey("pythia-70m", "piqa")
OTHER = ItemsKey("pythia-160m", "piqa", source="other-lab")


def _sweep(db: Path, docs: int = 3) -> list:
    """A sweep's store: its documents, and two checkpoints' samples pointing at them."""
    stored = documents("piqa", docs)
    store.write_documents(db, stored)
    for step in (1000, 2000):
        samples = outcomes("pythia-70m", step, "piqa", [step == 2000] * docs)
        for sample, doc in zip(samples, stored):
            sample.fingerprint = doc.fingerprint
        store.write_job(db, job("pythia-70m", step, [("piqa", "acc", 0.5, 0.01)], samples=samples))
    return stored


def _other_lab(folder: Path, docs: int = 3) -> Path:
    """lm-eval 0.4 output of another model whose piqa documents 0.. are other text (another data
    version, or a hostile file), right answer the second choice."""
    results = {"results": {"piqa": {"alias": "piqa", "acc,none": 1.0, "acc_stderr,none": 0.0}},
               "n-shot": {"piqa": 0}, "config": {"model": "hf", "model_args": "pretrained=EleutherAI/pythia-160m,"
                                                 "revision=step1000"}}
    folder.mkdir()
    (folder / f"results_{DATE}.json").write_text(json.dumps(results))
    lines = []
    for d in range(docs):
        prompt = f"IMPOSTOR {d}: which is right?\nAnswer:"
        lines.append({"doc_id": d, "doc": {"goal": f"impostor {d}", "sol1": "x", "sol2": "y", "label": 1},
                      "target": "1", "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": " x"},
                                                   "gen_args_1": {"arg_0": prompt, "arg_1": " y"}},
                      "filtered_resps": [["-3.0", "False"], ["-1.0", "True"]], "acc": 1.0})
    (folder / f"samples_piqa_{DATE}.jsonl").write_text("\n".join(map(json.dumps, lines)))
    return folder


def test_an_imported_text_never_replaces_the_sweep_s_own(tmp_path):
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    swept = _sweep(db)
    report = import_paths([_other_lab(tmp_path / "in")], db, source="other-lab", seed=False)
    assert report.skipped == [] and report.samples == 3
    mine = items.documents_of(db, SWEPT, [0, 1, 2])
    assert list(mine.prompt) == [d.prompt for d in swept] and list(mine.target) == [0, 0, 0]
    theirs = items.documents_of(db, OTHER, [0])
    assert list(theirs.prompt) == ["IMPOSTOR 0: which is right?\nAnswer:"] and list(theirs.target) == [1]
    ends = items.prompt_ends_of(db, SWEPT)
    assert list(ends.prompt_end) == [d.prompt for d in swept]
    # the right answer each sample is judged by is its own document's, whoever imported first
    history = items.item_history(db, SWEPT, 0)
    assert list(history.target) == [0, 0]
    assert list(items.item_history(db, OTHER, 0).target) == [1]


def _scored_on(db: Path) -> pd.DataFrame:
    """doc_id and the fingerprint each sample points at, by doc_id then step."""
    return store.read_df(db, "SELECT s.doc_id, f.fingerprint FROM samples s "
                             "LEFT JOIN fingerprints f USING (fingerprint_id) ORDER BY s.doc_id, s.step")


def test_imported_samples_point_at_their_documents(tmp_path):
    db = tmp_path / "store.duckdb"
    import_paths([_other_lab(tmp_path / "in")], db, source="other-lab", seed=False)
    rows = _scored_on(db).merge(store.read_df(db, "SELECT doc_id, fingerprint, prompt FROM documents"))
    assert list(rows.doc_id) == [0, 1, 2]
    expected = doc_hash({"goal": "impostor 0", "sol1": "x", "sol2": "y", "label": 1})
    assert rows.fingerprint[0] == expected


def test_each_fingerprint_is_stored_once_and_numbered_in_order(tmp_path):
    """Samples hold their fingerprint's number: two checkpoints of three documents store three
    fingerprints, numbered as the sweep's documents come, and a later import's text adds its own."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    swept = _sweep(db)
    numbers = store.read_df(db, "SELECT * FROM fingerprints ORDER BY fingerprint_id")
    assert list(numbers.fingerprint_id) == [1, 2, 3]
    assert list(numbers.fingerprint) == [d.fingerprint for d in swept]
    assert list(_scored_on(db).fingerprint) == [d.fingerprint for d in swept for _ in (1000, 2000)]
    import_paths([_other_lab(tmp_path / "in")], db, source="other-lab", seed=False)
    assert list(store.read_df(db, "SELECT fingerprint_id FROM fingerprints ORDER BY 1").fingerprint_id) == [
        1, 2, 3, 4, 5, 6]


def _as_made_before(db: Path, texts: bool) -> None:
    """The store as it was before fingerprints were numbered: its samples holding the fingerprint's
    text (texts), or before samples carried any (not texts)."""
    with store.connect(db) as con:
        if texts:
            con.execute("ALTER TABLE samples ADD COLUMN fingerprint VARCHAR")
            con.execute("UPDATE samples SET fingerprint = f.fingerprint FROM fingerprints f "
                        "WHERE samples.fingerprint_id = f.fingerprint_id")
        con.execute("ALTER TABLE samples DROP COLUMN fingerprint_id")
        con.execute("DROP TABLE fingerprints")


def test_an_older_store_is_backfilled_where_the_document_is_unambiguous(tmp_path):
    """A store made before samples carried a fingerprint: each sample gets the one document of
    its doc_id; where an import stored a second text for it, which one was scored is unknown,
    and the Items view shows both rather than guess."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    swept = _sweep(db)
    impostor = documents("piqa", 1)[0]
    impostor.fingerprint, impostor.prompt = "f" * 64, "IMPOSTOR"
    store.write_documents(db, [impostor])  # doc 0 now has two texts
    _as_made_before(db, texts=False)
    assert list(items.documents_of(db, SWEPT, [1]).prompt) == [swept[1].prompt]  # readable before init
    store.init(db, seed=False)
    backfilled = _scored_on(db)
    assert list(backfilled.fingerprint[2:]) == [swept[1].fingerprint] * 2 + [swept[2].fingerprint] * 2
    assert backfilled.fingerprint[:2].isna().all()
    assert sorted(items.documents_of(db, SWEPT, [0]).prompt) == sorted([swept[0].prompt, "IMPOSTOR"])
    assert list(items.documents_of(db, SWEPT, [1]).prompt) == [swept[1].prompt]
    store.init(db, seed=False)  # once: a later init changes nothing
    assert _scored_on(db).fingerprint.isna().sum() == 2
    assert isinstance(items.item_stats(db, SWEPT), pd.DataFrame)


def test_a_store_whose_samples_hold_the_fingerprint_text_is_numbered_losing_nothing(tmp_path):
    """A store written between 2026-12-06 and 12-07 (each sample held its fingerprint's 64 hex
    digits): read as it is, each source sees its own text; the next init numbers the fingerprints,
    every sample still pointing at the same one."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    swept = _sweep(db)
    import_paths([_other_lab(tmp_path / "in")], db, source="other-lab", seed=False)
    before = _scored_on(db)
    stats = items.item_stats(db, SWEPT)
    _as_made_before(db, texts=True)
    assert list(items.documents_of(db, SWEPT, [0]).prompt) == [swept[0].prompt]  # readable before init
    assert list(items.documents_of(db, OTHER, [0]).prompt) == ["IMPOSTOR 0: which is right?\nAnswer:"]
    pd.testing.assert_frame_equal(items.item_stats(db, SWEPT), stats)
    store.init(db, seed=False)
    pd.testing.assert_frame_equal(_scored_on(db), before)
    assert store.read_df(db, "SELECT count(*) AS n FROM fingerprints").n[0] == 6
    assert "fingerprint" not in set(store.read_df(db, "DESCRIBE samples").column_name)
    assert list(items.documents_of(db, SWEPT, [0]).prompt) == [swept[0].prompt]
    assert list(items.documents_of(db, OTHER, [0]).prompt) == ["IMPOSTOR 0: which is right?\nAnswer:"]
    pd.testing.assert_frame_equal(items.item_stats(db, SWEPT), stats)
    store.init(db, seed=False)  # once: a later init changes nothing
    pd.testing.assert_frame_equal(_scored_on(db), before)


def test_the_items_view_shows_each_source_its_own_text(tmp_path, monkeypatch):
    """The dashboard's Items view (text panel and document table) of the sweep shows the sweep's
    documents, never the imported impostor's, and the other lab's view shows its own."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    _sweep(db)
    import_paths([_other_lab(tmp_path / "in")], db, source="other-lab", seed=False)

    def page(key: ItemsKey) -> str:
        at = open_app(db, monkeypatch, view="items", model=key.model, task=key.task, source=key.source, doc="0")
        assert not at.exception, [e.value for e in at.exception]
        texts = [el.value for kind in ("markdown", "caption", "code", "text") for el in at.get(kind)]
        tables = [frame.value.to_string() for frame in at.get("dataframe")]
        return "\n".join(map(str, texts + tables))

    assert "IMPOSTOR" not in page(SWEPT)
    assert "IMPOSTOR" in page(OTHER)


def test_p_correct_and_bpb_read_each_sample_s_own_document(tmp_path):
    """bpb divides by the right choice's bytes, and a sample holding no right answer takes its
    document's: both come from the document the sample was scored on, never the other text of its
    doc_id, in every reader: the stored means; for a store made before those, and before the
    fingerprints were numbered, the means worked out, the Items view's final values and the
    samples export."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    _sweep(db)
    import_paths([_other_lab(tmp_path / "in")], db, source="other-lab", seed=False)
    # the sweep's right choice " yes d" (6 bytes) at -1.0 (step 2000) and -3.0 (step 1000); the
    # other lab's " y" (2 bytes) at -1.0
    expected = {("local", 1000): 3 / 6, ("local", 2000): 1 / 6, ("other-lab", 1000): 1 / 2}
    bpb = derived_scores(db, "bpb", every_run=True)
    assert {(r.source, r.step): round(r.value * math.log(2), 12) for r in bpb.itertuples()} == pytest.approx(expected)
    # read again as a store made on 2026-12-06: no means stored, samples holding fingerprint texts
    with store.connect(db) as con:
        con.execute("DROP TABLE sample_means")
    _as_made_before(db, texts=True)
    pd.testing.assert_frame_equal(derived_scores(db, "bpb", every_run=True), bpb)
    final = items.item_stats(db, ItemsKey("pythia-160m", "piqa", metric="bpb", source="other-lab")).final_bpb
    assert list(final * math.log(2)) == pytest.approx([1 / 2] * 3)
    out = tmp_path / "samples.jsonl"
    write_samples(db, out, derived=True)
    exported = pd.read_json(out, lines=True)
    assert {(r.source, r.step): r.bpb * math.log(2) for r in exported.itertuples()} == pytest.approx(expected)


def test_compare_pairs_only_documents_scored_on_the_same_text(tmp_path):
    """The other lab's piqa documents 0-2 are other text: a paired test would match them with the
    sweep's by doc_id; there are no shared documents, so compare falls back to the two scores."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    _sweep(db)
    import_paths([_other_lab(tmp_path / "in")], db, source="other-lab", seed=False)
    sweep, other = Checkpoint("pythia-70m", 2000, "local"), Checkpoint("pythia-160m", 1000, "other-lab")
    across = compare(db, sweep, other)
    assert list(across.test) == ["unpaired-z"] and across.n_docs.isna().all()
    within = compare(db, Checkpoint("pythia-70m", 1000, "local"), sweep)  # the same texts: paired
    assert list(within.test) == ["mcnemar-exact"] and list(within.n_docs) == [3] and list(within.only_b) == [3]


def test_a_curve_never_pairs_a_doc_id_across_a_change_of_text(tmp_path):
    """Step 3000 was scored on other data under the same doc_ids: its change from step 2000 is
    tested on the stored scores (no document is shared), the one from 1000 to 2000 on the pairs."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    _sweep(db)
    changed = documents("piqa", 3)
    for doc in changed:
        doc.fingerprint, doc.prompt = hashlib.sha256(f"other/{doc.doc_id}".encode()).hexdigest(), "OTHER"
    store.write_documents(db, changed)
    samples = outcomes("pythia-70m", 3000, "piqa", [True] * 3)
    for sample, doc in zip(samples, changed):
        sample.fingerprint = doc.fingerprint
    store.write_job(db, job("pythia-70m", 3000, [("piqa", "acc", 1.0, 0.01)], samples=samples))
    found = changes(db, SWEPT)
    assert list(found.step) == [2000, 3000] and list(found.test) == ["mcnemar-exact", "unpaired-z"]
    assert found.n_docs.iloc[0] == 3 and pd.isna(found.n_docs.iloc[1])
    # a store made before samples carried fingerprints, read as it is: doc_id alone pairs them
    _as_made_before(db, texts=False)
    assert list(changes(db, SWEPT).n_docs) == [3, 3]
    later = compare(db, Checkpoint("pythia-70m", 2000, "local"), Checkpoint("pythia-70m", 3000, "local"))
    assert list(later.n_docs) == [3]


def test_a_doc_id_scored_on_two_texts_across_checkpoints_is_said(tmp_path, monkeypatch, capsys):
    """The Items view and `evalsuite items` follow a document by doc_id across a model's
    checkpoints: where the task's data changed between them (doc 0's text at step 2000 is another),
    they say so, and how many; a store with one text per doc_id says nothing."""
    from dataclasses import replace

    from evalsuite.cli import main

    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    _sweep(db)
    assert not items.item_stats(db, SWEPT).mixed_texts.any()
    argv = ["items", "--db", str(db), "--model", "pythia-70m", "--task", "piqa"]
    assert main(argv) == 0 and "warning" not in capsys.readouterr().out
    changed = replace(documents("piqa", 1)[0], fingerprint="f" * 64, prompt="Question 0, reworded?\nAnswer:")
    samples = outcomes("pythia-70m", 4000, "piqa", [True, True, True])
    for sample, fingerprint in zip(samples, [changed.fingerprint, *[d.fingerprint for d in documents("piqa", 3)[1:]]]):
        sample.fingerprint = fingerprint
    record = job("pythia-70m", 4000, [("piqa", "acc", 1.0, 0.0)], samples=samples)
    record.documents = [changed]
    store.write_job(db, record)
    assert items.item_stats(db, SWEPT).mixed_texts.tolist() == [True, False, False]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "warning: 1 document(s) were scored on more than one text across these checkpoints (the task's data "
        "changed between runs); their learned_at and flips join the texts")
    at = open_app(db, monkeypatch, view="items")
    assert [w.value for w in at.warning] == [
        "1 document(s) were scored on more than one text across these checkpoints (the task's data changed "
        "between runs); their learned_at and flips join the texts."]
