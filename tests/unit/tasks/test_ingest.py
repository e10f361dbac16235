"""Ingest on real WARC files: every record is either a document or a counted drop/error."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from winnow.stats import StageStats
from winnow.tasks.ingest import IngestConfig, ingest_warc

REPO = Path(__file__).resolve().parents[3]
DEMO_WARCS = REPO / "examples" / "data" / "warc"
BAD_WARCS = REPO / "tests" / "data" / "warc" / "bad"


def run(path, **cfg):
    stats = StageStats()
    docs = list(ingest_warc(str(path), IngestConfig(**cfg), stats))
    return docs, stats


def test_every_response_record_is_accounted_for():
    for path in sorted(DEMO_WARCS.iterdir()):
        docs, stats = run(path)
        assert stats.docs_in == stats.docs_out + sum(stats.dropped_docs.values()), path.name
        assert stats.docs_out == len(docs)
        assert stats.bytes_out == sum(len(d.text.encode()) for d in docs)


def test_common_crawl_multilingual_charsets_decode():
    docs, stats = run(DEMO_WARCS / "cc-main-2020-34-sample.warc.gz")
    assert len(docs) == 16 and not stats.errors
    # GBK/GB2312/windows-1251 pages in this sample must come out as readable text, not mojibake.
    assert any("\u4e00" <= ch <= "\u9fff" for d in docs for ch in d.text[:2000])
    assert any("\u0400" <= ch <= "\u04ff" for d in docs for ch in d.text[:2000])
    assert all("\ufffd" not in d.text for d in docs)
    assert all(d.url.startswith("http") and d.crawl_date is not None for d in docs)
    assert stats.counters["charset:gbk"] >= 1


def test_euc_jp_with_lying_content_encoding_header():
    # ClueWeb09 says "Content-Encoding: gzip" but stores the decoded body; WARC/0.18 dates.
    docs, stats = run(DEMO_WARCS / "clueweb09-ja-quirk.warc.gz")
    assert len(docs) == 29 and not stats.errors
    assert all(any("\u3040" <= ch <= "\u30ff" for ch in d.text) for d in docs)
    assert all(d.crawl_date is None for d in docs)  # "2008-10-294T..." is not a date


@pytest.mark.parametrize("name", ["transfer-compression-brotli.warc.gz", "transfer-compression-gzip.warc.gz"])
def test_content_encoded_bodies_are_decoded(name):
    docs, stats = run(DEMO_WARCS / name)
    assert len(docs) == 1
    assert "Extremely simple webpage used for testing GZip" in docs[0].text


def test_chunked_transfer_encoding():
    docs, _ = run(DEMO_WARCS / "warcio-example-iana-chunked.warc")
    assert len(docs) == 1 and "Internet Assigned Numbers Authority" in docs[0].text
    assert not any(line.strip() in ("0",) for line in docs[0].text.splitlines())


def test_revisits_non_html_and_status_are_counted():
    docs, stats = run(DEMO_WARCS / "govuk-BL-20140325122341434-00000-revisits.warc.gz")
    assert stats.dropped_docs["revisit"] == 55
    assert stats.dropped_docs["url_scheme"] >= 1  # dns: records
    assert len(docs) >= 1
    docs, stats = run(DEMO_WARCS / "govuk-BL-20140325121225068-00000.warc.gz")
    assert stats.dropped_docs["not_html"] >= 1  # robots.txt, images, scripts
    assert stats.dropped_docs["http_status"] >= 1  # 404s and redirects


def test_truncated_record_is_dropped_with_reason():
    docs, stats = run(BAD_WARCS / "resiliparse-clipped.warc.gz")
    assert docs == [] and stats.dropped_docs == {"truncated_record": 1}


def test_not_a_warc_file_is_an_error_not_a_crash(tmp_path):
    _, stats = run(BAD_WARCS / "warcio-bad.arc")
    assert stats.errors == {"not_a_warc": 1}
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    _, stats = run(empty)
    assert stats.errors == {"not_a_warc": 1}
    text = tmp_path / "notes.warc"
    text.write_text("this is not a web archive\n")
    _, stats = run(text)
    assert stats.errors == {"not_a_warc": 1}


@pytest.mark.parametrize("path", sorted(BAD_WARCS.iterdir()), ids=lambda p: p.name)
def test_bad_files_never_raise(path):
    docs, stats = run(path)
    assert stats.docs_in == len(docs) + sum(stats.dropped_docs.values())


def test_quirky_but_valid_records_are_kept():
    for name in ("warcio-example-wget-bad-target-uri.warc.gz", "ukwa-truncated_datetime.warc",
                 "warcio-example-wrong-chunks.warc.gz"):
        docs, _ = run(BAD_WARCS / name)
        assert len(docs) == 1, name
    docs, _ = run(BAD_WARCS / "warcio-example-wget-bad-target-uri.warc.gz")
    assert docs[0].url.startswith("http") and "<" not in docs[0].url
    docs, _ = run(BAD_WARCS / "ukwa-truncated_datetime.warc")
    assert docs[0].crawl_date is not None and docs[0].crawl_date.year == 2019


def test_corrupt_gzip_member_costs_only_that_record(tmp_path):
    src = (DEMO_WARCS / "cc-main-2020-34-sample.warc.gz").read_bytes()
    damaged = bytearray(src)
    mid = len(src) // 2
    for i in range(mid, mid + 200):
        damaged[i] ^= 0x5A
    path = tmp_path / "damaged.warc.gz"
    path.write_bytes(bytes(damaged))
    docs, stats = run(path)
    assert stats.errors["corrupt_warc"] >= 1
    assert 14 <= len(docs) < 16  # one record sits in the damaged bytes; the rest are recovered
    clean, _ = run(DEMO_WARCS / "cc-main-2020-34-sample.warc.gz")
    assert {d.id for d in docs} < {d.id for d in clean}


def test_file_cut_short_keeps_complete_records(tmp_path):
    src = (DEMO_WARCS / "cc-main-2020-34-sample.warc.gz").read_bytes()
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(src[: len(src) // 2])
    docs, stats = run(path)
    assert len(docs) >= 5
    assert stats.dropped_docs["truncated_record"] + sum(stats.errors.values()) >= 1


def test_uncompressed_and_recompressed_warc_agree(tmp_path):
    src = DEMO_WARCS / "ukwa-IAH-urls-wget.warc.gz"
    plain = tmp_path / "plain.warc"
    with gzip.open(src) as fin, open(plain, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    a, _ = run(src)
    b, _ = run(plain)
    assert [d.text for d in a] == [d.text for d in b] and len(a) > 0


def test_oversized_and_giant_documents(tmp_path):
    docs, stats = run(DEMO_WARCS / "cc-main-2020-34-sample.warc.gz", max_record_bytes=20_000)
    assert stats.dropped_docs["oversized"] > 0
    assert len(docs) + stats.dropped_docs["oversized"] == 16
    docs, stats = run(DEMO_WARCS / "cc-main-2020-34-sample.warc.gz", max_text_chars=2_000)
    assert stats.dropped_docs["text_too_long"] > 0
    assert all(len(d.text) <= 2_000 for d in docs)


def test_url_block_lists_drop_and_count(tmp_path):
    listing = tmp_path / "domains.txt"
    listing.write_text("# comment\ngov.uk\n")
    docs, stats = run(DEMO_WARCS / "govuk-BL-20140325121225068-00000.warc.gz",
                      url_filter={"blocked_domains_file": str(listing)})
    assert stats.dropped_docs["url_blocked_domain"] > 0
    assert all("gov.uk" not in d.url.split("/")[2] for d in docs)


def test_an_edited_block_list_changes_the_done_marker_key(tmp_path):
    """The key covers what a named file holds, not only its path: a list edited in place redoes the shards."""
    import os

    from winnow.stage import StageEnv, get
    from winnow.tasks.ingest import IngestConfig

    blocked = tmp_path / "domains.txt"
    blocked.write_text("example.com\n")
    cfg = IngestConfig.model_validate({"url_filter": {"blocked_domains_file": str(blocked)}})
    stage = get("ingest")
    before = stage.settings(cfg, StageEnv())
    assert before == stage.settings(cfg, StageEnv())
    blocked.write_text("example.com\nexample.org\n")
    os.utime(blocked, (1, 2))
    after = stage.settings(cfg, StageEnv())
    assert after != before and after["files"]["url_filter.blocked_domains_file"][0][0] == str(blocked)
    blocked.unlink()
    assert stage.settings(cfg, StageEnv())["files"]["url_filter.blocked_domains_file"] == [[str(blocked), "missing"]]
