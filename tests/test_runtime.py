"""Large CPU tensors on transparent huge pages: `import lenscope` sets torch's switch.

Page faults are counted (getrusage's minor faults), not timed: a freshly mapped 64 MiB block
touched in 4 KiB pages costs 16,384 faults, in 2 MiB pages a few dozen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lenscope.runtime import OPT_OUT, TORCH_VARIABLE, kernel_allows_huge_pages

PROBE = """
import json, os, resource
import lenscope
import torch
from lenscope.runtime import huge_pages_enabled
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = torch.empty(16 << 20)  # 64 MiB of float32
    y.fill_(1.0)
    del y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"enabled": huge_pages_enabled(), "env": os.environ.get("THP_MEM_ALLOC_ENABLE"),
                  "faults": min(faults)}))
"""

PAGES_4K = (64 << 20) // 4096


def _probe(**env_over: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in (OPT_OUT, TORCH_VARIABLE)}
    env.update(env_over)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_import_lenscope_puts_large_tensors_on_huge_pages() -> None:
    on = _probe()
    off = _probe(**{OPT_OUT: "0"})
    assert on["env"] == "1"
    assert off["env"] is None and off["enabled"] is False
    assert isinstance(on["faults"], int) and isinstance(off["faults"], int)
    assert off["faults"] > PAGES_4K * 0.9  # every 4 KiB page of a fresh block faults
    if sys.platform.startswith("linux") and kernel_allows_huge_pages():
        assert on["enabled"] is True
        assert on["faults"] < PAGES_4K // 8
    else:  # the kernel says [never]: the variable is set and changes nothing
        assert on["enabled"] is False


def test_a_users_own_setting_wins() -> None:
    assert _probe(**{TORCH_VARIABLE: "0"})["env"] == "0"
    assert _probe(**{TORCH_VARIABLE: "0"})["enabled"] is False


def test_too_late_once_torch_is_imported() -> None:
    code = (
        f"import os, torch, lenscope; print(os.environ.get('{TORCH_VARIABLE}')); "
        f"os.environ['{TORCH_VARIABLE}'] = '1'; "  # set late: torch read it unset
        "from lenscope.runtime import huge_pages_enabled; print(huge_pages_enabled())"
    )
    env = {k: v for k, v in os.environ.items() if k not in (OPT_OUT, TORCH_VARIABLE)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["None", "False"]


def _stripped_env(**env_over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (OPT_OUT, TORCH_VARIABLE)}
    env.update(env_over)
    return env


WARNINGS_OF_IMPORT = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    {imports}
    from lenscope.runtime import enable_huge_pages
    enable_huge_pages()  # asking again does not say it again
print(sum(w.category.__name__ == "HugePagesWarning" for w in seen))
for w in seen:
    print(w.filename.rsplit("/", 2)[-2:], w.message)
"""


def _huge_page_warnings(imports: str, **env_over: str) -> list[str]:
    code = WARNINGS_OF_IMPORT.format(imports=imports)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_stripped_env(**env_over),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    return lines[1 : 1 + int(lines[0])]


def test_torch_imported_first_says_huge_pages_are_off_once() -> None:
    seen = _huge_page_warnings("import torch; import lenscope")
    if sys.platform.startswith("linux") and kernel_allows_huge_pages():
        assert len(seen) == 1
        assert "torch was imported before lenscope" in seen[0]
        assert f"{TORCH_VARIABLE}=1" in seen[0] and f"{OPT_OUT}=0 silences this" in seen[0]
    else:  # nothing to lose: no huge pages here anyway
        assert seen == []


def test_no_warning_when_lenscope_comes_first_or_the_user_chose() -> None:
    assert _huge_page_warnings("import lenscope; import torch") == []
    assert _huge_page_warnings("import torch; import lenscope", **{OPT_OUT: "0"}) == []
    assert _huge_page_warnings("import torch; import lenscope", **{TORCH_VARIABLE: "0"}) == []
    assert _huge_page_warnings("import torch; import lenscope", **{TORCH_VARIABLE: "1"}) == []


def test_our_cli_does_not_warn() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            "-m",
            "lenscope.cli.main",
            "models",
            "--help",
        ],
        env=_stripped_env(),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "HugePagesWarning" not in out.stderr and "imported before" not in out.stderr
