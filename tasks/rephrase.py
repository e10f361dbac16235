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
import posixpath
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field, model_validator

from winnow.config import runtime_field
from winnow.document import Document
from winnow.rephrase_backends import Backend, Generation, OpenAIBackend, TransformersBackend, VLLMBackend
from winnow.report import bar_chart, section
from winnow.resume import ShardRef, ShardResult, derive_shard, redo_note
from winnow.shards import shard_name
from winnow.stage import CorpusContext, CorpusResult, CorpusStage, StageConfig, StageEnv, StageError, register
from winnow.stats import StageStats
from winnow.storage import StorageOptions, error_line, filesystem, join, write_bytes_atomic
from winnow.tokenizer import load_tokenizer

STAGE = "rephrase"
REPHRASED_DIR = "rephrased"
CHECKPOINT_DIR = "rephrase_checkpoints"
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class RephraseConfig(StageConfig):
    """Settings of the WRAP rephrasing stage (YAML section `rephrase`)."""
    enabled: bool = Field(False, description="WRAP: add LLM rephrasings of documents in the chosen styles.")
    backend: Literal["openai", "transformers", "vllm"] = Field(
        "openai", description="openai: an OpenAI-compatible server (vllm serve, SGLang, TGI, hosted API); "
                              "transformers / vllm: a local model folder, in process.")
    base_url: str | None = runtime_field(None, description="openai backend: e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="Model name at the server, or the local model folder.")
    api_key_env: str = runtime_field("OPENAI_API_KEY",
                                     description="Environment variable holding the API key (if any).")
    styles: list[str] = Field(default_factory=lambda: ["medium"],
                              description="Styles to generate: easy, medium, hard, qa, or names from `templates`.")
    templates: dict[str, str] = Field(default_factory=dict,
                                      description="Extra styles: name -> prompt template containing {text}.")
    chunk_tokens: int = Field(300, ge=16, description="Chunks of at most this many tokens, cut at sentence ends.")
    synthetic_per_real: float = Field(1.0, ge=0.0, le=16.0,
                                      description="Synthetic documents per real one in the output (1.0 = WRAP's 1:1).")
    concurrency: int = runtime_field(64, ge=1, le=4096, description="openai backend: requests in flight.")
    timeout_s: float = runtime_field(120.0, gt=0, description="openai backend: per-request timeout.")
    max_retries: int = runtime_field(6, ge=0, le=50, description="openai backend: retries on 429/5xx/timeouts.")
    max_new_tokens: int = Field(512, ge=1, description="Generation budget per chunk.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    batch_size: int = runtime_field(16, ge=1, description="transformers backend: prompts per forward batch.")
    seed: int = Field(0, description="Sampling seed and the seed choosing which documents are rephrased.")
    min_length_ratio: Score = Field(0.3, description="Outputs shorter than this share of the source chunk are "
                                                     "degenerate.")
    max_repeated_ngrams: Score = Field(0.3, description="Outputs whose 3-grams repeat more than this share are "
                                                        "degenerate.")

    @model_validator(mode="after")
    def _needs_model(self) -> RephraseConfig:
        if self.enabled and not self.model:
            raise ValueError(
                "rephrase is enabled but has no model. Point it at one: start an OpenAI-compatible server "
                "(e.g. `vllm serve MODEL --port 8000`) and set rephrase.base_url: http://127.0.0.1:8000/v1 and "
                "rephrase.model: MODEL; or set rephrase.backend: transformers and rephrase.model: /path/to/model")
        if self.enabled and self.backend == "openai" and not self.base_url:
            raise ValueError("rephrase.backend openai needs rephrase.base_url (e.g. http://127.0.0.1:8000/v1)")
        for name, template in self.templates.items():
            if "{text}" not in template:
                raise ValueError(f"rephrase.templates.{name} must contain {{text}}")
        return self

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
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry, but|i cannot|i can't|as an ai\b|i'm unable|"
                      r"i am unable)", re.I)


def templates(cfg: RephraseConfig) -> dict[str, str]:
    """The prompt template of every configured style; an unknown style is an error naming the known ones."""
    table = {**STYLES, **cfg.templates}
    unknown = [s for s in cfg.styles if s not in table]
    if unknown:
        raise ValueError(f"rephrase.styles: unknown style(s) {unknown}; known: {sorted(table)}")
    return {s: table[s] for s in cfg.styles}


def template_hash(template: str) -> str:
    """A short hash of a template: part of each chunk's key, so an edited prompt is asked again."""
    return hashlib.sha1(template.encode()).hexdigest()[:12]


def token_counter() -> Callable[[str], int]:
    """Token counts for chunking (cl100k: what the chunk limit is stated in)."""
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

    def __init__(self, path: str, so: StorageOptions = None, remote_batch: int = 256) -> None:
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
        fs, p = filesystem(self.path, self.so)
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
        """Record one finished chunk (flushed at once on a local disk)."""
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
        """Flush what is pending and close."""
        self.flush()
        if self.local:
            self._fh.close()


@dataclass
class Job:
    """One document to rephrase in one style, cut into chunks."""
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
    # Every generation setting is in a chunk's key: a journal entry made with a smaller token
    # budget or another temperature is never reused as if made with these.
    generation = f"{cfg.backend}:{cfg.max_new_tokens}:{cfg.temperature}:{cfg.seed}"
    for doc, style in choose_jobs(real, cfg):
        chunks = chunk_text(doc.text, cfg.chunk_tokens, count)
        th = template_hash(table[style])
        keys = [hashlib.sha1("\x1f".join([doc.id, str(i), style, th, backend.model_name, generation,
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
            if bad or text is None:
                reason = f"degenerate_{bad or 'empty'}"
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
    """The generation backend a config names. An in-process model is loaded once per process
    and shared by its shards (one at a time): loading it per shard would cost minutes each,
    and several vLLM engines in one process would not fit on one GPU."""
    if cfg.backend == "openai":
        return OpenAIBackend(cfg.base_url or "", cfg.model or "", os.environ.get(cfg.api_key_env), cfg.concurrency,
                             cfg.timeout_s, cfg.max_retries, max_tokens=cfg.max_new_tokens,
                             temperature=cfg.temperature, seed=cfg.seed)
    key = cfg.model_dump_json()
    with _local_lock:
        backend = _local_backends.get(key)
        if backend is None:
            model: Backend = (TransformersBackend(cfg.model or "", cfg.batch_size, cfg.max_new_tokens,
                                                  cfg.temperature, cfg.seed) if cfg.backend == "transformers"
                              else VLLMBackend(cfg.model or "", cfg.max_new_tokens, cfg.temperature, cfg.seed))
            backend = _local_backends[key] = _OneAtATime(model)
    return backend


class _OneAtATime:
    """A shared in-process backend that serves one shard's prompts at a time (threads runner)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.model_name = backend.model_name
        self._lock = threading.Lock()

    def generate(self, prompts: list[str],
                 on_result: Callable[[int, Generation], None] | None = None) -> list[Generation]:
        with self._lock:
            return self._backend.generate(prompts, on_result)


_local_backends: dict[str, _OneAtATime] = {}
_local_lock = threading.Lock()


def rephrase_unit(source: ShardRef, out: str, checkpoint: str, cfg: RephraseConfig,
                  storage_options: StorageOptions = None, rows_per_group: int = 2000) -> ShardResult:
    """One shard: real documents + rephrasings. Chunks whose requests failed (server down, out
    of retries) leave the shard unmarked, so the next run retries them; the journal keeps it
    from asking again for the chunks that succeeded."""

    def make_docs(docs: Iterable[Document], stats: StageStats) -> list[Document]:
        journal = Journal(checkpoint, storage_options)
        try:
            out_docs, report = rephrase_documents(docs, cfg, build_backend(cfg), journal, stats)
        finally:
            journal.close()
        parent, name = posixpath.split(out)
        write_bytes_atomic(join(parent, "_report", name + ".jsonl"),
                           "".join(json.dumps(r) + "\n" for r in report).encode(), storage_options)
        return out_docs

    return derive_shard(source, out, STAGE, RephraseStage.settings(cfg), make_docs, storage_options,
                        rows_per_group, retry_if="rephrase_request_failed")


def _errors(stats: StageStats) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(stats.errors.items())) or "no detail"


@dataclass(frozen=True)
class RephraseWork:
    """One mapped rephrase task: :func:`rephrase_unit`."""

    source: ShardRef
    out: str
    checkpoint: str
    cfg: RephraseConfig
    storage_options: StorageOptions = None
    rows_per_group: int = 2000

    def __call__(self) -> ShardResult:
        return rephrase_unit(self.source, self.out, self.checkpoint, self.cfg, self.storage_options,
                             self.rows_per_group)

    def label(self) -> str:
        return posixpath.basename(self.out)


@register
class RephraseStage(CorpusStage[RephraseConfig]):
    """Adds LLM rephrasings of documents, per shard."""
    name = STAGE
    config_model = RephraseConfig
    order = 200
    output_dir = REPHRASED_DIR
    summary = "WRAP rephrasing: an instruction LLM rewrites documents in styles (OpenAI-compatible or in-process)."

    @classmethod
    def check(cls, section: RephraseConfig, env: StageEnv) -> None:
        try:
            templates(section)
        except ValueError as exc:
            raise StageError(str(exc)) from None
        if section.backend == "openai":
            # The server must answer now, not hours later after curate and dedup. Any HTTP reply
            # will do (not every OpenAI-compatible server has /models).
            url = f"{(section.base_url or '').rstrip('/')}/models"
            key = os.environ.get(section.api_key_env)
            try:
                httpx.get(url, timeout=10, headers={"Authorization": f"Bearer {key}"} if key else None)
            except httpx.HTTPError as exc:
                raise StageError(f"rephrase.base_url {section.base_url} does not answer ({error_line(exc)}); "
                                 "start the server first") from None
        elif (section.model or "").startswith(("/", "./", "../", "~")) and \
                not os.path.exists(os.path.expanduser(section.model or "")):
            # A path that is not there (a hub id such as org/name is left to the model's cache).
            raise StageError(f"rephrase.model: {section.model} does not exist (a local model folder is needed: "
                             "nothing is downloaded at run time)")

    @classmethod
    def run(cls, section: RephraseConfig, ctx: CorpusContext, inputs: list[ShardRef]) -> CorpusResult:
        outs = [join(ctx.output, REPHRASED_DIR, shard_name(k)) for k in range(len(inputs))]
        checkpoints = [join(ctx.output, CHECKPOINT_DIR, shard_name(k, suffix=".jsonl")) for k in range(len(inputs))]
        results = ctx.mapper.map([RephraseWork(s, o, c, section, ctx.storage_options, ctx.rows_per_row_group)
                                  for s, o, c in zip(inputs, outs, checkpoints, strict=True)], name="rephrase")
        redone = redo_note([r.mismatch for r in results if r.mismatch is not None], stage=STAGE)
        if redone:
            ctx.log(redone)
        stats = StageStats()
        for r in results:
            stats.merge(StageStats.from_dict(r.stats[STAGE]))
        pending = sum(1 for r in results if r.ref is None)
        incomplete = (f"rephrase: {pending} of {len(results)} shard(s) had failed requests ({_errors(stats)}); "
                      "the rest is written. Rerun the same command to retry only the failed requests "
                      "(the stages after rephrase wait for them)") if pending else None
        refs = [r.ref for r in results if r.ref is not None]
        return CorpusResult(refs, {STAGE: stats}, {"rows": stats.docs_out, "pending_shards": pending},
                            summary_key="rephrase", final_output=join(ctx.output, REPHRASED_DIR),
                            incomplete=incomplete)

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        if stats is None:
            return None
        c = dict(stats.counters)
        items = [("chunks requested", c.get("chunks_requested", 0)),
                 ("chunks from checkpoint", c.get("chunks_from_checkpoint", 0)),
                 ("synthetic documents", c.get("synthetic_documents", 0))]
        items += [(f"failed: {r}", n) for r, n in stats.dropped_docs.most_common()]
        items += [(f"error: {r}", n) for r, n in stats.errors.most_common()]
        return section("rephrase", "Rephrasing", bar_chart(items, "rephrasing outcomes", chart_id="rephrase-chart"))
