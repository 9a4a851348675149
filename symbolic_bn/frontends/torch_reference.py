"""PyTorch's implementation as checkable functions (optional: needs ``torch``).

``torch.nn.functional.instance_norm`` on a ``(1, C, H, W)`` tensor is this project's
BatchNormChannelFirst: training-mode statistics over H×W per channel, biased variance, ε inside the
square root (``ecosystem.md`` §5.1).  ε is always passed explicitly (torch's default is 1e-5).
The functions have the project's standard signatures, so they go straight into ``crosscheck``.
"""
from __future__ import annotations

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("symbolic_bn.frontends.torch_reference needs PyTorch: pip install torch") from exc
    return torch


def instance_norm_forward(x, gamma, beta, eps, xp=np):
    torch = _torch()
    with torch.no_grad():
        y = torch.nn.functional.instance_norm(torch.from_numpy(x)[None], weight=torch.from_numpy(gamma),
                                              bias=torch.from_numpy(beta), eps=eps)
    return y[0].numpy()


def instance_norm_backward(x, gamma, beta, grad_out, eps, xp=np):
    """(dx, dγ, dβ) by torch.autograd for the cotangent ``grad_out``."""
    torch = _torch()
    xt = torch.from_numpy(x)[None].requires_grad_(True)
    w = torch.from_numpy(gamma).requires_grad_(True)
    b = torch.from_numpy(beta).requires_grad_(True)
    y = torch.nn.functional.instance_norm(xt, weight=w, bias=b, eps=eps)
    dx, dw, db = torch.autograd.grad(y, (xt, w, b), grad_outputs=torch.from_numpy(grad_out)[None])
    return dx[0].numpy(), dw.numpy(), db.numpy()
