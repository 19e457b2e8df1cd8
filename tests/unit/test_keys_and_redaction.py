"""API keys go only where the operator allowed them; logs never carry a secret."""

from __future__ import annotations

import logging

import pytest

from bot.settings import Settings
from inference.catalogue import CatalogueError, parse_catalogue
from inference.keys import KeyRefused, KeyRing, host_matches
from inference.redaction import RedactingFilter, redact_text, redact_url

CATALOGUE = {
    "default_model": "gpt",
    "models": [
        {"id": "gpt", "title": "GPT", "base_url": "https://api.openai.com/v1", "model": "g",
         "api_key_env": "OPENAI_API_KEY"},
        {"id": "lab", "title": "Lab", "base_url": "http://gpu1:8000/v1", "model": "l",
         "replicas": ["http://gpu2:8000/v1"], "api_key_env": "LAB_KEY"},
    ],
    "api_keys": {"OPENROUTER_API_KEY": ["openrouter.ai"], "LAB_KEY": ["*.lab.example:8443"]},
}
ENV = {"OPENAI_API_KEY": "sk-openai-123456", "LAB_KEY": "lab-secret-123456",
       "OPENROUTER_API_KEY": "or-secret-123456", "BOT_TOKEN": "123:ABCDEFGH",
       "UNRELATED": "do-not-send-me"}


def ring(data=CATALOGUE, env=ENV) -> KeyRing:
    return KeyRing.from_catalogue(parse_catalogue(data), env, reserved=Settings.env_names())


def spec(url: str, key: str | None):
    urls = url.split()
    return parse_catalogue({"default_model": "x", "models": [
        {"id": "x", "title": "X", "base_url": urls[0], "replicas": urls[1:], "model": "m",
         "api_key_env": key}]}).models[0]


@pytest.mark.parametrize(("pattern", "url", "ok"), [
    ("api.openai.com", "https://api.openai.com/v1", True),
    ("api.openai.com", "https://api.openai.com:8443/v1", True),
    ("api.openai.com:443", "https://api.openai.com/v1", True),
    ("api.openai.com:443", "http://api.openai.com/v1", False),
    ("api.openai.com", "https://api.openai.com.evil.com/v1", False),
    ("api.openai.com", "https://api.openai.com@evil.com/v1", False),
    ("*.lab.example", "http://gpu3.lab.example:1/v1", True),
    ("*.lab.example", "http://lab.example/v1", False),
    ("*.lab.example", "http://evil-lab.example/v1", False),
    ("[::1]:8000", "http://[::1]:8000/v1", True),
])
def test_host_patterns(pattern, url, ok):
    assert host_matches(pattern, url) is ok


def test_catalogue_entries_grant_their_own_host_and_port_only():
    keys = ring()
    assert keys.key_for(spec("https://api.openai.com/v1", "OPENAI_API_KEY")) == "sk-openai-123456"
    with pytest.raises(KeyRefused, match=r"only be sent to api\.openai\.com:443, not to evil\.com"):
        keys.key_for(spec("https://evil.com/v1", "OPENAI_API_KEY"))
    with pytest.raises(KeyRefused, match=r"not to api\.openai\.com:8443"):
        keys.key_for(spec("https://api.openai.com:8443/v1", "OPENAI_API_KEY"))
    # Both replicas of a set must be allowed: one foreign replica refuses the whole model.
    assert keys.key_for(spec("http://gpu1:8000/v1 http://gpu2:8000/v1", "LAB_KEY"))
    with pytest.raises(KeyRefused):
        keys.key_for(spec("http://gpu1:8000/v1 http://gpu9:8000/v1", "LAB_KEY"))
    # The api_keys section adds hosts for models added from the chat.
    assert keys.key_for(spec("http://a.lab.example:8443/v1", "LAB_KEY")) == "lab-secret-123456"
    assert keys.key_for(spec("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"))


@pytest.mark.parametrize("name", ["BOT_TOKEN", "DATABASE_URL", "EXPORT_SALT", "POOL_SECRET",
                                  "UNRELATED", "NOT_SET_ANYWHERE"])
def test_unlisted_names_are_refused_alike_whether_set_or_not(name):
    with pytest.raises(KeyRefused) as caught:
        ring().key_for(spec("https://api.openai.com/v1", name))
    message = str(caught.value).replace(name, "NAME")
    assert message == ("NAME is not a key models may use (allowed: LAB_KEY, OPENAI_API_KEY, "
                       "OPENROUTER_API_KEY; the operator declares them in the catalogue's "
                       "api_keys:)")


@pytest.mark.parametrize("where", ["entry", "section"])
def test_the_bots_own_settings_can_never_be_granted(where):
    data = {**CATALOGUE, "models": [dict(m) for m in CATALOGUE["models"]]}
    if where == "entry":
        data["models"][0]["api_key_env"] = "BOT_TOKEN"
    else:
        data["api_keys"] = {"DATABASE_URL": ["api.openai.com"]}
    with pytest.raises(CatalogueError, match="is one of chatmux's own settings"):
        ring(data)


@pytest.mark.parametrize(("url", "problem"), [
    ("http://h/v1?key=abc", "must not have a ?query"),
    ("http://h/v1#frag", "must not have a ?query"),
    ("http://evil.com\\@api.openai.com/v1", "without spaces or backslashes"),
    ("http://h:70000/v1", "not a valid URL"),
    ("http:///v1", "has no host"),
])
def test_base_urls_are_plain_server_urls(url, problem):
    with pytest.raises(CatalogueError, match="base_url: .*" + problem.replace("?", r"\?")):
        spec(url, None)


def test_api_keys_section_is_validated():
    for bad, problem in [({"1X": ["h"]}, "not an environment variable name"),
                         ({"K": []}, "list the hosts"),
                         ({"K": ["http://h/"]}, "is not a host")]:
        with pytest.raises(CatalogueError, match=problem):
            parse_catalogue({**CATALOGUE, "api_keys": bad})


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:pass@host:8000/v1?key=abc&x=1", "http://***@host:8000/v1?key=***&x=1"),
    ("https://h/v1?api_key=s&access_token=t&page=2",
     "https://h/v1?api_key=***&access_token=***&page=2"),
    ("https://api.telegram.org/bot123:AAbb-cc/getMe", "https://api.telegram.org/bot***/getMe"),
    ("http://gpu1:8000/v1", "http://gpu1:8000/v1"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_masks_urls_and_known_secrets():
    text = ('HTTP Request: POST http://u:hunter2@127.0.0.1:9/v1/chat "200 OK" '
            'with sk-openai-123456 and /bot42:XYZxyz/sendMessage')
    assert redact_text(text, ["sk-openai-123456"]) == (
        'HTTP Request: POST http://***@127.0.0.1:9/v1/chat "200 OK" with *** and '
        '/bot***/sendMessage')


def test_filter_redacts_messages_arguments_and_tracebacks():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter(["lab-secret-123456"]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling %s with %s", "http://a:b@h/v1?token=t", "lab-secret-123456")
        try:
            raise ValueError("boom at http://x:y@h/ key lab-secret-123456")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    joined = "\n".join(records)
    assert "calling http://***@h/v1?token=*** with ***" in joined
    assert "ValueError: boom at http://***@h/ key ***" in joined
    assert "lab-secret" not in joined and "x:y@" not in joined and "a:b@" not in joined
