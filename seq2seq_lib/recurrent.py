"""One way to call a GRU, so that mixed precision means the same thing on every device.

``torch.autocast`` does not treat recurrent layers like the other matrix products. On CUDA its
wrapper for cuDNN RNNs casts to float16 *whatever* dtype autocast was asked for, so a bf16 run
would train its GRUs in fp16 without a gradient scaler; MPS has no rule for RNNs of its own. On
those devices (:data:`EXPLICIT_DEVICES`) :func:`run_gru` takes the GRU out of autocast and runs
it in one explicit dtype (:func:`gru_dtype`):

* no autocast: the plain ``rnn(inputs, hidden)`` call, bit for bit;
* bf16 autocast: bf16 (inputs, state and a bf16 copy of the weights); never fp16;
* fp16 autocast: fp16, as autocast meant it (such runs always have a gradient scaler);
* any other autocast dtype: float32.

The float32 master weights keep their gradients: the cast copies are made per call, inside the
autograd graph. On the CPU autocast already does the right thing, so the GRU is left to it: its
matrix products and gates run in the autocast dtype (oneDNN), the state is summed in float32,
and the weight casts are cached for the whole autocast region. Casting them on every call
instead made one-sentence-at-a-time bf16 decoding 1.85x slower on an AMX CPU.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

__all__ = ["EXPLICIT_DEVICES", "explicit_dtype", "gru_dtype", "run_gru"]

_HALF_DTYPES = (torch.bfloat16, torch.float16)
# device types whose autocast would run a GRU in another dtype than the one asked for
EXPLICIT_DEVICES = frozenset({"cuda", "mps"})


def explicit_dtype(device_type: str, autocast_dtype: torch.dtype | None) -> torch.dtype | None:
    """The dtype a GRU runs in on ``device_type`` under autocast in ``autocast_dtype`` (None:
    autocast is off), or None where the plain call is right (no autocast, or the CPU)."""
    if autocast_dtype is None or device_type not in EXPLICIT_DEVICES:
        return None
    return autocast_dtype if autocast_dtype in _HALF_DTYPES else torch.float32


def gru_dtype(device_type: str) -> torch.dtype | None:
    """:func:`explicit_dtype` for the autocast state of ``device_type`` now."""
    enabled = torch.is_autocast_enabled(device_type)
    return explicit_dtype(device_type, torch.get_autocast_dtype(device_type) if enabled else None)


def run_gru(rnn: nn.GRU, inputs: torch.Tensor | PackedSequence, hidden: torch.Tensor | None = None
            ) -> tuple[torch.Tensor | PackedSequence, torch.Tensor]:
    """``rnn(inputs, hidden)`` in the dtype :func:`gru_dtype` chooses, with autocast off.

    :param inputs: [steps, batch, input_dim], or a packed sequence of such rows.
    :param hidden: [n_layers * dirs, batch, hid_dim], or None for zeros.
    :return: outputs (packed when ``inputs`` is) and the final hidden state, both in that dtype.
    """
    data = inputs.data if isinstance(inputs, PackedSequence) else inputs
    dtype = gru_dtype(data.device.type)
    if dtype is None:
        return rnn(inputs, hidden)
    inputs = inputs.to(dtype)
    hidden = hidden.to(dtype) if hidden is not None else None
    weights = {name: p.to(dtype) for name, p in rnn.named_parameters()}
    with torch.autocast(data.device.type, enabled=False), warnings.catch_warnings():
        # cuDNN warns that cast copies are not one flat buffer: they are new tensors each call
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
        return torch.func.functional_call(rnn, weights, (inputs, hidden))
