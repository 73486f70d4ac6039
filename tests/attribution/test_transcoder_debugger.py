"""Transcoders (and cross-layer transcoders) as debugger nodes: spliced as their MLP's
replacement plus the error, the output is unchanged; every latent's direct effect plus the error
and bias terms equals the MLP output's direct effect; activation x gradient is a first-order
change; measured ablations and traces equal brute-force hooked runs of the model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import NodeId, NodeKind, parse_latent_node_id
from lenscope.sae.dictionary import Dictionary
from tests.attribution.factory import logit_diff, logits_with, prompt, random_model
from tests.sae.helpers import random_clt, random_transcoder

Q = LogitDiff(target=[5], distractor=[11])
VARIANTS = [(0, "ln2", "relu"), (1, "ln2", "jumprelu"), (0, "resid_mid", "topk")]


def final_read(model: HookedTransformer, ids: list[int]) -> tuple[Tensor, dict[str, Tensor]]:
    """The question's read field at the last position (final norm frozen) and a clean cache."""
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        x = cache["blocks.1.hook_resid_post"][0, -1]
        s = ((x - x.mean()).pow(2).mean() + model.ln_final.eps).sqrt()
        assert model.ln_final.w is not None
        read = (model.W_U[:, 5] - model.W_U[:, 11]) * model.ln_final.w / s
    return read - read.mean(), dict(cache)


def add_at(hook_pos: Any, v: Tensor) -> Any:
    def fn(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[hook_pos] += v.to(x.dtype)
        return x

    return fn


@pytest.mark.parametrize("layer,reads,act", VARIANTS)
def test_transcoder_latents_decompose_the_mlp_output_exactly(
    layer: int, reads: str, act: str
) -> None:
    model = random_model("gpt2").double()
    t = random_transcoder(layer, reads=reads, activation=act).requires_grad_(False)
    ids = prompt()
    r = Debugger(model, [t]).why(ids, Q, measure=0, top_k=50)
    clean = logit_diff(logits_with(model, ids), 5, 11)
    assert r.value == pytest.approx(clean, abs=1e-9)  # the splice (error kept) changes nothing
    assert r.table.direct_total == pytest.approx(clean, abs=1e-9)
    assert r.sae_hooks == [f"blocks.{layer}.transcoder"]
    lat = [row for row in r.table.rows if row.kind is NodeKind.LATENT]
    assert lat and all(row.component.startswith(f"L{layer}.transcoder.F") for row in lat)
    read, cache = final_read(model, ids)
    out = cache[f"blocks.{layer}.hook_mlp_out"][0, -1]
    lat_sum = next(k for k in r.table.sums if k.kind is NodeKind.LATENT).direct_effect
    terms = {t.name: t.value for t in r.table.terms}
    error, bias = terms[f"L{layer}.transcoder.error"], terms[f"L{layer}.transcoder.b_dec"]
    # latents + error + bias = the MLP's output read by the question (a brute-force dot product)
    assert lat_sum + error + bias == pytest.approx(float(out @ read), abs=1e-9)
    # ... and the bias term is b_dec read by the question, the error what the MLP adds to the rest
    assert bias == pytest.approx(float(t.b_dec @ read), abs=1e-9)
    f = t.encode(cache[t.cfg.hook_in][0, -1])
    recon = f @ t.W_dec + t.b_dec
    assert error == pytest.approx(float((out - recon) @ read), abs=1e-9)
    # one latent's direct effect and its activation x gradient (a central difference)
    row = next(row for row in lat if row.granularity == "position" and row.position == len(ids) - 1)
    node = NodeId.parse(row.node)
    assert node.index is not None
    j, p = node.index, len(ids) - 1
    assert row.direct_effect == pytest.approx(float(f[j] * t.W_dec[j] @ read), abs=1e-9)
    hook = t.cfg.hook_out
    step = cache[t.cfg.hook_in][0, p]
    step = t.encode(step)[j] * t.W_dec[j]
    eps = 1e-6
    up = logit_diff(logits_with(model, ids, [(hook, add_at((0, p), eps * step))]), 5, 11)
    down = logit_diff(logits_with(model, ids, [(hook, add_at((0, p), -eps * step))]), 5, 11)
    assert row.total_effect == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("layer,reads,act", VARIANTS[:2])
def test_measured_transcoder_ablations_equal_hooked_runs(layer: int, reads: str, act: str) -> None:
    model = random_model("gpt2").double()
    t = random_transcoder(layer, reads=reads, activation=act).requires_grad_(False)
    ids = prompt()
    r = Debugger(model, [t]).why(ids, Q, measure=80, top_k=15)
    clean = logit_diff(logits_with(model, ids), 5, 11)
    _, cache = final_read(model, ids)
    f = t.encode(cache[t.cfg.hook_in][0])  # [p, F]
    rows = [row for row in r.table.rows if row.kind is NodeKind.LATENT]
    assert rows and all(row.ablation_effect is not None for row in rows)
    for row in rows:
        node = NodeId.parse(row.node)
        assert node.index is not None
        write = f[:, node.index, None] * t.W_dec[node.index]  # [p, d]
        if node.position is not None:
            keep = torch.zeros_like(write[:, :1])
            keep[node.position] = 1.0
            write = write * keep
        cut = logit_diff(logits_with(model, ids, [(t.cfg.hook_out, add_at(0, -write))]), 5, 11)
        assert row.ablation_effect == pytest.approx(clean - cut, abs=1e-9), row.node


def test_transcoder_latent_traces_add_up_and_agree_both_ways() -> None:
    model = random_model("gpt2").double()
    t = random_transcoder(1, reads="ln2", activation="relu")
    ids = prompt()
    dbg = Debugger(model, [t])
    r = dbg.why(ids, Q, measure=0, top_k=50)
    p = len(ids) - 1
    row = next(
        row
        for row in r.table.rows
        if row.kind is NodeKind.LATENT and row.position == p and abs(row.total_effect) > 1e-6
    )
    node = NodeId.parse(row.node)
    assert node.index is not None
    j = node.index
    # edges into the latent (with the bias terms) add up to its input times its gradient
    acts: dict[str, Tensor] = {}

    def keep(x: Tensor, hook: Any) -> None:
        x.retain_grad()
        acts[hook.name] = x

    logits = model.run_with_hooks(
        torch.tensor([ids]), fwd_hooks=[(t.cfg.hook_out, keep), (t.cfg.hook_in, keep)]
    )
    (logits[0, -1, 5] - logits[0, -1, 11]).backward()
    g_out = acts[t.cfg.hook_out].grad
    assert g_out is not None
    g_f = float(t.W_dec[j] @ g_out[0, p])
    x = acts[t.cfg.hook_in].detach()[0, p].clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(t.encode(x)[j], x)
    up = dbg.trace(ids, Q, [row.node], top_k=200)
    assert up.edge_total == pytest.approx(g_f * float(gx @ x.detach()), abs=1e-9)
    assert {r2.layer for r2 in up.rows} <= {None, 0, 1}
    # a head's edge into the latent is the same traced upstream or downstream
    head = next(r2 for r2 in up.rows if r2.kind is NodeKind.HEAD and r2.position == p)
    down = dbg.trace(ids, Q, [head.node], direction="downstream", top_k=200)
    into = next(r2 for r2 in down.rows if r2.node == row.node)
    assert into.edge == pytest.approx(head.edge, abs=1e-9)
    # and a latent traced downstream reaches the logits through its decoder row
    d = dbg.trace(ids, Q, [row.node], direction="downstream", top_k=10)
    assert d.direct_effect == pytest.approx(row.direct_effect, abs=1e-9)


def test_cross_layer_transcoder_latents_write_every_later_mlp() -> None:
    model = random_model("gpt2").double()
    clt = random_clt()
    ids = prompt()
    dbg = Debugger(model, [clt])
    assert list(dbg.latents) == ["blocks.0.clt", "blocks.1.clt"]
    r = dbg.why(ids, Q, measure=60, top_k=6)
    clean = logit_diff(logits_with(model, ids), 5, 11)
    assert r.value == pytest.approx(clean, abs=1e-9)
    assert r.table.direct_total == pytest.approx(clean, abs=1e-9)
    read, cache = final_read(model, ids)
    outs = sum(cache[f"blocks.{i}.hook_mlp_out"][0, -1] for i in range(2))
    assert isinstance(outs, Tensor)
    lat_sum = next(k for k in r.table.sums if k.kind is NodeKind.LATENT).direct_effect
    views = sum(t.value for t in r.table.terms if t.name.startswith(("L0.clt.", "L1.clt.")))
    assert lat_sum + views == pytest.approx(float(outs @ read), abs=1e-9)
    dics = clt.dictionaries()
    rows = [row for row in r.table.rows if row.kind is NodeKind.LATENT]
    assert rows and any(row.component.startswith("L0.clt.F") for row in rows)
    for row in rows:
        node = NodeId.parse(row.node)
        assert node.layer is not None and node.index is not None
        dic = dics[node.layer]
        f = dic.encode(cache[dic.hook_in][0])[:, node.index, None]
        if node.position is not None:
            mask = torch.zeros_like(f)
            mask[node.position] = 1.0
            f = f * mask
        hooks = [(h, add_at(0, -f * dic.decoder(h)[node.index])) for h in dic.hooks_out]
        cut = logit_diff(logits_with(model, ids, hooks), 5, 11)
        assert row.ablation_effect == pytest.approx(clean - cut, abs=1e-9), row.node
    lat0 = next(row for row in rows if row.component.startswith("L0.clt.F"))
    up = dbg.trace(ids, Q, [lat0.node], top_k=20)
    assert {r2.layer for r2 in up.rows} <= {None, 0}
    with pytest.raises(InputError, match="upstream, not downstream"):
        dbg.trace(ids, Q, [lat0.node], direction="downstream")


def test_transcoder_node_ids_and_bad_transcoders() -> None:
    assert str(NodeId.parse("l3.Transcoder.f12@4")) == "L3.transcoder.F12@4"
    assert parse_latent_node_id("L3.transcoder.F12") == ("blocks.3.transcoder", 12)
    assert parse_latent_node_id("L2.clt.F1") == ("blocks.2.clt", 1)
    assert NodeId.parse("L6.resid_post.F3").hook_name == "blocks.6.hook_resid_post"  # unchanged
    model = random_model("gpt2").double()
    t = random_transcoder(0)
    with pytest.raises(InputError, match="one transcoder per MLP"):
        Debugger(model, [t, random_transcoder(0, seed=1)])
    wrong = Dictionary(
        hook_in="blocks.0.ln2.hook_normalized",
        hooks_out=("blocks.1.hook_mlp_out",),
        encode=t.encode,
        decoders=(t.W_dec.detach(),),
    )
    with pytest.raises(InputError, match="neither an SAE"):
        Debugger(model, [wrong])
    with pytest.raises(InputError, match="d_model"):
        Debugger(model, [random_transcoder(0, d=16)])
    dbg = Debugger(model, [t])
    with pytest.raises(InputError, match=r"no transcoder is spliced at blocks\.1\.transcoder"):
        dbg.trace(prompt(), Q, ["L1.transcoder.F0"])
    with pytest.raises(InputError, match="latent 99 does not exist"):
        dbg.trace(prompt(), Q, ["L0.transcoder.F99"])


def test_attention_questions_and_comparisons_with_a_transcoder() -> None:
    """Latents are a view: an attention score's query and key totals are the same with a
    transcoder spliced (layer 0, upstream of layer 1's heads) as without it."""
    from lenscope.attribution.compare import Side
    from lenscope.attribution.questions import AttentionScore

    model = random_model("gpt2").double()
    ids = prompt()
    q = AttentionScore(layer=1, head=2, query_pos=7, key_pos=3)
    plain = Debugger(model).attention(ids, q, top_k=20)
    spliced = Debugger(model, [random_transcoder(0)]).attention(ids, q, top_k=20)
    assert spliced.score == pytest.approx(plain.score, abs=1e-9)
    assert spliced.query_total == pytest.approx(plain.query_total, abs=1e-9)
    assert spliced.key_total == pytest.approx(plain.key_total, abs=1e-9)
    assert spliced.query_total == pytest.approx(spliced.score, abs=1e-6)
    assert any(t.name == "L0.transcoder.error" for t in spliced.query_terms)
    dbg = Debugger(model, [random_transcoder(1)])
    c = dbg.compare(Q, Side(prompt=ids), Side(prompt=prompt(seed=4)), top_k=5, measure=2)
    assert c.value_diff == pytest.approx(
        logit_diff(logits_with(model, prompt(seed=4)), 5, 11)
        - logit_diff(logits_with(model, ids), 5, 11),
        abs=1e-9,
    )
