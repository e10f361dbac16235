"""How a run executes on Prefect: task runners, mapping units of work as tasks, the terminal
progress display, and the Prefect API a run talks to (a temporary server when none is set).

Stages never see Prefect: a corpus stage gets a :class:`winnow.stage.Mapper`, and this module's
:class:`PrefectMapper` turns each unit of work into a Prefect task run on the configured task
runner (threads, processes or Dask), showing progress on the terminal and in the UI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from prefect import Task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.runtime import task_run
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from winnow.config import ConfigError, RunnerConfig
from winnow.lock import check_vanished
from winnow.stage import Work
from winnow.storage import error_line
from winnow.text_safety import EscapeControls, printable

if TYPE_CHECKING:
    from winnow.flows.temporary_server import TemporaryServer

R = TypeVar("R")
log = logging.getLogger("winnow")


class PhaseFailed(RuntimeError):
    """Units of a corpus-stage phase failed after their retries; finished units are kept and a
    rerun resumes from their markers."""


def ignore_sigint() -> None:
    """Worker processes leave Ctrl-C to the run's main process, which stops them itself: a worker
    that raised KeyboardInterrupt on its own printed tracebacks through the parent's pool thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def task_runner_for(runner: RunnerConfig) -> TaskRunner[Any]:
    """The Prefect task runner a config asks for."""
    if runner.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=runner.workers, initializer=ignore_sigint)
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner  # noqa: PLC0415 - dask is only imported for dask runs

        if runner.dask_address:
            return DaskTaskRunner(address=runner.dask_address)
        # One thread per worker process: the stages hold the GIL (parsing, spaCy, hashing).
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": runner.workers, "threads_per_worker": 1, "processes": True,
            "dashboard_address": ":0"})
    return ThreadPoolTaskRunner(max_workers=runner.workers)


def _safe_label(label: Callable[[Mapping[str, Any]], str] | None, name: str) -> Callable[[], str]:
    """A task_run_name callable that never raises (a raising one hangs a process-pool flow)."""

    def run_name() -> str:
        try:
            return f"{name} {label(task_run.parameters)}" if label else name
        except Exception:  # noqa: BLE001
            return name

    return run_name


class Display:
    """The terminal progress bars of a run (one row per phase) and the Prefect UI's progress
    artifact; log lines are printed above the bars, never over them."""

    def __init__(self, console: Console | None = None, enabled: bool = True, show_summary: bool = True,
                 echo_notes: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.show_summary = show_summary
        # Prefect's INFO lines are off on a terminal: winnow's own notes (shards redone, temp
        # files removed, dedup/pack results) are then printed here instead.
        self.echo_notes = echo_notes
        self.progress = Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=self.console,
                                 transient=False, disable=not self.enabled)
        self._artifact: Any = None
        self._last_update = 0.0

    @contextlib.contextmanager
    def live(self) -> Iterator[Display]:
        """Show the bars (on a terminal) for the duration of the run."""
        with self.progress, route_prefect_console(self.progress.console if self.enabled else None):
            _live.append(self)
            try:
                yield self
            finally:
                _live.remove(self)

    def note(self, message: str) -> None:
        """A winnow note on the terminal, above the bars, when Prefect's INFO lines are off
        (printed literally: a note names paths and values)."""
        if self.echo_notes:
            self.progress.console.print(Text(printable(message)), highlight=False)

    def phase(self, name: str, total: int) -> TaskID:
        """A new progress bar for a phase of `total` units."""
        return self.progress.add_task(name, total=total, note="")

    def advance(self, bar: TaskID, n: int = 1, note: str = "") -> None:
        """Move a bar on."""
        self.progress.update(bar, advance=n, note=note)

    def ui_progress(self, done: int, total: int, what: str) -> None:
        """The UI's progress artifact, updated at most every 2 s (thousands of shards must not
        turn into thousands of API calls)."""
        now = time.monotonic()
        if self._artifact is None:
            self._artifact = create_progress_artifact(progress=0.0, description=what)
        if now - self._last_update > 2 or done == total:
            update_progress_artifact(self._artifact, progress=100.0 * done / max(1, total))
            self._last_update = now


_display_settings: dict[str, Any] = {}
# Displays drawing bars now, so an interrupted run can finish their lines before it exits.
_live: list[Display] = []


def stop_display() -> None:
    """Stop every live progress display: the last bar gets its newline and the cursor comes
    back (Ctrl-C or SIGTERM; the process exits right after)."""
    for display in list(_live):
        with contextlib.suppress(Exception):
            display.progress.stop()


class _ConsoleFilter(logging.Filter):
    """What the terminal handler of a CLI run leaves out or shortens (see quiet_console)."""

    def __init__(self, expected: tuple[type[BaseException], ...], shown: Sequence[str], verbose: bool) -> None:
        super().__init__()
        self.expected, self.shown, self.verbose = expected, set(shown), verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.expected):
            return False
        if record.exc_info and isinstance(record.exc_info[1], OSError) and check_vanished():
            return False  # a file deleted with the output folder: the folder's one line says it
        message = record.getMessage()
        if message in self.shown:
            return False
        if not self.verbose and message.startswith("Starting temporary server on "):
            # Prefect's second line, a documentation link, on every ad-hoc run.
            record.msg, record.args = message.split("\n", 1)[0], None
        return True


# Third-party loggers that are chatty at INFO/WARNING about things winnow counts itself
# (trafilatura's "discarding data: None" per empty page; a Dask cluster's start-up lines).
_CHATTY = {"trafilatura": logging.ERROR, "distributed": logging.WARNING}


def quiet_console(expected: tuple[type[BaseException], ...] = (), shown: Sequence[str] = (),
                  verbose: bool = False) -> None:
    """The terminal of a CLI run: no Prefect traceback for ``expected`` errors (the CLI prints
    them in one line), no second copy of notes already ``shown``, no documentation banner and
    no chatty third-party lines unless ``verbose``; control characters escaped everywhere."""
    for handler in _console_handlers():
        handler.filters = [f for f in handler.filters if not isinstance(f, (_ConsoleFilter, EscapeControls))]
        handler.addFilter(_ConsoleFilter(expected, shown, verbose))
        handler.addFilter(EscapeControls())
    if not verbose:
        for name, level in _CHATTY.items():
            logging.getLogger(name).setLevel(level)
        # Dask's worker processes read their logging levels from the environment.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def _console_handlers() -> list[PrefectConsoleHandler]:
    return [h for logger in [logging.getLogger(), *(logging.getLogger(n) for n in
                                                     list(logging.root.manager.loggerDict))]
            for h in logger.handlers if isinstance(h, PrefectConsoleHandler)]


def configure_display(console: Console | None = None, enabled: bool = True, show_summary: bool = True,
                      echo_notes: bool = False) -> None:
    """How runs of this process show progress (the CLI sets it from --quiet); deployments keep
    the default, which draws no bars off a terminal."""
    _display_settings.update(console=console, enabled=enabled, show_summary=show_summary, echo_notes=echo_notes)


def default_display() -> Display:
    """The display runs of this process use (see configure_display)."""
    return Display(**_display_settings)


@contextlib.contextmanager
def route_prefect_console(console: Console | None) -> Iterator[None]:
    """Point Prefect's console log handlers at ``console`` (the live progress display's), so a
    log line is printed above the progress bars instead of through them."""
    if console is None:
        yield
        return
    handlers = _console_handlers()
    saved = [(h, h.console) for h in handlers]
    for h in handlers:
        h.console = console
    try:
        yield
    finally:
        for h, c in saved:
            h.console = c


def run_work(work: Work[R]) -> R:
    """What every Prefect task of a stage's phase runs: the unit of work it is given."""
    return work()


def _item_label(item: Work[Any], k: int) -> str:
    try:
        return item.label()
    except Exception:  # noqa: BLE001 - a failure line must not fail
        return str(k)


def _work_label(name: str) -> Callable[[], str]:
    """A task_run_name callable that never raises (a raising one hangs a process-pool flow)."""

    def run_name() -> str:
        try:
            return f"{name} {task_run.parameters['work'].label()}"
        except Exception:  # noqa: BLE001
            return name

    return run_name


class PrefectMapper:
    """Maps units of work as Prefect tasks on ``runner`` (entered by the caller)."""

    def __init__(self, runner: TaskRunner[Any], config: RunnerConfig, display: Display) -> None:
        self.runner = runner
        self.config = config
        self.workers = config.workers
        self.display = display
        self._tasks: dict[tuple[Callable[..., Any], str], Task[Any, Any]] = {}

    def task_for(self, fn: Callable[..., R], name: str, label: Callable[[Mapping[str, Any]], str] | None = None,
                 retries: int | None = None) -> Task[Any, R]:
        """One Prefect task per (function, name), reused for every unit of that phase."""
        t = self._tasks.get((fn, name))
        if t is None:
            t = Task(fn, name=name, retries=self.config.retries if retries is None else retries,
                     retry_delay_seconds=5, persist_result=False, task_run_name=_safe_label(label, name))
            self._tasks[(fn, name)] = t
        return t

    def submit(self, fn: Callable[..., R], items: Sequence[Mapping[str, Any]], name: str,
               label: Callable[[Mapping[str, Any]], str] | None = None,
               retries: int | None = None) -> list[PrefectFuture[R]]:
        """Submit one task run per item; the futures, in item order."""
        t = self.task_for(fn, name, label, retries)
        return [self.runner.submit(t, parameters=dict(item)) for item in items]

    def map(self, items: Sequence[Work[R]], *, name: str) -> list[R]:
        if not items:
            return []
        t = self._work_task(name)
        futures = [self.runner.submit(t, parameters={"work": item}) for item in items]
        index = {f.task_run_id: k for k, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        failures: list[str] = []
        bar = self.display.phase(name, len(futures))
        for fut in as_completed(futures):
            k = index[fut.task_run_id]
            try:
                results[k] = fut.result()
            except Exception as exc:  # noqa: BLE001 - collect every failure, then report them together
                failures.append(f"{name} {_item_label(items[k], k)}: {type(exc).__name__}: {exc}")
            self.display.advance(bar, note=f"{len(failures)} failed" if failures else "")
        if failures:
            raise PhaseFailed(f"{len(failures)} of {len(futures)} {name} task(s) failed; finished ones are kept, "
                              "rerun the same command to resume:\n  " + "\n  ".join(failures[:20]))
        return results

    def run(self, item: Work[R], *, name: str) -> R:
        """In this process with threads (the flow's process is the worker), in a worker otherwise,
        so the flow's process stays small (models and big arrays live in the workers)."""
        t = self._work_task(name)
        if self.config.kind == "threads":
            return cast(R, t(work=item))
        return cast(R, self.runner.submit(t, parameters={"work": item}).result())

    def _work_task(self, name: str) -> Task[Any, Any]:
        """One Prefect task per phase, running typed work items."""
        t = self._tasks.get((run_work, name))
        if t is None:
            t = Task(run_work, name=name, retries=self.config.retries, retry_delay_seconds=5,
                     persist_result=False, task_run_name=_work_label(name))
            self._tasks[(run_work, name)] = t
        return t

    def run_one(self, fn: Callable[..., R], item: Mapping[str, Any], *, name: str) -> R:
        """``fn(**item)`` once, like :meth:`run`: the flow's own steps (its functions take keyword
        arguments; a stage's units of work are typed items, see :meth:`run`)."""
        t = self.task_for(fn, name)
        if self.config.kind == "threads":
            return t(**item)
        return self.runner.submit(t, parameters=dict(item)).result()

    def batches(self, n: int, tasks_per_worker: int | None = None) -> list[list[int]]:
        return self.config.batches(n, tasks_per_worker)


_server: TemporaryServer | None = None


def check_api(url: str, timeout_s: float = 10.0) -> None:
    """The Prefect API a run is pointed at answers, or one line says which URL does not
    (otherwise the flow dies in Prefect's client with a long traceback)."""
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(f"the Prefect API at {url} (PREFECT_API_URL) does not answer: {error_line(exc)}; "
                          "start the server, fix the URL, or unset PREFECT_API_URL to let winnow start a "
                          "temporary one") from None


def ensure_api(runner: RunnerConfig) -> TemporaryServer | None:
    """Make sure the run has a Prefect API: the one PREFECT_API_URL names, or a temporary local
    server that this process and every worker process share (without it, each worker of a
    process pool would start a server of its own, and the UI would not see their task runs)."""
    global _server
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415 - settings read after the CLI set the env

    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    if url:
        check_api(str(url))
        return None
    if runner.dask_address:
        raise ConfigError("runner.dask_address points at a remote Dask cluster: set PREFECT_API_URL to a Prefect "
                          "server that its workers can reach (a temporary local server is not).")
    if _server is None:
        # Prefect's server code (FastAPI, SQLAlchemy, uvicorn: ~2 s and ~100 MB) is imported only
        # by the process that starts the server, never by a worker that imports this module.
        from winnow.flows.temporary_server import TemporaryServer  # noqa: PLC0415 - see above

        _server = TemporaryServer()
        _server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = _server.api_url
    return _server


def temporary_server_pids() -> set[int]:
    """The temporary server's process, if this process started one (it is stopped, not frozen,
    on the way out)."""
    process = getattr(_server, "server_process", None)
    return {process.pid} if process is not None else set()


def stop_temporary_server() -> None:
    """Stop the temporary server now (Ctrl-C; normally it stops at exit)."""
    global _server
    if _server is not None:
        with contextlib.suppress(Exception):
            _server.stop()
        _server = None
