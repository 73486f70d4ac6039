"""The subject model: one hookable Transformer, its config, tokenizer and loaders."""

from lenscope.model.cache import ActivationCache, act_name
from lenscope.model.config import ModelConfig
from lenscope.model.hooks import HookPoint
from lenscope.model.kv import KVCache
from lenscope.model.load import fingerprint, list_models, load_model, save_model
from lenscope.model.tokenizer import Tokenizer
from lenscope.model.transformer import HookedTransformer

__all__ = [
    "ActivationCache",
    "HookPoint",
    "HookedTransformer",
    "KVCache",
    "ModelConfig",
    "Tokenizer",
    "act_name",
    "fingerprint",
    "list_models",
    "load_model",
    "save_model",
]
