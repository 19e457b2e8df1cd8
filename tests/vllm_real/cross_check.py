"""Cross-check of the two speculative engines (issue 13, item 4): plain greedy decoding of the
target with transformers, chatmux's in-process engine (`backend: hf`) with the draft, and real
vLLM with the draft, on a fixed set of prompts; and the acceptance each engine reports.

Greedy speculative decoding is lossless, so all three must write the same tokens. Acceptance
is not the same between engines: it depends on where each verification step starts, and the
two engines start them differently (see `chatmux_schedule` and `vllm_schedule`). Both are
predicted from one table of the draft's agreement with the target's greedy continuation, so
each engine's counters are checked against what its schedule must give.

Run as a script to print the README table (builds the pair and starts a server configured as
`spec_server`, ~1 minute; or uses a running one: `--url http://127.0.0.1:PORT/v1` with
`--models DIR` holding its target/ and draft/); `--unrestricted` takes the pair free to write
any token (`unrestricted_pair`). It exits 1 and says why if anything differs.

    .venv/bin/python -m tests.vllm_real.cross_check [--unrestricted] [--url URL --models DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from inference.protocol import ChatMessage, DecodingStats, Finished, TextDelta
from inference.vllm_metrics import ACCEPTED, DRAFT_TOKENS, DRAFTS, iter_samples

K = 3  # num_speculative_tokens of the shared `spec_server`
MAX_TOKENS = 64
SERVED = "tiny"
SUCCESS = "vllm:request_success_total"  # incremented in the same record as the step's stats

LONG_EN = (
    "The lighthouse keeper wrote in his log every evening: the weather, the ships that passed "
    "and the oil he burned. After forty years the logs filled a whole shelf, and a historian "
    "who read them found a record of the coast that no map could give: which storms moved the "
    "sandbanks, when the herring came back. Summarise what the historian learned, in two "
    "sentences."
)
LONG_RU = (
    "Смотритель маяка сорок лет вёл журнал: погода, проходившие суда, сожжённое масло. "
    "Перескажи это кратко."
)
LONG_ZH = "灯塔看守人每晚都记录天气和过往的船只。请用一句话概括。"


@dataclass(frozen=True, slots=True)
class Prompt:
    label: str  # the README table's summary
    messages: tuple[tuple[str, str], ...]  # (role, content)

    def chat(self) -> list[ChatMessage]:
        return [ChatMessage(role, content) for role, content in self.messages]

    def openai(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


PROMPTS: tuple[Prompt, ...] = (
    Prompt("short English", (("user", "Hi"),)),
    Prompt("English question", (("user", "What is the capital of France, and why?"),)),
    Prompt("Russian", (("user", "Привет! Как сварить борщ?"),)),
    Prompt("Chinese", (("user", "你好，请用三句话介绍一下长城。"),)),
    Prompt("emoji and accents", (("user", "Rate this: 🙂🚀 — café, naïve, façade ✓"),)),
    Prompt("code with newlines", (
        ("user", "Fix this:\n```python\ndef add(a, b):\n    return a - b\n```"),)),
    Prompt("system + 2 turns, English", (
        ("system", "You are a concise assistant."), ("user", "Name three colours."),
        ("assistant", "Red, green and blue."), ("user", "Three more, please."))),
    Prompt("system + 2 turns, Russian", (
        ("system", "Отвечай кратко."), ("user", "Сколько будет 2+2?"), ("assistant", "4."),
        ("user", "А 3+3?"))),
    Prompt("special tokens' text typed", (
        ("user", "Say </s> then <s> and <|assistant|>, literally."),)),
    Prompt("long English", (
        ("system", "You are a careful reader."), ("user", LONG_EN))),
    Prompt("long mixed, 3 turns", (
        ("system", "Answer in the user's language."), ("user", LONG_RU),
        ("assistant", "Маяк, журналы, сорок лет."), ("user", LONG_ZH))),
)


def unrestricted_pair(directory: Path, *, seed: int = 1) -> tuple[Path, Path]:
    """(target dir, draft dir) shaped like `vllm_pair`'s but free to write any token: bytes
    that make no UTF-8, characters cut at max_tokens, eos. With seed 1 and PROMPTS, one
    answer stops at eos and one is cut inside a character (the tests check they still do)."""
    from tests.local_models import BYTE_VOCAB_SIZE, byte_tokenizer, save_model, stacked_pair

    draft, target = stacked_pair(
        eps=0.3, draft_layers=1, extra_layers=1, seed=seed, logit_scale=4.0,
        vocab_size=BYTE_VOCAB_SIZE, hidden_size=128, heads=2, max_positions=1024,
    )
    tokenizer = byte_tokenizer()
    return (save_model(directory / "target", target, tokenizer),
            save_model(directory / "draft", draft, tokenizer))


def with_generation_config(model_dir: Path, into: Path, **changes: Any) -> Path:
    """`model_dir` (its files linked) with `changes` to its generation_config.json."""
    into.mkdir(parents=True)
    for item in model_dir.iterdir():
        if item.name != "generation_config.json":
            (into / item.name).symlink_to(item)
    config = json.loads((model_dir / "generation_config.json").read_text())
    (into / "generation_config.json").write_text(json.dumps({**config, **changes}))
    return into


def with_stop_tokens(model_dir: Path, into: Path, stop_ids: Sequence[int]) -> Path:
    """`model_dir` with `stop_ids` added to its generation_config's eos ids: what
    transformers and chatmux's engine stop at, and what vLLM serving it adds to every
    request's `stop_token_ids`."""
    eos = json.loads((model_dir / "generation_config.json").read_text()).get("eos_token_id")
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    return with_generation_config(model_dir, into, eos_token_id=[*eos, *stop_ids])


# -- the reference: plain greedy decoding with transformers --------------------------------

@dataclass(slots=True)
class Reference:
    """The target's plain greedy answer (`generate(do_sample=False)`, no draft)."""

    prompt_ids: list[int]
    answer_ids: list[int]  # up to max_tokens, ended by a stop token if one came
    # transformers' decode of answer_ids (skipping special tokens) but the stop token that
    # ended the answer: that marks the end, it is not part of the answer (vLLM never shows
    # it, even when it is an ordinary token; a special one is skipped anyway).
    decoded: str
    # The greedy continuation without stopping, max_tokens + k long (the answer is its
    # prefix): vLLM's schedule looks past the end of the answer.
    token_ids: list[int]
    agree: list[bool]  # the draft's greedy choice at each position of token_ids is the target's
    # The same with the draft's logits processed like the target's (repetition penalty):
    # chatmux's engine drafts so, vLLM's draft takes the plain argmax.
    agree_processed: list[bool]
    margins: list[float]  # the target's top-1 minus top-2 logit there (near-ties show up)
    stopped: bool  # a stop token ended the answer (it is answer_ids[-1])
    max_tokens: int = MAX_TOKENS

    @property
    def text(self) -> str:
        """The characters the answer's tokens complete. Cut inside a character (at
        max_tokens, or by a stop token), `decode` ends in U+FFFD; that is not a character the
        model wrote, and neither engine shows it (vLLM's `DecodeStream` never completes it)."""
        return self.decoded.rstrip("\ufffd")

    @property
    def finish_reason(self) -> str:
        return "stop" if self.stopped else "length"


def load_pair(target_dir: Path, draft_dir: Path) -> tuple[Any, Any, Any]:
    """(tokenizer, target, draft) in float32 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(path: Path) -> Any:
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, local_files_only=True).eval()

    return AutoTokenizer.from_pretrained(target_dir, local_files_only=True), load(target_dir), \
        load(draft_dir)


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """The ids generate stops at: the generation_config's eos ids (and the tokenizer's)."""
    eos = model.generation_config.eos_token_id
    ids = {eos} if isinstance(eos, int) else set(eos or ())
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def reference(tokenizer: Any, target: Any, draft: Any, prompt: Prompt, *,
              max_tokens: int = MAX_TOKENS, k: int = K) -> Reference:
    """Greedy decoding of `prompt` (the tokenizer's chat template) by the target alone, with
    the stop tokens of its generation_config; and the draft's agreement along the way."""
    import torch

    prompt_ids = list(tokenizer.apply_chat_template(
        prompt.openai(), add_generation_prompt=True, tokenize=True, return_dict=True,
    )["input_ids"])
    ids = torch.tensor([prompt_ids])
    greedy = {"attention_mask": torch.ones_like(ids), "do_sample": False,
              "pad_token_id": tokenizer.pad_token_id}
    with torch.inference_mode():
        answer = target.generate(ids, max_new_tokens=max_tokens, **greedy)
        answer_ids = answer[0, len(prompt_ids):].tolist()
        onward = target.generate(ids, max_new_tokens=max_tokens + k, eos_token_id=None,
                                 **greedy)
        token_ids = onward[0, len(prompt_ids):].tolist()
        assert token_ids[:len(answer_ids)] == answer_ids, "greedy decoding is deterministic"
        full = torch.tensor([prompt_ids + token_ids])
        start, end = len(prompt_ids) - 1, full.shape[1] - 1
        target_logits = target(full).logits[0, start:end]
        draft_logits = draft(full).logits[0, start:end]
        draft_choice = draft_logits.argmax(-1).tolist()
        penalty = target.generation_config.repetition_penalty or 1.0
        processed_choice = draft_choice
        if penalty != 1:
            seen = torch.zeros(draft_logits.shape, dtype=torch.bool)
            for row in range(seen.shape[0]):  # row j follows the prompt and token_ids[:j]
                seen[row, prompt_ids + token_ids[:row]] = True
            penalized = torch.where(draft_logits > 0, draft_logits / penalty,
                                    draft_logits * penalty)
            processed_choice = torch.where(seen, penalized, draft_logits).argmax(-1).tolist()
    top2 = target_logits.topk(2, dim=-1).values
    stopped = bool(answer_ids) and answer_ids[-1] in _stop_ids(target, tokenizer)
    return Reference(
        prompt_ids=prompt_ids,
        answer_ids=answer_ids,
        decoded=tokenizer.decode(answer_ids[:-1] if stopped else answer_ids,
                                 skip_special_tokens=True),
        token_ids=token_ids,
        agree=[d == t for d, t in zip(draft_choice, token_ids, strict=True)],
        agree_processed=[d == t for d, t in zip(processed_choice, token_ids, strict=True)],
        margins=(top2[:, 0] - top2[:, 1]).tolist(),
        stopped=stopped,
        max_tokens=max_tokens,
    )


# -- acceptance: what each engine's schedule must report -----------------------------------

@dataclass(frozen=True, slots=True)
class Acceptance:
    steps: int  # verification steps (vLLM: drafts)
    drafted: int
    accepted: int

    @property
    def rate(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    @property
    def mean_length(self) -> float | None:
        """1 + accepted per step, as both chatmux and vLLM define it."""
        return 1 + self.accepted / self.steps if self.steps else None


def _run(agree: Sequence[bool], start: int, limit: int) -> int:
    """How many drafted tokens a step starting at `start` keeps: the draft's tokens are the
    target's while they agree, so the run of agreement from `start`, at most `limit`."""
    n = 0
    while n < limit and agree[start + n]:
        n += 1
    return n


def chatmux_schedule(ref: Reference, k: int) -> Acceptance:
    """`SpeculativeDecoder`: the prompt's last token stays pending after the prefill, so the
    first step already verifies k drafts for the first answer token; a step drafts at most
    `remaining − 1`, so nothing is drafted past max_tokens; a stop token ends the step (what
    was drafted after it is not counted as accepted). Its draft's logits get the target's
    repetition penalty."""
    pos = steps = drafted = accepted = 0
    length = len(ref.answer_ids)
    while pos < length:
        limit = min(k, ref.max_tokens - pos - 1)
        kept = _run(ref.agree_processed, pos, limit)
        added = min(kept + 1, length - pos)
        steps, drafted, accepted = steps + 1, drafted + limit, accepted + added - 1
        pos += kept + 1
    return Acceptance(steps, drafted, accepted)


def vllm_schedule(ref: Reference, k: int) -> Acceptance:
    """vLLM V1: the prefill step samples the first token without drafts (the draft proposes
    after it), then every step drafts k tokens whatever is left; what the target accepts is
    counted before the answer is cut at max_tokens or at a stop token. Its draft takes the
    plain argmax (no penalty: `LLMBaseProposer._greedy_sample`)."""
    pos, steps, drafted, accepted = 1, 0, 0, 0
    while pos < len(ref.answer_ids):
        kept = _run(ref.agree, pos, k)
        steps, drafted, accepted = steps + 1, drafted + k, accepted + kept
        pos += kept + 1
    return Acceptance(steps, drafted, accepted)


# -- the engines' answers -------------------------------------------------------------------

@dataclass(slots=True)
class Answer:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    acceptance: Acceptance | None = None
    token_ids: list[int] | None = None
    prompt_ids: list[int] | None = None
    chunks: list[str] = field(default_factory=list)


async def chatmux_answer(backend: Any, prompt: Prompt, max_tokens: int = MAX_TOKENS) -> Answer:
    """`HFBackend.stream` (what `backend: hf` answers with) at temperature 0."""
    chunks: list[str] = []
    finished: Finished | None = None
    async for event in backend.stream(prompt.chat(), {"temperature": 0,
                                                      "max_tokens": max_tokens}):
        if isinstance(event, TextDelta):
            chunks.append(event.text)
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None, "the stream ends with Finished"
    stats: DecodingStats | None = finished.decoding
    return Answer(
        text="".join(chunks), prompt_tokens=finished.usage.prompt_tokens,
        completion_tokens=finished.usage.completion_tokens,
        finish_reason=finished.finish_reason, chunks=chunks,
        acceptance=None if stats is None else Acceptance(
            stats.verify_steps, stats.drafted_tokens, stats.accepted_tokens),
    )


async def counters(session: aiohttp.ClientSession, root: str) -> dict[str, float]:
    """vLLM's speculative-decoding counters and finished requests, summed over engines."""
    found = dict.fromkeys((DRAFTS, DRAFT_TOKENS, ACCEPTED, SUCCESS), 0.0)
    async with session.get(f"{root}/metrics") as resp:
        resp.raise_for_status()
        for name, value in iter_samples(await resp.text()):
            if name in found:
                found[name] += value
    return found


async def counted(session: aiohttp.ClientSession, root: str, before: dict[str, float],
                  requests: int = 1) -> Acceptance:
    """The counters' deltas since `before`, once the `requests` sent since have been
    recorded (the answer can reach us a moment before the engine's stats are)."""
    deadline = time.monotonic() + 10
    while True:
        now = await counters(session, root)
        if now[SUCCESS] - before[SUCCESS] >= requests or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert now[SUCCESS] - before[SUCCESS] == requests, (before, now)
    return Acceptance(*(round(now[n] - before[n]) for n in (DRAFTS, DRAFT_TOKENS, ACCEPTED)))


async def vllm_answer(session: aiohttp.ClientSession, base_url: str, prompt: Prompt, *,
                      max_tokens: int = MAX_TOKENS, stream: bool = False,
                      extra: dict[str, Any] | None = None) -> Answer:
    """`/v1/chat/completions` at temperature 0, whole or streamed (text joined from deltas);
    `extra` goes into the body too (vLLM's own sampling parameters)."""
    body: dict[str, Any] = {"model": SERVED, "messages": prompt.openai(), "temperature": 0,
                            "max_tokens": max_tokens, **(extra or {})}
    if not stream:
        body["return_token_ids"] = True
        async with session.post(f"{base_url}/chat/completions", json=body) as resp:
            data = await resp.json()
            assert resp.status == 200, data
        choice = data["choices"][0]
        return Answer(
            text=choice["message"]["content"], prompt_tokens=data["usage"]["prompt_tokens"],
            completion_tokens=data["usage"]["completion_tokens"],
            finish_reason=choice["finish_reason"], token_ids=choice.get("token_ids"),
            prompt_ids=data.get("prompt_token_ids"))
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    chunks: list[str] = []
    usage: dict[str, int] = {}
    finish = None
    async with session.post(f"{base_url}/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line.removeprefix("data: "))
            usage = event.get("usage") or usage
            for choice in event.get("choices", []):
                if text := choice.get("delta", {}).get("content"):
                    chunks.append(text)
                finish = choice.get("finish_reason") or finish
    return Answer(text="".join(chunks), prompt_tokens=usage.get("prompt_tokens"),
                  completion_tokens=usage.get("completion_tokens"), finish_reason=finish,
                  chunks=chunks)


async def vllm_completion(session: aiohttp.ClientSession, base_url: str,
                          prompt_ids: list[int], max_tokens: int = MAX_TOKENS) -> str:
    """`/v1/completions` of a prompt given as token ids (no chat template on the server)."""
    body = {"model": SERVED, "prompt": prompt_ids, "temperature": 0, "max_tokens": max_tokens}
    async with session.post(f"{base_url}/completions", json=body) as resp:
        data = await resp.json()
        assert resp.status == 200, data
    return data["choices"][0]["text"]


# -- comparison and the table ---------------------------------------------------------------

def disagreement(ref: Reference, answers: dict[str, Answer]) -> str | None:
    """None if every answer is the reference's (text, token counts, finish reason), else why not
    (the first differing token, and how close the target's top two logits were there)."""
    problems = []
    for name, answer in answers.items():
        if answer.text != ref.text:
            at = next((i for i, (a, b) in enumerate(zip(answer.text, ref.text, strict=False))
                       if a != b), min(len(answer.text), len(ref.text)))
            problems.append(f"{name}: text differs at character {at}: "
                            f"{answer.text[at:at + 12]!r} vs plain {ref.text[at:at + 12]!r}")
        if answer.completion_tokens not in (None, len(ref.answer_ids)):
            problems.append(f"{name}: {answer.completion_tokens} completion tokens, "
                            f"not {len(ref.answer_ids)}")
        if answer.finish_reason != ref.finish_reason:
            problems.append(f"{name}: finish_reason {answer.finish_reason!r}, "
                            f"not {ref.finish_reason!r}")
        if answer.prompt_tokens not in (None, len(ref.prompt_ids)):
            problems.append(f"{name}: {answer.prompt_tokens} prompt tokens, "
                            f"not {len(ref.prompt_ids)}")
        if answer.prompt_ids is not None and answer.prompt_ids != ref.prompt_ids:
            problems.append(f"{name}: other prompt token ids")
        if answer.token_ids is not None and answer.token_ids != ref.answer_ids:
            mine, plain = answer.token_ids, ref.answer_ids
            at = next((i for i, (a, b) in enumerate(zip(mine, plain, strict=False)) if a != b),
                      None)
            if at is None:
                problems.append(f"{name}: {len(mine)} token ids, plain has {len(plain)}")
            else:
                problems.append(f"{name}: token {at} is {mine[at]}, plain has {plain[at]} "
                                f"(the target's top-2 logit margin there {ref.margins[at]:.2e})")
    return "; ".join(problems) or None


def _acceptance_cell(acc: Acceptance | None) -> str:
    if acc is None or acc.rate is None or acc.mean_length is None:
        return "–"
    return f"{acc.accepted}/{acc.drafted} ({acc.rate:.0%}), {acc.mean_length:.2f}"


@dataclass(slots=True)
class Row:
    prompt: Prompt
    prompt_tokens: int
    completion_tokens: int
    agree: bool
    chatmux: Acceptance | None
    vllm: Acceptance | None
    note: str = ""  # how the answer ended, when that is worth a word


def render_table(rows: Sequence[Row], *, max_tokens: int = MAX_TOKENS, k: int = K) -> str:
    """The README's markdown table, with a total line."""
    lines = [
        "| prompt | prompt tokens | completion tokens | plain = chatmux = vLLM (+ stream) "
        "| chatmux accepted/drafted, mean acc. length | vLLM accepted/drafted, mean acc. "
        "length |",
        "|---|---:|---:|:---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.prompt.label} | {row.prompt_tokens} | {row.completion_tokens} | "
            f"{'yes' if row.agree else '**no**'}{f' ({row.note})' if row.note else ''} | "
            f"{_acceptance_cell(row.chatmux)} | "
            f"{_acceptance_cell(row.vllm)} |")
    total = {name: Acceptance(*(sum(getattr(getattr(r, name), f) for r in rows)
                                for f in ("steps", "drafted", "accepted")))
             for name in ("chatmux", "vllm") if all(getattr(r, name) for r in rows)}
    lines.append(
        f"| **all {len(rows)}** (fp32, greedy, k = {k}, max_tokens {max_tokens}) | "
        f"{sum(r.prompt_tokens for r in rows)} | {sum(r.completion_tokens for r in rows)} | "
        f"{sum(r.agree for r in rows)}/{len(rows)} | "
        f"{_acceptance_cell(total.get('chatmux'))} | {_acceptance_cell(total.get('vllm'))} |")
    return "\n".join(lines)


# -- the script -----------------------------------------------------------------------------

def references(target_dir: Path, draft_dir: Path, prompts: Sequence[Prompt] = PROMPTS, *,
               max_tokens: int = MAX_TOKENS, k: int = K) -> list[Reference]:
    """`reference` for every prompt (blocking: a few seconds of torch)."""
    tokenizer, target, draft = load_pair(target_dir, draft_dir)
    return [reference(tokenizer, target, draft, prompt, max_tokens=max_tokens, k=k)
            for prompt in prompts]


async def compare(refs: Sequence[Reference], prompts: Sequence[Prompt], backend: Any,
                  base_url: str, *, k: int = K, vllm_extra: dict[str, Any] | None = None,
                  ) -> tuple[list[Row], list[str]]:
    """Every prompt through chatmux's engine (`backend`, an `HFBackend` with the draft) and
    the vLLM server at `base_url` (whole and streamed): the table's rows, and what disagreed
    (texts, token counts, finish reasons, or counters other than the engine's schedule
    gives)."""
    root = base_url.removesuffix("/v1")
    rows: list[Row] = []
    problems: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        for ref, prompt in zip(refs, prompts, strict=True):
            ours = await chatmux_answer(backend, prompt, ref.max_tokens)
            before = await counters(session, root)
            served = await vllm_answer(session, base_url, prompt, max_tokens=ref.max_tokens,
                                       extra=vllm_extra)
            served.acceptance = await counted(session, root, before)
            before = await counters(session, root)
            streamed = await vllm_answer(session, base_url, prompt, max_tokens=ref.max_tokens,
                                         stream=True, extra=vllm_extra)
            streamed.acceptance = await counted(session, root, before)
            answers = {"chatmux": ours, "vLLM": served, "vLLM streamed": streamed}
            why = disagreement(ref, answers)
            if why:
                problems.append(f"{prompt.label}: {why}")
            expected = {"chatmux": chatmux_schedule(ref, k), "vLLM": vllm_schedule(ref, k),
                        "vLLM streamed": vllm_schedule(ref, k)}
            for name, answer in answers.items():
                if answer.acceptance != expected[name]:
                    problems.append(f"{prompt.label}: {name} reports {answer.acceptance}, "
                                    f"its schedule gives {expected[name]}")
            notes = ["stopped by a stop token"] if ref.stopped else []
            if ref.decoded != ref.text:
                notes.append("ends inside a character")
            rows.append(Row(prompt, len(ref.prompt_ids), len(ref.answer_ids), why is None,
                            ours.acceptance, served.acceptance, ", ".join(notes)))
    return rows, problems


def hf_backend(target_dir: Path, draft_dir: Path | None, k: int = K) -> Any:
    """chatmux's engine as `backend: hf` builds it (float32 on the CPU)."""
    from inference.local import HFBackend

    return HFBackend(str(target_dir), draft_path=None if draft_dir is None else str(draft_dir),
                     num_speculative_tokens=k, device="cpu", dtype="float32")


async def cross_check(target_dir: Path, draft_dir: Path, base_url: str, *,
                      max_tokens: int = MAX_TOKENS) -> tuple[list[Row], list[str]]:
    refs = await asyncio.to_thread(references, target_dir, draft_dir, max_tokens=max_tokens)
    backend = hf_backend(target_dir, draft_dir)
    try:
        return await compare(refs, PROMPTS, backend, base_url)
    finally:
        await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server of the pair (default: start one)")
    parser.add_argument("--models", type=Path, help="the pair's directory (default: build it)")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--unrestricted", action="store_true",
                        help="the pair free to write any token (see unrestricted_pair)")
    args = parser.parse_args()

    from tests.local_models import vllm_pair
    from tests.vllm_real.servers import VllmServer

    with tempfile.TemporaryDirectory(prefix="chatmux-cross-check-") as scratch:
        base = args.models or Path(scratch)
        target, draft = base / "target", base / "draft"
        if not target.exists():
            (unrestricted_pair if args.unrestricted else vllm_pair)(base)
        server = None
        if args.url is None:
            import os
            import subprocess

            root = Path(__file__).resolve().parents[2]
            python = os.environ.get("CHATMUX_VLLM_PYTHON") or subprocess.run(
                [str(root / "deploy" / "vllm" / "cpu-env.sh")], check=True, capture_output=True,
                text=True).stdout.strip().splitlines()[-1]
            server = VllmServer(python, target, SERVED, Path(scratch) / "vllm.log", draft=draft,
                                k=K)
            server.start()
        try:
            if server is not None:
                server.wait_ready()
            url = args.url or server.base_url
            rows, problems = asyncio.run(cross_check(target, draft, url,
                                                     max_tokens=args.max_tokens))
        finally:
            if server is not None:
                server.stop()
    print(render_table(rows, max_tokens=args.max_tokens))
    for problem in problems:
        print("DIFFERENCE:", problem)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
