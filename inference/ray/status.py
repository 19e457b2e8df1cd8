"""What a Serve application's status says, as one line for an admin (pure).

`GET /api/serve/applications/` gives each app a status (NOT_STARTED, DEPLOYING, RUNNING,
DEPLOY_FAILED, UNHEALTHY, DELETING) and a message, and each of its deployments a status and a
message; an engine that fails to start leaves a Python traceback in its deployment's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal["missing", "deploying", "running", "failed"]
LINE_LIMIT = 300
_FAILED = frozenset({"DEPLOY_FAILED", "UNHEALTHY"})
_HEALTHY = frozenset({"HEALTHY", ""})


@dataclass(frozen=True, slots=True)
class AppProgress:
    phase: Phase
    status: str  # Serve's own word, e.g. DEPLOYING
    detail: str  # one line, possibly empty


def one_line(message: object, limit: int = LINE_LIMIT) -> str:
    """The line of `message` that says what went wrong: a traceback's last line (the
    exception), else the last non-empty line; cut to `limit` characters."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def progress(app: dict[str, Any] | None) -> AppProgress:
    """The phase of an app from its entry in the GET answer (None: no such app)."""
    if app is None:
        return AppProgress("missing", "", "")
    status = str(app.get("status") or "")
    # The deployment that is not healthy says why (the app's own message is generic).
    detail = ""
    for deployment in (app.get("deployments") or {}).values():
        if str(deployment.get("status") or "") not in _HEALTHY and deployment.get("message"):
            detail = one_line(deployment["message"])
            break
    detail = detail or one_line(app.get("message"))
    if status == "RUNNING":
        return AppProgress("running", status, "")
    if status in _FAILED:
        return AppProgress("failed", status, detail or status)
    return AppProgress("deploying", status, detail)
