"""`GET /metrics`: the town in Prometheus' text format (prometheus_client), read from Redis at
each scrape by a custom collector: tasks and agents by state (gauges, as they are now); finished
attempts and failures by exit class (counters), dispatch latency (a task's claim minus the moment
it became ready) and apply duration (the `seconds` of each `apply` event) as histograms, each
grown by what a scrape sees first (attempt records, claims, events) and never lowered while the
server runs (a prune deletes records; counters must not go down). Reads only.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response

from ..control.report import STATES, agents_report
from ..control.session import Session
from ..control.workreport import ledger_fields
from ..plan.state import AgentState
from ..spec import loader
from ..store.client import Store

DISPATCH_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0)
APPLY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """Observations counted into buckets (the last, +Inf, holds every one)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, total = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            cumulative.append((bound, total))
        return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=self.sum)


def _num(value: object) -> float | None:
    try:
        return float(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


class TownCollector:
    """Collects the town's metrics per scrape. The apply histogram grows with the stream: each
    scrape reads only the events written since the last one (the first reads what is kept)."""

    def __init__(self, fresh: Callable[[], Session]) -> None:
        self.fresh = fresh
        self.lock = threading.Lock()
        self.cursor = "-"
        self.applies = Histogram(APPLY_BUCKETS)
        self.counted: set[tuple[str, str, str]] = set()  # (task, attempt, finished_at)
        self.tried: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.dispatched: dict[str, str] = {}  # task → the start of the claim observed
        self.dispatch = Histogram(DISPATCH_BUCKETS)

    def describe(self) -> Iterable[Metric]:
        return []  # computed per scrape: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        s = self.fresh()
        store = s.store
        tasks = GaugeMetricFamily("tt_tasks", "Tasks by state.", labels=["state"])
        counts = store.state_counts()
        for state in STATES:
            tasks.add_metric([state], counts.get(state, 0))
        yield tasks

        agents = GaugeMetricFamily("tt_agents", "Agent instances by state.", labels=["state"])
        rows = agents_report(store, loader.check(s.files_paths()).desired)
        by_state = Counter(str(r["state"]) for r in rows)
        for state in sorted({*(a.value for a in AgentState), *by_state}):
            agents.add_metric([state], by_state.get(state, 0))
        yield agents

        tried, failed, dispatch = self._attempts(store)
        attempts = CounterMetricFamily(
            "tt_attempts", "Finished attempts by exit class.", labels=["exit_class"]
        )
        failures = CounterMetricFamily(
            "tt_attempt_failures", "Failed attempts by exit class.", labels=["exit_class"]
        )
        for cls in sorted(tried):
            attempts.add_metric([cls], tried[cls])
            if failed[cls]:
                failures.add_metric([cls], failed[cls])
        yield attempts
        yield failures
        yield dispatch.family(
            "tt_dispatch_latency_seconds",
            "From a task becoming ready to an agent claiming it (each attempt seen running or "
            "latest at a scrape).",
        )
        yield self._applies(s).family(
            "tt_apply_duration_seconds",
            "How long each apply that changed something took (files read, planned, written).",
        )

    def _attempts(self, store: Store) -> tuple[Counter[str], Counter[str], Histogram]:
        """The attempt counters and the dispatch histogram, grown by what this scrape sees
        first: each finished attempt on record (once: by task, number and end), each task's
        latest claim (once: by task and start). What left Redis since (a prune, a retry's
        fresh record) is still counted: counters never go down while the server runs."""
        with self.lock:
            histories = store.attempt_histories(store.task_ids())
            for task_id, history in histories.items():
                for rec in history:
                    key = (task_id, str(rec.get("attempt")), str(rec.get("finished_at")))
                    if key in self.counted or rec.get("outcome") in (None, "", "running"):
                        continue
                    self.counted.add(key)
                    cls = str(ledger_fields(rec)["exit_class"] or "unknown")
                    self.tried[cls] += 1
                    if rec.get("outcome") == "failed":
                        self.failed[cls] += 1
            rows = store.task_rows(["ready_at", "started_at"])
            self.dispatched = {row[0]: v for row in rows if (v := self.dispatched.get(row[0]))}
            for task_id, ready, started in rows:
                r, t = _num(ready), _num(started)
                if r is None or t is None or t < r or self.dispatched.get(task_id) == started:
                    continue
                self.dispatched[task_id] = started
                self.dispatch.observe(t - r)
            # Forget what is gone for good (no record of it is left to be seen twice).
            self.counted = {k for k in self.counted if k[0] in histories}
            return self.tried, self.failed, self.dispatch

    def _applies(self, s: Session) -> Histogram:
        with self.lock:
            while True:
                got = s.store.events_since(self.cursor, count=5000)
                if not got:
                    return self.applies
                self.cursor = got[-1][0]
                for _, fields in got:
                    seconds = _num(fields.get("seconds"))
                    if fields.get("type") == "apply" and seconds is not None:
                        self.applies.observe(seconds)


def endpoint(fresh: Callable[[], Session]) -> Callable[[Request], Response]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TownCollector(fresh))

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
