"""One done-marker scheme: an output is skipped only when its inputs and settings match."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from winnow.document import Document
from winnow.inputs import read_documents
from winnow.resume import DONE_DIR, Marker, ShardRef, derive_shard, prune_shards, resumable, settings_diff, work_key
from winnow.shards import ShardWriter, shard_name
from winnow.storage import StorageError


def test_key_covers_inputs_and_settings_in_any_order():
    a = work_key([["f.warc", "10:abc"]], {"lid": {"keep": ["en"]}, "quality": {"mode": "filter"}})
    assert a == work_key([["f.warc", "10:abc"]], {"quality": {"mode": "filter"}, "lid": {"keep": ["en"]}})
    assert a != work_key([["f.warc", "11:abd"]], {"lid": {"keep": ["en"]}, "quality": {"mode": "filter"}})
    assert a != work_key([["f.warc", "10:abc"]], {"lid": {"keep": ["de"]}, "quality": {"mode": "filter"}})


def test_marker_check_says_why_an_output_is_redone(tmp_path):
    out = tmp_path / "part-00000.parquet"
    marker = Marker(str(out))
    settings = {"stages": {"lid": {"keep": ["en"], "threshold": 0.65}}}
    assert marker.check("k1", settings) == (None, None)  # nothing yet
    out.write_bytes(b"data")
    marker.write("k1", {"rows": 3}, settings)
    done, why = marker.check("k1", settings)
    assert done["rows"] == 3 and why is None
    changed = {"stages": {"lid": {"keep": ["de"], "threshold": 0.65}}}
    done, why = marker.check("k2", changed)
    assert done is None and why.changed_settings == ['stages.lid.keep ["en"] -> ["de"]']
    assert why.describe() == 'settings changed: stages.lid.keep ["en"] -> ["de"]'
    # The mismatched marker is gone: a run killed while redoing the output cannot leave it
    # beside the new data for a later run with the old settings to skip on.
    assert marker.read() is None and marker.check("k1", settings) == (None, None)
    marker.write("k1", {"rows": 3}, settings)
    done, why = marker.check("k3", settings)  # same settings, other key: the input changed
    assert why.inputs_changed and why.describe() == "input changed"
    marker.write("k1", {"rows": 3}, settings)
    out.unlink()
    assert marker.check("k1", settings) == (None, None)  # a marker without its output is ignored
    assert marker.read() is None


def test_a_rewrite_killed_midway_is_never_skipped_under_the_old_settings(tmp_path, monkeypatch):
    src = tmp_path / "documents" / "part-00000.parquet"
    with ShardWriter(str(src)) as w:
        w.write_all([Document(id=str(i), text=f"text {i}") for i in range(5)])
    ref = ShardRef(str(src), "src-key", 5)
    out = str(tmp_path / "derived" / "part-00000.parquet")
    keep_from = lambda n: lambda docs, stats: (d for d in docs if int(d.id) >= n)  # noqa: E731
    assert derive_shard(ref, out, "s", {"min": 0}, keep_from(0)).ref.rows == 5

    def killed(*args, **kwargs):  # the rerun with other settings dies between output and marker
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Marker, "write", killed)
        with pytest.raises(KeyboardInterrupt):
            derive_shard(ref, out, "s", {"min": 3}, keep_from(3))
    assert pq.read_metadata(out).num_rows == 2
    again = derive_shard(ref, out, "s", {"min": 0}, keep_from(0))
    assert not again.skipped and again.ref.rows == 5


def test_a_short_read_of_an_upstream_shard_is_an_error_not_a_short_output(tmp_path):
    src = tmp_path / "documents" / "part-00000.parquet"
    with ShardWriter(str(src)) as w:
        w.write_all([Document(id=str(i), text=f"text {i}") for i in range(5)])
    out = str(tmp_path / "derived" / "part-00000.parquet")
    with pytest.raises(StorageError, match="read 5 of its 7 documents"):
        derive_shard(ShardRef(str(src), "k", 7), out, "s", {}, lambda docs, stats: docs)
    src.write_bytes(src.read_bytes()[:40])  # truncated
    with pytest.raises(StorageError, match="read 0 of its 5 documents"):
        derive_shard(ShardRef(str(src), "k", 5), out, "s", {}, lambda docs, stats: docs)
    assert not (tmp_path / "derived" / "part-00000.parquet").exists()


def test_settings_diff_names_nested_fields():
    assert settings_diff({"a": {"b": 1, "c": [1]}}, {"a": {"b": 2, "c": [1]}, "d": 0}) == ["a.b 1 -> 2", "d null -> 0"]


def test_derived_shards_follow_their_input_and_settings(tmp_path):
    src = tmp_path / "documents" / "part-00000.parquet"
    with ShardWriter(str(src)) as w:
        w.write_all([Document(id=str(i), text=f"text {i}") for i in range(5)])
    out = str(tmp_path / "derived" / "part-00000.parquet")
    calls = []

    def upper(docs, stats):
        calls.append(1)
        for d in docs:
            stats.take_in(d.n_bytes)
            d.text = d.text.upper()
            stats.keep(d.n_bytes)
            yield d

    first = derive_shard(ShardRef(str(src), "key-a", 5), out, "upper", {"v": 1}, upper)
    assert not first.skipped and first.ref.rows == 5 and [d.text for d in read_documents(out)][0] == "TEXT 0"
    again = derive_shard(ShardRef(str(src), "key-a", 5), out, "upper", {"v": 1}, upper)
    assert again.skipped and len(calls) == 1 and again.ref.key == first.ref.key
    redone = derive_shard(ShardRef(str(src), "key-b", 5), out, "upper", {"v": 1}, upper)  # input redone
    assert not redone.skipped and redone.mismatch.inputs_changed and len(calls) == 2
    other = derive_shard(ShardRef(str(src), "key-b", 5), out, "upper", {"v": 2}, upper)  # settings changed
    assert not other.skipped and other.mismatch.changed_settings == ["upper.v 1 -> 2"]


def test_prune_removes_shards_this_run_did_not_write(tmp_path):
    folder = tmp_path / "documents"
    (folder / DONE_DIR).mkdir(parents=True)
    for k in range(5):
        (folder / shard_name(k)).write_bytes(b"")
        (folder / DONE_DIR / f"{shard_name(k)}.json").write_text("{}")
    assert prune_shards(str(folder), [str(folder / shard_name(k)) for k in range(3)]) == 2
    assert sorted(p.name for p in folder.glob("part-*")) == [shard_name(k) for k in range(3)]
    assert sorted(p.name for p in (folder / DONE_DIR).iterdir()) == [f"{shard_name(k)}.json" for k in range(3)]


def test_resumable_runs_once_skips_after_and_leaves_unmarked_work_for_the_next_run(tmp_path):
    marker = Marker(str(tmp_path / "unit"))
    calls: list[str] = []

    def run(record: dict | None):
        def go():
            calls.append("run")
            return "made", record
        return go

    def skip(done):
        return f"skipped {done['n']}"

    assert resumable(marker, "k1", run(None), skip, require_output=False) == ("made", None)
    assert marker.read() is None  # no record: not marked, the next run retries
    assert resumable(marker, "k1", run({"n": 1}), skip, settings={"s": 1}, require_output=False) == ("made", None)
    assert resumable(marker, "k1", run({"n": 2}), skip, require_output=False) == ("skipped 1", None)
    assert calls == ["run", "run"]
    heard = []
    result, why = resumable(marker, "k2", run({"n": 3}), skip, settings={"s": 2}, require_output=False,
                            on_redo=heard.append)
    assert result == "made" and why is not None and why.changed_settings == ["s 1 -> 2"] and heard == [why]
    assert marker.read()["n"] == 3 and marker.path == str(tmp_path / DONE_DIR / "unit.json")
