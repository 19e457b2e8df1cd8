"""Markdown → entities conversion and splitting into messages Telegram accepts."""

from __future__ import annotations

from aiogram.types import MessageEntity

from bot.formatting import MESSAGE_LIMIT, Chunk, render, render_parts, split, utf16_len


def _entities_in_bounds(chunk: Chunk) -> bool:
    size = utf16_len(chunk.text)
    return all(e.offset >= 0 and e.length > 0 and e.offset + e.length <= size
               for e in chunk.entities)


def test_render_turns_markdown_into_entities_without_markup():
    chunk = render("Some **bold**, `code` and [a link](https://example.com)")
    assert "**" not in chunk.text and "`" not in chunk.text and "](" not in chunk.text
    types = {e.type for e in chunk.entities}
    assert {"bold", "code", "text_link"} <= types
    bold = next(e for e in chunk.entities if e.type == "bold")
    assert chunk.text[bold.offset : bold.offset + bold.length] == "bold"


def test_offsets_are_utf16_units():
    chunk = render("😀😀 **bold**")
    bold = next(e for e in chunk.entities if e.type == "bold")
    assert bold.offset == 5  # two emoji are 4 UTF-16 units, plus the space


def test_unbalanced_markdown_never_raises():
    for text in ["**unclosed", "_x", "```python\nprint(1)", "[broken](", "a * b _ c ` d"]:
        parts = render_parts(text)
        assert parts and all(_entities_in_bounds(p) for p in parts)


def test_short_text_is_one_part():
    assert [p.text for p in render_parts("hello")] == ["hello"]


def test_whitespace_only_gives_no_parts():
    assert render_parts("  \n\n  ") == []


def test_long_answer_splits_on_paragraphs_within_the_limit():
    paragraph = "word " * 150  # ~750 chars
    parts = render_parts("\n\n".join([paragraph.strip()] * 20))
    assert len(parts) > 1
    for part in parts:
        assert utf16_len(part.text) <= MESSAGE_LIMIT
        assert part.text.endswith("word")  # cut between paragraphs, not mid-paragraph
        assert not part.text[0].isspace()


def test_code_block_is_not_cut_when_a_paragraph_boundary_fits():
    intro = ("intro " * 250).strip()
    code = "\n".join(f"line_{i} = {i}" for i in range(150))
    parts = render_parts(f"{intro}\n\n{intro}\n\n```python\n{code}\n```\n\nafter")
    pre_parts = [p for p in parts if any(e.type == "pre" for e in p.entities)]
    assert len(pre_parts) == 1
    pre = next(e for e in pre_parts[0].entities if e.type == "pre")
    assert pre.offset == 0 and "line_149 = 149" in pre_parts[0].text


def test_a_code_block_longer_than_a_message_is_cut_on_lines_and_stays_code():
    code = "\n".join(f"value_{i} = compute({i})" for i in range(600))
    parts = render_parts(f"```python\n{code}\n```")
    assert len(parts) >= 3
    for part in parts:
        assert utf16_len(part.text) <= MESSAGE_LIMIT
        assert _entities_in_bounds(part)
        assert [e.type for e in part.entities] == ["pre"]
        assert part.text.splitlines()[-1].startswith("value_")  # whole lines only
    joined = "\n".join(p.text for p in parts)
    assert joined.count("compute(") == 600


def test_text_without_newlines_is_hard_cut_and_nothing_is_lost():
    text = "x" * 9000
    parts = split(Chunk(text))
    assert [len(p.text) for p in parts] == [4000, 4000, 1000]


def test_emoji_are_counted_in_utf16_and_never_split():
    text = "😀" * 3000  # 6000 UTF-16 units
    parts = split(Chunk(text))
    assert all(utf16_len(p.text) <= MESSAGE_LIMIT for p in parts)
    assert "".join(p.text for p in parts) == text


def test_entities_crossing_a_cut_are_clipped_into_both_parts():
    text = "a" * 3990 + "\n" + "b" * 100
    chunk = Chunk(text, [MessageEntity(type="bold", offset=3980, length=60)])
    first, second = split(chunk)
    assert first.entities[0].offset == 3980 and first.entities[0].length == 10
    assert second.entities[0].offset == 0 and second.entities[0].length == 49


def test_ten_thousand_characters_of_markdown():
    blocks = []
    for i in range(50):
        blocks.append(f"## Section {i}\n\nSome **bold** text and `code` in paragraph {i}. " * 3)
        if i % 10 == 0:
            blocks.append("```python\n" + "print('hello')\n" * 20 + "```")
    markdown = "\n\n".join(blocks)
    assert len(markdown) >= 10_000
    parts = render_parts(markdown)
    assert len(parts) >= 3
    for part in parts:
        assert 0 < utf16_len(part.text) <= MESSAGE_LIMIT
        assert _entities_in_bounds(part)
