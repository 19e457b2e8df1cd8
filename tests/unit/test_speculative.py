"""The speculative decoding loop: greedy exactness, the sampling rule, statistics and stops."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import torch
from scipy.stats import chisquare

from inference.local.sampling import SamplingParams, probabilities
from inference.local.speculative import GenerationResult, SpeculativeDecoder, make_generator
from tests.local_models import (
    build_llama,
    disagreeing_draft,
    identical_draft,
    llama_config,
    stacked_pair,
)

VOCAB = 96


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair():
    """A draft that agrees with the target on roughly half the tokens (greedy)."""
    return stacked_pair(eps=1.0, seed=0, vocab_size=VOCAB, logit_scale=4.0)


@pytest.fixture(scope="module")
def target(pair):
    return pair[1]


def random_prompts(count: int, *, seed: int, vocab: int = VOCAB) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 12, (count,), generator=generator).tolist()
    return [torch.randint(3, vocab, (n,), generator=generator).tolist() for n in lengths]


def check_counts(result: GenerationResult, k: int) -> None:
    stats = result.stats
    assert stats.generated_tokens == len(result.token_ids)
    assert stats.generated_tokens == stats.verify_steps + stats.accepted_tokens
    assert stats.verify_steps == len(result.steps)
    assert stats.drafted_tokens == sum(d for d, _ in result.steps)
    assert all(d <= k and a <= d for d, a in result.steps)
    assert stats.target_passes in (stats.verify_steps, stats.verify_steps + 1)


# -- greedy ----------------------------------------------------------------------------------


def test_greedy_matches_the_target_alone_token_for_token(pair):
    draft, target = pair
    params = SamplingParams(max_new_tokens=16)
    prompts = random_prompts(20, seed=1)
    plain = SpeculativeDecoder(target)
    expected = [plain.generate(p, params).token_ids for p in prompts]
    assert all(len(ids) == 16 for ids in expected)
    for k in (1, 2, 4, 8):
        decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=k)
        accepted = rejected = 0
        for prompt, want in zip(prompts, expected, strict=True):
            result = decoder.generate(prompt, params)
            assert result.token_ids == want, (k, prompt)
            check_counts(result, k)
            accepted += result.stats.accepted_tokens
            rejected += sum(a < d for d, a in result.steps)
        assert accepted > 0 and rejected > 0, k  # both paths ran


def test_plain_decoding_is_the_usual_argmax_loop(target):
    prompt = [5, 17, 33]
    result = SpeculativeDecoder(target).generate(prompt, SamplingParams(max_new_tokens=6))
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(6):
            ids.append(int(target(torch.tensor([ids])).logits[0, -1].argmax()))
    assert result.token_ids == ids[len(prompt):]
    assert result.stats.drafted_tokens == 0
    assert result.stats.mean_acceptance_length == 1


def test_a_narrower_draft_vocabulary_is_allowed_and_exact(target):
    draft = build_llama(llama_config(vocab_size=VOCAB - 6), seed=7, logit_scale=4.0)
    params = SamplingParams(max_new_tokens=12)
    decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=3)
    for prompt in random_prompts(4, seed=2):
        want = SpeculativeDecoder(target).generate(prompt, params).token_ids
        assert decoder.generate(prompt, params).token_ids == want


def test_a_wider_draft_vocabulary_is_refused(target):
    draft = build_llama(llama_config(vocab_size=VOCAB + 8), seed=7)
    with pytest.raises(ValueError, match="vocabulary"):
        SpeculativeDecoder(target, draft)


# -- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4])
def test_an_identical_draft_is_always_accepted(target, k):
    steps = 3
    params = SamplingParams(max_new_tokens=steps * (k + 1))  # no eos ids: runs to the end
    decoder = SpeculativeDecoder(target, identical_draft(target), num_speculative_tokens=k)
    result = decoder.generate([4, 9, 21, 40], params)
    stats = result.stats
    assert stats.accepted_tokens == stats.drafted_tokens == steps * k
    assert stats.verify_steps == steps
    assert stats.target_passes == steps + 1  # the prefill
    assert stats.generated_tokens == steps * (k + 1)
    assert stats.mean_acceptance_length == k + 1
    assert stats.acceptance_rate == 1
    assert result.finish_reason == "length"


@pytest.mark.parametrize("k", [1, 4])
def test_a_draft_that_always_disagrees_is_never_accepted(target, k):
    params = SamplingParams(max_new_tokens=10)
    prompt = [4, 9, 21, 40]
    want = SpeculativeDecoder(target).generate(prompt, params)
    decoder = SpeculativeDecoder(target, disagreeing_draft(target), num_speculative_tokens=k)
    result = decoder.generate(prompt, params)
    stats = result.stats
    assert result.token_ids == want.token_ids
    assert stats.accepted_tokens == 0
    assert stats.mean_acceptance_length == 1
    assert stats.verify_steps == stats.generated_tokens == 10
    # A step drafts at most remaining − 1 tokens, so the last ones draft fewer.
    assert stats.drafted_tokens == sum(min(k, remaining - 1) for remaining in range(1, 11))
    assert stats.target_passes == stats.verify_steps + 1 == want.stats.target_passes


def test_a_one_token_prompt_needs_no_prefill(target):
    result = SpeculativeDecoder(target).generate([7], SamplingParams(max_new_tokens=3))
    assert result.stats.target_passes == result.stats.verify_steps == 3


# -- stops -----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_new", [1, 2, 5, 7, 13])
def test_max_new_tokens_is_exact(pair, max_new):
    draft, target = pair
    params = SamplingParams(max_new_tokens=max_new)
    for decoder in (SpeculativeDecoder(target, identical_draft(target), num_speculative_tokens=4),
                    SpeculativeDecoder(target, draft, num_speculative_tokens=4)):
        result = decoder.generate([3, 8, 12], params)
        assert len(result.token_ids) == max_new
        assert result.finish_reason == "length"
        check_counts(result, 4)


def test_zero_new_tokens(target):
    result = SpeculativeDecoder(target).generate([3, 8], SamplingParams(max_new_tokens=0))
    assert result.token_ids == [] and result.finish_reason == "length"


def test_eos_stops_inside_an_accepted_run(target):
    prompt = [4, 9, 21, 40]
    reference = SpeculativeDecoder(target).generate(prompt, SamplingParams(max_new_tokens=20))
    at = next(i for i in range(2, 20) if reference.token_ids[i] not in reference.token_ids[:i])
    eos = reference.token_ids[at]
    params = SamplingParams(max_new_tokens=20, eos_token_ids=frozenset({eos, 999}))
    for k in (1, 4, 8):  # with an identical draft the eos is mid-step for k ≥ 4
        decoder = SpeculativeDecoder(target, identical_draft(target), num_speculative_tokens=k)
        result = decoder.generate(prompt, params)
        assert result.token_ids == reference.token_ids[: at + 1]
        assert result.finish_reason == "stop"
        check_counts(result, k)


@pytest.mark.parametrize("as_callable", [False, True])
def test_cancel_takes_effect_before_the_next_step(pair, as_callable):
    draft, target = pair
    event = threading.Event()
    cancel = event.is_set if as_callable else event
    seen: list[list[int]] = []

    def on_tokens(ids: list[int]) -> None:
        seen.append(ids)
        event.set()  # stop asked for while the first step's tokens are being handed out

    decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=4)
    result = decoder.generate(
        [3, 8, 12], SamplingParams(max_new_tokens=50), cancel=cancel, on_tokens=on_tokens,
    )
    assert result.finish_reason == "cancelled"
    assert result.stats.verify_steps == 1 == len(seen)
    assert result.token_ids == seen[0]


def test_steps_streams_each_verification_step(pair):
    draft, target = pair
    decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=3)
    steps = decoder.steps([3, 8, 12], SamplingParams(max_new_tokens=12))
    chunks = []
    while True:
        try:
            chunks.append(next(steps))
        except StopIteration as stop:
            result = stop.value
            break
        assert not torch.is_inference_mode_enabled()  # no leak into the consumer's code
    assert [t for chunk in chunks for t in chunk] == result.token_ids
    assert [len(c) for c in chunks] == [a + 1 for _, a in result.steps]


# -- sampling --------------------------------------------------------------------------------


class TrigramLM:
    """An exact, fast language model: the next token's logits depend on the last two tokens.

    Its sessions compute logits from their own copy of the sequence, so a cache the loop
    failed to crop would show up as a wrong distribution.
    """

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table
        self.vocab_size = table.shape[-1]

    def session(self, *, croppable: bool) -> TrigramSession:
        return TrigramSession(self.table)

    def next_logits(self, a: int, b: int) -> torch.Tensor:
        return self.table[a, b]


class TrigramSession:
    def __init__(self, table: torch.Tensor) -> None:
        self.table = table
        self.ids: list[int] = []

    @property
    def length(self) -> int:
        return len(self.ids)

    def extend(self, ids: list[int], keep: int) -> torch.Tensor:
        self.ids += ids
        context = [0, *self.ids]
        n = len(context)
        before = torch.tensor(context[n - keep - 1 : n - 1])
        last = torch.tensor(context[n - keep :])
        return self.table[before, last]

    def truncate(self, length: int) -> None:
        del self.ids[length:]


def exact_marginals(
    model_next, prompt: list[int], temperature: float, top_p: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The processed distribution of the first token, and the marginal of the second:
    Σ_x p(x | prompt) p(y | prompt, x)."""
    first = probabilities(model_next(prompt), temperature, top_p)
    second = torch.zeros_like(first)
    for x, px in enumerate(first.tolist()):
        if px > 0:
            second += px * probabilities(model_next([*prompt, x]), temperature, top_p)
    return first.double(), second.double()


def goodness_of_fit(samples: list[int], expected: torch.Tensor) -> float:
    """Chi-square p-value of `samples` against `expected`, pooling bins expected below 5."""
    n = len(samples)
    counts = Counter(samples)
    order = sorted(range(len(expected)), key=lambda v: float(expected[v]), reverse=True)
    observed_bins, expected_bins = [], []
    rest_o = rest_e = 0.0
    for v in order:
        e = float(expected[v]) * n
        if e >= 5:
            observed_bins.append(counts.get(v, 0))
            expected_bins.append(e)
        else:
            rest_o += counts.get(v, 0)
            rest_e += e
    if rest_e == 0 and rest_o > 0:
        return 0.0  # tokens outside the support
    if rest_e > 0:
        observed_bins.append(rest_o)
        expected_bins.append(rest_e)
    scale = sum(observed_bins) / sum(expected_bins)  # absorbs rounding of the pooled mass
    result = chisquare(observed_bins, [e * scale for e in expected_bins])
    return float(result.pvalue)


def sample_pairs(decoder, prompt, params, n, seed):
    generator = make_generator(seed)
    firsts, seconds = [], []
    for _ in range(n):
        ids = decoder.generate(prompt, params, generator=generator).token_ids
        firsts.append(ids[0])
        seconds.append(ids[1])
    return firsts, seconds


@pytest.mark.parametrize(
    ("temperature", "top_p", "k"), [(1.0, 1.0, 2), (0.6, 1.0, 3), (1.4, 0.8, 2)],
)
def test_speculative_sampling_draws_from_the_target_distribution(temperature, top_p, k):
    vocab = 10
    tables = torch.Generator().manual_seed(11)
    target_table = 1.5 * torch.randn(vocab, vocab, vocab, generator=tables)
    draft_table = 0.5 * target_table + torch.randn(vocab, vocab, vocab, generator=tables)
    target, draft = TrigramLM(target_table), TrigramLM(draft_table)
    prompt = [3, 7]
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=3)
    decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=k)

    n = 4000
    firsts, seconds = sample_pairs(decoder, prompt, params, n, seed=5)

    def target_next(ids):
        return target.next_logits(ids[-2], ids[-1])

    def draft_next(ids):
        return draft.next_logits(ids[-2], ids[-1])

    p1, p2 = exact_marginals(target_next, prompt, temperature, top_p)
    assert goodness_of_fit(firsts, p1) > 1e-3
    assert goodness_of_fit(seconds, p2) > 1e-3

    # The test has power: the draft's own samples fail it.
    q1, q2 = exact_marginals(draft_next, prompt, temperature, top_p)
    rng = torch.Generator().manual_seed(6)
    naive_first = torch.multinomial(q1, n, replacement=True, generator=rng).tolist()
    naive_second = torch.multinomial(q2, n, replacement=True, generator=rng).tolist()
    assert goodness_of_fit(naive_first, p1) < 1e-3
    assert goodness_of_fit(naive_second, p2) < 1e-3


def test_sampling_with_transformers_models_draws_from_the_target_distribution():
    vocab = 12
    draft, target = stacked_pair(
        eps=1.5, seed=3, vocab_size=vocab, logit_scale=12.0, eos_token_id=None,
    )
    prompt = [3, 7, 1]
    params = SamplingParams(temperature=1.0, max_new_tokens=2)
    decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=2)
    n = 600
    firsts, seconds = sample_pairs(decoder, prompt, params, n, seed=8)

    def next_of(model):
        def logits(ids):
            with torch.inference_mode():
                return model(torch.tensor([ids])).logits[0, -1].float()
        return logits

    p1, p2 = exact_marginals(next_of(target), prompt, 1.0, 1.0)
    assert goodness_of_fit(firsts, p1) > 1e-3
    assert goodness_of_fit(seconds, p2) > 1e-3
    q1, _ = exact_marginals(next_of(draft), prompt, 1.0, 1.0)
    naive = torch.multinomial(q1, n, replacement=True, generator=make_generator(9)).tolist()
    assert goodness_of_fit(naive, p1) < 1e-3


def test_sampling_is_reproducible_with_a_seed(pair):
    draft, target = pair
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=12)
    decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=3)
    runs = [decoder.generate([3, 8], params, generator=make_generator(42)).token_ids
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = probabilities(logits, 1.0, top_p=0.8)
    assert torch.allclose(kept, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    assert torch.allclose(probabilities(logits, 1.0, top_p=0.1), torch.tensor([1.0, 0, 0, 0]))
