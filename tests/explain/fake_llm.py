"""A small OpenAI-compatible chat server on 127.0.0.1 for the LLM explainer tests.

It answers like a simple but sensible model: the explanation names the token with the highest
activation in the prompt; the simulation gives 10 to that token and 0 elsewhere. Modes make it
misbehave: slow, garbage, a wrong-length simulation, 500 once (flaky), or refuse the key.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "test-key"


def _listing(text: str) -> list[tuple[str, str]]:
    """(token, activation) rows of every <start>...<end> block in a message."""
    rows: list[tuple[str, str]] = []
    for block in re.findall(r"<start>\n(.*?)<end>", text, flags=re.S):
        for line in block.splitlines():
            if line:
                tok, act = line.rsplit("\t", 1)
                rows.append((tok, act))
    return rows


class FakeLLM:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.explained: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if self.path != "/v1/chat/completions":
                    return self._send(404, b"no such route")
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._send(401, b'{"error": "bad key"}')
                if server.mode == "slow":
                    time.sleep(1.0)
                if server.mode == "garbage":
                    return self._send(200, b"<html>surprise</html>")
                if server.mode == "flaky" and len(server.requests) == 1:
                    return self._send(500, b"busy")
                text = server.answer(body["messages"][-1]["content"])
                reply = {"choices": [{"message": {"role": "assistant", "content": text}}]}
                return self._send(200, json.dumps(reply).encode())

            def _send(self, code: int, raw: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, prompt: str) -> str:
        if "Tokens without activations" in prompt:
            m = re.search(r"find the token (.+?) \(and nothing else\)", prompt)
            target = m.group(1) if m else ""
            rows = _listing(prompt)
            if self.mode == "bad_sim":
                rows = rows[:-1]
            return (
                "<start>\n"
                + "".join(f"{t}\t{10 if t == target else 0}\n" for t, _ in rows)
                + "<end>"
            )
        pairs = [(t, int(a)) for t, a in _listing(prompt)]
        best = max(pairs, key=lambda p: p[1])[0]
        self.explained.append(best)
        return f" the token {best} (and nothing else)."

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
