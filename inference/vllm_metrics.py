"""vLLM's Prometheus `/metrics`: load gauges and speculative-decoding acceptance (pure).

The same figures come from Ray Serve LLM's engines through Ray's metrics endpoint, renamed
(`vllm:x` → `ray_vllm_x`) and labelled with `model_name`: see :func:`parse_ray_metrics`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = "vllm:kv_cache_usage_perc"
KV_USAGE_OLD = "vllm:gpu_cache_usage_perc"  # name before vLLM V1
DRAFTS = "vllm:spec_decode_num_drafts_total"
DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens_total"
ACCEPTED = "vllm:spec_decode_num_accepted_tokens_total"


@dataclass(frozen=True, slots=True)
class EngineStats:
    """One scrape. Counts are summed over label sets (engines); None when the metric is absent."""

    running: int | None = None
    waiting: int | None = None
    kv_cache_usage: float | None = None  # 0..1, the fullest engine
    spec_drafts: float | None = None
    spec_draft_tokens: float | None = None
    spec_accepted_tokens: float | None = None

    @property
    def speculative(self) -> bool:
        return None not in (self.spec_drafts, self.spec_draft_tokens, self.spec_accepted_tokens)


def _labels_end(rest: str) -> int:
    """Index of the `}` closing a label set (quotes and escapes respected), or -1."""
    quoted = escaped = False
    for i, char in enumerate(rest):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "}" and not quoted:
            return i
    return -1


def iter_samples(text: str) -> Iterator[tuple[str, float]]:
    """(sample name, value) for every sample line of Prometheus text; bad lines are skipped."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            end = _labels_end(rest)
            if end < 0:
                continue
            rest = rest[end + 1 :]
        else:
            name, _, rest = line.partition(" ")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        yield name.strip(), value


def parse_metrics(text: str) -> EngineStats:
    """The load and speculative-decoding figures from a vLLM `/metrics` answer."""
    return _stats(iter_samples(text))


RAY_PREFIX = "ray_vllm_"


def ray_samples(text: str, model_name: str) -> list[tuple[str, float]] | None:
    """Ray's exposition of vLLM's metrics, for one model: (vLLM's own name, value) for every
    `ray_vllm_*` sample labelled `model_name=<model_name>`; None if `text` is not Ray's
    metrics (an error page, another exporter)."""
    found: list[tuple[str, float]] = []
    ray = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                ray = ray or sample.name.startswith("ray_")
                if (sample.name.startswith(RAY_PREFIX)
                        and sample.labels.get("model_name") == model_name):
                    found.append(("vllm:" + sample.name.removeprefix(RAY_PREFIX),
                                  float(sample.value)))
    except ValueError:  # not Prometheus text
        return None
    return found if ray else None


def parse_ray_metrics(text: str, model_name: str) -> EngineStats:
    """The figures of one Ray Serve LLM model from Ray's metrics endpoint (or a Prometheus
    `/federate` answer), summed over its replicas and engines. Ray exports a counter only once
    it has counted, so in Ray's answer a missing spec-decode counter is 0 (the first answer's
    acceptance then shows, like a vLLM server's counters that start at 0)."""
    samples = ray_samples(text, model_name)
    if samples is None:
        return EngineStats()
    names = {name for name, _ in samples}
    zeros = [(name, 0.0) for name in (DRAFTS, DRAFT_TOKENS, ACCEPTED) if name not in names]
    return _stats([*samples, *zeros])


def _stats(samples: Iterable[tuple[str, float]]) -> EngineStats:
    sums: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for name, value in samples:
        sums[name] = sums.get(name, 0.0) + value
        peaks[name] = max(peaks.get(name, value), value)
    running, waiting = sums.get(RUNNING), sums.get(WAITING)
    return EngineStats(
        running=None if running is None else round(running),
        waiting=None if waiting is None else round(waiting),
        kv_cache_usage=peaks.get(KV_USAGE, peaks.get(KV_USAGE_OLD)),
        spec_drafts=sums.get(DRAFTS),
        spec_draft_tokens=sums.get(DRAFT_TOKENS),
        spec_accepted_tokens=sums.get(ACCEPTED),
    )


class SpecDecodeTracker:
    """Acceptance over a sliding window of scrapes (like `rate(...[5m])` without Prometheus).

    The baseline is the newest scrape at least `window` seconds old (or the oldest one kept).
    A counter going down means the server restarted: the history restarts from that scrape.
    """

    def __init__(self, window: float = 300.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, float, float, float]] = deque()

    def observe(self, stats: EngineStats, now: float) -> None:
        if not stats.speculative:
            return
        assert stats.spec_drafts is not None and stats.spec_draft_tokens is not None
        assert stats.spec_accepted_tokens is not None
        sample = (now, stats.spec_drafts, stats.spec_draft_tokens, stats.spec_accepted_tokens)
        if self._samples and any(
            new < old for new, old in zip(sample[1:], self._samples[-1][1:], strict=True)
        ):
            self._samples.clear()
        self._samples.append(sample)
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def _deltas(self) -> tuple[float, float, float] | None:
        if len(self._samples) < 2:
            return None
        first, last = self._samples[0], self._samples[-1]
        return last[1] - first[1], last[2] - first[2], last[3] - first[3]

    @property
    def acceptance_rate(self) -> float | None:
        """Δaccepted / Δdraft tokens (vLLM's rate; not the per-token α)."""
        deltas = self._deltas()
        if deltas is None or deltas[1] <= 0:
            return None
        return deltas[2] / deltas[1]

    @property
    def mean_acceptance_length(self) -> float | None:
        """1 + Δaccepted / Δdrafts: tokens emitted per target step, the bonus token included."""
        deltas = self._deltas()
        if deltas is None or deltas[0] <= 0:
            return None
        return 1 + deltas[2] / deltas[0]
