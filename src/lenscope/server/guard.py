"""An ASGI guard in front of the app: Host header (DNS rebinding), token, request body size.

- On a loopback bind only loopback Host headers are accepted, so a web page elsewhere cannot
  reach the server through a rebound DNS name.
- With a token, every `/api/` route but `/api/health` needs `Authorization: Bearer TOKEN` (or
  `X-Lenscope-Token`); compared in constant time.
- Bodies over the limit are refused with 413 before the app reads them.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from lenscope.server.errors import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/api/health",)


def _host_only(value: str) -> str:
    v = value.strip().lower()
    if v.startswith("["):
        return v[: v.index("]") + 1] if "]" in v else v
    return v.rsplit(":", 1)[0] if v.count(":") == 1 else v


class Guard:
    def __init__(self, app: ASGIApp, token: str | None, hosts: list[str], max_body: int) -> None:
        self.app = app
        self.token = token
        self.hosts = {h.lower() for h in hosts}
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if "*" not in self.hosts:
            host = _host_only(headers.get("host", ""))
            if host not in self.hosts:
                resp = error_response(
                    400,
                    f"Host {host!r} is not served here; open http://127.0.0.1:<port>/ "
                    "(a loopback server answers loopback names only)",
                    "BadHost",
                )
                await resp(scope, receive, send)
                return
        path: str = scope.get("path", "")
        api = path.startswith("/api/") and path not in OPEN_PATHS
        if self.token and api and not self._authorized(headers):
            resp = error_response(
                401,
                "this server needs its token: send 'Authorization: Bearer TOKEN' (the "
                "page takes it from the ?token= of the URL the server printed)",
                "Unauthorized",
            )
            await resp(scope, receive, send)
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.max_body:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict[str, str]) -> bool:
        assert self.token is not None
        given = headers.get("x-lenscope-token", "")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = error_response(
            413, f"the request body is over {self.max_body // 1024} KiB; send less", "TooLarge"
        )
        await resp(scope, receive, send)
