"""Storage and document shards: round trips, atomic writes (local and S3), the output probe."""

from __future__ import annotations

import json
import os

import fsspec
import pyarrow.parquet as pq
import pytest

from winnow.document import SCHEMA
from winnow.inputs import list_inputs, read_documents
from winnow.shards import ShardWriter, shard_name
from winnow.stats import StageStats
from winnow.storage import InputError, StorageError, check_writable


def test_parquet_round_trip_keeps_every_field(tmp_path, warc_docs):
    docs = warc_docs("cc-main-2020-34-sample.warc.gz")
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
    # Annotations are one JSON object per row: any reader gets them with json.loads.
    first = pq.read_table(out).column("annotations").to_pylist()[0]
    assert json.loads(first) == {"lid.lang": "zh", "quality.scores": {"gopher": 0.5, "rules": ["a", "b"]}}


def test_failed_write_leaves_nothing(tmp_path, warc_docs):
    out = tmp_path / "part-00000.parquet"
    with pytest.raises(RuntimeError):
        with ShardWriter(str(out)) as w:
            w.write_all(warc_docs("cc-main-2020-34-sample.warc.gz")[:3])
            raise RuntimeError("crash mid-shard")
    assert list(tmp_path.iterdir()) == []


def test_empty_shard_is_a_valid_parquet_file(tmp_path):
    out = tmp_path / "part-00000.parquet"
    with ShardWriter(str(out)):
        pass
    assert pq.read_table(out).num_rows == 0


def test_check_writable(tmp_path):
    check_writable(str(tmp_path / "new" / "out"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="is a file"):
        check_writable(str(tmp_path / "file"))
    with pytest.raises(StorageError, match="cannot write to output /proc/x"):
        check_writable("/proc/x")


def test_s3_problems_are_one_line_and_never_create_a_bucket(s3_server):
    check_writable("s3://winnow-test/out", s3_server)
    fs = fsspec.filesystem("s3", **s3_server)
    with pytest.raises(StorageError, match="bucket 'winnow-tset' does not exist"):
        check_writable("s3://winnow-tset/out", s3_server)
    with pytest.raises((StorageError, InputError), match="winnow-tset"):
        list_inputs(["s3://winnow-tset/crawl/"], s3_server)
    fs.invalidate_cache()
    assert not fs.exists("winnow-tset")  # a typo never creates a bucket
    unreachable = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}, "key": "k", "secret": "s",
                   "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    with pytest.raises(StorageError, match="cannot reach the storage endpoint"):
        check_writable("s3://winnow-test/out", unreachable)
    no_credentials = {"client_kwargs": {"endpoint_url": s3_server["client_kwargs"]["endpoint_url"]}}

    saved = {k: os.environ.pop(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ}
    try:
        with pytest.raises(StorageError, match="no S3 credentials"):
            check_writable("s3://winnow-test/out", {**no_credentials, "config_kwargs": {"retries": {"max_attempts": 1}}})
    finally:
        os.environ.update(saved)


def test_failed_s3_write_leaves_nothing_and_writes_need_no_temp_objects(s3_server, warc_docs):
    fs = fsspec.filesystem("s3", **s3_server)
    docs = warc_docs("cc-main-2020-34-sample.warc.gz")
    out = "s3://winnow-test/atomic/part-00000.parquet"
    with pytest.raises(RuntimeError):
        with ShardWriter(out, s3_server, rows_per_group=2) as w:
            w.write_all(docs * 3)
            raise RuntimeError("crash mid-shard")
    fs.invalidate_cache()
    assert not fs.exists("winnow-test/atomic/part-00000.parquet") and not fs.exists("winnow-test/atomic")
    with ShardWriter(out, s3_server) as w:
        w.write_all(docs)
    fs.invalidate_cache()
    assert fs.ls("winnow-test/atomic") == ["winnow-test/atomic/part-00000.parquet"]  # no temp object, no copy
    assert len(list(read_documents(out, StageStats(), s3_server))) == len(docs)


WRITER_CHILD = """
import sys
from winnow.document import Document
from winnow.shards import ShardWriter
with ShardWriter(sys.argv[1]) as w:
    w.write(Document("a", "lone \\ud800 surrogate from a stage", url="http://x/\\udc00",
                     annotations={"s.k": "v\\ud801", "s.l": ["\\ud802"]}))
print(w.rows)
try:
    with ShardWriter(sys.argv[1] + ".2") as w:
        w.write(Document("b", ["not", "text"]))  # a stage bug, met at the last flush: the shard fails
except Exception as exc:
    print(type(exc).__name__)
"""


def test_the_writer_survives_surrogates_and_leaves_no_del_tracebacks(tmp_path):
    import subprocess
    import sys

    out = tmp_path / shard_name(0)
    proc = subprocess.run([sys.executable, "-c", WRITER_CHILD, str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["1", "ArrowTypeError"], proc.stderr
    assert "Exception ignored" not in proc.stderr and "closed file" not in proc.stderr
    (doc,) = read_documents(str(out), StageStats())
    assert doc.text == "lone ? surrogate from a stage" and doc.url == "http://x/?"
    assert not (tmp_path / (shard_name(0) + ".2")).exists()
