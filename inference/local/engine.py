"""`LocalEngine`: a target (and draft) model in this process, one generation at a time.

Generations queue in FIFO order on an asyncio lock and run in the engine's single worker
thread, so the event loop never blocks on torch. Each step's tokens are detokenized in the
worker and handed to the event loop with `call_soon_threadsafe`. torch is imported only when
the models are loaded (on the first request).
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inference.errors import ModelUnavailable
from inference.local.detokenize import IncrementalDetokenizer
from inference.protocol import ChatMessage, DecodingStats

if TYPE_CHECKING:
    from inference.local.sampling import SamplingParams
    from inference.local.speculative import GenerationResult, SpeculativeDecoder

_Post = Callable[[tuple[str, Any]], None]


@dataclass(slots=True)
class LoadedModels:
    """What `LocalEngine.load` made ready."""

    tokenizer: Any
    decoder: SpeculativeDecoder
    device: Any
    generator: Any  # torch.Generator shared by requests that bring no seed
    eos_token_ids: frozenset[int]
    max_context: int | None
    # Sampling defaults from the target's generation_config, read as vLLM reads them for the
    # same model (so both serve it alike): the values it sets, whatever do_sample says, but
    # the temperature, which is 0 (greedy) unless do_sample is set, as in transformers.
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float


def _ids(value: Any) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}


def _setting(generation: Any, name: str) -> Any:
    """A value the generation_config sets, None if it leaves it at transformers' default
    (vLLM reads only those too: under transformers 4 an unset top_k reads 50)."""
    if generation is None:
        return None
    return generation.to_diff_dict().get(name)


def fallback_prompt(messages: Sequence[ChatMessage]) -> str:
    """The prompt for tokenizers without a chat template: `Role: content` lines, then
    `Assistant:` for the model to continue."""
    lines = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


class LocalEngine:
    """Holds the loaded models; `generate` streams text, then the `GenerationResult`."""

    def __init__(
        self,
        path: str,
        *,
        draft_path: str | None = None,
        num_speculative_tokens: int = 4,
        device: str = "auto",
        dtype: str = "auto",
        seed: int | None = None,
    ) -> None:
        self.path = path
        self.draft_path = draft_path
        self.num_speculative_tokens = num_speculative_tokens
        self.device = device
        self.dtype = dtype
        self.seed = seed
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatmux-local")
        self._turn = asyncio.Lock()  # FIFO: waiters are woken in arrival order
        self._loaded: LoadedModels | None = None
        self._loading: asyncio.Future[LoadedModels] | None = None
        self._waiting = 0
        self._active: set[threading.Event] = set()
        self._closed = False
        self._totals_lock = threading.Lock()
        self._totals = DecodingStats()
        self._requests = 0
        self._cancelled = 0

    # -- loading -------------------------------------------------------------------------

    async def load(self) -> LoadedModels:
        """Load the models in the worker thread, once; concurrent callers share the load."""
        if self._loaded is not None:
            return self._loaded
        if self._closed:
            raise ModelUnavailable("the local engine is closed")
        if self._loading is None or (self._loading.done() and self._loading.exception()):
            loop = asyncio.get_running_loop()
            self._loading = loop.run_in_executor(self._executor, self._load_sync)
        return await asyncio.shield(self._loading)

    def _load_sync(self) -> LoadedModels:
        from inference.local.loading import load_model, load_tokenizer
        from inference.local.speculative import SpeculativeDecoder, make_generator

        target = load_model(self.path, self.device, self.dtype)
        tokenizer = load_tokenizer(self.path)
        draft = None
        if self.draft_path is not None:
            dtype = str(target.dtype).removeprefix("torch.")
            draft = load_model(self.draft_path, str(target.device), dtype)
        decoder = SpeculativeDecoder(
            target, draft, num_speculative_tokens=self.num_speculative_tokens,
        )
        generation = getattr(target, "generation_config", None)
        eos = _ids(getattr(generation, "eos_token_id", None)) or _ids(target.config.eos_token_id)
        eos |= _ids(tokenizer.eos_token_id)
        sampling = generation is not None and bool(getattr(generation, "do_sample", False))
        text_config = target.config.get_text_config()
        loaded = LoadedModels(
            tokenizer=tokenizer,
            decoder=decoder,
            device=target.device,
            generator=make_generator(self.seed, target.device),
            eos_token_ids=frozenset(eos),
            max_context=getattr(text_config, "max_position_embeddings", None),
            temperature=float(generation.temperature or 1.0) if sampling else 0.0,
            top_p=float(_setting(generation, "top_p") or 1.0),
            top_k=int(_setting(generation, "top_k") or 0),
            repetition_penalty=float(_setting(generation, "repetition_penalty") or 1.0),
        )
        self._loaded = loaded
        return loaded

    # -- prompts -------------------------------------------------------------------------

    def encode_chat(self, loaded: LoadedModels, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of the prompt: the tokenizer's chat template, else `fallback_prompt`."""
        tokenizer = loaded.tokenizer
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True, tokenize=False,
            )
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(tokenizer(fallback_prompt(messages))["input_ids"])

    # -- generation ----------------------------------------------------------------------

    async def generate(
        self, loaded: LoadedModels, prompt_ids: list[int], params: SamplingParams,
        *, seed: int | None = None,
    ) -> AsyncIterator[str | GenerationResult]:
        """Text deltas as they are decoded, then the `GenerationResult`.

        Closing this iterator early (or cancelling its task) stops the worker within one
        verification step; the turn passes to the next request when the worker has stopped.
        """
        self._waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self._waiting -= 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def post(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone: nobody is listening
                cancel.set()

        try:
            if self._closed:
                raise ModelUnavailable("the local engine is closed")
            self._active.add(cancel)
            if seed is None:
                generator = loaded.generator
            else:
                from inference.local.speculative import make_generator

                generator = make_generator(seed, loaded.device)
            work = loop.run_in_executor(
                self._executor, self._work, loaded, prompt_ids, params, generator, cancel, post,
            )
        except BaseException:
            self._active.discard(cancel)
            self._turn.release()
            raise

        def finished(_: object) -> None:
            self._active.discard(cancel)
            self._turn.release()

        work.add_done_callback(finished)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise value
                yield value
                if kind == "done":
                    return
        finally:
            cancel.set()

    def _work(
        self, loaded: LoadedModels, prompt_ids: list[int], params: SamplingParams,
        generator: Any, cancel: threading.Event, post: _Post,
    ) -> None:
        detokenizer = IncrementalDetokenizer(loaded.tokenizer)
        stops = params.eos_token_ids

        def on_tokens(ids: list[int]) -> None:
            # A stop token ends its step and the answer; it is counted, never shown (like
            # vLLM), even when it is an ordinary token that decoding would not skip.
            if ids and ids[-1] in stops:
                ids = ids[:-1]
            if text := detokenizer.push(ids):
                post(("text", text))

        try:
            result = loaded.decoder.generate(
                prompt_ids, params, generator=generator, cancel=cancel, on_tokens=on_tokens,
            )
            self._record(result)
            post(("done", result))
        except Exception as exc:
            post(("error", exc))

    # -- statistics and shutdown ---------------------------------------------------------

    def _record(self, result: GenerationResult) -> None:
        with self._totals_lock:
            self._requests += 1
            self._cancelled += result.finish_reason == "cancelled"
            self._totals.add(result.stats)

    @property
    def queue_length(self) -> int:
        """Requests waiting for their turn (not counting the one running)."""
        return self._waiting

    @property
    def busy(self) -> bool:
        return self._turn.locked()

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def totals(self) -> dict[str, Any]:
        """Sums over the finished generations (cancelled ones included) and the queue."""
        with self._totals_lock:
            stats = DecodingStats(**{
                name: getattr(self._totals, name)
                for name in ("generated_tokens", "target_passes", "verify_steps",
                             "drafted_tokens", "accepted_tokens", "seconds")
            })
            requests, cancelled = self._requests, self._cancelled
        return {
            "path": self.path,
            "draft_path": self.draft_path,
            "num_speculative_tokens": self.num_speculative_tokens if self.draft_path else 0,
            "loaded": self.loaded,
            "requests": requests,
            "cancelled": cancelled,
            "queue_length": self.queue_length,
            "busy": self.busy,
            **stats.as_dict(),
        }

    async def aclose(self) -> None:
        """Stop the running generation, refuse new ones, and free the models."""
        if self._closed:
            return
        self._closed = True
        for cancel in list(self._active):
            cancel.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._unload)  # after the running work
        self._loading = None
        self._executor.shutdown(wait=False)

    def _unload(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        device = loaded.device
        del loaded
        gc.collect()
        if getattr(device, "type", None) == "cuda":
            import torch

            torch.cuda.empty_cache()
