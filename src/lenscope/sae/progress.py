"""The live training line: step, tokens/s, normalised MSE (a running
average over recent batches; the summary after training gives the last batch's), L0 and the
dead-latent fraction."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor


class TrainProgress:
    """A rich progress bar on stderr (a no-op when disabled)."""

    def __init__(
        self, total: int, start: int, batch: int, enabled: bool = True, label: str = "sae"
    ) -> None:
        self.enabled = enabled
        self.batch = batch
        self.t0 = time.time()
        self.start = start
        self.nmse_ema: float | None = None
        self._bar: Progress | None = None
        if not enabled:
            return
        self._bar = Progress(
            TextColumn(f"[bold]{label}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=total, completed=start, stats="")

    def update(self, step: int, m: Any, tokens_since_fired: Tensor, dead_window: int) -> None:
        if self._bar is None:
            return
        a = 0.1
        self.nmse_ema = m.nmse if self.nmse_ema is None else (1 - a) * self.nmse_ema + a * m.nmse
        dead = float((tokens_since_fired > dead_window).float().mean())
        rate = (step - self.start) * self.batch / max(time.time() - self.t0, 1e-9)
        stats = f"nmse (avg) {self.nmse_ema:.4f}  L0 {m.l0:.1f}  dead {100 * dead:.1f}%  {rate:,.0f} tok/s"
        self._bar.update(self._task, completed=step, stats=stats)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
