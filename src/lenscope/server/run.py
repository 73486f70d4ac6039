"""`serve(config)`: load the model, bind the socket, print the debugger's URL, run uvicorn."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from lenscope.server.config import ServerConfig, debugger_url


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), so the printed URL is the real one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        from lenscope.errors import InputError

        raise InputError(
            f"cannot listen on {host}:{port} ({e.strerror}); pick another --port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def torch_threads(workers: int) -> int:
    """Intra-op threads per request: the cores shared among the workers (at least one).

    Requests already run in parallel on the workers; more threads per request only make them
    wait for each other (several times slower when the machine is busy)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, workers))


def serve(config: ServerConfig, log: Callable[[str], None] = print) -> None:
    """Run the server until interrupted; prints the debugger URL with the demo question."""
    import torch
    import uvicorn

    from lenscope.server.app import create_app
    from lenscope.server.state import ServerState

    config.check()
    torch.set_num_threads(torch_threads(config.workers))
    sock = bind(config.host, config.port)
    port = int(sock.getsockname()[1])
    log(f"loading {config.model} ...")
    state = ServerState.load(config, log)
    app = create_app(state)
    extras = []
    if state.saes:
        extras.append(f"SAEs: {', '.join(s.hook for s in state.saes)}")
    extras.append(
        f"records: {state.records.coverage()}" if state.records is not None else "no records"
    )
    if state.tuned is not None:
        extras.append(f"tuned lens: {state.tuned.name}")
    if config.llm is not None:
        key = f"key from ${config.llm.key_env}" if config.llm.key_env else "no key"
        extras.append(f"LLM explainer: {config.llm.model}, {key}")
    log(f"lenscope is serving {state.model.cfg.name} ({'; '.join(extras)})")
    url = debugger_url(config.host, port, token=config.token)
    log(f"open the debugger: {url}")
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl+C is how a server is meant to stop
    finally:
        sock.close()
        state.close()
    log("lenscope server stopped")
