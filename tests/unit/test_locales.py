"""Every language has every text, with the same placeholders, and code asks only for texts
that exist: a translation is a directory of .ftl files, and a gap in one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fluent.syntax import FluentParser
from fluent.syntax import ast as fluent_ast
from fluent.syntax.visitor import Visitor

from bot import texts
from bot.answering import ERROR_KINDS
from bot.app import USER_COMMANDS

ROOT = Path(__file__).resolve().parents[2]


class Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_VariableReference(self, node: fluent_ast.VariableReference) -> None:
        self.names.add(node.id.name)


def catalog(directory: Path) -> dict[str, set[str]]:
    """Message id → the variables it uses, over every .ftl file of one language."""
    messages: dict[str, set[str]] = {}
    for path in sorted(directory.glob("*.ftl")):
        resource = FluentParser().parse(path.read_text(encoding="utf-8"))
        for entry in resource.body:
            if isinstance(entry, fluent_ast.Junk):
                raise AssertionError(f"{path}: not valid Fluent: {entry.content[:80]!r}")
            if isinstance(entry, fluent_ast.Message):
                # The runtime keeps one of two same-named messages: a key defined twice (in
                # one file or across a language's files) would silently lose a text.
                if entry.id.name in messages:
                    raise AssertionError(f"{path}: {entry.id.name} is defined twice")
                collect = Variables()
                collect.visit(entry)
                messages[entry.id.name] = collect.names
    return messages


def gaps(locales: Path) -> list[str]:
    """What each language lacks (or has extra) compared with English."""
    english = catalog(locales / texts.DEFAULT_LANG)
    problems = []
    for directory in sorted(p for p in locales.iterdir() if p.is_dir()):
        other = catalog(directory)
        for key in sorted(english.keys() - other.keys()):
            problems.append(f"{directory.name}: missing {key}")
        for key in sorted(other.keys() - english.keys()):
            problems.append(f"{directory.name}: {key} is not in English")
        for key in sorted(english.keys() & other.keys()):
            if other[key] - english[key]:
                problems.append(f"{directory.name}: {key} uses {sorted(other[key] - english[key])}"
                                " that English does not pass")
    return problems


def test_every_language_has_every_text_with_the_same_placeholders() -> None:
    assert set(texts.LANGUAGES) >= {"en", "ru"}
    assert gaps(texts.LOCALES_DIR) == []


def test_a_missing_text_is_caught(tmp_path: Path) -> None:
    for lang, body in (("en", "hello = Hi, { $name }\nbye = Bye\n"),
                       ("de", "hello = Hallo, { $nom }\n")):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "chatmux.ftl").write_text(body, encoding="utf-8")
    assert gaps(tmp_path) == ["de: missing bye",
                              "de: hello uses ['nom'] that English does not pass"]


def test_a_text_defined_twice_is_caught(tmp_path: Path) -> None:
    (tmp_path / "a.ftl").write_text("hello = Hi\n", encoding="utf-8")
    (tmp_path / "b.ftl").write_text("hello = Hello\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="hello is defined twice"):
        catalog(tmp_path)


def keys_used_in_code() -> set[str]:
    """Literal keys passed to `t(...)` anywhere in the bot, plus the ones built from a prefix."""
    used = {f"err_{kind}" for kind in ERROR_KINDS} | {f"cmd_{c}" for c in USER_COMMANDS}
    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "t" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                used.add(node.args[0].value)
    return used


def test_code_asks_only_for_texts_that_exist() -> None:
    english = catalog(texts.LOCALES_DIR / "en")
    assert sorted(keys_used_in_code() - english.keys()) == []


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_each_text_formats(lang: str) -> None:
    for key, variables in catalog(texts.LOCALES_DIR / lang).items():
        assert texts.t(key, lang, **{v: "x" for v in variables}).strip(), key


def test_language_codes_map_to_catalogs() -> None:
    assert texts.lang_of("ru-RU") == "ru"
    assert texts.lang_of("uk") == "ru"
    assert texts.lang_of("xx") == texts.lang_of(None) == "en"
