"""Prometheus metrics of one server, in a registry of its own (prometheus_client)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bredos_npu.serve.engine import Engine

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """requests by endpoint and status, request latency, queue depth, inference ms per backend."""

    def __init__(self, engine: Engine) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("bredos_npu_requests", "HTTP requests answered.",
                                ("endpoint", "status"), registry=self.registry)
        self.latency = Histogram("bredos_npu_request_seconds", "Time to answer a request.",
                                 ("endpoint",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inference = Histogram("bredos_npu_inference_seconds", "Interpreter time per image.",
                                   ("model", "backend"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.fallbacks = Counter("bredos_npu_fallbacks", "Models moved to the CPU after an NPU failure.",
                                 ("model",), registry=self.registry)
        Gauge("bredos_npu_queue_depth", "Requests being decoded, waiting or running.",
              registry=self.registry).set_function(lambda: engine.depth)
        Gauge("bredos_npu_queue_capacity", "Requests admitted at once before 503.",
              registry=self.registry).set(engine.capacity)
        on_npu = Gauge("bredos_npu_model_on_npu", "1 when the model runs on the NPU now.", ("model",),
                       registry=self.registry)
        for name, served in engine.models.items():
            on_npu.labels(name).set_function(lambda served=served: served.backend == "npu")

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of the text exposition format."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
