"""Inputs: listing with sizes and stamps, grouping, JSONL/Parquet readers, S3 inputs."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime

import fsspec
import pytest

from winnow.inputs import group_inputs, list_inputs, read_documents
from winnow.shards import ShardWriter, shard_name
from winnow.stats import StageStats
from winnow.storage import InputError, StorageError


def test_jsonl_reader_counts_bad_lines(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    lines = [
        json.dumps({"id": "a", "text": "first document", "url": "https://a.example/", "lang": "en"}).encode(),
        b"{not json",
        json.dumps({"text": "caf\u00e9"}).encode("utf-8"),
        "{\"text\": \"caf\u00e9\"}".encode("latin-1"),  # not UTF-8
        json.dumps({"id": "no-text"}).encode(),
        b"",
        json.dumps({"id": "d", "text": "", "date": "2024-05-01T00:00:00Z"}).encode(),
    ]
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    stats = StageStats()
    docs = list(read_documents(str(path), stats))
    assert [d.text for d in docs] == ["first document", "caf\u00e9", ""]
    assert docs[0].annotations == {"meta.lang": "en"} and docs[0].url == "https://a.example/"
    assert docs[2].crawl_date == datetime(2024, 5, 1, tzinfo=UTC)
    assert len({d.id for d in docs}) == 3
    assert stats.errors == {"bad_json_line": 1, "non_utf8_line": 1, "no_text_field": 1}


def test_truncated_jsonl_gz_keeps_earlier_lines(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    payload = gzip.compress(b"".join(json.dumps({"text": f"doc {i} " * 50}).encode() + b"\n" for i in range(2000)))
    path.write_bytes(payload[: len(payload) // 2])
    stats = StageStats()
    docs = list(read_documents(str(path), stats))
    assert 0 < len(docs) < 2000
    assert stats.errors["corrupt_input"] == 1


def test_list_inputs_reports_what_it_skips_and_takes_sizes_from_the_listing(tmp_path):
    (tmp_path / "a").mkdir()
    for name, size in (("a/x.warc.gz", 10), ("a/y.jsonl", 20), ("a/z.parquet", 30), ("a/skip.txt", 1),
                       ("a/page.html", 1), ("a/c.warc.wet.gz", 1), ("a/.hidden.warc.gz", 1)):
        (tmp_path / name).write_bytes(b"x" * size)
    listing = list_inputs([str(tmp_path / "a")])
    assert [f.path.rsplit("/", 1)[1] for f in listing.files] == ["x.warc.gz", "y.jsonl", "z.parquet"]
    assert [f.size for f in listing.files] == [10, 20, 30] and all(f.stamp.startswith(f"{f.size}:")
                                                                   for f in listing.files)
    summary = listing.skipped_summary()
    assert summary.startswith("skipped 4 file(s)") and "2 unsupported format (page.html, skip.txt)" in summary
    assert "WET/WAT" in summary and "hidden" in summary
    assert [f.path for f in list_inputs([str(tmp_path / "a" / "*.jsonl")]).files] == [str(tmp_path / "a" / "y.jsonl")]
    with pytest.raises(InputError, match="no such file"):
        list_inputs([str(tmp_path / "missing")])
    with pytest.raises(InputError, match="unsupported input format"):
        list_inputs([str(tmp_path / "a" / "skip.txt")])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"matched no WARC.*skipped 1 file"):
        list_inputs([str(tmp_path / "b")])


def test_a_changed_file_gets_a_new_stamp(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one"}\n')
    before = list_inputs([str(path)]).files[0].stamp
    path.write_text('{"text": "one, edited"}\n')
    assert list_inputs([str(path)]).files[0].stamp != before


def test_grouping_uses_listed_sizes(tmp_path):
    for k in range(10):
        (tmp_path / f"f{k}.jsonl").write_bytes(b"x" * 400_000)
    files = list_inputs([str(tmp_path)]).files
    groups = group_inputs(files, 1.0)
    assert [len(g) for g in groups] == [2, 2, 2, 2, 2]
    assert [len(g) for g in group_inputs(files, 0)] == [1] * 10


def test_s3_read_warc_and_write_parquet(s3_server, demo_warcs):
    from winnow.tasks.ingest import IngestConfig, ingest_warc

    fs = fsspec.filesystem("s3", **s3_server)
    fs.put(str(demo_warcs / "cc-main-2020-34-sample.warc.gz"), "winnow-test/crawl/cc.warc.gz")
    listing = list_inputs(["s3://winnow-test/crawl/"], s3_server)
    assert [f.path for f in listing.files] == ["s3://winnow-test/crawl/cc.warc.gz"]
    assert listing.files[0].size == (demo_warcs / "cc-main-2020-34-sample.warc.gz").stat().st_size
    docs = list(ingest_warc(listing.files[0].path, IngestConfig(), StageStats(), s3_server))
    assert len(docs) == 16
    out = "s3://winnow-test/out/documents/part-00000.parquet"
    with ShardWriter(out, s3_server) as w:
        w.write_all(docs)
    assert [p for p in fs.ls("winnow-test/out/documents") if "tmp" in p] == []
    assert [d.id for d in read_documents(out, StageStats(), s3_server)] == [d.id for d in docs]


# ---- bad records, unreadable inputs (issue 20, items 4 and 5) ---------------------------------

def test_bad_jsonl_records_are_counted_and_the_rest_read(tmp_path, warc_docs, caplog):
    from helpers.hostile_inputs import jsonl_with_bad_lines

    texts = [d.text for d in warc_docs("cc-main-2020-34-sample.warc.gz")] * 7  # 112 real texts
    path = tmp_path / "mixed.jsonl"
    expected = jsonl_with_bad_lines(path, texts)  # starts with a UTF-8 BOM
    stats = StageStats()
    docs = list(read_documents(str(path), stats))
    # Before: the BOM cost the first line, and a lone surrogate failed the whole shard later on.
    assert [d.text for d in docs] == texts and docs[0].id == "doc-0"
    assert dict(stats.errors) == expected
    assert "x\ud800y" not in caplog.text and "udfff" not in caplog.text
    with ShardWriter(str(tmp_path / shard_name(0))) as w:
        w.write_all(docs)
    assert w.rows == len(texts)


def test_parquet_columns_of_the_wrong_type_are_counted_per_row(tmp_path, warc_docs):
    from helpers.hostile_inputs import parquet_with_bad_columns

    texts = [d.text for d in warc_docs("cc-main-2020-34-sample.warc.gz")]
    expected = parquet_with_bad_columns(tmp_path / "pq", texts)
    stats = StageStats()
    docs = [d for p in sorted((tmp_path / "pq").iterdir()) for d in read_documents(str(p), stats)]
    # Before: AttributeError / ArrowTypeError / JSONDecodeError failed the shard.
    assert sorted(d.text for d in docs) == sorted(texts + ["annotated two"])
    assert dict(stats.errors) == expected


def _without_root_powers(code: str, *args: str):
    """Run Python as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH: root reads files whatever
    their mode, so a permission test takes those powers away. Skipped where that is not possible."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv (as another user, chmod 000 would deny reads anyway)")
    caps = "-dac_override,-dac_read_search"
    return subprocess.run(["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", sys.executable, "-c", code,
                           *args], capture_output=True, text=True, timeout=120)


READ_CHILD = """
import sys
from winnow.inputs import list_inputs, read_documents
from winnow.stats import StageStats
try:
    if sys.argv[1] == "list":
        list_inputs([sys.argv[2]])
    else:
        print(len(list(read_documents(sys.argv[2], stats := StageStats()))), dict(stats.errors))
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_unreadable_inputs_raise_instead_of_being_counted(tmp_path, warc_docs):
    docs = warc_docs("cc-main-2020-34-sample.warc.gz")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d.text}) + "\n" for d in docs))
    parquet = tmp_path / shard_name(0)
    with ShardWriter(str(parquet)) as w:
        w.write_all(docs)
    for path in (jsonl, parquet):
        assert _without_root_powers(READ_CHILD, "read", str(path)).stdout.split()[0] == str(len(docs))
        path.chmod(0)
        # Before: counted as corrupt_input / unreadable_file, and the shard was marked done.
        assert _without_root_powers(READ_CHILD, "read", str(path)).stdout.startswith("PermissionError"), path


def test_an_unreadable_sub_folder_is_an_error_not_a_shorter_listing(tmp_path, demo_warcs):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in "ab":
        (tmp_path / sub / "x.warc.gz").write_bytes((demo_warcs / "cc-main-2020-34-sample.warc.gz").read_bytes())
    (tmp_path / "b").chmod(0)
    out = _without_root_powers(READ_CHILD, "list", str(tmp_path)).stdout
    assert out.startswith("InputError") and f"cannot read folder {tmp_path}/b (Permission denied)" in out


def test_metadata_folders_are_not_reported_as_unsupported(tmp_path, warc_docs):
    # winnow's own output as input: its done-markers are no inputs and not worth a warning.
    folder = tmp_path / "deduped"
    with ShardWriter(str(folder / shard_name(0))) as w:
        w.write_all(warc_docs("cc-main-2020-34-sample.warc.gz"))
    for meta in ("_done", "__done__", "_decontam"):
        (folder / meta).mkdir()
        (folder / meta / f"{shard_name(0)}.json").write_text("{}")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "notes.txt").write_text("x")
    listing = list_inputs([str(folder)])
    assert [f.path for f in listing.files] == [str(folder / shard_name(0))]
    assert listing.skipped_summary() == "skipped 1 file(s): 1 in a hidden folder (notes.txt)"


def test_a_missing_bucket_is_named_for_inputs_as_for_outputs(s3_server):
    for pattern in ("s3://winnow-tset/crawl/", "s3://winnow-tset/crawl/*.warc.gz", "s3://winnow-tset/x.warc.gz"):
        with pytest.raises(StorageError, match="bucket 'winnow-tset' does not exist"):
            list_inputs([pattern], s3_server)
    with pytest.raises(InputError, match="no such file or directory"):
        list_inputs(["s3://winnow-test/no-such-folder/"], s3_server)
