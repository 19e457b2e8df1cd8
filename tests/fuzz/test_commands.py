"""Admin and user commands with random arguments, from people allowed and not."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.harness import ADMIN, GROUP, USERS, FuzzBot
from tests.fuzz.strategies import ADMIN_COMMANDS, chars, command_args, command_text, numbers

pytestmark = pytest.mark.fuzz

CONFIG_COMMANDS = ("system", "persona", "settings", "lang", "model")
MODEL_IDS = {"alpha", "beta"}


@pytest.fixture
async def known(fuzz: FuzzBot) -> FuzzBot:
    """Everyone has talked to the bot (in private, and USERS in the group, where they are
    plain members): their rows exist, so a command that changes nothing writes nothing."""
    for user in (ADMIN, *USERS):
        await fuzz.send("/start", chat_id=user)
    for user in USERS:
        await fuzz.send("/start@chatmux_test_bot", chat_id=GROUP, user_id=user,
                        chat_type="supergroup")
    await fuzz.settle()
    return fuzz


async def _sends(fuzz: FuzzBot, text: str, where: int, user: int) -> int:
    since = fuzz.begin()
    update = fuzz.telegram.user_sends(text, chat_id=where, user_id=None if where > 0 else user,
                                      chat_type="private" if where > 0 else "supergroup")
    fuzz.telegram.world.updates.remove(update)
    await fuzz.feed(update)
    await fuzz.idle()
    return since


@fuzz_settings(300)
@given(data=st.data())
async def test_admin_commands_from_anyone_else_write_nothing(known, data):
    """/addmodel, /rmmodel, /enable, /disable, /models, /export, /tier, /ban, /unban with any
    arguments, from a person not in ADMIN_IDS, or from the admin in a group: as if they did
    not exist."""
    fuzz = known
    user, where = data.draw(st.sampled_from(
        [(USERS[0], USERS[0]), (USERS[1], USERS[1]), (USERS[0], GROUP)]), label="who, where")
    text = data.draw(command_text(ADMIN_COMMANDS), label="text")
    before = await fuzz.checksums()
    since = await _sends(fuzz, text, where, user)
    await fuzz.assert_unchanged(before)
    fuzz.assert_clean(since)


def _names_someone(word: str) -> bool:
    """`word` could name a person the bot knows (by id, in any digits Python reads)."""
    try:
        return int(word.removeprefix("@")) in (ADMIN, *USERS)
    except ValueError:
        return False


@st.composite
def bad_admin_command(draw: st.DrawFn, fake_url: str) -> str:
    """An admin command whose arguments cannot be carried out: no such model or person,
    malformed options, a server that is down or does not serve the model. (`/models` and
    `/export` only read.)"""
    command = draw(st.sampled_from(ADMIN_COMMANDS), label="command")
    if command in ("rmmodel", "enable", "disable"):
        args = draw(command_args(), label="args")
        assume(args.strip() not in MODEL_IDS)
    elif command in ("tier", "ban", "unban"):
        # `<id or @username> [tier or reason]`, the id of every shape, or anything at all.
        ref = draw(numbers() | st.text(chars, max_size=12)
                   | st.sampled_from(["@Ann", "@", "@" + "a" * 40, "-", "--1", "@7002"]),
                   label="ref")
        rest = draw(st.sampled_from(["", "standard", "premium", "gold"])
                    | command_args(), label="rest")
        args = draw(st.sampled_from([f"{ref} {rest}", ref]) | command_args(), label="args")
        assume(not any(_names_someone(word) for word in args.split()))
    elif command == "addmodel" and draw(st.booleans()):
        # Well-formed, but the server is down, takes credentials in the URL, or does not
        # serve the model named.
        model_id = draw(st.sampled_from(["alpha", "gamma", "x.y-z"]), label="id")
        url = draw(st.sampled_from([fake_url, "http://127.0.0.1:9/v1",
                                    "http://u:p@127.0.0.1:9/v1"]), label="url")
        served = draw(st.text(chars, min_size=1, max_size=20).map(
            lambda s: s.replace('"', "")).filter(
            lambda s: s.strip() and s not in ("alpha-served", "beta-served")), label="model")
        args = f'{model_id} url={url} model="{served}"'
        args += draw(st.sampled_from(["", " vision=1", " context=99999999999", " key_env=NOPE",
                                      " key_env=ALPHA_KEY", ' title="\u202e"']), label="more")
    else:
        args = draw(command_args(), label="args")
    return f"/{command} {args}".rstrip()


@fuzz_settings(600)
@given(data=st.data())
async def test_malformed_admin_commands_write_nothing(known, models, data):
    """The admin's commands with arguments that cannot work get a usage line or a reason,
    and change nothing."""
    fuzz = known
    text = data.draw(bad_admin_command(models.base_url), label="text")
    before = await fuzz.checksums()
    since = await _sends(fuzz, text, ADMIN, ADMIN)
    await fuzz.assert_unchanged(before)
    fuzz.assert_clean(since)
    assert fuzz.shown_texts(since), "every admin command gets an answer"


@fuzz_settings(300)
@given(data=st.data())
async def test_configuration_commands_with_random_arguments(known, data):
    """/system, /persona, /settings, /lang, /model with any arguments, one to three in a row
    (one may set what the next shows): handled without error everywhere; in a group, from a
    plain member, nothing changes. Each example starts from no choices made."""
    fuzz = known
    user, where = data.draw(st.sampled_from(
        [(ADMIN, ADMIN), (USERS[0], USERS[0]), (USERS[0], GROUP), (USERS[1], GROUP)]),
        label="who, where")
    texts = data.draw(st.lists(command_text(CONFIG_COMMANDS), min_size=1, max_size=3),
                      label="texts")
    await fuzz.reset_choices()
    before = await fuzz.checksums()
    for text in texts:
        if where == GROUP and "@" not in text.split()[0]:
            text = text.replace(" ", "@chatmux_test_bot ", 1) if " " in text else text
        since = await _sends(fuzz, text, where, user)
        fuzz.assert_clean(since)
    if where == GROUP:
        await fuzz.assert_unchanged(before)
