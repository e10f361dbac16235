"""winnow command line: `winnow run CONFIG`, `winnow stages`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="winnow",
    help="Turn raw web crawls (WARC) into pretraining-ready Parquet: ingest and extract text, "
         "filter, deduplicate, pack. Runs as Prefect flows, locally or on a Prefect server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)  # error messages carry paths: never wrap them


def _prefect_env() -> None:
    # No telemetry from an offline data tool, and a quiet ephemeral server unless asked otherwise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # prefect's client-side telemetry
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Route winnow's own log lines (first occurrence of each drop/error reason) into Prefect's logs.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "winnow")
    logging.getLogger("winnow").setLevel(logging.INFO)
    if not os.environ.get("PREFECT_API_URL"):
        # The temporary server is stopped at exit while its event recorder may still be flushing
        # the last task-run events of a server that is thrown away: prefect 3.8 logs that as
        # errors with tracebacks. They say nothing about the run, so keep them off the terminal.
        logging.getLogger("prefect.server.services.task_run_recorder").setLevel(logging.CRITICAL)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML config file (see examples/demo.yaml).")],
    input: Annotated[Optional[list[str]], typer.Option(
        "--input", "-i", help="Input file/dir/glob (local or s3://); repeat for several. Replaces the config's.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output directory; replaces the config's.")] = None,
    runner: Annotated[Optional[str], typer.Option(help="threads, processes or dask.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Shards processed at the same time.")] = None,
    dask_address: Annotated[Optional[str], typer.Option(
        help="Scheduler of an existing Dask cluster (tcp://HOST:8786); implies --runner dask.")] = None,
    stages: Annotated[Optional[str], typer.Option(
        help="Run only these stages, comma-separated: ingest,lid,quality,dedup,rephrase,pack "
             "(e.g. --stages dedup on Parquet input).")] = None,
) -> None:
    """Run the curation flow described by CONFIG.

    Each input file is one shard. Finished shards are skipped on a rerun (done-markers), so
    the same command resumes a crashed or failed run. Output: OUTPUT/documents/part-NNNNN.parquet,
    OUTPUT/summary.json and OUTPUT/summary.md (the funnel: documents and bytes per stage and
    drop reason).
    """
    from winnow.config import ConfigError, load_config
    from winnow.shardio import InputError, list_inputs

    if dask_address:
        runner = "dask"
    overrides = {"input": input, "output": output, "runner.kind": runner, "runner.workers": workers,
                 "runner.dask_address": dask_address}
    try:
        cfg = load_config(config, overrides)
        if stages:
            cfg = cfg.only_stages([s.strip() for s in stages.split(",") if s.strip()])
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    try:
        # Checked here too (the flow lists inputs itself) so a typo fails in a second, before
        # a Prefect server is started, and without a traceback.
        n_inputs = len(list_inputs(cfg.input, cfg.storage_options))
    except InputError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if cfg.runner.kind == "threads":
        # Fail in a second, before a server starts. With worker processes the flow checks in a
        # worker instead, so that this process never loads the models.
        from tasks.shard import check_resources

        try:
            check_resources(cfg)
        except ValueError as exc:  # ModelError, TokenizerError, bad rule parameters
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
    err.print(f"winnow: {n_inputs} input file(s) -> {cfg.output}", highlight=False)
    _prefect_env()
    from flows.curate import ShardFailures, run_curate

    try:
        summary = run_curate(cfg)
    except ShardFailures as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except ValueError as exc:  # a model or parameter the workers' check refused
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except OSError as exc:  # full disk, unreachable storage: finished shards stay, a rerun resumes
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}\nFinished shards are kept; rerun the same "
                  "command to resume.", highlight=False)
        raise typer.Exit(1) from None
    err.print(f"\n[green]done.[/green] {summary['rows']:,} documents in [bold]{summary['output']}[/bold]")
    if summary.get("dedup"):
        d = summary["dedup"]
        err.print(f"deduplicated: {d['removed']:,} near-duplicates removed ({d['clusters']:,} clusters) -> "
                  f"[bold]{os.path.join(cfg.output, 'deduped')}[/bold]")
    if summary.get("packed"):
        err.print(f"training sequences: [bold]{summary['packed']['output']}[/bold] "
                  f"({len(summary['packed']['shards'])} shard(s), manifest.json, README.md)")
    err.print(f"run summary: {os.path.join(cfg.output, 'summary.md')}, report: "
              f"{os.path.join(cfg.output, 'report.html')}")


@app.command()
def deploy(
    prefect_file: Annotated[Optional[Path], typer.Option(
        help="Deployment definitions (default: deploy/prefect.yaml of this checkout).")] = None,
    name: Annotated[Optional[list[str]], typer.Option(
        "--name", "-n", help="Only these deployments (e.g. curate); repeatable. Default: all.")] = None,
    pool: Annotated[str, typer.Option(help="Process work pool the deployments use; created when missing. "
                                           "Must match work_pool.name in the prefect file.")] = "winnow",
) -> None:
    """Register winnow's Prefect deployments (full curation, single stages, a cron example).

    Needs PREFECT_API_URL pointing at a running Prefect server. Runs happen where a worker of the
    pool runs: start one with `prefect worker start --pool winnow` on a machine with this
    checkout; runs use this checkout's directory as their working directory.
    """
    import shutil
    import subprocess

    _prefect_env()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        err.print("[red]error:[/red] PREFECT_API_URL is not set. Deployments live on a Prefect server: start one "
                  "(`prefect server start`, or deploy/docker-compose.yml) and "
                  "`export PREFECT_API_URL=http://127.0.0.1:4200/api`.", highlight=False)
        raise typer.Exit(2)
    root = Path(__file__).resolve().parents[1]
    prefect_file = (prefect_file or root / "deploy" / "prefect.yaml").resolve()
    if not prefect_file.is_file():
        err.print(f"[red]error:[/red] prefect file not found: {prefect_file}", highlight=False)
        raise typer.Exit(2)
    try:
        _ensure_work_pool(pool)
    except Exception as exc:  # noqa: BLE001 - unreachable server, auth: say so, no traceback
        err.print(f"[red]error:[/red] cannot reach the Prefect server at {PREFECT_API_URL.value()}: {exc}",
                  highlight=False)
        raise typer.Exit(1) from None
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or shutil.which("prefect") or "prefect"
    cmd = [prefect, "--no-prompt", "deploy", "--prefect-file", str(prefect_file)]
    cmd += [a for n in name for a in ("--name", n)] if name else ["--all"]
    # Entrypoints and the runs' working directory are relative to the repository root.
    code = subprocess.run(cmd, cwd=root).returncode
    if code:
        raise typer.Exit(code)
    err.print(f"[green]deployed.[/green] Start a worker: [bold]prefect worker start --pool {pool}[/bold]; "
              "trigger a run: [bold]prefect deployment run winnow-run/curate[/bold]", highlight=False)


def _ensure_work_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            from prefect.workers.process import ProcessWorker

            client.create_work_pool(WorkPoolCreate(
                name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
            err.print(f"created process work pool {pool!r}", highlight=False)


@app.command()
def report(
    output: Annotated[str, typer.Argument(help="Output folder of a winnow run (local or s3://).")],
    open_browser: Annotated[bool, typer.Option("--open", help="Open the report in a browser.")] = False,
) -> None:
    """Write OUTPUT/report.html: a self-contained page (inline SVG plots, no network) with the
    funnel per stage and rule, languages, document lengths before/after filtering, duplicate
    cluster sizes, packing efficiency and rephrasing outcomes. `winnow run` writes it too."""
    from winnow.report import ReportError, write_report

    try:
        path = write_report(output)
    except ReportError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"report written to [bold]{path}[/bold]", highlight=False)
    if open_browser and "://" not in path:
        import webbrowser

        webbrowser.open(Path(path).resolve().as_uri())


@app.command("train-quality")
def train_quality(
    positive: Annotated[list[str], typer.Option("--positive", "-p", help="High-quality examples: JSONL(.gz) or Parquet files/dirs/globs with a 'text' field. Repeatable.")],
    negative: Annotated[list[str], typer.Option("--negative", "-n", help="Low-quality examples, same formats. Repeatable.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the fastText model (.bin).")],
    valid_fraction: Annotated[float, typer.Option(min=0.01, max=0.5, help="Share held out for validation.")] = 0.1,
    epoch: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 25,
    lr: Annotated[float, typer.Option(min=0.001, help="Learning rate.")] = 1.0,
    dim: Annotated[int, typer.Option(min=2, help="Embedding size.")] = 64,
    word_ngrams: Annotated[int, typer.Option(min=1, max=5, help="Word n-gram features.")] = 2,
    seed: Annotated[int, typer.Option(help="Shuffle/split seed.")] = 0,
) -> None:
    """Train a fastText quality classifier (DCLM style) on your own positive/negative examples.

    Prints precision/recall/F1 of the positive class on a validation split the model never
    trained on. Use the model with `quality.classifier: {enabled: true, model_path: OUT}`.
    """
    from filters.quality_classifier import train
    from winnow.shardio import InputError, list_inputs, read_documents
    from winnow.stats import StageStats

    def texts(patterns: list[str]) -> list[str]:
        stats = StageStats()
        found = [d.text for path in list_inputs(patterns) for d in read_documents(path, stats)]
        for reason, n in stats.errors.items():
            err.print(f"[yellow]skipped {n} bad record(s): {reason}[/yellow]")
        return found

    try:
        pos, neg = texts(positive), texts(negative)
        err.print(f"training on {len(pos):,} positive and {len(neg):,} negative examples ...")
        report = train(pos, neg, out, valid_fraction=valid_fraction, epoch=epoch, lr=lr, dim=dim,
                       word_ngrams=word_ngrams, seed=seed)
    except (InputError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"validation ({report.valid_examples:,} held-out examples, threshold 0.5): "
              f"precision {report.precision:.3f}  recall {report.recall:.3f}  F1 {report.f1:.3f}  "
              f"accuracy {report.accuracy:.3f}")
    err.print(f"model written to {report.model_path}")


@app.command()
def stages() -> None:
    """List the pipeline stages and their configuration fields (with defaults)."""
    from winnow.config import IngestConfig, RunnerConfig, WinnowConfig

    def show(title: str, model, prefix: str) -> None:
        err.print(f"\n[bold]{title}[/bold]")
        for name, field in model.model_fields.items():
            if isinstance(field.default, type(None)) and field.default_factory is None and field.is_required():
                default = "(required)"
            elif field.default_factory is not None:
                default = repr(field.default_factory())
            else:
                default = repr(field.default)
            if hasattr(field.annotation, "model_fields"):
                continue
            err.print(f"  [cyan]{prefix}{name}[/cyan] = {default}\n      {field.description or ''}", highlight=False)

    err.print("Stages run per shard, in this order:\n"
              "  [bold]ingest[/bold]   WARC response records -> main text (HTML only, HTTP 200, URL filter).\n"
              "           JSONL/Parquet inputs skip it and are read as documents ([bold]read[/bold]).\n"
              "  [bold]lid[/bold]      fastText language ID: annotate lid.lang/lid.score, keep-list, thresholds.\n"
              "  [bold]quality[/bold]  Gopher repetition + Gopher quality + C4 + FineWeb rules (datatrove's),\n"
              "           then an optional fastText quality classifier (`winnow train-quality`).\n"
              "Then, over all shards:\n"
              "  [bold]dedup[/bold]    MinHash near-dedup: signatures -> band buckets -> components -> filter.\n"
              "  [bold]pack[/bold]     tokenize + best-fit packing into fixed-length training sequences.")
    show("top level", WinnowConfig, "")
    show("runner", RunnerConfig, "runner.")
    show("ingest", IngestConfig, "ingest.")
    from winnow.config import ClassifierConfig, DedupConfig, LidConfig, PackConfig, QualityConfig, UrlFilterConfig

    show("ingest.url_filter", UrlFilterConfig, "ingest.url_filter.")
    show("lid", LidConfig, "lid.")
    show("quality", QualityConfig, "quality.")
    show("quality.classifier", ClassifierConfig, "quality.classifier.")
    show("dedup", DedupConfig, "dedup.")
    show("pack", PackConfig, "pack.")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
