"""On-the-fly augmentation of training batches, on the training device.

Precomputed crops are seen many times; without augmentation the network memorises them (train
loss kept falling while validation stalled). Each batch gets, per sample: a random scale and
offset of the CT channel's intensity, Gaussian noise on it, and a small random zoom and shift
applied to both channels alike (so the mask stays registered to the CT). No flips: anatomy has
an orientation (left/right organs, liver on one side) that the model may use. The target (slice
Dice) is unchanged by all of these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes (inputs are in about [-1, 1]).

    ``intensity_scale``: CT channel multiplied by ``1 ± scale``; ``intensity_offset``: plus
    ``± offset``; ``noise``: Gaussian noise of std up to ``noise``; ``zoom``: both channels
    zoomed by ``1 ± zoom``; ``shift``: shifted by up to ``± shift`` of the crop side.
    """

    intensity_scale: float = 0.1
    intensity_offset: float = 0.1
    noise: float = 0.05
    zoom: float = 0.1
    shift: float = 0.06


def augment_batch(x: torch.Tensor, generator: torch.Generator, *,
                  config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """An augmented copy of ``x`` (B, 2, S, S): channel 0 CT, channel 1 mask.

    Random numbers come from ``generator`` (a CPU generator, so runs are reproducible on any
    device) and are moved to ``x``'s device.
    """
    b = x.shape[0]
    dev = x.device

    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2.0 - 1.0).to(dev)

    scale = 1.0 + config.intensity_scale * uniform(b, 1, 1)
    offset = config.intensity_offset * uniform(b, 1, 1)
    sigma = config.noise * torch.rand(b, 1, 1, generator=generator).to(dev)
    noise = torch.randn(x[:, 0].shape, generator=generator).to(dev) * sigma
    ct = x[:, 0] * scale + offset + noise
    out = torch.stack([ct, x[:, 1]], dim=1)

    zoom = 1.0 + config.zoom * uniform(b)
    shift = 2.0 * config.shift * uniform(b, 2)  # grid coordinates span 2 per side
    theta = torch.zeros(b, 2, 3, device=dev, dtype=out.dtype)
    theta[:, 0, 0] = 1.0 / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(out.shape), align_corners=False)
    return F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
