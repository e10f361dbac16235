"""WRAP rephrasing against a real local OpenAI-compatible server with injected faults, kill
and resume, and the in-process transformers backend with a tiny random model."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.openai_server import FakeLLM

from winnow.config import ConfigError
from winnow.document import Document
from winnow.rephrase_backends import OpenAIBackend
from winnow.stats import StageStats
from winnow.tasks.pipeline import load_config
from winnow.tasks.rephrase import Journal, RephraseConfig, chunk_text, degenerate, rephrase_documents, token_counter

REPO = Path(__file__).resolve().parents[3]
TEXT = REPO / "tests" / "data" / "text"


def docs(n: int) -> list[Document]:
    text = gzip.open(TEXT / "austen-persuasion.txt.gz", "rt", encoding="utf-8").read()
    text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    paras = [p for p in re.split(r"\n\s*\n", text) if len(p.split()) > 40]
    return [Document(id=f"d{i}", text="\n\n".join(paras[2 * i : 2 * i + 2])) for i in range(n)]


def cfg(**kw) -> RephraseConfig:
    return RephraseConfig(enabled=True, base_url="http://x/v1", model="fake", **kw)


def test_chunks_respect_the_token_budget_and_sentences():
    count = token_counter()
    text = docs(1)[0].text
    chunks = chunk_text(text, 60, count)
    assert len(chunks) > 1 and all(count(c) <= 60 for c in chunks)
    assert re.sub(r"\s+", " ", " ".join(chunks)) == re.sub(r"\s+", " ", text).strip()
    assert all(c.rstrip()[-1] in ".!?\"'”’;:" or count(c) > 50 for c in chunks[:-1])
    long_sentence = " ".join(["word"] * 500)
    assert all(count(c) <= 60 for c in chunk_text(long_sentence, 60, count))


def test_degenerate_generations():
    c = cfg()
    src = "The quick brown fox jumps over the lazy dog near the river bank today."
    assert degenerate(src, "", c) == "empty"
    assert degenerate(src, "I'm sorry, but I can't do that.", c) == "refusal"
    assert degenerate(src, "Fox.", c) == "too_short"
    assert degenerate(src, "the fox ran " * 30, c) == "repetition"
    assert degenerate(src, "A swift brown fox leaps above the idle dog by the riverside today.", c) is None


def test_faulty_server_every_document_rephrased_or_reported(tmp_path):
    source = docs(40)
    with FakeLLM(faults=True, slow_seconds=1.5) as llm:
        backend = OpenAIBackend(llm.base_url, "fake", concurrency=8, timeout=1.0, max_retries=4,
                                backoff_base=0.05, backoff_max=2.0)
        journal = Journal(str(tmp_path / "journal.jsonl"))
        stats = StageStats()
        c = cfg(styles=["medium", "qa"], chunk_tokens=120, synthetic_per_real=1.5)
        out, report = rephrase_documents(source, c, backend, journal, stats)
        journal.close()
    assert len(report) == 60  # 1.5 x 40 jobs
    ok = [r for r in report if r["status"] == "ok"]
    failed = [r for r in report if r["status"] == "failed"]
    assert ok and failed and all(r["reason"] for r in failed)
    assert {r["reason"] for r in failed} <= {"degenerate_empty", "degenerate_refusal"}
    # No duplicates, nothing lost: the real documents once each, one synthetic per ok job.
    ids = [d.id for d in out]
    assert len(ids) == len(set(ids)) == 40 + len(ok)
    assert {d.id for d in out[:40]} == {d.id for d in source}
    synth = {d.id: d for d in out[40:]}
    for r in ok:
        d = synth[r["id"]]
        assert d.annotations["rephrase.source_id"] == r["source_id"]
        assert d.annotations["rephrase.style"] == r["style"] and d.annotations["rephrase.model"] == "fake"
        assert len(d.annotations["rephrase.template_hash"]) == 12
    # Every transport fault was retried to success, and each chunk was journaled once. (The
    # server also counts the late answers to timed-out requests that the client dropped.)
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(x)["key"] for x in lines})
    assert all(n == 1 for k, n in llm.successes.items() if llm.fault_for_key(k) != "slow")
    assert backend.stats["http_429"] and backend.stats["http_500"] and backend.stats["timeout"]
    assert backend.stats["malformed"]
    assert stats.counters["synthetic_documents"] == len(ok)


RUNNER = """
import sys, json
sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r}); sys.path.insert(0, {here!r})
from test_rephrase import docs, cfg
from winnow.tasks.rephrase import Journal, rephrase_documents
from winnow.rephrase_backends import OpenAIBackend
from winnow.stats import StageStats
backend = OpenAIBackend({url!r}, "fake", concurrency=2)
journal = Journal({journal!r})
rephrase_documents(docs(30), cfg(chunk_tokens=80), backend, journal, StageStats())
journal.close()
"""


def test_kill_midway_then_rerun_requests_nothing_twice(tmp_path):
    journal_path = tmp_path / "journal.jsonl"
    with FakeLLM(latency=0.05) as llm:
        code = RUNNER.format(repo=str(REPO), tests=str(REPO / "tests"), here=str(Path(__file__).parent),
                             url=llm.base_url, journal=str(journal_path))
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
        deadline = time.time() + 120
        while sum(llm.successes.values()) < 25 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done_before = {json.loads(line)["key"] for line in journal_path.read_text().splitlines() if line.endswith("}")}
        requests_before = sum(llm.requests.values())
        assert 0 < len(done_before) < requests_before + 1
        journal = Journal(str(journal_path))
        stats = StageStats()
        out, report = rephrase_documents(docs(30), cfg(chunk_tokens=80), OpenAIBackend(llm.base_url, "fake"),
                                         journal, stats)
        journal.close()
    total = stats.counters["chunks_total"]
    assert stats.counters["chunks_from_checkpoint"] == len(done_before)
    assert sum(llm.requests.values()) - requests_before == total - len(done_before)
    assert all(r["status"] == "ok" for r in report) and len(out) == 60
    # Rerunning again is idempotent: nothing requested.
    again_stats = StageStats()
    with FakeLLM() as llm2:
        journal = Journal(str(journal_path))
        out2, _ = rephrase_documents(docs(30), cfg(chunk_tokens=80), OpenAIBackend(llm2.base_url, "fake"),
                                     journal, again_stats)
        journal.close()
        assert sum(llm2.requests.values()) == 0
    assert [d.text for d in out2] == [d.text for d in out]


def test_config_errors_say_how_to_point_at_a_model(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input: a\noutput: b\nrephrase:\n  enabled: true\n")
    with pytest.raises(ConfigError, match="vllm serve"):
        load_config(path)
    path.write_text("input: a\noutput: b\nrephrase:\n  enabled: true\n  model: m\n  base_url: http://h/v1\n"
                    "  templates: {bad: 'no placeholder'}\n")
    with pytest.raises(ConfigError, match="must contain"):
        load_config(path)
    with pytest.raises(ValueError, match="unknown style"):
        rephrase_documents(docs(1), cfg(styles=["poetic"]), None, None, StageStats())


def test_transformers_backend_with_a_tiny_random_model(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from winnow.rephrase_backends import TransformersBackend

    text = gzip.open(TEXT / "austen-persuasion.txt.gz", "rt", encoding="utf-8").read()
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(text.split("\n\n"), trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>", "<pad>", "</s>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    config = transformers.LlamaConfig(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                      eos_token_id=2, pad_token_id=1)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "model")
    fast.save_pretrained(tmp_path / "model")

    backend = TransformersBackend(str(tmp_path / "model"), batch_size=4, max_new_tokens=24, temperature=0.0)
    journal = Journal(str(tmp_path / "j.jsonl"))
    stats = StageStats()
    c = RephraseConfig(enabled=True, backend="transformers", model=str(tmp_path / "model"), chunk_tokens=60,
                       min_length_ratio=0.0, max_repeated_ngrams=1.0)
    out, report = rephrase_documents(docs(5), c, backend, journal, stats)
    journal.close()
    assert len(report) == 5 and stats.counters["chunks_requested"] == stats.counters["chunks_total"] > 5
    ok = [r for r in report if r["status"] == "ok"]
    assert len(out) == 5 + len(ok)
    # A random model writes garbage, but real, non-empty garbage through the whole path.
    assert all(r["status"] == "ok" or r["reason"].startswith("degenerate") for r in report)
