"""WRAP ("Rephrasing the Web", Maini et al. 2024): an instruction model rewrites documents in
chosen styles; the output mixes real and synthetic documents.

Per shard: choose which documents get which style (``synthetic_per_real``), cut them into
chunks of at most ``chunk_tokens`` at sentence ends, ask the backend for every chunk not yet
in the shard's checkpoint journal (each answer is appended the moment it arrives, so a
killed run loses nothing and a rerun requests nothing twice), reassemble, reject degenerate
generations, and write real + synthetic documents with a per-job report.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from winnow.config import RephraseConfig
from winnow.document import Document
from winnow.rephrase_backends import Backend, Generation
from winnow.shardio import _fs, write_bytes_atomic
from winnow.stats import StageStats

STAGE = "rephrase"

# The paper's prompts (Maini et al. 2024, appendix), one per style.
STYLES: dict[str, str] = {
    "easy": "For the following paragraph give me a paraphrase of the same using a very small vocabulary and "
            "extremely simple sentences that a toddler will understand:\n\n{text}",
    "medium": "For the following paragraph give me a diverse paraphrase of the same in high quality English "
              "language as in sentences on Wikipedia:\n\n{text}",
    "hard": "For the following paragraph give me a paraphrase of the same using very terse and abstruse language "
            "that only an erudite scholar will understand. Replace simple words and phrases with rare and "
            "complex ones:\n\n{text}",
    "qa": "Convert the following paragraph into a conversational format with multiple tags of \"Question:\" "
          "followed by \"Answer:\":\n\n{text}",
}

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry, but|i cannot|i can't|as an ai\b|i'm unable|i am unable)", re.I)


def templates(cfg: RephraseConfig) -> dict[str, str]:
    table = {**STYLES, **cfg.templates}
    unknown = [s for s in cfg.styles if s not in table]
    if unknown:
        raise ValueError(f"rephrase.styles: unknown style(s) {unknown}; known: {sorted(table)}")
    return {s: table[s] for s in cfg.styles}


def template_hash(template: str) -> str:
    return hashlib.sha1(template.encode()).hexdigest()[:12]


def token_counter() -> Callable[[str], int]:
    from winnow.tokenizer import load_tokenizer

    tok = load_tokenizer(threads=1)
    return lambda text: len(tok.encode_batch([text])[0])


def chunk_text(text: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Sentences packed greedily into chunks of at most ``max_tokens``; a sentence longer than
    that is cut at word boundaries."""
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for sentence in (s.strip() for s in _SENTENCE_END.split(text)):
        if not sentence:
            continue
        n = count(sentence)
        if n > max_tokens:
            if current:
                chunks.append(" ".join(current))
                current, used = [], 0
            words = sentence.split()
            piece: list[str] = []
            for w in words:
                if piece and count(" ".join(piece + [w])) > max_tokens:
                    chunks.append(" ".join(piece))
                    piece = []
                piece.append(w)
            if piece:
                current, used = [" ".join(piece)], count(" ".join(piece))
            continue
        if current and used + n + 1 > max_tokens:
            chunks.append(" ".join(current))
            current, used = [], 0
        current.append(sentence)
        used += n + (1 if used else 0)
    if current:
        chunks.append(" ".join(current))
    return chunks


def degenerate(source: str, output: str | None, cfg: RephraseConfig) -> str | None:
    """Why a generation is unusable, or None."""
    if output is None or not output.strip():
        return "empty"
    if _REFUSAL.match(output):
        return "refusal"
    if len(output.strip()) < cfg.min_length_ratio * len(source.strip()):
        return "too_short"
    words = output.lower().split()
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(grams) >= 10:
        repeated = sum(c - 1 for c in Counter(grams).values() if c > 1)
        if repeated / len(grams) > cfg.max_repeated_ngrams:
            return "repetition"
    return None


class Journal:
    """Append-only record of finished chunks (key -> generated text), one JSON line each.

    Local files are appended and flushed per line, so a kill loses at most the line being
    written (a torn last line is ignored on reading). Remote paths (s3://) get one small
    object per flush instead, since objects cannot be appended to.
    """

    def __init__(self, path: str, so: dict[str, Any] | None = None, remote_batch: int = 256) -> None:
        self.path = path
        self.so = so
        self.local = "://" not in path
        self.done: dict[str, str] = {}
        self._pending: list[str] = []
        self._remote_batch = remote_batch
        self._part = 0
        self._load()
        if self.local:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")

    def _load(self) -> None:
        fs, p = _fs(self.path, self.so)
        files = [p] if self.local else sorted(fs.glob(p + ".part-*"))
        for f in files:
            if not fs.exists(f):
                continue
            with fs.open(f, "rt", encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # torn last line of a killed run
                    self.done[rec["key"]] = rec["text"]
            self._part += 1

    def add(self, key: str, text: str) -> None:
        self.done[key] = text
        line = json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n"
        if self.local:
            self._fh.write(line)
            self._fh.flush()
        else:
            self._pending.append(line)
            if len(self._pending) >= self._remote_batch:
                self.flush()

    def flush(self) -> None:
        if self.local:
            self._fh.flush()
        elif self._pending:
            write_bytes_atomic(f"{self.path}.part-{self._part:06d}", "".join(self._pending).encode(), self.so)
            self._part += 1
            self._pending = []

    def close(self) -> None:
        self.flush()
        if self.local:
            self._fh.close()


@dataclass
class Job:
    doc: Document
    style: str
    chunks: list[str]
    keys: list[str] = field(default_factory=list)


def choose_jobs(docs: list[Document], cfg: RephraseConfig) -> list[tuple[Document, str]]:
    """Which documents get which style: ``synthetic_per_real`` x documents, chosen by a seeded
    hash of the document id (stable across reruns and shard boundaries), styles in turn."""
    if not docs:
        return []
    n = round(len(docs) * cfg.synthetic_per_real)
    order = sorted(docs, key=lambda d: hashlib.sha1(f"{cfg.seed}:{d.id}".encode()).digest())
    m, s = len(order), len(cfg.styles)
    # The k-th job: document k mod m; each pass over the documents shifts the style by one,
    # so a document rephrased twice gets two different styles.
    return [(order[k % m], cfg.styles[(k % m + k // m) % s]) for k in range(n)]


def rephrase_documents(docs: Iterable[Document], cfg: RephraseConfig, backend: Backend, journal: Journal,
                       stats: StageStats, count_tokens: Callable[[str], int] | None = None
                       ) -> tuple[list[Document], list[dict[str, Any]]]:
    """Real documents + their rephrasings, and one report line per rephrasing job."""
    table = templates(cfg)
    count = count_tokens or token_counter()
    real = list(docs)
    for d in real:
        n = d.n_bytes
        stats.take_in(n)
        stats.keep(n)
    jobs: list[Job] = []
    for doc, style in choose_jobs(real, cfg):
        chunks = chunk_text(doc.text, cfg.chunk_tokens, count)
        th = template_hash(table[style])
        keys = [hashlib.sha1("\x1f".join([doc.id, str(i), style, th, backend.model_name,
                                           hashlib.sha1(c.encode()).hexdigest()]).encode()).hexdigest()
                for i, c in enumerate(chunks)]
        jobs.append(Job(doc, style, chunks, keys))

    todo: list[tuple[str, str]] = []  # (key, prompt), each missing chunk once
    seen = set()
    for job in jobs:
        for key, chunk in zip(job.keys, job.chunks):
            if key not in journal.done and key not in seen:
                seen.add(key)
                todo.append((key, table[job.style].format(text=chunk)))
    stats.counters["chunks_total"] += sum(len(j.chunks) for j in jobs)
    stats.counters["chunks_from_checkpoint"] += sum(len(j.chunks) for j in jobs) - len(todo)
    errors: dict[str, str] = {}

    def on_result(i: int, g: Generation) -> None:
        key = todo[i][0]
        if g.text is not None:
            journal.add(key, g.text)
        else:
            errors[key] = g.error or "failed"
        stats.counters["chunks_requested"] += 1

    if todo:
        backend.generate([p for _, p in todo], on_result)
    journal.flush()

    synthetic: list[Document] = []
    report: list[dict[str, Any]] = []
    for job in jobs:
        reason = None
        if not job.chunks:
            reason = "no_text"
        outputs = []
        for key, chunk in zip(job.keys, job.chunks):
            if key in errors:
                reason = f"request_failed: {errors[key]}"
                break
            text = journal.done.get(key)
            bad = degenerate(chunk, text, cfg)
            if bad:
                reason = f"degenerate_{bad}"
                break
            outputs.append(text.strip())
        status = {"source_id": job.doc.id, "style": job.style, "chunks": len(job.chunks)}
        if reason:
            stats.error(f"rephrase_{reason.split(':')[0]}", f"{job.doc.id} ({job.style}): {reason}")
            report.append({**status, "status": "failed", "reason": reason})
            continue
        doc = Document(id=f"{job.doc.id}#wrap-{job.style}", text="\n\n".join(outputs), url=job.doc.url,
                       crawl_date=job.doc.crawl_date, source_file=job.doc.source_file,
                       source_offset=job.doc.source_offset, content_type=job.doc.content_type)
        doc.annotate(STAGE, "source_id", job.doc.id)
        doc.annotate(STAGE, "style", job.style)
        doc.annotate(STAGE, "model", backend.model_name)
        doc.annotate(STAGE, "template_hash", template_hash(table[job.style]))
        stats.keep(doc.n_bytes)
        stats.counters["synthetic_documents"] += 1
        synthetic.append(doc)
        report.append({**status, "status": "ok", "id": doc.id})
    return real + synthetic, report


def build_backend(cfg: RephraseConfig) -> Backend:
    from winnow.rephrase_backends import OpenAIBackend, TransformersBackend, VLLMBackend

    if cfg.backend == "openai":
        return OpenAIBackend(cfg.base_url or "", cfg.model or "", os.environ.get(cfg.api_key_env), cfg.concurrency,
                             cfg.timeout_s, cfg.max_retries, max_tokens=cfg.max_new_tokens,
                             temperature=cfg.temperature, seed=cfg.seed)
    if cfg.backend == "transformers":
        return TransformersBackend(cfg.model or "", cfg.batch_size, cfg.max_new_tokens, cfg.temperature, cfg.seed)
    return VLLMBackend(cfg.model or "", cfg.max_new_tokens, cfg.temperature, cfg.seed)
