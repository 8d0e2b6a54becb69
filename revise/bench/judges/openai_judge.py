"""The paper's judge: GPT-4o, or any OpenAI-compatible chat endpoint, through the ``openai`` client.

One request per item: the judge prompt (``base``) with ``frames`` evenly spaced frames of the source
and of the output as JPEG images (``detail`` low by default: 85 prompt tokens an image on GPT-4o).
Replies are read by :func:`~.base.parse_reply`; a malformed one is answered with a repair turn
(the bad reply and what is wrong with it), up to ``malformed_retries`` times, then the item is
recorded as failed. Rate limits (429), server errors (5xx), 408/409, timeouts and dropped
connections are retried with exponential backoff (honouring ``Retry-After``) up to ``max_retries``
times, then the item is recorded as failed. A refused key (401/403), an unknown model or URL (404),
an exhausted quota, or an endpoint that cannot be reached at all stop scoring with one message.

Every reply is cached (``cache.ReplyCache``) under its request, so a re-run (after a kill, or to
re-score) replays them without a request.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import random
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ReviseInputError
from ..cache import ReplyCache, request_key
from ..frames import sample_frames
from ..manifest import BenchItem
from .base import (SYSTEM_PROMPT, REPAIR_PROMPT, JudgeFailure, JudgeFatal, JudgeResult, MalformedReply,
                   judge_text, parse_reply, scores_only)

#: GPT-4o list price, USD per million tokens (gpt-4o / gpt-4o-2024-08-06, standard tier).
PRICE_INPUT_PER_M = 2.50
PRICE_OUTPUT_PER_M = 10.00
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o"
RETRY_STATUS = (408, 409, 429)


@dataclasses.dataclass
class OpenAISettings:
    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key: str | None = None
    timeout: float = 60.0            # seconds per request
    max_retries: int = 5             # after a 429 / 5xx / timeout / dropped connection
    backoff: float = 1.0             # first wait, doubled each retry (with jitter), at most max_backoff
    max_backoff: float = 60.0
    malformed_retries: int = 2       # repair turns after a reply that is not the JSON asked for
    frames: int = 4                  # per clip: the source's and the output's
    detail: str = "low"              # image detail: low, high or auto
    max_side: int = 512              # frames are scaled down to this longer side before sending
    max_tokens: int = 300
    temperature: float = 0.0
    json_mode: bool = True           # response_format json_object; some compatible servers lack it


def judge_name(model: str) -> str:
    return "openai-" + re.sub(r"[^A-Za-z0-9_-]+", "_", model)


def cost_usd(prompt_tokens: int, completion_tokens: int, price_input: float = PRICE_INPUT_PER_M,
             price_output: float = PRICE_OUTPUT_PER_M) -> float:
    return prompt_tokens / 1e6 * price_input + completion_tokens / 1e6 * price_output


def jpeg_data_url(frame: np.ndarray, quality: int = 90) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


class OpenAIJudge:
    def __init__(self, settings: OpenAISettings, cache: ReplyCache, client: Any = None):
        import openai

        self.check_settings(settings)
        self.settings, self.cache = settings, cache
        self.client = client or openai.OpenAI(api_key=settings.api_key, base_url=settings.base_url,
                                              timeout=settings.timeout, max_retries=0)
        self.name = judge_name(settings.model)
        self.description = (f"{settings.model} at {settings.base_url} (OpenAI-compatible chat API; "
                            f"{settings.frames} source + {settings.frames} output frames, detail {settings.detail})")
        self._lock = threading.Lock()
        self.network_requests = 0         # HTTP requests sent, retries included
        self.cached_replies = 0
        self.sent_tokens = [0, 0]         # prompt, completion tokens of the replies received in this process

    @staticmethod
    def check_settings(settings: OpenAISettings) -> None:
        if not settings.api_key:
            raise ReviseInputError("no API key for the openai judge: set OPENAI_API_KEY or pass --api-key "
                                   "(any non-empty string for a local endpoint that needs none)")
        if settings.detail not in ("low", "high", "auto"):
            raise ReviseInputError(f"--detail must be low, high or auto, not '{settings.detail}'")

    # ---- the request ----------------------------------------------------------------------
    def messages(self, item: BenchItem, video_path: Path) -> list[dict[str, Any]]:
        s = self.settings
        head, middle, tail = judge_text(item)

        def images(path: str | Path) -> list[dict[str, Any]]:
            return [{"type": "image_url", "image_url": {"url": jpeg_data_url(f), "detail": s.detail}}
                    for f in sample_frames(path, s.frames, s.max_side)]

        content = [{"type": "text", "text": head}, *images(item.source_video_path),
                   {"type": "text", "text": middle}, *images(video_path), {"type": "text", "text": tail}]
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]

    def request(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        s = self.settings
        request = {"model": s.model, "messages": messages, "temperature": s.temperature, "max_tokens": s.max_tokens}
        if s.json_mode:
            request["response_format"] = {"type": "json_object"}
        return request

    # ---- scoring --------------------------------------------------------------------------
    def score(self, item: BenchItem, video_path: Path) -> JudgeResult:
        try:
            messages = self.messages(item, video_path)
        except ReviseInputError as err:
            raise JudgeFailure(str(err)) from None
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "cached_replies": 0}
        error = ""
        for _ in range(self.settings.malformed_retries + 1):
            request = self.request(messages)
            reply = self._reply(request, usage)
            u = reply.get("usage") or {}
            usage["prompt_tokens"] += int(u.get("prompt_tokens") or 0)
            usage["completion_tokens"] += int(u.get("completion_tokens") or 0)
            content = _content(reply)
            try:
                parsed = parse_reply(content)
            except MalformedReply as err:
                error = str(err)
                messages = [*messages, {"role": "assistant", "content": content or ""},
                            {"role": "user", "content": REPAIR_PROMPT.format(error=error)}]
                continue
            return JudgeResult(scores_only(parsed), parsed["reason"], usage)
        raise JudgeFailure(f"malformed reply after {self.settings.malformed_retries + 1} attempt(s): {error}")

    def _reply(self, request: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
        key = request_key({"base_url": self.settings.base_url, **request})
        cached = self.cache.get(key)
        if cached is not None:
            usage["cached_replies"] += 1
            with self._lock:
                self.cached_replies += 1
            return cached
        reply = self._call(request, usage)
        self.cache.put(key, {"base_url": self.settings.base_url, **request}, reply)
        u = reply.get("usage") or {}
        with self._lock:
            self.sent_tokens[0] += int(u.get("prompt_tokens") or 0)
            self.sent_tokens[1] += int(u.get("completion_tokens") or 0)
        return reply

    def _call(self, request: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
        import openai

        s = self.settings
        last = ""
        for attempt in range(s.max_retries + 1):
            usage["requests"] += 1
            with self._lock:
                self.network_requests += 1
            wait_hint = None
            try:
                return self.client.chat.completions.create(**request).model_dump(mode="json")
            except openai.APIStatusError as err:
                status, message = err.status_code, _message(err)
                if status in (401, 403):
                    raise JudgeFatal(f"the judge endpoint {s.base_url} refused the API key (HTTP {status}): "
                                     f"{message}") from None
                if status == 404:
                    raise JudgeFatal(f"the judge endpoint {s.base_url} has no model '{s.model}' or no chat API "
                                     f"(HTTP 404): {message}") from None
                if status == 429 and _code(err) == "insufficient_quota":
                    raise JudgeFatal(f"the judge account's quota is exhausted (HTTP 429): {message}") from None
                if status not in RETRY_STATUS and status < 500:
                    raise JudgeFailure(f"HTTP {status}: {message}") from None
                last = f"HTTP {status}: {message}"
                wait_hint = _retry_after(err)
            except openai.APITimeoutError:
                last = f"no reply within {s.timeout:g} s"
            except openai.APIConnectionError as err:
                last = f"connection failed: {err.__cause__ or err}"
                if attempt == s.max_retries:
                    raise JudgeFatal(f"cannot reach the judge endpoint {s.base_url}: {last}") from None
            except openai.APIError as err:                  # e.g. a 200 whose body is not a chat completion
                raise JudgeFailure(f"unusable reply: {err}") from None
            if attempt < s.max_retries:
                time.sleep(self._wait(attempt, wait_hint))
        raise JudgeFailure(f"gave up after {s.max_retries + 1} attempt(s): {last}")

    def _wait(self, attempt: int, hint: float | None) -> float:
        s = self.settings
        if hint is not None:
            return min(hint, s.max_backoff)
        return min(s.max_backoff, s.backoff * 2 ** attempt) * (1 + 0.25 * random.random())


def _content(reply: dict[str, Any]) -> str | None:
    try:
        return reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None


def _message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(getattr(err, "message", err))[:300]


def _code(err: Any) -> str | None:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code") or inner.get("type")
    return None


def _retry_after(err: Any) -> float | None:
    headers = getattr(getattr(err, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None
    return None
