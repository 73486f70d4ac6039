"""Health, what the server serves, and tokenizing."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends

from lenscope.errors import InputError
from lenscope.markov import MAX_STATES
from lenscope.nodes import NodeKind, latent_prefix, latent_site
from lenscope.server import config as C
from lenscope.server.deps import get_state, prompt_limit
from lenscope.server.errors import ApiError
from lenscope.server.schemas import TokenizeRequest
from lenscope.server.state import ServerState
from lenscope.server.views import (
    DemoQuestion,
    DictionaryInfo,
    ExplainerInfo,
    Health,
    Limits,
    ModelInfo,
    RecordsInfo,
    SAEInfo,
    Tokenized,
)

router = APIRouter(prefix="/api", tags=["server"])

DictKind = Literal["sae", "transcoder", "clt"]


@router.get("/health", response_model=Health, summary="Is the server up, how busy is it")
async def health(state: ServerState = Depends(get_state)) -> Health:
    return Health(
        status="ok",
        model=state.model.cfg.name,
        uptime_s=time.time() - state.started,
        lanes=[lane.stats() for lane in state.lanes],
    )


def model_info(state: ServerState) -> ModelInfo:
    model = state.model
    cfg = model.cfg
    kinds = [NodeKind.HEAD, NodeKind.EMBED]
    if not cfg.attn_only and cfg.num_experts:
        kinds.insert(1, NodeKind.EXPERT)
    elif not cfg.attn_only and cfg.d_mlp:
        kinds.insert(1, NodeKind.NEURON)
    if cfg.positional == "learned":
        kinds.append(NodeKind.POS)
    if state.saes:  # latents the debugger can run (records-only ones are in `dictionaries`)
        kinds.append(NodeKind.LATENT)
    saes = []
    for s in state.saes:
        latent_site(s.hook)  # the server splices SAEs at residual hooks only
        saes.append(
            SAEInfo(name=s.name, hook=s.hook, d_sae=s.d_sae, node_prefix=latent_prefix(s.hook))
        )
    recs = state.records
    records = RecordsInfo(available=False, note=state.records_note)
    if recs is not None:
        n = state.memo("n_nodes", lambda: len(state.with_records(lambda r: r.node_ids())))
        records = RecordsInfo(available=True, coverage=recs.coverage(), n_nodes=n)
    return ModelInfo(
        name=cfg.name,
        fingerprint=state.fingerprint,
        n_params=sum(p.numel() for p in model.parameters()),
        config=cfg.to_dict(),
        has_tokenizer=model.tokenizer is not None,
        node_kinds=[k.value for k in kinds],
        saes=saes,
        records=records,
        limits=Limits(
            max_prompt_chars=C.MAX_PROMPT_CHARS,
            max_prompt_tokens=prompt_limit(model),
            max_batch=C.MAX_BATCH,
            max_top_k=C.MAX_TOP_K,
            max_measure=C.MAX_MEASURE,
            max_interventions=C.MAX_INTERVENTIONS,
            max_trace_hops=C.MAX_TRACE_HOPS,
            max_lens_k=C.MAX_LENS_K,
            max_watch=C.MAX_WATCH,
            max_generate=C.MAX_GENERATE,
            max_markov_steps=C.MAX_MARKOV_STEPS,
        ),
        demo=DemoQuestion(prompt=C.DEMO_PROMPT, target=C.DEMO_TARGET, distractor=C.DEMO_DISTRACTOR),
        markov=cfg.d_vocab ** min(cfg.n_ctx, 13) <= MAX_STATES,
        explainers=[
            ExplainerInfo(name=name, label=e.label, model=_llm_model(e))
            for name, e in state.explainers.items()
        ],
        tuned_lens=state.tuned.name if state.tuned is not None else None,
        dictionaries=dictionary_infos(state),
        n_experts=_n_experts(cfg.num_experts, cfg.d_mlp_shared, cfg.attn_only),
    )


def _n_experts(num_experts: int, d_mlp_shared: int, attn_only: bool) -> int:
    """Expert nodes per layer, as NodeId.check counts them: a shared expert is the last."""
    if attn_only or not num_experts:
        return 0
    return num_experts + (1 if d_mlp_shared else 0)


def dictionary_infos(state: ServerState) -> list[DictionaryInfo]:
    """The spliced SAEs, then every dictionary the records hold latents of (one entry per key;
    a spliced SAE with records is one entry with both flags)."""
    n_layers = state.model.cfg.n_layers
    out: dict[str, DictionaryInfo] = {}
    for s in state.saes:
        out[s.hook] = DictionaryInfo(
            name=s.name,
            kind="sae",
            node_prefix=latent_prefix(s.hook),
            key=s.hook,
            d_sae=s.d_sae,
            hook_in=s.hook,
            hooks_out=[s.hook],
            spliced=True,
            records=False,
        )
    groups = state.records.manifest.data["groups"] if state.records is not None else []
    for g in groups:
        if g["kind"] != "latent":
            continue
        key = str(g.get("key") or g["hook"])
        if key in out:
            out[key].records = True
            continue
        layer, site = latent_site(key)
        kind: DictKind = "sae"
        outs = [key]
        if site == "transcoder":
            kind, outs = "transcoder", [f"blocks.{layer}.hook_mlp_out"]
        elif site == "clt":  # a cross-layer transcoder's encoder writes this and later MLPs
            kind, outs = "clt", [f"blocks.{j}.hook_mlp_out" for j in range(layer, n_layers)]
        out[key] = DictionaryInfo(
            name=key,
            kind=kind,
            node_prefix=latent_prefix(key),
            key=key,
            d_sae=int(g["size"]),
            hook_in=str(g["hook"]),
            hooks_out=outs,
            spliced=False,
            records=True,
        )
    return list(out.values())


def _llm_model(e: object) -> str | None:
    """The LLM's model name (never its URL or key: those stay on the server)."""
    cfg = getattr(e, "cfg", None)
    model = getattr(cfg, "model", None)
    return model if isinstance(model, str) else None


@router.get("/model", response_model=ModelInfo, summary="The served model, its SAEs and records")
async def model(state: ServerState = Depends(get_state)) -> ModelInfo:
    return await state.light.run(model_info, state)


@router.get("/models/{name}", response_model=ModelInfo, summary="The served model, by name")
async def model_by_name(name: str, state: ServerState = Depends(get_state)) -> ModelInfo:
    """One model per server: a name that is not the served model is a 404 (names are never
    looked up on disk)."""
    if name not in (state.model.cfg.name, state.config.model):
        raise ApiError(
            404,
            f"this server serves {state.model.cfg.name!r}, not {name[:80]!r}; start "
            "`lenscope serve NAME` for another model",
            "UnknownModel",
        )
    return await state.light.run(model_info, state)


@router.post(
    "/tokenize", response_model=Tokenized, summary="Text to tokens, as the engine reads it"
)
async def tokenize(req: TokenizeRequest, state: ServerState = Depends(get_state)) -> Tokenized:
    def job() -> Tokenized:
        model = state.model
        if model.tokenizer is None:
            raise InputError(f"{model.cfg.name} has no tokenizer; give token ids")
        ids = model.tokenizer.encode(req.text, prepend_bos=model.cfg.default_prepend_bos)
        return Tokenized(ids=ids, tokens=model.tokenizer.str_tokens(ids))

    return await state.light.run(job)
