"""Draw the chain as Karpathy did: graphviz `circo`, arrows labelled 'token(prob%)'.

`to_dot` writes DOT text (no graphviz needed); `render` runs the `dot` binary to write files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from lenscope.errors import InputError, LenscopeError

if TYPE_CHECKING:
    from lenscope.markov.chain import MarkovChain
    from lenscope.markov.empirical import EmpiricalTransitions

FORMATS = ("svg", "png", "pdf")
MAX_DRAWN_STATES = 64
"""Above this many states a circo drawing is illegible and slow (tens of seconds): DOT only."""
ENGINES = ("circo", "dot", "neato", "fdp", "sfdp", "twopi")


class GraphvizError(LenscopeError):
    """Graphviz is missing or failed to draw a graph."""


def edge_label(token: int, prob: float) -> str:
    """'1(79%)': the token that moves along the edge and its probability."""
    return f"{token}({prob * 100:.0f}%)"


def to_dot(
    chain: MarkovChain,
    empirical: EmpiricalTransitions | None = None,
    threshold: float = 0.01,
    name: str = "markov_chain",
) -> str:
    """DOT text: one node per state, one edge per (state, token) with probability >= threshold.

    With `empirical`, states seen in training are filled and bold, unseen states dashed.
    """
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be a probability in [0, 1], got {threshold}")
    if empirical is not None and empirical.states != chain.states:
        raise InputError(
            "empirical counts were built for other states than the chain; "
            "use the same V, C and include_short for both"
        )
    lines = [
        f"digraph {_quote(name)} {{",
        "  layout=circo;",
        '  node [shape=circle, fontname="Helvetica", fontsize=12];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    if empirical is not None:
        lines.append(
            '  label="filled: seen in training; dashed: never seen"; labelloc=b; fontsize=10;'
        )
        for state, seen in zip(chain.states, empirical.seen, strict=True):
            style = 'style="filled,bold", fillcolor="lightblue"' if seen else 'style="dashed"'
            lines.append(f"  {_quote(state)} [{style}];")
    else:
        lines.extend(f"  {_quote(state)};" for state in chain.states)
    for i, state in enumerate(chain.states):
        for token in range(chain.V):
            p = float(chain.next_token_probs[i, token])
            if p < threshold or p == 0.0:
                continue
            target = chain.states[int(chain.next_state[i, token])]
            lines.append(
                f"  {_quote(state)} -> {_quote(target)} "
                f'[label="{edge_label(token, p)}", penwidth={0.5 + 2.5 * p:.2f}];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(
    dot_text: str,
    out_path: str | Path,
    formats: tuple[str, ...] = ("svg", "png"),
    engine: str = "circo",
    timeout: float = 60.0,
) -> list[Path]:
    """Write `out_path`.svg, `out_path`.png (…) with graphviz; returns the written paths."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"unknown graph format {fmt!r}; choose from {', '.join(FORMATS)}")
    if engine not in ENGINES:
        raise InputError(f"unknown graphviz engine {engine!r}; choose from {', '.join(ENGINES)}")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizError(
            "graphviz's 'dot' program is not installed or not on PATH; install graphviz "
            "(apt-get install graphviz, brew install graphviz) and retry"
        )
    base = Path(out_path)
    base.parent.mkdir(parents=True, exist_ok=True)
    targets = [base.parent / f"{base.name}.{fmt}" for fmt in formats]
    cmd = [exe, f"-K{engine}"]
    for fmt, target in zip(formats, targets, strict=True):
        cmd += [f"-T{fmt}", "-o", str(target)]  # one layout, every format
    names = ", ".join(t.name for t in targets)
    try:
        proc = subprocess.run(
            cmd, input=dot_text.encode(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise GraphvizError(
            f"graphviz took over {timeout:.0f} s to draw {names}; "
            "raise the threshold to draw fewer edges"
        ) from None
    missing = [t for t in targets if not t.exists()]
    if proc.returncode != 0 or missing:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GraphvizError(
            f"graphviz failed to draw {names}: "
            f"{detail[0] if detail else 'exit code ' + str(proc.returncode)}"
        )
    return targets


def svg_text(dot_text: str, engine: str = "circo", timeout: float = 60.0) -> str:
    """The drawing as SVG text, in memory (for notebooks); GraphvizError when it cannot be drawn."""
    if engine not in ENGINES:
        raise InputError(f"unknown graphviz engine {engine!r}; choose from {', '.join(ENGINES)}")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizError("graphviz's 'dot' program is not installed or not on PATH")
    try:
        proc = subprocess.run(
            [exe, f"-K{engine}", "-Tsvg"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"graphviz took over {timeout:.0f} s to draw the graph") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GraphvizError(f"graphviz failed: {detail[0] if detail else proc.returncode}")
    return proc.stdout.decode("utf-8")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
