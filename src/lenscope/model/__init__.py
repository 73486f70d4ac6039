"""The subject model: one hookable Transformer, its config, tokenizer and loaders."""

from lenscope.model.cache import ActivationCache
from lenscope.model.config import ModelConfig
from lenscope.model.factored import FactoredMatrix
from lenscope.model.hooks import HookPoint, get_act_name
from lenscope.model.kv import KVCache
from lenscope.model.load import fingerprint, list_models, load_model, save_model
from lenscope.model.tokenizer import Tokenizer
from lenscope.model.transformer import HookedTransformer

__all__ = [
    "ActivationCache",
    "FactoredMatrix",
    "HookPoint",
    "HookedTransformer",
    "KVCache",
    "ModelConfig",
    "Tokenizer",
    "fingerprint",
    "get_act_name",
    "list_models",
    "load_model",
    "save_model",
]
