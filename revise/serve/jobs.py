"""The web page's work: uploads waiting for a job, and jobs run one at a time per device, first come
first served.

Everything lives in one private folder (``mkdtemp``: mode 0700) under names the server makes up
(random tokens); nothing a user sends is ever part of a path. An upload is deleted once its job has
read it, a job's files once its result is downloaded, and anything left after ``ttl_s`` seconds
(uploads never used, results never downloaded). :meth:`JobQueue.close` deletes the whole folder.

Unused uploads never lock anyone out: a new upload is always kept, and room is made by deleting the
oldest unused upload of the same client (by network address) once it holds ``max_uploads_per_client``,
else the oldest unused upload of anyone once the server holds ``max_uploads``. One client can thus
only push out its own uploads; pushing out others' takes ``max_uploads / max_uploads_per_client``
clients (4 by default) flooding at once, and even then the page, which submits its job right after
its upload, loses an upload only in those seconds (and says "upload the clip again").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ..atomic import atomic_folder, fresh_file
from ..errors import ReviseEnvironmentError, ReviseInputError, is_storage_error

log = logging.getLogger("revise.serve")
SWEEP_EVERY_S = 5.0


class QueueFull(Exception):
    """Too many jobs waiting; the user should try again later."""


class JobCancelled(Exception):
    """The server is shutting down."""


class Runner(Protocol):
    """Runs jobs on one device (see :class:`revise.serve.editor.Editor`)."""

    def load(self) -> None: ...

    def run(self, job: "Job") -> dict[str, Any]: ...


@dataclasses.dataclass
class Upload:
    token: str
    path: Path
    info: Any
    client: str = ""
    created: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass
class Job:
    id: str
    instruction: str
    best_of: int
    input_path: Path                 # the clip to edit: an upload (owned, deleted after reading) or a bundled one
    owns_input: bool
    folder: Path                     # the job's own private folder for its results
    state: str = "queued"            # queued -> running -> done | failed; then removed
    stage: str = "waiting in the queue"
    progress: float = 0.0
    error: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)   # what lies outside what the model knows
    result: dict[str, Any] | None = None
    files: dict[str, Path] = dataclasses.field(default_factory=dict)
    created: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None
    cancel: threading.Event | None = None

    def report(self, fraction: float, stage: str) -> None:
        """Progress from the runner; raises :class:`JobCancelled` when the server is stopping."""
        if self.cancel is not None and self.cancel.is_set():
            raise JobCancelled()
        self.progress, self.stage = max(self.progress, min(1.0, float(fraction))), stage

    def release_input(self) -> None:
        """The runner has read the clip: delete the upload now rather than at the end."""
        if self.owns_input:
            self.input_path.unlink(missing_ok=True)


class JobQueue:
    def __init__(self, runners: list[Runner], *, ttl_s: float = 900.0, max_waiting: int = 16,
                 max_uploads: int = 16, max_uploads_per_client: int = 4):
        if not runners:
            raise ValueError("a job queue needs at least one runner")
        self.root = Path(tempfile.mkdtemp(prefix="revise-serve-"))   # mode 0700: this user only
        self.uploads_dir, self.jobs_dir = self.root / "uploads", self.root / "jobs"
        self.uploads_dir.mkdir(mode=0o700)
        self.jobs_dir.mkdir(mode=0o700)
        self.ttl_s, self.max_waiting, self.max_uploads = ttl_s, max_waiting, max_uploads
        self.max_uploads_per_client = min(max_uploads_per_client, max_uploads)
        self._runners = runners
        self._jobs: dict[str, Job] = {}
        self._uploads: dict[str, Upload] = {}
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.load_errors: list[str] = []
        self.loaded = 0

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        for i, runner in enumerate(self._runners):
            t = threading.Thread(target=self._work, args=(runner,), name=f"revise-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the workers (a running job stops at its next step) and delete every file."""
        self._closing.set()
        for _ in self._threads:
            self._pending.put(None)
        for t in self._threads:
            t.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def ready(self) -> bool:
        return self.loaded == len(self._runners)

    # ---- uploads ------------------------------------------------------------------------------
    def new_upload_path(self) -> Path:
        """A fresh empty file under a random name in the private uploads folder."""
        self.sweep()
        return fresh_file(self.uploads_dir, suffix=".part", mode=0o600, nbytes=16)

    def add_upload(self, path: Path, info: Any, client: str = "") -> str:
        """Keep a checked upload (renamed to its content's extension) for a job; return its token. Makes
        room first by deleting the oldest unused upload of ``client``, or of anyone (see above)."""
        token = secrets.token_urlsafe(16)
        final = self.uploads_dir / f"{token}{info.suffix}"
        os.replace(path, final)
        with self._lock:
            evicted = []
            for limit, clients_only in ((self.max_uploads_per_client, True), (self.max_uploads, False)):
                held = [u for u in self._uploads.values() if u.client == client or not clients_only]  # oldest first
                for u in held[:max(0, len(held) - limit + 1)]:        # leave room for the new one
                    evicted.append(self._uploads.pop(u.token))
            self._uploads[token] = Upload(token, final, info, client)
        for u in evicted:
            u.path.unlink(missing_ok=True)
        return token

    # ---- jobs ---------------------------------------------------------------------------------
    def submit(self, instruction: str, best_of: int, *, upload: str | None = None,
               example: Path | None = None, warnings: list[str] | None = None) -> Job:
        """Queue a job on an upload token (the upload is consumed) or a bundled example clip; ``warnings``
        (about the instruction) start its list, to which the runner may add (about the clip)."""
        self.sweep()
        if self._closing.is_set():
            raise QueueFull("the server is shutting down")
        with self._lock:
            waiting = sum(j.state == "queued" for j in self._jobs.values())
            if waiting >= self.max_waiting:
                raise QueueFull(f"{waiting} jobs are already waiting; try again in a while")
            if upload is not None:
                entry = self._uploads.pop(upload, None)
                if entry is None:
                    raise ReviseInputError("that upload is unknown or has expired (unused uploads make room for "
                                           "newer ones): upload the clip again")
                input_path, owns = entry.path, True
            elif example is not None:
                input_path, owns = example, False
            else:
                raise ReviseInputError("choose a clip: upload one or pick an example")
            job_id = secrets.token_urlsafe(16)
            job = Job(job_id, instruction, best_of, input_path, owns, self.jobs_dir / job_id, cancel=self._closing,
                      warnings=list(warnings or []))
            self._jobs[job_id] = job
        self._pending.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        self.sweep()
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs run or wait before this one (0: it is running or finished)."""
        with self._lock:
            if job.state != "queued":
                return 0
            ahead = 0
            for other in self._jobs.values():   # in the order submitted
                if other is job:
                    return ahead
                ahead += other.state in ("queued", "running")
            return ahead

    def remove(self, job: Job) -> None:
        """Delete a job's files now (after its result was downloaded)."""
        shutil.rmtree(job.folder, ignore_errors=True)
        job.release_input()
        job.files = {}
        if job.state in ("done", "failed"):
            job.state, job.stage = "removed", "the server deleted this result"

    def sweep(self) -> None:
        """Delete uploads and finished jobs older than ``ttl_s``; forget removed jobs after as long."""
        now = time.monotonic()
        with self._lock:
            old_uploads = [u for u in self._uploads.values() if now - u.created > self.ttl_s]
            for u in old_uploads:
                del self._uploads[u.token]
            expired = [j for j in self._jobs.values()
                       if j.finished is not None and now - j.finished > self.ttl_s and j.state != "removed"]
            forgotten = [j.id for j in self._jobs.values() if j.state == "removed" and now - j.finished > 2 * self.ttl_s]
            for job_id in forgotten:
                del self._jobs[job_id]
        for u in old_uploads:
            u.path.unlink(missing_ok=True)
        for job in expired:
            self.remove(job)
            job.stage = "expired: results are kept for a limited time"

    # ---- the worker ---------------------------------------------------------------------------
    def _work(self, runner: Runner) -> None:
        try:
            runner.load()
            with self._lock:
                self.loaded += 1
        except Exception as err:  # the model cannot load: every job this worker takes fails, saying why
            log.exception("worker could not load the model")
            self.load_errors.append(f"the model could not be loaded: {err}")
            runner = None
        while True:
            try:
                job = self._pending.get(timeout=SWEEP_EVERY_S)
            except queue.Empty:
                self.sweep()
                continue
            if job is None or self._closing.is_set():
                break
            if job.state != "queued":
                continue
            self._run(runner, job)

    def _run(self, runner: Runner | None, job: Job) -> None:
        job.state, job.stage = "running", "starting"
        state, error, result = "failed", None, None
        try:
            if runner is None:
                raise ReviseEnvironmentError(self.load_errors[-1])
            result = self._run_in_folder(runner, job)
            state = "done"
        except JobCancelled:
            error = "the server stopped before this job finished"
        except (ReviseInputError, ReviseEnvironmentError) as err:
            error = str(err)
        except Exception as err:   # a bug or a device fault: the job fails, the server goes on
            log.exception("job %s failed", job.id)
            if is_storage_error(err):
                error = "the server could not write the result (its disk is full?)"
            else:
                error = f"the edit failed: {type(err).__name__}: {err}".splitlines()[0]
        job.release_input()
        if state == "done":
            job.files = {name: job.folder / name for name in result.pop("files")}
            job.result, job.progress, job.stage = result, 1.0, "done"
        else:
            job.error, job.stage = error, "failed"
        job.finished = time.monotonic()
        job.state = state                                      # last: pollers see a finished job only now

    @staticmethod
    def _run_in_folder(runner: Runner, job: Job) -> dict[str, Any]:
        """``runner.run(job)`` writing into a private temporary folder (:func:`~revise.atomic.atomic_folder`,
        mode 0700) that becomes the job's folder only if the job succeeds: nothing half-written stays."""
        final = job.folder
        try:
            with atomic_folder(final) as tmp:
                job.folder = tmp
                return runner.run(job)
        finally:
            job.folder = final
