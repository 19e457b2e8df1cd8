"""Typed backend errors: callers map each kind to one short message for the user."""

from __future__ import annotations


class BackendError(Exception):
    """A model call failed. `kind` is stable and used for messages and metrics."""

    kind = "error"

    def __init__(self, detail: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(detail or self.kind)
        self.detail = detail
        self.retry_after = retry_after


class ModelUnavailable(BackendError):
    """Connection refused, DNS failure, 5xx, or the server broke the stream."""

    kind = "unavailable"


class ModelTimeout(ModelUnavailable):
    """No first token, or no end of answer, within the configured time."""

    kind = "timeout"


class ModelNotServed(ModelUnavailable):
    """The server answers but does not serve this model (HTTP 404 naming it): another replica
    or a fallback model may, the user's question is not at fault."""

    kind = "model_not_served"


class RateLimited(BackendError):
    kind = "rate_limited"


class BadRequest(BackendError):
    """The server refused the request itself (bad params, unknown model, auth)."""

    kind = "bad_request"


class ContextTooLong(BadRequest):
    kind = "context_too_long"


class StreamBroken(ModelUnavailable):
    """An error arrived inside the stream after HTTP 200."""

    kind = "stream_error"
