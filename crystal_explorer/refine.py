"""Semi-amortised encoding: refine a posterior mean so that its decoding explains the input density better.

The encoder's posterior mean is one forward pass's guess (amortised inference); the decoder, given a better
latent, reproduces the input more closely. `refine_latents` starts at the posterior mean and takes a few Adam
steps on the latent alone, minimising the squared error between the decoded and the input density (the
reconstruction term of eq. 2; the weights do not change). It needs the input density, so it applies to
reconstructions, not to draws, interpolations between stored latents or slider moves.

Measured on val crystals (see `RefineConfig`): the decoded peak heights move towards the input's, which is
what exact species need, and atoms and counts improve a little as well.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from crystal_explorer.models import CrystalVAE
from crystal_explorer.settings import settings_from_dict

PRECISIONS = ("float32", "bfloat16", "auto")


@dataclass(frozen=True)
class RefineConfig:
    """How to refine.

    Attributes:
        steps: Adam steps on the latent (0 = the posterior mean as it is, the paper's reconstruction).
        lr: Adam's step size, in latent units.
        precision: the decoder's arithmetic during the steps: "float32"; "bfloat16" (autocast, and on the CPU a
            channels_last_3d copy of the decoder, which oneDNN runs 3.5× faster where the CPU has native bf16,
            `benchmarks/app_latency.py`); "auto" = bfloat16 where the device does it natively, else float32.
            The error and the Adam state stay float32, and the decoding that follows is float32 either way.
    """

    steps: int = 20
    lr: float = 0.1
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.steps < 0 or not self.lr > 0:
            raise ValueError(f"refinement needs steps ≥ 0 and lr > 0, got steps={self.steps}, lr={self.lr}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"refinement precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def from_dict(cls, data: dict | None) -> RefineConfig:
        return settings_from_dict(cls, data, "refinement")


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` does bfloat16 arithmetic natively (a CUDA card that supports it, or a CPU with AVX-512
    BF16 / AMX that oneDNN uses); elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolved_precision(config: RefineConfig, device: torch.device) -> str:
    """The precision the steps run in on `device`: "auto" resolved, bfloat16 kept where it is asked for."""
    if config.precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return config.precision


_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_copies_lock = threading.Lock()


def _channels_last_decoder(network: CrystalVAE) -> nn.Module:
    """A channels_last_3d eval copy of `network.decoder`, made once and again whenever its weights change
    (every in-place update bumps a tensor's version); the shared network itself is left as it is."""
    version = tuple(t._version for t in network.decoder.state_dict().values())
    with _copies_lock:
        held = _copies.get(network)
        if held is None or held[0] != version:
            decoder = copy.deepcopy(network.decoder).eval().to(memory_format=torch.channels_last_3d)
            decoder.requires_grad_(False)
            held = (version, decoder)
            _copies[network] = held
    return held[1]


def refine_latents(
    network: CrystalVAE,
    densities: torch.Tensor,
    latents: torch.Tensor,
    condition: torch.Tensor | None = None,
    config: RefineConfig = RefineConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Latents (B, L) whose decodings fit `densities` (B, 1, n, n, n), network-scaled, better.

    Each latent is refined on its own density (Adam is per coordinate and the network is in eval mode, so a
    batch gives the same result as one at a time). Only the latents receive gradients; the weights are left
    untouched, so one network can serve other threads meanwhile. `progress(step, steps)` is called after
    each step. Returns the refined latents and the squared error per crystal before each step and after the
    last, (steps + 1, B).
    """
    was_training = network.training
    network.eval()
    target = densities.detach()
    z = latents.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=config.lr)
    device = target.device
    bf16 = resolved_precision(config, device) == "bfloat16"
    decoder = _channels_last_decoder(network) if bf16 and device.type == "cpu" else network.decoder
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    errors = []
    try:
        with torch.enable_grad():
            for step in range(config.steps + 1):
                with autocast:
                    decoded = decoder(network.bottleneck(z, condition))  # the bottleneck is one linear layer
                per_crystal = ((decoded.float() - target) ** 2).flatten(1).sum(1)
                errors.append(per_crystal.detach().cpu().numpy())
                if step == config.steps:
                    break
                (grad,) = torch.autograd.grad(per_crystal.sum(), z)
                z.grad = grad
                optimizer.step()
                if progress is not None:
                    progress(step + 1, config.steps)
    finally:
        network.train(was_training)
    return z.detach().cpu().numpy(), np.stack(errors)
