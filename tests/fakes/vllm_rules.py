"""What vLLM 0.32's OpenAI-compatible server says, for the fake's vLLM flavour.

Recorded in tests/fakes/recordings/vllm-0.32.0 (what is compared: tests/fakes/vllm_shapes.py);
where a recording cannot show a rule, vLLM's source can: request validation is pydantic's
(vllm/entrypoints/serve/exception_handling/handlers/validation.py: type "Bad Request", param
the first error's location, the message a listing of errors), vLLM's own checks raise
VLLMValidationError ("… (parameter=p, value=v)", type "BadRequestError"; the order: the
stream_options validator, the model, max_tokens against max_model_len, the prompt's characters
then tokens, then sampling parameters), --api-key answers 401 `{"error": "Unauthorized"}`.
Messages are checked only as far as the fake needs: the first error vLLM lists is reproduced
for the recorded cases, other malformed messages get a close approximation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

VERSION = "0.32.0"
SYSTEM_FINGERPRINT = f"vllm-{VERSION}-fake"
# vLLM refuses a prompt longer than max_model_len × the tokenizer's longest token, in
# characters, before tokenizing it (the recorded byte tokenizer's is 5, "<pad>"). The fake's
# tokens are words, of any length: 32 keeps the bound above prompts of ordinary words.
MAX_CHARS_PER_TOKEN = 32
_FIRST_MESSAGE_TYPE = "ChatCompletionDeveloperMessageParam"  # first member of vLLM's union
_SAMPLING_EPS = 1e-5
_BOOL_WORDS = {"0": False, "off": False, "f": False, "false": False, "n": False, "no": False,
               "1": True, "on": True, "t": True, "true": True, "y": True, "yes": True}
HELP = {
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
    "vllm:kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "vllm:spec_decode_num_drafts_total": "Number of spec decoding drafts.",
    "vllm:spec_decode_num_draft_tokens_total": "Number of draft tokens.",
    "vllm:spec_decode_num_accepted_tokens_total": "Number of accepted tokens.",
}


class ApiError(Exception):
    """An error answer: `{"error": {"message", "type", "param", "code"}}` with HTTP `status`
    (or `body` as given, e.g. vLLM's `{"error": "Unauthorized"}`)."""

    TYPES: dict[int, str] = {  # noqa: RUF012  (vLLM's names, also used for injected errors)
        400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
        404: "NotFoundError", 409: "ConflictError", 422: "UnprocessableEntityError",
        429: "RateLimitError", 500: "InternalServerError", 502: "BadGatewayError",
        503: "ServiceUnavailableError", 504: "GatewayTimeoutError",
    }

    def __init__(self, status: int, message: str, *, code: str | int | None = None,
                 type_: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
        self.code = status if code is None else code
        self.type = type_ or self.TYPES.get(status, "APIError")
        self.param = param
        self._body = body

    def body(self) -> Any:
        if self._body is not None:
            return self._body
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def checked(message: str, parameter: str | None = None, value: Any = None) -> ApiError:
    """vLLM's VLLMValidationError as a 400: the parameter and value are appended."""
    extras = [f"parameter={parameter}"] if parameter is not None else []
    extras += [f"value={value}"] if value is not None else []
    text = f"{message} ({', '.join(extras)})" if extras else message
    return ApiError(400, text, param=parameter)


def summarize(value: Any) -> str:
    """How vLLM shows a rejected value in a validation error (containers by their size)."""
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "...[truncated]"
    if isinstance(value, list | dict | tuple):
        return f"<{type(value).__name__} of {len(value)} items>"
    return str(value)


def _issue(kind: str, loc: str, msg: str, value: Any, **ctx: Any) -> dict[str, Any]:
    issue: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": summarize(value)}
    if ctx:
        issue["ctx"] = ctx
    return issue


def validation_error(issues: list[dict[str, Any]]) -> ApiError:
    """pydantic's errors as vLLM reports them (at most 10 listed)."""
    label = "error" if len(issues) == 1 else "errors"
    message = f"{len(issues)} validation {label}:\n" + "".join(f"  {i}\n" for i in issues[:10])
    if len(issues) > 10:
        message += f"  ...and {len(issues) - 10} more {label}\n"
    return ApiError(400, message.rstrip(), type_="Bad Request", param=issues[0]["loc"])


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request, or vLLM's validation error for anything else."""
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        pos = getattr(exc, "pos", 0)
        msg = getattr(exc, "msg", "Invalid JSON")
        raise validation_error([_issue("json_invalid", f"body.{pos}", "JSON decode error", {},
                                       error=msg)]) from None
    if body is None:
        raise validation_error([_issue("missing", "body", "Field required", None)])
    if not isinstance(body, dict):
        raise validation_error([_issue(
            "model_attributes_type", "body",
            "Input should be a valid dictionary or object to extract fields from", body)])
    return body


def _lax_int(value: Any, loc: str, issues: list[dict[str, Any]]) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        issues.append(_issue("int_from_float", loc, "Input should be a valid integer, got a "
                             "number with a fractional part", value))
    elif isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            issues.append(_issue("int_parsing", loc, "Input should be a valid integer, unable "
                                 "to parse string as an integer", value))
    else:
        issues.append(_issue("int_type", loc, "Input should be a valid integer", value))
    return None


def _lax_float(value: Any, loc: str, issues: list[dict[str, Any]]) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            issues.append(_issue("float_parsing", loc, "Input should be a valid number, unable "
                                 "to parse string as a number", value))
    else:
        issues.append(_issue("float_type", loc, "Input should be a valid number", value))
    return None


def _lax_bool(value: Any, loc: str, issues: list[dict[str, Any]]) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    issues.append(_issue("bool_parsing", loc, "Input should be a valid boolean, unable to "
                         "interpret input", value))
    return False


def _content_ok(content: Any) -> bool:
    if content is None or isinstance(content, str):
        return True
    if not isinstance(content, list):
        return False
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        image = part.get("image_url") if kind == "image_url" else None
        text_ok = kind == "text" and isinstance(part.get("text"), str)
        if not text_ok and not (isinstance(image, dict) and isinstance(image.get("url"), str)):
            return False
    return True


def _check_messages(body: dict[str, Any], issues: list[dict[str, Any]]) -> list[dict]:
    if "messages" not in body:
        issues.append(_issue("missing", "body.messages", "Field required", body))
        return []
    messages = body["messages"]
    if not isinstance(messages, list):
        issues.append(_issue("list_type", "body.messages", "Input should be a valid list",
                             messages))
        return []
    for i, msg in enumerate(messages):
        at = f"body.messages.{i}.{_FIRST_MESSAGE_TYPE}"
        if not isinstance(msg, dict):
            issues.append(_issue("dict_type", at, "Input should be a valid dictionary", msg))
        elif not _content_ok(msg.get("content")):
            issues.append(_issue("string_type", f"{at}.content", "Input should be a valid string",
                                 msg["content"]))
        elif "role" not in msg:
            issues.append(_issue("missing", f"{at}.role", "Field required", msg))
        elif not isinstance(msg["role"], str):  # any string is a role (a custom one)
            issues.append(_issue("literal_error", f"{at}.role", "Input should be 'developer'",
                                 msg["role"], expected="'developer'"))
    return messages


@dataclass
class ChatRequest:
    """A chat body after vLLM's validation (lax types coerced as pydantic does)."""

    messages: list[dict[str, Any]]
    model: str | None
    max_tokens: int | None
    max_tokens_param: str
    stream: bool
    include_usage: bool
    temperature: float | None
    top_p: float | None
    min_p: float | None
    logit_bias: Any


def validate_chat(body: dict[str, Any]) -> ChatRequest:
    """Field checks in vLLM's order; raises the error vLLM would answer."""
    if body.get("stream_options") and not body.get("stream"):  # a "before" model validator
        raise checked("Stream options can only be defined when `stream=True`.", "stream_options")
    issues: list[dict[str, Any]] = []
    messages = _check_messages(body, issues)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        issues.append(_issue("string_type", "body.model", "Input should be a valid string", model))
    bias = body.get("logit_bias")
    if bias is not None and not isinstance(bias, dict):
        issues.append(_issue("dict_type", "body.logit_bias", "Input should be a valid dictionary",
                             bias))
    max_tokens = _lax_int(body.get("max_tokens"), "body.max_tokens", issues)
    completion = _lax_int(body.get("max_completion_tokens"), "body.max_completion_tokens", issues)
    stream = _lax_bool(body.get("stream"), "body.stream", issues)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        issues.append(_issue("model_attributes_type", "body.stream_options", "Input should be a "
                             "valid dictionary or object to extract fields from", options))
    temperature = _lax_float(body.get("temperature"), "body.temperature", issues)
    top_p = _lax_float(body.get("top_p"), "body.top_p", issues)
    min_p = _lax_float(body.get("min_p"), "body.min_p", issues)
    if issues:
        raise validation_error(issues)
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return ChatRequest(
        messages=messages, model=model,
        max_tokens=completion if completion is not None else max_tokens,
        max_tokens_param="max_completion_tokens" if completion is not None else "max_tokens",
        stream=stream, include_usage=include_usage, temperature=temperature, top_p=top_p,
        min_p=min_p, logit_bias=bias)


def unknown_model(model: str, served: list[str]) -> ApiError:
    return ApiError(404, f"The model `{model}` does not exist. Valid aliases: "
                         f"{', '.join(served)}.", param="model")


def check_lengths(request: ChatRequest, max_len: int, prompt_chars: int,
                  prompt_tokens: int) -> int:
    """The answer's token budget (max_tokens capped to the room left), or vLLM's error."""
    if not request.messages:
        raise ApiError(400, "Cannot apply chat template to an empty conversation. Provide at "
                            "least one message.")
    wanted, param = request.max_tokens, request.max_tokens_param
    if wanted is not None and wanted > max_len:
        raise checked(f"{param}={wanted} cannot be greater than max_model_len={max_len}. "
                      "Please request fewer output tokens.", param, wanted)
    if prompt_chars > max_len * MAX_CHARS_PER_TOKEN:
        raise checked(f"This model's maximum context length is {max_len} tokens. However, your "
                      f"prompt contains {prompt_chars} characters (more than "
                      f"{max_len * MAX_CHARS_PER_TOKEN} characters, which is the upper bound "
                      f"for {max_len} input tokens). Please reduce the length of the input "
                      "prompt.", "input_text", prompt_chars)
    if prompt_tokens > max_len:
        shown = min(prompt_tokens, max_len + 1)  # vLLM stops tokenizing one past the limit
        qualifier = "at least " if shown == max_len + 1 else ""
        raise checked(f"This model's maximum context length is {max_len} tokens. However, your "
                      f"prompt contains {qualifier}{shown} input tokens, which exceeds this "
                      "limit even without any output tokens. Please reduce the length of the "
                      "input prompt.", "input_tokens", shown)
    room = max_len - prompt_tokens
    budget = room if wanted is None else min(wanted, room)
    _check_sampling(request, budget)
    return budget


def _check_sampling(request: ChatRequest, max_tokens: int) -> None:
    temperature = 1.0 if request.temperature is None else request.temperature
    if not math.isfinite(temperature):
        raise checked(f"temperature must be a finite number, got {temperature}.", "temperature",
                      temperature)
    if temperature < 0.0:
        raise checked(f"temperature must be non-negative, got {temperature}.", "temperature",
                      temperature)
    if temperature > 2.0:
        raise checked(f"temperature must be in [0, 2], got {temperature}.", "temperature",
                      temperature)
    top_p = 1.0 if request.top_p is None else request.top_p
    if not 0.0 < top_p <= 1.0:
        raise checked(f"top_p must be in (0, 1], got {top_p}.", "top_p", top_p)
    min_p = request.min_p or 0.0
    if not 0.0 <= min_p <= 1.0:
        raise checked(f"min_p must be in [0, 1], got {min_p}.")
    if max_tokens < 1:
        raise checked(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens",
                      max_tokens)


def speculative_refusal(request: ChatRequest) -> ApiError | None:
    """With a draft model vLLM refuses min_p and logit_bias (inside the stream if streaming)."""
    if (request.min_p or 0.0) > _SAMPLING_EPS or request.logit_bias:
        return checked("The min_p and logit_bias sampling parameters are not yet supported "
                       "with speculative decoding.")
    return None


def model_entry(name: str, max_len: int, created: int, permission_id: str) -> dict[str, Any]:
    """One model of vLLM's `/v1/models`."""
    permission = {
        "id": permission_id, "object": "model_permission", "created": created,
        "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
        "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
        "organization": "*", "group": None, "is_blocking": False,
    }
    return {"id": name, "object": "model", "created": created, "owned_by": "vllm",
            "root": f"/models/{name}", "parent": None, "max_model_len": max_len,
            "permission": [permission]}


def render_metrics(values: dict[str, float], labels: str, created: float) -> str:
    """Prometheus text as vLLM writes it: HELP and TYPE per family, a counter's TYPE under its
    `_total` name and its `_created` timestamp as a gauge of its own."""
    lines: list[str] = []

    def family(name: str, kind: str, value: float, help_text: str) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
                      f"{name}{labels} {float(value)!r}"])

    for name, value in values.items():
        help_text = HELP.get(name, name)
        if name.endswith("_total"):
            family(name, "counter", value, help_text)
            family(name.removesuffix("_total") + "_created", "gauge", created, help_text)
        else:
            family(name, "gauge", value, help_text)
    return "\n".join(lines) + "\n"
