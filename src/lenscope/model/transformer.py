"""`HookedTransformer`: one hookable decoder-only Transformer for every supported architecture."""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lenscope.errors import InputError
from lenscope.linalg import linear
from lenscope.model.cache import ActivationCache
from lenscope.model.config import ModelConfig
from lenscope.model.hooks import HookFn, HookPoint, HookSpec
from lenscope.model.kv import KVCache
from lenscope.model.layers import Block, Norm, init_weights, soft_cap
from lenscope.model.sampling import ONE_PROMPT, check_sampling, describe, next_token
from lenscope.model.tl_compat import Input, TransformerLensMethods

if TYPE_CHECKING:
    from lenscope.model.tokenizer import Tokenizer

NameFilter = str | Sequence[str] | Callable[[str], bool] | None


def _matcher(names: NameFilter) -> Callable[[str], bool]:
    if names is None:
        return lambda _n: True
    if callable(names):
        return names
    pats = [names] if isinstance(names, str) else list(names)
    globbed = [p for p in pats if any(c in p for c in "*?[")]
    exact = set(pats) - set(globbed)
    return lambda n: n in exact or any(fnmatch.fnmatchcase(n, g) for g in globbed)


class HookedTransformer(TransformerLensMethods, nn.Module):
    """A decoder-only Transformer whose every intermediate activation has a named hook point.

    Hook names follow TransformerLens (`blocks.3.hook_resid_post`, `blocks.0.attn.hook_pattern`, ...)
    and weights are exposed in its shapes (`W_Q` [n_layers, n_heads, d_model, d_head], ...);
    `run_with_hooks`, `OV` and `QK` are TransformerLens' (`lenscope.model.tl_compat`).
    """

    def __init__(self, cfg: ModelConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.W_pos = (
            nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
            if cfg.positional == "learned"
            else None
        )
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.ln_final = Norm(cfg if cfg.final_norm else _no_norm(cfg), cfg.d_model)
        self.unembed = (
            None if cfg.tie_embeddings else nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        )
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab)) if cfg.unembed_bias else None
        self.hook_dict: dict[str, HookPoint] = {}
        for name, mod in self.named_modules():
            if isinstance(mod, HookPoint):
                mod.name = name
                self.hook_dict[name] = mod
        init_weights(self, cfg, seed=0)

    # ---- weights in TransformerLens shapes ------------------------------------------------------
    @property
    def W_U(self) -> Tensor:
        return self.W_E.T if self.unembed is None else self.unembed

    def _blocks(self) -> list[Block]:
        return list(self.blocks)  # type: ignore[arg-type]

    def _stack(self, attr: str) -> Tensor:
        return torch.stack([getattr(b.attn, attr) for b in self._blocks()])

    @property
    def W_Q(self) -> Tensor:
        return self._stack("W_Q")

    @property
    def W_K(self) -> Tensor:
        return self._stack("W_K")

    @property
    def W_V(self) -> Tensor:
        return self._stack("W_V")

    @property
    def W_O(self) -> Tensor:
        return self._stack("W_O")

    @property
    def b_Q(self) -> Tensor:
        return self._stack("b_Q")

    @property
    def b_K(self) -> Tensor:
        return self._stack("b_K")

    @property
    def b_V(self) -> Tensor:
        return self._stack("b_V")

    @property
    def b_O(self) -> Tensor:
        return self._stack("b_O")

    def _mlp_stack(self, attr: str) -> Tensor:
        if self.cfg.attn_only:
            raise InputError(f"{self.cfg.name} is attention-only: it has no {attr}")
        out = []
        for block in self._blocks():
            mlp = block.dense_mlp()
            assert mlp is not None
            t = getattr(mlp, attr)
            out.append(t if t is not None else mlp.W_out.new_zeros(_bias_shape(attr, self.cfg)))
        return torch.stack(out)

    @property
    def W_in(self) -> Tensor:
        return self._mlp_stack("W_in")

    @property
    def W_gate(self) -> Tensor:
        return self._mlp_stack("W_gate")

    @property
    def W_out(self) -> Tensor:
        return self._mlp_stack("W_out")

    @property
    def b_in(self) -> Tensor:
        return self._mlp_stack("b_in")

    @property
    def b_out(self) -> Tensor:
        return self._mlp_stack("b_out")

    @property
    def device(self) -> torch.device:
        return self.W_E.device

    # ---- hooks ----------------------------------------------------------------------------------
    def hook_names(self) -> list[str]:
        return list(self.hook_dict)

    def _resolve(self, name: str | Callable[[str], bool]) -> list[HookPoint]:
        if callable(name):
            return [h for n, h in self.hook_dict.items() if name(n)]
        if name in self.hook_dict:
            return [self.hook_dict[name]]
        hits = [h for n, h in self.hook_dict.items() if fnmatch.fnmatchcase(n, name)]
        if not hits:
            close = [n for n in self.hook_dict if name.split(".")[-1] in n][:3]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InputError(f"no hook point named {name!r} in {self.cfg.name}{hint}")
        return hits

    def add_hook(
        self, name: str | Callable[[str], bool], fn: HookFn, dir: Literal["fwd", "bwd"] = "fwd"
    ) -> None:
        for hp in self._resolve(name):
            (hp.fwd_hooks if dir == "fwd" else hp.bwd_hooks).append(fn)

    def reset_hooks(self) -> None:
        for hp in self.hook_dict.values():
            hp.clear()

    @contextlib.contextmanager
    def hooks(
        self,
        fwd: Sequence[HookSpec] = (),
        bwd: Sequence[HookSpec] = (),
        *,
        fwd_hooks: Sequence[HookSpec] = (),
        bwd_hooks: Sequence[HookSpec] = (),
    ) -> Iterator[HookedTransformer]:
        """Attach hooks for the duration of a `with` block; they are removed on exit.
        `fwd_hooks=` / `bwd_hooks=` are TransformerLens' spellings of `fwd=` / `bwd=`."""
        added: list[tuple[list[HookFn], HookFn]] = []
        try:
            for specs, d in (([*fwd, *fwd_hooks], "fwd"), ([*bwd, *bwd_hooks], "bwd")):
                for name, fn in specs:
                    for hp in self._resolve(name):
                        lst = hp.fwd_hooks if d == "fwd" else hp.bwd_hooks
                        lst.append(fn)
                        added.append((lst, fn))
            yield self
        finally:
            for lst, fn in reversed(added):
                lst.remove(fn)

    def run_with_cache(
        self,
        input: Input,
        names_filter: NameFilter = None,
        *,
        attention_mask: Tensor | None = None,
        detach: bool = True,
        stop_at_layer: int | None = None,
    ) -> tuple[Tensor, ActivationCache]:
        """Run forward and keep every hooked activation whose name passes `names_filter`."""
        keep = _matcher(names_filter)
        acts: dict[str, Tensor] = {}

        def save(x: Tensor, hook: HookPoint) -> None:
            acts[hook.name] = x.detach() if detach else x

        specs: list[HookSpec] = [(n, save) for n in self.hook_dict if keep(n)]
        with self.hooks(fwd=specs):
            out = self(input, attention_mask=attention_mask, stop_at_layer=stop_at_layer)
        return out, ActivationCache(acts, self.cfg.n_layers, model=self)

    # ---- forward ---------------------------------------------------------------------------------
    def forward(
        self,
        input: Input,
        *,
        attention_mask: Tensor | None = None,
        return_type: Literal["logits", "loss"] = "logits",
        stop_at_layer: int | None = None,
        kv_cache: KVCache | None = None,
    ) -> Tensor:
        """tokens [batch, pos] (or text) -> logits [batch, pos, d_vocab].

        With `attention_mask` [batch, pos] (1 = real token, 0 = padding), padded keys are masked
        and positions count only real tokens, so left- and right-padded batches both work.
        `stop_at_layer=L` returns the residual stream entering block L instead of logits.
        With `kv_cache` (`KVCache.empty(n_layers)`, then the same object on every call), the
        tokens continue those already in the cache and only they are computed.
        """
        if isinstance(input, Tensor):
            tokens = self._check_tokens(input)
        else:
            raw, mask = self.to_tokens_and_mask(input)
            tokens = self._check_tokens(raw)
            attention_mask = mask if attention_mask is None else attention_mask
        if kv_cache is None:
            positions, mask4 = self._positions_and_mask(tokens, attention_mask)
        else:
            self._check_cache(kv_cache, tokens, attention_mask, stop_at_layer)
            b, p = tokens.shape
            positions, mask4 = kv_cache.positions_and_mask(b, p, tokens.device)
        x = self.hook_embed.run(F.embedding(tokens, self.W_E))
        if self.W_pos is not None:
            x = x + self.hook_pos_embed.run(F.embedding(positions, self.W_pos))
        rots: dict[tuple[float, float], tuple[Tensor, Tensor]] = {}  # one per base and scale
        end = self.cfg.n_layers if stop_at_layer is None else stop_at_layer
        for i, block in enumerate(self._blocks()[:end]):
            rotary, rot = block.attn.rotary, None
            if rotary is not None:
                if rotary.key not in rots:
                    rots[rotary.key] = rotary.cos_sin(positions, x.dtype)
                rot = rots[rotary.key]
            x = block(x, rot, mask4, kv_cache.slots[i] if kv_cache is not None else None)
        if kv_cache is not None:
            kv_cache.length += tokens.shape[1]
        if stop_at_layer is not None:
            return x
        logits = self.unembed_resid(self.ln_final(x))
        if return_type == "logits":
            return logits
        return self.loss(logits, tokens, attention_mask)

    def unembed_resid(self, x: Tensor) -> Tensor:
        """Logits of a normalised residual: `x @ W_U + b_U`, soft-capped where the config says."""
        logits = linear(x, self.W_U, self.b_U)
        cap = self.cfg.output_logits_soft_cap
        return soft_cap(logits, cap) if cap > 0 else logits

    @staticmethod
    def loss(logits: Tensor, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Mean next-token cross-entropy over real (unpadded) positions."""
        lp = logits[:, :-1].float().log_softmax(-1)
        nll = -lp.gather(-1, tokens[:, 1:, None])[..., 0]
        if attention_mask is None:
            return nll.mean()
        m = (attention_mask[:, 1:] * attention_mask[:, :-1]).to(nll.dtype)
        return (nll * m).sum() / m.sum().clamp(min=1)

    def _check_cache(
        self, cache: KVCache, tokens: Tensor, mask: Tensor | None, stop: int | None
    ) -> None:
        if mask is not None or stop is not None:
            raise InputError("kv_cache runs whole unpadded sequences: no attention_mask or stop")
        if len(cache.slots) != self.cfg.n_layers:
            raise InputError(
                f"this kv_cache has {len(cache.slots)} layers but {self.cfg.name} has "
                f"{self.cfg.n_layers}; make it with KVCache.empty(model.cfg.n_layers)"
            )
        if cache.length + tokens.shape[1] > self.cfg.n_ctx:
            raise InputError(
                f"{cache.length} cached + {tokens.shape[1]} new tokens exceed the context of "
                f"{self.cfg.n_ctx}"
            )

    def _check_tokens(self, tokens: Tensor) -> Tensor:
        if tokens.ndim == 1:
            tokens = tokens[None]
        if tokens.ndim != 2:
            raise InputError(f"tokens must be [batch, pos]; got shape {tuple(tokens.shape)}")
        if tokens.shape[1] == 0:
            raise InputError("the prompt is empty: give at least one token")
        if tokens.shape[1] > self.cfg.n_ctx:
            raise InputError(
                f"the prompt has {tokens.shape[1]} tokens but {self.cfg.name} reads at most "
                f"{self.cfg.n_ctx}; shorten it"
            )
        if tokens.dtype not in (torch.int64, torch.int32):
            raise InputError(f"tokens must be integers, got {tokens.dtype}")
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= self.cfg.d_vocab:
            raise InputError(f"token ids must lie in [0, {self.cfg.d_vocab}); got {lo}..{hi}")
        return tokens.to(self.device, torch.long)

    def _positions_and_mask(
        self, tokens: Tensor, attention_mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        b, p = tokens.shape
        if attention_mask is None:
            return torch.arange(p, device=tokens.device).expand(b, p), None
        am = attention_mask.to(tokens.device).bool()
        if am.shape != tokens.shape:
            raise InputError(f"attention_mask {tuple(am.shape)} != tokens {tuple(tokens.shape)}")
        positions = (am.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(p, p, dtype=torch.bool, device=tokens.device).tril()
        eye = torch.eye(p, dtype=torch.bool, device=tokens.device)
        mask4 = (causal & am[:, None, :]) | eye  # a padded query attends to itself: no NaN
        return positions, mask4[:, None]

    # ---- tokens ---------------------------------------------------------------------------------
    def _tok(self) -> Tokenizer:
        if self.tokenizer is None:
            raise InputError(
                f"{self.cfg.name} has no tokenizer: its directory has no tokenizer.json (save "
                "one there, e.g. with transformers' tokenizer.save_pretrained), or pass token "
                "ids from Python"
            )
        return self.tokenizer

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool | None = None) -> Tensor:
        """Text (or a list of texts, right-padded) -> token ids [batch, pos]."""
        return self.to_tokens_and_mask(text, prepend_bos)[0]

    def to_tokens_and_mask(
        self,
        text: str | Sequence[str],
        prepend_bos: bool | None = None,
        padding_side: Literal["right", "left"] = "right",
    ) -> tuple[Tensor, Tensor | None]:
        tok = self._tok()
        bos = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise InputError("no prompts given")
        ids = [tok.encode(t, prepend_bos=bos) for t in texts]
        for i, row in enumerate(ids):
            if not row:
                raise InputError(f"prompt {i} is empty: give some text")
        n = max(len(r) for r in ids)
        pad = tok.pad_id
        # built on the CPU, then moved to the model's device in one copy
        out = torch.full((len(ids), n), pad, dtype=torch.long, device="cpu")
        mask = torch.zeros((len(ids), n), dtype=torch.long, device="cpu")
        for i, row in enumerate(ids):
            sl = slice(0, len(row)) if padding_side == "right" else slice(n - len(row), n)
            out[i, sl] = torch.tensor(row, device="cpu")
            mask[i, sl] = 1
        if bool(mask.all()):
            return out.to(self.device), None
        return out.to(self.device), mask.to(self.device)

    def to_string(self, tokens: Tensor | Sequence[int]) -> str:
        ids = tokens.tolist() if isinstance(tokens, Tensor) else list(tokens)
        return self._tok().decode(ids)

    def to_str_tokens(
        self, input: str | Tensor | Sequence[int], prepend_bos: bool | None = None
    ) -> list[str]:
        if isinstance(input, str):
            input = self.to_tokens(input, prepend_bos)[0]
        ids = input.flatten().tolist() if isinstance(input, Tensor) else list(input)
        return self._tok().str_tokens(ids)

    def to_single_token(self, text: str) -> int:
        ids = self._tok().encode(text, prepend_bos=False)
        if len(ids) != 1:
            pieces = self._tok().str_tokens(ids)
            raise InputError(f"{text!r} is {len(ids)} tokens {pieces}, not one")
        return ids[0]

    # ---- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input: str | Tensor,
        max_new_tokens: int = 20,
        *,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
        stop_at_eos: bool = False,
        return_text: bool | None = None,
    ) -> Tensor | str:
        """Greedy (temperature 0) or sampled continuation of one prompt (text, or token ids
        [pos] or [batch, pos]); text in -> text out by default. As in TransformerLens, the text
        returned leaves out the BOS token that `to_tokens` put before a text prompt."""
        check_sampling(max_new_tokens, temperature, top_k, seed)
        if isinstance(input, str):
            tokens = self.to_tokens(input)
            added_bos = self.cfg.default_prepend_bos and self._tok().bos_id is not None
        elif isinstance(input, Tensor):
            tokens, added_bos = self._check_tokens(input), False
        else:
            raise InputError(f"{ONE_PROMPT}; got {describe(input)}")
        as_text = isinstance(input, str) if return_text is None else return_text
        if max_new_tokens > self.cfg.n_ctx:
            raise InputError(f"max_new_tokens must lie in [0, {self.cfg.n_ctx}]")
        if tokens.shape[1] + max_new_tokens > self.cfg.n_ctx:
            raise InputError(
                f"{tokens.shape[1]} prompt tokens + {max_new_tokens} new ones exceed the context "
                f"of {self.cfg.n_ctx}; ask for fewer"
            )
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        eos = self.tokenizer.eos_id if self.tokenizer is not None else None
        hooked = any(hp.active for hp in self.hook_dict.values())
        cache = None if hooked else KVCache.empty(self.cfg.n_layers)  # hooks see every position
        new = tokens
        for _ in range(max_new_tokens):
            logits = (self(new, kv_cache=cache) if cache is not None else self(tokens))[:, -1]
            nxt = next_token(logits, temperature, top_k, gen)
            tokens, new = torch.cat([tokens, nxt], dim=1), nxt
            if stop_at_eos and eos is not None and bool((nxt == eos).all()):
                break
        if as_text:
            return self.to_string(tokens[0, 1:] if added_bos else tokens[0])
        return tokens


def _no_norm(cfg: ModelConfig) -> ModelConfig:
    from dataclasses import replace

    return replace(cfg, normalization="none")


def _bias_shape(attr: str, cfg: ModelConfig) -> tuple[int, ...]:
    return {"b_in": (cfg.d_mlp,), "b_out": (cfg.d_model,)}.get(attr, (cfg.d_model, cfg.d_mlp))
