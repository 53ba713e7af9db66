"""Dropout whose random masks are cheap on the CPU.

On the CPU, ``torch.nn.Dropout`` draws every mask element from PyTorch's Mersenne Twister one at
a time (``aten::bernoulli_``): a Transformer of the course's size spent about a quarter of its
training time there (``python bench/profile_train.py --preset transformer``). :class:`Dropout`
draws the mask as 16-bit random numbers from NumPy's PCG64 instead, a few times faster, seeded for every
call from PyTorch's own generator: ``torch.manual_seed`` fixes it, and a checkpoint's random
state brings it back on resume. On any other device it is ``nn.Dropout``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

_LEVELS = 1 << 16  # a mask element is one uniform 16-bit number


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A bool tensor of ``shape`` on the CPU, True with probability ``1 - p`` (``p`` rounded to
    a multiple of 1/65536; :func:`kept_share` is the exact share)."""
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))  # from torch's generator
    n = int(np.prod(shape, dtype=np.int64))
    draws = np.random.Generator(np.random.PCG64(seed)).integers(0, _LEVELS, n, dtype=np.uint16)
    return torch.from_numpy(draws >= _threshold(p)).view(shape)


def kept_share(p: float) -> float:
    """The exact probability that :func:`keep_mask` keeps an element."""
    return 1.0 - _threshold(p) / _LEVELS


def _threshold(p: float) -> int:
    return min(int(round(p * _LEVELS)), _LEVELS)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (暂退法) with :func:`keep_mask`'s masks for CPU tensors in training: each
    element is zeroed with probability ``p`` and the rest are scaled by ``1 / (1 - p)``, so the
    expected output is the input. Same parameters and state as ``nn.Dropout`` (none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        kept = kept_share(self.p)
        if kept == 0.0:
            return x * 0.0
        return torch.where(keep_mask(x.shape, self.p), x * (1.0 / kept), 0.0)


def use_fast_dropout(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` inside ``module`` by a :class:`Dropout` of the same ``p``
    (in place); returns ``module``."""
    for name, child in list(module.named_children()):
        if type(child) is nn.Dropout:
            setattr(module, name, Dropout(child.p, child.inplace))
        else:
            use_fast_dropout(child)
    return module
