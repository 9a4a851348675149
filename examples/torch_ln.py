"""PyTorch's own LayerNorm autograd as a backward (needs torch):
``symbolic-bn check torch_ln:layer_norm_backward --framework torch --layer layer_norm ...``
traces it with make_fx and proves the trace exactly."""
import torch


def layer_norm_backward(x, weight, bias, grad_out, eps):
    x, w, b = (t.detach().requires_grad_(True) for t in (x, weight, bias))
    y = torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, eps)
    return torch.autograd.grad(y, (x, w, b), grad_out)
