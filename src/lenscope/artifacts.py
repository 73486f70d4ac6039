"""Artifacts: directories holding a validated `manifest.json` beside their data.

Every artifact (model, tokenizer, token dataset, SAE, records, tuned lens, ...) is written into a
temporary sibling directory and renamed into place only once complete, so a killed writer never
leaves a half-written artifact behind. Loading checks the manifest's kind and schema version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from lenscope.errors import ArtifactError

MANIFEST = "manifest.json"

# What ships with lenscope: name -> (folder inside the installed package, folder in a source
# checkout, environment variable that overrides both). setup.py copies each checkout folder into
# the wheel under the package folder's name; keep the two in step.
SHIPPED: dict[str, tuple[str, str, str]] = {
    "assets": ("_assets", "assets", "LENSCOPE_ASSETS"),
    "web": ("_web", "web/dist", "LENSCOPE_WEB_DIR"),
}
PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(what: Literal["assets", "web"]) -> Path:
    """Where lenscope's shipped data lives: the assets (models, SAEs, lenses, data, curves) or the
    built web app. The environment variable wins; then the copy inside an installed wheel
    (`lenscope/_assets`, `lenscope/_web`); then the source checkout (`assets/`, `web/dist/`)."""
    packaged, checkout, env = SHIPPED[what]
    override = os.environ.get(env)
    if override:
        return Path(override)
    inside = PACKAGE_DIR / packaged
    # Else src/lenscope -> the checkout's root, even while missing (web/dist not built yet).
    return inside if inside.is_dir() else PACKAGE_DIR.parents[1] / checkout


def lenscope_home() -> Path:
    """The workspace root for artifacts (`LENSCOPE_HOME`, default `~/.cache/lenscope`)."""
    return Path(os.environ.get("LENSCOPE_HOME", Path.home() / ".cache" / "lenscope")).expanduser()


def code_version() -> str:
    from lenscope import __version__

    return __version__


@dataclass
class Manifest:
    kind: str
    schema_version: int
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    code_version: str = field(default_factory=code_version)
    provenance: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_manifest(path: Path | str, kind: str, schema_version: int | None = None) -> Manifest:
    """Read and validate `path/manifest.json`; raise `ArtifactError` with a clear message."""
    d = Path(path)
    m = d / MANIFEST
    if not d.is_dir():
        raise ArtifactError(f"{d} is not a directory; expected a lenscope {kind} artifact")
    if not m.is_file():
        raise ArtifactError(f"{d} has no {MANIFEST}; it is not a lenscope {kind} artifact")
    try:
        raw = json.loads(m.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{m} is not valid JSON ({e}); the artifact is corrupt") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{m} must hold a JSON object")
    got = raw.get("kind")
    if got != kind:
        raise ArtifactError(f"{d} is a {got!r} artifact, not a {kind!r} one")
    ver = raw.get("schema_version")
    if not isinstance(ver, int):
        raise ArtifactError(f"{m} has no integer schema_version")
    if schema_version is not None and ver != schema_version:
        raise ArtifactError(
            f"{d} has schema version {ver}; this lenscope reads version {schema_version}"
        )
    prov = raw.get("provenance", {})
    data = raw.get("data", {})
    if not isinstance(prov, dict) or not isinstance(data, dict):
        raise ArtifactError(f"{m}: provenance and data must be JSON objects")
    return Manifest(
        kind=kind,
        schema_version=ver,
        created=str(raw.get("created", "")),
        code_version=str(raw.get("code_version", "")),
        provenance=prov,
        data=data,
    )


_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
_OWNER = f"{_HOST}-{os.getpid()}"
# .NAME.tmp-HOST-PID-RANDOM and .NAME.old-HOST-PID, as writing_artifact names them
_OWNED = re.compile(r"^\..+\.(?:tmp|old)-([A-Za-z0-9_]+)-(\d+)(?:-[A-Za-z0-9_]+)?$")
_UNOWNED = re.compile(r"^\..+\.tmp-[A-Za-z0-9_]+$")  # written before names carried an owner
UNOWNED_AGE_S = 24 * 3600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_abandoned(parent: Path) -> None:
    """Delete the temp directories in `parent` of artifact writers that were killed: those that
    name this host and a process that no longer exists (and unnamed ones older than a day)."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    now = time.time()
    for e in entries:
        m = _OWNED.match(e.name)
        if m is not None:
            stale = m.group(1) == _HOST and not _alive(int(m.group(2)))
        else:
            try:
                stale = bool(_UNOWNED.match(e.name)) and now - e.stat().st_mtime > UNOWNED_AGE_S
            except OSError:
                stale = False
        if stale and e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)


@contextlib.contextmanager
def writing_artifact(
    dest: Path | str, manifest: Manifest, overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temp directory to fill; on success write the manifest and rename it to `dest`.

    On any exception the temp directory is removed and `dest` is left as it was; the temp
    directories of writers that were killed are removed by the next writer in the same place.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not overwrite:
        raise ArtifactError(f"{dest} exists already; pass overwrite or choose another path")
    remove_abandoned(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{_OWNER}-", dir=dest.parent))
    try:
        yield tmp
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", "utf-8")
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{_OWNER}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
