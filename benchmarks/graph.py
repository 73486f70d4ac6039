"""Attribution graphs: lenscope against circuit-tracer 0.5.0 on the same model and transcoders.

    python benchmarks/graph.py [--transcoders PATH] [--quick] [--no-peer] [--max-feature-nodes N]

Cases: `mini` with transcoders (random ones unless --transcoders names a folder) on a 32- and a
128-token prompt, and a GPT-2-small-sized random model with random transcoders: wall time,
backward passes, rows, peak memory (resident set growth, sampled). circuit-tracer runs in a side
virtual environment this script makes under benchmarks/.cache/ct-venv (torch==2.13.0 first, then
circuit-tracer==0.5.0), on the same weights (a TransformerLens model built from the config,
weights copied in) and the same transcoders (written in its layout); its edge weights are
compared with lenscope's on the nodes both graphs hold (logits demeaned as circuit-tracer's).
Prints one JSON object with machine info (benchmarks/common.py).
"""

from __future__ import annotations

import common

# isort: split

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch
from safetensors.torch import save_file

from lenscope import HookedTransformer, load_model
from lenscope.graphs.build import GraphOptions, build_graph
from lenscope.graphs.sources import load_graph_transcoders
from lenscope.sae.dictionary import Dictionary
from lenscope.sae.transcoder import Transcoder, TranscoderConfig

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
VENV = CACHE / "ct-venv"
TEXT = "def add(a, b):\n    return a + b\n\nclass Point:\n    def __init__(self, x, y):\n"


class PeakRSS:
    """Peak growth of the resident set while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakRSS:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self.stop = False
        self.t = threading.Thread(target=self._watch, daemon=True)
        self.t.start()
        return self

    def _watch(self) -> None:
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *_: object) -> None:
        self.stop = True
        self.t.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def random_transcoders(
    model: HookedTransformer, d_sae: int, per_token: int = 16, seed: int = 0
) -> list[Dictionary]:
    """Random ReLU transcoders whose bias leaves about `per_token` features active per token on
    the benchmark's text (a random encoder fires on half the features otherwise)."""
    g = torch.Generator().manual_seed(seed)
    d = model.cfg.d_model
    ids = torch.tensor([prompt_ids(model, 64)])
    xs: dict[str, torch.Tensor] = {}
    names = [f"blocks.{i}.hook_resid_mid" for i in range(model.cfg.n_layers)]
    with torch.no_grad(), model.hooks([(n, lambda x, h: xs.update({h.name: x[0]})) for n in names]):
        model(ids)
    out = []
    for layer in range(model.cfg.n_layers):
        cfg = TranscoderConfig(
            d, d_sae, d, "relu", f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.hook_mlp_out"
        )
        t = Transcoder(cfg)
        with torch.no_grad():
            t.W_enc.copy_(torch.randn(d, d_sae, generator=g) / d**0.5)
            pre = xs[names[layer]] @ t.W_enc
            t.b_enc.fill_(-float(pre.flatten().quantile(1 - per_token / d_sae)))
            t.W_dec.copy_(torch.randn(d_sae, d, generator=g) * 0.02)
            t.b_dec.copy_(torch.randn(d, generator=g) * 0.01)
        out.append(t.as_dictionary())
    return out


def prompt_ids(model: HookedTransformer, n: int) -> list[int]:
    if model.tokenizer is not None:
        ids = model.to_tokens(TEXT * 8)[0].tolist()
        return ids[:n]
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, model.cfg.d_vocab, (n,), generator=g).tolist()
    return [model.cfg.d_vocab - 1, *ids[1:]]  # a BOS-like first token (GPT-2's <|endoftext|>)


def lenscope_case(
    model: HookedTransformer, dics: list[Dictionary], ids: list[int], opts: GraphOptions
) -> tuple[dict[str, Any], Any]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        g = build_graph(model, ids, dics, options=opts)
        wall = time.perf_counter() - t0
    return {
        "tokens": len(ids),
        "seconds": wall,
        "backward_passes": g.backward_passes,
        "rows": g.rows_computed,
        "active_features": g.n_active,
        "features_in_graph": g.n_features,
        "peak_rss_growth_mib": mem.mib,
    }, g


# ---- circuit-tracer in its own venv ------------------------------------------------------------
def ensure_venv() -> Path:
    if "LENSCOPE_CT_VENV" in os.environ:  # an existing venv with circuit-tracer 0.5.0
        return Path(os.environ["LENSCOPE_CT_VENV"]) / "bin" / "python"
    py = VENV / "bin" / "python"
    if py.exists() and (VENV / ".ready").exists():
        return py
    CACHE.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "circuit-tracer==0.5.0"], check=True)
    (VENV / ".ready").write_text("ok")
    return py


def write_peer_inputs(model: HookedTransformer, dics: list[Dictionary], d: Path) -> None:
    """The model's weights in TransformerLens' names and shapes, its config, and the transcoders
    as circuit-tracer's per-layer safetensors (W_enc [d_sae, d_in], W_dec [d_sae, d_out])."""
    c = model.cfg
    sd: dict[str, torch.Tensor] = {
        "embed.W_E": model.W_E,
        "unembed.W_U": model.W_U,
        "ln_final.w": model.ln_final.w,  # type: ignore[dict-item]
        "ln_final.b": model.ln_final.b,  # type: ignore[dict-item]
    }
    if model.W_pos is not None:
        sd["pos_embed.W_pos"] = model.W_pos
    if model.b_U is not None:
        sd["unembed.b_U"] = model.b_U
    for i, blk in enumerate(model.blocks):
        a = blk.attn  # type: ignore[union-attr]
        for n in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
            sd[f"blocks.{i}.attn.{n}"] = getattr(a, n)
        for ln in ("ln1", "ln2"):
            sd[f"blocks.{i}.{ln}.w"] = getattr(blk, ln).w
            sd[f"blocks.{i}.{ln}.b"] = getattr(blk, ln).b
        m = blk.dense_mlp()  # type: ignore[operator]
        for n in ("W_in", "b_in", "W_out", "b_out"):
            sd[f"blocks.{i}.mlp.{n}"] = getattr(m, n)
    save_file(
        {k: v.detach().float().contiguous() for k, v in sd.items()}, str(d / "model.safetensors")
    )
    cfg = {
        "n_layers": c.n_layers, "d_model": c.d_model, "n_heads": c.n_heads, "d_head": c.d_head,
        "d_mlp": c.d_mlp, "d_vocab": c.d_vocab, "n_ctx": c.n_ctx, "act_fn": c.act_fn,
        "normalization_type": "LN", "eps": c.eps,
    }  # fmt: skip
    (d / "config.json").write_text(json.dumps(cfg))
    from tokenizers import Tokenizer, models  # an id-only tokenizer circuit-tracer can hold

    vocab = {f"t{i}": i for i in range(c.d_vocab)}
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(str(d / "tokenizer.json"))
    for i, dic in enumerate(dics):
        t = dic.source
        save_file(
            {
                "W_enc": t.W_enc.detach().t().contiguous(),
                "b_enc": t.b_enc.detach().contiguous(),
                "W_dec": t.W_dec.detach().contiguous(),
                "b_dec": t.b_dec.detach().contiguous(),
            },
            str(d / f"layer_{i}.safetensors"),
        )


PEER = r"""
import json, sys, time, torch
from pathlib import Path
from safetensors.torch import load_file
from transformer_lens import HookedTransformerConfig
from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set
from circuit_tracer.replacement_model.replacement_model_transformerlens import (
    TransformerLensReplacementModel,
)
from circuit_tracer.attribution.attribute import attribute

d = Path(sys.argv[1]); ids = json.loads(sys.argv[2]); mfn = int(sys.argv[3]); bs = int(sys.argv[4])
torch.set_num_threads(int(sys.argv[5]))
c = json.loads((d / "config.json").read_text())
cfg = HookedTransformerConfig(**c, device="cpu", dtype=torch.float32)
paths = {i: str(d / f"layer_{i}.safetensors") for i in range(c["n_layers"])}
ts = load_transcoder_set(paths, scan="bench", feature_input_hook="hook_resid_mid",
                         feature_output_hook="hook_mlp_out", device=torch.device("cpu"),
                         lazy_encoder=False, lazy_decoder=False)
model = TransformerLensReplacementModel.from_config(cfg, ts)
from transformers import PreTrainedTokenizerFast
bos = f"t{ids[0]}"  # the prompt's first token is its BOS: circuit-tracer then adds none
tok = PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"), unk_token=bos,
                              bos_token=bos, eos_token=bos, pad_token=bos)
tok.save_pretrained(str(d / "tok"))
model.set_tokenizer(PreTrainedTokenizerFast.from_pretrained(str(d / "tok")))
sd = load_file(str(d / "model.safetensors"))
own = dict(model.named_parameters())
loaded = 0
for k, v in sd.items():
    hits = [n for n in own if n == k or n.endswith("." + k.split(".", 1)[-1]) and n.split(".")[:2] == k.split(".")[:2]]
    if k in own:
        hits = [k]
    if len(hits) != 1:
        cands = [n for n in own if n.replace(".old_mlp", "").replace(".old_unembed", "") == k]
        hits = cands
    if len(hits) != 1:
        raise SystemExit(f"cannot place {k}: {hits}")
    with torch.no_grad():
        own[hits[0]].copy_(v.reshape(own[hits[0]].shape))
    loaded += 1
t0 = time.perf_counter()
g = attribute(torch.tensor(ids), model, max_feature_nodes=mfn, batch_size=bs)
wall = time.perf_counter() - t0
torch.save({"adjacency": g.adjacency_matrix, "active": g.active_features,
            "selected": g.selected_features, "logit_tokens": g.logit_token_ids if hasattr(g, "logit_token_ids") else None,
            "seconds": wall, "loaded": loaded}, d / "peer.pt")
print(json.dumps({"seconds": wall, "loaded": loaded}))
"""


def peer_case(
    model: HookedTransformer, dics: list[Dictionary], ids: list[int], opts: GraphOptions
) -> dict[str, Any]:
    py = ensure_venv()
    with tempfile.TemporaryDirectory(prefix="lenscope-ct-") as tmp:
        d = Path(tmp)
        write_peer_inputs(model, dics, d)
        script = d / "peer.py"
        script.write_text(PEER)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        args = [str(py), str(script), str(d), json.dumps(ids), str(opts.max_feature_nodes),
                str(opts.batch_size), str(torch.get_num_threads())]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            # circuit-tracer's __del__ complains at exit under torch 2.13: read what came before
            text = (proc.stderr or proc.stdout).split("Exception ignored in")[0].strip()
            lines = text.splitlines() or ["no output"]
            return {"ran": False, "why": lines[-1], "exit_code": proc.returncode}
        out = torch.load(d / "peer.pt")
    return {"ran": True, "seconds": out["seconds"], "process_seconds": total, "graph": out}


def compare(ours: Any, peer: dict[str, Any]) -> dict[str, Any]:
    """Max |difference| of edge weights between the two graphs on what both define alike: the
    features both selected and the targets as rows; the common features and the error nodes at
    positions >= 1 as columns. Two definitions differ and are reported, not compared:
    circuit-tracer leaves out features at position 0 (their writes join that position's error
    node), and its embedding node is the token embedding alone (lenscope's is the residual stream
    entering block 0: token plus learned position embedding)."""
    g = peer["graph"]
    A2, act, sel = g["adjacency"], g["active"], g["selected"]
    feats2 = {tuple(act[i].tolist()): k for k, i in enumerate(sel.tolist())}
    feats1 = {tuple(f): k for k, f in enumerate(ours.features.tolist())}
    common_f = sorted(set(feats1) & set(feats2))
    S1, S2, n = ours.n_features, len(feats2), ours.n_pos
    rest = ours.n_errors + n
    errs = [layer * n + p for layer in range(ours.n_layers) for p in range(1, n)]
    c1 = [feats1[f] for f in common_f] + [S1 + e for e in errs]
    c2 = [feats2[f] for f in common_f] + [S2 + e for e in errs]
    T = min(ours.n_targets, A2.shape[0] - S2 - rest)
    t1, t2 = ours.n_nodes - ours.n_targets, S2 + rest
    r1 = [feats1[f] for f in common_f] + list(range(t1, t1 + T))
    r2 = [feats2[f] for f in common_f] + list(range(t2, t2 + T))
    a = ours.adjacency[r1][:, c1]
    b = A2[r2][:, c2].to(a.dtype)
    diff = float((a - b).abs().max()) if a.numel() else None
    return {
        "common_features": len(common_f),
        "features_only_lenscope": len(set(feats1) - set(feats2)),
        "features_only_circuit_tracer": len(set(feats2) - set(feats1)),
        "edges_compared": int(a.numel()),
        "max_abs_diff": diff,
        "within_1e-4": diff is not None and diff <= 1e-4,
        "not_compared": "embedding columns (token vs token+position embedding) and error "
        "columns at position 0 (circuit-tracer folds position-0 features into them)",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcoders", default=None, help="mini's transcoders (default: random)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--no-peer", action="store_true", help="skip circuit-tracer")
    ap.add_argument("--max-feature-nodes", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=64)
    a = ap.parse_args()
    opts = GraphOptions(max_feature_nodes=a.max_feature_nodes, batch_size=a.batch_size,
                        demean_logits=True)  # fmt: skip
    mini = load_model("mini").eval()
    for p in mini.parameters():
        p.requires_grad_(False)
    mini_dics = (
        load_graph_transcoders(mini, a.transcoders)
        if a.transcoders
        else random_transcoders(mini, 2048)
    )
    cases: list[tuple[str, HookedTransformer, list[Dictionary], int]] = [
        ("mini-32", mini, mini_dics, 32),
        ("mini-128", mini, mini_dics, 16 if a.quick else 128),
    ]
    if not a.quick:
        _, d = common.gpt2_small_random()
        big = load_model(d).eval()
        for p in big.parameters():
            p.requires_grad_(False)
        cases.append(("gpt2-small-random", big, random_transcoders(big, 4096), 32))
    out: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__, "cases": {}}
    for name, model, dics, n in cases:
        ids = prompt_ids(model, n)
        res, g = lenscope_case(model, dics, ids, opts)
        entry: dict[str, Any] = {"lenscope": res}
        if not a.no_peer:
            try:
                peer = peer_case(model, dics, ids, opts)
            except (subprocess.CalledProcessError, OSError) as e:
                peer = {"ran": False, "why": f"could not make the side venv: {e}"}
            if peer.get("ran"):
                entry["circuit_tracer"] = {"seconds": peer["seconds"]}
                entry["speedup"] = peer["seconds"] / res["seconds"]
                entry["edges"] = compare(g, peer)
            else:
                entry["circuit_tracer"] = peer
        out["cases"][name] = entry
        print(json.dumps({name: entry}), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
