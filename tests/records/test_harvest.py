"""A whole harvest on a tiny model against brute force over every token of the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lenscope.data import TokenDataset
from lenscope.errors import ArtifactError, InputError
from lenscope.records import Records, harvest, most_active
from lenscope.records.effects import fold_final_norm
from lenscope.records.prio import QUANTILE_STREAM, RANDOM_STREAM, ROW_STREAM, priorities
from lenscope.sae import SAEConfig, SparseAutoencoder
from tests.records.helpers import reference, rows_of, small_config, tiny_model, token_dataset

CFG = small_config()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("harvest")
    model = tiny_model()
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=24, k=4, hook_name="blocks.0.hook_resid_post"))
    ds = token_dataset(d / "tokens")
    harvest(
        model,
        d / "rec",
        saes=[sae],
        config=CFG,
        corpus=[str(ds)],
        progress=False,
        log=lambda _: None,
    )
    rows = rows_of(TokenDataset.open(ds).train, CFG.n_tokens, CFG.ctx)
    recs = Records(d / "rec", model)
    ids = recs.node_ids()
    return {
        "model": model,
        "sae": sae,
        "rows": rows,
        "ref": reference(model, rows, [sae]),
        "recs": recs,
        "nodes": {r.node_id: r for r in recs.nodes(ids)},
        "dir": d,
    }


def group_of(node_id: str) -> tuple[str, int]:
    parts = node_id.split(".")
    layer, idx = int(parts[0][1:]), int(parts[-1][1:])
    if parts[1].startswith("N"):
        return f"mlp.{layer}", idx
    if parts[1].startswith("H"):
        return f"attn.{layer}", idx
    return f"sae.blocks.{layer}.hook_{parts[1]}", idx


def test_covers_every_node(run: dict[str, Any]) -> None:
    m = run["model"].cfg
    expected = m.n_layers * (m.d_mlp + m.n_heads) + 24
    assert len(run["nodes"]) == expected
    assert "L0.resid_post.F23" in run["nodes"] and "L1.H3" in run["nodes"]


def test_stats_match_brute_force(run: dict[str, Any]) -> None:
    for nid, r in run["nodes"].items():
        g, i = group_of(nid)
        x = run["ref"][g][:, i]
        mu = x.mean()
        m2, m3, m4 = ((x - mu) ** 2).mean(), ((x - mu) ** 3).mean(), ((x - mu) ** 4).mean()
        s = r.stats
        assert s.count == x.size
        assert s.mean == pytest.approx(mu, rel=1e-4, abs=1e-6), nid
        assert s.var == pytest.approx(m2, rel=1e-4, abs=1e-9), nid
        if m2 > 1e-8:
            assert s.skew == pytest.approx(m3 / m2**1.5, rel=1e-3, abs=1e-3), nid
            assert s.kurtosis == pytest.approx(m4 / m2**2 - 3, rel=1e-3, abs=1e-3), nid
        assert s.density == pytest.approx((x > 1e-7).mean(), abs=2 / x.size), nid
        assert s.max == pytest.approx(x.max(), rel=1e-5, abs=1e-6)
        assert s.min == pytest.approx(x.min(), rel=1e-5, abs=1e-6)


def _window(pos: int, ctx: int) -> tuple[int, int]:
    p = pos % ctx
    return pos - min(CFG.before, p), pos + min(CFG.after, ctx - 1 - p) + 1


def test_top_examples_match_brute_force(run: dict[str, Any]) -> None:
    """The top examples are the largest activations outside each row's first `context_only`
    positions (a row's first token has no context); the max statistic still sees every token."""
    flat_rows = run["rows"].reshape(-1)
    assert CFG.context_only == 1
    eligible = np.arange(flat_rows.size) % CFG.ctx >= CFG.context_only
    first_wins = 0
    for nid, r in run["nodes"].items():
        g, i = group_of(nid)
        x = run["ref"][g][:, i]
        want = np.sort(x[eligible])[::-1][: CFG.top_k]
        first_wins += int(x.argmax() % CFG.ctx < CFG.context_only and x.max() > want[0])
        assert all(e.position % CFG.ctx >= CFG.context_only for e in r.top), nid
        got = [e.activation for e in r.top]
        assert got == sorted(got, reverse=True), nid
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=nid)
        for e in r.top:
            lo, hi = _window(e.position, CFG.ctx)
            np.testing.assert_allclose(e.acts, x[lo:hi], rtol=1e-4, atol=1e-5, err_msg=nid)
            assert e.token_ids == flat_rows[lo:hi].tolist()
            assert e.center == e.position - lo
            assert e.acts[e.center] == pytest.approx(e.activation)
    assert first_wins > 0  # the rule matters here: some nodes peak at a row's first token


def test_head_attention_matches_the_pattern(run: dict[str, Any]) -> None:
    ctx = CFG.ctx
    for nid, r in run["nodes"].items():
        if r.kind != "head":
            continue
        pattern = run["ref"][f"pattern.{r.layer}"]  # [rows, H, q, k]
        for e in r.top + r.random:
            lo, hi = _window(e.position, ctx)
            row, q = divmod(e.position, ctx)
            want = pattern[row, r.index, q, lo % ctx : (hi - 1) % ctx + 1]
            assert e.attn is not None
            np.testing.assert_allclose(e.attn, want, rtol=1e-4, atol=1e-6, err_msg=nid)


def test_random_sample_is_the_lowest_priorities(run: dict[str, Any]) -> None:
    n = run["rows"].size
    pr = priorities(CFG.seed, RANDOM_STREAM, np.arange(n))
    want = sorted(np.argsort(pr, kind="stable")[: CFG.random_k].tolist(), key=lambda p: pr[p])
    for nid, r in run["nodes"].items():
        g, i = group_of(nid)
        assert [e.position for e in r.random] == want
        for e in r.random:
            lo, hi = _window(e.position, CFG.ctx)
            np.testing.assert_allclose(e.acts, run["ref"][g][lo:hi, i], rtol=1e-4, atol=1e-5)


def test_quantile_samples_follow_their_rule(run: dict[str, Any]) -> None:
    ctx, n_rows = CFG.ctx, run["rows"].shape[0]
    sampled = np.flatnonzero(priorities(CFG.seed, ROW_STREAM, np.arange(n_rows)) < CFG.sample_rate)
    toks = (sampled[:, None] * ctx + np.arange(ctx)).reshape(-1)
    qp = priorities(CFG.seed, QUANTILE_STREAM, toks)
    calib = CFG.calib_rows * ctx
    for nid, r in run["nodes"].items():
        g, i = group_of(nid)
        x = run["ref"][g][:, i]
        cal = np.sort(x[:calib])
        bounds = [cal[int(q * (calib - 1))] for q in CFG.quantile_levels]
        np.testing.assert_allclose([q.lo for q in r.quantiles], bounds, rtol=1e-4, atol=1e-5)
        for b, q in enumerate(r.quantiles):
            lo, hi = q.lo, (q.hi if q.hi is not None else np.inf)
            inside = (x[toks] >= lo) & (x[toks] < hi)
            # the per_quantile lowest-priority tokens of the bin, away from float-edge cases
            order = np.argsort(qp[inside], kind="stable")[: CFG.per_quantile]
            want = toks[inside][order].tolist()
            got = [e.position for e in q.examples]
            near_edge = np.abs(x[toks] - lo).min() < 1e-5 or np.abs(x[toks] - hi).min() < 1e-5
            if not near_edge:
                assert got == want, (nid, b)
            for e in q.examples:
                assert lo - 1e-5 <= e.activation < hi + 1e-5


def test_histogram_counts_sampled_rows(run: dict[str, Any]) -> None:
    ctx, n_rows = CFG.ctx, run["rows"].shape[0]
    sampled = np.flatnonzero(priorities(CFG.seed, ROW_STREAM, np.arange(n_rows)) < CFG.sample_rate)
    toks = (sampled[:, None] * ctx + np.arange(ctx)).reshape(-1)
    for nid, r in run["nodes"].items():
        g, i = group_of(nid)
        x = run["ref"][g][toks, i]
        h = r.histogram
        idx = np.clip(np.floor((x - h.lo) * CFG.hist_bins / (h.hi - h.lo)), -1, CFG.hist_bins) + 1
        want = np.bincount(idx.astype(int), minlength=CFG.hist_bins + 2)
        assert sum(h.counts) == len(toks)
        assert np.abs(np.array(h.counts) - want).sum() <= 2, nid


def test_output_effects_match_brute_force(run: dict[str, Any]) -> None:
    m, k = run["model"], CFG.effects_k
    w_u = m.W_U.detach()
    for r in run["nodes"].values():
        if r.kind == "neuron":
            d = m.W_out[r.layer, r.index].detach()
        elif r.kind == "latent":
            d = run["sae"].W_dec[r.index].detach()
        else:
            continue
        d = (d - d.mean()) * m.ln_final.w.detach()
        eff = d @ w_u
        assert [e.token_id for e in r.boosts] == eff.topk(k).indices.tolist()
        np.testing.assert_allclose(
            [e.value for e in r.suppresses], eff.topk(k, largest=False).values, rtol=1e-4, atol=1e-6
        )
    # heads: the direct OV path from every source token the corpus has, brute force [S, V]
    counts = np.bincount(run["rows"].reshape(-1), minlength=m.cfg.d_vocab)
    src = torch.from_numpy(np.argsort(-counts, kind="stable")[: CFG.effect_sources])
    r = run["nodes"]["L1.H2"]
    block = m.blocks[1]
    full = (
        fold_final_norm(m, (block.ln1(m.W_E[src]) @ m.W_V[1, 2] + m.b_V[1, 2]) @ m.W_O[1, 2]) @ w_u
    )
    top = full.flatten().topk(k)
    assert [(e.source_id, e.token_id) for e in r.boosts] == [
        (int(src[i // m.cfg.d_vocab]), i % m.cfg.d_vocab) for i in top.indices.tolist()
    ]
    np.testing.assert_allclose([e.value for e in r.boosts], top.values.detach(), rtol=1e-4)


def test_search_tokens_matches_brute_force(run: dict[str, Any]) -> None:
    recs = run["recs"]
    word = recs.vocab[int(np.bincount(run["rows"].reshape(-1)).argmax())]
    hits = recs.search_tokens(word, limit=1000)
    brute = {
        nid: sum(t == word for t in r.top_tokens)
        for nid, r in ((nid, _top_tokens(r)) for nid, r in run["nodes"].items())
    }
    assert {h.node_id: h.matches for h in hits} == {k: v for k, v in brute.items() if v}
    assert [h.matches for h in hits] == sorted((h.matches for h in hits), reverse=True)
    assert recs.search_tokens("no-such-token") == []


class _Tops:
    def __init__(self, tokens: list[str]) -> None:
        self.top_tokens = tokens


def _top_tokens(r: Any) -> _Tops:
    return _Tops([e.tokens[e.center] for e in r.top])


def test_most_active_on_text_matches_brute_force(run: dict[str, Any]) -> None:
    recs, model = run["recs"], run["model"]
    text = "w3 w7 w1 w9 w3 w7 w2 w40"
    got = most_active(recs, model, text, [run["sae"]], limit=10)
    ref = reference(model, model.to_tokens(text).numpy(), [run["sae"]])
    ratios = []
    for nid, r in run["nodes"].items():
        g, i = group_of(nid)
        ratios.append((ref[g][:, i].max() / r.stats.max, nid))
    ratios.sort(key=lambda t: (-t[0], t[1]))
    assert [a.node_id for a in got][:5] == [n for _, n in ratios][:5]
    np.testing.assert_allclose([a.ratio for a in got][:5], [v for v, _ in ratios][:5], rtol=1e-4)
    no_sae = most_active(recs, model, text, [], limit=1000)
    assert not any(a.kind == "latent" for a in no_sae)


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        ("L9.N0", "not in the records"),
        ("L0.N999", "not in the records"),
        ("bogus", "unknown node id"),
        ("embed", "records cover heads"),
        ("L0.N1@3", "drop the @position"),
    ],
)
def test_bad_node_ids_are_clear_errors(run: dict[str, Any], node: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        run["recs"].node(node)


def test_records_of_another_model_are_refused(run: dict[str, Any]) -> None:
    with pytest.raises(ArtifactError, match="another model"):
        Records(run["dir"] / "rec", tiny_model(seed=1))


def test_corrupt_parquet_is_a_clear_error(run: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "rec"
    shutil.copytree(run["dir"] / "rec", bad)
    f = bad / "examples.parquet"
    raw = bytearray(f.read_bytes())
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ArtifactError, match="corrupt"):
        Records(bad)
    raw[100:4000] = bytes(3900)  # keep the footer, break the pages
    f.write_bytes(raw)
    with pytest.raises(ArtifactError, match="rebuild"):
        Records(bad).node("L0.N3")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"context_only": 16}, r"context_only must lie in \[0, 15\]"),
        ({"context_only": -1}, "context_only must lie"),
        ({"shard_rows": 6, "batch_rows": 4}, "must be a multiple of batch_rows"),
        ({"top_k": 0}, "top_k must lie"),
    ],
)
def test_bad_configs_are_one_line_errors(
    run: dict[str, Any], change: dict[str, Any], needle: str
) -> None:
    import dataclasses

    with pytest.raises(InputError, match=needle):
        dataclasses.replace(CFG, **change).validate(run["model"])


def test_rows_of_one_token_have_no_context_positions(run: dict[str, Any]) -> None:
    import dataclasses

    dataclasses.replace(CFG, ctx=1, before=0, after=0).validate(run["model"])  # no error


def test_sliding_window_heads_store_the_attention_the_model_computes(tmp_path: Path) -> None:
    """Rows of 16 tokens, a window of 5 keys in layer 1: the stored attention rows are the
    model's own pattern (zero beyond the window), not a full causal softmax."""
    import dataclasses

    model = tiny_model(seed=3)
    model.cfg.sliding_window, model.cfg.sliding_layers = 5, [1]
    for layer, block in enumerate(model.blocks):
        block.attn.window = model.cfg.window(layer)
    cfg = dataclasses.replace(CFG, n_tokens=512, effects=False)
    ds = token_dataset(tmp_path / "tokens")
    harvest(model, tmp_path / "rec", config=cfg, corpus=[str(ds)], progress=False, log=print)
    rows = rows_of(TokenDataset.open(ds).train, cfg.n_tokens, cfg.ctx)
    pattern = reference(model, rows)["pattern.1"]  # [rows, H, q, k]
    assert (pattern[:, :, 10, :5] == 0).all()  # the window is in force
    recs = Records(tmp_path / "rec", model)
    checked = 0
    for r in recs.nodes([f"L1.H{h}" for h in range(4)]):
        for e in r.top + r.random:
            lo, hi = _window(e.position, cfg.ctx)
            row, q = divmod(e.position, cfg.ctx)
            want = pattern[row, r.index, q, lo % cfg.ctx : (hi - 1) % cfg.ctx + 1]
            assert e.attn is not None
            np.testing.assert_allclose(e.attn, want, rtol=1e-4, atol=1e-6)
            checked += int(q >= 5)
    assert checked > 0  # some examples sit where the window cuts keys off


def test_examples_shade_against_the_best_top_example(run: dict[str, Any]) -> None:
    """A node whose largest activation sits at a row's first position (never a top example)
    shades its examples against its best top example, not against that unseen maximum."""
    above = 0
    for r in run["nodes"].values():
        assert r.shade_scale == pytest.approx(max(max(e.activation for e in r.top), 1e-12))
        assert r.shade_scale <= r.stats.max + 1e-6
        above += int(r.stats.max > r.shade_scale + 1e-6)
    assert above > 0


def test_a_record_renders_inline_as_its_page_in_a_frame(run: dict[str, Any]) -> None:
    import html as _html

    from lenscope.viz.record_html import render_html

    r = run["nodes"]["L1.N3"]
    out = r._repr_html_()
    assert out.startswith("<iframe srcdoc=")
    assert _html.unescape(out.split('srcdoc="')[1].split('" style=')[0]) == render_html(r)


def test_terminal_and_html_pages_show_the_same_statistics(run: dict[str, Any]) -> None:
    """Both record pages list every statistic from one labelled list, with the record's numbers."""
    import html as _html

    from rich.console import Console

    from lenscope.records.render import render_record
    from lenscope.viz.record_html import render_html

    r = run["nodes"]["L1.N3"]
    s = r.stats
    skew = "n/a" if s.skew is None else f"{s.skew:.3g}"
    kurt = "n/a" if s.kurtosis is None else f"{s.kurtosis:.3g}"
    expected = [
        ("tokens", f"{s.count:,}"),
        ("mean", f"{s.mean:.4g}"),
        ("std", f"{s.std:.4g}"),
        ("skew", skew),
        ("excess kurtosis", kurt),
        ("density > 0", f"{s.density:.2%}"),
        ("max", f"{s.max:.4g}"),
        ("min", f"{s.min:.4g}"),
    ]
    assert s.labelled() == expected
    page = render_html(r)
    console = Console(record=True, width=200, color_system=None)
    render_record(console, r)
    text = console.export_text()
    for k, v in expected:
        assert f"<tr><th>{_html.escape(k)}</th><td class=num>{v}</td></tr>" in page
        assert any(k in line and v in line for line in text.splitlines()), k
