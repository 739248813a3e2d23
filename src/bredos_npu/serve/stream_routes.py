"""HTTP endpoints of the watched sources: ``/v1/streams`` status, the newest annotated frame as a
JPEG, and a live MJPEG stream any ``<img>`` tag shows without a plugin.

With an API key, send it as for every call, or as ``?api_key=`` (what an ``<img>`` can do).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bredos_npu.serve.streams import LiveStream, Streams

BOUNDARY = "frame"
POLL = 0.02  # seconds between looks for a newer frame


def stream_routes(api: Any, streams: Streams) -> list[Route]:
    """The routes for ``streams``, answering through ``api``'s authorisation and errors."""
    from bredos_npu.serve.app import NotFound, error_response

    def find(request: Request) -> LiveStream:
        api.authorize(request, dict(request.query_params))
        name = request.path_params.get("name")
        if name not in streams.streams:
            raise NotFound(f"No source named {name!r}: see /v1/streams.")
        return streams.streams[name]

    async def listing(request: Request) -> Response:
        try:
            api.authorize(request, dict(request.query_params))
            return JSONResponse({"streams": [s.status() for s in streams.streams.values()]})
        except Exception as exc:
            return error_response(exc)

    async def one(request: Request) -> Response:
        try:
            return JSONResponse(find(request).status())
        except Exception as exc:
            return error_response(exc)

    async def frame(request: Request) -> Response:
        try:
            stream = find(request)
            if stream.jpeg is None:
                return JSONResponse({"success": False, "error": f"No frame from {stream.name} yet "
                                     f"({stream.state}).", "code": 503}, 503, headers={"Retry-After": "1"})
            return Response(stream.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
        except Exception as exc:
            return error_response(exc)

    async def mjpeg(request: Request) -> Response:
        try:
            stream = find(request)
        except Exception as exc:
            return error_response(exc)
        return StreamingResponse(_parts(stream), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    return [Route("/v1/streams", listing), Route("/v1/streams/{name}", one),
            Route("/v1/streams/{name}/frame.jpg", frame), Route("/v1/streams/{name}/mjpeg", mjpeg)]


async def _parts(stream: LiveStream) -> AsyncIterator[bytes]:
    """Each new annotated frame as one part, until the server stops (Starlette ends it when the
    client goes)."""
    seen = -1
    while not stream.closing:
        if stream.version != seen and stream.jpeg is not None:
            seen, data = stream.version, stream.jpeg
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                   .encode() + data + b"\r\n")
        else:
            await asyncio.sleep(POLL)
