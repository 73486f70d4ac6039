"""What a server is started with, and the bounds every request must respect.

The bounds are constants (they appear in the OpenAPI schema, which must not depend on how a
server was started); a model's own context length lowers the prompt bound further at run time.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode

from lenscope.errors import InputError

if TYPE_CHECKING:
    from lenscope.explain import LLMConfig

ExplainerName = Literal["offline", "llm"]  # an enumeration: a request never names a file

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

# ---- request bounds ------------------------------------------------------------------------------
MAX_PROMPT_CHARS = 8000  # text is refused before tokenizing beyond this
MAX_PROMPT_TOKENS = 512  # and after tokenizing beyond min(this, the model's n_ctx)
MAX_BATCH = 8  # prompts per debugger request
MAX_TOP_K = 50  # rows per column of a node table / trace / attention table
MAX_MEASURE = 16  # rows per granularity measured by ablation
MAX_INTERVENTIONS = 32
MAX_REFERENCE = 8  # reference prompts for mean ablation
MAX_TRACE_HOPS = 8
MAX_TOKENS_PER_SET = 8  # target / distractor tokens
MAX_LENS_K = 20
MAX_WATCH = 10
MAX_GENERATE = 32
MAX_NODES_PER_QUERY = 64  # explanations asked for at once
MAX_MARKOV_STEPS = 500
MAX_MARKOV_SEQUENCE = 512
MAX_BODY_BYTES = 1 << 20  # 1 MiB of JSON

from lenscope.defaults import DEMO_DISTRACTOR as DEMO_DISTRACTOR  # noqa: E402
from lenscope.defaults import DEMO_PROMPT as DEMO_PROMPT  # noqa: E402
from lenscope.defaults import DEMO_TARGET as DEMO_TARGET  # noqa: E402


@dataclass
class LLMSettings:
    """An OpenAI-compatible chat endpoint for LLM explanations. The API key is never held here:
    it stays in the environment variable `key_env`, read only when the explainer is built."""

    url: str
    model: str
    key_env: str | None = None
    timeout: float = 60.0  # seconds per chat request
    retries: int = 1  # retries of a failed chat request
    cache_dir: Path | None = None  # answers cached on disk (default: LENSCOPE_HOME/cache/llm)

    def check(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"--llm-url {self.url!r} must start with http:// or https://")
        if not self.model.strip():
            raise InputError("--llm-model needs the endpoint's model name")
        if self.key_env is not None and not os.environ.get(self.key_env):
            raise InputError(
                f"--llm-key-env {self.key_env}: that environment variable is not set (export "
                "the API key in it, or leave the option out for an endpoint without a key)"
            )
        if not 0 < self.timeout <= 600:
            raise InputError(f"--llm-timeout must lie in (0, 600] seconds, got {self.timeout}")
        if not 0 <= self.retries <= 5:
            raise InputError(f"LLM retries must lie in 0..5, got {self.retries}")

    def client_config(self) -> LLMConfig:
        """The chat client's configuration, with the key read from the environment now."""
        from lenscope.artifacts import lenscope_home
        from lenscope.explain import LLMConfig

        self.check()
        return LLMConfig(
            self.url,
            self.model,
            os.environ.get(self.key_env) if self.key_env else None,
            timeout=self.timeout,
            retries=self.retries,
            backoff=0.5,
            cache_dir=self.cache_dir or lenscope_home() / "cache" / "llm",
        )


@dataclass
class ServerConfig:
    """One model per server, optional SAEs and records; bound to loopback unless told otherwise."""

    model: str
    saes: list[str] = field(default_factory=list)
    records: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    workers: int = 4  # concurrent heavy requests (debugger, lens, circuits, markov)
    max_pending: int = 64  # requests waiting for a worker before new ones get 503
    queue_timeout: float = 60.0  # seconds a request may wait for a worker
    web_dir: Path | None = None  # the built web app (default: <repo>/web/dist)
    allowed_hosts: list[str] | None = None  # Host headers accepted (default: from `host`)
    auto: bool = True  # no --sae / --records: use SAEs made on this model, its harvested records
    llm: LLMSettings | None = None  # an LLM explainer besides the offline one
    tuned: str | None = None  # a tuned lens (name or path); default: the model's own (auto)
    device: str = "cpu"  # the model, its SAEs and tuned lens live here (lenscope.device)

    def check(self) -> None:
        """Refuse an exposed bind without a token, and nonsense sizes."""
        if not is_loopback(self.host) and not self.token:
            raise InputError(
                f"binding to {self.host} exposes the model to the network; pass --token SECRET "
                "(clients then send 'Authorization: Bearer SECRET') or bind to 127.0.0.1"
            )
        if self.token is not None and len(self.token) < 8:
            raise InputError("the token is too short; use at least 8 characters")
        if not 0 <= self.port <= 65535:
            raise InputError(f"port {self.port} is not a TCP port (0..65535)")
        if not 1 <= self.workers <= 64:
            raise InputError(f"workers must lie in 1..64, got {self.workers}")
        if self.max_pending < 0:
            raise InputError("max_pending must be >= 0")
        if self.llm is not None:
            self.llm.check()
        from lenscope.device import resolve_device

        resolve_device(self.device)  # an absent GPU is refused before anything loads

    def hosts(self) -> list[str]:
        """Host headers accepted: loopback names on a loopback bind (blocks DNS rebinding)."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        if is_loopback(self.host):
            return ["127.0.0.1", "localhost", "::1", "[::1]"]
        return ["*"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def debugger_url(
    host: str,
    port: int,
    prompt: str = DEMO_PROMPT,
    target: str = DEMO_TARGET,
    distractor: str = DEMO_DISTRACTOR,
    token: str | None = None,
) -> str:
    """The debugger page with a question filled in (and the token, which the page then stores)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    params = {"prompt": prompt, "target": target, "distractor": distractor}
    if token:
        params["token"] = token
    return f"http://{shown}:{port}/?{urlencode(params)}"
