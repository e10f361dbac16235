"""One shard through the per-document stages: read -> [ingest] -> every enabled document stage
-> Parquet, streamed in one pass (memory bounded by a Parquet row group, not by the shard).

A task runs a batch of shards; each shard has its own output, done-marker and retries, so a
killed or failed task redoes only its unfinished shards.
"""

from __future__ import annotations

import logging
import posixpath
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any

from winnow.config import ConfigError, PipelineConfig
from winnow.document import Document
from winnow.inputs import InputFile, input_format
from winnow.resume import (
    Marker,
    Mismatch,
    ShardRef,
    ShardResult,
    finished_shard,
    redo_note,
    resumable,
    shard_files,
    work_key,
)
from winnow.shards import ShardWriter
from winnow.stage import DocumentStage, SourceStage, StageConfig, StageEnv, get
from winnow.stats import StageStats
from winnow.tasks.pipeline import document_stages, source_stages

log = logging.getLogger("winnow")
DOCUMENTS_DIR = "documents"
REJECTED_DIR = "rejected"


@dataclass(frozen=True)
class ShardJob:
    """One shard of the run: its input files (with the stamps the listing saw) and its output."""
    index: int
    inputs: tuple[InputFile, ...]
    output: str

    @property
    def label(self) -> str:
        """The output's file name, for task names and messages."""
        return posixpath.basename(self.output)


@dataclass(frozen=True)
class ShardPlan:
    """Everything a curate-shard task needs, and nothing else: the sections of the enabled
    source and document stages (already validated), storage options, and the settings digest
    that every shard's done-marker records."""

    sources: tuple[tuple[str, StageConfig], ...]
    stages: tuple[tuple[str, StageConfig], ...]
    storage_options: dict[str, Any]
    output: str
    rows_per_row_group: int
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> ShardPlan:
        """The plan of a run's shards: built once in the flow, passed to every curate task."""
        sources = tuple((s.name, s.config_of(cfg)) for s in source_stages())
        stages = tuple((s.name, s.config_of(cfg)) for s in document_stages() if s.is_enabled(cfg))
        env = StageEnv(dict(cfg.storage_options), cfg.output)
        # A dict per stage (not a list) so that a changed setting is reported by its dotted name.
        settings = {
            "sources": {name: get(name).settings(section, env) for name, section in sources},
            "stages": {name: get(name).settings(section, env) for name, section in stages},
            "order": [name for name, _ in stages],
            "rejected": [name for name, section in stages if getattr(section, "write_rejected", False)],
        }
        return cls(sources, stages, dict(cfg.storage_options), cfg.output, cfg.rows_per_row_group, settings)

    @property
    def writes_rejected(self) -> bool:
        """Whether any enabled stage writes its drops to rejected/."""
        return bool(self.settings["rejected"])

    def key(self, job: ShardJob) -> str:
        """The key a shard's output gets: its inputs' stamps and the plan's settings."""
        return work_key([[f.path, f.stamp] for f in job.inputs], self.settings)


@dataclass
class ShardOutcome:
    """What became of one shard of a task: its result, or why it failed."""
    index: int
    result: ShardResult | None
    error: str | None = None


def rejected_path(output_path: str) -> str:
    """OUTPUT/documents/part-N.parquet -> OUTPUT/rejected/part-N.parquet"""
    parent, name = posixpath.split(output_path)
    return posixpath.join(posixpath.dirname(parent), REJECTED_DIR, name)


def process_shard(job: ShardJob, plan: ShardPlan) -> ShardResult:
    """One shard (one input file, or a group of small ones, in order) into one output shard.
    Skipped when its done-marker was made from the same inputs with the same settings."""
    key = plan.key(job)

    def skip(done: dict[str, Any]) -> ShardResult:
        return ShardResult(ShardRef(job.output, key, int(done["rows"])), done["stats"], skipped=True)

    def run() -> tuple[ShardResult, dict[str, Any]]:
        env = StageEnv(plan.storage_options, plan.output)
        started = time.perf_counter()
        stats: dict[str, StageStats] = {}
        readers: dict[str, SourceStage[Any]] = {}
        for name, section in plan.sources:
            stage_cls = get(name)
            assert issubclass(stage_cls, SourceStage)
            for fmt in stage_cls.formats:
                readers[fmt] = stage_cls(section, env)
        # Stage order in the stats: the source stage first.
        first = readers[input_format(job.inputs[0].path)]
        stats[first.name] = StageStats()

        def source() -> Iterator[Document]:
            for f in job.inputs:
                reader = readers[input_format(f.path)]
                yield from reader.read(f.path, stats.setdefault(reader.name, StageStats()))

        with ExitStack() as stack:
            for reader in {id(r): r for r in readers.values()}.values():
                stack.callback(reader.close)
            on_reject = None
            if plan.writes_rejected:
                rejected = stack.enter_context(ShardWriter(rejected_path(job.output), plan.storage_options,
                                                           rows_per_group=plan.rows_per_row_group))
                on_reject = lambda stage, doc, reason: rejected.write(doc)  # noqa: E731
            writer = stack.enter_context(ShardWriter(job.output, plan.storage_options,
                                                     rows_per_group=plan.rows_per_row_group))
            docs: Iterable[Document] = source()
            for name, section in plan.stages:
                stage_cls = get(name)
                assert issubclass(stage_cls, DocumentStage)
                docs = stage_cls(section, env).run(docs, stats.setdefault(name, StageStats()), on_reject)
            writer.write_all(docs)
        elapsed = time.perf_counter() - started
        # The source's time is the shard's wall time less the document stages' own time.
        stats[first.name].seconds = max(0.0, elapsed - sum(s.seconds for n, s in stats.items() if n != first.name))
        serialised = {name: s.to_dict() for name, s in stats.items()}
        record = {"inputs": [[f.path, f.stamp] for f in job.inputs], "rows": writer.rows, "stats": serialised}
        return ShardResult(ShardRef(job.output, key, writer.rows), serialised), record

    result, mismatch = resumable(Marker(job.output, plan.storage_options), key, run, skip, settings=plan.settings)
    return replace(result, mismatch=mismatch)


def process_batch(jobs: list[ShardJob], plan: ShardPlan, retries: int = 1) -> list[ShardOutcome]:
    """The shards of one task, each retried on its own: a failing shard never costs the others
    their work, and the flow learns which shard failed and why."""
    out: list[ShardOutcome] = []
    for job in jobs:
        for attempt in range(retries + 1):
            try:
                out.append(ShardOutcome(job.index, process_shard(job, plan)))
                break
            except Exception as exc:  # noqa: BLE001 - report the shard, keep the batch going
                if attempt < retries:
                    log.warning("shard %s failed (%s: %s); retrying", job.label, type(exc).__name__, exc)
                    time.sleep(min(5.0, 0.5 * 2 ** attempt))
                    continue
                log.debug("shard %s failed:\n%s", job.label, traceback.format_exc())
                out.append(ShardOutcome(job.index, None, f"{type(exc).__name__}: {exc}"))
    return out


class WouldReplace(ConfigError):
    """A run limited with --stages would rewrite what stages it does not run wrote: refused
    before any work, in one line that says what it would destroy and how to go on."""


def earlier_documents(jobs: list[ShardJob], plan: ShardPlan, only: list[str]) -> list[ShardResult] | None:
    """What a run limited to ``only`` does with the document shards an earlier run left in
    OUTPUT/documents. None: they are this run's to write (there are none, or it runs every
    document stage that made them; its own changed settings redo them as usual). The earlier
    shards as this run's documents, read in place, when it runs no document stage and they were
    read from the same input files. Anything else would replace curated documents with ones
    that lack the earlier stages' work: WouldReplace."""
    if not jobs:
        return None
    folder = posixpath.dirname(jobs[0].output)
    files = shard_files(folder, plan.storage_options)
    if not files:
        return None
    found = {posixpath.basename(path): finished_shard(path, plan.storage_options) for path in files}
    made_by = sorted({name for done in found.values() if done is not None
                      for name in done[1].get("settings", {}).get("order", [])}, key=_pipeline_position)
    running = [name for name, _ in plan.stages]
    unmarked = sorted(name for name, done in found.items() if done is None)
    if unmarked:
        # Nothing says which stages made them (winnow 0.2 markers are not read, or a run
        # was killed between a shard and its marker): they may be curated, so never replaced.
        raise WouldReplace(f"--stages {','.join(only)}: {folder} holds {len(unmarked)} shard(s) without a done-marker "
                           f"({unmarked[0]}{', ...' if len(unmarked) > 1 else ''}; an earlier winnow version's "
                           "or an interrupted run's), which this run would replace: rerun without --stages, or "
                           "write to another --output")
    what = f"{folder} ({len(files)} shard(s) made by {', '.join(made_by) or 'no document stage'})"
    if set(made_by) <= set(running) and (running or not made_by):
        return None
    if running:
        missing = [name for name in made_by if name not in running]
        raise WouldReplace(f"--stages {','.join(only)} would replace {what} with documents that "
                           f"{', '.join(running)} alone made: add {','.join(missing)} to --stages, or write to "
                           "another --output")
    kept: list[ShardResult] = []
    for job in jobs:
        done = found.get(job.label)
        record = done[1] if done is not None else {}
        if done is None or record.get("inputs") != [[f.path, f.stamp] for f in job.inputs] \
                or record.get("settings", {}).get("sources") != plan.settings["sources"]:
            why = "unfinished" if done is None else "other input files or reader settings"
            raise WouldReplace(f"--stages {','.join(only)} runs no document stage, and {what} was not made from "
                               f"these inputs ({job.label}: {why}); rewriting it would lose that work: rerun with "
                               f"the document stages ({', '.join(made_by)}) or write to another --output")
        kept.append(ShardResult(done[0], record.get("stats", {}), skipped=True))
    if len(files) != len(jobs):
        raise WouldReplace(f"--stages {','.join(only)} runs no document stage, and {what} holds other shards "
                           f"than these {len(jobs)} input shard(s): rerun with the document stages "
                           f"({', '.join(made_by)}) or write to another --output")
    return kept


def _pipeline_position(name: str) -> tuple[int, str]:
    try:
        return get(name).order, name
    except KeyError:  # a stage of another winnow version
        return 1 << 30, name


def mismatch_note(mismatches: list[Mismatch]) -> str | None:
    """'3 shard(s) from an earlier run redone: settings changed: lid.keep ["en"] -> ["de"]', or None."""
    return redo_note(mismatches)
