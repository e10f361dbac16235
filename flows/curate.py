"""The curation flow: plan the shards, curate them (every document stage, per shard), then run
the enabled corpus stages in registry order, and summarise. It only wires: what each stage
does lives in its module under ``winnow.tasks``."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import as_completed

from winnow.config import PipelineConfig
from winnow.flows.runtime import Display, PhaseFailed, PrefectMapper, default_display, task_runner_for
from winnow.flows.summary import print_summary, write_summary
from winnow.inputs import Listing, group_inputs, list_inputs
from winnow.lock import OutputLock
from winnow.resume import Mismatch, ShardRef, ShardResult, derived_from, finished_shard, prune_shards
from winnow.shards import shard_name
from winnow.stage import CorpusContext, CorpusStage, Stage, StageEnv, StageError, defines, get, registered
from winnow.stats import StageStats, merge_runs
from winnow.storage import StorageError, check_writable, join, remove_stale_temp_files
from winnow.tasks.pipeline import WinnowConfig, corpus_stages, source_stages
from winnow.tasks.shard import (
    DOCUMENTS_DIR,
    REJECTED_DIR,
    ShardJob,
    ShardOutcome,
    ShardPlan,
    WouldReplace,
    earlier_documents,
    mismatch_note,
    process_batch,
)

log = logging.getLogger("winnow")


class ShardFailures(RuntimeError):
    """Some shards failed; the others are finished and a rerun redoes only the failed ones."""


class NothingRead(RuntimeError):
    """The inputs held no document at all (every file unreadable, empty, or of no HTML)."""


@dataclass
class RunPlan:
    """What a run will do, known before any work starts."""

    cfg: PipelineConfig
    listing: Listing
    jobs: list[ShardJob]
    shard_plan: ShardPlan
    notes: list[str] = field(default_factory=list)
    # Document shards that are read where they are instead of being curated: winnow shards given
    # as input to a run without document stages, or (a run limited with --stages) the curated
    # shards an earlier run left in OUTPUT/documents. None: the jobs are curated.
    reused: list[ShardResult] | None = None
    produced_by: str | None = None  # the corpus stage that wrote reused input shards, if one did

    @property
    def documents(self) -> str:
        """The folder of the document shards the corpus stages start from."""
        if self.reused:
            return posixpath.dirname(self.reused[0].ref.path)  # type: ignore[union-attr]
        return join(self.cfg.output, DOCUMENTS_DIR)


def plan_run(cfg: PipelineConfig) -> RunPlan:
    """Check the output and list the inputs (one line and no traceback when either fails), group
    the files into shards, and decide which existing outputs the run reads instead of rewriting.
    Raises StorageError / InputError / ConfigError (WouldReplace)."""
    so = cfg.storage_options
    check_writable(cfg.output, so)
    listing = list_inputs(cfg.input, so)
    groups = group_inputs(listing.files, cfg.shard_size_mb)
    out_dir = join(cfg.output, DOCUMENTS_DIR)
    jobs = [ShardJob(k, tuple(g), join(out_dir, shard_name(k))) for k, g in enumerate(groups)]
    notes = [n for n in [listing.skipped_summary()] if n]
    plan = RunPlan(cfg, listing, jobs, ShardPlan.from_config(cfg), notes)
    if not plan.shard_plan.stages:
        # Shards winnow wrote, and nothing to do per document: a copy would only cost time and
        # space, and their markers' keys already make them current inputs downstream.
        plan.reused, plan.produced_by = _winnow_shards(listing.files, so)
        if plan.reused is not None:  # one shard per file, as they are (never run: for the counts)
            plan.jobs = [ShardJob(k, (f,), f.path) for k, f in enumerate(listing.files)]
    if plan.reused is None:
        if any(_inside(f.path, out_dir) for f in listing.files):
            raise WouldReplace(f"the input {listing.files[0].path} is in {out_dir}, which this run writes: "
                               "use another --output")
        if cfg.only_stages is not None:
            plan.reused = earlier_documents(jobs, plan.shard_plan, cfg.only_stages)
    if plan.reused is not None:
        refs = [r.ref for r in plan.reused if r.ref is not None]
    else:
        refs = [ShardRef(j.output, plan.shard_plan.key(j), 0) for j in jobs]
    _check_corpus_inputs(cfg, refs, plan.produced_by)
    return plan


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def _winnow_shards(files: list[Any], so: dict[str, Any]) -> tuple[list[ShardResult] | None, str | None]:
    """The input files as finished winnow shards (their markers give key and rows), or None
    when any of them is not one; and the corpus stage that wrote them, if one did."""
    found = []
    for f in files:
        done = finished_shard(f.path, so)
        if done is None:
            return None, None
        found.append(done)
    writers = {name for _, record in found for name in record.get("settings", {})}
    corpus = {s.name for s in corpus_stages()}
    # Their stats are the funnel of the run that wrote them, not of this one.
    return [ShardResult(ref, {}, skipped=True) for ref, _ in found], \
        (writers.pop() if len(writers) == 1 and writers <= corpus else None)


def _check_corpus_inputs(cfg: PipelineConfig, refs: list[ShardRef], produced_by: str | None) -> None:
    """Before any work: an enabled corpus stage never writes the folder it reads, and a run
    limited with --stages finds its corpus stages' inputs current (see _earlier_output)."""
    for stage in corpus_stages():
        assert issubclass(stage, CorpusStage)
        writes = join(cfg.output, stage.output_dir) if stage.output_dir else None
        if stage.is_enabled(cfg) and writes and refs and _inside(refs[0].path, writes):
            raise WouldReplace(f"the input {posixpath.dirname(refs[0].path)} is where {stage.name} writes in this "
                               "run: use another --output")
    if cfg.only_stages is None:
        return
    for stage in _not_yet_run(cfg, produced_by):
        if stage.is_enabled(cfg):
            return  # what it writes is known only once it ran: the stages after it are checked then
        done = _earlier_output(cfg, stage, refs)
        if done is not None:
            refs = [ref for ref, _ in done]


def _not_yet_run(cfg: PipelineConfig, produced_by: str | None) -> list[type[Stage[Any]]]:
    """The corpus stages whose turn comes after the input was written, in order."""
    stages = corpus_stages()
    if produced_by is not None:
        after = get(produced_by).order
        stages = [s for s in stages if s.order > after or (s.is_enabled(cfg) and s.name == produced_by)]
    return stages


def _earlier_output(cfg: PipelineConfig, stage: type[Stage[Any]], refs: list[ShardRef]
                    ) -> list[tuple[ShardRef, dict[str, Any]]] | None:
    """A corpus stage that a run limited with --stages does not run: the shards it wrote earlier
    from exactly ``refs`` (the next stage reads them), None when it wrote none. Out of date and
    needed by a later stage of this run: WouldReplace, rather than going on without its work."""
    assert issubclass(stage, CorpusStage)
    if not stage.output_dir:
        return None
    folder = join(cfg.output, stage.output_dir)
    done, why = derived_from(folder, refs, cfg.storage_options)
    later = [s.name for s in corpus_stages() if s.order > stage.order and s.is_enabled(cfg)]
    if why is not None and later:
        raise WouldReplace(f"--stages {','.join(cfg.only_stages or [])} does not run {stage.name}, and its output "
                           f"{folder} is out of date ({why}): {', '.join(later)} would go on without it. Add "
                           f"{stage.name} to --stages (it redoes that output), or write to another --output")
    return done


def enabled_checks(cfg: PipelineConfig) -> list[tuple[str, Any]]:
    """(stage name, section) of every enabled stage, in pipeline order: what the resource check runs."""
    return [(s.name, s.config_of(cfg)) for s in registered() if s.is_enabled(cfg)]


def check_stages(checks: list[tuple[str, Any]], env: StageEnv) -> None:
    """Every enabled stage's resource check (models, lists, eval sets, tokenizer): StageError."""
    for name, section in checks:
        get(name).check(section, env)


def prepare_stages(checks: list[tuple[str, Any]], env: StageEnv) -> None:
    """What stages build once per run before the shards (e.g. the decontamination index)."""
    for name, section in checks:
        get(name).prepare(section, env)


def _env(cfg: PipelineConfig) -> StageEnv:
    return StageEnv(dict(cfg.storage_options), cfg.output)


@flow(name="winnow-curate", persist_result=False)
def curate(config: WinnowConfig, checked: bool = False) -> dict[str, Any]:
    """Curate `config.input` into `config.output`: every stage the config enables."""
    return run_pipeline(config, checked=checked)


def run_pipeline(cfg: PipelineConfig, plan: RunPlan | None = None, checked: bool = False,
                 display: Display | None = None) -> dict[str, Any]:
    """The body of every winnow flow (CLI runs and deployments alike), inside a flow run."""
    logger = get_run_logger()
    plan = plan or plan_run(cfg)
    display = display or default_display()
    so = cfg.storage_options
    for skipped in plan.notes:
        logger.info(skipped)

    def note(message: str) -> None:
        logger.info(message)
        display.note(message)

    with OutputLock(cfg.output, so, note=f"{len(plan.jobs)} shards") as lock:
        stale = remove_stale_temp_files(cfg.output, so)
        if stale:
            note(f"removed {stale} temp file(s) left by an interrupted earlier run")
        with task_runner_for(cfg.runner) as runner, display.live():
            mapper = PrefectMapper(runner, cfg.runner, display)
            checks = enabled_checks(cfg)
            if not checked:  # first: a missing model fails before any index is built
                _check_in_workers(cfg, mapper, len(plan.jobs))
            if any(defines(get(name), "prepare") for name, _ in checks):
                mapper.run_one(prepare_stages, {"checks": checks, "env": _env(cfg)}, name="prepare")
            outcomes = _curate_shards(plan, mapper, display) if plan.reused is None else []
            summary, stats, problem = _finish(cfg, plan, mapper, outcomes, note)
    if lock.lost and problem is None:
        # Its heartbeat found another run's token: that run judged this one dead and wrote too.
        problem = ShardFailures(f"another winnow run took over the lock of {cfg.output} while this one was "
                                "running (a heartbeat was missed for too long): the two may have written the "
                                "same shards. Rerun the same command once no other run uses the folder.")
    # After the progress display has stopped, so the table is not drawn into the bars.
    if display.show_summary:
        print_summary(summary, stats, display.console)
    if problem is not None:
        raise problem
    return summary


def _check_in_workers(cfg: PipelineConfig, mapper: PrefectMapper, n_shards: int) -> None:
    """A missing or corrupt model fails here, before any shard runs. With worker processes, one
    check per worker at once also starts and warms them all together (imports, models)."""
    checks, env = enabled_checks(cfg), _env(cfg)
    if cfg.runner.kind == "threads":
        check_stages(checks, env)
        return
    n = max(1, min(cfg.runner.workers, n_shards))
    for f in mapper.submit(check_stages, [{"checks": checks, "env": env}] * n, "check-resources", retries=0):
        f.result()


def _curate_shards(plan: RunPlan, mapper: PrefectMapper, display: Display) -> list[ShardOutcome]:
    cfg = plan.cfg
    batches = cfg.runner.batches(len(plan.jobs))
    items: list[dict[str, Any]] = [{"jobs": [plan.jobs[k] for k in b], "plan": plan.shard_plan,
                                    "retries": cfg.runner.retries} for b in batches]
    futures = mapper.submit(process_batch, items, "curate-shard",
                            label=lambda item: ", ".join(j.label for j in item["jobs"][:1])
                            + (f" +{len(item['jobs']) - 1}" if len(item["jobs"]) > 1 else ""), retries=0)
    index = {f.task_run_id: k for k, f in enumerate(futures)}
    outcomes: list[ShardOutcome] = []
    bar = display.phase("curate", len(plan.jobs))
    failed = 0
    for fut in as_completed(futures):
        k = index[fut.task_run_id]
        got: list[ShardOutcome]
        try:
            got = fut.result()
        except Exception as exc:  # noqa: BLE001 - a worker that died takes its batch; report every shard
            got = [ShardOutcome(j.index, None, f"{type(exc).__name__}: {exc}") for j in items[k]["jobs"]]
        outcomes += got
        failed += sum(o.result is None for o in got)
        display.advance(bar, len(got), note=f"{failed} failed" if failed else "")
        display.ui_progress(len(outcomes), len(plan.jobs), f"shards curated (of {len(plan.jobs)})")
    return sorted(outcomes, key=lambda o: o.index)


def _finish(cfg: PipelineConfig, plan: RunPlan, mapper: PrefectMapper, outcomes: list[ShardOutcome],
            note: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, StageStats], Exception | None]:
    """The corpus stages (when every shard is done), then the summary, report and artifacts;
    returns what went wrong instead of raising, so the summary is printed either way."""
    so = cfg.storage_options
    jobs = plan.jobs
    failures = [f"{_describe_inputs(jobs[o.index])}: {o.error}" for o in outcomes if o.result is None]
    finished = [o.result for o in outcomes if o.result is not None] if plan.reused is None else plan.reused
    mismatches: list[Mismatch] = [r.mismatch for r in finished if r.mismatch is not None]
    redo = mismatch_note(mismatches)
    if redo:
        note(redo)
    if plan.reused is None:
        # Shards of an earlier run over more inputs would be read with this run's: remove them.
        keep = [j.output for j in jobs]
        prune_shards(join(cfg.output, DOCUMENTS_DIR), keep, so)
        prune_shards(join(cfg.output, REJECTED_DIR), keep if plan.shard_plan.writes_rejected else [], so)
    else:
        note(f"documents: {len(plan.reused)} finished shard(s) read in place from {plan.documents}")
    stats = merge_runs([r.stats for r in finished])
    refs: list[ShardRef] = [r.ref for r in finished if r.ref is not None]
    summaries: dict[str, Any] = {}
    final_dir = plan.documents
    read = sum(stats[s.name].docs_in for s in source_stages() if s.name in stats) if plan.reused is None \
        else sum(r.rows for r in refs)
    stopped: Exception | None = None
    if not failures and read:
        ctx = CorpusContext(cfg.output, dict(so), mapper, cfg.rows_per_row_group, note)
        for stage in _not_yet_run(cfg, plan.produced_by):
            assert issubclass(stage, CorpusStage)
            if not stage.is_enabled(cfg):
                try:
                    earlier = _earlier_output(cfg, stage, refs) if cfg.only_stages is not None else None
                except WouldReplace as exc:
                    stopped = exc
                    break
                if earlier is not None:
                    # Its funnel is part of what the documents went through.
                    refs = [ref for ref, _ in earlier]
                    stats.update(merge_runs([record.get("stats", {}) for _, record in earlier]))
                    final_dir = join(cfg.output, stage.output_dir or "")
                    note(f"{stage.name}: not run (--stages); its current output {final_dir} is the input")
                continue
            try:
                result = stage.run(stage.config_of(cfg), ctx, refs)
            except (PhaseFailed, StageError, StorageError, OSError) as exc:
                # Finished units keep their markers; the summary below still tells what was done.
                stopped = exc
                break
            stats.update(result.stats)
            if result.incomplete:
                stopped = ShardFailures(result.incomplete)
            if result.summary_key:
                summaries[result.summary_key] = result.summary
            if result.final_output:
                final_dir = result.final_output
            if result.outputs is not None:
                refs = result.outputs
            if stopped is not None:
                break
    summary = {
        "output": plan.documents,
        "final_output": final_dir,
        "shards": len(jobs) if plan.reused is None else len(plan.reused),
        "input_files": len(plan.listing.files),
        "skipped_files": len(plan.listing.skipped),
        "shards_skipped_as_done": sum(1 for r in finished if r.skipped),
        "shards_redone": len(mismatches),
        "shards_failed": len(failures),
        "failures": failures,
        "rows": sum(r.ref.rows for r in finished if r.ref is not None),
        **_listed_summaries(summaries),
        **summaries,
        "stages": {name: s.to_dict() for name, s in stats.items()},
    }
    write_summary(cfg, summary, stats, failures)
    if stopped is not None:
        return summary, stats, stopped
    if failures:
        return summary, stats, ShardFailures(
            f"{len(failures)} of {len(jobs)} shard(s) failed; the rest are written. "
            "Rerun the same command to retry only the failed shards:\n  " + "\n  ".join(failures[:50]))
    if not read:
        errors = {k: v for s in stats.values() for k, v in s.errors.items()}
        detail = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "no records"
        return summary, stats, NothingRead(f"read nothing: 0 documents in {len(plan.listing.files)} input file(s) "
                                           f"({detail}); check the inputs")
    return summary, stats, None


def _listed_summaries(summaries: dict[str, Any]) -> dict[str, Any]:
    """Taken out of ``summaries``: the keys summary.json always has (null for a stage that did not
    run), in pipeline order, ahead of the other stages' summaries."""
    keys = [s.listed_summary for s in corpus_stages() if issubclass(s, CorpusStage)]
    return {key: summaries.pop(key, None) for key in keys if key}


def _describe_inputs(job: ShardJob) -> str:
    paths = [f.path for f in job.inputs]
    return paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more, shard {job.label})"
