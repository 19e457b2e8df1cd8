"""The shape of a server's answer, to compare the fake with recordings of real vLLM.

Volatile values (ids, timestamps, token counts, generated text, paths) are left out. What is
kept must match: status codes and media types; keys and value types of every JSON object;
protocol constants (`object`, `role`, `finish_reason`, whose "stop" and "length" count as one:
the model picks between them); an error's `type`, `param`, `code` and
message pattern (numbers as N; of pydantic's validation listing, its header and first entry);
the SSE framing (`data: ` events, kinds of chunk in order: role, reasoning…, content…,
finish, usage, [DONE]); and for `/metrics`, the families chatmux reads: present or not, TYPE,
HELP, label keys, their `_created` companions, and that every sample line parses.
"""

from __future__ import annotations

import json
import re
from typing import Any

from inference.vllm_metrics import (
    ACCEPTED,
    DRAFT_TOKENS,
    DRAFTS,
    KV_USAGE,
    KV_USAGE_OLD,
    RUNNING,
    WAITING,
    iter_samples,
)
from tests.vllm_real.recording import Exchange

CONSTANT_KEYS = frozenset({"object", "role", "finish_reason"})
# An answer may end at max_tokens or at EOS: which one is the model's doing (the recorded tiny
# model can end at EOS where every printable logit is below zero), not the protocol's.
_GENERATED_FINISH = frozenset({"stop", "length"})
READ_METRICS = (RUNNING, WAITING, KV_USAGE, KV_USAGE_OLD, DRAFTS, DRAFT_TOKENS, ACCEPTED)
_VALIDATION = re.compile(r"^\d+ validation errors?:")
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+(?:\s+\S+)?$")
_LABEL_KEY = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="(?:[^"\\]|\\.)*"')


def json_shape(value: Any) -> Any:
    """Keys and value types: objects key by key, a list as the distinct shapes of its items."""
    if isinstance(value, dict):
        return {key: json_shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            if (found := json_shape(item)) not in shapes:
                shapes.append(found)
        return shapes
    if value is None:
        return "null"
    return type(value).__name__  # bool, int, float, str


def constants(value: Any, path: str = "") -> list[str]:
    """`path=value` for every protocol constant (see CONSTANT_KEYS), sorted, once each."""
    found: set[str] = set()

    def walk(node: Any, at: str) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in CONSTANT_KEYS and not isinstance(item, dict | list):
                    if key == "finish_reason" and item in _GENERATED_FINISH:
                        item = "stop|length"
                    found.add(f"{at}.{key}={item!r}")
                walk(item, f"{at}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, f"{at}[]")

    walk(value, path)
    return sorted(found)


def message_pattern(message: str) -> str:
    """An error message with numbers as N; a pydantic listing cut to its first entry."""
    if _VALIDATION.match(message):
        lines = message.splitlines()
        message = _VALIDATION.sub("N validation error(s):", lines[0]) + "\n" + lines[1].strip()
    return re.sub(r"\d+", "N", message)


def error_shape(body: Any) -> dict[str, Any] | None:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return {"error": error}
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    return {"type": error.get("type"), "param": error.get("param"), "code": error.get("code"),
            "message": message_pattern(message) if isinstance(message, str) else message}


def _chunk_kind(event: Any) -> str:
    if not isinstance(event, dict):
        return "not an object"
    if "error" in event:
        return "error"
    choices = event.get("choices")
    if choices == [] and "usage" in event:
        return "usage"
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "odd"
    if choices[0].get("finish_reason") is not None:
        return "finish"
    delta = choices[0].get("delta") or {}
    if "role" in delta:
        return "role"
    return "reasoning" if {"reasoning", "reasoning_content"} & set(delta) else "content"


def sse_shape(text: str) -> dict[str, Any]:
    """Framing, the kinds of event in order (runs of content chunks as one), their shapes."""
    events = text.split("\n\n")
    framing_ok = events[-1] == "" and all(
        e.startswith("data: ") and "\n" not in e for e in events[:-1])
    sequence: list[str] = []
    chunks: dict[str, list[Any]] = {}
    consts: set[str] = set()
    errors: list[Any] = []
    for event in events[:-1]:
        payload = event.removeprefix("data: ")
        if payload == "[DONE]":
            kind, data = "[DONE]", None
        else:
            try:
                data = json.loads(payload)
            except ValueError:
                kind, data = "not JSON", None
            else:
                kind = _chunk_kind(data)
        if not sequence or sequence[-1] != kind or kind not in ("content", "reasoning"):
            sequence.append(kind)
        if data is not None:
            shapes = chunks.setdefault(kind, [])
            if (found := json_shape(data)) not in shapes:
                shapes.append(found)
            consts.update(constants(data, kind))
            if (error := error_shape(data)) is not None:
                errors.append(error)
    return {"framing_ok": framing_ok, "sequence": sequence, "chunks": chunks,
            "constants": sorted(consts), "errors": errors}


def metrics_shape(text: str) -> dict[str, Any]:
    """For each family chatmux reads (and a counter's `_created`): present, TYPE, HELP, labels."""
    types: dict[str, str] = {}
    helps: set[str] = set()
    labels: dict[str, set[str]] = {}
    sample_lines = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE "):].partition(" ")
            types[name] = kind
        elif line.startswith("# HELP "):
            helps.add(line[len("# HELP "):].partition(" ")[0])
        elif line and not line.startswith("#"):
            sample_lines += 1
            if match := _SAMPLE.match(line):
                keys = set(_LABEL_KEY.findall(match.group(2) or ""))
                labels.setdefault(match.group(1), set()).update(keys)
    names = list(READ_METRICS)
    names += [n.removesuffix("_total") + "_created" for n in READ_METRICS if n.endswith("_total")]
    families = {
        name: {"present": name in labels, "type": types.get(name), "help": name in helps,
               "labels": sorted(labels.get(name, ()))}
        for name in names
    }
    parsed = sum(1 for _ in iter_samples(text))
    return {"families": families, "every_sample_parses": parsed == sample_lines > 0}


def shape(exchange: Exchange) -> dict[str, Any]:
    media = (exchange.content_type or "").split(";")[0].strip().lower() or None
    found: dict[str, Any] = {"status": exchange.status, "content_type": media}
    if media == "application/json":
        body = exchange.json()
        found.update(json=json_shape(body), constants=constants(body), error=error_shape(body))
    elif media == "text/event-stream":
        found["sse"] = sse_shape(exchange.body)
    elif exchange.path == "/metrics":
        found["metrics"] = metrics_shape(exchange.body)
    else:
        found["body"] = "empty" if exchange.body == "" else "text"
    return found


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where two shapes differ, one line each (`path: expected … got …`)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found: list[str] = []
        for key in sorted(set(expected) | set(actual)):
            at = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append(f"{at}: missing (expected {expected[key]!r})")
            elif key not in expected:
                found.append(f"{at}: unexpected {actual[key]!r}")
            else:
                found += differences(expected[key], actual[key], at)
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in differences(e, a, f"{path}[{i}]")]
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def compare(recorded: dict[str, Exchange], observed: dict[str, Exchange]) -> list[str]:
    """Every difference between two sets of exchanges, prefixed with the exchange's name."""
    found: list[str] = []
    for name in sorted(set(recorded) | set(observed)):
        if name not in observed or name not in recorded:
            found.append(f"{name}: {'not observed' if name not in observed else 'not recorded'}")
            continue
        found += [f"{name}: {d}" for d in differences(shape(recorded[name]),
                                                       shape(observed[name]))]
    return found
