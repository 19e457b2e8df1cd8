"""The /models report: every model, its replicas and how they are doing."""

from __future__ import annotations

from bot.formatting import MESSAGE_LIMIT
from inference.redaction import redact_url
from inference.registry import ModelRegistry


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def models_report(registry: ModelRegistry) -> list[str]:
    """Plain-text lines, packed into messages under Telegram's limit."""
    lines: list[str] = []
    backends = registry.live_backends()
    for spec in registry.all():
        state = "enabled" if spec.enabled else "disabled"
        head = f"• {spec.id} — {spec.title} [{state}] {spec.backend}, serves {spec.model}"
        if spec.backend == "hf" and spec.draft_path:
            head += (f"; assisted decoding: draft {spec.draft_path}, "
                     f"k={spec.num_speculative_tokens}")
        if spec.speculative:
            sd = spec.speculative
            head += f"; speculative: {sd.method}, draft {sd.draft}, k={sd.num_speculative_tokens}"
        if spec.fallback:
            head += f"; fallback → {', '.join(spec.fallback)}"
        lines.append(head)
        status = getattr(backends.get(spec.id), "status", None)
        if status is None:  # not used since this process started
            for url in spec.urls or [f"local:{spec.path}"]:
                lines.append(f"    {redact_url(url)}: idle (no requests yet)")
            continue
        for replica in status():
            line = (f"    {redact_url(replica.url)}: {replica.state}, "
                    f"in flight {replica.in_flight}, "
                    f"TTFT p50 {_fmt(replica.median_ttft, 's')}, "
                    f"{_fmt(replica.tokens_per_s, ' tok/s', 1)}")
            if replica.waiting is not None:
                line += f", running {replica.running}, waiting {replica.waiting}"
            if replica.acceptance_rate is not None:
                line += (f", acceptance {_fmt(replica.acceptance_rate * 100, '%', 0)}, "
                         f"mean accepted length {_fmt(replica.mean_acceptance_length)}")
            lines.append(line)
    messages, current = [], ""
    for line in lines or ["no models"]:
        if current and len(current) + len(line) + 1 > MESSAGE_LIMIT:
            messages.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    messages.append(current)
    return messages
