"""Generation backends for the rephrasing stage, behind one interface:

* ``OpenAIBackend``: any OpenAI-compatible HTTP endpoint (vLLM, SGLang, TGI, hosted APIs):
  async client, bounded concurrency, per-request timeout, retries with exponential backoff
  and jitter on 429 / 5xx / timeouts / malformed answers, honouring ``Retry-After``.
* ``TransformersBackend``: a Hugging Face causal LM from a local path, batched generation,
  on the GPU when there is one.
* ``VLLMBackend``: in-process vLLM, when it is installed.

A backend turns prompts into ``Generation`` results; it never raises for one bad prompt:
a prompt that fails after its retries comes back with ``error`` set.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp


@dataclass
class Generation:
    """One prompt's outcome: text, or the error after its retries."""
    text: str | None
    error: str | None = None
    attempts: int = 1


class Backend(Protocol):
    """What the rephrase stage needs of a model: prompts in, generations out, never raising for one prompt."""
    model_name: str

    def generate(self, prompts: list[str],
                 on_result: Callable[[int, Generation], None] | None = None) -> list[Generation]:
        """Generate for every prompt; ``on_result(i, g)`` is called as each one completes."""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIBackend:
    """Chat-completions client. ``base_url`` is e.g. ``http://127.0.0.1:8000/v1``."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, concurrency: int = 64,
                 timeout: float = 120.0, max_retries: int = 6, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, max_tokens: int = 1024, temperature: float = 0.7,
                 seed: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.stats: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def generate(self, prompts: list[str], on_result=None) -> list[Generation]:
        """Generate for every prompt with bounded concurrency; results in prompt order."""
        return asyncio.run(self.agenerate(prompts, on_result))

    async def agenerate(self, prompts: list[str], on_result=None) -> list[Generation]:
        # aiohttp rather than httpx: at 64 requests in flight httpx's pool reached 17% of the
        # concurrency/latency bound on the benchmark, aiohttp about 95%.
        results: list[Generation | None] = [None] * len(prompts)
        sem = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:

            async def one(i: int) -> None:
                async with sem:
                    g = await self._with_retries(session, prompts[i])
                results[i] = g
                if on_result is not None:
                    on_result(i, g)

            await asyncio.gather(*(one(i) for i in range(len(prompts))))
        return results  # type: ignore[return-value]

    async def _with_retries(self, session, prompt: str) -> Generation:
        body: dict[str, Any] = {"model": self.model_name, "messages": [{"role": "user", "content": prompt}],
                                "max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = self.seed
        url = f"{self.base_url}/chat/completions"
        last = "no attempt"
        for attempt in range(1, self.max_retries + 2):
            wait: float | None = None
            try:
                async with session.post(url, json=body) as resp:
                    raw = await resp.read()
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
                if status == 200:
                    try:
                        text = json.loads(raw)["choices"][0]["message"]["content"]
                        if not isinstance(text, str):
                            raise TypeError("content is not a string")
                        self._count("ok")
                        return Generation(text, None, attempt)
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        last = f"malformed response: {type(exc).__name__}"
                        self._count("malformed")
                elif status == 429 or status >= 500:
                    last = f"HTTP {status}"
                    self._count(f"http_{status}")
                    wait = _retry_after(retry_after)
                else:  # 4xx other than 429: the request itself is wrong; retrying will not help
                    self._count(f"http_{status}")
                    return Generation(None, f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}", attempt)
            except TimeoutError:
                last = "timeout"
                self._count("timeout")
            except aiohttp.ClientError as exc:
                last = f"connection error: {type(exc).__name__}"
                self._count("connection_error")
            if attempt > self.max_retries:
                break
            if wait is None:  # exponential backoff with full jitter
                wait = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
            await asyncio.sleep(min(wait, self.backoff_max))
        return Generation(None, f"gave up after {self.max_retries + 1} attempts: {last}", self.max_retries + 1)


class TransformersBackend:
    """Local Hugging Face model (a path: no hub downloads), batched, GPU when available."""

    def __init__(self, model_path: str, batch_size: int = 16, max_new_tokens: int = 512,
                 temperature: float = 0.7, seed: int = 0, device: str | None = None) -> None:
        try:
            import torch  # noqa: PLC0415 - optional 'rephrase' extra, GBs: only for this backend
            from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415 - as above
        except ImportError as exc:
            raise RuntimeError("the transformers backend needs the 'rephrase' extra: "
                               "pip install 'winnow[rephrase]' (torch + transformers)") from exc
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.tok.padding_side = "left"  # decoder-only models generate after the prompt
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True,
                                                          dtype=dtype).to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self.model_name = model_path
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed

    def _format(self, prompt: str) -> str:
        if getattr(self.tok, "chat_template", None):
            text: str = self.tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                     add_generation_prompt=True)  # type: ignore[assignment]
            return text
        return prompt

    def generate(self, prompts: list[str], on_result=None) -> list[Generation]:
        """Generate in batches of batch_size on the local model."""
        torch = self.torch
        out: list[Generation] = []
        torch.manual_seed(self.seed)
        for start in range(0, len(prompts), self.batch_size):
            batch = [self._format(p) for p in prompts[start : start + self.batch_size]]
            enc = self.tok(batch, return_tensors="pt", padding=True).to(self.device)
            try:
                with torch.no_grad():
                    gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=self.temperature > 0,
                                              temperature=self.temperature if self.temperature > 0 else None,
                                              pad_token_id=self.tok.pad_token_id)
                texts = self.tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                results = [Generation(t) for t in texts]
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: report, go on with the next batch
                results = [Generation(None, f"generation failed: {type(exc).__name__}: {exc}")] * len(batch)
            for k, g in enumerate(results):
                if on_result is not None:
                    on_result(start + k, g)
            out.extend(results)
        return out


class VLLMBackend:
    """In-process vLLM (optional: ``pip install vllm``)."""

    def __init__(self, model_path: str, max_new_tokens: int = 512, temperature: float = 0.7, seed: int = 0,
                 **engine_args: Any) -> None:
        try:
            from vllm import LLM, SamplingParams  # noqa: PLC0415 - optional, GPU-only
        except ImportError as exc:
            raise RuntimeError("the vllm backend needs vLLM installed (pip install vllm)") from exc
        self.llm = LLM(model=model_path, seed=seed, **engine_args)
        self.params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, seed=seed)
        self.model_name = model_path

    def generate(self, prompts: list[str], on_result=None) -> list[Generation]:
        """Generate with in-process vLLM (its own batching)."""
        outs = self.llm.chat([[{"role": "user", "content": p}] for p in prompts], self.params, use_tqdm=False)
        results = [Generation(o.outputs[0].text if o.outputs else None,
                              None if o.outputs else "no output") for o in outs]
        for i, g in enumerate(results):
            if on_result is not None:
                on_result(i, g)
        return results
