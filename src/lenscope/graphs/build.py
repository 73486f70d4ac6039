"""Build an attribution graph: nodes and direct-effect edges by batched backward passes.

One replacement forward (`ReplacementModel.run(grad=True)`) makes every target (a logit read or
a feature's pre-activation) a function of leaves at the embedding and at each MLP output. A
batch of targets costs one vmapped backward pass (`is_grads_batched`), giving each target's
gradient at every leaf; an edge is then what the source writes there, dotted with it:

    feature s -> t:  a_s * scale_s * W_dec[s -> l] . grad_l(t)[pos_s]   (summed over layers l
                     a cross-layer feature writes)
    error (l, p) -> t:  err_l[p] . grad_l(t)[p];    embedding p -> t:  emb[p] . grad_emb(t)[p]

Targets' rows come first; then features' rows, most influential first (influence on the
targets through the rows known so far, recomputed between batches), until `max_feature_nodes`
features have rows: those are the graph's features (circuit-tracer's selection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.graphs.replacement import ReplacementModel, as_dictionaries, mlp_hook
from lenscope.graphs.result import Graph
from lenscope.graphs.targets import QuestionSpec, Target, question_target, salient_targets
from lenscope.model.transformer import HookedTransformer

MAX_TOKENS = 512
Progress = Callable[[int, int], None]  # (rows done, rows planned)


@dataclass(frozen=True)
class GraphOptions:
    max_feature_nodes: int = 4096
    batch_size: int = 64
    max_logits: int = 10
    desired_logit_prob: float = 0.95
    demean_logits: bool = False
    max_tokens: int = MAX_TOKENS
    memory_bytes: int | None = None  # the budget (default: half the machine's free memory)

    def check(self, model: HookedTransformer, n_tokens: int) -> None:
        if self.max_feature_nodes < 1:
            raise InputError(f"max_feature_nodes must be at least 1, not {self.max_feature_nodes}")
        if self.batch_size < 1:
            raise InputError(f"the batch size must be at least 1, not {self.batch_size}")
        if n_tokens < 1:
            raise InputError("the prompt is empty: give at least one token")
        bound = min(self.max_tokens, model.cfg.n_ctx)
        if n_tokens > bound:
            raise InputError(
                f"the prompt is {n_tokens} tokens; attribution graphs take at most {bound} "
                f"(the graph's length bound for {model.cfg.name})"
            )
        n = self.max_feature_nodes + (model.cfg.n_layers + 1) * n_tokens + self.max_logits
        need = (
            4 * n * n * 2
            + 4 * self.batch_size * n_tokens * model.cfg.d_model * (model.cfg.n_layers + 1) * 4
        )
        have = self.memory_bytes if self.memory_bytes is not None else _free_memory() // 2
        if need > have:
            raise InputError(
                f"a graph of up to {self.max_feature_nodes} features on {n_tokens} tokens needs "
                f"about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB are available: lower "
                "--max-feature-nodes (or the batch size)"
            )


def _free_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def tokenize(model: HookedTransformer, prompt: str | Sequence[int] | Tensor) -> Tensor:
    if isinstance(prompt, str):
        if not prompt:
            raise InputError("the prompt is empty: give some text")
        return model.to_tokens(prompt)[0]
    t = torch.as_tensor(prompt, dtype=torch.long).reshape(-1)
    if t.numel() and not bool(((t >= 0) & (t < model.cfg.d_vocab)).all()):
        raise InputError(f"token ids must be in 0..{model.cfg.d_vocab - 1}")
    return t


def check_question(model: HookedTransformer, question: QuestionSpec | None) -> None:
    """Refuse a question a graph cannot explain (or whose tokens are unknown) before any work."""
    if question is not None:
        probe = torch.zeros(model.cfg.d_vocab)
        question_target(model, probe, question)


class EdgeColumns:
    """Per-source write tensors that turn leaf gradients into edge columns."""

    def __init__(self, rm: ReplacementModel) -> None:
        self.rm = rm
        n = rm.n
        self.which: list[Tensor] = []  # per dictionary [F_d, 2]: position, feature
        self.act: list[Tensor] = []
        offs = 0
        self.offsets: list[int] = []
        for s in rm.sources:
            nz = (s.acts != 0).nonzero()
            self.which.append(nz)
            self.act.append(s.acts[nz[:, 0], nz[:, 1]])
            self.offsets.append(offs)
            offs += int(nz.shape[0])
        self.n_active = offs
        # per (dictionary, output layer): padded writes [n, Fmax, d] and their column ids
        self.writes: list[tuple[int, Tensor, Tensor, Tensor]] = []
        for d, s in enumerate(rm.sources):
            nz = self.which[d]
            if nz.shape[0] == 0:
                continue
            counts = torch.bincount(nz[:, 0], minlength=n)
            fmax = int(counts.max())
            slot = torch.zeros(nz.shape[0], dtype=torch.long)
            order = torch.argsort(nz[:, 0], stable=True)
            starts = torch.cumsum(counts, 0) - counts
            slot[order] = torch.arange(nz.shape[0]) - starts[nz[order, 0]]
            coef = (self.act[d] * s.scale[nz[:, 0], 0]).to(s.acts.dtype)
            for j in s.out_layers:
                dec = s.dic.decoder(mlp_hook(j)).to(rm.embed.dtype)
                w = torch.zeros(n, fmax, dec.shape[1], dtype=rm.embed.dtype)
                w[nz[:, 0], slot] = dec[nz[:, 1]] * coef[:, None]
                cols = torch.full((n, fmax), -1, dtype=torch.long)
                cols[nz[:, 0], slot] = torch.arange(nz.shape[0]) + self.offsets[d]
                self.writes.append((j, w, cols, cols >= 0))

    @property
    def n_cols(self) -> int:
        return self.n_active + (self.rm.n_layers + 1) * self.rm.n

    def edges(self, grads: Sequence[Tensor]) -> Tensor:
        """[B, n_cols] edges from leaf gradients [embed, mlp_0, ...], each [B, n, d]."""
        rm = self.rm
        B = grads[0].shape[0]
        out = torch.zeros(B, self.n_cols, dtype=grads[0].dtype)
        for j, w, cols, mask in self.writes:
            e = torch.einsum("bnd,nfd->bnf", grads[1 + j], w)
            flat = cols[mask]
            out.index_add_(1, flat, e[:, mask])
        base = self.n_active
        for j in range(rm.n_layers):
            out[:, base + j * rm.n : base + (j + 1) * rm.n] = (grads[1 + j] * rm.error[j]).sum(-1)
        e0 = base + rm.n_layers * rm.n
        out[:, e0 : e0 + rm.n] = (grads[0] * rm.embed).sum(-1)
        return out


def build_graph(
    model: HookedTransformer,
    prompt: str | Sequence[int] | Tensor,
    transcoders: object,
    *,
    question: QuestionSpec | None = None,
    options: GraphOptions | None = None,
    progress: Progress | None = None,
) -> Graph:
    """The attribution graph of `prompt` (see the module). `transcoders`: a list of
    `Dictionary`s (or transcoders), or a `CrossLayerTranscoder`."""
    opts = options or GraphOptions()
    tokens = tokenize(model, prompt)
    dics = as_dictionaries(transcoders)
    opts.check(model, int(tokens.numel()))
    check_question(model, question)
    rm = ReplacementModel(model, dics, tokens)
    return graph_of(rm, question=question, options=opts, progress=progress)


def graph_of(
    rm: ReplacementModel,
    *,
    question: QuestionSpec | None = None,
    options: GraphOptions | None = None,
    progress: Progress | None = None,
) -> Graph:
    opts = options or GraphOptions()
    model = rm.model
    last = rm.logits[-1]
    targets: list[Target]
    if question is not None:
        targets = [question_target(model, last, question, demean=opts.demean_logits)]
    else:
        targets = salient_targets(
            model,
            last,
            desired_prob=opts.desired_logit_prob,
            max_logits=opts.max_logits,
            demean=opts.demean_logits,
        )
    cols = EdgeColumns(rm)
    out = rm.run(grad=True)
    reads = torch.stack([t.read.to(out.logits.dtype) for t in targets])  # [T, V]
    logit_vals = reads @ out.logits[-1]
    T, F = len(targets), cols.n_active
    feats = (
        torch.cat(
            [torch.cat([torch.full((w.shape[0], 1), d), w], 1) for d, w in enumerate(cols.which)]
        )
        if F
        else torch.zeros(0, 3, dtype=torch.long)
    )
    passes = 0

    def grad_rows(outputs: list[Tensor], seeds: list[Tensor]) -> Tensor:
        nonlocal passes
        grads = torch.autograd.grad(
            outputs,
            out.leaves,
            seeds,
            retain_graph=True,
            is_grads_batched=True,
            allow_unused=True,
            materialize_grads=True,
        )
        passes += 1
        B = seeds[0].shape[0]  # an unused leaf's gradient comes back without the batch dim
        return cols.edges([(g if g.ndim == 3 else g.expand(B, *g.shape)).detach() for g in grads])

    def target_rows_of(idx: Tensor) -> Tensor:
        eye = torch.eye(idx.numel(), dtype=logit_vals.dtype)
        return grad_rows([logit_vals[idx]], [eye])

    def feature_rows_of(idx: Tensor) -> Tensor:
        """A feature's pre-activation is x_d[pos] . W_enc[:, j]: seed that at x_d."""
        f = feats[idx]
        B = idx.numel()
        used = sorted(set(f[:, 0].tolist()))
        seeds = []
        for d in used:
            x = out.inputs[d]
            mine = (f[:, 0] == d).nonzero()[:, 0]
            seed = torch.zeros(B, *x.shape, dtype=x.dtype)
            W = rm.sources[d].enc.W.to(x.dtype)
            seed[mine, f[mine, 1]] = W[:, f[mine, 2]].t()
            seeds.append(seed)
        return grad_rows([out.inputs[d] for d in used], seeds)

    budget = min(opts.max_feature_nodes, F)
    planned = T + budget
    target_rows = torch.cat(
        [
            target_rows_of(torch.arange(i, min(i + opts.batch_size, T)))
            for i in range(0, T, opts.batch_size)
        ]
    )
    if progress:
        progress(T, planned)
    feat_rows = torch.zeros(budget, cols.n_cols, dtype=target_rows.dtype)
    visited = torch.zeros(F, dtype=torch.bool)
    order: list[int] = []
    weights = torch.tensor([t.weight for t in targets], dtype=target_rows.dtype)
    while len(order) < budget:
        infl = _feature_influence(target_rows, feat_rows[: len(order)], order, weights, F)
        infl[visited] = -1.0
        k = min(opts.batch_size, budget - len(order))
        pick = torch.topk(infl, k).indices
        feat_rows[len(order) : len(order) + k] = feature_rows_of(pick)
        visited[pick] = True
        order.extend(pick.tolist())
        if progress:
            progress(T + len(order), planned)
    # the graph's features: those with rows, in (layer, position, index) order
    chosen = torch.tensor(sorted(order, key=lambda i: tuple(feats[i].tolist())), dtype=torch.long)
    rank = {f: r for r, f in enumerate(order)}
    S = int(chosen.numel())
    E = rm.n_layers * rm.n
    N = S + E + rm.n + T
    src_cols = torch.cat([chosen, torch.arange(F, cols.n_cols)])  # columns in node order
    A = torch.zeros(N, N, dtype=target_rows.dtype)
    if S:
        A[:S, : S + E + rm.n] = feat_rows[[rank[int(i)] for i in chosen]][:, src_cols]
    A[N - T :, : S + E + rm.n] = target_rows[:, src_cols]
    inputs = torch.zeros(N, dtype=A.dtype)
    bias = torch.zeros(N, dtype=A.dtype)
    with torch.no_grad():
        zero = rm.run(rm.zero_deltas())
        zvals = torch.cat([reads @ zero.logits[-1], rm.pre_activations(zero.inputs, cols.which)])
        vals = torch.cat([logit_vals, rm.pre_activations(out.inputs, cols.which)]).detach()
    inputs[N - T :], bias[N - T :] = vals[:T], zvals[:T]
    if S:
        inputs[:S], bias[:S] = vals[T + chosen], zvals[T + chosen]
    acts = torch.cat(cols.act) if F else torch.zeros(0)
    return Graph(
        model=model.cfg.name,
        tokens=rm.tokens[0].tolist(),
        str_tokens=_str_tokens(model, rm.tokens[0].tolist()),
        n_layers=rm.n_layers,
        hooks=[s.dic.hook_in for s in rm.sources],
        features=feats[chosen] if S else torch.zeros(0, 3, dtype=torch.long),
        activations=acts[chosen].detach() if S else torch.zeros(0),
        targets=targets,
        adjacency=A.detach(),
        inputs=inputs,
        bias=bias,
        n_active=F,
        backward_passes=passes,
        rows_computed=T + len(order),
    )


def _feature_influence(
    target_rows: Tensor, feat_rows: Tensor, order: list[int], weights: Tensor, F: int
) -> Tensor:
    """Each active feature's influence on the targets over every path through the rows known so
    far (absolute edges, rows normalised to sum 1)."""

    def norm(r: Tensor) -> Tensor:
        a = r.abs()
        return a / a.sum(1, keepdim=True).clamp(min=1e-10)

    cur = weights @ norm(target_rows)[:, :F]
    total = cur.clone()
    if order:
        known = norm(feat_rows)[:, :F]
        idx = torch.tensor(order, dtype=torch.long)
        for _ in range(F):
            cur = cur[idx] @ known
            if not bool(cur.any()):
                break
            total += cur
    return total


def _str_tokens(model: HookedTransformer, ids: list[int]) -> list[str]:
    from lenscope.attribution.questions import token_text

    return [token_text(model, i) for i in ids]


def build_graphs(
    model: HookedTransformer,
    prompts: Sequence[str | Sequence[int]],
    transcoders: object,
    *,
    question: QuestionSpec | None = None,
    options: GraphOptions | None = None,
) -> list[Graph]:
    """One graph per prompt, checked all before any is built (6c)."""
    opts = options or GraphOptions()
    dics = as_dictionaries(transcoders)
    toks = [tokenize(model, p) for p in prompts]
    if not toks:
        raise InputError("no prompts given")
    for t in toks:
        opts.check(model, int(t.numel()))
    check_question(model, question)
    return [
        graph_of(ReplacementModel(model, dics, t), question=question, options=opts) for t in toks
    ]
