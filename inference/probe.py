"""Asking an OpenAI-compatible server which models it serves (before adding it)."""

from __future__ import annotations

import openai

from inference.backends.openai_compat import map_openai_error


async def served_models(
    base_url: str, api_key: str | None, request_timeout: float = 10.0
) -> list[str]:
    """`GET {base_url}/models` → the served model names. Raises typed backend errors."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "no-key", max_retries=0,
                                timeout=request_timeout)
    try:
        page = await client.models.list()
        return [model.id for model in page.data]
    except openai.OpenAIError as exc:
        raise map_openai_error(exc, started=False) from exc
    finally:
        await client.close()
