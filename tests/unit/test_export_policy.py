"""Export policy pieces without a database: catalogue fields, /addmodel options, the mask
arithmetic and the card's language and licence fields."""

from __future__ import annotations

import pytest

from bot.admin_args import UsageError, endpoint_spec, split_args
from bot.export_policy import catalogue_policies
from inference.catalogue import CatalogueError, parse_catalogue
from storage.exports import ModelPolicy
from storage.exports.card import _license, language_code
from storage.exports.policy import (
    FORGOTTEN,
    NO_CONSENT,
    RESTRICTED,
    RowPolicy,
    policy_from_spec,
)

ENTRY = {"id": "a", "base_url": "http://x/v1", "model": "m"}


def test_catalogue_policies_cover_entries_and_retired_models():
    catalogue = parse_catalogue({
        "default_model": "a",
        "models": [{**ENTRY, "data_license": "apache-2.0"},
                   {**ENTRY, "id": "b", "exportable": False, "enabled": False}],
        "retired_models": [{"id": "old", "data_license": "llama2"}, {"id": "gone",
                                                                     "exportable": False}],
    })
    assert catalogue_policies(catalogue) == {
        "a": ModelPolicy(True, "apache-2.0"), "b": ModelPolicy(False, None),
        "old": ModelPolicy(True, "llama2"), "gone": ModelPolicy(False, None)}
    with pytest.raises(CatalogueError, match="retired_models: 'a' is also one of the models"):
        parse_catalogue({"default_model": "a", "models": [ENTRY],
                         "retired_models": [{"id": "a"}]})
    with pytest.raises(CatalogueError, match="exportable"):
        parse_catalogue({"default_model": "a", "models": [{**ENTRY, "exportable": "perhaps"}]})


@pytest.mark.parametrize(("args", "expected"), [
    ("x url=http://h/v1 model=m", (True, None)),
    ("x url=http://h/v1 model=m exportable=0", (False, None)),
    ('x url=http://h/v1 model=m exportable=yes data_license="CC BY 4.0"', (True, "CC BY 4.0")),
])
def test_addmodel_takes_the_policy(args, expected):
    spec = endpoint_spec(*split_args(args))
    assert (spec.exportable, spec.data_license) == expected
    stored = spec.model_dump(mode="json", exclude={"id"})
    assert policy_from_spec(stored) == ModelPolicy(*expected)


def test_an_entry_stored_before_the_policy_fields_keeps_the_files():
    old = {"base_url": "http://h/v1", "model": "m"}
    assert policy_from_spec(old, ModelPolicy(False, "tos")) == ModelPolicy(False, "tos")
    assert policy_from_spec(old) == ModelPolicy()
    assert policy_from_spec({**old, "exportable": True, "data_license": None},
                            ModelPolicy(False, "tos")) == ModelPolicy(True, None)


@pytest.mark.parametrize("args", ["x url=http://h/v1 model=m exportable=2",
                                  "x url=http://h/v1 model=m exportable=0 exportable=1",
                                  "x url=http://h/v1 model=m data_license=" + "x" * 201])
def test_addmodel_refuses_bad_policy_values(args):
    with pytest.raises(UsageError):
        endpoint_spec(*split_args(args))


def test_marks_and_licences():
    policy = RowPolicy({"open": ModelPolicy(True, "mit"), "closed": ModelPolicy(False, "tos"),
                        "bare": ModelPolicy()}, unknown_restricted=True, refused={7})
    row = (policy.message_mark("user", "original", None, 1)
           | policy.message_mark("assistant", "original", "open", None)
           | policy.message_mark("assistant", "original", "bare", None))
    assert row & (FORGOTTEN | NO_CONSENT | RESTRICTED) == 0
    assert policy.licences(row) == ["mit", "unknown"]
    assert policy.reason(row, include_restricted=False, include_images=False) is None
    assert policy.message_mark("assistant", "original", "closed", None) & RESTRICTED
    assert policy.message_mark("assistant", "original", "nobody-knows", None) & RESTRICTED
    assert policy.message_mark("assistant", "edited", "closed", 1) == 0  # a user's words
    assert policy.message_mark("user", "original", None, 7) == NO_CONSENT
    assert policy.message_mark("user", "forgotten", None, None) == FORGOTTEN
    both = FORGOTTEN | RESTRICTED
    assert policy.reason(both, include_restricted=False, include_images=False) == "forgotten"
    assert policy.reason(RESTRICTED, include_restricted=True, include_images=False) is None
    lenient = RowPolicy({}, unknown_restricted=False, allowed={1})
    assert not lenient.model_mark("nobody-knows") & RESTRICTED
    assert lenient.consented(1) and not lenient.consented(2) and lenient.consented(None)


def test_card_language_codes_and_licence():
    assert [language_code(x) for x in ("English", "Russian", "en", "ru", "und", "unknown",
                                       "pt", "zh-Hans", "")] == [
        "en", "ru", "en", "ru", None, None, "pt", None, None]
    assert _license({"MIT"}) == {"license": "mit"}
    assert _license({"unknown"}) == {"license": "unknown"}
    mixed = _license({"mit", "OpenAI terms"})
    assert mixed["license"] == "other" and "OpenAI terms, mit" in mixed["license_details"]
