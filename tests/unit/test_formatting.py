"""Markdown → entities conversion and splitting into messages Telegram accepts."""

from __future__ import annotations

from aiogram.types import MessageEntity

from bot.formatting import (
    KEEP_PARTS,
    MAX_PARTS,
    MESSAGE_LIMIT,
    Chunk,
    cut_markdown,
    frame_parts,
    frame_tail,
    layout,
    render,
    render_parts,
    split,
    utf16_len,
)


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


# --- very long answers: a few messages, then the rest as a file --------------------------------

def _paragraphs(n: int, size: int = 900) -> str:
    return "\n\n".join(f"P{i} " + "x" * size for i in range(n))


def test_cut_markdown_cuts_between_paragraphs_within_the_budget():
    text = _paragraphs(10, 100)
    head, rest = cut_markdown(text, 350)
    assert len(head) <= 350 and head.endswith("x") and rest.startswith("P3 ")
    assert f"{head}\n\n{rest}" == text
    assert cut_markdown("short", 100) == ("short", "")


def test_cut_markdown_never_cuts_inside_a_code_block_when_a_boundary_fits():
    code = "```python\n" + "\n\n".join(f"x_{i} = {i}" for i in range(50)) + "\n```"
    text = f"intro\n\n{code}\n\nafter"
    head, rest = cut_markdown(text, len(text) - 10)
    assert head == "intro" and rest.startswith("```python")


def test_cut_markdown_closes_and_reopens_one_long_code_block():
    code = "~~~~sql\n" + "\n".join(f"select {i};" for i in range(500)) + "\n~~~~"
    head, rest = cut_markdown(code, 1000)
    assert head.startswith("~~~~sql\n") and head.endswith("\n~~~~") and len(head) <= 1005
    assert rest.startswith("~~~~sql\nselect ") and rest.endswith("~~~~")
    rendered = render(head)
    assert [e.type for e in rendered.entities] == ["pre"]


def test_layout_keeps_up_to_four_messages_and_sends_the_rest_as_a_file():
    four = layout(_paragraphs(16))
    assert four.rest is None and len(four.parts) == 4
    long = _paragraphs(300)
    plan = layout(long)
    assert plan.rest is not None and len(plan.parts) == KEEP_PARTS <= MAX_PARTS
    shown = "\n\n".join(p.text for p in plan.parts)
    assert f"{shown}\n\n{plan.rest}" == long  # nothing lost, nothing repeated
    assert all(utf16_len(p.text) <= MESSAGE_LIMIT for p in plan.parts)


def test_layout_puts_the_header_on_the_first_part():
    header = Chunk("Model A", [MessageEntity(type="bold", offset=0, length=7)])
    plan = layout(_paragraphs(300), header)
    assert plan.parts[0].text.startswith("Model A\n\nP0 ") and plan.rest is not None


def test_frames_render_only_what_they_show():
    long = _paragraphs(300)
    parts = frame_parts(long)
    assert len(parts) == KEEP_PARTS and parts[0].text.startswith("P0 ")
    number, last = frame_tail(long)
    assert "P299 " in last.text and last.text.endswith(long[-50:])  # the end being written
    assert utf16_len(last.text) <= MESSAGE_LIMIT and number == len(long) // MESSAGE_LIMIT
    assert frame_tail(_paragraphs(2)) == (0, render_parts(_paragraphs(2))[0])
    assert frame_tail("   ") is None
