"""The stage contract and its registry.

A stage is a class that declares its name, its config section, where it runs in the pipeline
and how it checks its resources; the registry collects every stage class, and everything that
lists stages (the config model, the CLI, ``winnow stages``, the flow's phase order, the
resource checks, the report) is generated from it. Three kinds:

* :class:`SourceStage` turns input files into documents (``ingest`` for WARC, ``read`` for
  JSONL/Parquet); it counts each record it reads.
* :class:`DocumentStage` decides per document: ``apply(doc)`` returns ``None`` to keep it (it may
  annotate or rewrite it) or a drop reason. Counting documents and bytes in and out, reasons,
  time and the rejected-documents writer are done here, once (datatrove's ``BaseFilter`` idea),
  so a stage's own code is only its decision. All enabled document stages of a shard stream in
  one pass.
* :class:`CorpusStage` needs every shard (dedup, rephrasing, packing): ``run`` maps its phases
  over shards or partitions through the :class:`Mapper` the flow gives it.

A new per-document stage is one module in ``winnow/tasks/`` with a config class and a
``DocumentStage`` subclass decorated with ``@register``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import Field

from winnow.config import PipelineConfig, StrictModel, output_settings, stamped_paths
from winnow.document import Document
from winnow.inputs import path_stamps
from winnow.resume import ShardRef
from winnow.stats import StageStats

Kind = Literal["source", "document", "corpus"]
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class StageError(ValueError):
    """A stage that cannot run as configured (a missing model, list or eval file, a bad rule
    parameter); raised by the resource check, before any shard runs."""


class StageConfig(StrictModel):
    """Base of every stage's config section."""

    enabled: bool = Field(True, description="Run this stage.")


class DocumentStageConfig(StageConfig):
    """Settings every per-document stage has: whether its drops go to OUTPUT/rejected/."""
    write_rejected: bool = Field(False, description="Also write the documents this stage drops, with their "
                                                    "reason, to OUTPUT/rejected/.")


C = TypeVar("C", bound=StageConfig)


@dataclass(frozen=True)
class StageEnv:
    """What every stage may need from the run besides its own section: storage and where the
    run writes. A corpus stage gets it inside its :class:`CorpusContext` (``ctx.env``)."""

    storage_options: dict[str, Any] = field(default_factory=dict)
    output: str = ""


class Stage(Generic[C]):
    """The contract every stage class fills in; see the module docstring."""
    name: ClassVar[str]
    kind: ClassVar[Kind]
    config_model: ClassVar[type[StageConfig] | None]  # None: the stage has no config section
    order: ClassVar[int]  # position in the pipeline; sources < document stages < corpus stages
    summary: ClassVar[str]  # one line for `winnow stages` and --help
    # Bump when the stage's output changes for the same settings: old done-markers then stop matching.
    version: ClassVar[str] = "1"
    always_on: ClassVar[bool] = False  # sources: they produce the documents

    @classmethod
    def config_of(cls, cfg: PipelineConfig) -> C:
        """This stage's section of a full config (typed); a stage without one gets its defaults."""
        if cls.config_model is None:
            return StageConfig(enabled=True)  # type: ignore[return-value]
        return cfg.section(cls.name)  # type: ignore[return-value]

    @classmethod
    def is_enabled(cls, cfg: PipelineConfig) -> bool:
        """Whether a run with this config runs the stage."""
        return cls.always_on or bool(cls.config_of(cfg).enabled)

    @classmethod
    def settings(cls, section: C, env: StageEnv | None = None) -> dict[str, Any]:
        """What of the section shapes this stage's output (the done-marker key covers it); a stage
        whose output also depends on files it reads adds their stamps (``env`` reaches them)."""
        out = output_settings(section)
        out.pop("enabled", None)
        out.pop("write_rejected", None)  # covered by the shard's own key (its rejected/ file)
        named = stamped_paths(section)
        if named and section.enabled:
            so = env.storage_options if env is not None else None
            try:
                out["files"] = {name: path_stamps(paths, so) for name, paths in named.items()}
            except (OSError, ValueError) as exc:  # the stage's check reports it, before work
                out["files"] = {name: f"unreadable: {exc}" for name in named}
        return {"version": cls.version, **out}

    @classmethod
    def check(cls, section: C, env: StageEnv) -> None:
        """Load/open everything the stage needs; raise :class:`StageError` saying what is wrong."""

    @classmethod
    def prepare(cls, section: C, env: StageEnv) -> None:
        """Build, once per run and before any shard, what every shard task then only loads
        (e.g. the decontamination index), under ``env.output``. Default: nothing."""

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        """HTML for this stage's part of the run report, or None (helpers: winnow.report)."""
        return None

    # The run's end, from the run summary (summary.json's content): each hook returns None when
    # the stage has nothing to say (it did not run). The text is printed literally, never read
    # as markup: it carries paths and values from the data.

    @classmethod
    def summary_line(cls, summary: Mapping[str, Any]) -> str | None:
        """The line under the funnel table on the terminal."""
        return None

    @classmethod
    def summary_markdown(cls, summary: Mapping[str, Any]) -> str | None:
        """The paragraph of summary.md (and of the run's Markdown artifact) after the funnel."""
        return None

    @classmethod
    def done_line(cls, summary: Mapping[str, Any], output: str) -> Sequence[str | tuple[str, str]] | None:
        """What ``winnow run`` says last about the stage's output (``output``: the run's OUTPUT):
        parts as ``winnow.cli.say`` takes them, text or (text, style)."""
        return None

    @classmethod
    def artifact(cls, summary: Mapping[str, Any]) -> StageArtifact | None:
        """A Markdown artifact of its own on the flow run (e.g. the packed dataset's manifest)."""
        return None

    @classmethod
    def deployed_alone(cls, output: str) -> tuple[str, str] | None:
        """(input, output) of the bundled deployment named after this stage, which runs it alone
        on what a run into ``output`` (no trailing slash) wrote: ``winnow deploy --config`` sets
        them. None: no such deployment."""
        return None


@dataclass(frozen=True)
class StageArtifact:
    """A Prefect Markdown artifact a stage adds to the flow run."""

    key: str
    description: str
    markdown: str


class SourceStage(Stage[C]):
    """A stage that reads input files into documents (ingest, read)."""
    kind: ClassVar[Kind] = "source"
    always_on = True
    formats: ClassVar[tuple[str, ...]]  # input formats it reads (see winnow.inputs.input_format)

    def __init__(self, section: C, env: StageEnv) -> None:
        self.cfg = section
        self.env = env

    def read(self, path: str, stats: StageStats) -> Iterator[Document]:
        """Documents of one input file; every record is counted in ``stats`` (kept, dropped or
        an error), and a damaged file never raises: the error is counted, the rest is read."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the reader holds (worker processes); called when its shard ends, also
        on error. Default: nothing."""


Reject = Callable[[str, Document, str], None]  # (stage, document, reason)


class DocumentStage(Stage[C]):
    """A stage that decides per document; counting, timing and rejects are done here."""
    kind: ClassVar[Kind] = "document"
    # Documents handed to ``apply_batch`` at once; None: the whole shard (ranking stages). A stage
    # may set it per instance from its config.
    batch_size: int | None = 1

    def __init__(self, section: C, env: StageEnv) -> None:
        """Load what the stage needs (models are cached per process by the stage's module)."""
        self.cfg = section
        self.env = env
        self.stats = StageStats()

    @classmethod
    def check(cls, section: C, env: StageEnv) -> None:
        cls(section, env)  # building the stage loads every resource it needs

    def apply(self, doc: Document) -> str | None:
        """Keep (None; ``doc`` may be annotated or rewritten) or drop (the reason)."""
        raise NotImplementedError

    def apply_batch(self, docs: list[Document]) -> list[str | None]:
        return [self.apply(d) for d in docs]

    def run(self, docs: Iterable[Document], stats: StageStats, on_reject: Reject | None = None) -> Iterator[Document]:
        """The counting every document stage shares: documents and bytes in (before) and out
        (after the stage rewrote them), a reason per dropped document, time in the stage.

        A document for which ``apply`` raises is dropped as ``error:<ExceptionType>`` (bad
        input; to rejected/ when the stage writes rejects) and the shard goes on: one odd record
        in billions must not fail a shard on every rerun. The log line names the document and
        where it raised, never its text (exception messages often quote it)."""
        self.stats = stats
        self._error_details: dict[int, str] = {}  # id(document) -> the log line of its error
        if self.batch_size == 1:
            for doc in docs:
                n = doc.n_bytes
                stats.take_in(n)
                t0 = time.perf_counter()
                try:
                    reason = self.apply(doc)
                except Exception as exc:  # noqa: BLE001 - counted, see the docstring
                    reason = self._error(doc, exc)
                stats.seconds += time.perf_counter() - t0
                if reason is None:
                    stats.keep(doc.n_bytes)
                    yield doc
                else:
                    self._drop(doc, reason, n, stats, on_reject)
            return
        batch: list[Document] = []
        sizes: list[int] = []

        def flush() -> Iterator[Document]:
            t0 = time.perf_counter()
            reasons = self._apply_guarded(batch)
            stats.seconds += time.perf_counter() - t0
            for doc, n, reason in zip(batch, sizes, reasons, strict=True):
                if reason is None:
                    stats.keep(doc.n_bytes)
                    yield doc
                else:
                    self._drop(doc, reason, n, stats, on_reject)
            batch.clear()
            sizes.clear()

        for doc in docs:
            n = doc.n_bytes
            stats.take_in(n)
            batch.append(doc)
            sizes.append(n)
            if self.batch_size is not None and len(batch) >= self.batch_size:
                yield from flush()
        if batch:
            yield from flush()

    def _apply_guarded(self, batch: list[Document]) -> list[str | None]:
        """``apply_batch``; when it raises, the documents that raise on their own are dropped
        as errors and the batch is decided again without them, from the documents as they were
        (a ranking stage's decisions depend on the whole batch)."""
        before = [(d.text, dict(d.annotations)) for d in batch]
        try:
            return self.apply_batch(batch)
        except Exception:  # noqa: BLE001 - find the bad documents below
            pass

        def restore() -> None:
            for d, (text, notes) in zip(batch, before, strict=True):
                d.text, d.annotations = text, dict(notes)

        restore()
        reasons: list[str | None] = [None] * len(batch)
        for i, d in enumerate(batch):
            try:
                self.apply_batch([d])
            except Exception as exc:  # noqa: BLE001 - counted
                reasons[i] = self._error(d, exc)
        restore()
        good = [i for i, r in enumerate(reasons) if r is None]
        try:
            decided = self.apply_batch([batch[i] for i in good]) if good else []
        except Exception as exc:  # noqa: BLE001 - only together they raise: all are errors
            return [self._error(d, exc) for d in batch]
        for i, r in zip(good, decided, strict=True):
            reasons[i] = r
        return reasons

    def _error(self, doc: Document, exc: Exception) -> str:
        reason = f"error:{type(exc).__name__}"
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        self._error_details[id(doc)] = f"{self.name}: document {doc.id!r} ({doc.url}): {type(exc).__name__}{where}"
        return reason

    def _drop(self, doc: Document, reason: str, n: int, stats: StageStats, on_reject: Reject | None) -> None:
        detail = self._error_details.pop(id(doc), None)
        stats.drop(reason, n, detail, bad_input=detail is not None)
        if on_reject is not None and getattr(self.cfg, "write_rejected", False):
            doc.annotate(self.name, "reason", reason)
            on_reject(self.name, doc, reason)


class Work(Protocol[R_co]):
    """A unit of work a :class:`Mapper` runs: a frozen dataclass whose fields are the unit's
    arguments and whose call does it, so a renamed argument fails the type check where the item
    is built, not in a worker; being a plain dataclass of module level, it pickles to a worker."""

    def __call__(self) -> R_co: ...

    def label(self) -> str:
        """What the unit is about, for its task's name and its failure line ("band 3 range 0")."""
        ...


class Mapper(Protocol):
    """How a corpus stage runs its phases: the flow maps them as Prefect tasks on its task
    runner; tests and benchmarks run them in a loop (:class:`LocalMapper`)."""

    workers: int

    def map(self, items: Sequence[Work[R]], *, name: str) -> list[R]:
        """``item()`` for every item, in parallel where the runner allows; results in order.
        Raises if any item fails (after the runner's retries): the rerun resumes from markers."""
        ...

    def run(self, item: Work[R], *, name: str) -> R:
        """``item()`` once, in a worker (not the flow's process) when workers are processes."""
        ...

    def batches(self, n: int, tasks_per_worker: int | None = None) -> list[list[int]]:
        ...


class LocalMapper:
    """Runs every unit of work in this process, one after the other."""

    def __init__(self, workers: int = 1, batcher: Callable[[int, int | None], list[list[int]]] | None = None) -> None:
        self.workers = workers
        self._batcher = batcher

    def map(self, items: Sequence[Work[R]], *, name: str) -> list[R]:
        return [item() for item in items]

    def run(self, item: Work[R], *, name: str) -> R:
        return item()

    def batches(self, n: int, tasks_per_worker: int | None = None) -> list[list[int]]:
        if self._batcher is not None:
            return self._batcher(n, tasks_per_worker)
        return [list(range(n))] if n else []


@dataclass
class CorpusContext:
    """What a corpus stage gets from the flow: the run's :class:`StageEnv` (``env``, built from
    ``output`` and ``storage_options``, what the stage's ``settings``/``check`` take) plus what
    only running over every shard needs: the mapper of its units of work, the Parquet row-group
    size of the shards it writes and the run's log."""

    output: str
    storage_options: dict[str, Any]
    mapper: Mapper
    rows_per_row_group: int = 2000
    log: Callable[[str], None] = lambda message: None

    @property
    def env(self) -> StageEnv:
        return StageEnv(self.storage_options or {}, self.output)


@dataclass
class CorpusResult:
    """A corpus stage's outcome: the document shards it wrote (input to the next corpus stage;
    None when it writes something else, e.g. packed sequences), its funnel, and a summary for
    summary.json and the report (under ``summary_key``)."""

    outputs: list[ShardRef] | None
    stats: dict[str, StageStats]
    summary: dict[str, Any] | None = None
    summary_key: str | None = None
    final_output: str | None = None  # the folder this stage's output is in
    # Work left undone that a rerun retries (e.g. rephrase requests that failed): the run
    # stops after this stage, writes its summary and exits 1 with this line.
    incomplete: str | None = None


class CorpusStage(Stage[C]):
    """A stage that needs every shard (dedup, rephrase, pack): it maps its own phases."""
    kind: ClassVar[Kind] = "corpus"
    # The folder under OUTPUT holding the document shards it writes (the next corpus stage's
    # input); None when it writes none (packed sequences). A run limited with --stages that does
    # not run the stage reads this folder, when current, instead of rewriting or skipping it.
    output_dir: ClassVar[str | None] = None
    # The key of summary.json that every run has for this stage, null when it did not run (the
    # keys readers of summary.json have always found: dedup, packed). A stage without one puts its
    # summary under its CorpusResult.summary_key, after them, only when it ran.
    listed_summary: ClassVar[str | None] = None

    @classmethod
    def run(cls, section: C, ctx: CorpusContext, inputs: list[ShardRef]) -> CorpusResult:
        raise NotImplementedError


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[Stage[Any]]] = {}


S = TypeVar("S", bound=type[Stage[Any]])


def defines(cls: type[Stage[Any]], method: str) -> bool:
    """Whether a stage defines `method` itself (not the base's no-op): a flow skips a whole
    task round when no enabled stage has anything to prepare."""
    return next(k for k in cls.__mro__ if method in vars(k)) is not Stage


def register(cls: S) -> S:
    """Class decorator: add a stage to the registry (names are unique)."""
    name = cls.name
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"two stages are named {name!r}: {existing.__module__} and {cls.__module__}")
    _REGISTRY[name] = cls
    return cls


def registered() -> list[type[Stage[Any]]]:
    """Every registered stage, in pipeline order."""
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def by_kind(kind: Kind) -> list[type[Stage[Any]]]:
    """The registered stages of one kind, in pipeline order."""
    return [s for s in registered() if s.kind == kind]


def get(name: str) -> type[Stage[Any]]:
    """The stage registered under a name (the config section, the funnel, the markers use it)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in registered())}") from None
