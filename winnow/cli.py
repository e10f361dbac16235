"""winnow command line: `winnow run CONFIG`, `winnow demo`, `winnow stages`, `winnow report`,
`winnow deploy`, `winnow train-quality`. The top layer: it imports the flows, never the reverse.

Exit codes: 0 done; 1 the run failed part-way (finished shards are kept: rerun to resume) or
read nothing; 2 refused before any work (bad config, missing file, unwritable output,
unreachable storage, output in use by another run, a Prefect API that does not answer); 130
interrupted (Ctrl-C), 143 stopped by SIGTERM: rerun to resume.
"""

# ruff: noqa: PLC0415
# Everything past the standard library, typer and rich is imported in the command that uses it, so
# `winnow --help` and `--version` answer at once (the stages and Prefect take seconds to import),
# and Prefect only after _prefect_env() has set its environment.

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from rich.console import Console
from rich.text import Text
from typer.core import TyperArgument, TyperCommand

from winnow import watchdog as watchdog_module
from winnow.stats import plural
from winnow.text_safety import printable

if TYPE_CHECKING:
    from winnow.config import PipelineConfig

T = TypeVar("T")

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
    # Click's plain help: paragraphs are re-flowed to the terminal's width (rich mode kept the
    # docstrings' line breaks and broke sentences mid-line) and metavars read CONFIG, PATH, N.
    rich_markup_mode=None,
)


class _Command(TyperCommand):
    """Help as click writes it: `winnow run [OPTIONS] CONFIG`, not typer's `{CONFIG}`, and an
    argument named by its metavar alone (typer adds `<str>` beside it)."""

    # typer vendors its own click (typer._click): the contexts are typed Any here.
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in super().collect_usage_pieces(ctx)]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar:
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        super().format_help(ctx, formatter)


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


def say(*parts: str | tuple[str, str], console: Console | None = None) -> None:
    """Print parts (text, or (text, style)) as one message. Paths, values and record content are
    printed literally, never read as rich markup, with control characters escaped."""
    (console or err).print(Text.assemble(*((printable(p), "") if isinstance(p, str) else (printable(p[0]), p[1])
                                           for p in parts)), highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """One red line and an exit code: a user sees what to fix, never a traceback."""
    say(("error:", "red"), " ", message)
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


INTERRUPTED = "interrupted; rerun to resume"
# Ctrl-C and SIGTERM (timeout, Kubernetes, Slurm, Prefect cancellation): the same stop, the
# usual statuses.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long the run's own handler may take to answer a signal before the watchdog stops the run
# from outside (a C extension holding the interpreter lock).
WATCHDOG_GRACE_S = 3.0


@contextlib.contextmanager
def _interruptible(lock_path: str = "") -> Iterator[None]:
    """Ctrl-C or SIGTERM: one line, status 130 or 143, within a second or two. Every write is
    atomic (temp file + rename) and every finished shard has its marker, so stopping at once
    loses nothing: the rerun removes the temp files and redoes only unfinished work. Waiting
    for worker threads, process pools or a dying server is what made Ctrl-C hang for minutes.
    A watchdog process stops the run when its main thread cannot answer (winnow/watchdog.py)."""
    main_pid = os.getpid()
    signal_r, signal_w = os.pipe()
    os.set_blocking(signal_w, False)
    watchdog = subprocess.Popen(
        [sys.executable, "-I", str(Path(watchdog_module.__file__)), str(main_pid), str(signal_r),
         str(WATCHDOG_GRACE_S), lock_path, f"\n{INTERRUPTED}\n"],
        pass_fds=(signal_r,), stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(signal_r)

    def on_signal(signum: int, frame: Any) -> None:
        if os.getpid() != main_pid:  # a forked child: its parent reports and cleans up
            os._exit(128 + signum)
        with contextlib.suppress(OSError):
            os.write(signal_w, bytes([watchdog_module.HANDLED]))
        _exit_now(128 + signum, Text(f"\n{INTERRUPTED}", style="yellow"), spare={watchdog.pid})

    previous = {s: signal.signal(s, on_signal) for s in _STOP_SIGNALS}
    for s in _STOP_SIGNALS:
        _reset_after_first_delivery(s)
    previous_fd = signal.set_wakeup_fd(signal_w, warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(signal_w)  # the watchdog sees the pipe close and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(timeout=2)


def _exit_now(code: int, line: Text, spare: set[int] | None = None) -> NoReturn:
    """Stop the run at once, from any thread, losing nothing: freeze every worker process first
    (a shard whose extraction child died would count its page as a crash and be marked done),
    finish the progress line, print ``line``, release the output lock, stop the temporary
    server, then kill the frozen workers and exit with ``code``. Finished work is kept (atomic
    writes); unfinished work is redone by the rerun."""
    # Threads still running until the exit log nothing more: the line below is the last one.
    logging.disable(logging.CRITICAL)
    # Only what this run already imported: importing Prefect on the way out would take seconds.
    runtime, lock = sys.modules.get("winnow.flows.runtime"), sys.modules.get("winnow.lock")
    spare = set(spare or ())
    server: set[int] = set()
    with contextlib.suppress(Exception):
        server = runtime.temporary_server_pids() if runtime else set()
    _signal_children(signal.SIGSTOP, spare | server)
    with contextlib.suppress(Exception):
        if runtime:
            runtime.stop_display()
    err.print(line, highlight=False)
    with contextlib.suppress(Exception):
        if lock:
            lock.release_all()
    with contextlib.suppress(Exception):
        if runtime:
            runtime.stop_temporary_server()
    sys.stderr.flush()
    # From here to the exit no other thread of this process runs (os.kill keeps the GIL).
    sys.setswitchinterval(1000)
    _signal_children(signal.SIGKILL, spare)
    os._exit(code)


def _output_vanished(message: str) -> None:
    """The heartbeat found the output folder gone: one line, exit 1, now (not after minutes of
    retried writes into a folder that is not there)."""
    _exit_now(1, Text.assemble(("error:", "red"), " ", printable(message)))


class _Sigaction(ctypes.Structure):
    # glibc's struct sigaction (Linux): handler, 1024-bit mask, flags, restorer.
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong)))),
                ("flags", ctypes.c_uint), ("restorer", ctypes.c_void_p)]


_SA_RESETHAND = 0x80000000


def _reset_after_first_delivery(signum: int) -> None:
    """Keep Python's handler for ``signum`` but let the kernel reset it to the default after
    one delivery (SA_RESETHAND): when the main thread cannot run the handler, the watchdog's
    second signal then ends the run with the usual status (143 for SIGTERM) instead of SIGKILL's
    137. Linux with glibc; elsewhere the watchdog's fallback is SIGKILL."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        act = _Sigaction()
        if libc.sigaction(signum, None, ctypes.byref(act)) == 0 and act.handler:
            act.flags |= _SA_RESETHAND
            libc.sigaction(signum, ctypes.byref(act), None)


def _signal_children(signum: int, spare: set[int]) -> None:
    """Send ``signum`` to every process descended from this one but ``spare`` (pool and Dask
    workers, which ignore SIGINT; extraction sandboxes): killed, they cannot go on writing or
    print tracebacks after winnow exited."""
    for pid in watchdog_module.descendants(os.getpid()) - spare:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a helper thread while the main thread only waits: Prefect installs its own
    SIGTERM handler (a crash report, no resume note) when a flow starts in the main thread, and
    the main thread stays free to answer signals."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            error.append(exc)

    thread = threading.Thread(target=target, name="winnow-run", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.25)
    if error:
        raise error[0]
    return result[0]


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


def _execute(cfg: PipelineConfig) -> None:
    """Plan (output, inputs), check every stage's resources, then run the flow. Everything that
    can be refused is refused here, in a second, before a Prefect server starts."""
    from winnow.config import ConfigError
    from winnow.lock import LockHeld, OutputLock
    from winnow.stage import StageError
    from winnow.storage import InputError, StorageError

    _prefect_env()  # before anything below imports prefect
    from winnow.flows.curate import (
        NothingRead,
        ShardFailures,
        check_stages,
        curate,
        enabled_checks,
        plan_run,
    )
    from winnow.flows.runtime import (
        PhaseFailed,
        configure_display,
        ensure_api,
        quiet_console,
    )
    from winnow.lock import LOCK_NAME, OutputVanished, check_vanished, on_vanished
    from winnow.stage import StageEnv

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
        say(("warning:", "yellow"), " ", note)
    if not _Options.quiet:
        say(f"winnow {_version()}: {plural(len(plan.listing.files), 'input file')} in "
            f"{plural(len(plan.jobs), 'shard')} -> {cfg.output}")
    configure_display(err, enabled=not _Options.quiet, show_summary=not _Options.quiet,
                      echo_notes=_console_level() == "WARNING")
    # These end the run with one line of their own below: Prefect's ERROR line and traceback for
    # them would say the same in 20 lines; the notes printed above are not repeated either.
    quiet_console(expected=(ShardFailures, PhaseFailed, NothingRead, OutputVanished, ConfigError, StageError,
                            LockHeld, StorageError, InputError), shown=plan.notes, verbose=_Options.verbose)
    local = "://" not in cfg.output or cfg.output.startswith("file://")
    lock_path = os.path.join(cfg.output.removeprefix("file://"), LOCK_NAME) if local else ""
    on_vanished(_output_vanished)
    with _interruptible(lock_path):
        try:
            if not os.environ.get("PREFECT_API_URL"):
                _status("starting a temporary Prefect server ...")
            # In the main thread: the server dies with the thread that started it (PR_SET_PDEATHSIG
            # follows the thread), and it must outlive the flow until Prefect's logs are flushed.
            ensure_api(cfg.runner)
            summary = _in_thread(lambda: _run_flow(cfg, curate))
        except (ShardFailures, PhaseFailed, NothingRead, OutputVanished) as exc:
            fail(str(exc), code=1)
        except (ConfigError, StageError, LockHeld, StorageError, InputError) as exc:
            fail(str(exc))
        except OSError as exc:  # full disk, unreachable storage: finished shards stay, a rerun resumes
            check_vanished()  # a file deleted with the output folder: says so and exits instead
            fail(f"{type(exc).__name__}: {exc}\nFinished shards are kept; rerun the same command to resume.", code=1)
    # The temporary server stops at exit, after Prefect has flushed its logs and events to it
    # (atexit runs last-registered first; stopping it here made every flush retry for a minute).
    _done(summary, cfg)


def _run_flow(cfg: PipelineConfig, curate: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The flow, saying first on a terminal that worker processes start (a minute can pass
    before the first bar moves)."""
    if cfg.runner.kind != "threads":
        _status(f"starting {plural(cfg.runner.workers, 'worker process', 'worker processes')} ({cfg.runner.kind}); "
                "each imports the stages and loads their models before the first shard ...")
    return curate(cfg, checked=cfg.runner.kind == "threads")


def _status(message: str) -> None:
    """What the run is doing while nothing else moves, on a terminal (off one, Prefect's log
    lines say it)."""
    if err.is_terminal and not _Options.quiet:
        say((message, "dim"))


def _done(summary: dict[str, Any], cfg: PipelineConfig) -> None:
    from winnow.tasks.pipeline import discover

    say("\n", ("done.", "green"), f" {plural(summary['rows'], 'document')} in ", (summary["output"], "bold"))
    if _Options.quiet:
        return
    for stage in discover():
        parts = stage.done_line(summary, cfg.output)
        if parts:
            say(*parts)
    say(f"run summary: {os.path.join(cfg.output, 'summary.md')}, report: {os.path.join(cfg.output, 'report.html')}")


def _load(config: str | None, overrides: dict[str, Any], stages: str | None,
          storage_options: dict[str, Any] | None = None) -> PipelineConfig:
    from winnow.config import ConfigError
    from winnow.tasks.pipeline import load_config

    try:
        return load_config(config, overrides, stages=[s.strip() for s in stages.split(",") if s.strip()]
                           if stages else None, storage_options=storage_options)
    except ConfigError as exc:
        fail(str(exc))


@app.command(cls=_Command)
def run(
    config: Annotated[str, typer.Argument(metavar="CONFIG",
                                          help="YAML config file, local or s3:// (see examples/demo.yaml).")],
    input: Annotated[list[str] | None, typer.Option(
        "--input", "-i", metavar="PATH",
        help="Input file/dir/glob (local or s3://); repeat for several. Replaces the config's.")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="DIR",
                                               help="Output directory; replaces the config's.")] = None,
    runner: Annotated[str | None, typer.Option(metavar="KIND", help="threads, processes or dask.")] = None,
    workers: Annotated[int | None, typer.Option(metavar="N", help="Tasks run at the same time.")] = None,
    dask_address: Annotated[str | None, typer.Option(
        metavar="ADDRESS",
        help="Scheduler of an existing Dask cluster (tcp://HOST:8786); implies --runner dask.")] = None,
    stages: Annotated[str | None, typer.Option(
        metavar="STAGES",
        help="Run only these stages, comma-separated (`winnow stages` lists them; e.g. --stages dedup on "
             "Parquet input).")] = None,
    storage_options: Annotated[str | None, typer.Option(
        metavar="JSON",
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


@app.command(cls=_Command)
def demo(
    output: Annotated[str, typer.Option("--output", "-o", metavar="DIR", help="Output directory.")] = "demo-output",
    workers: Annotated[int | None, typer.Option(metavar="N", help="Tasks run at the same time.")] = None,
) -> None:
    """Curate the sample WARCs shipped with winnow (real crawl data: Common Crawl, ClueWeb, gov.uk,
    ...) with the demo config: ingest, LID (English), quality rules, PII masking, MinHash dedup,
    packing. The same run as `make demo` in a checkout."""
    demo_dir = files("winnow.examples")
    config = Path(str(demo_dir.joinpath("demo.yaml")))
    if not config.is_file():
        fail(f"the bundled demo config is missing ({config}); reinstall winnow")
    _execute(_load(str(config), {"output": output, "runner.workers": workers}, None))


@app.command(cls=_Command)
def stages() -> None:
    """List the pipeline stages in order and every configuration field, with its default."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    from winnow.config import PipelineConfig, RunnerConfig, config_sections
    from winnow.tasks.pipeline import discover

    def default_of(field: Any) -> str:
        if field.default_factory is not None:
            value = field.default_factory()
            return "{...}" if isinstance(value, BaseModel) else repr(value)
        if field.default is PydanticUndefined:
            return "(required)"
        return repr(field.default)

    def show(title: str, model: type[BaseModel], prefix: str) -> None:
        for section_prefix, fields in config_sections(model, prefix):
            say("\n", (section_prefix.rstrip(".") if section_prefix != prefix else title, "bold"), console=out)
            for name, field in fields:
                say("  ", (f"{section_prefix}{name}", "cyan"),
                    f" = {default_of(field)}\n      {field.description or ''}", console=out)

    registry = discover()
    labels = {"source": "per input file", "document": "per document, streamed per shard",
              "corpus": "over all shards"}
    out.print("Stages, in pipeline order:", highlight=False)
    for s in registry:
        say("  ", (f"{s.name:<10}", "bold"), f" ({labels[s.kind]}) {s.summary}", console=out)
    out.print("\nSmall input files are grouped into shards of about shard_size_mb (one task, output file and "
              "done-marker each); runner.max_tasks bounds the task runs per phase.", highlight=False)
    show("top level", PipelineConfig, "")
    show("runner", RunnerConfig, "runner.")
    for s in registry:
        if s.config_model is not None:
            show(s.name, s.config_model, f"{s.name}.")


@app.command(cls=_Command)
def report(
    output: Annotated[str, typer.Argument(metavar="OUTPUT", help="Output folder of a winnow run (local or s3://).")],
    storage_options: Annotated[str | None, typer.Option(
        metavar="JSON",
        help="JSON fsspec options for an s3:// folder, e.g. '{\"client_kwargs\": {\"endpoint_url\": ...}}'.")] = None,
    config: Annotated[str | None, typer.Option(
        metavar="CONFIG", help="Take the storage options from this run config instead.")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the report in a browser.")] = False,
) -> None:
    """Write OUTPUT/report.html: a self-contained page (inline SVG plots, no network) with the funnel
    per stage and rule, document lengths before/after filtering, and each stage's own section
    (languages, duplicate clusters, packing, rephrasing). `winnow run` writes it too."""
    from winnow.flows.summary import report_sections
    from winnow.report import ReportError, write_report
    from winnow.storage import StorageError, describe_storage_error

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
    say("report written to ", (path, "bold"))
    if open_browser and "://" not in path:
        import webbrowser

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
            alone = _deployed_alone(d, output) if output is not None else None
            if alone is not None:
                params["input"], params["output"] = [alone[0]], alone[1]
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


def _deployed_alone(deployment: dict[str, Any], output: str) -> tuple[str, str] | None:
    """(input, output) of a bundled deployment that runs one stage alone (its name is the stage's),
    beside a run into ``output``, as that stage says; None for the others."""
    from winnow.stage import get
    from winnow.tasks.pipeline import discover

    names = {s.name for s in discover()}
    name = deployment.get("name")
    return get(name).deployed_alone(output.rstrip("/")) if name in names else None


@app.command(cls=_Command)
def deploy(
    config: Annotated[str | None, typer.Option(
        metavar="CONFIG",
        help="Config file every deployment runs (made absolute; or s3://...). Default: the bundled demo "
             "config.")] = None,
    name: Annotated[list[str] | None, typer.Option(
        "--name", "-n", metavar="NAME", help="Only these deployments (e.g. curate); repeatable. Default: all.")] = None,
    cron: Annotated[str | None, typer.Option(
        metavar="CRON",
        help="Schedule with this cron expression (UTC), active, e.g. '0 3 * * *': the --name deployments, "
             "or `curate` alone without --name.")] = None,
    pool: Annotated[str, typer.Option(metavar="POOL",
                                      help="Process work pool the deployments use; created when missing.")] = "winnow",
    prefect_file: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Deployment definitions (default: the bundled deploy/prefect.yaml).")] = None,
) -> None:
    """Register winnow's Prefect deployments (full curation, single stages) on a Prefect server.

    Needs PREFECT_API_URL pointing at a running server. The deployments run the installed winnow
    (`winnow.flows.deployed.run_config`, no code is pushed anywhere): start a worker with
    `prefect worker start --pool winnow` where winnow is installed and the config's paths are
    reachable (absolute paths or s3://).
    """
    import shutil

    _prefect_env()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        fail("PREFECT_API_URL is not set. Deployments live on a Prefect server: start one (`prefect server "
             "start`, or deploy/docker-compose.yml) and `export PREFECT_API_URL=http://127.0.0.1:4200/api`.")
    from winnow.config import ConfigError
    from winnow.flows.runtime import check_api

    try:
        check_api(str(PREFECT_API_URL.value()))  # the same line and status as `winnow run`: refused before work
    except ConfigError as exc:
        fail(str(exc))
    spec = _prefect_file_for(prefect_file, config, cron, name, pool)
    try:
        _ensure_work_pool(pool)
    except Exception as exc:  # noqa: BLE001 - a server that answers /health but refuses (auth): say so
        fail(f"the Prefect server at {PREFECT_API_URL.value()} refused to set up work pool {pool!r}: {exc}")
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or shutil.which("prefect") or "prefect"
    cmd = [prefect, "--no-prompt", "deploy", "--prefect-file", str(spec)]
    cmd += [a for n in name for a in ("--name", n)] if name else ["--all"]
    code = subprocess.run(cmd, cwd=spec.parent).returncode
    if code:
        raise typer.Exit(code)
    say(("deployed.", "green"), " Start a worker: ", (f"prefect worker start --pool {pool}", "bold"),
        "; trigger a run: ", ("prefect deployment run winnow-run/curate", "bold"),
        " (--param output=..., --param input=PATH[,PATH])")


def _ensure_work_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
            say(f"created process work pool {pool!r}")


@app.command("train-quality", cls=_Command)
def train_quality(
    positive: Annotated[list[str], typer.Option("--positive", "-p", metavar="PATH",
                                                                    help="High-quality examples: JSONL(.gz) or "
                                                "Parquet files/dirs/globs with a 'text' field. Repeatable.")],
    negative: Annotated[list[str], typer.Option("--negative", "-n", metavar="PATH",
                                                                    help="Low-quality examples, same formats. "
                                                "Repeatable.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", metavar="FILE",
                                                          help="Where to write the model: .ftz (quantized, "
                                                               "small; default) or .bin (full).")],
    valid_fraction: Annotated[float, typer.Option(metavar="N", min=0.01, max=0.5,
                                                  help="Share held out for validation.")] = 0.1,
    epoch: Annotated[int, typer.Option(metavar="N", min=1, help="Training epochs.")] = 25,
    lr: Annotated[float, typer.Option(metavar="N", min=0.001, help="Learning rate.")] = 1.0,
    dim: Annotated[int, typer.Option(metavar="N", min=2, help="Embedding size.")] = 64,
    word_ngrams: Annotated[int, typer.Option(metavar="N", min=1, max=5, help="Word n-gram features.")] = 2,
    bucket: Annotated[int, typer.Option(metavar="N", min=1000,
                                        help="Hash buckets for word n-grams (fastText's 2M default "
                                                       "makes a 500 MB model).")] = 200_000,
    cutoff: Annotated[int, typer.Option(metavar="N", min=1000,
                                        help=".ftz: embedding rows kept by quantization.")] = 100_000,
    seed: Annotated[int, typer.Option(metavar="N", help="Shuffle/split seed.")] = 0,
) -> None:
    """Train a fastText quality classifier (DCLM style) on your own positive/negative examples.

    Prints precision/recall/F1 of the positive class on a validation split the model never
    trained on, and the model's size. Use it with `quality.classifier: {enabled: true, model_path: OUT}`.
    """
    from winnow.filters.quality_classifier import train
    from winnow.inputs import list_inputs, read_documents
    from winnow.stats import StageStats
    from winnow.storage import InputError, StorageError

    def texts(patterns: list[str]) -> list[str]:
        stats = StageStats()
        found = [d.text for f in list_inputs(patterns).files for d in read_documents(f.path, stats)]
        for reason, n in stats.errors.items():
            say((f"skipped {plural(n, 'bad record')}: {reason}", "yellow"))
        return found

    try:
        pos, neg = texts(positive), texts(negative)
        say(f"training on {len(pos):,} positive and {len(neg):,} negative examples ...")
        result = train(pos, neg, out_path, valid_fraction=valid_fraction, epoch=epoch, lr=lr, dim=dim,
                       word_ngrams=word_ngrams, bucket=bucket, cutoff=cutoff, seed=seed)
    except (InputError, StorageError, ValueError) as exc:
        fail(str(exc))
    say(f"validation ({plural(result.valid_examples, 'held-out example')}, threshold 0.5): "
        f"precision {result.precision:.3f}  recall {result.recall:.3f}  F1 {result.f1:.3f}  "
        f"accuracy {result.accuracy:.3f}")
    say(f"model written to {result.model_path} ({result.model_bytes / 1e6:.1f} MB"
        + (", quantized" if result.quantized else "") + ")")


def main() -> None:  # pragma: no cover
    """Console-script entry point (also `python -m winnow`)."""
    app(prog_name="winnow")


if __name__ == "__main__":  # pragma: no cover
    main()
