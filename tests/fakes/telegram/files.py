"""Files users send (photos, image documents, voice and video notes), `getFile` and the file
downloads at ``/file/bot<token>/<file_path>``, as strict as Telegram's.

- `getFile` answers a File (file_id, file_unique_id, file_size, file_path) for any file the
  fake knows; over 20 MB it fails with "Bad Request: file is too big", an unknown id with
  "Bad Request: wrong file_id or the file is temporarily unavailable".
- Only a `file_path` handed out by `getFile` downloads, with the right token; anything else
  is a 404 like Telegram's.
- A photo comes as Telegram makes it: JPEG copies whose long side is 90, 320, 800, 1280 and
  2560 px, up to the first that holds the whole picture (smallest first).
"""

from __future__ import annotations

import io
from typing import Any

from .errors import bad_request
from .params import Params
from .state import World

MAX_GET_FILE = 20 * 1024 * 1024  # what bots may download through getFile
PHOTO_SIDES = (90, 320, 800, 1280, 2560)
TOO_BIG = "file is too big"
WRONG_ID = "wrong file_id or the file is temporarily unavailable"


def register(world: World, kind: str, content: bytes, *, prefix: str,
             **meta: Any) -> dict[str, Any]:
    """A file a user sent: stored with its bytes under fresh ids."""
    n = world.serial()
    file = {"file_id": f"{prefix}{n:08d}", "file_unique_id": f"AgAD{kind[:2]}{n:08d}",
            "size": len(content), "content": content, "kind": kind, **meta}
    world.files[file["file_id"]] = file
    return file


def photo_sizes_of(world: World, image: bytes) -> list[dict[str, Any]]:
    """PhotoSize objects of a user's photo, each a JPEG file of its own."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:
        opened.seek(0)
        picture = opened.convert("RGB")
    sizes = []
    for side in PHOTO_SIDES:
        scale = min(1.0, side / max(picture.size))
        copy = picture.resize((max(1, round(picture.width * scale)),
                               max(1, round(picture.height * scale))))
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=87)
        file = register(world, "photo", out.getvalue(), prefix="AgACAgIAAxkBAAI",
                        width=copy.width, height=copy.height, mime_type="image/jpeg")
        sizes.append({"file_id": file["file_id"], "file_unique_id": file["file_unique_id"],
                      "width": copy.width, "height": copy.height, "file_size": file["size"]})
        if scale == 1.0:
            break
    return sizes


_FOLDERS = {"photo": ("photos", "jpg"), "voice": ("voice", "oga"),
            "video_note": ("video_notes", "mp4"), "document": ("documents", None)}


class FileService:
    """getFile and downloads."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.paths: dict[str, str] = {}  # file_path -> file_id, once getFile handed it out
        self.downloads: list[str] = []  # file_paths downloaded, in order

    def get_file(self, p: Params) -> dict[str, Any]:
        file_id = p.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise bad_request("file_id not specified")
        file = self.world.files.get(file_id)
        if file is None:
            raise bad_request(WRONG_ID)
        if file["size"] > MAX_GET_FILE:
            raise bad_request(TOO_BIG)
        folder, suffix = _FOLDERS.get(file.get("kind", "document"), ("documents", None))
        if suffix is None:
            name = str(file.get("file_name") or "file")
            suffix = name.rsplit(".", 1)[-1] if "." in name else "bin"
        path = f"{folder}/file_{self.world.serial()}.{suffix}"
        self.paths[path] = file_id
        return {"file_id": file_id, "file_unique_id": file["file_unique_id"],
                "file_size": file["size"], "file_path": path}

    def content(self, path: str) -> bytes | None:
        """The bytes at a file_path getFile gave out, or None (Telegram's 404)."""
        file_id = self.paths.get(path)
        if file_id is None:
            return None
        self.downloads.append(path)
        return self.world.files[file_id]["content"]
