"""Near-duplicate prompts: MinHash signatures (datasketch) banded as in MinHashLSH, each
band's key kept in a Bloom filter (rbloom), so memory stays fixed however many rows pass.

A row whose prompt shares a whole band with an earlier kept row's prompt is a near duplicate
(Jaccard similarity of their word 3-shingles around the threshold or above); the first row of
each cluster is kept. Like MinHashLSH's query this is a candidate test, not a verified
Jaccard: pairs well below the threshold rarely collide, and the Bloom filters add at most
`BLOOM_ERROR` false matches per band while under `BLOOM_ITEMS` prompts.
"""

from __future__ import annotations

import re
from typing import Any

from datasketch import MinHash, MinHashLSH
from rbloom import Bloom

from storage.exports.options import NEAR_DUPLICATE_THRESHOLD

NUM_PERM = 64  # 128 halves the estimate's spread, at twice the hashing cost
SHINGLE_WORDS = 3
BLOOM_ITEMS = 2_000_000  # prompts per band before the filters' error rate grows
BLOOM_ERROR = 0.0005
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    """Normalised word 3-grams (case-folded words; punctuation and spacing dropped)."""
    words = _WORD.findall(text.casefold())
    if len(words) <= SHINGLE_WORDS:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + SHINGLE_WORDS]).encode()
            for i in range(len(words) - SHINGLE_WORDS + 1)}


def prompt_text(fmt: str, row: dict[str, Any]) -> str:
    """What a row's prompt says: every turn before the judged answer(s), system included."""
    if fmt == "arena":
        turns = row["conversation_a"][:-1]
    elif fmt == "sft":
        turns = row["messages"][:-1]
    else:
        turns = row["prompt"]
    return "\n".join(t["content"] for t in turns)


class NearDuplicates:
    def __init__(self, threshold: float = NEAR_DUPLICATE_THRESHOLD,
                 num_perm: int = NUM_PERM) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("the near-duplicate threshold is a Jaccard similarity in (0, 1]")
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)  # picks bands × rows
        self.bands, self.rows = lsh.b, lsh.r
        self.num_perm = num_perm
        template = MinHash(num_perm=num_perm, seed=1)
        self._permutations, self._scheme = template.permutations, template.scheme
        self._blooms = [Bloom(BLOOM_ITEMS, BLOOM_ERROR) for _ in range(self.bands)]
        self._texts = Bloom(BLOOM_ITEMS, BLOOM_ERROR)  # exact repeats skip the MinHash

    def seen(self, text: str) -> bool:
        """Whether `text` is a near duplicate of an earlier unseen one; if not, remember it."""
        exact = hash(text)
        if exact in self._texts:
            return True
        self._texts.add(exact)
        signature = MinHash(num_perm=self.num_perm, permutations=self._permutations,
                            scheme=self._scheme)
        signature.update_batch(list(shingles(text)))
        values = signature.hashvalues
        raw, width = values.tobytes(), self.rows * values.itemsize
        keys = [hash(raw[i * width:(i + 1) * width]) for i in range(self.bands)]
        if any(key in bloom for key, bloom in zip(keys, self._blooms, strict=True)):
            return True
        for key, bloom in zip(keys, self._blooms, strict=True):
            bloom.add(key)
        return False

    @property
    def bytes(self) -> int:
        return sum(b.size_in_bits for b in (*self._blooms, self._texts)) // 8
