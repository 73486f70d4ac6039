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
"""

from lenscope.nodes import latent_node_id, parse_latent_node_id
from lenscope.sae.ablation import AblationSparsity, ablation_sparsity
from lenscope.sae.architectures import ARCHITECTURES, Architecture, get_architecture
from lenscope.sae.config import SAEConfig, TrainConfig
from lenscope.sae.dictionary import Dictionary, check_compatible, splice
from lenscope.sae.evaluate import DensityHistogram, SAEEvalResult, evaluate_sae
from lenscope.sae.formats import export_saelens, export_sparsify, import_sae
from lenscope.sae.io import list_saes, load_sae, saes_for_model, save_sae
from lenscope.sae.model import SparseAutoencoder
from lenscope.sae.sparse_ops import Codes
from lenscope.sae.train import SAETrainResult, sae_config_for, train_sae

__all__ = [
    "ARCHITECTURES",
    "AblationSparsity",
    "Architecture",
    "Codes",
    "DensityHistogram",
    "Dictionary",
    "SAEConfig",
    "SAEEvalResult",
    "SAETrainResult",
    "SparseAutoencoder",
    "TrainConfig",
    "ablation_sparsity",
    "check_compatible",
    "evaluate_sae",
    "export_saelens",
    "export_sparsify",
    "get_architecture",
    "import_sae",
    "latent_node_id",
    "list_saes",
    "load_sae",
    "parse_latent_node_id",
    "sae_config_for",
    "saes_for_model",
    "save_sae",
    "splice",
    "train_sae",
]
