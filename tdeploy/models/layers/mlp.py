"""The transformer feed-forward block: Linear -> GELU -> Linear."""

from __future__ import annotations

from torch import nn


class Mlp(nn.Module):
    """fc1 (dim -> hidden) -> GELU (exact, erf) -> fc2 (hidden -> dim); key names as timm's Mlp."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x):  # (..., dim) -> (..., dim)
        return self.fc2(self.act(self.fc1(x)))
