"""The OpenAPI spec of the server, without loading a real model (it does not depend on one).

`python -m lenscope.server.spec web/openapi.json` writes it; the web app's API types are
generated from it (`npm run gen:api` in web/), and a test checks they are up to date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def openapi_spec() -> dict[str, Any]:
    from lenscope import HookedTransformer, ModelConfig
    from lenscope.server.app import create_app
    from lenscope.server.config import ServerConfig
    from lenscope.server.state import ServerState

    cfg = ModelConfig(n_layers=1, d_model=8, n_heads=2, d_vocab=4, n_ctx=4, attn_only=True)
    state = ServerState(ServerConfig("spec"), HookedTransformer(cfg))
    try:
        return create_app(state).openapi()
    finally:
        state.close()


def spec_text() -> str:
    return json.dumps(openapi_spec(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    text = spec_text()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
