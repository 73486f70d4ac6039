"""Process settings that make large CPU tensors cheap to allocate: transparent huge pages.

torch allocates each CPU tensor with the C library's allocator. glibc serves a block of more than
a few MiB with a fresh `mmap` and returns it with `munmap` when the tensor dies, so the next tensor
of that size touches new pages, and the kernel takes a page fault and zero-fills a 4 KiB page at a
time. For the tensors an interpretability workload makes (a batch's SAE latents, a lens's logits,
an MLP's activations on a long batch) that costs more than the arithmetic: on this project's 2-core
machine a `relu` of a [4096, 2048] float32 tensor took 14.2 ms with 8,193 page faults, and 3.3 ms
with 528 when the block was backed by 2 MiB pages.

torch's own switch for this is the environment variable `THP_MEM_ALLOC_ENABLE=1` (PyTorch's CPU
performance tutorial recommends it): blocks of 2 MiB or more are aligned to a page and advised
`MADV_HUGEPAGE`. torch reads the variable once, at its first allocation, so it must be set before
torch is imported. `import lenscope` sets it when torch is not imported yet and the variable is not
set already; `LENSCOPE_HUGE_PAGES=0` leaves it unset. When torch was imported first it is too late,
and `import lenscope` says so once (a `HugePagesWarning`) unless the user set either variable: in
a notebook, set `THP_MEM_ALLOC_ENABLE=1` in the kernel's environment, or import lenscope first.

The kernel must allow it: `/sys/kernel/mm/transparent_hugepage/enabled` reads `[madvise]` or
`[always]` on most Linux distributions. Elsewhere (macOS, Windows, `[never]`) the variable does
nothing. Memory use grows a little (each tensor is page aligned), which is why torch leaves it off.
(Tuning glibc instead, with `mallopt` thresholds that keep freed blocks, was tried and rejected:
torch's 64-byte-aligned requests could not reuse the freed blocks, and a loop that allocated and
freed one 64 MiB tensor grew the heap by 64 MiB an iteration.)
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

TORCH_VARIABLE = "THP_MEM_ALLOC_ENABLE"
OPT_OUT = "LENSCOPE_HUGE_PAGES"
_SYSFS = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_torch_read_unset = False  # torch was imported before lenscope with the variable unset
_warned = False


class HugePagesWarning(RuntimeWarning):
    """torch was imported before lenscope, so large CPU tensors cannot use huge pages."""


TOO_LATE = (
    "torch was imported before lenscope, so large CPU tensors stay on 4 KiB pages (slower "
    "allocation; see lenscope.runtime): import lenscope before torch, or start Python with "
    f"{TORCH_VARIABLE}=1 ({OPT_OUT}=0 silences this)"
)


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT, "1").strip().lower() in ("0", "false", "off", "no")


def enable_huge_pages() -> bool:
    """Ask torch to back large CPU tensors with transparent huge pages; True when it will.

    Sets `THP_MEM_ALLOC_ENABLE=1` unless the user opted out (`LENSCOPE_HUGE_PAGES=0`), set the
    variable themselves, or torch is already imported (too late: torch read it at import).
    Subprocesses (torchrun workers, a server) inherit it.
    """
    global _torch_read_unset
    if not sys.platform.startswith("linux"):
        return False
    if TORCH_VARIABLE not in os.environ:
        if "torch" in sys.modules:
            _torch_read_unset = True  # torch has read the variable unset: too late
            _warn_too_late()
        elif not _opted_out():
            os.environ[TORCH_VARIABLE] = "1"
    return huge_pages_enabled()


def _warn_too_late() -> None:
    """Say once that huge pages are off because of the import order, where the user wanted them
    (no opt-out) and the kernel would give them."""
    global _warned
    if _warned or _opted_out() or not kernel_allows_huge_pages():
        return
    _warned = True
    warnings.warn(TOO_LATE, HugePagesWarning, stacklevel=3)


def huge_pages_enabled() -> bool:
    """Whether torch backs large CPU tensors with huge pages in this process: the variable is set
    to a non-zero number (and was when torch read it, as far as lenscope saw) and the kernel
    allows `madvise`d huge pages."""
    if _torch_read_unset:
        return False
    try:
        wanted = int(os.environ.get(TORCH_VARIABLE, "0")) != 0
    except ValueError:
        wanted = False
    return wanted and kernel_allows_huge_pages()


def kernel_allows_huge_pages() -> bool:
    """The kernel's transparent-huge-page mode is `always` or `madvise` (not `never`)."""
    try:
        mode = _SYSFS.read_text()
    except OSError:
        return False
    return "[always]" in mode or "[madvise]" in mode
