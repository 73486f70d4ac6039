"""Cross-layer transcoders in circuit-tracer's layout, as one `Dictionary` per source layer.

A folder of `W_enc_{i}.safetensors` (W_enc_{i} [d_sae, d_model], b_enc_{i} [d_sae], b_dec_{i}
[d_model], optional threshold_{i} [d_sae]) and `W_dec_{i}.safetensors` (W_dec_{i}
[d_sae, n_layers - i, d_model]), for i in 0..n_layers-1. Latents of layer i read its input hook
(default `blocks.{i}.hook_resid_mid`): f_i = act(x_i @ W_enc_i^T + b_enc_i) (ReLU, or JumpReLU
with the threshold); the MLP output of layer j is reconstructed as
    sum_{i <= j} f_i @ W_dec_i[:, j - i] + b_dec_j.
`dictionaries()` gives source layer i's `Dictionary`: it reads `hook_in` at layer i and writes
`blocks.{j}.hook_mlp_out` for every j >= i; b_dec_j rides on layer j's own dictionary (its first
output), so each output's bias is added once. Spliced together with the error kept the model is
unchanged; without the error each splice replaces rather than sums, so splice a CLT with
`keep_error=True` (or sum `decode` over the dictionaries, as `reconstruct` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lenscope.errors import ArtifactError
from lenscope.sae.dictionary import Dictionary


@dataclass(frozen=True)
class CLTConfig:
    d_in: int  # what `check_compatible` compares with each input hook's width
    d_sae: int
    n_layers: int


class CrossLayerTranscoder:
    """Per source layer i: W_enc [d_sae, d_model], b_enc, threshold, decoders [d_sae, n-i, d]."""

    def __init__(
        self,
        W_enc: list[Tensor],
        b_enc: list[Tensor],
        b_dec: list[Tensor],
        W_dec: list[Tensor],
        threshold: list[Tensor] | None,
        hook_in: str = "hook_resid_mid",
    ) -> None:
        self.W_enc, self.b_enc, self.b_dec, self.W_dec = W_enc, b_enc, b_dec, W_dec
        self.threshold = threshold
        self.hook_in = hook_in
        self.n_layers = len(W_enc)
        self.cfg = CLTConfig(int(W_enc[0].shape[1]), int(W_enc[0].shape[0]), self.n_layers)

    def encode(self, layer: int, x: Tensor) -> Tensor:
        pre = x.to(self.W_enc[layer].dtype) @ self.W_enc[layer].t() + self.b_enc[layer]
        if self.threshold is None:
            return pre.relu()
        return pre.relu() * (pre > self.threshold[layer]).to(pre.dtype)

    def _encoder(self, layer: int) -> Callable[[Tensor], Tensor]:
        return lambda x: self.encode(layer, x)

    def dictionaries(self) -> list[Dictionary]:
        out = []
        for i in range(self.n_layers):
            hooks = tuple(f"blocks.{j}.hook_mlp_out" for j in range(i, self.n_layers))
            out.append(
                Dictionary(
                    hook_in=f"blocks.{i}.{self.hook_in}",
                    hooks_out=hooks,
                    encode=self._encoder(i),
                    decoders=tuple(self.W_dec[i][:, k] for k in range(len(hooks))),
                    biases=(self.b_dec[i], *([None] * (len(hooks) - 1))),
                    source=self,
                )
            )
        return out

    def reconstruct(self, xs: list[Tensor]) -> list[Tensor]:
        """Each layer's MLP output reconstructed from every layer's input `xs[i]`."""
        dics = self.dictionaries()
        fs = [d.latents(x) for d, x in zip(dics, xs, strict=True)]
        return [
            sum(
                (dics[i].decode(fs[i], xs[i], f"blocks.{j}.hook_mlp_out") for i in range(j + 1)),
                torch.zeros_like(xs[j]),
            )
            for j in range(self.n_layers)
        ]


def is_clt_folder(path: Path) -> bool:
    return path.is_dir() and (path / "W_enc_0.safetensors").is_file()


def load_cross_layer_transcoder(
    path: Path | str, hook_in: str = "hook_resid_mid"
) -> CrossLayerTranscoder:
    """A cross-layer transcoder from circuit-tracer's per-layer safetensors (see the module)."""
    from lenscope.sae.transcoder_formats import _read_safetensors

    p = Path(path)
    if not is_clt_folder(p):
        raise ArtifactError(f"{p} holds no W_enc_0.safetensors: not a cross-layer transcoder")
    n = len(list(p.glob("W_enc_*.safetensors")))
    enc, benc, bdec, dec, thr = [], [], [], [], []
    for i in range(n):
        e = _read_safetensors(p / f"W_enc_{i}.safetensors")
        d = _read_safetensors(p / f"W_dec_{i}.safetensors")
        names = [f"W_enc_{i}", f"b_enc_{i}", f"b_dec_{i}"]
        missing = [k for k in names if k not in e] + [k for k in [f"W_dec_{i}"] if k not in d]
        if missing:
            raise ArtifactError(f"{p}: missing tensor(s) {', '.join(missing)}")
        enc.append(e[f"W_enc_{i}"].float())
        benc.append(e[f"b_enc_{i}"].float())
        bdec.append(e[f"b_dec_{i}"].float())
        dec.append(d[f"W_dec_{i}"].float())
        if f"threshold_{i}" in e:
            thr.append(e[f"threshold_{i}"].float())
    d_sae, d_model = enc[0].shape
    for i in range(n):
        want = (d_sae, n - i, d_model)
        if enc[i].shape != (d_sae, d_model) or tuple(dec[i].shape) != want:
            raise ArtifactError(
                f"{p}: layer {i}'s W_enc {tuple(enc[i].shape)} / W_dec {tuple(dec[i].shape)} "
                f"do not fit [d_sae, d_model] = {(d_sae, d_model)} and {want}"
            )
    if thr and len(thr) != n:
        raise ArtifactError(f"{p}: some layers have a threshold and some do not")
    return CrossLayerTranscoder(enc, benc, bdec, dec, thr or None, hook_in=hook_in)
