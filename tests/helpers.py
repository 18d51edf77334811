"""Shared test helpers (not fixtures)."""

from __future__ import annotations

UNSUPPORTED_MODEL = '''
import torch

class Odd(torch.nn.Module):
    def forward(self, x):
        return torch.special.i0(x)

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)
        self.odd = Odd()

    def forward(self, x):
        return self.odd(self.proj(x))

def factory():
    return Net()

def broken():
    raise RuntimeError("no weights here")
'''
