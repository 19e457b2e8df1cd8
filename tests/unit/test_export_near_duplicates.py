"""Near-duplicate prompts: MinHash over word 3-grams, banded into Bloom filters."""

from __future__ import annotations

import random

from storage.exports.near_duplicates import NearDuplicates, prompt_text, shingles

BASE = ("How do I cook a proper borscht with beets, cabbage and a bit of vinegar for four "
        "people at home tonight, and how long should it simmer before serving?")


def test_shingles_ignore_case_punctuation_and_spacing():
    assert shingles("Hello,   WORLD of  words!") == shingles("hello world of words")
    assert shingles("one two") == {b"one two"}
    assert b"world of words" in shingles("Hello world of words")


def test_near_copies_are_caught_and_different_prompts_kept():
    near = NearDuplicates(0.85)
    assert near.seen(BASE) is False
    assert near.seen(BASE.upper()) is True  # same words
    assert near.seen("  " + BASE.replace(",", " ,") + " ") is True  # spacing/punctuation
    # One word changed in 27: Jaccard of the 3-grams is 0.8 — near the threshold, so either
    # way; a different question is kept.
    assert near.seen("Explain how public key cryptography works using an analogy with locks "
                     "and keys, for a school presentation.") is False


def test_false_matches_are_rare_among_unrelated_prompts():
    rng = random.Random(7)
    words = [f"w{i}" for i in range(5000)]
    near = NearDuplicates(0.85)
    prompts = [" ".join(rng.choices(words, k=12)) for _ in range(5000)]
    assert sum(near.seen(p) for p in prompts) <= 2


def test_near_copies_are_caught_at_the_rate_lsh_promises():
    """Copies with Jaccard ≥ 0.9 to their original are found nearly always (b·r banding
    for 0.85 with 64 permutations)."""
    rng = random.Random(3)
    words = [f"w{i}" for i in range(5000)]
    near = NearDuplicates(0.85)
    caught = 0
    for _ in range(300):
        original = rng.choices(words, k=60)
        assert near.seen(" ".join(original)) is False
        copy = list(original)
        copy[-1] = "changed"  # 58 shared 3-grams of 59 each: Jaccard ≈ 0.97
        caught += near.seen(" ".join(copy))
    assert caught >= 285


def test_prompt_text_per_format():
    turns = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    answer = {"role": "assistant", "content": "A"}
    assert prompt_text("dpo", {"prompt": turns}) == "S\nQ"
    assert prompt_text("kto", {"prompt": turns}) == "S\nQ"
    assert prompt_text("arena", {"conversation_a": [*turns, answer]}) == "S\nQ"
    assert prompt_text("sft", {"messages": [*turns, answer]}) == "S\nQ"
