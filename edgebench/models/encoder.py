"""Small pre-norm transformer encoder classifier over token ids.

Attention is spelled out with nn.Linear + matmul + softmax: nn.MultiheadAttention and
nn.TransformerEncoderLayer take a fused fast path that TVM's importer cannot handle.
"""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with explicit q/k/v/out projections."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.scale = self.head_dim**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.out(torch.matmul(attn, v).transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Pre-norm block: x + attn(ln(x)), then x + ffn(ln(x)) with a GELU FFN."""

    def __init__(self, dim: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class EncoderClassifier(nn.Module):
    """Token + learned positional embedding, N encoder layers, final LN, mean pool, linear."""

    def __init__(self, vocab: int = 1000, seq_len: int = 128, dim: int = 256, heads: int = 4,
                 layers: int = 4, ffn_dim: int = 1024, num_classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)
        self.layers = nn.Sequential(*(EncoderLayer(dim, heads, ffn_dim) for _ in range(layers)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        return self.head(self.norm(self.layers(x)).mean(dim=1))
