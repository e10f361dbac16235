"""WARC reading under hostile records (issue 20, items 3 and 5): bounded decompression,
Content-Length overruns, files given up after too many resyncs. Records are built in the test
from real pages of the demo WARCs."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zlib
from pathlib import Path

import brotli
import pytest
from helpers.hostile_inputs import (
    HOST,
    bomb_records,
    damaged_members,
    gzip_member,
    overrun_records,
    real_pages,
    warc_record,
)

from winnow.stats import StageStats
from winnow.warc import WarcAbandoned, _decode_content, _TooLarge, iter_http_responses

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "examples" / "data" / "warc" / "cc-main-2020-34-sample.warc.gz"
MiB = 1 << 20


@pytest.fixture(scope="module")
def pages() -> list[tuple[str, bytes]]:
    return real_pages(SAMPLE, limit=8)


def _read(data: bytes, **kw) -> tuple[list, StageStats]:
    stats = StageStats()
    return list(iter_http_responses(io.BytesIO(data), stats, "t.warc", 10**7, **kw)), stats


def test_every_content_encoding_decodes(pages):
    body = pages[0][1]
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    cases = {
        "gzip": gzip.compress(body), "x-gzip": gzip.compress(body), "deflate": zlib.compress(body),
        "Deflate": raw.compress(body) + raw.flush(), "br": brotli.compress(body),
        "gzip, br": brotli.compress(gzip.compress(body)), "identity": body,
        "X-Gzip": gzip.compress(body[:100]) + gzip.compress(body[100:]),  # two gzip members
    }
    for enc, data in cases.items():
        assert _decode_content(data, enc, limit=len(body)) == body, enc
    for enc, data in cases.items():
        if enc != "identity":
            with pytest.raises(_TooLarge):
                _decode_content(data, enc, limit=len(body) - 1)


BOMB_CHILD = """
import re, sys
from winnow.warc import iter_http_responses
from winnow.stats import StageStats
with open(sys.argv[1], "rb") as fh:
    problems = [(r.url, r.problem, len(r.body)) for r in
                iter_http_responses(fh, StageStats(), "bombs", 10**7, max_body_bytes=int(sys.argv[2]))]
hwm_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(problems)
print(hwm_kb // 1024)
"""


def _peak_mib(path: Path, limit: int) -> tuple[str, int]:
    # Peak RSS of a child process alone (VmHWM): this test's own memory does not count.
    out = subprocess.run([sys.executable, "-c", BOMB_CHILD, str(path), str(limit)], capture_output=True,
                         text=True, timeout=300, check=True).stdout.splitlines()
    return out[0], int(out[1])


def test_compression_bombs_stop_at_the_limit_with_bounded_memory(tmp_path, pages):
    # 1 GiB gzip, 16 GiB brotli and a stacked gzip-in-brotli bomb, each a record of a few MB,
    # between real pages. Before: a 1 GB brotli record alone peaked at 7.1 GB RSS.
    bombs = bomb_records()
    ordinary = [gzip_member(warc_record(u, b)) for u, b in pages[:2]]
    path = tmp_path / "bombs.warc.gz"
    path.write_bytes(ordinary[0] + b"".join(bombs.values()) + ordinary[1])
    baseline = tmp_path / "plain.warc.gz"
    baseline.write_bytes(b"".join(ordinary))
    limit = 8 * MiB
    problems, peak = _peak_mib(path, limit)
    _, base = _peak_mib(baseline, limit)
    for name in bombs:
        assert f"('{HOST}{name}', 'decoded_too_large', 0)" in problems
    assert problems.count("None") == 2  # the real pages around them are read
    # The bound: about 3 copies of the record (<= max_record_bytes: the WARC block, the HTTP
    # body, the decoder's input) + max_body_bytes + brotli's window (16 MiB at most) + 64 KiB.
    # Here records of 3 MB and a limit of 8 MiB; 16 MiB of slack for the allocator.
    assert peak - base < 3 * 3 + 8 + 16 + 16, (peak, base)


def test_a_content_length_overrun_keeps_every_record(pages):
    # Before: record 2 held records 3 and 4 in its text under its own URL, and 3-4 were lost.
    data = b"".join(overrun_records(pages[:6]))
    records, stats = _read(data)
    assert [(r.url, r.body) for r in records] == pages[:6]
    assert stats.errors["warc_length_overrun"] == 1


def test_a_content_length_overrun_in_an_uncompressed_warc(pages):
    plain = [warc_record(u, b) for u, b in pages[:5]]
    plain[1] = warc_record(*pages[1], overrun=len(plain[2]) + 10)
    records, stats = _read(b"".join(plain))
    assert [(r.url, r.body) for r in records] == pages[:5]
    assert stats.errors["warc_length_overrun"] == 1


def test_a_page_quoting_a_warc_header_is_not_an_overrun(pages):
    quoting = pages[0][1] + b"\r\n\r\nWARC/1.0\r\nThis is how a WARC file starts.\r\n\r\n"
    records, stats = _read(gzip_member(warc_record(pages[0][0], quoting)) + gzip_member(warc_record(*pages[1])))
    assert [r.body for r in records] == [quoting, pages[1][1]]
    assert not stats.errors


def test_a_file_given_up_after_too_many_resyncs_fails_or_is_counted(pages):
    records = [gzip_member(warc_record(f"http://example.org/{i}", pages[i % len(pages)][1]))
               for i in range(30)]
    data = b"".join(damaged_members(records, every=2))  # 15 damaged members
    got, stats = _read(data, max_resyncs=100)
    assert len(got) == 30 and stats.errors["corrupt_warc"] == 15 and stats.counters["warc_resyncs"] == 14
    # Before: reading stopped after max_resyncs without a word about the rest of the file.
    with pytest.raises(WarcAbandoned, match="gave up after 5 resyncs"):
        _read(data, max_resyncs=5)
    got, stats = _read(data, max_resyncs=5, fail_when_abandoned=False)
    assert stats.errors["warc_abandoned"] == 1 and len(got) == 12


def test_a_warc_gzip_member_far_longer_than_its_record_costs_no_memory(tmp_path, pages):
    # One gzip member: a real record, then 512 MiB of zeros the record's Content-Length does not
    # cover; fastwarc skips to the next member without inflating it into memory.
    c = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(16 * MiB)
    member = c.compress(warc_record(*pages[0])) + b"".join(c.compress(zeros) for _ in range(32)) + c.flush()
    path = tmp_path / "member-bomb.warc.gz"
    path.write_bytes(member + gzip_member(warc_record(*pages[1])))
    problems, peak = _peak_mib(path, 8 * MiB)
    assert problems.count("None") == 2 and peak < 200, (problems, peak)
