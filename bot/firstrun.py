"""The first-run guide: one screen saying why no model can answer and how to connect one.

Shown in the console after its banner, and to admins on /start (bot/handlers/start.py), only
while no enabled model is reachable. It names key variables and hosts, never key values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram.utils.formatting import Pre, Text
from redis.asyncio import Redis

from bot.settings import Settings
from bot.texts import t
from inference.first_run import FirstRunReport
from inference.local_servers import TITLES, catalogue_entries, catalogue_lines
from inference.reachability import Verdict

MESSAGE_LIMIT = 4096  # Telegram's, in UTF-16 code units
SHOWN_MODELS = 12  # models listed one per line; the rest are counted
NAME_CHARS = 40  # a served name quoted in a reason or a server line is cut to this


def pool_agents_counter(redis: Redis | None,
                        settings: Settings) -> Callable[[], Awaitable[int]] | None:
    """How many pool agents are alive (for models launched with `/addmodel … hf=`); None
    when this bot has no GPU pool of its own agents (no Redis or POOL_SECRET, or POOL=ray)."""
    if redis is None or settings.pool_secret is None or settings.pool == "ray":
        return None
    from bot.pool_launch import AGENT_FRESH
    from inference.pool.client import PoolClient
    from inference.pool.protocol import PoolAuth

    client = PoolClient(redis, settings.redis_prefix,
                        PoolAuth(settings.pool_secret.get_secret_value()))

    async def count() -> int:
        return len(await client.agents(max_age=AGENT_FRESH))

    return count


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _reason(verdict: Verdict, lang: str, seconds: float) -> str:
    if verdict.reason == "unknown_model":
        if not verdict.served:
            return t("firstrun_reason_unknown_model_none", lang, detail=_short(verdict.detail))
        return t("firstrun_reason_unknown_model", lang, detail=_short(verdict.detail),
                 served=", ".join(_short(s) for s in verdict.served))
    return t(f"firstrun_reason_{verdict.reason}", lang, detail=verdict.detail,
             seconds=f"{seconds:g}")


def _servers(report: FirstRunReport, lang: str) -> str:
    parts = []
    for server in report.servers:
        kind = TITLES.get(server.kind, server.kind)
        if not server.models:
            parts.append(t("firstrun_server_empty", lang, kind=kind, url=server.base_url))
            continue
        names = [_short(m.name) for m in server.models[:3]]
        more = len(server.models) - len(names)
        parts.append(t("firstrun_server", lang, kind=kind, url=server.base_url,
                       models=", ".join(names) + (f", +{more}" if more > 0 else "")))
    return "; ".join(parts)


def _guide(report: FirstRunReport, lang: str, file: str, seconds: float, shown: int,
           per_server: int) -> Text:
    lines = [t("firstrun_title", lang, file=file)]
    lines += [t("firstrun_model", lang, title=v.title, id=v.model_id,
                reason=_reason(v, lang, seconds)) for v in report.verdicts[:shown]]
    if len(report.verdicts) > shown:
        lines.append(t("firstrun_more_models", lang, count=len(report.verdicts) - shown))
    needs_key = next((v.detail for v in report.verdicts
                      if v.reason in ("no_key", "key_rejected") and v.detail), "OPENAI_API_KEY")
    lines += ["", t("firstrun_how", lang), t("firstrun_how_key", lang, name=needs_key)]
    entries = catalogue_entries(report.servers, report.taken_ids, per_server)
    if not report.servers:
        lines.append(t("firstrun_how_none", lang))
    if not entries:
        if report.servers:  # running, but nothing loaded (or too long to show)
            lines.append(t("firstrun_how_found_empty", lang, servers=_servers(report, lang)))
        return Text("\n".join(lines))
    lines.append(t("firstrun_how_found", lang, servers=_servers(report, lang), file=file))
    return Text("\n".join(lines) + "\n", Pre(catalogue_lines(entries).rstrip("\n"),
                                             language="yaml"))


def _length(text: Text) -> int:
    return len(text.as_kwargs()["text"].encode("utf-16-le")) // 2


def first_run_guide(report: FirstRunReport, lang: str, file: str, seconds: float) -> Text:
    """The guide in `lang`, within one Telegram message: fewer models and suggested entries
    are shown when the full guide would not fit."""
    for shown, per_server in ((SHOWN_MODELS, 3), (SHOWN_MODELS, 1), (6, 1), (3, 1)):
        guide = _guide(report, lang, file, seconds, shown, per_server)
        if _length(guide) <= MESSAGE_LIMIT:
            return guide
    return Text(t("firstrun_title", lang, file=file))
