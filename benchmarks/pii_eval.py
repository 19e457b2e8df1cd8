"""PII scrubber: precision/recall on the labelled EN/RU set, and scrub throughput.

    python -m benchmarks.pii_eval [--texts 20000] [--errors]

Quality is measured at the entity level on tests/data/pii_labelled.jsonl: a found span is a
true positive when a labelled span of the same type overlaps it, otherwise a false positive;
a labelled span no found span of its type overlaps is a false negative.
Speed: `scrub_pii` over questions and answers made by `chatmux demo-data`'s text generator,
against the scrubber this one replaced (e-mail, Luhn cards, phones, @handles only).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from storage.exports.pii import Span, find_pii, scrub_pii

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_labelled.jsonl"


def load(path: Path = LABELLED) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def evaluate(rows: Iterable[dict]) -> dict[str, dict[str, float]]:
    """Per type and "overall": tp, fp, fn, precision, recall."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for row in rows:
        gold = [Span(e["start"], e["end"], e["type"]) for e in row["entities"]]
        found = find_pii(row["text"])
        for s in found:
            hit = any(g.type == s.type and g.start < s.end and s.start < g.end for g in gold)
            (tp if hit else fp)[s.type] += 1
        for g in gold:
            if not any(g.type == s.type and g.start < s.end and s.start < g.end for s in found):
                fn[g.type] += 1
    report = {}
    for kind in [*sorted(set(tp) | set(fp) | set(fn)), "overall"]:
        t, p, n = ((sum(c.values()) for c in (tp, fp, fn)) if kind == "overall"
                   else (tp[kind], fp[kind], fn[kind]))
        report[kind] = {"tp": t, "fp": p, "fn": n,
                        "precision": t / (t + p) if t + p else 1.0,
                        "recall": t / (t + n) if t + n else 1.0}
    return report


def errors(rows: Iterable[dict]) -> Iterable[str]:
    for row in rows:
        found = {(s.type, row["text"][s.start:s.end]) for s in find_pii(row["text"])}
        gold = {(e["type"], row["text"][e["start"]:e["end"]]) for e in row["entities"]}
        if found != gold:
            yield f"{row['text']!r}\n    gold  {sorted(gold)}\n    found {sorted(found)}"


# The scrubber before issue #16, kept here as the speed baseline.
_OLD_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_OLD_CARD = re.compile(r"(?<![\d+])(?:\d[ -]?){12,18}\d(?!\d)")
_OLD_PHONE = re.compile(
    r"(?<![\w+])(?:\+?\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?![\w])"
)
_OLD_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")


def _old_luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def old_scrub_pii(text: str) -> str:
    if not any(ch.isdigit() or ch == "@" for ch in text):
        return text

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        return "[CARD]" if 13 <= len(digits) <= 19 and _old_luhn(digits) else m.group()

    def phone(m: re.Match[str]) -> str:
        digits = sum(ch.isdigit() for ch in m.group())
        least = 7 if m.group().startswith("+") else 9
        return "[PHONE]" if least <= digits <= 15 else m.group()

    text = _OLD_EMAIL.sub("[EMAIL]", text)
    text = _OLD_CARD.sub(card, text)
    text = _OLD_PHONE.sub(phone, text)
    return _OLD_HANDLE.sub("[USER]", text)


def demo_texts(n: int, seed: int = 0) -> list[str]:
    """Questions and answers as `chatmux demo-data` writes them."""
    from storage.demo_data import _Model, _Texts

    rng = random.Random(seed)
    texts = _Texts(rng)
    model = _Model("m", "m", 1100.0, None, {}, 300, 20.0)
    out: list[str] = []
    while len(out) < n:
        lang = rng.choice(("en", "ru"))
        kind, question = texts.question(lang)
        out += [question, texts.answer(lang, kind, question, model)]
    return out[:n]


def throughput(scrub, texts: list[str], rounds: int = 3) -> tuple[float, float]:
    """Best of `rounds`: texts/s and MB/s."""
    size = sum(len(t.encode()) for t in texts)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for t in texts:
            scrub(t)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, size / best / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--errors", action="store_true", help="list every mismatched snippet")
    args = parser.parse_args()
    rows = load()
    positive = sum(bool(r["entities"]) for r in rows)
    langs = Counter(r["lang"] for r in rows)
    print(f"labelled set: {positive} positive, {len(rows) - positive} negative snippets "
          f"({langs['en']} en, {langs['ru']} ru)\n")
    print("| type | TP | FP | FN | precision | recall |\n|---|---|---|---|---|---|")
    for kind, m in evaluate(rows).items():
        print(f"| {kind} | {m['tp']} | {m['fp']} | {m['fn']} | {m['precision']:.3f} "
              f"| {m['recall']:.3f} |")
    heldout = [r for r in rows if r["split"] == "heldout"]
    m = evaluate(heldout)["overall"]
    print(f"\nheld-out part only ({sum(bool(r['entities']) for r in heldout)} positive, "
          f"{sum(not r['entities'] for r in heldout)} negative): TP {m['tp']}, FP {m['fp']}, "
          f"FN {m['fn']}, precision {m['precision']:.3f}, recall {m['recall']:.3f}")
    if args.errors:
        print()
        for line in errors(rows):
            print(line)
    texts = demo_texts(args.texts)
    print(f"\nscrub throughput on {len(texts):,} demo-data texts (best of 3):")
    print("| scrubber | texts/s | MB/s |\n|---|---|---|")
    for name, scrub in (("before #16", old_scrub_pii), ("storage/exports/pii.py", scrub_pii)):
        per_s, mb_s = throughput(scrub, texts)
        print(f"| {name} | {per_s:,.0f} | {mb_s:.1f} |")


if __name__ == "__main__":
    main()
