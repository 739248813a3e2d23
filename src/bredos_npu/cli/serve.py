"""``bredos-npu serve``: parse options, load the models, run the server (logic in serve/)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import click

from bredos_npu.errors import Reason, UsageError
from bredos_npu.runtime.backends import BACKENDS

API_KEY_ENV = "BREDOS_NPU_API_KEY"
SIZE_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "k": 1 << 10, "mb": 1 << 20, "m": 1 << 20,
              "gb": 1 << 30, "g": 1 << 30}


def parse_size(text: str) -> int:
    """'20MB', '64KB', '1048576' → bytes (binary units)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = found.group(2).lower() if found else ""
    if not found or unit not in SIZE_UNITS or float(found.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a size like 20MB, 512KB or 1048576")
    return int(float(found.group(1)) * SIZE_UNITS[unit])


def read_api_key(api_key: str | None, api_key_file: str | None) -> str | None:
    """The key from --api-key, --api-key-file or $BREDOS_NPU_API_KEY (None: no key)."""
    if api_key and api_key_file:
        raise click.UsageError("choose one of --api-key and --api-key-file")
    if api_key_file:
        path = Path(api_key_file)
        try:
            key = path.read_text(encoding="utf-8").strip() if path.is_file() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read the API key file {path}: {exc}.") from None
        if key is None:
            raise UsageError(f"The API key file {path} does not exist or is not a regular file.")
    else:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        raise UsageError("The API key is empty: give a non-empty key, or none.")
    return key.strip() if key is not None else None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; then set an API key).")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="Port (0: any free port, printed at start).")
@click.option("-m", "--model", "models", multiple=True, metavar="MODEL[=TASK]",
              help="A .tflite file or zoo name, optionally with its task (classify, detect, segment, "
                   "pose); repeat for more. Default: the zoo's SSD MobileNet V1 and the bundled classifier.")
@click.option("--api-key", help=f"Key every API call must carry (also ${API_KEY_ENV}).")
@click.option("--api-key-file", type=click.Path(dir_okay=False), help="Read the key from this file.")
@click.option("--parallel", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Interpreters per model (3 for the RK3588's NPU cores).")
@click.option("-t", "--threads", type=click.IntRange(min=1),
              help="CPU threads per interpreter (default: one per core of the fastest cluster).")
@click.option("-b", "--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="npu: Teflon delegate; cpu: XNNPACK; auto: npu if it works.")
@click.option("--delegate", metavar="PATH", help="External delegate library (default: libteflon.so).")
@click.option("--max-body", default="20MB", show_default=True, help="Largest request accepted (413 above).")
@click.option("--queue", "queue_size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Requests decoded, waiting or running at once; more get 503 with Retry-After "
                   "(and at most 4 x N + 4 in progress, uploads included).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds from a request's first byte to its answer.")
@click.option("--max-predictions", type=click.IntRange(min=1), default=20, show_default=True,
              help="DeepStack replies list at most this many objects (Frigate reads 20).")
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds in-flight requests get to finish on SIGTERM/SIGINT.")
@click.option("--source", "sources", multiple=True, metavar="NAME=URL",
              help="Watch a video source continuously with the detection model (rtsp://, http(s)://, "
                   "/dev/videoN or a file; repeatable): live at /, status at /v1/streams (needs [video]).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, models: tuple[str, ...], api_key: str | None,
          api_key_file: str | None, parallel: int, threads: int | None, backend: str,
          delegate: str | None, max_body: str, queue_size: int, timeout: float, max_predictions: int,
          grace: float, sources: tuple[str, ...]) -> None:
    """Serve models over HTTP: DeepStack-compatible detection (Frigate, Home Assistant, Blue Iris),
    a native JSON API for every task, Prometheus metrics and a web page at /.

    Binds 127.0.0.1 unless --host says otherwise. Stops cleanly on SIGTERM or Ctrl-C.
    With --source NAME=URL it also watches cameras: detections drawn live on the page (MJPEG),
    counters and latency at /v1/streams.
    """
    from bredos_npu.cli.common import debugging
    from bredos_npu.serve import require_extra

    require_extra()
    from bredos_npu.serve.app import Settings
    from bredos_npu.serve.engine import Engine
    from bredos_npu.serve.server import (
        LoadOptions,
        ModelSpec,
        configure_logging,
        default_specs,
        load_models,
        run,
    )

    body_limit = parse_size(max_body)
    key = read_api_key(api_key, api_key_file)
    specs = [ModelSpec.parse(text) for text in models] or default_specs()
    watched = source_specs(sources)
    debug = debugging(ctx)
    configure_logging(debug)
    served = load_models(specs, LoadOptions(backend, threads, delegate, parallel, debug))
    loaded_at = time.perf_counter()
    engine = Engine(served, capacity=queue_size)
    streams = watch(watched, engine)
    # Uploads are read before a queue slot is taken: bound them too, a few per slot.
    settings = Settings(api_key=key, max_body=body_limit, timeout=timeout, max_predictions=max_predictions,
                        max_requests=4 * queue_size + 4)
    ctx.exit(run(engine, settings, host, port, grace, loaded_at, streams))


def source_specs(sources: tuple[str, ...]) -> list:
    """``NAME=URL`` options, checked before any model loads; the [video] extra when there are any."""
    from bredos_npu.serve.streams import StreamSpec

    specs = [StreamSpec.parse(text) for text in sources]
    names = [spec.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"There are two sources named {name!r}: give each its own name.",
                             reason=Reason.BAD_VALUE, option="source", value=name)
    if specs:
        from bredos_npu.runtime.video import _av

        _av()  # a missing [video] extra is exit 8 now, not a failing thread later
    return specs


def watch(specs: list, engine: object) -> object:
    """The watched sources, each with its own interpreter of the first detection model."""
    from bredos_npu.serve.streams import LiveStream, Streams

    if not specs:
        return None
    detector = engine.default_for("detect")  # type: ignore[attr-defined]
    if detector is None:
        raise UsageError("--source needs a detection model: add -m MODEL=detect.", reason=Reason.BAD_VALUE,
                         option="source")
    return Streams([LiveStream(spec.name, spec.url, detector.model.clone()) for spec in specs])
