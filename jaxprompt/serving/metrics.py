"""Prometheus metrics of one server (prometheus_client, its own registry per server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

from jaxprompt.serving.batcher import BatchStats

SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "jaxprompt_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "code"],
            registry=r,
        )
        self.examples = Counter(
            "jaxprompt_examples", "Examples predicted, by task", ["task"], registry=r
        )
        self.batches = Counter("jaxprompt_batches", "Batches run", registry=r)
        self.mixed_batches = Counter(
            "jaxprompt_mixed_batches", "Batches holding examples of more than one task", registry=r
        )
        self.batch_size = Histogram(
            "jaxprompt_batch_size", "Examples per batch", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_tasks = Histogram(
            "jaxprompt_batch_tasks", "Distinct tasks per batch", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "jaxprompt_batch_seconds", "Model time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(
            "jaxprompt_queue_depth", "Examples waiting in the queue", registry=r
        )
        self.latency = Histogram(
            "jaxprompt_request_latency_seconds",
            "Latency of /v1/predict requests (arrival to answer)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tasks = Gauge("jaxprompt_tasks", "Prompts in the bank", registry=r)

    def on_batch(self, stats: BatchStats) -> None:
        self.batches.inc()
        self.batch_size.observe(stats.size)
        self.batch_tasks.observe(stats.tasks)
        self.batch_seconds.observe(stats.seconds)
        if stats.tasks > 1:
            self.mixed_batches.inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["ServerMetrics"]
