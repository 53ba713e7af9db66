"""The output projection and the cross-entropy in one, a chunk of target tokens at a time.

``cross_entropy(states @ weight.T + bias, target)`` would hold the logits of all the batch's
target tokens at once ([n_tokens, vocab]), then their float32 copy, their log-softmax and its
gradient: four such matrices, the largest activations of a training step. Here each chunk of
``chunk`` tokens is projected, its loss summed, and, when gradients are wanted, the gradient of
its logits (``softmax - smoothed one-hot``, divided by the token count) is turned straight into
the gradients of its states, of the weight and of the bias; then the chunk's logits are dropped.
The backward pass only scales these gradients. Same loss and gradients as the one-piece
computation (up to the order of float sums), with label smoothing as torch defines it.

Under autocast the products run in the autocast dtype, as ``nn.Linear`` would (the weight is
cast once per call), and the softmax in float32, as ``logits.float()`` did; the weight's and the
bias's gradients are summed over the chunks in float32 and come back in their own dtype.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DEFAULT_CHUNK", "chunked_cross_entropy"]

DEFAULT_CHUNK = 1024  # target tokens per chunk: [1024, 10k] float32 logits are 40 MB


def chunked_cross_entropy(states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          target: torch.Tensor, chunk: int = DEFAULT_CHUNK,
                          label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean of ``cross_entropy(states @ weight.T + bias, target, label_smoothing=...)``.

    :param states: [n, hid] the decoder states of the scored tokens.
    :param weight: [vocab, hid] and :param bias: [vocab] or None, the output layer's.
    :param target: [n] the word each state must predict.
    :param chunk: tokens projected at a time (at least 1).
    :return: the float32 mean loss (a scalar, differentiable in states, weight and bias).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    if states.dim() != 2 or target.shape != states.shape[:1]:
        raise ValueError(f"states must be [n, hid] and target [n], got {tuple(states.shape)} "
                         f"and {tuple(target.shape)}")
    device_type = states.device.type
    autocast_on = torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type) if autocast_on else states.dtype
    with torch.autocast(device_type, enabled=False):
        if not torch.is_grad_enabled():  # evaluation: the loss only, no gradients made
            return _chunks(states, weight, bias, target, chunk, label_smoothing, dtype,
                           (False, False, False))[0]
        return _ChunkedCrossEntropy.apply(states, weight, bias, target, chunk, label_smoothing,
                                          dtype)


def _chunks(states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            target: torch.Tensor, chunk: int, label_smoothing: float, dtype: torch.dtype,
            want: tuple[bool, bool, bool]) -> tuple[torch.Tensor, ...]:
    """The mean loss and the gradients in ``want`` (states, weight, bias; None where not
    wanted) of the mean loss, computed ``chunk`` tokens at a time in ``dtype``."""
    # states: [n, hid]; weight: [vocab, hid]; bias: [vocab] or None; target: [n]
    n, vocab = states.shape[0], weight.shape[0]
    out_dtypes = (states.dtype, weight.dtype, bias.dtype if bias is not None else None)
    # the products' dtype (autocast's, or the states'): one cast per call, not per chunk
    states, weight = states.to(dtype), weight.to(dtype)
    bias = bias.to(dtype) if bias is not None else None
    grad_states = torch.empty_like(states) if want[0] else None
    # float32: the products write into it; another dtype: the first chunk's becomes it
    grad_weight = torch.empty(weight.shape, dtype=torch.float32, device=weight.device) \
        if want[1] and dtype == torch.float32 else None
    grad_bias = torch.zeros(vocab, dtype=torch.float32, device=weight.device) \
        if want[2] and bias is not None else None
    total = torch.zeros((), dtype=torch.float32, device=states.device)
    smooth, scale = label_smoothing / vocab, 1.0 / max(n, 1)
    for start in range(0, n, chunk):
        rows = states[start : start + chunk]  # [c, hid]
        tgt = target[start : start + chunk].unsqueeze(1)  # [c, 1]
        logp = torch.log_softmax(nn.functional.linear(rows, weight, bias).float(), dim=-1)
        # logp: [c, vocab] float32; loss = -(1 - eps) log p[target] - eps / vocab sum log p
        total -= (1.0 - label_smoothing) * logp.gather(1, tgt).sum()
        if label_smoothing:
            total -= smooth * logp.sum()
        if not any(want):
            continue
        # d(loss sum) / d logits = softmax - (1 - eps) one-hot - eps / vocab (then * scale)
        grad = logp.exp_()  # [c, vocab], in the log-probabilities' memory
        grad.scatter_add_(1, tgt, grad.new_full(tgt.shape, -(1.0 - label_smoothing)))
        if label_smoothing:
            grad.sub_(smooth)
        if dtype == torch.float32:  # the mean's 1 / n rides on the products
            alpha = scale
        else:  # scaled in float32, then rounded once to the products' dtype
            grad, alpha = torch.mul(grad, scale, out=torch.empty_like(grad, dtype=dtype)), 1.0
        if grad_states is not None:
            part = grad_states[start : start + chunk]
            torch.addmm(part, grad, weight, beta=0, alpha=alpha, out=part)
        if want[1] and dtype == torch.float32:  # [vocab, hid]
            torch.addmm(grad_weight, grad.t(), rows, beta=0 if start == 0 else 1, alpha=alpha,
                        out=grad_weight)
        elif want[1]:  # summed over the chunks in float32
            update = torch.mm(grad.t(), rows).float()
            grad_weight = update if start == 0 else grad_weight.add_(update)
        if grad_bias is not None:
            grad_bias.add_(grad.sum(0, dtype=torch.float32), alpha=alpha)
    grads = tuple(g.to(d) if g is not None else None
                  for g, d in zip((grad_states, grad_weight, grad_bias), out_dtypes))
    return (total * scale, *grads)


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and (when needed) every gradient, chunk by chunk; backward
    scales them by the incoming gradient."""

    @staticmethod
    def forward(ctx, states, weight, bias, target, chunk, label_smoothing, dtype):
        want = tuple(ctx.needs_input_grad[:3])
        loss, *grads = _chunks(states, weight, bias, target, chunk, label_smoothing, dtype, want)
        ctx.have = tuple(g is not None for g in grads)
        ctx.save_for_backward(*(g for g in grads if g is not None))
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        saved = iter(ctx.saved_tensors)
        # the loss is usually the last node (grad_loss 1): read that without a GPU sync
        one = grad_loss.device.type == "cpu" and float(grad_loss) == 1.0
        grads = []
        for have in ctx.have:
            g = next(saved) if have else None
            grads.append(g if g is None or one else g * grad_loss)
        return (*grads, None, None, None, None)
