"""Sparse autoencoders: TopK (OpenAI's recipe), BatchTopK and ReLU+L1 behind one config and an
architecture registry; fast training on live or cached activations (1 or N processes), the
paper's evaluation, splicing into a model, and SAELens / OpenAI / sparsify formats.

    from lenscope.sae import Dictionary, sae_config_for, TrainConfig, train_sae, load_sae, splice
    cfg = sae_config_for(model, "blocks.2.hook_resid_post", k=16)
    result = train_sae(cfg, TrainConfig(steps=1000), model=model)
    sae = Dictionary.of(load_sae(result.path))
    latents = {}
    logits = model.run_with_hooks(tokens, fwd_hooks=splice(sae, keep_error=True, sink=latents))
    latents["blocks.2.hook_resid_post"]                     # [batch, pos, d_sae]

Transcoders (one per MLP, or one cross-layer transcoder) come as a set a user names:
    ts = load_transcoder_set("mini-tc-batchtopk-k16-n1024", model=model)
    ts.dictionaries()                                       # one Dictionary per layer
"""

from lenscope.sae.architectures import ARCHITECTURES
from lenscope.sae.config import SAEConfig, TrainConfig
from lenscope.sae.dictionary import Dictionary, check_compatible, splice
from lenscope.sae.evaluate import evaluate_sae
from lenscope.sae.formats import export_saelens, export_sparsify, import_sae
from lenscope.sae.io import list_saes, load_sae, saes_for_model, save_sae
from lenscope.sae.model import SparseAutoencoder
from lenscope.sae.train import sae_config_for, train_sae
from lenscope.sae.transcoder import Transcoder
from lenscope.sae.transcoder_formats import load_transcoders
from lenscope.sae.transcoder_set import (
    TranscoderSet,
    load_transcoder_set,
    transcoder_sets_for_model,
)

__all__ = [
    "ARCHITECTURES",
    "Dictionary",
    "SAEConfig",
    "SparseAutoencoder",
    "TrainConfig",
    "Transcoder",
    "TranscoderSet",
    "check_compatible",
    "evaluate_sae",
    "export_saelens",
    "export_sparsify",
    "import_sae",
    "list_saes",
    "load_sae",
    "load_transcoder_set",
    "load_transcoders",
    "sae_config_for",
    "saes_for_model",
    "save_sae",
    "splice",
    "train_sae",
    "transcoder_sets_for_model",
]
