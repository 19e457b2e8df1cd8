"""Speech to text through an OpenAI-compatible `POST /v1/audio/transcriptions` (OpenAI's
Whisper, or vLLM serving a Whisper model): catalogue entries with `transcription: true`."""

from __future__ import annotations

import openai

from inference.backends.openai_compat import map_openai_error
from inference.catalogue import ModelSpec
from inference.errors import BackendError, BadRequest

# What OpenAI's endpoint takes at most; larger files are refused before any request.
MAX_AUDIO_BYTES = 25 * 1024 * 1024


async def transcribe(spec: ModelSpec, api_key: str | None, audio: bytes, filename: str,
                     mime_type: str) -> str:
    """The text spoken in `audio` (stripped; "" when nothing was made out).

    Raises `inference.errors.BackendError` subclasses, as chat backends do."""
    if len(audio) > MAX_AUDIO_BYTES:
        raise BadRequest(f"audio of {len(audio)} bytes is over the {MAX_AUDIO_BYTES} limit")
    timeouts = spec.timeouts
    # One client per call: voice notes are rare next to chat turns, and a client per call
    # leaves nothing open when the catalogue changes.
    client = openai.AsyncOpenAI(
        base_url=spec.base_url, api_key=api_key or "no-key", max_retries=0,
        timeout=openai.Timeout(timeouts.total, connect=timeouts.connect),
    )
    try:
        result = await client.audio.transcriptions.create(
            model=spec.model, file=(filename, audio, mime_type))
    except BackendError:
        raise
    except Exception as exc:
        raise map_openai_error(exc, started=False) from exc
    finally:
        await client.close()
    text = getattr(result, "text", None)
    if not isinstance(text, str):
        raise BadRequest("the transcription answer has no text")
    return text.strip()
