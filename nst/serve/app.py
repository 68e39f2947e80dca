"""The FastAPI application: the page, and the JSON API it uses (docs/serve.md).

Every error is ``{"error": "<one line>"}`` with a 4xx status (503 when the queue is full; 500 for
the server's own failures). Guards sit in front of the routes: the ``Host`` header must name this
server (a page of another site that rebinds its DNS name to 127.0.0.1 is refused), a request a
browser marks as coming from another site (``Origin``, ``Sec-Fetch-Site``) is refused, so no page
the user visits can fill the queues, and a request body over ``max_upload_mb`` is refused with 413
before it is read to the end.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from nst.errors import NSTError
from nst.inference.styles import pick
from nst.serve.catalog import Catalog
from nst.serve.errors import ApiError
from nst.serve.gatys import INITS, run_gatys
from nst.serve.jobs import GatysJobs, Worker
from nst.serve.uploads import decode_upload, png_bytes

STATIC = Path(str(resources.files("nst.serve") / "static"))
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    models: str | None = None            # a folder of more .safetensors models
    allowed_hosts: tuple[str, ...] = ()  # more names the Host header may carry (behind a proxy)
    max_upload_mb: float = 25.0
    max_pixels: int = 40_000_000         # decoded width x height (the decoder's bomb guard)
    workers: int = 1                     # stylize/upscale threads
    queue: int = 8                       # requests waiting or running before 503
    keep_models: int = 4
    gatys_queue: int = 2
    gatys_max_iterations: int = 500
    gatys_max_side: int = 512
    vgg_weights: str | None = None       # the Gatys loss's VGG weights (null: each model's own)
    backend: str = "auto"


def _hosts(s: Settings) -> set[str]:
    names = {s.host, *s.allowed_hosts}
    if s.host in LOOPBACK or s.host in ("0.0.0.0", "::"):
        names.update(LOOPBACK)
    return {n.strip("[]").lower() for n in names}


def _host_name(host: str) -> str | None:
    """The name of a ``Host`` value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``); None when it
    is none of those."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::\d+)?|([^:\[\]/]+)(?::\d+)?", host.strip())
    return None if match is None else (match.group(1) or match.group(2)).lower()


class Guards:
    """ASGI middleware: the Host check, then the byte limit on request bodies."""

    def __init__(self, app, hosts: set[str], max_bytes: int) -> None:  # noqa: D107
        self.app, self.hosts, self.max_bytes = app, hosts, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if _host_name(host) not in self.hosts:
            return await _send_error(send, 400, f"Host header {host!r} is not this server's address")
        origin = headers.get("origin")
        if headers.get("sec-fetch-site") == "cross-site" or (
                origin is not None and _host_name(origin.split("://", 1)[-1]) not in self.hosts):
            return await _send_error(send, 403, f"a request from another site ({origin or 'cross-site'}) "
                                                "is refused: use the page this server serves")
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            return await _send_error(send, 413, f"upload of {int(length):,} bytes is over the limit of "
                                                f"{self.max_bytes:,} bytes (max_upload_mb)")
        seen = 0

        async def counted():  # a body without Content-Length (chunked) is counted as it arrives
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise ApiError(413, f"upload is over the limit of {self.max_bytes:,} bytes (max_upload_mb)")
            return message

        return await self.app(scope, counted, send)


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _mix(value: str | None) -> list[float] | None:
    if value in (None, ""):
        return None
    try:
        mix = json.loads(value) if value.strip().startswith("[") else [float(v) for v in value.split(",")]
        return [float(v) for v in mix]
    except (ValueError, TypeError):
        raise ApiError(422, f"style_mix={value!r}: give weights as 0.5,0.5 or [0.5, 0.5]") from None


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    s = settings or Settings()
    catalog = catalog or Catalog(s.models, keep=s.keep_models, backend=s.backend)
    worker, gatys_worker = Worker(s.workers, s.queue), Worker(1, s.gatys_queue, "nst-gatys")
    jobs = GatysJobs(gatys_worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for job in jobs.jobs.values():  # a running Gatys job stops after its current step
            job.cancel.set()
        worker.close()
        gatys_worker.close()

    app = FastAPI(title="nst", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.catalog, app.state.worker, app.state.jobs = catalog, worker, jobs
    max_bytes = int(s.max_upload_mb * 1024 * 1024)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(NSTError)
    async def nst_error(request: Request, e: NSTError) -> JSONResponse:  # a bad option value
        return JSONResponse({"error": " ".join(str(e).split())}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, e: Exception) -> JSONResponse:  # ours, not the client's
        return JSONResponse({"error": f"the server failed: {type(e).__name__}: "
                                      f"{' '.join(str(e).split())[:200]}"}, status_code=500)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models")
    async def models() -> list[dict[str, Any]]:
        return catalog.listing()

    def picture(out, alpha, seconds: float) -> Response:
        return Response(png_bytes(out, alpha), media_type="image/png",
                        headers={"X-NST-Seconds": f"{seconds:.4f}",
                                 "X-NST-Size": f"{out.shape[-1]}x{out.shape[-2]}"})

    @app.post("/api/stylize")
    async def stylize(image: Annotated[UploadFile, File()], model: Annotated[str, Form()],
                      style: Annotated[str | None, Form()] = None,
                      style_mix: Annotated[str | None, Form()] = None,
                      strength: Annotated[float, Form(ge=0, le=1)] = 1.0,
                      preserve_color: Annotated[bool, Form()] = False,
                      max_side: Annotated[int | None, Form(ge=16)] = None):
        card = catalog.card(model)
        if card["kind"] == "upscale":
            raise ApiError(422, f"model {model!r} is a super-resolution model: POST /api/upscale")
        options: dict[str, Any] = {"strength": strength, "preserve_color": preserve_color}
        if style not in (None, ""):
            options["style"] = int(style) if style.strip().isdigit() else style
        if style_mix not in (None, ""):
            options["style_mix"] = _mix(style_mix)
        data, name = await image.read(), image.filename  # within max_upload_mb: Guards counted the body

        def work() -> Response:
            img, alpha = decode_upload(data, name, s.max_pixels, max_side)
            net = catalog.model(model)
            start = time.perf_counter()
            out = net(img, **options)
            return picture(out, alpha, time.perf_counter() - start)

        return await worker.run(work)

    @app.post("/api/upscale")
    async def upscale(image: Annotated[UploadFile, File()], model: Annotated[str, Form()]):
        card = catalog.card(model)
        if card["kind"] != "upscale":
            raise ApiError(422, f"model {model!r} is a style model: POST /api/stylize")
        data, name = await image.read(), image.filename

        def work() -> Response:
            img, alpha = decode_upload(data, name, s.max_pixels)
            net = catalog.model(model)
            if img.shape[-1] * img.shape[-2] * card["factor"] ** 2 > s.max_pixels:
                raise ApiError(422, f"{name}: x{card['factor']} of {img.shape[-1]}x{img.shape[-2]} px is "
                                    f"over the max_pixels limit of {s.max_pixels:,}")
            start = time.perf_counter()
            out = net(img)
            if alpha is not None:
                from nst.io.image import resize

                alpha = resize(alpha, size=tuple(out.shape[-2:]))
            return picture(out, alpha, time.perf_counter() - start)

        return await worker.run(work)

    @app.post("/api/gatys", status_code=202)
    async def gatys_start(image: Annotated[UploadFile, File()], model: Annotated[str, Form()],
                          style: Annotated[str | None, Form()] = None,
                          iterations: Annotated[int, Form(ge=1)] = 100,
                          max_side: Annotated[int, Form(ge=32)] = 256,
                          init: Annotated[str, Form()] = "noise"):
        card = catalog.card(model)
        if card["kind"] == "upscale":
            raise ApiError(422, f"model {model!r} is a super-resolution model: no Gatys reference")
        if init not in INITS:
            raise ApiError(422, f"init={init!r}: choose from {', '.join(INITS)}")
        if iterations > s.gatys_max_iterations or max_side > s.gatys_max_side:
            raise ApiError(422, f"at most {s.gatys_max_iterations} iterations at {s.gatys_max_side} px "
                                "on this server")
        if card["kind"] == "multistyle" and style not in (None, ""):
            pick(card["styles"], style)  # NSTError -> 422 now, not a failed job later
        data = await image.read()
        # decoded on the bounded worker: a full queue answers 503 before any pixel is decoded
        content, _ = await worker.run(decode_upload, data, image.filename, s.max_pixels, max_side)
        path = catalog.paths[model]
        job = jobs.start(iterations, lambda j: run_gatys(j, content, path, style, init, s.vgg_weights))
        return job.status()

    @app.get("/api/gatys/{job_id}")
    async def gatys_status(job_id: str) -> dict[str, Any]:
        return jobs.get(job_id).status()

    @app.get("/api/gatys/{job_id}/image")
    async def gatys_image(job_id: str) -> Response:
        job = jobs.get(job_id)
        if job.image is None:
            raise ApiError(404, f"Gatys job {job_id!r}: no image yet (state {job.state})")
        return Response(png_bytes(job.image), media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.delete("/api/gatys/{job_id}")
    async def gatys_cancel(job_id: str) -> dict[str, Any]:
        job = jobs.get(job_id)
        job.cancel.set()
        if job.state == "queued":
            job.state = "cancelled"
        return job.status()

    app.add_middleware(Guards, hosts=_hosts(s), max_bytes=max_bytes)
    return app
