"""The bot's Prometheus metrics, one set per `App` (its own `CollectorRegistry`: two bots in
one process keep their own numbers).

Labels are bounded: update types and Bot API methods come from aiogram, models from the
catalogue, outcomes, error and vote kinds from the code. Never a chat or user id.
Call sites use the small methods below; each is a label lookup and an increment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from inference.tokens import script_estimate

NO_MODEL = "-"  # the `model` label of errors that are not a model's
# Seconds from a model request to the first text the user sees (a draft, an edit, or the
# final message of an answer that came faster than the first frame).
FIRST_VISIBLE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0,
                         60.0)
TOKENS_PER_SECOND_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0,
                             150.0, 200.0, 300.0, 500.0)


class Metrics:
    """Every metric a bot process exports. `chatmux_queue_depth` is read at scrape time
    (`bot.observability.http`): it is the depth of the shared queues, not this process's."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.updates = Counter("chatmux_updates", "Updates received from Telegram, by type",
                               ["type"], registry=r)
        self.answers = Counter(
            "chatmux_answers", "Answers generated, by model and outcome (complete, cut, "
            "stopped, interrupted, error, empty)", ["model", "outcome"], registry=r)
        self.first_visible = Histogram(
            "chatmux_time_to_first_visible_seconds",
            "Seconds from the model request to the first answer text the user sees",
            ["model"], buckets=FIRST_VISIBLE_BUCKETS, registry=r)
        self.tokens_per_second = Histogram(
            "chatmux_tokens_per_second",
            "Completion tokens per second after the first token, per answer",
            ["model"], buckets=TOKENS_PER_SECOND_BUCKETS, registry=r)
        self.telegram_429 = Counter(
            "chatmux_telegram_429", "Bot API calls refused with 429 Too Many Requests, by method",
            ["method"], registry=r)
        self.errors = Counter(
            "chatmux_errors", "Errors by kind: a model's (its kind, with the model), "
            "'handler' (an update failed), 'queue' (a queued question failed), 'undelivered' "
            "(Telegram did not take an answer)", ["kind", "model"], registry=r)
        self.active_streams = Gauge(
            "chatmux_active_streams", "Model answers being streamed now, by model", ["model"],
            registry=r)
        self.queue_depth = Gauge(
            "chatmux_queue_depth", "Questions waiting in the (shared) conversation queues, "
            "read at scrape time; -1 if they could not be read", registry=r)
        self.votes = Counter(
            "chatmux_votes", "Judgements by kind: like, dislike, unvote, edit, arena_a, arena_b, "
            "arena_tie, arena_both_bad, arena_strength", ["kind"], registry=r)

    # --- call sites --------------------------------------------------------------------
    def update(self, update_type: str) -> None:
        self.updates.labels(update_type).inc()

    def answer(self, model: str, outcome: str) -> None:
        self.answers.labels(model, outcome).inc()

    def shown(self, model: str, seconds: float) -> None:
        """The first text of an answer became visible `seconds` after its model request."""
        self.first_visible.labels(model).observe(seconds)

    def speed(self, model: str, tokens: int | None, text: str, seconds: float) -> None:
        """An answer's generation speed: `tokens` (the server's count; estimated from `text`
        when it gave none) over `seconds` from its first token to its end."""
        if seconds <= 0:
            return
        count = tokens if tokens is not None else (script_estimate(text) if text else 0)
        if count > 0:
            self.tokens_per_second.labels(model).observe(count / seconds)

    def error(self, kind: str, model: str | None = None) -> None:
        self.errors.labels(kind, model or NO_MODEL).inc()

    def retry_after(self, method: str) -> None:
        self.telegram_429.labels(method).inc()

    def vote(self, kind: str) -> None:
        self.votes.labels(kind).inc()

    @contextlib.contextmanager
    def streaming(self, model: str) -> Iterator[None]:
        """Counts a model stream in `chatmux_active_streams` while it lasts."""
        gauge = self.active_streams.labels(model)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    # --- exposition --------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

    def sample_names(self) -> frozenset[str]:
        """The names of the series this exports (`_total`, `_bucket`… included), whether or
        not they have values yet: what dashboards and alerts may refer to."""
        suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                    "histogram": ("_bucket", "_sum", "_count", "_created")}
        return frozenset(
            family.name + suffix
            for metric in vars(self).values() if isinstance(metric, MetricWrapperBase)
            for family in metric.describe() for suffix in suffixes[family.type]
        )
