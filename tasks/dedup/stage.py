"""The dedup stage: the phases mapped over the run's shards (or, for a small corpus, phases
1-3 in one task), and the work folder started over whenever the dedup input changes."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from winnow.document import Document
from winnow.inputs import path_stamps
from winnow.report import bar_chart, section
from winnow.resume import Marker, Mismatch, ShardRef, marker_path, redo_note, resumable, work_key
from winnow.shards import shard_name
from winnow.stage import CorpusContext, CorpusResult, CorpusStage, StageEnv, Work, register
from winnow.stats import StageStats, plural
from winnow.storage import StorageOptions, filesystem, join
from winnow.tasks.dedup.bands import BandWork, band_components, band_unit
from winnow.tasks.dedup.components import components_in_memory, connected_components
from winnow.tasks.dedup.config import DedupConfig, band_tasks, cc_parts, check_index, n_ranges
from winnow.tasks.dedup.filter import FilterWork, filter_shard
from winnow.tasks.dedup.layout import (
    DEDUPED_DIR,
    STAGE,
    WORK_DIR,
    clusters_dir,
    component_path,
    inputs_output,
)
from winnow.tasks.dedup.signatures import SignaturesWork, signature_groups, signatures_group, signatures_unit


def dedup_in_process(shards: list[list[Document]], work: str, cfg: DedupConfig,
                     so: StorageOptions = None) -> tuple[list[list[Document]], dict[str, Any], StageStats]:
    """Every phase in this process, for small inputs, tests and benchmarks (the flow runs the
    same functions as mapped Prefect tasks): one signature group per shard."""
    check_index(cfg, so)
    ranges = n_ranges(cfg, sum(len(s) for s in shards))
    for k, docs in enumerate(shards):
        signatures_group([(k, docs)], k, work, cfg, ranges, so)
    units = band_tasks(cfg, ranges)
    edges = sum(band_components(b, p, len(shards), ranges, work, cfg, so)["grouped"] for b, p in units)
    summary = connected_components([component_path(work, b, p) for b, p in units], work,
                                   cc_parts(cfg, edges), len(shards), storage_options=so,
                                   clusters_dir=clusters_dir(work))
    stats = StageStats()
    kept = [list(filter_shard(docs, k, work, cfg, stats, so)) for k, docs in enumerate(shards)]
    return kept, summary, stats


def all_in_one_unit(shards: list[ShardRef], work: str, cfg: DedupConfig, key: str,
                    storage_options: StorageOptions = None) -> dict[str, Any]:
    """Phases 1-3 in one task, for small corpora: the same functions, files and markers."""
    ranges = n_ranges(cfg, sum(r.rows for r in shards))
    groups = signature_groups(shards, cfg)
    results = signatures_unit(groups, work, cfg, ranges, key, storage_options)
    units = band_tasks(cfg, ranges)
    for b, p in units:
        band_unit(b, p, len(groups), ranges, work, cfg, key, storage_options, [r["sizes"][b] for r in results])
    # One task holds the whole (small) graph anyway: scipy in memory, the reference the
    # distributed rounds are tested equal to.
    return components_in_memory([component_path(work, b, p) for b, p in units], len(shards),
                                clusters_dir(work), storage_options)


@dataclass(frozen=True)
class AllInOneWork:
    """The one task of a small corpus: :func:`all_in_one_unit`."""

    shards: list[ShardRef]
    work: str
    cfg: DedupConfig
    key: str
    storage_options: StorageOptions = None

    def __call__(self) -> dict[str, Any]:
        return all_in_one_unit(self.shards, self.work, self.cfg, self.key, self.storage_options)

    def label(self) -> str:
        return f"{len(self.shards)} shard(s)"


def _reset_work(work: str, key: str, settings: dict[str, Any], storage_options: StorageOptions) -> Mismatch | None:
    """Start the dedup work over when its input or parameters changed (the key is the digest
    of every input shard's key and the dedup settings); why, when an earlier run's is redone."""
    def start_over() -> tuple[bool, dict[str, Any]]:
        fs, path = filesystem(work, storage_options)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return True, {}

    return resumable(Marker(inputs_output(work), storage_options), key, start_over, lambda _: False,
                     settings={STAGE: settings}, require_output=False)[1]


@register
class DedupStage(CorpusStage[DedupConfig]):
    """MinHash near-dedup over every shard of the run."""

    name = STAGE
    config_model = DedupConfig
    order = 100
    output_dir = DEDUPED_DIR
    listed_summary = "dedup"
    summary = "MinHash near-dedup across all shards: signatures -> band buckets -> connected components -> filter."

    @classmethod
    def check(cls, section: DedupConfig, env: StageEnv) -> None:
        check_index(section, env.storage_options)

    @classmethod
    def settings(cls, section: DedupConfig, env: StageEnv | None = None) -> dict[str, Any]:
        out = super().settings(section, env)
        if section.index:
            # An index rebuilt at the same path changes its own work marker: this run is redone.
            so = env.storage_options if env is not None else None
            try:
                out["index_markers"] = path_stamps([marker_path(inputs_output(p)) for p in section.index], so)
            except (OSError, ValueError):
                out["index_markers"] = "unreadable"  # check_index says why, before work
        return out

    @classmethod
    def run(cls, section: DedupConfig, ctx: CorpusContext, inputs: list[ShardRef]) -> CorpusResult:
        so = ctx.storage_options
        work = join(ctx.output, WORK_DIR)
        n = len(inputs)
        settings = cls.settings(section, ctx.env)
        key = work_key([r.key for r in inputs], settings)
        redone = _reset_work(work, key, settings, so)
        if redone is not None:
            ctx.log(redo_note([redone], "output(s)", STAGE) or "")
        deduped = [join(ctx.output, DEDUPED_DIR, shard_name(k)) for k in range(n)]
        n_docs = sum(r.rows for r in inputs)
        if n_docs < section.single_task_below:
            summary = ctx.mapper.run(AllInOneWork(inputs, work, section, key, so), name="dedup-clusters-all")
        else:
            ranges = n_ranges(section, n_docs)
            groups = signature_groups(inputs, section)
            batches = ctx.mapper.batches(len(groups), tasks_per_worker=4)
            results = [r for part in ctx.mapper.map(
                [SignaturesWork([groups[g] for g in b], work, section, ranges, key, so) for b in batches],
                name="dedup-signatures") for r in part]
            units = band_tasks(section, ranges)
            bands = ctx.mapper.map([BandWork(b, p, len(groups), ranges, work, section, key, so,
                                             [r["sizes"][b] for r in results]) for b, p in units],
                                   name="dedup-band")
            edges = sum(r["grouped"] for r in bands)

            def run_round(phase: str, items: Sequence[Work[Any]]) -> list[Any]:
                return ctx.mapper.map(items, name=f"dedup-{phase.removesuffix('_task').replace('_', '-')}")

            summary = connected_components([component_path(work, b, p) for b, p in units], work,
                                           cc_parts(section, edges), n, run_round, storage_options=so,
                                           clusters_dir=clusters_dir(work))
        batches = ctx.mapper.batches(n, tasks_per_worker=4)
        results_f = [r for part in ctx.mapper.map(
            [FilterWork([inputs[k] for k in b], b, work, [deduped[k] for k in b], section, key, so,
                        ctx.rows_per_row_group) for b in batches],
            name="dedup-filter") for r in part]
        stats = StageStats()
        for r in results_f:
            stats.merge(StageStats.from_dict(r.stats[STAGE]))
        summary = {k: v for k, v in summary.items() if k in ("clusters", "documents_in_clusters", "removed",
                                                             "cluster_size_histogram", "rounds")}
        ctx.log(f"dedup: {summary['clusters']:,} clusters, {summary['removed']:,} near-duplicates removed")
        refs = [r.ref for r in results_f if r.ref is not None]
        return CorpusResult(refs, {STAGE: stats}, summary, summary_key="dedup",
                            final_output=join(ctx.output, DEDUPED_DIR))

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        info = summary.get("dedup") or {}
        if stats is None and not info:
            return None
        sizes = sorted((int(k), v) for k, v in (info.get("cluster_size_histogram") or {}).items())
        return section("dedup", "Near-duplicate clusters",
                       f'<p>{info.get("clusters", 0):,} clusters holding {info.get("documents_in_clusters", 0):,} '
                       f'documents; {info.get("removed", 0):,} removed.</p>'
                       + bar_chart([(f"size {k}", v) for k, v in sizes], "clusters per cluster size",
                                   chart_id="dedup-chart"))

    @classmethod
    def done_line(cls, summary: Mapping[str, Any], output: str) -> Sequence[str | tuple[str, str]] | None:
        info = summary.get("dedup")
        if not info:
            return None
        return (f"deduplicated: {plural(info['removed'], 'near-duplicate')} removed "
                f"({plural(info['clusters'], 'cluster')}) -> ", (posixpath.join(output, DEDUPED_DIR), "bold"))

    @classmethod
    def deployed_alone(cls, output: str) -> tuple[str, str] | None:
        # The curated shards (winnow.tasks.shard.DOCUMENTS_DIR, which imports the registry: not
        # importable from a stage module).
        return f"{output}/documents", f"{output}-dedup"
