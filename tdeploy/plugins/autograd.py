"""Gradients for the plugin ops, by recomputing their reference math.

The fused kernels are inference kernels; training (fine-tuning before export, the accuracy checks)
still has to go through the same custom op so that the model code is the one that exports. The
backward pass reruns ``reference`` on the saved inputs with autograd on and differentiates it:
memory like the unfused reference, exact gradients of the definition of correctness.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def register_reference_autograd(op, reference: Callable[..., torch.Tensor]) -> None:
    """Give custom ``op`` a backward: ``reference`` takes the op's inputs in order (attributes included)."""

    def setup_context(ctx, inputs, output):
        ctx.tensor_positions = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor)]
        ctx.others = [None if isinstance(x, torch.Tensor) else x for x in inputs]
        ctx.save_for_backward(*[inputs[i] for i in ctx.tensor_positions])

    def backward(ctx, grad_output):
        args = list(ctx.others)
        wanted = []
        for pos, saved in zip(ctx.tensor_positions, ctx.saved_tensors):
            leaf = saved.detach().requires_grad_(saved.is_floating_point())
            args[pos] = leaf
            if leaf.requires_grad:
                wanted.append((pos, leaf))
        with torch.enable_grad():
            out = reference(*args)
        grads = torch.autograd.grad(out, [leaf for _, leaf in wanted], grad_output, allow_unused=True)
        result: list = [None] * len(args)
        for (pos, _), grad in zip(wanted, grads):
            result[pos] = grad
        return tuple(result)

    op.register_autograd(backward, setup_context=setup_context)
