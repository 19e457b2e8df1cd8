"""Photos and voice notes: Telegram files fetched within limits, images made ready for models.

Nothing a user sends is stored as bytes: a message keeps its files as `attachments` (Telegram
`file_id` and metadata, see `image_attachment` and `voice_attachment`), and images are fetched
again by `file_id` when a vision model needs them (`ImageStore`, a short per-process cache).
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import Document, PhotoSize, Voice

from inference.protocol import ContentPart

log = logging.getLogger(__name__)

# Our own cap on any file we download (Telegram's getFile stops at 20 MB).
MAX_DOWNLOAD = 10 * 1024 * 1024
MAX_VOICE_SECONDS = 5 * 60
# Images go to models at most this long on their long side, as JPEG.
IMAGE_LONG_SIDE = 2048
JPEG_QUALITY = 85
# Larger images are refused before they are decoded (a decompression bomb's guard too).
MAX_PIXELS = 60_000_000
# Images sent as documents that are read: the first frame of a GIF.
IMAGE_MIME_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP",
                    "image/gif": "GIF"}
# A history replays its most recent images; older ones are "[image]" markers.
MAX_IMAGES_REPLAYED = 8
IMAGE_MARKER = "[image]"
DOWNLOAD_TIMEOUT = 60


class MediaRefused(Exception):
    """A file we will not (or cannot) read; `key` is the one-line text for the user."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(detail or key)
        self.key = key


# --- attachments (what is stored) ---------------------------------------------------------

def image_attachment(photo: PhotoSize | Document, *, width: int | None = None,
                     height: int | None = None) -> dict[str, Any]:
    """A stored image: Telegram's ids and metadata, never the bytes."""
    is_photo = isinstance(photo, PhotoSize)
    return {
        "kind": "image",
        "file_id": photo.file_id,
        "file_unique_id": photo.file_unique_id,
        "width": photo.width if is_photo else width,
        "height": photo.height if is_photo else height,
        "mime_type": "image/jpeg" if is_photo else photo.mime_type,
        "file_size": photo.file_size,
    }


def voice_attachment(voice: Voice | Any, kind: str = "voice") -> dict[str, Any]:
    """A stored voice (or video) note."""
    return {
        "kind": kind,
        "file_id": voice.file_id,
        "file_unique_id": voice.file_unique_id,
        "duration": voice.duration,
        "mime_type": getattr(voice, "mime_type", None) or (
            "video/mp4" if kind == "video_note" else "audio/ogg"),
        "file_size": voice.file_size,
    }


def images_of(attachments: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    return [a for a in attachments or () if a.get("kind") == "image"]


def best_photo(sizes: Sequence[PhotoSize]) -> PhotoSize:
    """The largest size Telegram made of a photo within `MAX_DOWNLOAD`; `MediaRefused` if
    none is (sizes without a file_size count as within)."""
    fitting = [s for s in sizes if (s.file_size or 0) <= MAX_DOWNLOAD]
    if not fitting:
        raise MediaRefused("media_too_big")
    return max(fitting, key=lambda s: s.width * s.height)


def check_image_document(document: Document) -> None:
    """An image sent as a file: a type we read, within our size cap."""
    if (document.mime_type or "").lower() not in IMAGE_MIME_TYPES:
        raise MediaRefused("image_unsupported", str(document.mime_type))
    if (document.file_size or 0) > MAX_DOWNLOAD:
        raise MediaRefused("media_too_big")


def check_voice(voice: Any) -> None:
    """A voice or video note we will transcribe: short enough, small enough (checked on
    Telegram's metadata, before anything is downloaded)."""
    if (voice.duration or 0) > MAX_VOICE_SECONDS:
        raise MediaRefused("voice_too_long")
    if (voice.file_size or 0) > MAX_DOWNLOAD:
        raise MediaRefused("media_too_big")


# --- downloading and images ---------------------------------------------------------------

async def download(bot: Bot, file_id: str) -> bytes:
    """A Telegram file's bytes (getFile, then the file URL), at most `MAX_DOWNLOAD`."""
    try:
        file = await bot.get_file(file_id)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():
            raise MediaRefused("media_too_big", exc.message) from None
        raise MediaRefused("media_download_failed", exc.message) from None
    except TelegramAPIError as exc:
        raise MediaRefused("media_download_failed", exc.message) from None
    if (file.file_size or 0) > MAX_DOWNLOAD:
        raise MediaRefused("media_too_big")
    if not file.file_path:
        raise MediaRefused("media_download_failed", "getFile gave no file_path")
    buffer = io.BytesIO()
    try:
        await bot.download_file(file.file_path, destination=buffer, timeout=DOWNLOAD_TIMEOUT)
    except (aiohttp.ClientError, TimeoutError, TelegramAPIError) as exc:
        raise MediaRefused("media_download_failed", repr(exc)) from None
    data = buffer.getvalue()
    if len(data) > MAX_DOWNLOAD:
        raise MediaRefused("media_too_big")
    return data


def to_jpeg(data: bytes) -> tuple[bytes, int, int]:
    """Decode an image (the first frame of an animation), turn it upright, flatten any
    transparency onto white, shrink it to `IMAGE_LONG_SIDE` and encode it as JPEG. Returns
    (jpeg, width, height). CPU work: run it in a thread. Only the types of
    `IMAGE_MIME_TYPES` are read, whatever the sender declared."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.format not in IMAGE_MIME_TYPES.values():
                raise MediaRefused("image_unsupported", str(opened.format))
            if opened.width * opened.height > MAX_PIXELS:
                raise MediaRefused("image_unreadable", "too many pixels")
            opened.seek(0)
            if opened.format == "JPEG":
                opened.draft("RGB", (IMAGE_LONG_SIDE, IMAGE_LONG_SIDE))  # decode smaller
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, "white")
                image.paste(rgba, mask=rgba.getchannel("A"))
            else:
                image = image.convert("RGB")
            image.thumbnail((IMAGE_LONG_SIDE, IMAGE_LONG_SIDE), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
            return out.getvalue(), image.width, image.height
    except MediaRefused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaRefused("image_unreadable", repr(exc)) from None


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


class ImageStore:
    """Images as data URLs by `file_unique_id`, fetched by `file_id` on demand and kept a
    few minutes (a conversation's images are sent again with each turn), within a byte
    budget. One per process."""

    def __init__(self, ttl: float = 600.0, budget: int = 64 * 1024 * 1024) -> None:
        self._ttl, self._budget = ttl, budget
        self._urls: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._size = 0
        self._loading: dict[str, asyncio.Future[str]] = {}

    def _cached(self, key: str) -> str | None:
        found = self._urls.get(key)
        if found is None:
            return None
        if time.monotonic() - found[0] > self._ttl:
            self._drop(key)
            return None
        self._urls.move_to_end(key)
        return found[1]

    def _drop(self, key: str) -> None:
        _, url = self._urls.pop(key)
        self._size -= len(url)

    def _keep(self, key: str, url: str) -> None:
        if key in self._urls:
            self._drop(key)
        self._urls[key] = (time.monotonic(), url)
        self._size += len(url)
        while self._size > self._budget and len(self._urls) > 1:
            self._drop(next(iter(self._urls)))

    async def data_url(self, bot: Bot, attachment: Mapping[str, Any]) -> str:
        """The image as a JPEG data URL; `MediaRefused` when it cannot be read."""
        key = str(attachment.get("file_unique_id") or attachment["file_id"])
        cached = self._cached(key)
        if cached is not None:
            return cached
        loading = self._loading.get(key)
        if loading is not None:  # the same image asked for twice at once: fetched once
            return await asyncio.shield(loading)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            data = await download(bot, attachment["file_id"])
            # Decoding, resizing and base64 of a photo of megabytes: off the event loop.
            url = await asyncio.to_thread(lambda: data_url(to_jpeg(data)[0]))
            self._keep(key, url)
            future.set_result(url)
            return url
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._loading[key]

    async def for_path(self, bot: Bot, path: Sequence[Any]) -> dict[str, str]:
        """Data URLs of the most recent `MAX_IMAGES_REPLAYED` images of a history, by
        `file_unique_id`; an image that cannot be fetched any more is left out (and becomes
        an "[image]" marker)."""
        wanted = [a for m in path for a in images_of(getattr(m, "attachments", None))]
        wanted = wanted[-MAX_IMAGES_REPLAYED:]
        if not wanted:
            return {}

        async def one(attachment: Mapping[str, Any]) -> tuple[str, str | None]:
            key = str(attachment.get("file_unique_id") or attachment["file_id"])
            try:
                return key, await self.data_url(bot, attachment)
            except MediaRefused as exc:
                log.warning("image %s left out of a request: %s", key, exc)
                return key, None

        found = await asyncio.gather(*(one(a) for a in wanted))
        return {key: url for key, url in found if url is not None}


# --- history -------------------------------------------------------------------------------

def user_content(text: str, attachments: Sequence[Mapping[str, Any]] | None,
                 images: Mapping[str, str] | None) -> str | list[ContentPart]:
    """A stored user message as a model reads it: with `images` (a vision model's request:
    data URLs by file_unique_id) its images become `image_url` parts after the text; without,
    or for images not in `images`, one "[image]" marker each before the text."""
    stored = images_of(attachments)
    if not stored:
        return text
    urls = [images.get(str(a.get("file_unique_id") or a.get("file_id"))) if images else None
            for a in stored]
    markers = [IMAGE_MARKER for url in urls if url is None]
    caption = "\n".join(p for p in (" ".join(markers), text) if p)
    if images is None or not any(urls):
        return caption
    parts: list[ContentPart] = [{"type": "text", "text": caption}] if caption else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls if url]
    return parts


def merge_content(first: str | list[ContentPart], second: str | list[ContentPart]
                  ) -> str | list[ContentPart]:
    """Two messages of one role sent one after the other, as one."""
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"

    def parts(content: str | list[ContentPart]) -> list[ContentPart]:
        return [{"type": "text", "text": content}] if isinstance(content, str) else content

    return [*parts(first), *parts(second)]

