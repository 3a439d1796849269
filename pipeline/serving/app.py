"""The HTTP server: TensorFlow Serving's REST API over the exported models, and the page at ``/``.

Endpoints, as in TensorFlow Serving (``/versions/<n>`` optional in each):

- ``GET  /v1/models/<name>``: the version served and its state;
- ``GET  /v1/models/<name>/metadata``: every signature's inputs and outputs;
- ``POST /v1/models/<name>:predict``: row or columnar form (``pipeline.serving.protocol``);

``GET /monitoring/prometheus/metrics`` (``pipeline.serving.monitoring``); and for the page: ``GET /``
(the page itself, one file with no outside fetches), ``GET /page/models`` (the models served, with
their default length penalties) and ``GET /page/stats`` (calls made and examples in them: the mean
batch). Errors are ``{"error": "..."}`` with a 4xx status for what the client can fix, 503 when the
server is too busy, 504 past a request's deadline; the server goes on.

On SIGTERM the server stops accepting connections, answers every request it has accepted (queued
ones too, each within its deadline) and exits with 0.

Starlette, run by uvicorn, carries it: a small, well-kept ASGI stack whose request handling is
asynchronous, which the batcher needs (many requests wait on one call), and which leaves the
REST dialect to us. KServe's server speaks a protocol like it but not TensorFlow Serving's
(no ``signature_name``, no columnar form, no metadata) and brings far more than serving needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pipeline.serving.batching import DEADLINE_SECONDS, Batcher
from pipeline.serving.monitoring import Monitoring
from pipeline.serving.protocol import format_predict, metadata, parse_inputs, parse_json, signature_of, status
from pipeline.serving.repository import Repository, ServingError

log = logging.getLogger("pipeline.serving")

PAGE = Path(__file__).with_name("page.html")
MAX_BODY_BYTES = 1 << 20  # a request body larger than this gets 413 before it is read whole
GONE_POLL_SECONDS = 0.2  # how often a waiting request checks that its client is still there
CLIENT_GONE = 499  # no one reads it: the status nginx logs for a client that closed the connection
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
MODEL_PATH = re.compile(
    r"^(?P<name>[A-Za-z0-9_.\-]+)(?:/versions/(?P<version>\d+))?(?P<tail>:predict|/metadata)?$"
)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ServingError(413, f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServingError(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


async def unless_gone(request: Request, work):
    """``work``'s result, unless the client goes away first: then it is cancelled, and the batcher
    starts no more calls for it."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=GONE_POLL_SECONDS)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            raise ServingError(CLIENT_GONE, "the client closed the connection")


async def poll(repository: Repository, poll_seconds: float) -> None:
    """Forever: new versions loaded in a thread of their own while the batcher goes on serving."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(poll_seconds)
        try:
            for change in await loop.run_in_executor(None, repository.refresh):
                log.warning(change)
        except Exception as problem:  # noqa: BLE001  (a bad folder on disk must not stop serving)
            log.warning("checking %s for new versions failed: %s", repository.base, problem)


def lifespan(repository: Repository, batcher: Batcher, poll_seconds: float):
    """The batcher and the poll run while the application does; they stop after the last answer
    (uvicorn waits for the requests in flight before it ends the lifespan)."""

    @contextlib.asynccontextmanager
    async def running(app: Starlette):
        tasks = [asyncio.create_task(batcher.run()), asyncio.create_task(poll(repository, poll_seconds))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            batcher.executor.shutdown(wait=False, cancel_futures=True)

    return running


def create_app(repository: Repository, batcher: Batcher, poll_seconds: float = 2.0) -> Starlette:
    """The application over ``repository`` (refreshed once already); it looks for new versions every
    ``poll_seconds``."""
    monitoring = Monitoring(repository, batcher)

    async def models(request: Request) -> Response:
        began, labels = time.monotonic(), ["", ""]  # model and signature, once known
        try:
            response = await answer(request, labels)
        except ServingError as problem:
            monitoring.answered(*labels, problem.status, time.monotonic() - began)
            raise
        monitoring.answered(*labels, response.status_code, time.monotonic() - began)
        return response

    async def answer(request: Request, labels: list[str]) -> Response:
        path = MODEL_PATH.match(request.path_params["rest"])
        if path is None:
            raise ServingError(404, f"no such endpoint: {request.url.path}")
        version = int(path["version"]) if path["version"] else None
        servable = repository.get(path["name"], version)
        labels[0] = servable.name  # only names served: a label per unknown name would grow without end
        tail = path["tail"]
        if tail == ":predict":
            if request.method != "POST":
                raise ServingError(405, "predict takes POST")
            body = parse_json(await read_body(request))
            signature = signature_of(servable, body)
            labels[1] = signature.name
            inputs, form = parse_inputs(signature, body)
            outputs = await unless_gone(request, batcher.submit(servable, signature, inputs))
            return JSONResponse(format_predict(outputs, form))
        if request.method != "GET":
            raise ServingError(405, f"{request.url.path} takes GET")
        return JSONResponse(metadata(servable) if tail == "/metadata" else status(servable))

    async def prometheus(request: Request) -> Response:
        return Response(monitoring.text(), media_type=PROMETHEUS_TEXT)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    async def page_models(request: Request) -> JSONResponse:
        served = [{"name": s.name, "version": s.version, "default_length_penalty": s.default_length_penalty,
                   "align": "align" in s.signatures}
                  for s in sorted(repository.servables.values(), key=lambda s: s.name)]  # fmt: skip
        return JSONResponse({"models": served})

    async def page_stats(request: Request) -> JSONResponse:
        return JSONResponse(
            {"batches": batcher.batches, "examples": batcher.examples, "queued": batcher.queued}
        )

    async def serving_error(request: Request, problem: ServingError) -> JSONResponse:
        return error(problem.status, str(problem))

    async def http_error(request: Request, problem: HTTPException) -> JSONResponse:
        return error(problem.status_code, problem.detail)

    async def server_error(request: Request, problem: Exception) -> JSONResponse:
        log.exception("request to %s failed", request.url.path)
        return error(500, f"{type(problem).__name__}: {problem}")

    routes = [
        Route("/", page),
        Route("/page/models", page_models),
        Route("/page/stats", page_stats),
        Route("/monitoring/prometheus/metrics", prometheus),
        Route("/v1/models/{rest:path}", models, methods=["GET", "POST"]),
    ]
    handlers = {ServingError: serving_error, HTTPException: http_error, Exception: server_error}
    return Starlette(
        routes=routes, exception_handlers=handlers, lifespan=lifespan(repository, batcher, poll_seconds)
    )


def serve(
    model_dir: Path,
    names: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8501,
    max_batch_size: int = 64,
    batch_wait_ms: float = 5.0,
    max_queued: int = 2048,
    poll_seconds: float = 2.0,
    deadline_ms: float = DEADLINE_SECONDS * 1000,
) -> None:
    """Serves the newest version of every model under ``model_dir`` (or of ``names``) until stopped."""
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)
    repository = Repository(model_dir, names)
    for change in repository.refresh():  # before the port opens: a bad folder is one line at once
        log.warning(change)
    if not repository.servables:
        from pipeline.errors import UserError

        raise UserError(f"no exported model under {model_dir}: make export VARIANT=... writes one")
    batcher = Batcher(max_batch_size, batch_wait_ms / 1000, max_queued, deadline_ms / 1000)
    app = create_app(repository, batcher, poll_seconds)
    log.warning("serving %s at http://%s:%d/", ", ".join(sorted(repository.servables)), host, port)
    # uvicorn stops accepting on SIGTERM, waits for the requests accepted (each answered within its
    # deadline, so this bound is never reached by a request), then raises SIGTERM again to the
    # handler it found: this one, which lets the process exit with 0 instead of dying by it.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=deadline_ms / 1000 + 5)  # fmt: skip
    uvicorn.Server(config).run()
