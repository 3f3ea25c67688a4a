"""Faster inference on the CPU: a network part traced once per input shape and frozen for inference.

`torch.jit.optimize_for_inference` folds batch norm into the convolutions and pre-packs their weights
for oneDNN; the outputs agree with eager mode to float32 rounding (see tests/test_inference.py). Each
traced part is kept for a few input shapes (the batch sizes the app uses), oldest dropped first.
On a GPU, or with `enabled=False`, modules run eagerly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch
from torch import nn


class FrozenParts:
    """Runs `module(x)` through a frozen trace of it for x's shape, made on first use."""

    def __init__(self, enabled: bool = True, max_shapes: int = 10) -> None:
        self.enabled = enabled
        self.max_shapes = max_shapes
        self._traced: OrderedDict[tuple, torch.jit.ScriptModule] = OrderedDict()
        self._lock = threading.Lock()  # the app's sessions share one model

    @torch.no_grad()
    def __call__(self, name: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled or x.device.type != "cpu" or module.training:
            return module(x)
        key = (name, tuple(x.shape), x.dtype)
        with self._lock:
            traced = self._traced.get(key)
            if traced is None:
                traced = torch.jit.optimize_for_inference(torch.jit.trace(module, x, check_trace=False))
                self._traced[key] = traced
                while len(self._traced) > self.max_shapes:
                    self._traced.popitem(last=False)
            else:
                self._traced.move_to_end(key)
        return traced(x)
