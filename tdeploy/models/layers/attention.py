"""Global multi-head self-attention (ViT), with timm's parameter names."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class MultiHeadSelfAttention(nn.Module):
    """qkv Linear (dim -> 3*dim) -> softmax(q k^T / sqrt(d)) v per head -> proj Linear."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, N, C)
        B, N, C = x.shape
        # (B, N, 3C) -> (3, B, heads, N, head_dim)
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, head_dim)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))
