"""`HFBackend`: the `ChatBackend` of a model run in this process by `LocalEngine`."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from inference.errors import (
    BackendError,
    BadRequest,
    ContextTooLong,
    ModelUnavailable,
    StreamBroken,
)
from inference.local.engine import LocalEngine
from inference.local.errors import LocalEngineUnavailable, ModelLoadError
from inference.protocol import ChatMessage, Finished, StreamEvent, Usage
from inference.thinking import ThinkSplitter


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def engine_installed() -> bool:
    """Whether the `[local]` extra (torch and transformers) is importable."""
    return _installed("torch") and _installed("transformers")


class HFBackend:
    """Streams answers of a local transformers model, assisted by a draft model if given.

    Raises `LocalEngineUnavailable` at construction when torch or transformers is missing
    (the bot's configuration asks for something it cannot run). The models load on the
    first request; a loading failure is a `ModelUnavailable` naming the path, and the next
    request tries again. Sampling defaults come from the target's generation_config as vLLM
    takes them for the same model (greedy unless it sets do_sample; its top_p, top_k and
    repetition_penalty, the latter applied when greedy too); `temperature`, `top_p`,
    `max_tokens` and `seed` in `params` override them. `max_tokens` is capped by the room
    left in the context.
    """

    def __init__(
        self,
        path: str,
        *,
        draft_path: str | None = None,
        num_speculative_tokens: int = 4,
        device: str = "auto",
        dtype: str = "auto",
        default_max_tokens: int = 512,
        seed: int | None = None,
    ) -> None:
        if not engine_installed():
            raise LocalEngineUnavailable()
        if num_speculative_tokens < 1:
            raise ValueError(f"num_speculative_tokens must be >= 1, not {num_speculative_tokens}")
        self.default_max_tokens = default_max_tokens
        self.engine = LocalEngine(
            path, draft_path=draft_path, num_speculative_tokens=num_speculative_tokens,
            device=device, dtype=dtype, seed=seed,
        )

    async def stream(
        self, messages: list[ChatMessage], params: dict[str, float | int],
        *, key: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        from inference.local.sampling import SamplingParams

        engine = self.engine
        try:
            loaded = await engine.load()
        except (ModelLoadError, LocalEngineUnavailable) as exc:
            raise ModelUnavailable(str(exc)) from exc
        except BackendError:
            raise
        except Exception as exc:
            raise ModelUnavailable(f"cannot load {engine.path}: {exc}") from exc

        # Templating and tokenizing a long conversation is CPU work: off the event loop.
        prompt = await asyncio.to_thread(engine.encode_chat, loaded, messages)
        room = None if loaded.max_context is None else loaded.max_context - len(prompt)
        if room is not None and room <= 0:
            raise ContextTooLong(
                f"the prompt has {len(prompt)} tokens; the model takes {loaded.max_context}"
            )
        max_tokens = int(params.get("max_tokens", self.default_max_tokens))
        try:
            sampling = SamplingParams(
                temperature=float(params.get("temperature", loaded.temperature)),
                top_p=float(params.get("top_p", loaded.top_p)),
                max_new_tokens=max_tokens if room is None else min(max_tokens, room),
                eos_token_ids=loaded.eos_token_ids,
                top_k=loaded.top_k,
                repetition_penalty=loaded.repetition_penalty,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        seed = params.get("seed")

        result = None
        started = False
        splitter = ThinkSplitter()  # a local reasoning model thinks inside `<think>`
        try:
            async with aclosing(engine.generate(
                loaded, prompt, sampling, seed=None if seed is None else int(seed),
            )) as events:
                async for item in events:
                    if isinstance(item, str):
                        started = True
                        for piece in splitter.feed(item):
                            yield piece
                    else:
                        result = item
        except BackendError:
            raise
        except Exception as exc:
            detail = f"local generation failed: {type(exc).__name__}: {exc}"[:300]
            raise (StreamBroken(detail) if started else ModelUnavailable(detail)) from exc
        if result is None:  # pragma: no cover - the engine always ends with a result
            raise StreamBroken("the local engine ended without a result")
        for piece in splitter.flush():
            yield piece
        yield Finished(
            finish_reason="stop" if result.finish_reason == "stop" else "length",
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=len(result.token_ids)),
            decoding=result.stats,
        )

    def totals(self) -> dict[str, Any]:
        """Aggregated decoding statistics across requests, and the queue (for /models)."""
        return self.engine.totals()

    async def aclose(self) -> None:
        await self.engine.aclose()
