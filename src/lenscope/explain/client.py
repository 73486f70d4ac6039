"""A small client for any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, hosted).

Standard library only. Each request has a timeout; connection errors, timeouts, 429/5xx answers
and malformed bodies are retried with exponential backoff; other 4xx answers fail at once.
Successful answers are cached on disk by a hash of (URL, model, messages, settings), so a rerun
costs nothing and never asks twice. Every failure surfaces as `LLMError` with one clear line.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenscope.errors import InputError

Message = dict[str, str]


class LLMError(Exception):
    """The endpoint is down, slow, refused the request or answered something unusable."""


@dataclass
class LLMConfig:
    url: str  # base URL (".../v1") or the full ".../chat/completions"
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 2
    backoff: float = 1.0
    temperature: float = 0.0
    max_tokens: int = 600
    cache_dir: Path | None = None

    def endpoint(self) -> str:
        u = self.url.rstrip("/")
        if not u.startswith(("http://", "https://")):
            raise InputError(f"LLM URL {self.url!r} must start with http:// or https://")
        return u if u.endswith("/chat/completions") else u + "/chat/completions"


class ChatClient:
    def __init__(self, cfg: LLMConfig) -> None:
        self.cfg = cfg
        self.url = cfg.endpoint()
        self.requests = 0  # network requests made (cache hits excluded)

    def _key(self, messages: list[Message]) -> str:
        c = self.cfg
        raw = json.dumps([self.url, c.model, messages, c.temperature, c.max_tokens], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _cached(self, key: str) -> str | None:
        if self.cfg.cache_dir is None:
            return None
        f = self.cfg.cache_dir / f"{key}.json"
        try:
            got = json.loads(f.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return got if isinstance(got, str) else None

    def _store(self, key: str, text: str) -> None:
        d = self.cfg.cache_dir
        if d is None:
            return
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(text), "utf-8")
        os.replace(tmp, d / f"{key}.json")

    def chat(self, messages: list[Message]) -> str:
        """The assistant's reply text; `LLMError` after the retries are spent."""
        key = self._key(messages)
        hit = self._cached(key)
        if hit is not None:
            return hit
        last = "no attempt made"
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(self.cfg.backoff * 2 ** (attempt - 1))
            try:
                text = self._post(messages)
            except _Retry as e:
                last = str(e)
                continue
            self._store(key, text)
            return text
        raise LLMError(f"{self.url}: {last} (after {self.cfg.retries + 1} attempts)")

    def _post(self, messages: list[Message]) -> str:
        c = self.cfg
        body = json.dumps(
            {
                "model": c.model,
                "messages": messages,
                "temperature": c.temperature,
                "max_tokens": c.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if c.api_key:
            headers["Authorization"] = f"Bearer {c.api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=c.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            if e.code == 429 or e.code >= 500:
                raise _Retry(f"HTTP {e.code} {e.reason}") from None
            raise LLMError(
                f"{self.url}: HTTP {e.code} {e.reason}; check the URL, model and key"
            ) from None
        except TimeoutError:
            raise _Retry(f"no answer within {c.timeout:g} s") from None
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise _Retry(f"cannot connect ({reason})") from None
        except http.client.HTTPException as e:  # e.g. a server that does not speak HTTP
            raise _Retry(f"not an HTTP answer ({type(e).__name__}: {e})") from None
        return _content(raw)


class _Retry(Exception):
    pass


def _content(raw: bytes) -> str:
    try:
        data: Any = json.loads(raw)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise _Retry(f"the answer is not a chat completion: {raw[:80]!r}") from None
    if not isinstance(content, str):
        raise _Retry("the answer's message content is not text")
    return content
