"""The built web app (`web/dist`) served at `/`: files by path, `index.html` for app routes.

Paths are resolved and must stay inside the app's folder, so `..` never reaches another file; a
name no file can have (a NUL byte, over 255 bytes) is a 404 whose message names no server path.
The folder is `web/dist` in a checkout and `lenscope/_web` in an installed wheel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from lenscope.artifacts import shipped_dir
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

NAME_MAX = 255  # bytes in one file name (Linux, macOS; Windows counts 255 characters)
PATH_MAX = 4096


def default_web_dir() -> Path:
    """`LENSCOPE_WEB_DIR`, the installed package's web app, or the checkout's `web/dist`."""
    return shipped_dir("web")


def storable(path: str) -> bool:
    """Whether a file system could hold `path`: no NUL byte, no name over NAME_MAX bytes, the whole
    under PATH_MAX. Anything else can never be one of the app's files (nor an app route)."""
    if "\x00" in path:
        return False
    raw = [part.encode("utf-8", "surrogatepass") for part in path.split("/")]
    return all(len(b) <= NAME_MAX for b in raw) and sum(len(b) + 1 for b in raw) < PATH_MAX


def app_file(root: Path, path: str) -> Path | None:
    """The app's file at `path` (inside `root`), or None. A lookup the operating system refuses
    (too long once joined to `root`, a symlink loop: RuntimeError on Python 3.11) is "no file",
    never an error whose message names the server's paths."""
    try:
        target = (root / path).resolve()
        return target if target.is_relative_to(root) and target.is_file() else None
    except (OSError, ValueError, RuntimeError):
        return None


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
            if not storable(path):
                return error_response(404, "no such page: a name no file can have", "HTTPError")
            target = app_file(root, path)
            if target is not None:
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
