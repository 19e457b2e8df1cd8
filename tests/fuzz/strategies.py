"""Hypothesis strategies for what reaches the bot: text, entities, updates, callback data."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Characters that break naive text handling: bidi controls, zero-width joiners and spaces,
# combining marks, astral emoji (two UTF-16 units), a BOM, NUL and other controls.
WEIRD = ("\u202e", "\u202d", "\u2066", "\u200f", "\u200b", "\u200c", "\u200d", "\u2060",
         "\ufeff", "\u0301", "\u0336", "\U0001f9d1\u200d\U0001f680", "\U0001f44d\U0001f3fd",
         "\x00", "\x1b", "\r\n", "\t", "\u2028", "\u00a0", "\u3000", "ﷺ", "𒐫", "ⁿ", "٣", "²")
TELEGRAM_TEXT_LIMIT = 4096  # UTF-16 units in a message; captions 1024
CALLBACK_DATA_LIMIT = 64  # bytes

chars = st.characters(codec="utf-8", exclude_categories=("Cs",))  # any but lone surrogates
weird = st.sampled_from(WEIRD)


@st.composite
def texts(draw: st.DrawFn, max_size: int = 300) -> str:
    """Short unicode text mixed with weird characters, or (rarely) a huge run near the limit."""
    if draw(st.integers(0, 9)) == 0:
        unit = draw(st.one_of(weird, st.text(chars, min_size=1, max_size=3)))
        return unit * (TELEGRAM_TEXT_LIMIT // 2 // max(1, len(unit)))
    parts = draw(st.lists(st.one_of(st.text(chars, max_size=20), weird), max_size=15))
    return "".join(parts)[:max_size]


ENTITY_TYPES = ("mention", "hashtag", "cashtag", "bot_command", "url", "email",
                "phone_number", "bold", "italic", "underline", "strikethrough", "spoiler",
                "blockquote", "expandable_blockquote", "code", "pre", "text_link",
                "text_mention", "custom_emoji", "date_time")


@st.composite
def entities(draw: st.DrawFn, text: str) -> list[dict[str, Any]]:
    """Entities that may point outside the text, overlap, or have odd lengths."""
    size = len(text.encode("utf-16-le")) // 2
    bound = st.integers(-3, size + 5) | st.integers(0, 10**6)
    found = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(ENTITY_TYPES))
        entity: dict[str, Any] = {"type": kind, "offset": draw(bound), "length": draw(bound)}
        if kind == "text_link":
            entity["url"] = draw(st.sampled_from(["https://example.org", "tg://user?id=1",
                                                  "javascript:alert(1)", ""]))
        elif kind == "text_mention":
            entity["user"] = {"id": draw(st.integers(1, 2**40)), "is_bot": False,
                              "first_name": draw(texts(20))}
        elif kind == "pre":
            entity["language"] = draw(st.text(chars, max_size=10))
        elif kind == "custom_emoji":
            entity["custom_emoji_id"] = draw(st.text("0123456789", min_size=1, max_size=20))
        elif kind == "date_time":
            entity["unix_time"] = draw(st.integers(0, 2**33))
        found.append(entity)
    return found


USER_COMMANDS = ("start", "help", "model", "new", "arena", "leaderboard", "stats", "history",
                 "lang", "cancel", "system", "persona", "settings", "usage")
ADMIN_COMMANDS = ("addmodel", "rmmodel", "enable", "disable", "models", "export", "tier",
                  "ban", "unban")


# Around the 32- and 64-bit edges (Postgres INTEGER and BIGINT), and numbers that are not.
NUMBERS = ("-1", "0", "-0", "1", str(2**31), str(2**63 - 1), str(2**63), str(-(2**63) - 1),
           str(2**64), "99999999999999999999", "9" * 40, "1e3", "0x10", "١٢", "", " 1",
           "NaN", "abc", "1.5", "+5")


def numbers() -> st.SearchStrategy[str]:
    """Numbers of every shape: beyond 64 bits, negative, in other scripts' digits, odd."""
    return st.one_of(
        st.sampled_from(NUMBERS),
        st.builds(lambda edge, step: str(edge + step),
                  st.sampled_from([2**31, 2**63, 2**64, 10**20, -(2**63), -(2**31)]),
                  st.integers(-2, 2)),
        st.integers().map(str),
        st.text(st.characters(categories=["Nd"]), min_size=1, max_size=22),
    )


def command_args() -> st.SearchStrategy[str]:
    """Arguments: random text, key=value soup, quotes, numbers of every shape."""
    word = st.one_of(
        st.text(chars, min_size=1, max_size=12),
        numbers(),
        st.sampled_from(["alpha", "beta", "ALPHA", "alpha\u200b", "../alpha", "-1", "0",
                         "99999999999999999999", "1e309", "nan", "inf", "²", "٣", "reset",
                         "off", "dpo", "kto", "sft", "arena", "jsonl", "images", "en", "ru",
                         '"', "'", "\\", "=", "url=", "model=", "hf=", "key_env=ALPHA_KEY",
                         "standard", "premium", "@Ann", "-100", "7002", "@7003", "٧٠٠٢",
                         "context=-5", "title=\"x", "k=0", "gpus=999"]),
        st.builds(lambda k, v: f"{k}={v}",
                  st.sampled_from(["url", "model", "title", "key_env", "vision", "context",
                                   "hf", "draft", "k", "gpus", "dtype", "trust_remote_code",
                                   "URL", "x"]),
                  st.text(chars, max_size=12)),
    )
    return st.one_of(
        st.lists(word, max_size=6).map(" ".join),
        texts(),
    )


def command_text(commands: tuple[str, ...]) -> st.SearchStrategy[str]:
    """`/command[@bot] args`, sometimes with the bot's name, someone else's, or odd spacing."""
    return st.builds(
        lambda name, at, sep, args: f"/{name}{at}{sep}{args}".rstrip(),
        st.sampled_from(commands),
        st.sampled_from(["", "", "@chatmux_test_bot", "@other_bot", "@CHATMUX_TEST_BOT"]),
        st.sampled_from([" ", " ", "  ", "\n", "\u00a0"]),
        command_args(),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(chars, max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)


def forged_callback_data() -> st.SearchStrategy[str]:
    """Random callback data within Telegram's 64 bytes."""
    return st.text(chars, max_size=CALLBACK_DATA_LIMIT).filter(
        lambda s: len(s.encode()) <= CALLBACK_DATA_LIMIT)


@st.composite
def mutated_callback_data(draw: st.DrawFn, real: list[str], foreign_ids: list[str]) -> str:
    """A button's real data with a field changed: another id (someone else's), a number of
    the wrong shape, a prefix swapped, a field added or dropped, or truncated."""
    data = draw(st.sampled_from(real))
    fields = data.split(":")
    how = draw(st.sampled_from(["number", "number", "foreign", "prefix", "add", "drop", "cut",
                                "text"]))
    numeric = [i for i, part in enumerate(fields) if part.isdigit()]
    if how in ("number", "foreign") and numeric:  # ids are what a forger changes
        index = draw(st.sampled_from(numeric))
    else:
        index = draw(st.integers(0, len(fields) - 1))
    if how == "number":
        fields[index] = draw(numbers())
    elif how == "foreign" and foreign_ids:
        fields[index] = draw(st.sampled_from(foreign_ids))
    elif how == "prefix":
        prefixes = sorted({d.split(":")[0] for d in real})
        fields[0] = draw(st.sampled_from(prefixes))
    elif how == "add":
        fields.insert(index, draw(st.text(chars, max_size=5)))
    elif how == "drop" and len(fields) > 1:
        del fields[index]
    elif how == "cut":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    else:
        fields[index] = draw(st.text(chars, max_size=8))
    return ":".join(fields)
