"""Hugging Face model families converted outside `lenscope.model.hf`, one module each: Gemma 1/2/3
(`gemma`), Qwen3 and OLMo-2 (`qk`), Phi-3, GPT-J, Mixtral, Qwen2-MoE and Qwen3-MoE
(`qwen_moe`). Each maps a `config.json` to a
`ModelConfig` and a checkpoint's tensors to lenscope's layout, and is entered here into
`hf.FAMILIES`, the table that `hf.family_of` dispatches on. `lenscope.model.load` imports this
package, so the entries exist whenever a checkpoint is loaded; `hf` itself never imports a family
module (no import cycle).
"""

from lenscope.model.families import gemma, gptj, mixtral, phi3, qk, qwen_moe
from lenscope.model.hf import FAMILIES

FAMILIES.update(
    {
        "gemma": (gemma.gemma_config, gemma.gemma_weights),
        "gemma2": (gemma.gemma_config, gemma.gemma_weights),
        "gemma3_text": (gemma.gemma_config, gemma.gemma_weights),
        "qwen3": (qk.qk_config, qk.qk_weights),
        "olmo2": (qk.qk_config, qk.qk_weights),
        "phi3": (phi3.phi3_config, phi3.phi3_weights),
        "gptj": (gptj.gptj_config, gptj.gptj_weights),
        "mixtral": (mixtral.mixtral_config, mixtral.mixtral_weights),
        "qwen3_moe": (qwen_moe.qwen3_moe_config, qwen_moe.qwen3_moe_weights),
        "qwen2_moe": (qwen_moe.qwen2_moe_config, qwen_moe.qwen2_moe_weights),
    }
)
