"""The HTTP application (Starlette): DeepStack endpoints, the native API, status, metrics, page.

Every answer is JSON, errors included (``{"success": false, "error", "code"}``): never an HTML
error page nor a traceback. Uploads are bounded in size and time before any decoding starts.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bredos_npu.errors import BredosNpuError, ImageError, UsageError
from bredos_npu.serve import deepstack, tasks
from bredos_npu.serve.engine import Busy, Engine, Expired, ServedModel
from bredos_npu.serve.metrics import Metrics

log = logging.getLogger("bredos_npu.serve")
FORM_FIELD_BYTES = 64 * 1024
ENDPOINTS = ("/", "/health", "/ready", "/metrics", "/openapi.json", "/v1/models", "/v1/status",
             "/v1/streams", "/v1/streams/{name}", "/v1/streams/{name}/frame.jpg", "/v1/streams/{name}/mjpeg",
             "/v1/vision/detection", "/v1/vision/custom/list", "/v1/classify", "/v1/detect", "/v1/segment",
             "/v1/pose")


class Problem(Exception):
    """An HTTP error with one sentence for the client."""

    status = 500
    headers: dict[str, str] | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class Unauthorized(Problem):
    status = 401


class NotFound(Problem):
    status = 404


class UploadTimeout(Problem):
    status = 408


class BodyTooLarge(Problem):
    status = 413


class Overloaded(Problem):
    status = 503
    headers = {"Retry-After": "1"}  # noqa: RUF012 (read only)


@dataclass(frozen=True)
class Settings:
    """api_key: required on every API call when set. max_body: bytes per request. timeout: seconds
    from the first byte to the answer. max_predictions: DeepStack rows at most. max_requests:
    requests in progress at once, uploads included (more get 503). started: for uptime."""

    api_key: str | None = None
    max_body: int = 20 * 1024 * 1024
    timeout: float = 30.0
    max_predictions: int = 20
    max_requests: int = 68
    started: float = field(default_factory=time.time)


class Upload(NamedTuple):
    data: bytes | None
    name: str
    fields: dict[str, str]


def problem_reply(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """(status, sentence, headers) for any exception raised while answering."""
    if isinstance(exc, Problem):
        return exc.status, str(exc), exc.headers or {}
    if isinstance(exc, Busy | Expired):
        return 503, f"The server is busy ({exc}): retry shortly.", {"Retry-After": "1"}
    if isinstance(exc, ImageError | UsageError):
        return 400, str(exc), {}
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), {}
    if isinstance(exc, BredosNpuError):
        return 500, str(exc), {}
    return 500, f"Internal error ({type(exc).__name__}); the server log has the details.", {}


def error_response(exc: BaseException, with_reason: bool = True) -> JSONResponse:
    """The JSON error; the API's own errors add their machine-readable ``reason`` (not on the
    DeepStack endpoints, whose clients know DeepStack's three fields)."""
    status, message, headers = problem_reply(exc)
    if status >= 500 and not isinstance(exc, Busy | Expired):
        log.error("%s", message, exc_info=not isinstance(exc, BredosNpuError))
    body = deepstack.error(message, status)
    reason = getattr(exc, "reason", None)
    if with_reason and isinstance(exc, BredosNpuError) and reason is not None and hasattr(reason, "value"):
        body["reason"] = reason.value
    return JSONResponse(body, status, headers=headers)


async def _wait(future: Future[Any], timeout: float | None = None) -> Any:
    return await asyncio.wait_for(asyncio.wrap_future(future), timeout)


class Api:
    """The endpoints, sharing one engine and one set of settings."""

    def __init__(self, engine: Engine, settings: Settings, doctor: Callable[[], dict[str, Any]],
                 metrics: Metrics) -> None:
        self.engine, self.settings, self.doctor, self.metrics = engine, settings, doctor, metrics

    # --- requests ------------------------------------------------------------------------------

    def _given_key(self, request: Request, fields: dict[str, str]) -> str:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.headers.get("x-api-key") or fields.get("api_key", "")

    def authorize(self, request: Request, fields: dict[str, str] | None = None) -> None:
        wanted = self.settings.api_key
        if wanted is None:
            return
        given = self._given_key(request, fields or {})
        # compare_digest takes as long for a wrong key of any length: no timing hints.
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            raise Unauthorized("Incorrect api key")

    async def upload(self, request: Request, url_encoded: bool = False) -> Upload:
        """The image (multipart field ``image``, else the first file; any other body is the image
        itself, whatever its content type: curl's --data-binary says form-urlencoded) and fields.
        ``url_encoded``: read form-urlencoded bodies as forms (DeepStack does)."""
        fields = dict(request.query_params)
        content_type = request.headers.get("content-type", "")
        forms = ("multipart/form-data", "application/x-www-form-urlencoded") if url_encoded \
            else ("multipart/form-data",)
        if content_type.startswith(forms):
            form = await request.form(max_files=4, max_fields=32, max_part_size=FORM_FIELD_BYTES)
            fields.update({k: v for k, v in form.multi_items() if isinstance(v, str)})
            chosen = form.get("image")
            if not isinstance(chosen, UploadFile):
                chosen = next((v for _, v in form.multi_items() if isinstance(v, UploadFile)), None)
            if chosen is None:
                return Upload(None, "", fields)
            return Upload(await chosen.read(), chosen.filename or "upload", fields)
        return Upload(await request.body(), "upload", fields)

    async def infer(self, request: Request, served: ServedModel, data: bytes,
                    options: tasks.Options) -> tuple[Any, dict[str, float]]:
        """Decode, run and post-process ``data`` on ``served``: (result, timings in ms)."""
        request.state.model = served.name
        deadline = request.state.deadline
        started = time.perf_counter()
        release = self.engine.acquire()
        try:
            decoded = await _wait(self.engine.decode(served, data))
            running = served.submit(decoded.tensor, deadline)
            try:
                inference = await _wait(running, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                running.add_done_callback(lambda _: release())  # the slot is free when it is
                release = _nothing
                raise Expired(f"no answer within {self.settings.timeout:g} s") from None
            value = await _wait(self.engine.finish(served, inference, decoded.size, options))
        finally:
            release()
        self.metrics.inference.labels(served.name, inference.backend).observe(inference.inference_ms / 1e3)
        request.state.size = decoded.size
        request.state.backend = inference.backend
        return value, {"preprocess_ms": decoded.decode_ms, "inference_ms": inference.inference_ms,
                       "process_ms": (time.perf_counter() - started) * 1e3}

    def served(self, name: str | None, task: str) -> ServedModel:
        if name:
            found = self.engine.models.get(name)
            if found is None:
                raise NotFound(f"Unknown model {name!r}: this server has "
                               f"{', '.join(self.engine.models) or 'none'}.")
            if found.task != task:
                raise Problem(f"Model {name!r} is served for {found.task}, not {task}.", 400)
            return found
        default = self.engine.default_for(task)
        if default is None:
            raise NotFound(f"No {task} model is loaded on this server (start it with -m MODEL={task}).")
        return default

    # --- DeepStack -----------------------------------------------------------------------------

    async def deepstack(self, request: Request) -> Response:
        try:
            upload = await self.upload(request, url_encoded=True)
            self.authorize(request, upload.fields)
            served = self.served(request.path_params.get("model"), "detect")
            if not upload.data:
                raise Problem("No valid image file found", 400)
            threshold = deepstack.min_confidence(upload.fields.get("min_confidence"))
            found, timings = await self.infer(request, served, upload.data,
                                              tasks.options("detect", threshold=threshold))
            return JSONResponse(deepstack.reply(found, request.state.size, self.settings.max_predictions,
                                                timings["inference_ms"], timings["process_ms"]))
        except ClientDisconnect:
            return self.disconnected(request)
        except Exception as exc:
            return error_response(exc, with_reason=False)

    async def custom_models(self, request: Request) -> Response:
        """CodeProject.AI's list of custom detection models (Blue Iris asks for it)."""
        try:
            upload = await self.upload(request, url_encoded=True) if request.method == "POST" else None
            self.authorize(request, upload.fields if upload else dict(request.query_params))
            names = [m.name for m in self.engine.models.values() if m.task == "detect"]
            return JSONResponse({"success": True, "models": names, "code": 200})
        except ClientDisconnect:
            return self.disconnected(request)
        except Exception as exc:
            return error_response(exc, with_reason=False)

    # --- native API ----------------------------------------------------------------------------

    def native(self, task: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                upload = await self.upload(request)
                self.authorize(request, upload.fields)
                served = self.served(upload.fields.get("model"), task)
                if not upload.data:
                    raise Problem("No image: send it as the multipart field 'image' or as the body.", 400)
                options = tasks.parse_options(task, upload.fields)
                value, timings = await self.infer(request, served, upload.data, options)
                width, height = request.state.size
                return JSONResponse({
                    "image": upload.name, "model": served.name, "task": task,
                    "backend": request.state.backend, "width": width, "height": height,
                    **tasks.document(task, value, options),
                    "preprocess_ms": round(timings["preprocess_ms"], 3),
                    "inference_ms": round(timings["inference_ms"], 3)})
            except ClientDisconnect:
                return self.disconnected(request)
            except Exception as exc:
                return error_response(exc)

        return endpoint

    def disconnected(self, request: Request) -> Response:
        self.engine.count("client_disconnects")
        request.state.disconnected = True
        return Response(status_code=499)  # never reaches the client; for the log and metrics

    # --- information ---------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        ready = bool(self.engine.models)
        return JSONResponse({"ready": ready, "models": list(self.engine.models)}, 200 if ready else 503)

    def model_info(self, served: ServedModel) -> dict[str, Any]:
        from bredos_npu.cli.render import backend_dict
        from bredos_npu.tasks.pose import KEYPOINTS, SKELETON

        model = served.model
        nodes = model.backend.nodes
        info: dict[str, Any] = {
            "name": served.name, "task": served.task, "path": str(model.path),
            "input": "x".join(map(str, model.input_size)), "parallel": served.parallel,
            "default": self.engine.default_for(served.task) is served,
            "backend": {**backend_dict(model.backend), "requested": served.requested,
                        "fallback_reason": served.fallback_reason or model.backend.fallback_reason},
            "npu_share": round(nodes.npu_nodes / nodes.model_nodes, 4) if nodes.model_nodes else 0.0,
            "predicted": served.predicted,
        }
        if served.task == "pose":
            info["keypoints"], info["skeleton"] = list(KEYPOINTS), [list(pair) for pair in SKELETON]
        return info

    async def models(self, request: Request) -> Response:
        try:
            self.authorize(request)
            return JSONResponse({"models": [self.model_info(m) for m in self.engine.models.values()]})
        except Exception as exc:
            return error_response(exc)

    async def status(self, request: Request) -> Response:
        from bredos_npu import __version__

        try:
            self.authorize(request)
            engine = self.engine
            return JSONResponse({
                "version": __version__, "uptime_s": round(time.time() - self.settings.started, 1),
                "doctor": self.doctor(),
                "queue": {"depth": engine.depth, "capacity": engine.capacity},
                "counters": dict(engine.counters),
                "models": [self.model_info(m) for m in engine.models.values()]})
        except Exception as exc:
            return error_response(exc)

    async def prometheus(self, request: Request) -> Response:
        try:
            self.authorize(request)
            body, content_type = self.metrics.render()
            return Response(body, media_type=content_type)
        except Exception as exc:
            return error_response(exc)


def _nothing() -> None:
    pass


def _static(name: str) -> bytes:
    return (files("bredos_npu.serve") / "static" / name).read_bytes()


def _openapi() -> bytes:
    return (files("bredos_npu.serve") / "openapi.json").read_bytes()


class Guard:
    """ASGI middleware: a deadline and a size limit on every request body, a bound on requests in
    progress (uploads included, so memory stays bounded), and the access log.

    A refused body is read to its end and dropped before the answer goes out (a server that
    closes on unread data makes the client's kernel reset the connection, losing the answer).
    """

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, engine: Engine) -> None:
        self.app, self.settings, self.metrics, self.engine = app, settings, metrics, engine
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        deadline = time.monotonic() + self.settings.timeout
        scope.setdefault("state", {})["deadline"] = deadline
        status = 0

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.active += 1  # one event loop: no lock needed
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.settings.max_body:
                await self._drain(receive, deadline)
                await _reply(watched_send, BodyTooLarge(self._too_large()))
            elif self.active > self.settings.max_requests:
                await self._drain(receive, deadline)
                busy = f"{self.settings.max_requests} requests are in progress: retry shortly"
                await _reply(watched_send, Overloaded(busy))
            else:
                await self.app(scope, self._limited(receive, deadline), watched_send)
        except Problem as exc:
            if status == 0:
                await _reply(watched_send, exc)
        finally:
            self.active -= 1
            self._log(scope, status or 499, (time.perf_counter() - started))

    def _too_large(self) -> str:
        return f"The request is larger than the limit of {_size(self.settings.max_body)}."

    def _limited(self, receive: Receive, deadline: float) -> Receive:
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await _receive_before(receive, deadline)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.settings.max_body:
                    if message.get("more_body"):
                        await self._drain(receive, deadline)
                    raise BodyTooLarge(self._too_large())
            return message

        return limited

    async def _drain(self, receive: Receive, deadline: float) -> None:
        while True:
            message = await _receive_before(receive, deadline)
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        state = scope.get("state", {})
        endpoint = _endpoint(scope["path"])
        self.metrics.requests.labels(endpoint, str(status)).inc()
        self.engine.count("requests")
        self.engine.count(f"status_{status // 100}xx")
        self.metrics.latency.labels(endpoint).observe(seconds)
        # The path only: a query string may carry an api_key.
        log.info("%s %s %d model=%s %.1f ms", scope["method"], scope["path"][:200], status,
                 state.get("model", "-"), seconds * 1e3)


async def _receive_before(receive: Receive, deadline: float) -> Message:
    remaining = deadline - time.monotonic()
    try:
        if remaining <= 0:
            raise TimeoutError
        return await asyncio.wait_for(receive(), remaining)
    except TimeoutError:
        raise UploadTimeout("The upload did not arrive in time.") from None


async def _reply(send: Send, exc: Problem) -> None:
    body = json.dumps(deepstack.error(str(exc), exc.status)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _endpoint(path: str) -> str:
    """A bounded label for metrics: the route, not the raw path."""
    if path.startswith("/v1/vision/custom/") and path != "/v1/vision/custom/list":
        return "/v1/vision/custom/{model}"
    if path.startswith("/static/"):
        return "/static"
    if path.startswith("/v1/streams/"):
        suffix = "/" + path.rsplit("/", 1)[1] if path.count("/") > 3 else ""
        return "/v1/streams/{name}" + suffix if "/v1/streams/{name}" + suffix in ENDPOINTS else "other"
    return path if path in ENDPOINTS else "other"


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


def create_app(engine: Engine, settings: Settings,
               doctor: Callable[[], dict[str, Any]] | None = None, lifespan: Any = None,
               streams: Any = None) -> ASGIApp:
    """The ASGI application serving ``engine`` (``lifespan``: Starlette's start/stop hook;
    ``streams``: the watched video sources, :class:`bredos_npu.serve.streams.Streams`)."""
    metrics = Metrics(engine)
    api = Api(engine, settings, doctor or (lambda: {"verdict": "not checked", "npu_ready": False}),
              metrics)
    index, openapi = _static("index.html"), _openapi()

    async def page(request: Request) -> Response:
        return Response(index, media_type="text/html; charset=utf-8")

    async def description(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    routes = [
        Route("/", page), Route("/openapi.json", description),
        Route("/health", api.health), Route("/ready", api.ready), Route("/metrics", api.prometheus),
        Route("/v1/models", api.models), Route("/v1/status", api.status),
        Route("/v1/vision/detection", api.deepstack, methods=["POST"]),
        Route("/v1/vision/custom/list", api.custom_models, methods=["GET", "POST"]),
        Route("/v1/vision/custom/{model}", api.deepstack, methods=["POST"]),
        *[Route(f"/v1/{task}", api.native(task), methods=["POST"]) for task in tasks.TASKS],
        Mount("/static", StaticFiles(packages=[("bredos_npu.serve", "static")]), name="static"),
    ]
    if streams:
        from bredos_npu.serve.stream_routes import stream_routes

        routes += stream_routes(api, streams)

    async def http_error(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error},
                    lifespan=lifespan)
    return Guard(app, settings, metrics, engine)
