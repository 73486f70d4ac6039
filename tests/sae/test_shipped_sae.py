"""The SAE shipped for `mini` loads by name, belongs to the shipped model, and reproduces its
documented quality on shipped held-out tokens, computed here from plain hooks (not evaluate_sae)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lenscope.model import fingerprint, load_model
from lenscope.sae import load_sae, saes_for_model
from tests.lens.shipped import val_tokens

NAME = "mini-L2-resid_post-topk-k16-n2048"


def test_shipped_sae_reconstructs_minis_residual_stream() -> None:
    model = load_model("mini")
    sae = load_sae(NAME).eval()
    hook = sae.cfg.hook_name
    assert hook == "blocks.2.hook_resid_post" and sae.cfg.k == 16 and sae.cfg.d_sae == 2048
    assert sae.cfg.model_fingerprint == fingerprint(model)
    assert [p.name for p in saes_for_model(fingerprint(model), residual_only=True)] == [NAME]

    ctx = 128
    toks = val_tokens(8 * ctx).reshape(8, ctx)
    with torch.no_grad():
        clean, cache = model.run_with_cache(toks, names_filter=hook)
        x = cache[hook].float()
        acts = sae.encode(x)
        recon = sae.decode(acts)
        # every token has exactly k active latents
        assert torch.equal((acts > 0).sum(-1), torch.full(x.shape[:-1], 16))
        xd = x.double().reshape(-1, x.shape[-1])
        fvu = ((xd - recon.double().reshape(xd.shape)) ** 2).sum() / ((xd - xd.mean(0)) ** 2).sum()
        assert fvu < 0.2, fvu  # docs/sae.md: 0.147 on 65,536 held-out tokens

        def ce(logits: torch.Tensor) -> float:
            return float(F.cross_entropy(logits[:, :-1].flatten(0, 1), toks[:, 1:].flatten()))

        spliced = model.run_with_hooks(toks, fwd_hooks=[(hook, lambda a, hook: recon.to(a.dtype))])
        zeroed = model.run_with_hooks(toks, fwd_hooks=[(hook, lambda a, hook: a * 0)])
    recovered = (ce(zeroed) - ce(spliced)) / (ce(zeroed) - ce(clean))
    assert recovered > 0.9, recovered  # docs/sae.md: 96.9%
