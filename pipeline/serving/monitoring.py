"""The server's metrics for Prometheus, at ``GET /monitoring/prometheus/metrics`` as in TensorFlow
Serving, written by ``prometheus_client`` in Prometheus's text format.

- ``nmt_serving_requests_total{model, signature, code}``: requests answered, by HTTP status;
- ``nmt_serving_request_latency_seconds{model, signature}``: a histogram of their latency;
- ``nmt_serving_call_sentences``: a histogram of sentences per call of a model (how much merged);
- ``nmt_serving_queued_sentences``: sentences waiting for a call now;
- ``nmt_serving_model_version{model}``: the version served; ``nmt_serving_model_versions_failed{model}``:
  versions that would not load.

Each application has a registry of its own, so two servers in one process (the tests') never
share a counter.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.serving.batching import Batcher
from pipeline.serving.repository import Repository

PREFIX = "nmt_serving"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
SENTENCE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Versions(Collector):
    """The repository's state, read when scraped: what is served and what failed to load."""

    def __init__(self, repository: Repository):
        self.repository = repository

    def collect(self):
        served = GaugeMetricFamily(
            f"{PREFIX}_model_version", "The version of each model served", labels=["model"]
        )
        for name, servable in sorted(self.repository.servables.items()):
            served.add_metric([name], servable.version)
        failed = GaugeMetricFamily(
            f"{PREFIX}_model_versions_failed", "Versions of each model that did not load", labels=["model"]
        )
        for name, count in sorted(Tally(name for name, _ in self.repository.failed).items()):
            failed.add_metric([name], count)
        yield served
        yield failed


class Monitoring:
    """The metrics of one server: counted by the application, read from the batcher and repository."""

    def __init__(self, repository: Repository, batcher: Batcher):
        self.registry = CollectorRegistry()
        labels = ["model", "signature"]
        self.requests = Counter(f"{PREFIX}_requests", "Requests answered, by HTTP status",
                                [*labels, "code"], registry=self.registry)  # fmt: skip
        self.latency = Histogram(f"{PREFIX}_request_latency_seconds", "Seconds from request to answer",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        sentences = Histogram(f"{PREFIX}_call_sentences", "Sentences in one call of a model",
                              buckets=SENTENCE_BUCKETS, registry=self.registry)  # fmt: skip
        queued = Gauge(f"{PREFIX}_queued_sentences", "Sentences waiting for a call", registry=self.registry)
        queued.set_function(lambda: batcher.queued)
        batcher.on_call = sentences.observe
        self.registry.register(Versions(repository))

    def answered(self, model: str, signature: str, code: int, seconds: float) -> None:
        self.requests.labels(model, signature, str(code)).inc()
        self.latency.labels(model, signature).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
