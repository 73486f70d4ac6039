"""Random-weight checkpoints built and saved by `transformers` itself, one per family."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers

VOCAB = 97
WINDOW = 6  # the sliding window of the "-sliding" families, shorter than most test prompts
# Gemma 2's soft caps, small enough that they change the scores and the logits of these
# checkpoints (tests check that they bite); q_pre_attn_scalar unlike d_head (16).
ATTN_CAP, LOGIT_CAP, Q_PRE_ATTN_SCALAR = 0.5, 0.3, 8
LONGROPE_ORIGINAL = 16  # Phi-3 LongRoPE's original context in the "phi3-longrope" checkpoint
NEWER = ["gemma", "gemma2", "gemma3", "qwen3", "qwen3-sliding", "olmo2"]


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
    elif family == "qwen2-moe":  # a shared expert beside the routed ones
        model = tf.Qwen2MoeForCausalLM(
            tf.Qwen2MoeConfig(
                hidden_size=64,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=96,
                moe_intermediate_size=48,
                shared_expert_intermediate_size=80,
                num_experts=4,
                num_experts_per_tok=2,
                max_position_embeddings=64,
                **common,
            )
        )
    elif family in ("qwen3-moe", "qwen3-moe-norm"):
        model = tf.Qwen3MoeForCausalLM(
            tf.Qwen3MoeConfig(
                hidden_size=64,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=2,
                head_dim=16,
                intermediate_size=96,
                moe_intermediate_size=48,
                num_experts=4,
                num_experts_per_tok=2,
                norm_topk_prob=family == "qwen3-moe-norm",  # transformers' default: off
                max_position_embeddings=64,
                **common,
            )
        )
    elif family.startswith(("gemma", "qwen3", "olmo2")):
        model = _newer_family(family, common)
    elif family in ("phi3", "phi3-partial", "phi3-sliding", "phi3-longrope"):
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
        if family == "phi3-longrope":  # short factors up to 16 positions, long ones beyond
            kw |= dict(
                original_max_position_embeddings=LONGROPE_ORIGINAL,
                rope_parameters=dict(
                    rope_type="longrope",
                    rope_theta=10000.0,
                    short_factor=[1.0 + 0.25 * i for i in range(8)],
                    long_factor=[2.0 + 1.5 * i for i in range(8)],
                    original_max_position_embeddings=LONGROPE_ORIGINAL,
                ),
            )
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


def _newer_family(family: str, common: dict[str, object]) -> torch.nn.Module:
    """Gemma 1/2/3 (text), Qwen3, OLMo-2; the Gemma 2/3 ones alternate sliding and global
    layers (window `WINDOW`) and run transformers' eager attention, its reference."""
    import transformers as tf

    kw: dict[str, object] = dict(
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=96,
        max_position_embeddings=64,
        attn_implementation="eager",
        **common,
    )
    alternate = ["sliding_attention", "full_attention", "sliding_attention"]
    if family == "gemma":
        return tf.GemmaForCausalLM(tf.GemmaConfig(hidden_act="gelu_pytorch_tanh", **kw))
    if family == "gemma2":
        cfg2 = tf.Gemma2Config(
            sliding_window=WINDOW,
            layer_types=alternate,
            attn_logit_softcapping=ATTN_CAP,
            final_logit_softcapping=LOGIT_CAP,
            query_pre_attn_scalar=Q_PRE_ATTN_SCALAR,
            **kw,
        )
        return tf.Gemma2ForCausalLM(cfg2)
    if family in ("gemma3", "gemma3-linear"):
        if family == "gemma3-linear":  # Gemma 3 4B and larger: linear rope on global layers
            kw |= dict(
                rope_parameters={
                    "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                }
            )
        cfg3 = tf.Gemma3TextConfig(
            sliding_window=WINDOW,
            layer_types=alternate,
            final_logit_softcapping=LOGIT_CAP,
            query_pre_attn_scalar=Q_PRE_ATTN_SCALAR,
            **kw,
        )
        return tf.Gemma3ForCausalLM(cfg3)
    if family.startswith("qwen3"):
        if family == "qwen3-sliding":  # layer 0 attends to everything, layers 1 and 2 slide
            kw |= dict(sliding_window=WINDOW, use_sliding_window=True, max_window_layers=1)
        return tf.Qwen3ForCausalLM(tf.Qwen3Config(**kw))
    return tf.Olmo2ForCausalLM(tf.Olmo2Config(eos_token_id=None, **kw))  # its default > VOCAB
