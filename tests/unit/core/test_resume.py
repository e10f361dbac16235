"""One done-marker scheme: an output is skipped only when its inputs and settings match."""

from __future__ import annotations

from winnow.document import Document
from winnow.resume import Marker, ShardRef, derive_shard, settings_diff, work_key
from winnow.shardio import ShardWriter, read_documents


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
    done, why = marker.check("k3", settings)  # same settings, other key: the input changed
    assert why.inputs_changed and why.describe() == "input changed"
    out.unlink()
    assert marker.check("k1", settings) == (None, None)  # a marker without its output is ignored


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
