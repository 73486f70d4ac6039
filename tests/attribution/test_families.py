"""The debugger is exact on every family lenscope loads, on checkpoints `transformers` built.

Each identity is checked against an independent computation from a plain hooked run of the
model: the value is the model's own; the direct effects plus the terms add up to it; each
layer's heads (plus b_O) write exactly its `hook_attn_out` and its neurons (plus b_out) its
`hook_mlp_out` as the question reads them, through post-norms; a measured ablation equals a
hooked re-run; the attention split sums to the score through q/k norms, soft-caps and each
layer's rotary base; the heads' input gradients agree with autograd's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope import HookedTransformer, load_model
from lenscope.attribution.api import Debugger
from lenscope.attribution.columns import bias_terms, writer_chunks
from lenscope.attribution.questions import AttentionScore, Logit, LogitDiff, Prob
from lenscope.attribution.reads import combined, head_input_grads, question_reads
from lenscope.nodes import NodeId, NodeKind
from tests.attribution.test_effects import scaling_hook
from tests.model.hf_fixtures import make_checkpoint

FAMILIES = [
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3-linear",
    "qwen3",
    "olmo2",
    "phi3",
    "phi3-longrope",
    "gptj",
]
MOE = ["mixtral", "qwen3-moe", "qwen2-moe"]
T, D = 5, 11
IDS = [3, 17, 42, 8, 29, 64, 11, 5, 73, 20, 36, 9, 51, 14]  # longer than the sliding window

_MODELS: dict[str, HookedTransformer] = {}


def family_model(family: str, tmp: pytest.TempPathFactory) -> HookedTransformer:
    if family not in _MODELS:
        d: Path = tmp.mktemp(family)
        make_checkpoint(family, d)
        _MODELS[family] = load_model(d)
    return _MODELS[family]


def pre_cap_value(model: HookedTransformer, q: Any, ids: list[int]) -> tuple[float, Tensor]:
    """(the question on the pre-soft-cap logits, its read field at the final residual with the
    final norm's scale frozen), by autograd on the model's own modules."""
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
    x = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][0, -1].clone()
    norm = model.ln_final
    xc = x - x.mean() if norm.kind == "LN" else x
    s = (xc.pow(2).mean() + norm.eps).sqrt().detach()
    x.requires_grad_(True)
    xc = x - x.mean() if norm.kind == "LN" else x
    y = xc / s * (norm.w if norm.w is not None else 1.0)
    y = y + norm.b if norm.b is not None else y
    pre = y @ model.W_U + (model.b_U if model.b_U is not None else 0.0)
    if isinstance(q, LogitDiff):
        v = pre[q.target].mean() - pre[q.distractor].mean()
    else:
        v = pre[q.token]
    (g,) = torch.autograd.grad(v, x)
    return float(v.detach()), g


@pytest.mark.parametrize("family", [*FAMILIES, *MOE])
@pytest.mark.parametrize("question", [LogitDiff(target=[T, 7], distractor=[D]), Logit(token=T)])
def test_direct_effects_and_terms_add_up_to_the_value(
    family: str, question: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = family_model(family, tmp_path_factory)
    r = Debugger(model).why(IDS, question, measure=0)
    with torch.no_grad():
        logits = model(torch.tensor([IDS]))[0, -1]
    if isinstance(question, LogitDiff):
        want = float(logits[[T, 7]].mean() - logits[D])
    else:
        want = float(logits[T])
    assert r.value == pytest.approx(want, abs=1e-5)
    nodes = sum(s.direct_effect for s in r.table.sums)
    terms = {t.name: t.value for t in r.table.terms}
    assert nodes + sum(terms.values()) == pytest.approx(want, abs=1e-4)
    assert r.table.direct_total == pytest.approx(want, abs=1e-4)
    # with a final soft-cap the nodes decompose the question on the pre-cap logits
    pre, _ = pre_cap_value(model, question, IDS)
    rest = sum(v for k, v in terms.items() if k != "logit_soft_cap")
    assert nodes + rest == pytest.approx(pre, abs=1e-4)
    if model.cfg.output_logits_soft_cap:
        assert abs(terms["logit_soft_cap"]) > 1e-3  # the cap bites on these checkpoints
    else:
        assert "logit_soft_cap" not in terms


@pytest.mark.parametrize("family", [*FAMILIES, *MOE])
def test_each_layers_nodes_write_its_hook_outputs(
    family: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Per layer: the heads' direct effects plus b_O's are `hook_attn_out` read by the question;
    the neurons' (or experts') plus b_out's are `hook_mlp_out`'s (post-norms included)."""
    model = family_model(family, tmp_path_factory)
    q = LogitDiff(target=[T], distractor=[D])
    _, R = pre_cap_value(model, q, IDS)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([IDS]))
    with Debugger(model).session([IDS], q) as s:
        read = combined(*question_reads(s.cap))
        chunks = [c for c in writer_chunks(s.cap, read) if c.granularity == "position"]
        terms = {k: float(v[0]) for k, v in bias_terms(s.cap, read).items()}
    mlp_kind = NodeKind.EXPERT if model.cfg.num_experts else NodeKind.NEURON
    for layer in range(model.cfg.n_layers):
        heads = sum(
            float(c.cols["read"].sum())
            for c in chunks
            if c.layer == layer and c.kind is NodeKind.HEAD
        )
        attn_out = float(cache[f"blocks.{layer}.hook_attn_out"][0, -1] @ R)
        assert heads + terms.get(f"L{layer}.b_O", 0.0) == pytest.approx(attn_out, abs=1e-4)
        mlp = [c for c in chunks if c.layer == layer and c.kind is mlp_kind]
        assert len(mlp) == 1
        mlp_out = float(cache[f"blocks.{layer}.hook_mlp_out"][0, -1] @ R)
        got = float(mlp[0].cols["read"].sum()) + terms.get(f"L{layer}.b_out", 0.0)
        assert got == pytest.approx(mlp_out, abs=1e-4)


def ablation_hook(node: NodeId) -> tuple[str, Any]:
    """Zero the node in a plain hooked run; an expert through its own activations (an
    independent path from the router weight that the debugger zeroes)."""
    if node.kind is not NodeKind.EXPERT:
        return scaling_hook(node, 0.0)

    def fn(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[:, slice(None) if node.position is None else node.position] = 0.0
        return x

    return f"blocks.{node.layer}.mlp.experts.{node.index}.hook_post", fn


@pytest.mark.parametrize("family", [*FAMILIES, *MOE])
def test_measured_ablations_equal_hooked_reruns(
    family: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = family_model(family, tmp_path_factory)
    q = LogitDiff(target=[T], distractor=[D])
    r = Debugger(model).why(IDS, q, measure=3, top_k=5)
    measured = [row for row in r.table.rows if row.ablation_effect is not None]
    assert {row.granularity for row in measured} == {"component", "position", "pair"}
    with torch.no_grad():
        clean = model(torch.tensor([IDS]))[0, -1]
        for row in measured:
            hooks = [ablation_hook(NodeId.parse(row.node))]
            out = model.run_with_hooks(torch.tensor([IDS]), fwd_hooks=hooks)[0, -1]
            want = float((clean[T] - clean[D]) - (out[T] - out[D]))
            assert row.ablation_effect == pytest.approx(want, abs=1e-4), row.node


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layer", [1, 2])
def test_attention_sides_each_sum_to_the_score(
    family: str, layer: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Layer 1 of the Gemma 2/3 checkpoints is global, layer 2 local (its own rotary base in
    Gemma 3); the scores are soft-capped in Gemma 2."""
    model = family_model(family, tmp_path_factory)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([IDS]))
    scores = cache[f"blocks.{layer}.attn.hook_attn_scores"][0]
    # the pair with the largest score (where a soft-cap bites most) among late queries
    late = scores[:, 10:].masked_fill(~scores[:, 10:].isfinite(), 0.0).abs()
    h, qq, k = (int(i) for i in torch.unravel_index(late.argmax(), late.shape))
    qq += 10
    a = Debugger(model).attention(IDS, AttentionScore(layer=layer, head=h, query_pos=qq, key_pos=k))
    score = float(scores[h, qq, k])
    assert a.score == pytest.approx(score, abs=1e-5)
    assert a.query_total == pytest.approx(score, abs=1e-4)
    assert a.key_total == pytest.approx(score, abs=1e-4)
    # the token-pair view weighs attention by the norm of what lands in the stream at the query
    block = model.blocks[layer]
    group = model.cfg.n_heads // model.cfg.n_kv_heads
    v = cache[f"blocks.{layer}.attn.hook_v"][0, : qq + 1, h // group]
    write = v @ block.attn.W_O[h]
    if block.ln1_post is not None:
        s = cache[f"blocks.{layer}.ln1_post.hook_scale"][0, qq]
        write = write / s * block.ln1_post.w
    want = scores.softmax(-1)[h, qq, : qq + 1] * write.norm(dim=-1)
    pair = next(p for p in a.pairs if p.head == f"L{layer}.H{h}")
    torch.testing.assert_close(torch.tensor(pair.weighted), want.detach(), atol=1e-5, rtol=1e-4)
    capped = [t for t in a.query_terms if t.name.endswith("soft_cap")]
    assert bool(capped) == bool(model.cfg.attn_scores_soft_cap)
    if capped:  # the sides split the raw score q.k / scale, the cap's share is the term
        group = model.cfg.n_heads // model.cfg.n_kv_heads
        qk = cache[f"blocks.{layer}.attn.hook_rot_q"][0, qq, h]
        kv = cache[f"blocks.{layer}.attn.hook_rot_k"][0, k, h // group]
        raw = float(qk @ kv) / model.cfg.attn_scale
        assert capped[0].value == pytest.approx(score - raw, abs=1e-5)
        assert abs(capped[0].value) > 1e-3


def autograd_at(
    model: HookedTransformer, names: list[str], q: LogitDiff
) -> dict[str, tuple[Tensor, Tensor]]:
    acts: dict[str, Tensor] = {}

    def keep(x: Tensor, hook: Any) -> None:
        x.retain_grad()
        acts[hook.name] = x

    logits = model.run_with_hooks(torch.tensor([IDS]), fwd_hooks=[(n, keep) for n in names])
    (logits[0, -1, q.target].mean() - logits[0, -1, q.distractor].mean()).backward()
    return {n: (a.detach(), a.grad) for n, a in acts.items()}  # type: ignore[misc]


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "olmo2", "gptj"])
def test_head_input_gradients_agree_with_autograd(
    family: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Values: autograd's gradient at `hook_v` (soft-capped softmax, grouped heads summed).
    Queries and keys: the debugger's gradients sit before the q/k norms with their scales frozen,
    so `input . gradient` there equals autograd's at the rotated, normed q and k."""
    model = family_model(family, tmp_path_factory)
    lay = 1
    a = f"blocks.{lay}.attn."
    names = [a + n for n in ("hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k")]
    q = LogitDiff(target=[T], distractor=[D])
    ref = autograd_at(model, names, q)
    with Debugger(model).session([IDS], q) as s:
        g_q, g_k, g_v = head_input_grads(s.cap, lay, g_z=s.cap.layers[lay].g_z)
    h, kv = model.cfg.n_heads, model.cfg.n_kv_heads
    group = h // kv
    torch.testing.assert_close(
        g_v[0].reshape(len(IDS), kv, group, -1).sum(2),
        ref[a + "hook_v"][1][0],
        atol=1e-5,
        rtol=1e-4,
    )
    for x, g in (("q", g_q), ("k", g_k)):
        pre = ref[a + f"hook_{x}"][0][0]
        if x == "k":
            pre = pre.repeat_interleave(group, dim=1)
        ours = (pre * g[0]).sum((-1, -2))
        rot, grad = ref[a + f"hook_rot_{x}"]
        torch.testing.assert_close(ours, (rot * grad)[0].sum((-1, -2)), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["gemma2", "olmo2", "mixtral"])
def test_total_effect_is_the_first_order_change(
    family: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = family_model(family, tmp_path_factory)
    q = Prob(token=T) if family == "gemma2" else LogitDiff(target=[T], distractor=[D])
    r = Debugger(model).why(IDS, q, measure=0, top_k=3)
    model64 = model.double()
    try:
        rows = [row for row in r.table.rows if row.granularity == "position"][:4]
        rows += [row for row in r.table.rows if row.kind is NodeKind.EXPERT][:2]
        eps = 1e-4

        def value(hooks: Any) -> float:
            with torch.no_grad():
                out = model64.run_with_hooks(torch.tensor([IDS]), fwd_hooks=hooks)[0, -1]
            if isinstance(q, Prob):
                return float(out.softmax(-1)[T])
            return float(out[T] - out[D])

        for row in rows:
            node = NodeId.parse(row.node)
            hook = _expert_scaling if node.kind is NodeKind.EXPERT else scaling_hook
            up, down = value([hook(node, 1 + eps)]), value([hook(node, 1 - eps)])
            want = (up - down) / (2 * eps)
            assert row.total_effect == pytest.approx(want, rel=1e-3, abs=1e-5), row.node
    finally:
        model.float()


def _expert_scaling(node: NodeId, factor: float) -> tuple[str, Any]:
    def fn(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[:, slice(None) if node.position is None else node.position, node.index] *= factor
        return x

    return node.hook_name, fn


@pytest.mark.parametrize("family", ["gemma2", "olmo2"])
def test_trace_edges_add_up_through_post_and_qk_norms(
    family: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = family_model(family, tmp_path_factory)
    q = LogitDiff(target=[T], distractor=[D])
    dbg = Debugger(model)
    with dbg.session([IDS], q) as s:
        g_q, _, _ = head_input_grads(s.cap, 2, g_z=s.cap.layers[2].g_z * _head(s.cap, 2, 1))
    ref = autograd_at(model, ["blocks.2.attn.hook_q"], q)
    want = float((ref["blocks.2.attn.hook_q"][0][0, :, 1] * g_q[0, :, 1]).sum())
    t = dbg.trace(IDS, q, ["L2.H1:q"], top_k=200)
    assert t.edge_total == pytest.approx(want, abs=1e-5)
    # downstream from a head through the post-norm agrees with upstream into a later head
    up = dbg.trace(IDS, q, ["L2.H1:k"], top_k=20).rows
    head = next(r for r in up if r.kind is NodeKind.HEAD and r.layer == 0 and r.position)
    down = dbg.trace(IDS, q, [head.node], direction="downstream", top_k=200).rows
    got = {r.node: r for r in down}["L2.H1"].via_k
    assert got == pytest.approx(head.edge, abs=1e-6)
    assert got != 0.0


def _head(cap: Any, layer: int, head: int) -> Tensor:
    m = torch.zeros_like(cap.layers[layer].g_z)
    m[:, :, head] = 1.0
    return m
