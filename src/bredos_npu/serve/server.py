"""Loading the served models and running the HTTP server until SIGTERM/SIGINT."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn

from bredos_npu.errors import ModelError, UsageError
from bredos_npu.serve import tasks
from bredos_npu.serve.app import Settings, create_app
from bredos_npu.serve.engine import Engine, ServedModel

log = logging.getLogger("bredos_npu.serve")
class ModelSpec(NamedTuple):
    """``MODEL[=TASK]``: a .tflite path or zoo name (None: the bundled classifier), and its task."""

    model: str | None
    task: str | None
    name: str

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        model, _, task = text.rpartition("=")
        if not model or task not in tasks.TASKS:
            if "=" in text and not Path(text).exists():
                raise UsageError(f"Unknown task in {text!r}: use MODEL=TASK with a task among "
                                 f"{', '.join(tasks.TASKS)}.")
            model, task = text, ""
        looks_like_path = model.endswith(".tflite") or "/" in model
        return cls(model, task or None, Path(model).stem if looks_like_path else model)


def default_specs() -> list[ModelSpec]:
    """The zoo's default detector and the bundled classifier."""
    from bredos_npu.tasks import registry

    detector = registry.get("detect").default_model
    # the bundled classifier is the zoo's mobilenet-v2
    return [ModelSpec(detector, "detect", detector), ModelSpec(None, "classify", "mobilenet-v2")]


@dataclass(frozen=True)
class LoadOptions:
    backend: str = "auto"
    threads: int | None = None
    delegate: str | None = None
    parallel: int = 1
    debug: bool = False


def load_models(specs: list[ModelSpec], options: LoadOptions) -> list[ServedModel]:
    """Load every model with its interpreters; ModelError (and the loader's errors) with one
    sentence when one cannot be loaded or does not fit its task."""
    from bredos_npu.runtime.model import load

    served: list[ServedModel] = []
    for spec in specs:
        model = load(spec.model, options.backend, delegate=options.delegate, threads=options.threads,
                     debug=options.debug)
        task = spec.task or tasks.guess(model)
        if task is None:
            raise ModelError(f"Cannot tell which task {spec.model} is for: give it as "
                             f"-m {spec.model}=TASK ({', '.join(tasks.TASKS)}).")
        tasks.check(task, model)
        name = _unique(spec.name, {s.name for s in served})
        if model.backend.fallback_reason:
            log.warning("%s: %s; running on the CPU", name, model.backend.fallback_reason.rstrip("."))
        served.append(ServedModel(name, task, model, options.parallel))
    return served


def _unique(name: str, taken: set[str]) -> str:
    number, candidate = 1, name
    while candidate in taken:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


class Background:
    """The doctor's verdict and inspect's predictions, computed after the server is listening."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.report: dict[str, Any] = {"verdict": "checking", "npu_ready": False}
        self.thread = threading.Thread(target=self._run, name="doctor", daemon=True)

    def _run(self) -> None:
        from bredos_npu.doctor import diagnose
        from bredos_npu.models.inspection.analysis import inspect_model

        for served in self.engine.models.values():
            try:
                served.predicted = inspect_model(served.model.path).summary
            except Exception as exc:  # a prediction is informative only
                served.predicted = f"unknown ({type(exc).__name__})"
        try:
            report = diagnose()
            self.report = {"verdict": report.verdict, "npu_ready": report.npu_ready}
        except Exception as exc:
            self.report = {"verdict": f"doctor failed: {exc}", "npu_ready": False}

    def __call__(self) -> dict[str, Any]:
        return self.report


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); UsageError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=256)
    except OSError as exc:
        raise UsageError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None


class _Server(uvicorn.Server):
    """uvicorn's server, telling the watched sources to stop as soon as a stop signal arrives
    (their MJPEG viewers would otherwise hold the graceful shutdown for its whole grace time)."""

    def __init__(self, config: uvicorn.Config, on_exit: Any) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)


def run(engine: Engine, settings: Settings, host: str, port: int, grace: float, loaded_at: float,
        streams: Any = None) -> int:
    """Serve until SIGTERM or SIGINT; in-flight requests get ``grace`` seconds to finish.

    ``streams`` (:class:`bredos_npu.serve.streams.Streams`): video sources watched meanwhile.
    """

    doctor = Background(engine)
    sock = bind(host, port)
    address = sock.getsockname()
    url_host = f"[{address[0]}]" if ":" in address[0] else address[0]

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        log.info("listening on http://%s:%d (%s), ready %.0f ms after the models loaded",
                 url_host, address[1], ", ".join(f"{m.name}: {m.task} on {m.backend}"
                                                 for m in engine.models.values()),
                 (time.perf_counter() - loaded_at) * 1e3)
        doctor.thread.start()
        if streams:
            streams.start()
            log.info("watching %s", ", ".join(f"{s.name} ({s.status()['url']})"
                                             for s in streams.streams.values()))
        yield
        log.info("stopping: finishing the requests in flight")

    if settings.api_key is None and not is_loopback(host):
        log.warning("listening on %s without an API key: anyone who can reach this address can use "
                    "it (set --api-key-file)", host)
    app = create_app(engine, settings, doctor, lifespan=lifespan, streams=streams)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=grace, timeout_keep_alive=5,
                            server_header=False, limit_max_requests=None)
    server = _Server(config, streams.stop if streams else lambda: None)
    # uvicorn re-raises the signal it stopped on once it is done: a no-op handler makes that
    # re-raise harmless, so a requested stop ends with status 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    # An inference thread coming back from invoke (which runs without the GIL) waits for the GIL
    # up to the switch interval while HTTP parsing or decoding holds it: keep that wait short.
    sys.setswitchinterval(0.001)
    try:
        server.run(sockets=[sock])
    finally:
        if streams:
            streams.close()
        engine.close()
        sock.close()
    log.info("stopped")
    return 0


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted.

    A handler holding the stream it was made with breaks once that stream is replaced and closed
    (a second server started in the same process, or pytest's capture between tests).
    """

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(debug: bool) -> None:
    """One handler on the server's logger, however often a server is started in this process."""
    for old in [h for h in log.handlers if isinstance(h, _CurrentStderr)]:
        log.removeHandler(old)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    logging.getLogger("uvicorn.error").setLevel(logging.DEBUG if debug else logging.WARNING)
