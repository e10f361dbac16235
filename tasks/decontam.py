"""Benchmark decontamination stage: drop (or annotate) documents that share a long n-gram
(13 words by default) with the evaluation sets a user names, as GPT-3 and datatrove do.

The n-gram index is built once per run, before any shard (``prepare``), and saved under
``OUTPUT/_decontam/``; every shard task loads it (a fraction of a second per million n-grams).
Its settings key covers the eval files' stamps, so an edited eval set redoes the shards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator

from winnow.config import path_field
from winnow.document import Document
from winnow.filters.decontam import DEFAULT_MIN_WORDS, DEFAULT_N, MAX_N, DecontamError, NGramIndex, load_eval_sets
from winnow.inputs import list_inputs, path_stamps
from winnow.report import bar_chart, counter_items, section
from winnow.stage import DocumentStage, DocumentStageConfig, StageEnv, StageError, register
from winnow.stats import StageStats
from winnow.storage import InputError, StorageError, StorageOptions, filesystem, join

INDEX_DIR = "_decontam"


class DecontamConfig(DocumentStageConfig):
    """Settings of the decontamination stage (YAML section `decontam`)."""
    enabled: bool = Field(False, description="Remove (or annotate) documents that contain evaluation-set text.")
    eval_sets: list[str] = path_field(
        default_factory=list, stamped=False,  # settings() adds the stamps of the files found
        description="Evaluation sets: JSONL(.gz)/Parquet files, folders or globs (local or s3://); each file "
                    "(or folder) is one benchmark, named after it (or a `benchmark` column).")
    fields: list[str] | None = Field(
        None, description="Fields whose text makes an eval item; null: question/prompt/context/... + "
                          "answer/choices/... found in each file.")
    n: int = Field(DEFAULT_N, ge=4, le=MAX_N, description="Words per n-gram (13: GPT-3, datatrove).")
    min_words: int = Field(DEFAULT_MIN_WORDS, ge=1, description="Items of min_words..n-1 words match as a whole; "
                                                                "shorter ones are ignored.")
    mode: Literal["filter", "annotate"] = Field(
        "filter", description="filter: drop contaminated documents; annotate: keep them, record the benchmarks.")

    @field_validator("eval_sets")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        return [p for p in v if p.strip()]


def eval_stamps(section: DecontamConfig, storage_options: StorageOptions) -> list[list[str]]:
    """(file, stamp) of every eval file: the index and every shard's key follow them."""
    return path_stamps(section.eval_sets, storage_options) if section.eval_sets else []


def index_path(section: DecontamConfig, env: StageEnv, stamps: list[list[str]]) -> str:
    """Where this run's index is saved: named by a digest of the eval files and settings, so a
    changed eval set never reuses an old index."""
    digest = hashlib.sha256(json.dumps([stamps, section.fields, section.n, section.min_words]).encode()).hexdigest()
    return join(env.output, INDEX_DIR, f"index-{digest[:16]}.npz")


@lru_cache(maxsize=4)
def _load(path: str, options: str) -> NGramIndex:
    return NGramIndex.load(path, json.loads(options) or None)


def build_index(section: DecontamConfig, env: StageEnv) -> tuple[NGramIndex, str | None]:
    """Load the run's saved index, or build it (and save it when the run has an output)."""
    try:
        stamps = eval_stamps(section, env.storage_options)
    except (OSError, ValueError) as exc:
        raise StageError(f"decontam.eval_sets: {exc}") from None
    if not stamps:
        raise StageError(f"decontam.eval_sets: no evaluation files found in {section.eval_sets}")
    path = index_path(section, env, stamps) if env.output else None
    options = json.dumps(env.storage_options, sort_keys=True, default=str)
    try:
        if path is not None:
            fs, p = filesystem(path, env.storage_options)
            if fs.exists(p):
                return _load(path, options), path
        index = NGramIndex.build(load_eval_sets(section.eval_sets, env.storage_options, section.fields),
                                 section.n, section.min_words)
        if path is not None:
            index.save(path, env.storage_options)
        return index, path
    except (DecontamError, InputError, StorageError) as exc:
        raise StageError(f"decontam: {exc}") from None


@register
class DecontamStage(DocumentStage[DecontamConfig]):
    """Drops or annotates documents that contain evaluation-set text."""
    name = "decontam"
    config_model = DecontamConfig
    order = 40
    summary = ("Benchmark decontamination: documents sharing a 13-gram with your eval sets are dropped "
               "(or annotated), counted per benchmark.")

    def __init__(self, section: DecontamConfig, env: StageEnv) -> None:
        super().__init__(section, env)
        self.index, _ = build_index(section, env)

    @classmethod
    def check(cls, section: DecontamConfig, env: StageEnv) -> None:
        if not section.eval_sets:
            raise StageError("decontam is enabled but decontam.eval_sets names no file")
        try:
            list_inputs(section.eval_sets, env.storage_options)
        except (InputError, StorageError) as exc:
            raise StageError(f"decontam.eval_sets: {exc}") from None
        # The index itself is built by prepare(), inside the run's output lock and before any
        # shard: a bad eval file still fails before work, and a refused run writes nothing.

    @classmethod
    def prepare(cls, section: DecontamConfig, env: StageEnv) -> None:
        build_index(section, env)

    @classmethod
    def settings(cls, section: DecontamConfig, env: StageEnv | None = None) -> dict[str, Any]:
        # An edited eval file changes what is contaminated: every shard's key covers the files.
        try:
            files = eval_stamps(section, env.storage_options if env else None) if section.enabled else []
        except (OSError, ValueError):
            files = [[p, "unreadable"] for p in section.eval_sets]  # the check says why, before work
        return {**super().settings(section, env), "eval_files": files}

    def apply(self, doc: Document) -> str | None:
        hits = self.index.match(doc.text)
        if not hits:
            return None
        for b in hits:
            self.stats.counters[f"benchmark:{b}"] += 1
        if self.cfg.mode == "annotate":
            doc.annotate(self.name, "benchmarks", hits)
            return None
        return f"decontam:{hits[0]}"

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        if stats is None:
            return None
        rows = counter_items(stats, "benchmark:")
        return section("decontam", "Benchmark contamination",
                       f"<p>{stats.docs_in - stats.docs_out:,} of {stats.docs_in:,} documents removed.</p>"
                       + bar_chart(rows, "documents sharing an n-gram with each benchmark", chart_id="decontam-chart"))
