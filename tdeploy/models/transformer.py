"""Encoder-decoder Transformer (Vaswani et al. 2017), laid out like PyTorch's translation tutorial.

Source tokens (B, S) are embedded (scaled by sqrt(d_model)), a sinusoidal position table is added,
and an encoder stack (self-attention + ReLU FFN) produces the memory (B, S, D). The decoder embeds the
target prefix the same way and runs masked self-attention, cross-attention over the memory and the
FFN; a linear ``generator`` gives the logits. Post-norm (the paper's) by default, pre-norm optional.

Parameter names equal those of the tutorial's ``Seq2SeqTransformer`` (``src_tok_emb.embedding``,
``tgt_tok_emb.embedding``, ``positional_encoding.pos_embedding``, ``transformer.*`` = the keys of
``torch.nn.Transformer`` with packed ``in_proj_weight``, ``generator``), so its checkpoints load as
they are. Attention is computed here from those packed weights in plain ops (linear, matmul,
softmax), which export cleanly and let the decoder run one token at a time with a key/value cache:

- the cross-attention keys/values of every decoder layer are computed once from the memory
  (:meth:`Seq2SeqTransformer.cross_kv`), in the encoder graph;
- the self-attention cache grows by one position per step (:meth:`Seq2SeqTransformer.decode_step`).

Cache layout (one flat tensor, so that a graph has a fixed number of inputs)::

    past_self_kv: (B, 2 * num_layers, H, cache_len, head_dim)
        [:, 2*i] = keys, [:, 2*i + 1] = values of decoder layer i
    cross_kv:     (B, 2 * num_layers, H, S, head_dim), same interleaving

Slot 0 of the self-attention cache is a dummy (zeros, always masked): the first step is fed a cache
of length 1, and a cache of length L means L - 1 tokens were decoded, the next one at position L - 1.
This keeps every dimension >= 1 (torch.export, ONNX Runtime and TensorRT profiles all handle
that without special cases) at the cost of one masked key per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from tdeploy.models.registry import register_config_reader, register_model
from tdeploy.models.spec import ExportSpec, InputSpec, Tolerance

# The tutorial's special ids (UNK=0, PAD=1, BOS=2, EOS=3).
UNK_ID, PAD_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass(frozen=True)
class TransformerConfig:
    src_vocab_size: int = 32000
    tgt_vocab_size: int = 32000
    d_model: int = 512  # token width D
    num_heads: int = 8  # head_dim = d_model / num_heads
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048  # FFN hidden width
    norm_first: bool = False  # False: post-norm as in the paper (and nn.Transformer's default)
    layer_norm_eps: float = 1e-5  # nn.Transformer's default
    max_len: int = 5000  # rows of the sinusoidal table: longest source and longest target (tutorial: 5000)
    share_embeddings: bool = False  # one embedding for source and target (needs equal vocab sizes)
    tie_output: bool = False  # generator weight = target embedding (the paper's weight tying)
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    max_new_tokens: int = 128  # default generation length limit (the sidecar's default for `generate`)


# --- helpers ------------------------------------------------------------------------------------

def sinusoid_table(max_len: int, d_model: int) -> torch.Tensor:
    """The tutorial's table: (max_len, 1, D) with sin at even and cos at odd channels."""
    den = torch.exp(-torch.arange(0, d_model, 2) * math.log(10000) / d_model)
    pos = torch.arange(0, max_len).reshape(max_len, 1)
    table = torch.zeros((max_len, d_model))
    table[:, 0::2] = torch.sin(pos * den)
    table[:, 1::2] = torch.cos(pos * den)
    return table.unsqueeze(-2)


def padding_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, S) bool, True = padding -> additive bias (B, 1, 1, S): 0 or the dtype's minimum.

    The minimum rather than -inf: a fully masked row then gives a uniform softmax, never NaN.
    """
    if mask is None:
        return None
    zero = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return zero.masked_fill(mask, torch.finfo(dtype).min)[:, None, None, :]


class TokenEmbedding(nn.Module):
    """Token ids (B, T) -> embeddings (B, T, D) scaled by sqrt(D), as in the paper and the tutorial."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.scale = math.sqrt(d_model)

    def forward(self, tokens):
        return self.embedding(tokens) * self.scale


class PositionalEncoding(nn.Module):
    """Adds rows [offset, offset + T) of the sinusoidal table to (B, T, D) (offset None: 0)."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.register_buffer("pos_embedding", sinusoid_table(max_len, d_model))  # (max_len, 1, D)

    def forward(self, x, offset=None):
        T = x.shape[1]
        if offset is None:  # positions 0..T-1
            return x + self.pos_embedding[:T, 0].unsqueeze(0)  # (1, T, D)
        # A gather rather than a slice at a symbolic start: exported shapes stay plain (cache_len + 1).
        positions = torch.arange(T, device=x.device) + offset
        return x + self.pos_embedding[:, 0].index_select(0, positions).unsqueeze(0)


# --- blocks -------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head attention with nn.MultiheadAttention's parameters (packed q/k/v projection).

    Projections and the attention itself are separate methods so that self-attention can append to
    a cache and cross-attention can take keys/values computed once from the memory.
    """

    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))  # rows: q, k, v
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x):  # (B, T, n*D) -> n tensors (B, H, T, Dh)
        B, T, _ = x.shape
        return x.reshape(B, T, -1, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def qkv(self, x):  # (B, T, D) -> q, k, v (B, H, T, Dh)
        return self._heads(F.linear(x, self.in_proj_weight, self.in_proj_bias))

    def q(self, x):  # (B, T, D) -> (B, H, T, Dh)
        D = x.shape[-1]
        return self._heads(F.linear(x, self.in_proj_weight[:D], self.in_proj_bias[:D]))[0]

    def kv(self, memory):  # (B, S, D) -> k, v (B, H, S, Dh)
        D = memory.shape[-1]
        return self._heads(F.linear(memory, self.in_proj_weight[D:], self.in_proj_bias[D:]))

    def attend(self, q, k, v, bias=None):  # q (B, H, T, Dh), k/v (B, H, S, Dh), bias (B|1, 1, T|1, S)
        scores = (q * self.head_dim**-0.5) @ k.transpose(-1, -2)  # (B, H, T, S)
        if bias is not None:
            scores = scores + bias
        out = scores.softmax(-1) @ v  # (B, H, T, Dh)
        B, H, T, Dh = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, T, H * Dh))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        D = cfg.d_model
        self.norm_first = cfg.norm_first
        self.self_attn = Attention(D, cfg.num_heads)
        self.linear1 = nn.Linear(D, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, D)
        self.norm1 = nn.LayerNorm(D, eps=cfg.layer_norm_eps)
        self.norm2 = nn.LayerNorm(D, eps=cfg.layer_norm_eps)

    def _sa(self, x, bias):
        return self.self_attn.attend(*self.self_attn.qkv(x), bias)

    def _ff(self, x):
        return self.linear2(F.relu(self.linear1(x)))

    def forward(self, x, bias=None):  # (B, S, D), bias (B, 1, 1, S)
        if self.norm_first:
            x = x + self._sa(self.norm1(x), bias)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, bias))
        return self.norm2(x + self._ff(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        D = cfg.d_model
        self.norm_first = cfg.norm_first
        self.self_attn = Attention(D, cfg.num_heads)
        self.multihead_attn = Attention(D, cfg.num_heads)
        self.linear1 = nn.Linear(D, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, D)
        self.norm1 = nn.LayerNorm(D, eps=cfg.layer_norm_eps)
        self.norm2 = nn.LayerNorm(D, eps=cfg.layer_norm_eps)
        self.norm3 = nn.LayerNorm(D, eps=cfg.layer_norm_eps)

    def _sa(self, x, past, bias):
        q, k, v = self.self_attn.qkv(x)  # (B, H, T, Dh)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, L + T, Dh)
            v = torch.cat([past[1], v], dim=2)
        return self.self_attn.attend(q, k, v, bias), k, v

    def _ca(self, x, cross, bias):
        return self.multihead_attn.attend(self.multihead_attn.q(x), cross[0], cross[1], bias)

    def _ff(self, x):
        return self.linear2(F.relu(self.linear1(x)))

    def forward(self, x, cross, self_bias=None, cross_bias=None, past=None):
        """x (B, T, D); cross = (k, v) (B, H, S, Dh); past = (k, v) (B, H, L, Dh) or None.

        Returns x (B, T, D) and this layer's self-attention keys/values incl. the past (B, H, L + T, Dh).
        """
        if self.norm_first:
            a, k, v = self._sa(self.norm1(x), past, self_bias)
            x = x + a
            x = x + self._ca(self.norm2(x), cross, cross_bias)
            return x + self._ff(self.norm3(x)), k, v
        a, k, v = self._sa(x, past, self_bias)
        x = self.norm1(x + a)
        x = self.norm2(x + self._ca(x, cross, cross_bias))
        return self.norm3(x + self._ff(x)), k, v


class Stack(nn.Module):
    """``layers`` + final ``norm``: the key layout of nn.TransformerEncoder/Decoder."""

    def __init__(self, layers: list[nn.Module], d_model: int, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(d_model, eps=eps)


class EncoderDecoder(nn.Module):
    """Holds ``encoder`` and ``decoder`` under nn.Transformer's names (no forward of its own)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.encoder = Stack([EncoderLayer(cfg) for _ in range(cfg.num_encoder_layers)], cfg.d_model,
                             cfg.layer_norm_eps)
        self.decoder = Stack([DecoderLayer(cfg) for _ in range(cfg.num_decoder_layers)], cfg.d_model,
                             cfg.layer_norm_eps)


# --- model --------------------------------------------------------------------------------------

class Seq2SeqTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if cfg.d_model % cfg.num_heads:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by num_heads {cfg.num_heads}")
        if cfg.share_embeddings and cfg.src_vocab_size != cfg.tgt_vocab_size:
            raise ValueError("share_embeddings needs src_vocab_size == tgt_vocab_size")
        self.cfg = cfg
        self.src_tok_emb = TokenEmbedding(cfg.src_vocab_size, cfg.d_model)
        self.tgt_tok_emb = self.src_tok_emb if cfg.share_embeddings else TokenEmbedding(cfg.tgt_vocab_size,
                                                                                         cfg.d_model)
        self.positional_encoding = PositionalEncoding(cfg.d_model, cfg.max_len)
        self.transformer = EncoderDecoder(cfg)
        self.generator = nn.Linear(cfg.d_model, cfg.tgt_vocab_size)
        if cfg.tie_output:
            self.generator.weight = self.tgt_tok_emb.embedding.weight

    @property
    def head_dim(self) -> int:
        return self.cfg.d_model // self.cfg.num_heads

    # --- the three pieces of generation ----------------------------------------------------------
    def encode(self, src, src_padding_mask=None):
        """src (B, S) int64, src_padding_mask (B, S) bool (True = pad) -> memory (B, S, D)."""
        x = self.positional_encoding(self.src_tok_emb(src))
        bias = padding_bias(src_padding_mask, x.dtype)
        for layer in self.transformer.encoder.layers:
            x = layer(x, bias)
        return self.transformer.encoder.norm(x)

    def cross_kv(self, memory):
        """memory (B, S, D) -> every decoder layer's cross-attention k, v: (B, 2 * layers, H, S, Dh)."""
        kv = []
        for layer in self.transformer.decoder.layers:
            kv.extend(layer.multihead_attn.kv(memory))
        return torch.stack(kv, dim=1)

    def decode(self, tgt, cross_kv, memory_mask=None, tgt_padding_mask=None):
        """Whole target prefix at once (training, no cache): tgt (B, T) -> decoder states (B, T, D)."""
        x = self.positional_encoding(self.tgt_tok_emb(tgt))
        T = tgt.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=tgt.device).triu(1)  # True = masked
        masked = causal[None] if tgt_padding_mask is None else causal[None] | tgt_padding_mask[:, None, :]
        self_bias = torch.zeros(masked.shape, dtype=x.dtype, device=x.device).masked_fill(
            masked, torch.finfo(x.dtype).min)[:, None]  # (B|1, 1, T, T)
        cross_bias = padding_bias(memory_mask, x.dtype)
        for i, layer in enumerate(self.transformer.decoder.layers):
            x, _, _ = layer(x, (cross_kv[:, 2 * i], cross_kv[:, 2 * i + 1]), self_bias, cross_bias)
        return self.transformer.decoder.norm(x)

    def decode_step(self, tokens, cross_kv, memory_mask, past_self_kv):
        """One step with the cache: tokens (B, 1), cross_kv (B, 2L, H, S, Dh), memory_mask (B, S) bool,
        past_self_kv (B, 2L, H, C, Dh) (slot 0 a dummy) -> logits (B, V), present (B, 2L, H, C + 1, Dh)."""
        C = past_self_kv.shape[3]
        x = self.positional_encoding(self.tgt_tok_emb(tokens), offset=C - 1)  # (B, 1, D) at position C - 1
        dummy = torch.arange(C + 1, device=tokens.device) == 0  # the first key is the dummy slot
        self_bias = torch.zeros(C + 1, dtype=x.dtype, device=x.device).masked_fill(
            dummy, torch.finfo(x.dtype).min)  # (C + 1,): broadcasts over (B, H, 1, C + 1)
        cross_bias = padding_bias(memory_mask, x.dtype)
        present = []
        for i, layer in enumerate(self.transformer.decoder.layers):
            past = (past_self_kv[:, 2 * i], past_self_kv[:, 2 * i + 1])
            x, k, v = layer(x, (cross_kv[:, 2 * i], cross_kv[:, 2 * i + 1]), self_bias, cross_bias, past)
            present += [k, v]
        x = self.transformer.decoder.norm(x)
        return self.generator(x[:, -1]), torch.stack(present, dim=1)

    def empty_cache(self, batch: int, dtype=torch.float32, device=None) -> torch.Tensor:
        """The cache of the first step: only the dummy slot, (B, 2L, H, 1, Dh) zeros."""
        c = self.cfg
        return torch.zeros(batch, 2 * c.num_decoder_layers, c.num_heads, 1, self.head_dim, dtype=dtype,
                           device=device)

    def forward(self, src, tgt, src_padding_mask=None, tgt_padding_mask=None):
        """Teacher-forced logits: src (B, S), tgt (B, T) int64; masks bool, True = pad -> (B, T, V)."""
        memory = self.encode(src, src_padding_mask)
        hidden = self.decode(tgt, self.cross_kv(memory), src_padding_mask, tgt_padding_mask)
        return self.generator(hidden)

    # --- deployment -------------------------------------------------------------------------------
    def generation_config(self) -> dict:
        """What generation needs besides the graphs (goes into ExportSpec.extra and the sidecar)."""
        c = self.cfg
        return {
            "bos_id": c.bos_id, "eos_id": c.eos_id, "pad_id": c.pad_id,
            "src_vocab_size": c.src_vocab_size, "tgt_vocab_size": c.tgt_vocab_size,
            "max_len": c.max_len, "max_new_tokens": min(c.max_new_tokens, c.max_len),
            "num_layers": c.num_decoder_layers, "num_heads": c.num_heads, "head_dim": self.head_dim,
            "d_model": c.d_model,
            "cache_layout": "(batch, 2*num_layers, num_heads, cache_len, head_dim); [:, 2i] keys, [:, 2i+1] "
                            "values of decoder layer i; slot 0 is a masked dummy: start with cache_len 1 "
                            "(zeros), the token of a step is at position cache_len - 1",
            "graphs": {"encoder": "src_tokens, src_padding_mask -> memory, cross_kv",
                       "decoder": "tokens, cross_kv, memory_mask, past_self_kv -> logits, present_self_kv"},
        }

    def _spec(self, inputs, outputs) -> ExportSpec:
        return ExportSpec(
            inputs=inputs, outputs=outputs, task="seq2seq", metric="token_exact_match",
            # ONNX Runtime vs PyTorch on transformer-tiny (random weights): fp32 memory, cross_kv and logits
            # within 7.2e-7; fp16 memory 5.7e-3 (LayerNorm outputs of magnitude ~3), cross_kv 4.2e-3,
            # logits 9.8e-4. Tolerances ~5x those, with room for deeper variants (fp32 1e-4).
            tolerances={
                "fp32": {"": Tolerance(atol=1e-4, rtol=1e-4)},
                "fp16": {"": Tolerance(atol=3e-2, rtol=1e-2)},
                "int8": {"": Tolerance(atol=5e-1, rtol=2e-1)},
            },
            metric_threshold={"fp32": 1.0, "fp16": 0.95, "int8": 0.8},
            extra=self.generation_config(),
        )

    def export_spec(self) -> ExportSpec:
        """The encoder graph's spec (the decoder's comes with :meth:`export_graphs`)."""
        c = self.cfg
        S, B = 7, 2  # example sizes > 1, so that torch.export keeps them symbolic
        return self._spec(
            (
                InputSpec("src_tokens", ("batch", "src_len"), (B, S), dtype="int64", kind="tokens",
                          low=4, high=c.src_vocab_size),
                InputSpec("src_padding_mask", ("batch", "src_len"), (B, S), dtype="bool", kind="mask"),
            ),
            ("memory", "cross_kv"),
        )

    def decoder_spec(self) -> ExportSpec:
        c = self.cfg
        S, B, C = 7, 2, 4
        L2, H, Dh = 2 * c.num_decoder_layers, c.num_heads, self.head_dim
        return self._spec(
            (
                InputSpec("tokens", ("batch", 1), (B, 1), dtype="int64", kind="tokens", low=4,
                          high=c.tgt_vocab_size),
                InputSpec("cross_kv", ("batch", L2, H, "src_len", Dh), (B, L2, H, S, Dh), kind="tensor"),
                InputSpec("memory_mask", ("batch", "src_len"), (B, S), dtype="bool", kind="mask"),
                InputSpec("past_self_kv", ("batch", L2, H, "cache_len", Dh), (B, L2, H, C, Dh), kind="tensor"),
            ),
            ("logits", "present_self_kv"),
        )

    def export_graphs(self) -> dict[str, tuple[nn.Module, ExportSpec]]:
        return {"encoder": (EncoderGraph(self), self.export_spec()),
                "decoder": (DecoderGraph(self), self.decoder_spec())}

    def checkpoint_filter(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tutorial checkpoints load as they are; a longer position table is cut to ``max_len`` rows.

        (The table is sinusoidal, so its first rows are the table of a shorter model.)
        """
        key = "positional_encoding.pos_embedding"
        table = state_dict.get(key)
        if table is not None and table.dim() == 3 and table.shape[0] > self.cfg.max_len:
            state_dict = dict(state_dict)
            state_dict[key] = table[: self.cfg.max_len]
        return state_dict


def config_from_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """The configuration a tutorial ``Seq2SeqTransformer`` state dict determines: both vocabularies,
    d_model, the FFN width, the encoder and decoder layer counts, and the position table's length when
    it is shorter than a variant's. Not the heads (``in_proj_weight`` packs them: (3D, D) for any head
    count) nor the norm order (same keys): those stay the variant's or come from ``--set``."""
    def rows(key: str) -> int | None:
        t = state_dict.get(key)
        return int(t.shape[0]) if t is not None and t.dim() >= 1 else None

    def layers(stack: str) -> int:
        prefix = f"transformer.{stack}.layers."
        found = {int(k[len(prefix):].split(".", 1)[0]) for k in state_dict if k.startswith(prefix)}
        return max(found) + 1 if found else 0

    src, tgt = rows("src_tok_emb.embedding.weight"), rows("tgt_tok_emb.embedding.weight")
    emb = state_dict.get("src_tok_emb.embedding.weight")
    ffn = rows("transformer.encoder.layers.0.linear1.weight") or rows("transformer.decoder.layers.0.linear1.weight")
    out = {"src_vocab_size": src, "tgt_vocab_size": tgt or src, "d_model": int(emb.shape[1]) if emb is not None else None,
           "num_encoder_layers": layers("encoder") or None, "num_decoder_layers": layers("decoder") or None,
           "dim_feedforward": ffn}
    table = rows("positional_encoding.pos_embedding")
    if table is not None and table < TransformerConfig.max_len:
        out["max_len"] = table  # longer tables are cut by checkpoint_filter
    return {k: v for k, v in out.items() if v is not None}


register_config_reader("transformer", config_from_checkpoint)


class EncoderGraph(nn.Module):
    """encoder.onnx: src_tokens (B, S), src_padding_mask (B, S) -> memory (B, S, D), cross_kv."""

    def __init__(self, model: Seq2SeqTransformer):
        super().__init__()
        self.model = model

    def forward(self, src_tokens, src_padding_mask):
        memory = self.model.encode(src_tokens, src_padding_mask)
        return memory, self.model.cross_kv(memory)


class DecoderGraph(nn.Module):
    """decoder.onnx: one token per sequence with the self-attention cache (see the module docstring)."""

    def __init__(self, model: Seq2SeqTransformer):
        super().__init__()
        self.model = model

    def forward(self, tokens, cross_kv, memory_mask, past_self_kv):
        return self.model.decode_step(tokens, cross_kv, memory_mask, past_self_kv)


# --- variants -----------------------------------------------------------------------------------

def _transformer(cfg: TransformerConfig, **overrides) -> Seq2SeqTransformer:
    return Seq2SeqTransformer(replace(cfg, **overrides))


@register_model("transformer-tiny", family="transformer")
def transformer_tiny(**overrides) -> Seq2SeqTransformer:
    """Tiny encoder-decoder for tests: D=32, 4 heads, 2+2 layers, FFN 64, vocab 32, 64 positions."""
    cfg = TransformerConfig(src_vocab_size=32, tgt_vocab_size=32, d_model=32, num_heads=4, num_encoder_layers=2,
                            num_decoder_layers=2, dim_feedforward=64, max_len=64, max_new_tokens=32)
    return _transformer(cfg, **overrides)


@register_model("transformer-base", family="transformer", default=True)
def transformer_base(**overrides) -> Seq2SeqTransformer:
    """Transformer base (Vaswani et al. 2017): D=512, 8 heads, 6+6 layers, FFN 2048, vocab 32000."""
    return _transformer(TransformerConfig(), **overrides)


@register_model("transformer-big", family="transformer")
def transformer_big(**overrides) -> Seq2SeqTransformer:
    """Transformer big (Vaswani et al. 2017): D=1024, 16 heads, 6+6 layers, FFN 4096, vocab 32000."""
    return _transformer(TransformerConfig(d_model=1024, num_heads=16, dim_feedforward=4096), **overrides)
