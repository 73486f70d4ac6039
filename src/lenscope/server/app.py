"""`create_app(state)`: the FastAPI app of one server (API under /api, the web app at /)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lenscope import __version__
from lenscope.server.config import MAX_BODY_BYTES
from lenscope.server.errors import ERROR_RESPONSES, SafeJSONResponse, install_handlers
from lenscope.server.guard import Guard
from lenscope.server.routes import debugger, discover, graph, meta, nodes, views
from lenscope.server.state import ServerState
from lenscope.server.static import default_web_dir, static_router

DESCRIPTION = """The lenscope activation server: one model, its SAEs and records.

Ask why the model predicts one token rather than another (`/api/why`), compare prompts, trace
nodes through their inputs, explain attention, read node records and explanations, the logit
lens, weight-based circuits and, for tiny models, the Markov chain. Every error is a JSON body
`{"error": "<one human sentence>", "status": N, "type": "..."}`."""


def create_app(state: ServerState) -> FastAPI:
    """The app serves `state`, which its creator closes (`state.close()`) when done with it."""
    app = FastAPI(
        title="lenscope",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=SafeJSONResponse,
        responses=dict(ERROR_RESPONSES),
    )
    app.state.lenscope = state
    install_handlers(app)
    routers = (
        meta.router, debugger.router, nodes.router, views.router, graph.router, discover.router,
    )  # fmt: skip
    for r in routers:
        app.include_router(r)
    api = [route for r in routers for route in r.routes]
    app.include_router(static_router(state.config.web_dir or default_web_dir(), api))
    guard: Any = Guard
    app.add_middleware(
        guard, token=state.config.token, hosts=state.config.hosts(), max_body=MAX_BODY_BYTES
    )
    return app
