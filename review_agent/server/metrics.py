"""``GET /metrics`` in Prometheus text format (prometheus-client).

Two kinds of figures, because the receiver is one of several stateless processes and the
reviews run in other processes on other machines:

* this process's own: deliveries by event and outcome, and how long answering took;
* the fleet's, read from Postgres at scrape time: jobs by state (queued, running, failed, ...),
  stalled jobs retried, reviews finished, model calls and tokens. Any copy of the receiver
  reports the same fleet figures, so a scrape of any one of them is enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

JOB_STATES = {
    "todo": "queued",
    "doing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "aborted": "aborted",
}


class FleetCollector(Collector):
    """Serves the figures last read from Postgres (``update`` is called before each scrape)."""

    def __init__(self) -> None:
        self.jobs: dict[str, int] = {}
        self.totals: dict[str, int] = {}

    def update(self, jobs: dict[str, int], totals: dict[str, int]) -> None:
        self.jobs = jobs
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily("review_agent_jobs", "Review and command jobs by state", labels=["state"])
        for state in JOB_STATES.values():
            g.add_metric([state], self.jobs.get(state, 0))
        yield g
        described = {
            "review_agent_jobs_stalled_retried": "Jobs of dead workers retried by the stalled-job task",
            "review_agent_reviews_finished": "Reviews finished by the workers",
            "review_agent_model_calls": "Model calls made by the workers' reviews",
        }
        for name, doc in described.items():
            c = CounterMetricFamily(name, doc)
            c.add_metric([], self.totals.get(name, 0))
            yield c
        t = CounterMetricFamily(
            "review_agent_model_tokens", "Model tokens of the workers' reviews", labels=["kind"]
        )
        t.add_metric(["input"], self.totals.get("input_tokens", 0))
        t.add_metric(["output"], self.totals.get("output_tokens", 0))
        yield t


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "review_agent_webhook_deliveries",
            "Webhook deliveries received, by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "review_agent_webhook_seconds",
            "Time to answer a webhook delivery",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.fleet = FleetCollector()
        self.registry.register(self.fleet)

    def render(self) -> bytes:
        return generate_latest(self.registry)


JOBS_BY_STATE = "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
RUN_TOTALS = (
    "SELECT count(*) FILTER (WHERE outcome = 'finished'), coalesce(sum(model_calls), 0), "
    "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) FROM app_review_runs"
)
STALLED_RETRIED = "SELECT coalesce(max(value), 0) FROM app_counters WHERE name = 'stalled_retried'"


async def read_fleet(conn: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Jobs by state and the fleet's totals, from Postgres (three small queries)."""
    jobs: dict[str, int] = {}
    cur = await conn.execute(JOBS_BY_STATE)
    for status, n in await cur.fetchall():
        jobs[JOB_STATES.get(status, status)] = int(n)
    cur = await conn.execute(RUN_TOTALS)
    finished, calls, tin, tout = await cur.fetchone()
    cur = await conn.execute(STALLED_RETRIED)
    (stalled,) = await cur.fetchone()
    totals = {
        "review_agent_reviews_finished": int(finished),
        "review_agent_model_calls": int(calls),
        "input_tokens": int(tin),
        "output_tokens": int(tout),
        "review_agent_jobs_stalled_retried": int(stalled),
    }
    return jobs, totals
