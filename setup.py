"""The wheel carries lenscope's shipped data: `assets/` (models, SAEs, lenses, data, curves) and the
built web app (`web/dist`, from `make web`) are copied into the package as `lenscope/_assets` and
`lenscope/_web` (see `lenscope.artifacts.SHIPPED`). The repository keeps them at the top level;
a source checkout and an editable install read them there. Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# folder inside the package -> folder in the checkout (or the sdist); as lenscope.artifacts.SHIPPED
SHIPPED = {"_assets": ROOT / "assets", "_web": ROOT / "web" / "dist"}
NOT_BUILT = (
    "lenscope: the web app is not built ({index} is missing), so the wheel would serve no page. "
    "Build it first with `make web` (or: cd web && npm ci && npm run build)."
)


class BuildWithShippedData(build_py):
    """`build_py` that also copies the shipped data into the built package (not for editable
    installs, which read the checkout's folders in place)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        index = SHIPPED["_web"] / "index.html"
        if not index.is_file():
            raise SystemExit(NOT_BUILT.format(index=index))
        for name, source in SHIPPED.items():
            dest = Path(self.build_lib) / "lenscope" / name
            shutil.rmtree(dest, ignore_errors=True)  # no stale files from an earlier build
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".*", "__pycache__"))


setup(cmdclass={"build_py": BuildWithShippedData})
