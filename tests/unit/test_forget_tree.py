"""Which of a forgotten person's messages can go: those with nothing of anyone else below."""

from __future__ import annotations

from storage.repositories.privacy import _deletable


def test_only_subtrees_made_of_members_are_deleted():
    # 1 ─ 2 ─ 3 (others) ; 1 ─ 4 ─ 5 ; 6 alone
    children = {1: [2, 4], 2: [3], 4: [5]}
    assert _deletable({1, 2, 4, 5, 6}, children) == {4, 5, 6}
    assert _deletable({1, 2, 3, 4, 5}, children) == {1, 2, 3, 4, 5}
    assert _deletable({3}, children) == {3}
    assert _deletable(set(), children) == set()


def test_a_very_deep_conversation_does_not_recurse():
    depth = 50_000
    children = {i: [i + 1] for i in range(depth)}
    assert _deletable(set(range(depth + 1)), children) == set(range(depth + 1))
    assert _deletable(set(range(depth)), children) == set()  # someone else's at the bottom
