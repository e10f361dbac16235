"""Shard reader/writer: round trips, atomic writes, done-markers, JSONL/Parquet input, S3."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from conftest import DEMO_WARCS
from tasks.ingest import ingest_warc
from winnow.config import IngestConfig
from winnow.document import SCHEMA
from winnow.shardio import (
    InputError, ShardWriter, list_inputs, mark_done, read_documents, read_done, shard_name,
)
from winnow.stats import StageStats


def real_docs(n=None):
    docs = list(ingest_warc(str(DEMO_WARCS / "cc-main-2020-34-sample.warc.gz"), IngestConfig(), StageStats()))
    return docs[:n] if n else docs


def test_parquet_round_trip_keeps_every_field(tmp_path):
    docs = real_docs()
    docs[0].annotate("lid", "lang", "zh")
    docs[0].annotate("quality", "scores", {"gopher": 0.5, "rules": ["a", "b"]})
    out = tmp_path / shard_name(0)
    with ShardWriter(str(out), rows_per_group=5) as w:
        w.write_all(docs)
    assert w.rows == len(docs)
    pf = pq.ParquetFile(out)
    assert pf.schema_arrow.equals(SCHEMA, check_metadata=False)
    assert pf.metadata.num_row_groups == -(-len(docs) // 5)
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    back = list(read_documents(str(out), StageStats()))
    assert back == docs


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "part-00000.parquet"
    with pytest.raises(RuntimeError):
        with ShardWriter(str(out)) as w:
            w.write_all(real_docs(3))
            raise RuntimeError("crash mid-shard")
    assert list(tmp_path.iterdir()) == []


def test_done_marker_controls_resume(tmp_path):
    out = str(tmp_path / "part-00000.parquet")
    assert read_done(out) is None
    with ShardWriter(out) as w:
        w.write_all(real_docs(2))
    assert read_done(out) is None  # data without marker = unfinished
    mark_done(out, {"input": "x", "rows": 2, "stats": {}})
    assert read_done(out)["rows"] == 2
    (tmp_path / "part-00000.parquet").unlink()
    assert read_done(out) is None  # marker without data = redo


def test_empty_shard_is_a_valid_parquet_file(tmp_path):
    out = tmp_path / "part-00000.parquet"
    with ShardWriter(str(out)):
        pass
    assert pq.read_table(out).num_rows == 0


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
    assert docs[2].crawl_date == datetime(2024, 5, 1, tzinfo=timezone.utc)
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


def test_list_inputs(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.warc.gz", "a/y.jsonl", "a/z.parquet", "a/skip.txt", "a/c.warc.wet.gz"):
        (tmp_path / name).write_bytes(b"")
    found = list_inputs([str(tmp_path / "a")])
    assert [p.rsplit("/", 1)[1] for p in found] == ["x.warc.gz", "y.jsonl", "z.parquet"]
    assert list_inputs([str(tmp_path / "a" / "*.jsonl")]) == [str(tmp_path / "a" / "y.jsonl")]
    with pytest.raises(InputError, match="no such file"):
        list_inputs([str(tmp_path / "missing")])
    with pytest.raises(InputError, match="unsupported input format"):
        list_inputs([str(tmp_path / "a" / "skip.txt")])


def test_s3_read_warc_and_write_parquet(s3_server, tmp_path):
    import fsspec

    fs = fsspec.filesystem("s3", **s3_server)
    src = DEMO_WARCS / "cc-main-2020-34-sample.warc.gz"
    fs.put(str(src), "winnow-test/crawl/cc.warc.gz")
    inputs = list_inputs(["s3://winnow-test/crawl/"], s3_server)
    assert inputs == ["s3://winnow-test/crawl/cc.warc.gz"]
    stats = StageStats()
    docs = list(ingest_warc(inputs[0], IngestConfig(), stats, s3_server))
    assert len(docs) == 16
    out = "s3://winnow-test/out/documents/part-00000.parquet"
    with ShardWriter(out, s3_server) as w:
        w.write_all(docs)
    mark_done(out, {"input": inputs[0], "rows": len(docs), "stats": {}}, s3_server)
    assert read_done(out, s3_server)["rows"] == 16
    assert [p for p in fs.ls("winnow-test/out/documents") if "tmp" in p] == []
    back = list(read_documents(out, StageStats(), s3_server))
    assert [d.id for d in back] == [d.id for d in docs]
