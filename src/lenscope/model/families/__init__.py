"""Hugging Face model families converted outside `lenscope.model.hf`, one module each (Phi-3,
GPT-J, Mixtral): each maps a `config.json` to a `ModelConfig` and a checkpoint's tensors to
lenscope's layout with `hf`'s helpers, and is entered here into `hf.FAMILIES`, the table that
`hf.family_of` dispatches on. `lenscope.model.load` imports this package, so the entries exist
whenever a checkpoint is loaded; `hf` itself never imports a family module (no import cycle).
"""

from lenscope.model.families import gptj, mixtral, phi3
from lenscope.model.hf import FAMILIES

FAMILIES.update(
    {
        "phi3": (phi3.phi3_config, phi3.phi3_weights),
        "gptj": (gptj.gptj_config, gptj.gptj_weights),
        "mixtral": (mixtral.mixtral_config, mixtral.mixtral_weights),
    }
)
