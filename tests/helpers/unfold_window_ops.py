"""The reference implementations of the two window ops: the ``F.unfold`` versions the operators ran on before
:mod:`upsample_zoo.upsamplers.window_ops` replaced them (kept verbatim, so the optimised ops are held to them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unfold_reassemble(x: torch.Tensor, kernels: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """CARAFE's reassembly: ``F.unfold`` once per input pixel, then one (c x k2) @ (k2 x s^2) product per pixel."""
    n, c, h, w = x.shape
    k2 = k_up * k_up
    cols = F.unfold(x, k_up, padding=k_up // 2).view(n, c, k2, h * w).permute(0, 3, 1, 2)  # (n, hw, c, k2)
    m = kernels.view(n, k2, h, scale, w, scale).permute(0, 2, 4, 1, 3, 5).reshape(n, h * w, k2, scale * scale)
    out = torch.matmul(cols, m)  # (n, hw, c, s^2)
    return out.view(n, h, w, c, scale, scale).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h * scale, w * scale)


def unfold_window_similarity(q: torch.Tensor, k: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """SAPA's similarities: ``F.unfold`` of the keys, then an einsum with the queries."""
    n, d, h, w = k.shape
    keys = F.unfold(k, k_up, padding=k_up // 2).view(n, d, k_up * k_up, h, w)
    queries = q.view(n, d, h, scale, w, scale)
    sim = torch.einsum("ndhawb,ndkhw->nkhawb", queries, keys)
    return sim.reshape(n, k_up * k_up, h * scale, w * scale)


def unfold_local_cosine_similarity(x: torch.Tensor, dilation: int = 2) -> torch.Tensor:
    """FreqFusion's local similarities: ``F.cosine_similarity`` of each pixel with its 3x3 dilated ``F.unfold``
    window, the centre dropped."""
    n, c, h, w = x.shape
    win = F.unfold(x, 3, padding=dilation, dilation=dilation).view(n, c, 9, h, w)
    sim = F.cosine_similarity(win[:, :, 4:5], win, dim=1)
    return torch.cat([sim[:, :4], sim[:, 5:]], dim=1)
