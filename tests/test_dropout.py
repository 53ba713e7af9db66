"""The library's dropout: nn.Dropout's contract with masks drawn by NumPy on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seq2seq_lib.dropout import Dropout, keep_mask, kept_share, use_fast_dropout
from seq2seq_lib.transformer import TransformerDecoder, TransformerEncoder


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_the_share_dropped_is_p_and_the_mean_is_kept(p):
    torch.manual_seed(0)
    x = torch.ones(400, 500)
    y = Dropout(p).train()(x)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - p) < 0.005  # 200k draws: the standard error is about 0.001
    assert torch.allclose(y[y != 0], torch.tensor(1 / kept_share(p)))
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert abs(kept_share(p) - (1 - p)) < 1e-4


def test_seeded_by_torch_and_different_every_call():
    x = torch.randn(64, 33)
    torch.manual_seed(5)
    a, b = Dropout(0.3)(x), Dropout(0.3)(x)
    torch.manual_seed(5)
    assert torch.equal(Dropout(0.3)(x), a)
    assert not torch.equal(a, b)
    state = torch.get_rng_state()  # a checkpoint's random state brings the masks back
    c = Dropout(0.3)(x)
    torch.set_rng_state(state)
    assert torch.equal(Dropout(0.3)(x), c)


def test_identity_in_eval_and_at_p_zero_and_gradients_follow_the_mask():
    x = torch.randn(8, 16, requires_grad=True)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    torch.manual_seed(1)
    y = Dropout(0.5)(x)
    y.sum().backward()
    expected = (y != 0).float() / kept_share(0.5)
    assert torch.equal(x.grad, expected)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))


def test_dtype_and_shape_are_kept_and_other_devices_use_torchs_dropout():
    x = torch.randn(3, 4, 5, dtype=torch.bfloat16)
    y = Dropout(0.2)(x)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    meta = torch.empty(3, 4, device="meta")
    assert Dropout(0.2)(meta).device.type == "meta"  # not NumPy's: torch's own dropout
    assert keep_mask((2, 3), 0.5).shape == (2, 3) and keep_mask((2, 3), 0.5).dtype == torch.bool


def test_the_transformer_uses_it_everywhere_but_inside_the_attention():
    enc = TransformerEncoder(30, 16, 2, 32, 2, 0.1)
    dec = TransformerDecoder(30, 16, 2, 32, 2, 0.1)
    for module in (enc, dec):
        kinds = {type(m) for m in module.modules() if isinstance(m, nn.Dropout)}
        assert kinds == {Dropout}
    plain = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.4)))
    use_fast_dropout(plain)
    assert [type(m) for m in plain.modules() if isinstance(m, nn.Dropout)] == [Dropout, Dropout]
    assert plain[2][0].p == 0.4
