"""Random-weight checkpoints built and saved by `transformers` itself, one per family."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers

VOCAB = 97
WINDOW = 6  # the sliding window of the "-sliding" families, shorter than most test prompts


def write_tokenizer(d: Path) -> None:
    """A tiny word-level tokenizer.json so checkpoints carry text handling like real ones."""
    words = ["<|endoftext|>", "[UNK]"] + [f"w{i}" for i in range(VOCAB - 2)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(d / "tokenizer.json"))


def make_checkpoint(family: str, d: Path) -> torch.nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB)
    if family == "gpt2":
        cfg = tf.GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=64, **common)
        model = tf.GPT2LMHeadModel(cfg)
    elif family == "gpt2-untied":
        cfg = tf.GPT2Config(
            n_embd=64, n_layer=2, n_head=4, n_positions=64, tie_word_embeddings=False, **common
        )
        model = tf.GPT2LMHeadModel(cfg)
    elif family == "neox":
        cfg = tf.GPTNeoXConfig(
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=64,
            rotary_pct=0.25,
            **common,
        )
        model = tf.GPTNeoXForCausalLM(cfg)
    elif family == "neox-serial":
        cfg = tf.GPTNeoXConfig(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=64,
            use_parallel_residual=False,
            **common,
        )
        model = tf.GPTNeoXForCausalLM(cfg)
    elif family in ("llama", "mistral", "qwen2", "mistral-sliding", "qwen2-sliding"):
        kw: dict[str, object] = dict(
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=96,
            max_position_embeddings=64,
            **common,
        )
        if family.endswith("-sliding"):
            # transformers' reference: the eager attention with its sliding-window mask
            kw |= dict(sliding_window=WINDOW, attn_implementation="eager")
        if family == "qwen2-sliding":  # layer 0 attends to everything, layers 1 and 2 slide
            kw |= dict(use_sliding_window=True, max_window_layers=1)
        cls = {
            "llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
            "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
            "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
        }[family.removesuffix("-sliding")]
        cfg = cls[0](**kw)
        model = cls[1](cfg)
    elif family in ("phi3", "phi3-partial", "phi3-sliding"):
        kw = dict(
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=96,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=0,
            eos_token_id=0,
            **common,
        )
        if family == "phi3-partial":  # rotary on half of each head, another base
            kw |= dict(rope_parameters=dict(partial_rotary_factor=0.5, rope_theta=500.0))
        if family == "phi3-sliding":
            kw |= dict(sliding_window=WINDOW, attn_implementation="eager")
        model = tf.Phi3ForCausalLM(tf.Phi3Config(**kw))
    elif family in ("gptj", "gptj-tied"):
        cfg = tf.GPTJConfig(
            n_embd=64,
            n_layer=3,
            n_head=4,
            n_positions=64,
            rotary_dim=8,  # of d_head 16: the interleaved pairs turn, the rest pass
            tie_word_embeddings=family == "gptj-tied",
            bos_token_id=0,
            eos_token_id=0,
            **common,
        )
        model = tf.GPTJForCausalLM(cfg)
    elif family in ("mixtral", "mixtral-sliding"):
        kw = dict(
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=48,
            max_position_embeddings=64,
            num_local_experts=4,
            num_experts_per_tok=2,
            **common,
        )
        if family == "mixtral-sliding":
            kw |= dict(sliding_window=WINDOW, attn_implementation="eager")
        model = tf.MixtralForCausalLM(tf.MixtralConfig(**kw))
    else:
        raise ValueError(family)
    # Random init is small; perturb so that every weight matters to the comparison.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.eval()
    model.save_pretrained(d, safe_serialization=True)
    write_tokenizer(d)
    return model
