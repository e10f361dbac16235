"""Faults a long run meets: kill -9 at any stage, S3 going away and coming back, slow S3,
garbage input, giant and tiny records, a full disk. Each must end in the same output as an
undisturbed run (after a rerun), or in a clear error with nothing corrupt left behind."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.servers import BIN, REPO, FaultProxy, output_of, prefect_env, stop_group, winnow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winnow.stats import StageStats
from winnow.tasks.ingest import IngestConfig, ingest_warc

DEMO = REPO / "examples" / "demo.yaml"
DEMO_WARCS = REPO / "examples" / "data" / "warc"
SAMPLE = DEMO_WARCS / "cc-main-2020-34-sample.warc.gz"


def demo_config(path: Path, **changes) -> Path:
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["ingest"]["url_filter"]["blocked_domains_file"] = str(DEMO.parent / "blocklists" / "domains.txt")
    cfg["input"] = [str(DEMO_WARCS)]
    cfg.update(shard_size_mb=0, **changes)  # 12 shards: a kill lands between finished and unfinished ones
    path.write_text(yaml.safe_dump(cfg))
    return path


def all_output_files_readable(out: Path) -> None:
    for p in out.rglob("*"):
        assert ".tmp-" not in p.name, f"temp file left behind: {p}"
        if p.suffix == ".parquet":
            pq.read_metadata(p)  # a half-written file would not have a footer
        elif p.suffix == ".json":
            json.loads(p.read_text())


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, prefect_server_api) -> dict:
    tmp = tmp_path_factory.mktemp("undisturbed")
    winnow("run", str(demo_config(tmp / "cfg.yaml")), "-o", str(tmp / "out"),
           env=prefect_env(tmp / "home", prefect_server_api))
    return output_of(str(tmp / "out"))


# ---- kill -9 ---------------------------------------------------------------------------------

def _kill_when(cfg: Path, out: Path, env: dict[str, str], ready, timeout: float = 300) -> bool:
    """Start a run, SIGKILL its whole process group as soon as ``ready(out)``; True if the run
    was really cut short (it had not written its summary yet)."""
    proc = subprocess.Popen([str(BIN / "winnow"), "run", str(cfg), "-o", str(out)], env=env,
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready(out):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return not (out / "summary.json").exists()
            time.sleep(0.01)
        return False
    finally:
        stop_group(proc)


def _has(pattern: str, at_least: int = 1):
    return lambda out: len(list(out.glob(pattern))) >= at_least


@pytest.mark.slow
@pytest.mark.parametrize("stage, ready", [
    ("ingest", _has("documents/__done__/*.json", 3)),
    ("dedup", _has("dedup/bands/__done__/*.json")),
    ("dedup-filter", _has("deduped/*.parquet")),
    ("pack", _has("packed/.*")),
])
def test_kill_9_then_rerun_gives_the_undisturbed_output(stage, ready, undisturbed, tmp_path, prefect_server_api):
    cfg, out = demo_config(tmp_path / "cfg.yaml"), tmp_path / "out"
    # The first case kills a run with winnow's own temporary server (the README's path: the
    # server must die with it); the others share one server, which saves its start each time.
    env = prefect_env(tmp_path / "home", None if stage == "ingest" else prefect_server_api)
    interrupted = _kill_when(cfg, out, env, ready)
    if stage != "pack":  # packing the demo takes well under a second: the kill may come after it
        assert interrupted, f"the run finished before the kill during {stage}"
    rerun = winnow("run", str(cfg), "-o", str(out), env=env)
    assert "already done" in rerun.stderr
    result = output_of(str(out))
    assert result == undisturbed  # same documents, same sequences, in the same order
    ids = [d for d in result["docs"]]
    assert len(ids) == len(set(ids))  # nothing duplicated by the rerun
    all_output_files_readable(out)


# ---- S3 down, S3 slow ------------------------------------------------------------------------

@pytest.mark.slow
def test_s3_outage_mid_run_then_resume(s3_server, undisturbed, tmp_path, prefect_server_api):
    moto_port = int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1])
    proxy = FaultProxy(moto_port)
    so = {**s3_server, "client_kwargs": {"endpoint_url": proxy.endpoint}}
    fs = fsspec.filesystem("s3", **s3_server)  # straight to moto: the test's own view
    for f in sorted(DEMO_WARCS.iterdir()):
        fs.put_file(str(f), f"winnow-test/outage/crawl/{f.name}")
    cfg = demo_config(tmp_path / "cfg.yaml", storage_options=so, runner={"kind": "threads", "workers": 2, "retries": 1},
                      output="s3://winnow-test/outage/out")
    cfg_data = yaml.safe_load(cfg.read_text())
    cfg_data["input"] = ["s3://winnow-test/outage/crawl/"]
    cfg.write_text(yaml.safe_dump(cfg_data))

    def outage() -> None:
        while not fs.exists("winnow-test/outage/out/documents/__done__"):
            time.sleep(0.05)
        proxy.down()  # S3 is gone for 3 s, in the middle of the shards
        time.sleep(3)
        proxy.up()
        proxy.delay = 0.01  # then slow for a while
        time.sleep(3)
        proxy.delay = 0.0

    t = threading.Thread(target=outage, daemon=True)
    t.start()
    env = prefect_env(tmp_path / "home", prefect_server_api)
    first = subprocess.run([str(BIN / "winnow"), "run", str(cfg)], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    t.join(60)
    proxy.delay = 0.0
    # Either the retries carried the run through, or it stopped with a message naming the shards.
    assert first.returncode in (0, 1), first.stderr[-3000:]
    if first.returncode == 1:  # Prefect logs each failed task's traceback; winnow's last word is clear
        final = first.stderr[first.stderr.rindex("error:"):]
        assert "rerun the same command" in final.lower() and "Traceback" not in final
    winnow("run", str(cfg), env=env)
    proxy.close()
    assert output_of("s3://winnow-test/outage/out", s3_server) == undisturbed
    assert not [p for p in fs.find("winnow-test/outage/out") if ".tmp-" in p]


# ---- fuzzed input ----------------------------------------------------------------------------

def _ingest_bytes(tmp: Path, name: str, data: bytes) -> StageStats:
    path = tmp / name
    path.write_bytes(data)
    stats = StageStats()
    docs = list(ingest_warc(str(path), IngestConfig(), stats))
    # Every record that went in is a document or a counted drop; damage shows as errors.
    assert stats.docs_in == len(docs) + sum(stats.dropped_docs.values())
    return stats


_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_PLAIN = gzip.decompress(SAMPLE.read_bytes())


@_FUZZ
@given(data=st.binary(max_size=4096), gz=st.booleans())
def test_random_bytes_never_crash_ingest(tmp_path, data, gz):
    stats = _ingest_bytes(tmp_path, "random.warc.gz" if gz else "random.warc", data)
    assert stats.docs_out == 0 or data.startswith(b"WARC/")


@_FUZZ
@given(cut=st.integers(min_value=0, max_value=len(SAMPLE.read_bytes())),
       flips=st.lists(st.integers(min_value=0, max_value=len(SAMPLE.read_bytes()) - 1), max_size=20))
def test_truncated_and_bit_flipped_gzip_never_crash_ingest(tmp_path, cut, flips):
    data = bytearray(SAMPLE.read_bytes())
    for i in flips:
        data[i] ^= 0xFF
    stats = _ingest_bytes(tmp_path, "damaged.warc.gz", bytes(data[:cut]))
    assert stats.docs_out <= 16


_HEADER_LINE = st.sampled_from([b"Content-Length: ", b"WARC-Type: ", b"WARC-Target-URI: ", b"Content-Type: ",
                                b"WARC-Record-ID: ", b"X: ", b"", b"WARC/1.0", b"HTTP/1.1 "])
_STARTS = [i for i in range(len(_PLAIN)) if _PLAIN.startswith(b"WARC/1.", i) and (i == 0 or _PLAIN[i - 1] == 10)]


@_FUZZ
@given(record=st.integers(min_value=0, max_value=40), line=st.integers(min_value=0, max_value=12),
       prefix=_HEADER_LINE, value=st.binary(max_size=40))
def test_mutated_warc_headers_never_crash_ingest(tmp_path, record, line, prefix, value):
    # Replace one header line of one record (WARC or HTTP headers) with something else.
    start = _STARTS[record % len(_STARTS)]
    head_end = _PLAIN.find(b"\r\n\r\n", start)
    lines = _PLAIN[start:head_end].split(b"\r\n")
    lines[line % len(lines)] = prefix + value
    data = _PLAIN[:start] + b"\r\n".join(lines) + _PLAIN[head_end:]
    stats = _ingest_bytes(tmp_path, "mutated.warc", data)
    if record % len(_STARTS) > 0:
        assert stats.docs_out >= 1  # the records before the damaged one still come through


# ---- resource limits -------------------------------------------------------------------------

def _warc_record(url: str, body: bytes) -> bytes:
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2026-11-23T00:00:00Z\r\n"
            f"WARC-Record-ID: <urn:uuid:{random.Random(url).getrandbits(128):032x}>\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n").encode()
    return head + http + b"\r\n\r\n"


# Peak RSS from VmHWM: this process's own high-water mark. ru_maxrss would also count the
# forked pytest process's memory, which Linux carries across exec.
GIANT_CHILD = """
import re, sys
from winnow.tasks.ingest import IngestConfig, ingest_warc
from winnow.stats import StageStats
stats = StageStats()
urls = [d.url for d in ingest_warc(sys.argv[1], IngestConfig(), stats)]
hwm_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(urls, stats.dropped_docs["oversized"], hwm_kb // 1024)
"""


@pytest.mark.slow
def test_a_200_mb_document_is_skipped_unread_and_the_next_one_kept(tmp_path):
    page = b"<html><body><p>" + b"All work and no play makes a dull crawl. " * 40 + b"</p></body></html>"
    path = tmp_path / "giant.warc"
    with open(path, "wb") as f:
        f.write(_warc_record("http://example.org/a", page))
        # A 200 MB body, written in pieces.
        body_len = 200_000_000
        http_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
        f.write((f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://example.org/giant\r\n"
                 f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000001>\r\n"
                 f"Content-Length: {len(http_head) + body_len}\r\n\r\n").encode() + http_head)
        chunk = b"<p>" + b"x" * 99_993 + b"</p>"
        for _ in range(body_len // len(chunk)):
            f.write(chunk)
        f.write(b"\r\n\r\n")
        f.write(_warc_record("http://example.org/b", page))
    # In a fresh process, so that its peak memory is this file's alone.
    out = subprocess.run([str(BIN / "python"), "-c", GIANT_CHILD, str(path)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    urls, oversized, peak_mb = out.stdout.strip().rsplit(" ", 2)[0], *map(int, out.stdout.split()[-2:])
    assert urls == "['http://example.org/a', 'http://example.org/b']" and oversized == 1
    assert peak_mb < 400, f"peak RSS {peak_mb} MB while skipping a 200 MB record"


@pytest.mark.slow
def test_a_warc_with_100k_tiny_records(tmp_path):
    # As in a crawl: most records are requests/metadata; every tenth is a tiny HTML response.
    path = tmp_path / "tiny.warc.gz"
    buf = io.BytesIO()
    for k in range(100_000):
        if k % 10 == 0:
            buf.write(_warc_record(f"http://example.org/{k}", b"<p>tiny page %d about nothing</p>" % k))
        else:
            body = b"GET /%d HTTP/1.1\r\nHost: example.org\r\n\r\n" % k
            buf.write(b"WARC/1.0\r\nWARC-Type: request\r\nWARC-Target-URI: http://example.org/%d\r\n"
                      b"Content-Type: application/http; msgtype=request\r\nContent-Length: %d\r\n\r\n" % (k, len(body))
                      + body + b"\r\n\r\n")
    path.write_bytes(gzip.compress(buf.getvalue(), compresslevel=1))
    from winnow.inputs import list_inputs
    from winnow.tasks.pipeline import WinnowConfig
    from winnow.tasks.shard import ShardJob, ShardPlan, process_shard

    cfg = WinnowConfig.model_validate({"input": [str(path)], "output": str(tmp_path / "out")})
    job = ShardJob(0, tuple(list_inputs([str(path)]).files), str(tmp_path / "out" / "part-00000.parquet"))
    result = process_shard(job, ShardPlan.from_config(cfg))
    ingest = result.stats["ingest"]
    assert ingest["docs_in"] == 10_000
    assert ingest["docs_out"] + sum(ingest["dropped_docs"].values()) == 10_000
    assert ingest["counters"]["warc_response_records"] == 10_000
    assert pq.read_metadata(tmp_path / "out" / "part-00000.parquet").num_rows == result.ref.rows


def _small_tmpfs(path: Path, size: str = "64k") -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_full_output_disk_is_a_clear_error_and_leaves_nothing_corrupt(tmp_path, prefect_server_api):
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        cfg = demo_config(tmp_path / "cfg.yaml", dedup={"enabled": False}, pack={"enabled": False},
                          quality={"write_rejected": False}, runner={"kind": "threads", "workers": 1, "retries": 0})
        proc = subprocess.run([str(BIN / "winnow"), "run", str(cfg), "-o", str(disk / "out")],
                              env=prefect_env(tmp_path / "home", prefect_server_api), cwd=REPO, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 1, proc.stderr[-3000:]
        # Prefect logs each failed task with its traceback; winnow's own last word is one clear message.
        final = proc.stderr[proc.stderr.rindex("error:"):]
        assert "No space left on device" in final and "rerun the same command" in final.lower()
        assert "Traceback" not in final
        # What was written is whole: every visible Parquet file is complete, every marker valid.
        all_output_files_readable(disk / "out")
        done = list((disk / "out" / "documents" / "__done__").glob("*.json"))
        shards = list((disk / "out" / "documents").glob("part-*.parquet"))
        assert len(done) <= len(shards) < 12
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
