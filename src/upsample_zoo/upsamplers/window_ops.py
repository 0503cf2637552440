"""The two k x k window operations of the content-aware operators, as streaming sums over shifted views.

- :func:`reassemble` (CARAFE, FADE, SAPA, FreqFusion): output pixel (Y, X) is the k x k neighbourhood of input
  pixel (Y // s, X // s), weighted by that output pixel's kernel.
- :func:`window_dot` (SAPA's similarities): the dot product of each high-resolution query with the k x k
  low-resolution keys around it.

Why not ``F.unfold``: it materialises a k^2-times-larger tensor (25x for 5x5), then a batched product of tiny
matrices runs on it, and its backward scatters the k^2 copies back; the operators were memory-bound (CARAFE
at 0.11 of the matmul peak). Here each op is a loop over the k^2 shifted *views* of the zero-padded input,
accumulating into one output in place, so nothing k^2-sized is allocated. The high-resolution tensors are
held sub-pixel-major, (N, s^2, C, h, w), so that every view and kernel plane shares the contiguous (h, w)
inner layout and broadcasts over channels and sub-pixels.

The two ops are each other's gradients, with a third, :func:`_scatter` (the transpose of the shifted views):
for out = reassemble(x, K), dK = window_dot(g, x) and dx = scatter(g, K); for sim = window_dot(q, x),
dq = reassemble(x, g) and dx = scatter(q, g). Both are ``autograd.Function``s with these backwards, which
allocate only their outputs. Accumulation is in float32 (float64 for float64 inputs) whatever the input
dtype (bf16 would round at each of the k^2 steps), and the result is cast back. Zero padding, as mmcv's
CUDA CARAFE and SAPA's ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_subpixel(t: torch.Tensor, s: int) -> torch.Tensor:
    """(N, C, s*h, s*w) -> (N, s^2, C, h, w): sub-pixel (a, b) of low-resolution pixel (y, x) at [:, a*s + b]."""
    n, c, hh, ww = t.shape
    return t.reshape(n, c, hh // s, s, ww // s, s).permute(0, 3, 5, 1, 2, 4).reshape(n, s * s, c, hh // s, ww // s)


def from_subpixel(t: torch.Tensor, s: int) -> torch.Tensor:
    """The inverse of :func:`to_subpixel`."""
    n, _, c, h, w = t.shape
    return t.reshape(n, s, s, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * s, w * s)


def to_taps(kernels: torch.Tensor, s: int) -> torch.Tensor:
    """(N, k^2, s*h, s*w) per-output-pixel kernels -> (N, k^2, s^2, h, w), in one copy (the layout of
    :func:`to_subpixel` with taps first)."""
    n, kk, hh, ww = kernels.shape
    return kernels.reshape(n, kk, hh // s, s, ww // s, s).permute(0, 1, 3, 5, 2, 4).reshape(n, kk, s * s, hh // s,
                                                                                          ww // s)


def from_taps(t: torch.Tensor, s: int) -> torch.Tensor:
    """The inverse of :func:`to_taps`: (N, k^2, s^2, h, w) -> (N, k^2, s*h, s*w), in one copy."""
    n, kk, _, h, w = t.shape
    return t.reshape(n, kk, s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, kk, h * s, w * s)


def _shifts(k: int, h: int, w: int):
    """(tap t = i*k + j, the slices of the padded input that tap t of every pixel reads)."""
    for t in range(k * k):
        i, j = divmod(t, k)
        yield t, (slice(None), slice(None), slice(i, i + h), slice(j, j + w))


def _gather(xp: torch.Tensor, kern: torch.Tensor, k: int) -> torch.Tensor:
    """xp (N, C, h+2r, w+2r) padded, kern (N, k^2, s^2, h, w) -> (N, s^2, C, h, w): sum_t kern_t * shift_t(x)."""
    n, kk, ss, h, w = kern.shape
    out = torch.zeros(n, ss, xp.shape[1], h, w, dtype=xp.dtype, device=xp.device)
    for t, view in _shifts(k, h, w):
        out.addcmul_(xp[view].unsqueeze(1), kern[:, t].unsqueeze(2))
    return out


def _dot(a: torch.Tensor, xp: torch.Tensor, k: int) -> torch.Tensor:
    """a (N, s^2, C, h, w), xp (N, C, h+2r, w+2r) -> (N, k^2, s^2, h, w): sum_c a * shift_t(x), per tap.
    Accumulated one channel at a time into the (N, s^2, h, w) tap plane, which stays in cache: a product over
    all channels then a sum (``vecdot``) would write and reread a C-times-larger temporary per tap."""
    n, ss, c, h, w = a.shape
    out = torch.zeros(n, k * k, ss, h, w, dtype=a.dtype, device=a.device)
    for t, view in _shifts(k, h, w):
        shifted, plane = xp[view], out[:, t]
        for ch in range(c):
            plane.addcmul_(a[:, :, ch], shifted[:, ch].unsqueeze(1))
    return out


def _scatter(a: torch.Tensor, kern: torch.Tensor, k: int) -> torch.Tensor:
    """a (N, s^2, C, h, w), kern (N, k^2, s^2, h, w) -> (N, C, h+2r, w+2r): the transpose of the shifted views,
    sum_t shift_t^T(sum_q a_q kern_tq), on the padded input (the padding's own backward then crops or folds)."""
    n, ss, c, h, w = a.shape
    r = k // 2
    out = torch.zeros(n, c, h + 2 * r, w + 2 * r, dtype=a.dtype, device=a.device)
    tap = torch.empty(n, c, h, w, dtype=a.dtype, device=a.device)
    for t, view in _shifts(k, h, w):
        # the s^2 sub-pixels' sum into a contiguous plane first, then one strided add into the padded output:
        # the strided read-modify-write runs k^2 times instead of k^2 s^2 times
        torch.mul(a[:, 0], kern[:, t, 0].unsqueeze(1), out=tap)
        for q in range(1, ss):
            tap.addcmul_(a[:, q], kern[:, t, q].unsqueeze(1))
        out[view].add_(tap)
    return out


def _acc(*ts: torch.Tensor) -> torch.dtype:
    """The accumulation dtype: float32, or float64 when an input is float64."""
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


PADDING = {"zeros": "constant", "replicate": "replicate"}


def _pad(x: torch.Tensor, k: int, padding: str) -> torch.Tensor:
    """x padded by k // 2 on every side (differentiable: the ops below take the padded input)."""
    if padding not in PADDING:
        raise ValueError(f"window ops: padding must be one of {sorted(PADDING)}, got {padding!r}")
    return F.pad(x, [k // 2] * 4, mode=PADDING[padding])


class _Reassemble(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, kernels, k, s):
        acc = _acc(xp, kernels)
        kern = to_taps(kernels.to(acc), s)  # (N, k^2, s^2, h, w)
        ctx.dtypes = (xp.dtype, kernels.dtype)
        xp = xp.to(acc)
        ctx.save_for_backward(xp, kern)
        ctx.k, ctx.s = k, s
        return from_subpixel(_gather(xp, kern, k), s).to(ctx.dtypes[0])

    @staticmethod
    def backward(ctx, grad):
        xp, kern = ctx.saved_tensors
        k, s = ctx.k, ctx.s
        g = to_subpixel(grad.to(xp.dtype), s)
        dx = _scatter(g, kern, k).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        dk = None
        if ctx.needs_input_grad[1]:
            dk = from_taps(_dot(g, xp, k), s).to(ctx.dtypes[1])
        return dx, dk, None, None


class _WindowDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, xp, k, s):
        acc = _acc(q, xp)
        a = to_subpixel(q.to(acc), s)
        ctx.dtypes = (q.dtype, xp.dtype)
        xp = xp.to(acc)
        ctx.save_for_backward(a, xp)
        ctx.k, ctx.s = k, s
        sim = _dot(a, xp, k)  # (N, k^2, s^2, h, w)
        return from_taps(sim, s).to(q.dtype)

    @staticmethod
    def backward(ctx, grad):
        a, xp = ctx.saved_tensors
        k, s = ctx.k, ctx.s
        g = to_taps(grad.to(a.dtype), s)  # (N, k^2, s^2, h, w): a kernel
        dq = from_subpixel(_gather(xp, g, k), s).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        dx = _scatter(a, g, k).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return dq, dx, None, None


def reassemble(x: torch.Tensor, kernels: torch.Tensor, k: int, scale: int, padding: str = "zeros") -> torch.Tensor:
    """``x`` (N, C, H, W), ``kernels`` (N, k^2, s*H, s*W) -> (N, C, s*H, s*W): output pixel (Y, X) is
    sum_{i,j} kernels[:, i*k + j, Y, X] * x[:, :, Y//s + i - k//2, X//s + j - k//2]; outside the input x reads
    zero (``padding="zeros"``, mmcv's CARAFE) or its nearest border pixel (``"replicate"``)."""
    return _Reassemble.apply(_pad(x, k, padding), kernels, int(k), int(scale))


def window_dot(q: torch.Tensor, x: torch.Tensor, k: int, scale: int, padding: str = "zeros") -> torch.Tensor:
    """``q`` (N, d, s*H, s*W), ``x`` (N, d, H, W) -> (N, k^2, s*H, s*W): q at (Y, X) dotted with x at each tap
    (Y//s + i - k//2, X//s + j - k//2) of the k x k window; outside the input x is zero or replicated."""
    return _WindowDot.apply(q, _pad(x, k, padding), int(k), int(scale))
