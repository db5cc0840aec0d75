"""PyTorch twin of KemMl's interaction modules (MODEL-SPEC §2-§5), op for op as in src/Microsoft.ML.Kem/Interaction,
plus NaiveKem: a straightforward eager KEM (per-task loops, separate projections, manual attention, a host sync),
the reference that issue #6's ">= 2x faster" target is measured against.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import sdpa


def split_heads(x, heads):
    b, length, width = x.shape
    return x.reshape(b, length, heads, width // heads).transpose(1, 2)     # B×L×d → B×h×L×d_h


def merge_heads(x):
    b, h, length, dh = x.shape
    return x.transpose(1, 2).reshape(b, length, h * dh)                   # B×h×L×d_h → B×L×d


def scores(q, k, scale=None):
    return (q @ k.transpose(-2, -1)).mul(scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))


_TRUES = {}


def keep_mask(s, k):
    """TopKSoftmax.KeepMask (joint scope): which entries of every row are among its k largest, boolean, no gradient."""
    with torch.no_grad():
        idx = s.topk(k, dim=-1, sorted=False)[1]
        true = _TRUES.setdefault(str(s.device), torch.ones((), dtype=torch.bool, device=s.device))
        return torch.zeros(s.shape, dtype=torch.bool, device=s.device).scatter_(-1, idx, true.expand(idx.shape))


def top_k_weights(s, keep):
    """TopKSoftmax.Weights, Masked mode: the softmax with the dropped scores detached (constants in the denominator),
    times the mask: the row's softmax at the kept entries, gradients at the kept scores only."""
    return torch.where(keep, s, s.detach()).softmax(-1) * keep


_HEAD_MASKS = {}


def head_mask(heads, width, scale, dtype, device):
    """AttentionKernel.HeadMask: h×1×d, row i = scale on head i's columns, cached."""
    key = (str(device), dtype, heads, width, scale)
    if key not in _HEAD_MASKS:
        eye = torch.eye(heads, device=device).mul_(scale)                  # fp32 first: CPU torch has no bf16 eye
        _HEAD_MASKS[key] = eye.unsqueeze(-1).expand(heads, heads, width // heads).reshape(heads, 1, width).to(dtype).contiguous()
    return _HEAD_MASKS[key]


def slot_rows(slots, heads, scale=1.0):
    """AttentionKernel.SlotRows: slots …×m×d → block-diagonal …×(h·m)×d, row i·m+j = slot j's head-i vector × scale."""
    m, d = slots.shape[-2:]
    lead = slots.shape[:-2]
    return (head_mask(heads, d, scale, slots.dtype, slots.device) * slots.unsqueeze(-3)).reshape(*lead, heads * m, d)


def slot_columns(slots, heads, scale=1.0):
    """AttentionKernel.SlotColumns: slot_rows transposed, …×d×(h·m) (a view)."""
    return slot_rows(slots, heads, scale).transpose(-2, -1)


_PAIR_MASKS = {}


def pair_mask(heads, width, key_scale, dtype, device):
    """AttentionKernel.PairMask: h×1×2d, head_mask(key_scale) beside head_mask(1), cached."""
    key = (str(device), dtype, heads, width, key_scale)
    if key not in _PAIR_MASKS:
        _PAIR_MASKS[key] = torch.cat([head_mask(heads, width, key_scale, dtype, device), head_mask(heads, width, 1.0, dtype, device)], -1)
    return _PAIR_MASKS[key]


def attend_slots(tokens, key_value, heads, scale=None, out_weight=None, out_bias=None):
    """AttentionKernel.AttendSlots: softmax over each head's slots, tokens B×L×d (any row stride), keys and values side by
    side B×m×2d → B×L×d merged heads; with an output projection, applied to the h·m slot rows first: A·(R Wᵀ) + b."""
    b, length, d = tokens.shape
    m = key_value.shape[1]
    blocks = pair_mask(heads, d, scale if scale is not None else 1.0 / math.sqrt(d // heads), key_value.dtype, key_value.device) * key_value.unsqueeze(-3)
    key_half, value_half = blocks.chunk(2, -1)                             # one cat in backward, not two zero-filled slices
    key_rows = key_half.reshape(b, heads * m, d)
    value_rows = value_half.reshape(b, heads * m, d)
    s = tokens.bmm(key_rows.transpose(1, 2))
    w = s.view(b, length, heads, m).softmax(-1).view(b, length, heads * m)
    if out_weight is None:
        return w.bmm(value_rows)
    projected = value_rows @ out_weight.t()
    return w.bmm(projected) if out_bias is None else torch.baddbmm(out_bias, w, projected)


def slot_scores(queries, tokens, heads, scale=None):
    """AttentionKernel.SlotScores: slot queries m×d against tokens B×L×d → B×h×m×L, contiguous: the tokens times the slot
    columns (B×L×h·m, so the tokens' gradient comes back in their own layout), then one copy slot-major."""
    b, length, d = tokens.shape
    m = queries.shape[0]
    columns = slot_columns(queries, heads, scale if scale is not None else 1.0 / math.sqrt(d // heads))
    return tokens.bmm(columns.expand(b, d, heads * m)).transpose(1, 2).contiguous().view(b, heads, m, length)


def read_slots(w, values):
    """AttentionKernel.ReadSlots: weights B×h×m×L, values B×L×d (any row stride) → B×m×d, heads merged: every head's
    weights times all d columns, then each head keeps its own d_h columns."""
    b, h, m, length = w.shape
    d = values.shape[-1]
    read = w.reshape(b, h * m, length).bmm(values).view(b, h, m, d)
    return (read * head_mask(h, d, 1.0, read.dtype, read.device)).sum(1)


def etf(dim, vertices, seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.rand(dim, vertices, dtype=torch.float64, generator=g))
    centring = torch.eye(vertices, dtype=torch.float64) - torch.ones(vertices, vertices, dtype=torch.float64) / vertices
    return (q @ centring * math.sqrt(vertices / (vertices - 1.0))).float()


class HeadwiseLinear(nn.Module):
    def __init__(self, heads, dh):
        super().__init__()
        bound = 1.0 / math.sqrt(dh)
        self.weight = nn.Parameter(torch.empty(heads, dh, dh).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(heads, 1, dh).uniform_(-bound, bound))

    def forward(self, x):
        return x @ self.weight.transpose(-2, -1) + self.bias


class Kem(nn.Module):
    """KnowledgeExtraction.cs: KEM, or sKEM with EtfMode.TaskVertices + EtfInputProjection (stable=True)."""

    def __init__(self, width, heads, tasks, slots=20, top_k=3, stable=False, lam=1.0):
        super().__init__()
        self.heads, self.tasks, self.top_k, self.stable, self.lam = heads, tasks, top_k, stable, lam
        dh = width // heads
        self.norm_tokens = nn.LayerNorm(width)
        self.memory_slots = nn.Parameter(torch.randn(slots, width) * 0.02)
        self.norm_memory = nn.LayerNorm(width)
        self.retrieve_query = nn.Linear(width, width)
        self.token_projection = nn.Linear(width, 3 * width)                  # [Wk_r | Wv_r | Wq_w]
        if stable:
            self.etf_query_projection = HeadwiseLinear(heads, dh)
            self.etf_key_projection = HeadwiseLinear(heads, dh)
            self.register_buffer("etf_vertices", torch.stack([etf(dh, tasks, 1234 + h) for h in range(heads)]))
            self.log_temperature = nn.Parameter(torch.tensor(math.log(math.sqrt(dh))))
        self.retrieve_output = nn.Linear(width, width)
        self.write_key_value = nn.Linear(width, 2 * width)
        self.write_output = nn.Linear(width, width)

    def forward(self, x):
        b, t, n, d = x.shape
        tokens = self.norm_tokens(x.reshape(b, t * n, d))                   # F = [X_1; …; X_T]
        k_r, v_r, q_w = self.token_projection(tokens).chunk(3, -1)          # one product for the three projections of LN(F)
        memory = self.retrieve(k_r, v_r)                                    # R_new B×m×d
        written = self.write(q_w, memory)                                   # O B×N×d
        update = written.reshape(b, t, n, d)
        return x + update if self.lam == 1.0 else x.add(update, alpha=self.lam)

    def slot_queries(self):
        return split_heads(self.retrieve_query(self.norm_memory(self.memory_slots)).unsqueeze(0), self.heads)

    def retrieve(self, projected_keys, projected_values):
        if self.stable:
            keys, q = split_heads(projected_keys, self.heads), self.slot_queries()
            qc = F.normalize(self.etf_query_projection(q), p=2, dim=-1) @ self.etf_vertices
            kc = F.normalize(self.etf_key_projection(keys), p=2, dim=-1) @ self.etf_vertices
            s = scores(qc, kc, 1.0).mul(self.log_temperature.exp())
        else:                                                               # K stays B×N×d: no head-split copy
            s = slot_scores(self.retrieve_query(self.norm_memory(self.memory_slots)), projected_keys, self.heads)
        w = s.softmax(-1) if self.top_k >= s.shape[-1] else top_k_weights(s, keep_mask(s, self.top_k))
        read = read_slots(w, projected_values)                              # the dense weights in one product, heads merged
        retrieved = self.retrieve_output(read)
        return self.memory_slots + retrieved

    def write(self, projected_queries, memory):
        kv = self.write_key_value(self.norm_memory(memory))                 # [K_m | V_m]: B×m×2d
        return attend_slots(projected_queries, kv, self.heads, None, self.write_output.weight, self.write_output.bias)


class MultiHeadAttention(nn.Module):
    """MultiHeadAttention.cs: q Lin(d→d), kv Lin(d_kv→2d) (d_kv = d unless given), out Lin(d→d); self-attention runs
    q, k, v as one product."""

    def __init__(self, width, heads, key_width=None):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(key_width or width, 2 * width)
        self.output = nn.Linear(width, width)

    def forward(self, query, key_value):
        if query is key_value:
            qkv = F.linear(query, torch.cat([self.query.weight, self.key_value.weight]),
                           torch.cat([self.query.bias, self.key_value.bias])).chunk(3, -1)
        else:
            kv = self.key_value(key_value).chunk(2, -1)
            qkv = (self.query(query), kv[0], kv[1])
        q, k, v = (split_heads(p, self.heads) for p in qkv)
        return self.output(merge_heads(sdpa(q, k, v)))


class CrossTaskAttention(nn.Module):
    """CrossTaskAttention.cs: per target task t, its own LN and attention from X_t to the other tasks' tokens."""

    def __init__(self, width, heads, tasks, lam=1.0):
        super().__init__()
        self.tasks, self.lam = tasks, lam
        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(tasks)])
        self.attentions = nn.ModuleList([MultiHeadAttention(width, heads) for _ in range(tasks)])

    def forward(self, x):
        updates = []
        for t in range(self.tasks):
            normed = self.norms[t](x)                                       # B×T×n×d
            query = normed.select(1, t)
            others = [p for p in (normed.narrow(1, 0, t), normed.narrow(1, t + 1, self.tasks - t - 1)) if p.shape[1] > 0]
            key_value = torch.cat(others, 1).flatten(1, 2)                  # B×(T−1)n×d
            updates.append(self.attentions[t](query, key_value))
        return x + torch.stack(updates, 1).mul(self.lam)


def to_tokens(m):
    """TokenGrid.ToTokens: map B×C×r×c → tokens B×(r·c)×C, row-major."""
    return m.flatten(2).transpose(1, 2)


def to_map(tokens, rows, cols):
    """TokenGrid.ToMap: tokens B×(r·c)×C → map B×C×r×c."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)


class NormedCrossAttention(nn.Module):
    """SequentialAttention.cs NormedCrossAttention: LN on both sides, then MultiHeadAttention (B×Lq×c, B×Lk×c_kv → B×Lq×c)."""

    def __init__(self, width, key_width, heads):
        super().__init__()
        self.query_norm = nn.LayerNorm(width)
        self.key_norm = nn.LayerNorm(key_width)
        self.attention = MultiHeadAttention(width, heads, key_width)

    def forward(self, query, key_value):
        return self.attention(self.query_norm(query), self.key_norm(key_value))


class CrossTaskAttentionModule(nn.Module):
    """SequentialAttention.cs CTAM at one scale (MODEL-SPEC §5): for every target task t and other task u,
    Y_u = Attn(LN(F_t), LN(pool(F_u))); F̂_t = F_t + ReLU(BN(Conv1×1([Y_u]_{u≠t}))). F B×T×c×h×w → F̂ B×T×c×h×w."""

    def __init__(self, tasks, channels, heads, key_pool):
        super().__init__()
        self.tasks, self.key_pool = tasks, key_pool
        self.targets = nn.ModuleList([CtamTargetTask(tasks, channels, heads) for _ in range(tasks)])

    def forward(self, maps):
        per_task = [maps.select(1, t) for t in range(self.tasks)]                                  # T × B×c×h×w
        keys = [to_tokens(F.avg_pool2d(m, self.key_pool) if self.key_pool > 1 else m) for m in per_task]  # T × B×n'×c
        return torch.stack([self.targets[t](per_task[t], [k for u, k in enumerate(keys) if u != t]) for t in range(self.tasks)], 1)


class CtamTargetTask(nn.Module):
    """The update of one target task t from the (T−1) other tasks' key tokens (CTAM's TargetTask)."""

    def __init__(self, tasks, channels, heads):
        super().__init__()
        self.sources = nn.ModuleList([NormedCrossAttention(channels, channels, heads) for _ in range(tasks - 1)])
        self.fuse = nn.Sequential(nn.Conv2d((tasks - 1) * channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())

    def forward(self, m, other_keys):
        query = to_tokens(m)                                                                        # B×n×c
        gathered = torch.cat([src(query, k) for src, k in zip(self.sources, other_keys)], -1)      # B×n×(T−1)c
        return m + self.fuse(to_map(gathered, m.shape[2], m.shape[3]))


def key_pool_at(stride, key_stride=16):
    """SequentialAttentionOptions.KeyPoolAt: pool factor of the CTAM keys at a scale of `stride` (spec: keys at stride 16)."""
    return key_stride // stride if key_stride > stride else 1


class NoInteraction(nn.Module):
    def forward(self, x):
        return x


class NaiveKem(nn.Module):
    """A straightforward eager KEM, the reference for issue #6: one Linear per projection, a Python loop over the
    tasks for the projections and the write step, attention written out (matmul, softmax, matmul), top-k as
    softmax → topk → scatter, and one host synchronisation (.item()) per forward for a sanity check."""

    def __init__(self, width, heads, tasks, slots=20, top_k=3):
        super().__init__()
        self.heads, self.tasks, self.top_k = heads, tasks, top_k
        self.norm_tokens = nn.LayerNorm(width)
        self.memory_slots = nn.Parameter(torch.randn(slots, width) * 0.02)
        self.norm_memory = nn.LayerNorm(width)
        self.q_r, self.k_r, self.v_r, self.o_r = (nn.Linear(width, width) for _ in range(4))
        self.q_w, self.k_w, self.v_w, self.o_w = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x):
        b, t, n, d = x.shape
        feats = [self.norm_tokens(x[:, i]) for i in range(t)]
        keys = torch.cat([split_heads(self.k_r(f), self.heads) for f in feats], 2)
        values = torch.cat([split_heads(self.v_r(f), self.heads) for f in feats], 2)
        q = split_heads(self.q_r(self.norm_memory(self.memory_slots)).unsqueeze(0).expand(b, -1, -1), self.heads)
        p = (q @ keys.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
        k = min(self.top_k, p.shape[-1])
        top_values, top_indices = p.topk(k, dim=-1)
        a = torch.zeros_like(p).scatter(-1, top_indices, top_values)
        kept = int((a > 0).sum().item())                                    # host sync: every slot kept k tokens?
        assert kept <= a.shape[0] * a.shape[1] * a.shape[2] * k
        memory = self.memory_slots + self.o_r(merge_heads(a @ values))
        mem = self.norm_memory(memory)
        mk, mv = split_heads(self.k_w(mem), self.heads), split_heads(self.v_w(mem), self.heads)
        outs = []
        for i in range(t):
            qt = split_heads(self.q_w(feats[i]), self.heads)
            w = (qt @ mk.transpose(-2, -1) / math.sqrt(qt.shape[-1])).softmax(-1)
            outs.append(x[:, i] + self.o_w(merge_heads(w @ mv)))
        return torch.stack(outs, 1)


def create(kind, width, heads, tasks, slots=20, top_k=3):
    if kind == "kem":
        return Kem(width, heads, tasks, slots, top_k)
    if kind == "skem":
        return Kem(width, heads, tasks, slots, top_k, stable=True)
    if kind == "ca":
        return CrossTaskAttention(width, heads, tasks)
    if kind == "none":
        return NoInteraction()
    if kind == "kem-naive":
        return NaiveKem(width, heads, tasks, slots, top_k)
    raise ValueError(kind)
