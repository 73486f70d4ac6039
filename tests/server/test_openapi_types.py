"""The web app's API types are generated from the live app's OpenAPI: they cannot drift.

web/openapi.json must equal what the server serves at /openapi.json, and web/src/api/schema.ts
must equal what openapi-typescript makes of it (regenerate both with `npm run gen:api` in web/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
GENERATOR = WEB / "node_modules" / ".bin" / "openapi-typescript"
FIX = "regenerate with `cd web && npm run gen:api` and commit the result"


def test_committed_spec_is_the_live_apps(client: TestClient) -> None:
    live = client.get("/openapi.json").json()
    committed = json.loads((WEB / "openapi.json").read_text("utf-8"))
    assert committed == live, f"web/openapi.json is stale; {FIX}"


@pytest.mark.skipif(
    not GENERATOR.exists() or shutil.which("node") is None,
    reason="web/node_modules is not installed (cd web && npm ci)",
)
def test_committed_types_are_generated_from_the_live_spec(
    client: TestClient, tmp_path: Path
) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(client.get("/openapi.json").json(), indent=2, sort_keys=True))
    out = tmp_path / "schema.ts"
    subprocess.run(
        [str(GENERATOR), str(spec), "--default-non-nullable", "false", "-o", str(out)],
        check=True,
        capture_output=True,
        cwd=WEB,
        timeout=120,
    )
    want = out.read_text("utf-8")
    have = (WEB / "src" / "api" / "schema.ts").read_text("utf-8")
    assert have == want, f"web/src/api/schema.ts does not match the server's OpenAPI; {FIX}"
