"""The web page's HTTP side (FastAPI): a plain HTML page and a small JSON API.

    GET  /                         the page (static/index.html, app.js, style.css)
    GET  /api/config               model, limits, examples, whether the model is loaded
    GET  /api/examples/{name}.mp4  a bundled example clip
    POST /api/uploads?name=F       the request body is the clip; answers {"upload": token, ...}
    POST /api/jobs                 {"instruction", "best_of", "upload" | "example"}; answers {"id"}
    GET  /api/jobs/{id}            state, stage, progress, queue position, error, result
    GET  /api/jobs/{id}/source.mp4 | edited.mp4   the clips, for the page's players
    GET  /api/jobs/{id}/download   the edit as an attachment; the server then deletes its copies

Every error is JSON ``{"error": "one line"}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ReviseEnvironmentError, ReviseInputError, is_storage_error
from .editor import EDITED, SOURCE
from .jobs import JobQueue, QueueFull
from .uploads import UploadLimits, check_name, probe

STATIC = Path(__file__).parent / "static"
MAX_INSTRUCTION = 1000
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


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


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

    app = FastAPI(title="revise", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    examples = {e["name"]: e for e in settings.examples}

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        return {"model": settings.model, "ready": jobs.ready, "load_errors": jobs.load_errors,
                "limits": {**dataclasses.asdict(settings.limits), "text": settings.limits.describe()},
                "max_best_of": settings.max_best_of, "max_instruction": MAX_INSTRUCTION,
                "examples": [{k: e[k] for k in ("name", "instruction", "category") if k in e}
                             for e in settings.examples]}

    @app.get("/api/examples/{name}.mp4")
    async def example_clip(name: str):
        if name not in examples:
            return error(404, f"no example '{name}'")
        return FileResponse(examples[name]["path"], media_type="video/mp4")

    @app.post("/api/uploads")
    async def upload(request: Request, name: str = ""):
        limits = settings.limits
        try:
            check_name(name)
        except ReviseInputError as err:
            return error(415, str(err))
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_bytes:
            return error(413, f"the file is {int(declared) / 2**20:.1f} MiB, more than the "
                              f"{limits.max_bytes / 2**20:g} MiB allowed")
        try:
            path = jobs.new_upload_path()
        except QueueFull as err:
            return error(429, str(err))
        try:
            size = 0
            with open(path, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limits.max_bytes:
                        return error(413, f"the file is larger than the {limits.max_bytes / 2**20:g} MiB allowed")
                    f.write(chunk)
            info = await run_in_threadpool(probe, path, limits)
            token = jobs.add_upload(path, info)
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

    @app.post("/api/jobs")
    async def create_job(request: Request):
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return error(400, "send a JSON object: {\"instruction\": ..., \"best_of\": 1, \"upload\" or \"example\": ...}")
        if not isinstance(body, dict):
            return error(400, "send a JSON object")
        instruction = body.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            return error(400, "type an instruction: what should change in the clip?")
        instruction = re.sub(r"\s+", " ", instruction).strip()
        if len(instruction) > MAX_INSTRUCTION:
            return error(400, f"the instruction is {len(instruction)} characters; at most {MAX_INSTRUCTION}")
        best_of = body.get("best_of", 1)
        if isinstance(best_of, bool) or not isinstance(best_of, int) or not 1 <= best_of <= settings.max_best_of:
            return error(400, f"best-of must be a whole number from 1 to {settings.max_best_of}")
        upload, example = body.get("upload"), body.get("example")
        if (upload is None) == (example is None):
            return error(400, "give either an upload or an example, not both or neither")
        if example is not None and (not isinstance(example, str) or example not in examples):
            return error(400, f"no example '{example}'")
        if upload is not None and not isinstance(upload, str):
            return error(400, "the upload token must be text")
        try:
            job = jobs.submit(instruction, best_of, upload=upload,
                              example=examples[example]["path"] if example is not None else None)
        except QueueFull as err:
            return error(429, str(err))
        except ReviseInputError as err:
            return error(400, str(err))
        except OSError as err:
            if not is_storage_error(err):
                raise
            return error(507, "the server cannot store the job: its disk is full or not writable")
        return JSONResponse({"id": job.id, "position": jobs.position(job)}, status_code=202)

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            return error(404, "no such job (results are deleted after download or after a while)")
        out: dict[str, Any] = {"id": job.id, "state": job.state, "stage": job.stage,
                               "progress": round(job.progress, 4), "position": jobs.position(job),
                               "instruction": job.instruction, "best_of": job.best_of, "error": job.error}
        if job.state == "done":
            base = f"/api/jobs/{job.id}"
            out["result"] = {**job.result, "source_url": f"{base}/{SOURCE}", "edited_url": f"{base}/{EDITED}",
                             "download_url": f"{base}/download"}
        return out

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

    @app.get("/api/jobs/{job_id}/{name}")
    async def clip(job_id: str, name: str) -> Response:
        if name not in (SOURCE, EDITED):
            return error(404, "no such file")
        found = job_file(job_id, name)
        return found if isinstance(found, JSONResponse) else FileResponse(found, media_type="video/mp4")

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

    return app
