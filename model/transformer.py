"""A Llama-family decoder: RMSNorm, rotary positions, grouped-query attention, SwiGLU.

Module and parameter names mirror Hugging Face's ``LlamaForCausalLM`` (minus its ``model.`` prefix) so the
checkpoint mapping is one line. Two forward paths share every layer:

* ``forward(ids)``: the plain causal pass over whole sequences, used by training and as the reference.
* ``forward_cached(ids, start_pos, cache, first_slot)``: writes the new tokens' keys/values into a
  :class:`~model.kv_cache.KVCache` and attends over each row's cached prefix; used by the engine for
  prefill (many tokens) and batched decode (one token per row, each row at its own position).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig
from model.kv_cache import KVCache
from model.rope_scaling import inverse_frequencies


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight: nn.Parameter | None = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None and x.dtype == torch.float32:  # serving layout: one fused kernel, not five
            return F.rms_norm(x, (x.shape[-1],), None, self.eps)
        # Normalise in float32 as Llama does, so low-precision weights don't change the statistics.
        x32 = x if x.dtype == torch.float32 else x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if x32.dtype != x.dtype:
            x32 = x32.to(x.dtype)
        return x32 if self.weight is None else self.weight * x32

    def fold_into(self, *linears: nn.Linear) -> None:
        """Inference only: scale the input columns of the linears that read this norm's output by its
        weight, and drop the weight (W @ (g * x) == (W * g) @ x): one multiply fewer per norm and step."""
        if self.weight is None:
            return
        for linear in linears:
            linear.weight = nn.Parameter(linear.weight.detach() * self.weight.detach(), requires_grad=False)
        self.weight = None


Rotary = tuple[torch.Tensor, torch.Tensor]


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables; rotation uses Llama's "rotate half" layout (not interleaved pairs).

    The sin table has its first half negated, so that rotate_half(x) * sin == roll(x, D/2) * signed_sin:
    one kernel (a roll) instead of a negation and a concatenation, the same numbers bit for bit.

    Serving copies use :meth:`use_pairs`: q and k come out of the projection with dims i and i + D/2 of
    every head side by side (see :meth:`Attention.interleave_rotary`), so the rotation is one complex
    multiply by e^(i*angle) instead of four kernels."""

    def __init__(self, head_dim: int, max_len: int, theta: float, scaling: dict | None = None) -> None:
        super().__init__()
        inv_freq = inverse_frequencies(head_dim, theta, scaling)
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", torch.cat([freqs, freqs], dim=-1).cos(), persistent=False)
        self.register_buffer("signed_sin", torch.cat([-freqs.sin(), freqs.sin()], dim=-1), persistent=False)

    def use_pairs(self) -> None:
        """Switch to the paired layout: a complex table e^(i*angle), [max_len, D/2]."""
        half = self.cos.shape[-1] // 2
        self.register_buffer(
            "turns", torch.complex(self.cos[:, :half], self.signed_sin[:, half:]), persistent=False
        )

    def forward(self, positions: torch.Tensor) -> Rotary:
        """The (cos, signed sin) of positions [B, T], shaped [B, T, 1, D] to broadcast over the heads of a
        [B, T, heads, D] tensor: gathered once per forward pass and shared by every layer. In the paired
        layout, the complex turns [B, T, 1, D/2]."""
        if hasattr(self, "turns"):
            return self.turns[positions].unsqueeze(2)
        return self.cos[positions].unsqueeze(2), self.signed_sin[positions].unsqueeze(2)


def apply_rotary(x: torch.Tensor, rotary: Rotary | torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, heads, D] by its positions' angles."""
    if isinstance(rotary, torch.Tensor):  # paired layout: (x[2i] + i*x[2i+1]) * e^(i*angle)
        x32 = x if x.dtype == torch.float32 else x.float()
        rotated = torch.view_as_real(torch.view_as_complex(x32.unflatten(-1, (-1, 2))) * rotary).flatten(-2)
        return rotated if rotated.dtype == x.dtype else rotated.to(x.dtype)
    cos, signed_sin = rotary
    if cos.dtype != x.dtype:
        cos, signed_sin = cos.to(x.dtype), signed_sin.to(x.dtype)
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * signed_sin


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.n_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, config.hidden_size, bias=False)

    def fuse(self) -> None:
        """Inference only: one matmul for q, k and v instead of three (same outputs)."""
        weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        self.qkv_proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.qkv_proj.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        del self.q_proj, self.k_proj, self.v_proj

    def interleave_rotary(self) -> None:
        """Inference only, after :meth:`fuse`: reorder every q and k head's output dims from Llama's halves
        (0..D/2-1 | D/2..D-1) to pairs (0, D/2, 1, D/2+1, ...), for :meth:`RotaryEmbedding.use_pairs`. The
        same order for q and k leaves every q.k, and so the attention, unchanged; v keeps its order."""
        d, h, kv = self.head_dim, self.n_heads, self.n_kv_heads
        within = torch.stack([torch.arange(d // 2), torch.arange(d // 2, d)], dim=1).flatten()
        order = torch.cat(
            [head * d + within for head in range(h + kv)] + [torch.arange((h + kv) * d, (h + 2 * kv) * d)]
        )
        self.qkv_proj.weight = nn.Parameter(self.qkv_proj.weight.detach()[order].clone(), requires_grad=False)

    def _project(self, x: torch.Tensor, rotary: Rotary):
        """q [B, H, T, D], k and v [B, KV, T, D], with q and k rotated."""
        b, t, _ = x.shape
        h, kv, d = self.n_heads, self.n_kv_heads, self.head_dim
        if hasattr(self, "qkv_proj"):
            qkv = self.qkv_proj(x)
            # q and k side by side in one tensor: rotated in one pass (half the small kernels of decoding).
            qk = apply_rotary(qkv[..., : (h + kv) * d].view(b, t, h + kv, d), rotary)
            q, k = qk[:, :, :h], qk[:, :, h:]
            v = qkv[..., (h + kv) * d :].view(b, t, kv, d)
        else:
            q = apply_rotary(self.q_proj(x).view(b, t, h, d), rotary)
            k = apply_rotary(self.k_proj(x).view(b, t, kv, d), rotary)
            v = self.v_proj(x).view(b, t, kv, d)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = y.shape
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def forward(self, x: torch.Tensor, rotary: Rotary) -> torch.Tensor:
        q, k, v = self._project(x, rotary)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=self.n_kv_heads != self.n_heads
        )
        return self._out(y)

    def forward_cached(
        self,
        x: torch.Tensor,
        rotary: Rotary,
        write_at: tuple[torch.Tensor, torch.Tensor],
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        """cache_k/v: this layer's rows for the batch, [B, kv_heads, max_len, D] (a view into the cache).
        write_at: (rows [B, 1], positions [B, T]) of the new tokens. bias: [B, 1, G*T, L] additive mask (0
        where a query may attend a cached key, -inf elsewhere) for the G = heads / kv_heads query heads that
        share a KV head, stacked group-major (see :func:`grouped_attention_bias`)."""
        q, k, v = self._project(x, rotary)
        rows, positions = write_at
        # Advanced indices split by a slice put their dims first: [B, T, kv_heads, D].
        cache_k[rows, :, positions] = k.transpose(1, 2)
        cache_v[rows, :, positions] = v.transpose(1, 2)
        length = bias.shape[-1]
        b, h, t, d = q.shape
        # GQA as grouped queries: the G query heads that share a KV head become G*T query rows against that
        # one head, so K/V are neither repeated nor re-read per query head. The CPU kernel then runs half the
        # (row, head) tiles of enable_gqa: 6 layers of 32-row decode attention 1.46 -> 0.71 ms at 64 cached
        # tokens, 3.7 -> 1.6 ms at 200 (2 threads).
        queries = q.reshape(b, self.n_kv_heads, -1, d)
        y = F.scaled_dot_product_attention(
            queries, cache_k[:, :, :length], cache_v[:, :, :length], attn_mask=bias
        )
        return self._out(y.view(b, h, t, d))


def grouped_attention_bias(
    positions: torch.Tensor, length: int, groups: int, dtype: torch.dtype
) -> torch.Tensor:
    """The additive attention mask of a cached forward pass, built once and shared by every layer.

    positions: [B, T] of the new tokens; a query at position p sees cached keys 0..p. Returns
    [B, 1, groups*T, length], the T query rows repeated for each of the ``groups`` query heads that share a
    KV head, in the order ``Attention.forward_cached`` stacks them."""
    b, t = positions.shape
    visible = torch.arange(length).view(1, 1, 1, length) <= positions.view(b, 1, t, 1)
    bias = torch.zeros(b, 1, t, length, dtype=dtype).masked_fill_(~visible, float("-inf"))
    return bias if groups == 1 or t == 1 else bias.repeat(1, 1, groups, 1)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def fuse(self) -> None:
        """Inference only: one matmul for gate and up instead of two (same outputs)."""
        weight = torch.cat([self.gate_proj.weight, self.up_proj.weight])
        self.gate_up_proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.gate_up_proj.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        del self.gate_proj, self.up_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "gate_up_proj"):
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
            return self.down_proj(F.silu(gate) * up)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, rotary: Rotary) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rotary)
        return x + self.mlp(self.post_attention_layernorm(x))

    def forward_cached(self, x, rotary, write_at, cache_k, cache_v, bias) -> torch.Tensor:
        x = x + self.self_attn.forward_cached(
            self.input_layernorm(x), rotary, write_at, cache_k, cache_v, bias
        )
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    # Set on int8 serving copies: a callable running every layer of forward_cached at once.
    fused_layers = None

    def __init__(self, config: ModelConfig, max_len: int | None = None) -> None:
        """``max_len``: the longest sequence the rotary tables cover (default: the config's context). A
        server caps it at its max model length, so a 128K-context model does not build 128K-row tables."""
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.max_len = min(max_len or config.max_position_embeddings, config.max_position_embeddings)
        self.rope = RotaryEmbedding(config.head_dim, self.max_len, config.rope_theta, config.rope_scaling)
        self.apply(self._init_weights)
        # GPT-2 style: shrink the residual-branch outputs so the residual stream's variance stays ~1 at depth.
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.num_hidden_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def fuse_projections(self) -> Transformer:
        """Fuse q/k/v and gate/up projections for serving (fewer, larger matmuls; identical outputs).
        Inference only: the fused model no longer has the Hugging Face parameter names, so save the
        checkpoint before fusing. Call before int8 quantization."""
        for layer in self.layers:
            if not hasattr(layer.self_attn, "qkv_proj"):
                layer.self_attn.fuse()
                layer.mlp.fuse()
        return self

    def to_serving_layout(self) -> Transformer:
        """Inference only (the serving copy): fused projections, every RMSNorm weight folded into the
        matmul that reads it (lm_head gets its own table when tied), and q/k in the paired rotary layout.
        Same outputs up to float rounding, 13 + 18 fewer small kernels per decode step (6 layers). A model
        already in this layout is returned as it is."""
        if hasattr(self.rope, "turns"):
            return self
        self.fuse_projections()
        if self.lm_head.weight is self.embed_tokens.weight:
            self.lm_head = nn.Linear(self.config.hidden_size, self.config.vocab_size, bias=False)
            self.lm_head.weight = nn.Parameter(self.embed_tokens.weight.detach().clone(), requires_grad=False)
        for layer in self.layers:
            layer.input_layernorm.fold_into(layer.self_attn.qkv_proj)
            layer.post_attention_layernorm.fold_into(layer.mlp.gate_up_proj)
            layer.self_attn.interleave_rotary()
        self.norm.fold_into(self.lm_head)
        self.rope.use_pairs()
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Causal forward over whole sequences: [B, T] token ids → [B, T, vocab] logits."""
        t = input_ids.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence of {t} tokens exceeds the context of {self.max_len}")
        positions = torch.arange(t).unsqueeze(0).expand(input_ids.shape[0], t)
        x = self.embed_tokens(input_ids)
        rotary = self.rope(positions)
        for layer in self.layers:
            x = layer(x, rotary)
        return self.lm_head(self.norm(x))

    def forward_cached(
        self,
        input_ids: torch.Tensor,
        start_pos: torch.Tensor,
        cache: KVCache,
        first_slot: int = 0,
        logit_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run new tokens against the cache of slots ``first_slot .. first_slot + B``.

        input_ids: [B, T] new tokens; row b's tokens sit at positions ``start_pos[b] .. start_pos[b] + T``.
        Rows shorter than T may be right-padded: padding writes cache entries past the row's length,
        which are overwritten before any later query can see them. Returns logits [B, vocab] of one token
        per row: the last one, or the one at ``logit_index[b]`` (so padded rows give their real last token).
        The vocabulary projection runs only on those rows, not on all B*T tokens.
        """
        b, t = input_ids.shape
        positions = start_pos.unsqueeze(1) + torch.arange(t).unsqueeze(0)
        length = int(positions.max()) + 1
        if length > cache.max_len:
            raise ValueError(f"position {length - 1} is beyond the cache length {cache.max_len}")
        x = self.embed_tokens(input_ids)
        rotary = self.rope(positions)  # built once per pass, used by every layer
        fused = self.fused_layers
        if fused is not None and t == 1:  # int8 decode step: every layer in C++ (model/native.py)
            x = fused(x, rotary, positions, cache, first_slot)
        else:
            groups = self.config.num_attention_heads // self.config.num_key_value_heads
            bias = grouped_attention_bias(positions, length, groups, x.dtype)
            if fused is not None:
                x = fused(x, rotary, positions, cache, first_slot, bias)
            else:
                write_at, slots = (torch.arange(b).unsqueeze(1), positions), slice(first_slot, first_slot + b)
                for i, layer in enumerate(self.layers):
                    x = layer.forward_cached(x, rotary, write_at, cache.k[i, slots], cache.v[i, slots], bias)
        x = x[:, -1] if logit_index is None else x[torch.arange(b), logit_index]
        if fused is not None:
            return fused.logits(x)  # the final norm inside the int8 kernel
        return self.lm_head(self.norm(x))
