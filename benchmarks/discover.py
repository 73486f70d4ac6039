"""Circuit discovery speed: lenscope's EAP / EAP-IG / exact patching against auto-circuit's EAP.

Both run on the shipped `mini` and the same 64 rows of its `self-assign` task (all rows equally
long, as auto-circuit's batches need) with resample ablation and the mean logit difference, in
one run: lenscope here, auto-circuit in a side virtual environment this script builds itself
(under $LENSCOPE_HOME/bench-cache/discover, torch==2.13.0 first; or `--side-venv PATH`), from the
same weights converted to a TransformerLens model (its logits are checked against lenscope's).
Edge scores are compared edge by edge (auto-circuit's "Resid Start" is lenscope's embed + pos).

Prints one JSON object. Exact patching runs one forward per edge; `--patch-edges N` patches an
evenly spaced sample of N edges (0 = all 1620) and reports the per-edge time.

    python benchmarks/discover.py [--rows 64] [--steps 5] [--patch-edges 200] [--side-venv PATH]
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from lenscope.artifacts import lenscope_home
from lenscope.discover.context import DiscoveryContext
from lenscope.discover.eap import eap_ig_inputs_scores, eap_scores
from lenscope.discover.patch import edge_effect
from lenscope.discover.tasks import load_task
from lenscope.model.load import load_model
from lenscope.model.transformer import HookedTransformer

SIDE_PACKAGES = [
    ["torch==2.13.0"],
    ["--no-deps", "auto-circuit==1.0.1"],
    ["transformer-lens>=2.0,<3", "torch==2.13.0"],
    ["attrs", "einops", "ordered-set", "plotly", "blobfile", "vscode-tqdm"],
    ["numpy>=2", "pyarrow>=21", "pandas>=2.2", "torch==2.13.0"],
]

CHILD = r"""
import json, sys, time
import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig
from auto_circuit.data import PromptDataLoader, PromptDataset
from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
from auto_circuit.types import AblationType
from auto_circuit.utils.graph_utils import patchable_model

torch.set_num_threads(int(sys.argv[3]))
t = load_file(sys.argv[1])
meta = json.loads(open(sys.argv[2]).read())
cfg = HookedTransformerConfig(**meta["cfg"])
model = HookedTransformer(cfg)
state = {k: v for k, v in t.items() if not k.startswith("x.")}
model.load_state_dict(state, strict=False)
model.cfg.use_attn_result = True
model.cfg.use_split_qkv_input = True
model.cfg.use_hook_mlp_in = True
model.eval()
with torch.no_grad():
    logits = model(t["x.clean"])
err = float((logits - t["x.logits"]).abs().max())
ds = PromptDataset(list(t["x.clean"]), list(t["x.corrupted"]),
                   [a.view(1) for a in t["x.answer"]], [w.view(1) for w in t["x.wrong"]])
loader = PromptDataLoader(ds, seq_len=None, diverge_idx=0, batch_size=len(ds), shuffle=False)
pm = patchable_model(model, factorized=True, slice_output="last_seq", separate_qkv=True,
                     device=torch.device("cpu"))
def run():
    for p in pm.parameters():
        p.grad = None
    return mask_gradient_prune_scores(pm, loader, None, grad_function="logit",
                                      answer_function="avg_diff", mask_val=0.0,
                                      ablation_type=AblationType.RESAMPLE)
run()  # warm-up
times = []
for _ in range(int(sys.argv[4])):
    s = time.perf_counter(); scores = run(); times.append(time.perf_counter() - s)
edges = {e.name: float(e.prune_score(scores)) for e in pm.edges}
print(json.dumps({"logits_max_abs_err": err, "eap_seconds": sorted(times)[len(times) // 2],
                  "n_edges": len(pm.edges), "scores": edges}))
"""


def tl_state(model: HookedTransformer) -> dict[str, torch.Tensor]:
    """lenscope's weights under TransformerLens' names and shapes (GPT-2-style blocks)."""
    s: dict[str, torch.Tensor] = {"embed.W_E": model.W_E, "unembed.W_U": model.W_U}
    assert model.W_pos is not None
    s["pos_embed.W_pos"] = model.W_pos
    s["unembed.b_U"] = torch.zeros(model.cfg.d_vocab)
    for lay, b in enumerate(model.blocks):
        p = f"blocks.{lay}."
        for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
            s[p + "attn." + name] = getattr(model, name)[lay]
        for name in ("W_in", "b_in", "W_out", "b_out"):
            s[p + "mlp." + name] = getattr(model, name)[lay]
        for ln in ("ln1", "ln2"):
            s[p + ln + ".w"], s[p + ln + ".b"] = getattr(b, ln).w, getattr(b, ln).b
    s["ln_final.w"], s["ln_final.b"] = model.ln_final.w, model.ln_final.b  # type: ignore[assignment]
    return {k: v.detach().float().contiguous().clone() for k, v in s.items()}


def tl_cfg(model: HookedTransformer) -> dict[str, Any]:
    c = model.cfg
    return {
        "n_layers": c.n_layers, "d_model": c.d_model, "n_heads": c.n_heads, "d_head": c.d_head,
        "d_mlp": c.d_mlp, "d_vocab": c.d_vocab, "n_ctx": c.n_ctx, "act_fn": c.act_fn,
        "normalization_type": "LN", "default_prepend_bos": False,
    }  # fmt: skip


def side_python(given: str | None) -> Path:
    if given:
        return Path(given) / "bin" / "python"
    root = lenscope_home() / "bench-cache" / "discover"
    venv = root / "auto-circuit-venv"
    py = venv / "bin" / "python"
    if not (venv / ".ready").is_file():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for pkgs in SIDE_PACKAGES:
            subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], check=True)
        (venv / ".ready").write_text("ok\n")
    return py


def median_time(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        s = time.perf_counter()
        fn()
        times.append(time.perf_counter() - s)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description="lenscope discover vs auto-circuit")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--patch-edges", type=int, default=200, help="0 = every edge")
    ap.add_argument("--side-venv", default=None, help="an existing venv with auto-circuit")
    ap.add_argument("--no-peer", action="store_true", help="skip auto-circuit")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    model = load_model("mini")
    task = load_task("self-assign", model).head(args.rows)
    out: dict[str, Any] = {
        "machine": machine(),
        "threads": threads,
        "model": "mini",
        "task": task.name,
        "rows": len(task.rows),
        "ablation": "resample",
    }

    def build() -> DiscoveryContext:
        return DiscoveryContext.build(model, task, "resample")

    ctx = build()
    g = ctx.graph
    out["n_edges"] = g.n_edges
    out["lenscope_eap_seconds"] = median_time(lambda: eap_scores(build()), args.repeats)
    out["lenscope_eap_ig_seconds"] = median_time(
        lambda: eap_ig_inputs_scores(build(), args.steps), 1
    )
    out["eap_ig_steps"] = args.steps
    ours = eap_scores(ctx)
    n = g.n_edges if args.patch_edges <= 0 else min(args.patch_edges, g.n_edges)
    sample = torch.linspace(0, g.n_edges - 1, n).round().long().unique().tolist()
    start = time.perf_counter()
    exact = torch.tensor([edge_effect(ctx, k) for k in sample], dtype=torch.float64)
    per_edge = (time.perf_counter() - start) / len(sample)
    out["patch_edges_run"] = len(sample)
    out["patch_seconds_per_edge"] = per_edge
    out["patch_seconds_all_edges_estimate"] = per_edge * g.n_edges
    out["eap_vs_patch_pearson"] = float(torch.corrcoef(torch.stack([ours[sample], exact]))[0, 1])
    if not args.no_peer:
        out.update(peer(model, ctx, ours, side_python(args.side_venv), threads, args.repeats))
        if "auto_circuit_eap_seconds" in out:
            out["eap_speedup_vs_auto_circuit"] = (
                out["auto_circuit_eap_seconds"] / out["lenscope_eap_seconds"]
            )
    print(json.dumps(out, indent=2))


def _ac_name(node_id: str) -> str:
    if node_id in ("embed", "pos"):
        return "Resid Start"
    if node_id == "logits":
        return "Resid End"
    lay, rest = node_id[1:].split(".", 1)
    return f"MLP {lay}" if rest == "mlp" else f"A{lay}.{rest[1:]}"


def peer(
    model: HookedTransformer,
    ctx: DiscoveryContext,
    ours: torch.Tensor,
    py: Path,
    threads: int,
    repeats: int,
) -> dict[str, Any]:
    g, b = ctx.graph, ctx.batch
    root = lenscope_home() / "bench-cache" / "discover"
    root.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        logits = model(b.clean)
    tensors = tl_state(model) | {
        "x.clean": b.clean.contiguous(), "x.corrupted": b.corrupted.contiguous(),
        "x.answer": b.answer.contiguous(), "x.wrong": b.wrong.contiguous(),
        "x.logits": logits.float().contiguous(),
    }  # fmt: skip
    save_file(tensors, str(root / "mini-tl.safetensors"))
    (root / "meta.json").write_text(json.dumps({"cfg": tl_cfg(model)}))
    (root / "child.py").write_text(CHILD)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(
        [str(py), str(root / "child.py"), str(root / "mini-tl.safetensors"),
         str(root / "meta.json"), str(threads), str(repeats)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        return {"auto_circuit_error": res.stderr.strip().splitlines()[-1:]}
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    merged: dict[str, float] = {}
    for k in range(g.n_edges):
        u = g.upstream[int(g.edge_up[k])].node_id
        r = g.receivers[int(g.edge_recv[k])]
        dest = _ac_name(r.node.node_id) + (f".{r.channel.upper()}" if r.channel else "")
        name = f"{_ac_name(u)}->{dest}"
        merged[name] = merged.get(name, 0.0) + float(ours[k])
    common = sorted(set(merged) & set(theirs["scores"]))
    a = torch.tensor([merged[n] for n in common], dtype=torch.float64)
    t = torch.tensor([theirs["scores"][n] for n in common], dtype=torch.float64)
    return {
        "auto_circuit_logits_max_abs_err": theirs["logits_max_abs_err"],
        "auto_circuit_n_edges": theirs["n_edges"],
        "edges_compared": len(common),
        "auto_circuit_eap_seconds": theirs["eap_seconds"],
        "scores_pearson": float(torch.corrcoef(torch.stack([a, t]))[0, 1]),
        "scores_max_abs_diff": float((a - t).abs().max()),
        "scores_max_abs": float(t.abs().max()),
    }


if __name__ == "__main__":
    main()
