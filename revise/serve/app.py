"""The web page's HTTP side (FastAPI): a plain HTML page and a small JSON API.

    GET  /                         the page (static/index.html, app.js, style.css); HEAD too
    GET  /api/config               model, limits, examples, whether the model is loaded, the critic's note
    GET  /api/examples/{name}.mp4  a bundled example clip
    POST /api/check                {"instruction"}: checked as a job would check it, before any upload;
                                   answers {"instruction", "unknown_words", "warnings"}
    POST /api/uploads?name=F       the request body is the clip; answers {"upload": token, ...}
    POST /api/jobs                 {"instruction", "best_of", "upload" | "example"}; answers {"id", "warnings"}
    GET  /api/jobs/{id}            state, stage, progress, queue position, error, warnings, result
    GET  /api/jobs/{id}/source.mp4 | edited.mp4   the clips, for the page's players
    GET  /api/jobs/{id}/download   the edit as an attachment; the server then deletes its copies

Every error is JSON ``{"error": "one line"}`` with a 4xx/5xx status, a bug included (500). JSON
bodies are capped at :data:`MAX_JSON_BYTES` while they are read (413), and every response is written
as ASCII JSON, so no text a client sends (lone surrogates included) can break an answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ReviseEnvironmentError, ReviseInputError, is_storage_error
from .domain import CRITIC_NOTE, vocabulary_warnings
from .editor import EDITED, SOURCE
from .jobs import JobQueue, QueueFull
from .uploads import UploadLimits, check_name, probe

log = logging.getLogger("revise.serve")

STATIC = Path(__file__).parent / "static"
MAX_INSTRUCTION = 1000
MAX_JSON_BYTES = 64 * 2**10          # a job request: an instruction of 1000 characters is at most 6 KB as JSON
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    model: str
    examples: list[dict[str, Any]]      # bundled examples: name, instruction, category, path
    limits: UploadLimits
    max_best_of: int = 4
    unknown_words: Callable[[str], list[str]] | None = None    # the model's tokenizer's (Editor.unknown_words)


class AsciiJSON(JSONResponse):
    """JSON written as ASCII (``\\u`` escapes), so a lone surrogate in echoed text cannot fail the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class Refused(Exception):
    """A request the API answers with ``status`` and one line, raised from anywhere in a route."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> JSONResponse:
    return AsciiJSON({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def load_examples(folder: Path) -> list[dict[str, Any]]:
    """The bundled examples (examples.json beside the clips), each with its clip's path."""
    return [{**e, "path": folder / e["video"]} for e in json.loads((folder / "examples.json").read_text())]


def create_app(jobs: JobQueue, settings: ServeSettings) -> FastAPI:
    """The app; it starts ``jobs``' workers on startup and closes it (deleting every file) on shutdown."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        jobs.start()
        try:
            yield
        finally:
            await run_in_threadpool(jobs.close)

    app = FastAPI(title="revise", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=AsciiJSON)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    add_page_routes(app, jobs, settings)
    add_upload_route(app, jobs, settings.limits)
    add_job_routes(app, jobs, settings)
    add_error_handlers(app)
    return app


def add_page_routes(app: FastAPI, jobs: JobQueue, settings: ServeSettings) -> None:
    examples = {e["name"]: e for e in settings.examples}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        return {"model": settings.model, "ready": jobs.ready, "load_errors": jobs.load_errors,
                "limits": {**dataclasses.asdict(settings.limits), "text": settings.limits.describe()},
                "max_best_of": settings.max_best_of, "max_instruction": MAX_INSTRUCTION, "critic_note": CRITIC_NOTE,
                "examples": [{k: e[k] for k in ("name", "instruction", "category") if k in e}
                             for e in settings.examples]}

    @app.api_route("/api/examples/{name}.mp4", methods=["GET", "HEAD"])
    async def example_clip(name: str):
        if name not in examples:
            return error(404, f"no example '{name}'")
        return FileResponse(examples[name]["path"], media_type="video/mp4")


def add_upload_route(app: FastAPI, jobs: JobQueue, limits: UploadLimits) -> None:
    @app.post("/api/uploads")
    async def upload(request: Request, name: str = ""):
        try:
            check_name(name)
        except ReviseInputError as err:
            return error(415, str(err))
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_bytes:
            return error(413, f"the file is {int(declared) / 2**20:.1f} MiB, more than the "
                              f"{limits.max_bytes / 2**20:g} MiB allowed")
        path = None
        try:
            path = jobs.new_upload_path()
            size = 0
            with open(path, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limits.max_bytes:
                        return error(413, f"the file is larger than the {limits.max_bytes / 2**20:g} MiB allowed")
                    f.write(chunk)
            info = await run_in_threadpool(probe, path, limits)
            token = jobs.add_upload(path, info, request.client.host if request.client else "")
            path = None
        except ReviseInputError as err:
            status = 415 if "not a video" in str(err) else 400
            return error(status, str(err))
        except OSError as err:
            if not is_storage_error(err):
                raise
            return error(507, "the server cannot store the upload: its disk is full or not writable")
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
        return {"upload": token, **dataclasses.asdict(info)}


async def read_json(request: Request, limit: int = MAX_JSON_BYTES) -> Any:
    """The request's JSON body, read no further than ``limit`` bytes (else :class:`Refused` 413)."""
    too_big = Refused(413, f"the request is larger than the {limit // 2**10} KiB a JSON request may be")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    try:
        return json.loads(bytes(body))
    except RecursionError:
        raise Refused(400, "the JSON is nested too deeply") from None
    except ValueError:     # UnicodeDecodeError included
        raise Refused(400, "send a JSON object: {\"instruction\": ..., \"best_of\": 1, "
                           "\"upload\" or \"example\": ...}") from None


def valid_instruction(body: Any) -> str:
    """The instruction of a request's JSON object, whitespace collapsed; :class:`Refused` 400 if unusable."""
    if not isinstance(body, dict):
        raise Refused(400, "send a JSON object")
    instruction = body.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise Refused(400, "type an instruction: what should change in the clip?")
    try:
        instruction.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(400, "the instruction is not valid text: it has a lone UTF-16 surrogate (half a "
                           "character); type it again") from None
    instruction = re.sub(r"\s+", " ", instruction).strip()
    if len(instruction) > MAX_INSTRUCTION:
        raise Refused(400, f"the instruction is {len(instruction)} characters; at most {MAX_INSTRUCTION}")
    return instruction


def instruction_warnings(settings: ServeSettings, instruction: str) -> tuple[list[str], list[str]]:
    """The instruction's words the model does not know, and the warnings the page shows about them."""
    words = settings.unknown_words(instruction) if settings.unknown_words is not None else []
    return words, vocabulary_warnings(words)


def job_request(body: Any, settings: ServeSettings, examples: dict[str, dict]) -> dict[str, Any]:
    """``jobs.submit``'s arguments from a request's JSON object; :class:`Refused` 400 for anything wrong."""
    instruction = valid_instruction(body)
    best_of = body.get("best_of", 1)
    if isinstance(best_of, bool) or not isinstance(best_of, int) or not 1 <= best_of <= settings.max_best_of:
        raise Refused(400, f"best-of must be a whole number from 1 to {settings.max_best_of}")
    upload, example = body.get("upload"), body.get("example")
    if (upload is None) == (example is None):
        raise Refused(400, "give either an upload or an example, not both or neither")
    if example is not None and (not isinstance(example, str) or example not in examples):
        raise Refused(400, f"no example '{example}'")
    if upload is not None and not isinstance(upload, str):
        raise Refused(400, "the upload token must be text")
    return {"instruction": instruction, "best_of": best_of, "upload": upload,
            "example": examples[example]["path"] if example is not None else None,
            "warnings": instruction_warnings(settings, instruction)[1]}


def add_job_routes(app: FastAPI, jobs: JobQueue, settings: ServeSettings) -> None:
    examples = {e["name"]: e for e in settings.examples}

    @app.post("/api/check")
    async def check(request: Request):
        instruction = valid_instruction(await read_json(request))
        words, warnings = await run_in_threadpool(instruction_warnings, settings, instruction)
        return {"instruction": instruction, "unknown_words": words, "warnings": warnings}

    @app.post("/api/jobs")
    async def create_job(request: Request):
        args = await run_in_threadpool(job_request, await read_json(request), settings, examples)
        try:
            job = jobs.submit(args.pop("instruction"), args.pop("best_of"), **args)
        except QueueFull as err:
            return error(429, str(err))
        except ReviseInputError as err:
            return error(400, str(err))
        except OSError as err:
            if not is_storage_error(err):
                raise
            return error(507, "the server cannot store the job: its disk is full or not writable")
        return AsciiJSON({"id": job.id, "position": jobs.position(job), "warnings": job.warnings}, status_code=202)

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            return error(404, "no such job (results are deleted after download or after a while)")
        out: dict[str, Any] = {"id": job.id, "state": job.state, "stage": job.stage,
                               "progress": round(job.progress, 4), "position": jobs.position(job),
                               "instruction": job.instruction, "best_of": job.best_of, "error": job.error,
                               "warnings": list(job.warnings)}
        if job.state == "done":
            base = f"/api/jobs/{job.id}"
            out["result"] = {**job.result, "source_url": f"{base}/{SOURCE}", "edited_url": f"{base}/{EDITED}",
                             "download_url": f"{base}/download"}
        return out

    add_file_routes(app, jobs)


def add_file_routes(app: FastAPI, jobs: JobQueue) -> None:
    def job_file(job_id: str, name: str) -> Path | JSONResponse:
        job = jobs.get(job_id)
        if job is None:
            return error(404, "no such job")
        if name not in job.files or not job.files[name].is_file():
            return error(410 if job.state == "removed" else 404, "this file is not (or no longer) on the server")
        return job.files[name]

    @app.get("/api/jobs/{job_id}/download")
    async def download(job_id: str) -> Response:
        found = job_file(job_id, EDITED)
        if isinstance(found, JSONResponse):
            return found
        job = jobs.get(job_id)
        return FileResponse(found, media_type="video/mp4", filename=f"revise-edit-{job_id[:8]}.mp4",
                            background=BackgroundTask(jobs.remove, job))

    @app.api_route("/api/jobs/{job_id}/{name}", methods=["GET", "HEAD"])
    async def clip(job_id: str, name: str) -> Response:
        if name not in (SOURCE, EDITED):
            return error(404, "no such file")
        found = job_file(job_id, name)
        return found if isinstance(found, JSONResponse) else FileResponse(found, media_type="video/mp4")


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, err: Refused):
        return error(err.status, str(err))

    @app.exception_handler(ReviseEnvironmentError)
    async def environment(request: Request, err: ReviseEnvironmentError):
        return error(507, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):   # unknown routes, wrong methods
        return error(err.status_code, str(err.detail).lower())

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        return error(400, f"bad request: {'.'.join(map(str, first.get('loc', [])))} {first.get('msg', '')}".strip())

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception):    # logged by the server; the client gets one JSON line
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return error(500, f"internal error ({type(err).__name__}); the server goes on: try again")
