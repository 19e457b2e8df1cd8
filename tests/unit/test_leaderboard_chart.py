"""The leaderboard chart: a PNG of plausible size for 1 to 30 models, any names, any thread;
and the strict fake Bot API taking it (and refusing what Telegram refuses) as a photo."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import numpy as np
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from storage.leaderboard import Battle, Row, leaderboard
from storage.leaderboard_chart import render_chart
from tests.fakes.telegram import methods as telegram_methods
from tests.fakes.telegram_api import FakeTelegram

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def rows_for(names: list[str], *, spread: float = 25.0, ci: float = 18.0) -> list[Row]:
    return [Row(i + 1, name, 1300.0 - spread * i, 1300.0 - spread * i - ci,
                1300.0 - spread * i + ci, 100 + 7 * i, 0.6 - 0.01 * i)
            for i, name in enumerate(names)]


def fitted_rows() -> list[Row]:
    """Rows the way the bot gets them: a bootstrap fit of synthetic battles."""
    rng = np.random.default_rng(1)
    true = {"alpha": 1200.0, "бета": 1100.0, "gamma-7b": 1000.0, "δ-model": 900.0}
    names = list(true)
    battles = []
    for _ in range(1500):
        a, b = rng.choice(len(names), 2, replace=False)
        p = 1 / (1 + 10 ** ((true[names[b]] - true[names[a]]) / 400))
        battles.append(Battle(names[a], names[b], "a" if rng.random() < p else "b"))
    return leaderboard(battles, rounds=50)


def test_png_of_telegram_size_for_one_and_thirty_models():
    one = render_chart(rows_for(["solo"]))
    width, height = png_size(one)
    assert width == 1280 and 150 < height < 400
    thirty = render_chart(rows_for([f"model-{i:02d}" for i in range(30)]))
    width, height = png_size(thirty)
    assert width == 1280 and 1000 < height < 2000
    # Telegram's photo limits: w + h ≤ 10000, aspect ratio ≤ 20, at most 10 MB.
    assert width + height <= 10000 and max(width, height) / min(width, height) <= 20
    assert len(thirty) < 10 * 1024 * 1024


def test_height_grows_with_the_number_of_models():
    heights = [png_size(render_chart(rows_for([f"m{i}" for i in range(n)])))[1]
               for n in (2, 8, 16)]
    assert heights == sorted(heights) and heights[2] - heights[0] > 500


def test_fitted_rows_with_cyrillic_greek_and_dollar_names():
    png = render_chart(fitted_rows(), title="Рейтинг арены — $5 модели")
    assert png_size(png)[0] == 1280
    names = ["ГигаЧат Про", "Яндекс ГПТ 5", "price $1/$2", "llama-3.1-8b"]
    assert png_size(render_chart(rows_for(names)))[0] == 1280


def test_rows_without_intervals_and_identical_ratings():
    nan = float("nan")
    rows = [Row(1, "a", 1000.0, nan, nan, 10, 0.5), Row(2, "b", 1000.0, nan, nan, 10, 0.5)]
    assert png_size(render_chart(rows))[0] == 1280


def test_no_rows_is_an_error():
    with pytest.raises(ValueError, match="no leaderboard rows"):
        render_chart([])


def test_threads_render_the_same_bytes_as_one_at_a_time():
    jobs = [rows_for([f"m{i}" for i in range(n)]) for n in (3, 9, 3, 9, 5, 5)]
    alone = [render_chart(rows) for rows in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(render_chart, jobs))
    assert together == alone


# --- the fake Bot API takes the chart as a photo ------------------------------------------
USER = 1001


class _Session(AiohttpSession):
    """Real aiogram session minus the 250 ms sleep in ``close()``."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    server.user_sends("hi", chat_id=USER)
    yield server
    await server.stop()
    assert not server.internal_errors


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    b = Bot(fake.token, session=_Session(api=TelegramAPIServer.from_base(fake.base_url)))
    yield b
    await b.session.close()


def fake_png(width: int, height: int) -> bytes:
    """A valid PNG header of any size (the fake reads the IHDR only)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return PNG + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


async def test_fake_send_photo_records_the_upload(fake: FakeTelegram, bot: Bot):
    png = render_chart(rows_for(["alpha", "beta"]))
    width, height = png_size(png)
    sent = await bot.send_photo(USER, BufferedInputFile(png, "board.png"),
                                caption="<b>Ratings</b>", parse_mode="HTML")
    assert sent.photo is not None and sent.caption == "Ratings"
    assert [(s.width, s.height) for s in sent.photo][-1] == (width, height)
    assert [max(s.width, s.height) for s in sent.photo][:-1] == [90, 320, 800]
    [shown] = fake.bot_messages(USER)
    assert shown.photo is not None and shown.photo["content"] == png
    assert shown.photo["file_name"] == "board.png"
    assert shown.caption_entities == [{"type": "bold", "offset": 0, "length": 7}]
    again = await bot.send_photo(USER, sent.photo[-1].file_id)  # resend by file_id
    assert again.photo is not None and again.photo[-1].width == width
    big = await bot.send_photo(USER, BufferedInputFile(fake_png(5000, 300), "wide.png"))
    assert big.photo is not None and max(big.photo[-1].width, big.photo[-1].height) == 2560


async def test_fake_send_photo_refuses_like_telegram(fake: FakeTelegram, bot: Bot,
                                                     monkeypatch: pytest.MonkeyPatch):
    png = fake_png(640, 480)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(USER, BufferedInputFile(png, "x.png"), caption="c" * 1025)
    await bot.send_photo(USER, BufferedInputFile(png, "x.png"), caption="c" * 1024)
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(USER, BufferedInputFile(b"not an image", "x.png"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER, BufferedInputFile(fake_png(9000, 1001), "x.png"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER, BufferedInputFile(fake_png(2100, 100), "x.png"))
    monkeypatch.setattr(telegram_methods, "MAX_PHOTO", len(png))  # stands in for 10 MB
    await bot.send_photo(USER, BufferedInputFile(png, "ok.png"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_SAVE_FILE_INVALID"):
        await bot.send_photo(USER, BufferedInputFile(png + b"\0", "big.png"))
    document = await bot.send_document(USER, BufferedInputFile(b"data", "a.txt"))
    assert document.document is not None
    with pytest.raises(TelegramBadRequest, match="type of file mismatch"):
        await bot.send_photo(USER, document.document.file_id)
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(USER, "no-such-file-id")
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/bot{fake.token}/sendPhoto"
        async with http.post(url, json={"chat_id": USER}) as resp:
            body = await resp.json()
    assert body == {"ok": False, "error_code": 400,
                    "description": "Bad Request: there is no photo in the request"}
    assert len(fake.bot_messages(USER)) == 3  # only what was accepted shows
