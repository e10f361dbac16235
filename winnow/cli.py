"""winnow command line: `winnow run CONFIG`, `winnow demo`, `winnow stages`, `winnow report`,
`winnow deploy`, `winnow train-quality`. The top layer: it imports the flows, never the reverse.

Exit codes: 0 done; 1 the run failed part-way (finished shards are kept: rerun to resume) or
read nothing; 2 refused before any work (bad config, missing file, unwritable output,
unreachable storage, output in use by another run); 130 interrupted (Ctrl-C: rerun to resume).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)  # error messages carry paths: never wrap them
out = Console(soft_wrap=True)


def _version() -> str:
    try:
        return version("winnow")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
        return "unknown"


class _Options:
    quiet = False
    verbose = False


app = typer.Typer(
    name="winnow",
    help="Turn raw web crawls (WARC) into pretraining-ready Parquet: ingest and extract text, filter, "
         "deduplicate, rephrase, pack. Runs as Prefect flows, locally or on a Prefect server. Small input "
         "files are grouped into shards of about `shard_size_mb` (one task, output file and done-marker "
         "each); a rerun skips shards done with the same inputs and settings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        out.print(f"winnow {_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the final line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also Prefect's per-task log lines "
                                                                  "(off by default on a terminal).")] = False,
    version_: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                           help="Print the version and exit.")] = False,
) -> None:
    """Options every command shares (--quiet, --verbose, --version)."""
    _Options.quiet, _Options.verbose = quiet, verbose


def fail(message: str, code: int = 2) -> NoReturn:
    """One red line and an exit code: a user sees what to fix, never a traceback."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _console_level() -> str:
    if _Options.quiet:
        return "ERROR"
    return "INFO" if _Options.verbose or not err.is_terminal else "WARNING"


def _prefect_env() -> None:
    """Environment for Prefect, set before it is imported: no telemetry from an offline data tool;
    on a terminal, Prefect's per-task INFO lines only with --verbose (winnow prints its own
    progress); winnow's own log lines go through Prefect's handlers (terminal and UI)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "winnow")
    level = _console_level()
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", level)
    logging.getLogger("winnow").setLevel(logging.DEBUG if _Options.verbose else logging.INFO)
    # The temporary server is stopped while its event recorder may still flush the last events of a
    # server that is thrown away: prefect 3.8 logs that as errors with tracebacks that say nothing.
    logging.getLogger("prefect.server.services.task_run_recorder").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C: one line, status 130, within a second or two. Every write is atomic (temp file +
    rename) and every finished shard has its marker, so stopping at once loses nothing: the
    rerun removes the temp files and redoes only unfinished work. Waiting for worker threads,
    process pools or a dying server is what made Ctrl-C hang for minutes."""

    def on_sigint(signum: int, frame: Any) -> None:
        err.print("\n[yellow]interrupted; rerun to resume[/yellow]", highlight=False)
        _kill_children()  # first: no worker process writes after the lock is released
        with contextlib.suppress(Exception):
            from winnow.lock import release_all  # noqa: PLC0415 - only on the way out

            release_all()
        with contextlib.suppress(Exception):
            from winnow.flows.runtime import stop_temporary_server  # noqa: PLC0415 - only on the way out

            stop_temporary_server()
        sys.stderr.flush()
        os._exit(130)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _kill_children() -> None:
    """SIGKILL every process descended from this one (pool and Dask workers, which ignore
    SIGINT): they would otherwise go on writing or print tracebacks after winnow exited."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    descendants: set[int] = set()
    frontier = {me}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - descendants
        descendants |= frontier
    for pid in descendants:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _storage_options(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"--storage-options is not JSON: {exc}")
    if not isinstance(loaded, dict):
        fail("--storage-options must be a JSON object, e.g. '{\"client_kwargs\": {\"endpoint_url\": ...}}'")
    return loaded


def _execute(cfg: Any) -> None:
    """Plan (output, inputs), check every stage's resources, then run the flow. Everything that
    can be refused is refused here, in a second, before a Prefect server starts."""
    from winnow.config import ConfigError  # noqa: PLC0415 - the CLI imports lazily so --help is instant
    from winnow.lock import LockHeld, OutputLock  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.shardio import InputError, StorageError  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.stage import StageError  # noqa: PLC0415 - imported on use: --help and --version stay instant

    _prefect_env()
    from winnow.flows.curate import (  # noqa: PLC0415 - imports prefect: after its environment is set
        NothingRead,
        ShardFailures,
        check_stages,
        curate,
        enabled_checks,
        plan_run,
    )
    from winnow.flows.runtime import PhaseFailed, configure_display, ensure_api  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.stage import StageEnv  # noqa: PLC0415 - imported on use: --help and --version stay instant

    try:
        plan = plan_run(cfg)
        OutputLock(cfg.output, cfg.storage_options).check_free()
        if cfg.runner.kind == "threads":
            # With worker processes the flow checks in the workers instead, so that this process
            # never loads the models.
            check_stages(enabled_checks(cfg), StageEnv(dict(cfg.storage_options), cfg.output))
    except (ConfigError, InputError, StorageError, StageError, LockHeld) as exc:
        fail(str(exc))
    for note in plan.notes:
        err.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    if not _Options.quiet:
        err.print(f"winnow {_version()}: {len(plan.listing.files)} input file(s) in {len(plan.jobs)} shard(s) "
                  f"-> {cfg.output}", highlight=False)
    configure_display(err, enabled=not _Options.quiet, show_summary=not _Options.quiet,
                      echo_notes=_console_level() == "WARNING")
    with _interruptible():
        try:
            ensure_api(cfg.runner)
            summary = curate(cfg, checked=cfg.runner.kind == "threads")
        except (ShardFailures, PhaseFailed, NothingRead) as exc:
            fail(str(exc), code=1)
        except (ConfigError, StageError, LockHeld, StorageError, InputError) as exc:
            fail(str(exc))
        except OSError as exc:  # full disk, unreachable storage: finished shards stay, a rerun resumes
            fail(f"{type(exc).__name__}: {exc}\nFinished shards are kept; rerun the same command to resume.", code=1)
    # The temporary server stops at exit, after Prefect has flushed its logs and events to it
    # (atexit runs last-registered first; stopping it here made every flush retry for a minute).
    _done(summary, cfg)


def _done(summary: dict[str, Any], cfg: Any) -> None:
    err.print(f"\n[green]done.[/green] {summary['rows']:,} documents in [bold]{summary['output']}[/bold]")
    if _Options.quiet:
        return
    if summary.get("dedup"):
        d = summary["dedup"]
        err.print(f"deduplicated: {d['removed']:,} near-duplicates removed ({d['clusters']:,} clusters) -> "
                  f"[bold]{os.path.join(cfg.output, 'deduped')}[/bold]")
    if summary.get("packed"):
        p = summary["packed"]
        err.print(f"training sequences: [bold]{p['output']}[/bold] ({len(p['shards'])} file(s), _manifest.json)")
    err.print(f"run summary: {os.path.join(cfg.output, 'summary.md')}, report: "
              f"{os.path.join(cfg.output, 'report.html')}", highlight=False)


def _load(config: str | None, overrides: dict[str, Any], stages: str | None,
          storage_options: dict[str, Any] | None = None) -> Any:
    from winnow.config import ConfigError  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.tasks.pipeline import load_config  # noqa: PLC0415 - imported on use: --help and --version stay instant

    try:
        return load_config(config, overrides, stages=[s.strip() for s in stages.split(",") if s.strip()]
                           if stages else None, storage_options=storage_options)
    except ConfigError as exc:
        fail(str(exc))


@app.command()
def run(
    config: Annotated[str, typer.Argument(help="YAML config file, local or s3:// (see examples/demo.yaml).")],
    input: Annotated[list[str] | None, typer.Option(
        "--input", "-i", help="Input file/dir/glob (local or s3://); repeat for several. Replaces the "
                              "config's.")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o",
                                               help="Output directory; replaces the config's.")] = None,
    runner: Annotated[str | None, typer.Option(help="threads, processes or dask.")] = None,
    workers: Annotated[int | None, typer.Option(help="Tasks run at the same time.")] = None,
    dask_address: Annotated[str | None, typer.Option(
        help="Scheduler of an existing Dask cluster (tcp://HOST:8786); implies --runner dask.")] = None,
    stages: Annotated[str | None, typer.Option(
        help="Run only these stages, comma-separated (`winnow stages` lists them; e.g. --stages dedup on "
             "Parquet input).")] = None,
    storage_options: Annotated[str | None, typer.Option(
        help="JSON fsspec options for the paths of the run, merged into the config's storage_options "
             "(keys given here win, nested dicts merged), and for reading an s3:// config.")] = None,
) -> None:
    """Run the curation flow described by CONFIG.

    Small input files are grouped into shards of about `shard_size_mb` (default 1 MB); each shard is
    one output file, OUTPUT/documents/part-NNNNN.parquet, with a done-marker. A rerun skips shards
    finished with the same inputs and settings and redoes the rest, so the same command resumes a
    crashed, failed or interrupted run. Also written: OUTPUT/summary.json and summary.md (the
    funnel: documents and bytes per stage and drop reason) and OUTPUT/report.html.
    """
    so = _storage_options(storage_options) if storage_options else None
    if dask_address:
        runner = "dask"
    overrides = {"input": input, "output": output, "runner.kind": runner, "runner.workers": workers,
                 "runner.dask_address": dask_address, "storage_options": so}
    _execute(_load(config, overrides, stages, so))


@app.command()
def demo(
    output: Annotated[str, typer.Option("--output", "-o", help="Output directory.")] = "demo-output",
    workers: Annotated[int | None, typer.Option(help="Tasks run at the same time.")] = None,
) -> None:
    """Curate the sample WARCs shipped with winnow (real crawl data: Common Crawl, ClueWeb, gov.uk,
    ...) with the demo config: ingest, LID (English), quality rules, PII masking, MinHash dedup,
    packing. The same run as `make demo` in a checkout."""
    demo_dir = files("winnow.examples")
    config = Path(str(demo_dir.joinpath("demo.yaml")))
    if not config.is_file():
        fail(f"the bundled demo config is missing ({config}); reinstall winnow")
    _execute(_load(str(config), {"output": output, "runner.workers": workers}, None))


@app.command()
def stages() -> None:
    """List the pipeline stages in order and every configuration field, with its default."""
    from pydantic import BaseModel  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from pydantic_core import PydanticUndefined  # noqa: PLC0415 - imported on use: --help and --version stay instant

    from winnow.config import PipelineConfig, RunnerConfig  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.tasks.pipeline import discover  # noqa: PLC0415 - imported on use: --help and --version stay instant

    def default_of(field: Any) -> str:
        if field.default_factory is not None:
            value = field.default_factory()
            return "{...}" if isinstance(value, BaseModel) else repr(value)
        if field.default is PydanticUndefined:
            return "(required)"
        return repr(field.default)

    def show(title: str, model: type[BaseModel], prefix: str) -> None:
        out.print(f"\n[bold]{title}[/bold]", highlight=False)
        nested = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((name, annotation))
                continue
            out.print(f"  [cyan]{prefix}{name}[/cyan] = {default_of(field)}\n      {field.description or ''}",
                      highlight=False)
        for name, sub in nested:
            if sub is not RunnerConfig:
                show(f"{prefix}{name}", sub, f"{prefix}{name}.")

    registry = discover()
    labels = {"source": "per input file", "document": "per document, streamed per shard",
              "corpus": "over all shards"}
    out.print("Stages, in pipeline order:", highlight=False)
    for s in registry:
        out.print(f"  [bold]{s.name:<10}[/bold] ({labels[s.kind]}) {s.summary}", highlight=False)
    out.print("\nSmall input files are grouped into shards of about shard_size_mb (one task, output file and "
              "done-marker each); runner.max_tasks bounds the task runs per phase.", highlight=False)
    show("top level", PipelineConfig, "")
    show("runner", RunnerConfig, "runner.")
    for s in registry:
        if s.config_model is not None:
            show(s.name, s.config_model, f"{s.name}.")


@app.command()
def report(
    output: Annotated[str, typer.Argument(help="Output folder of a winnow run (local or s3://).")],
    storage_options: Annotated[str | None, typer.Option(
        help="JSON fsspec options for an s3:// folder, e.g. '{\"client_kwargs\": {\"endpoint_url\": ...}}'.")] = None,
    config: Annotated[str | None, typer.Option(
        help="Take the storage options from this run config instead.")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the report in a browser.")] = False,
) -> None:
    """Write OUTPUT/report.html: a self-contained page (inline SVG plots, no network) with the funnel
    per stage and rule, document lengths before/after filtering, and each stage's own section
    (languages, duplicate clusters, packing, rephrasing). `winnow run` writes it too."""
    from winnow.flows.summary import report_sections  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.report import ReportError, write_report  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.shardio import StorageError, describe_storage_error  # noqa: PLC0415 - imported on use: --help and --version stay instant

    so = _storage_options(storage_options)
    if config and not so:
        so = dict(_load(config, {}, None).storage_options)
    try:
        path = write_report(output, so, report_sections())
    except ReportError as exc:
        fail(str(exc))
    except Exception as exc:
        message = describe_storage_error(exc, output)
        if message is None and not isinstance(exc, (OSError, StorageError)):
            raise
        fail(message or f"{output}: {exc}")
    err.print(f"report written to [bold]{path}[/bold]", highlight=False)
    if open_browser and "://" not in path:
        import webbrowser  # noqa: PLC0415 - imported on use: --help and --version stay instant

        webbrowser.open(Path(path).resolve().as_uri())


def _prefect_file_for(prefect_file: Path | None, config: str | None, cron: str | None, names: list[str] | None,
                      pool: str) -> Path:
    """The deployment definitions to register: the bundled ones (or the user's), with the config
    path made absolute and an optional cron schedule switched on, written to a temp file."""
    source = prefect_file or Path(str(files("winnow.deploy").joinpath("prefect.yaml")))
    if not source.is_file():
        fail(f"prefect file not found: {source}" + ("" if prefect_file else " (bundled; reinstall winnow)"))
    data = yaml.safe_load(source.read_text())
    deployments = data.get("deployments") or []
    if names:
        missing = sorted(set(names) - {d.get("name") for d in deployments})
        if missing:
            fail(f"no deployment named {missing} in {source}; there are: {[d.get('name') for d in deployments]}")
    # Relative paths in a user's file are relative to that file; the bundled ones to where you deploy.
    base = source.parent.resolve() if prefect_file else Path.cwd()

    def absolute(v: str) -> str:
        return v if "://" in v or os.path.isabs(v) else str(base / v)

    # With your config, the bundled single-stage deployments read and write beside its output
    # (their demo-output/... defaults would point at the deploying folder).
    output = _load(config, {}, None).output if config and not prefect_file else None
    for d in deployments:
        params = d.setdefault("parameters", {})
        if config:
            params["config_path"] = config if "://" in config else str(Path(config).resolve())
            if output is not None and d.get("name") in ("dedup", "pack"):
                upstream = "documents" if d["name"] == "dedup" else "deduped"
                params["input"] = [f"{output.rstrip('/')}/{upstream}"]
                params["output"] = f"{output.rstrip('/')}-{'dedup' if d['name'] == 'dedup' else 'packed'}"
        elif not prefect_file:
            params["config_path"] = str(Path(str(files("winnow.examples").joinpath("demo.yaml"))))
            # The bundled demo writes beside the deploying directory, not inside the package.
            params.setdefault("output", str(Path.cwd() / "demo-output"))
        elif isinstance(params.get("config_path"), str):
            params["config_path"] = absolute(params["config_path"])
        for key in ("input", "output"):
            value = params.get(key)
            if isinstance(value, str):
                params[key] = absolute(value)
            elif isinstance(value, list):
                params[key] = [absolute(v) for v in value]
        # One schedule per output folder: without --name only `curate` gets the cron (the others
        # would run at the same minute on the same output and be refused by its lock).
        if cron and (d.get("name") in names if names else d.get("name") == "curate"):
            d["schedules"] = [{"cron": cron, "timezone": "UTC", "active": True}]
        d.setdefault("work_pool", {})["name"] = pool
    tmp = Path(tempfile.mkdtemp(prefix="winnow-deploy-")) / "prefect.yaml"
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    return tmp


@app.command()
def deploy(
    config: Annotated[str | None, typer.Option(
        help="Config file every deployment runs (made absolute; or s3://...). Default: the bundled demo "
             "config.")] = None,
    name: Annotated[list[str] | None, typer.Option(
        "--name", "-n", help="Only these deployments (e.g. curate); repeatable. Default: all.")] = None,
    cron: Annotated[str | None, typer.Option(
        help="Schedule with this cron expression (UTC), active, e.g. '0 3 * * *': the --name deployments, "
             "or `curate` alone without --name.")] = None,
    pool: Annotated[str, typer.Option(help="Process work pool the deployments use; created when missing.")] = "winnow",
    prefect_file: Annotated[Path | None, typer.Option(
        help="Deployment definitions (default: the bundled deploy/prefect.yaml).")] = None,
) -> None:
    """Register winnow's Prefect deployments (full curation, single stages) on a Prefect server.

    Needs PREFECT_API_URL pointing at a running server. The deployments run the installed winnow
    (`winnow.flows.deployed.run_config`, no code is pushed anywhere): start a worker with
    `prefect worker start --pool winnow` where winnow is installed and the config's paths are
    reachable (absolute paths or s3://).
    """
    import shutil  # noqa: PLC0415 - imported on use: --help and --version stay instant
    import subprocess  # noqa: PLC0415 - imported on use: --help and --version stay instant

    _prefect_env()
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415 - imported on use: --help and --version stay instant

    if not PREFECT_API_URL.value():
        fail("PREFECT_API_URL is not set. Deployments live on a Prefect server: start one (`prefect server "
             "start`, or deploy/docker-compose.yml) and `export PREFECT_API_URL=http://127.0.0.1:4200/api`.")
    spec = _prefect_file_for(prefect_file, config, cron, name, pool)
    try:
        _ensure_work_pool(pool)
    except Exception as exc:  # noqa: BLE001 - unreachable server, auth: say so, no traceback
        fail(f"cannot reach the Prefect server at {PREFECT_API_URL.value()}: {exc}", code=1)
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or shutil.which("prefect") or "prefect"
    cmd = [prefect, "--no-prompt", "deploy", "--prefect-file", str(spec)]
    cmd += [a for n in name for a in ("--name", n)] if name else ["--all"]
    code = subprocess.run(cmd, cwd=spec.parent).returncode
    if code:
        raise typer.Exit(code)
    err.print(f"[green]deployed.[/green] Start a worker: [bold]prefect worker start --pool {pool}[/bold]; "
              "trigger a run: [bold]prefect deployment run winnow-run/curate[/bold] "
              "(--param output=..., --param input=PATH[,PATH])", highlight=False)


def _ensure_work_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from prefect.client.schemas.actions import WorkPoolCreate  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from prefect.workers.process import ProcessWorker  # noqa: PLC0415 - imported on use: --help and --version stay instant

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
            err.print(f"created process work pool {pool!r}", highlight=False)


@app.command("train-quality")
def train_quality(
    positive: Annotated[list[str], typer.Option("--positive", "-p", help="High-quality examples: JSONL(.gz) or "
                                                "Parquet files/dirs/globs with a 'text' field. Repeatable.")],
    negative: Annotated[list[str], typer.Option("--negative", "-n", help="Low-quality examples, same formats. "
                                                "Repeatable.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Where to write the model: .ftz (quantized, "
                                                               "small; default) or .bin (full).")],
    valid_fraction: Annotated[float, typer.Option(min=0.01, max=0.5, help="Share held out for validation.")] = 0.1,
    epoch: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 25,
    lr: Annotated[float, typer.Option(min=0.001, help="Learning rate.")] = 1.0,
    dim: Annotated[int, typer.Option(min=2, help="Embedding size.")] = 64,
    word_ngrams: Annotated[int, typer.Option(min=1, max=5, help="Word n-gram features.")] = 2,
    bucket: Annotated[int, typer.Option(min=1000, help="Hash buckets for word n-grams (fastText's 2M default "
                                                       "makes a 500 MB model).")] = 200_000,
    cutoff: Annotated[int, typer.Option(min=1000, help=".ftz: embedding rows kept by quantization.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Shuffle/split seed.")] = 0,
) -> None:
    """Train a fastText quality classifier (DCLM style) on your own positive/negative examples.

    Prints precision/recall/F1 of the positive class on a validation split the model never
    trained on, and the model's size. Use it with `quality.classifier: {enabled: true, model_path: OUT}`.
    """
    from winnow.filters.quality_classifier import train  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.shardio import InputError, StorageError, list_inputs, read_documents  # noqa: PLC0415 - imported on use: --help and --version stay instant
    from winnow.stats import StageStats  # noqa: PLC0415 - imported on use: --help and --version stay instant

    def texts(patterns: list[str]) -> list[str]:
        stats = StageStats()
        found = [d.text for f in list_inputs(patterns).files for d in read_documents(f.path, stats)]
        for reason, n in stats.errors.items():
            err.print(f"[yellow]skipped {n} bad record(s): {reason}[/yellow]")
        return found

    try:
        pos, neg = texts(positive), texts(negative)
        err.print(f"training on {len(pos):,} positive and {len(neg):,} negative examples ...")
        result = train(pos, neg, out_path, valid_fraction=valid_fraction, epoch=epoch, lr=lr, dim=dim,
                       word_ngrams=word_ngrams, bucket=bucket, cutoff=cutoff, seed=seed)
    except (InputError, StorageError, ValueError) as exc:
        fail(str(exc))
    err.print(f"validation ({result.valid_examples:,} held-out examples, threshold 0.5): "
              f"precision {result.precision:.3f}  recall {result.recall:.3f}  F1 {result.f1:.3f}  "
              f"accuracy {result.accuracy:.3f}")
    err.print(f"model written to {result.model_path} ({result.model_bytes / 1e6:.1f} MB"
              + (", quantized" if result.quantized else "") + ")")


def main() -> None:  # pragma: no cover
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
