"""The built web app (`web/dist`) served at `/`: files by path, `index.html` for app routes.

Paths are resolved and must stay inside the app's folder, so `..` never reaches another file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from lenscope.server.errors import error_response

NOT_BUILT = """<!doctype html><html><head><meta charset="utf-8"><title>lenscope</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>lenscope server is running</h1>
<p>The web app is not built. Build it once with</p>
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>(or <code>make demo</code>) and reload. The HTTP API is up: see <a href="/docs">/docs</a>.</p>
</body></html>"""


# A missing file with one of these suffixes is a 404; any other path is an app route (node ids
# such as /node/L2.H3 or /node/L2.resid_post.F5 contain dots too).
ASSET_SUFFIXES = frozenset(
    [
        ".js",
        ".mjs",
        ".css",
        ".map",
        ".json",
        ".png",
        ".svg",
        ".ico",
        ".jpg",
        ".jpeg",
        ".gif",
        ".webp",
        ".woff",
        ".woff2",
        ".ttf",
        ".txt",
        ".html",
    ]
)


def default_web_dir() -> Path:
    env = os.environ.get("LENSCOPE_WEB_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "web" / "dist"


def static_router(web_dir: Path, api_routes: Sequence[BaseRoute] = ()) -> APIRouter:
    """Files of the built app; `api_routes` let a GET on a POST-only endpoint answer 405."""
    root = web_dir.resolve()
    router = APIRouter(include_in_schema=False)

    @router.get("/{path:path}")
    async def page(path: str) -> Response:
        if path.startswith("api/") or path == "api":
            allowed = sorted(
                m
                for r in api_routes
                if isinstance(r, APIRoute) and r.path_regex.match("/" + path)
                for m in r.methods or ()
            )
            if allowed:
                return error_response(
                    405, f"GET is not allowed on /{path}; use {', '.join(allowed)}", "HTTPError"
                )
            return error_response(404, f"no such endpoint: GET /{path} (see /docs)", "HTTPError")
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT)
        if path:
            target = (root / path).resolve()
            if target.is_relative_to(root) and target.is_file():
                immutable = target.parent.name == "assets"
                headers = {
                    "Cache-Control": "public, max-age=31536000, immutable"
                    if immutable
                    else "no-cache"
                }
                return FileResponse(target, headers=headers)
            if Path(path).suffix.lower() in ASSET_SUFFIXES:
                return error_response(404, f"no file /{path} in the web app", "HTTPError")
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return router
