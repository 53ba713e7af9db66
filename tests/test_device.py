"""Device choice: a named device must exist here; bf16 detection from the CPU flags the system
lists, with torch's own probes as the fallback where it lists none."""

from __future__ import annotations

import platform

import pytest
import torch

from seq2seq_lib import device as device_mod
from seq2seq_lib.device import bf16_from_flags, choose_device, parse_cpuinfo_flags


def test_a_cuda_index_beyond_the_device_count_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device='cuda:2' asked for, but this machine has 2 CUDA "
                                         r"GPUs \(cuda:0 to cuda:1\)"):
        choose_device("cuda:2", verbose=False)
    assert choose_device("cuda:1", verbose=False) == torch.device("cuda:1")
    assert choose_device("cuda", verbose=False) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"has 1 CUDA GPU \(cuda:0\)$"):
        choose_device("cuda:1", verbose=False)


def test_named_devices_that_are_not_there_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        choose_device("cuda:0", verbose=False)
    with pytest.raises(ValueError, match="use auto, cpu, cuda, cuda:N or mps"):
        choose_device("gpu", verbose=False)
    assert choose_device("cpu", verbose=False) == torch.device("cpu")


X86 = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
bugs\t\t: spectre_v1
"""
ARM = """processor\t: 0
Features\t: fp asimd evtstrm aes sve bf16 i8mm
CPU implementer\t: 0x41
"""


def test_bf16_is_read_from_the_flags_the_system_lists():
    assert parse_cpuinfo_flags(X86) >= {"avx512_bf16", "amx_bf16"}
    assert "spectre_v1" not in parse_cpuinfo_flags(X86)  # bugs are not features
    assert bf16_from_flags(parse_cpuinfo_flags(X86), "x86_64") == "AMX"
    assert bf16_from_flags({"avx2", "avx512f", "avx512_bf16"}, "x86_64") == "AVX512-BF16"
    assert bf16_from_flags({"avx2", "avx512f"}, "x86_64") is None
    assert bf16_from_flags(parse_cpuinfo_flags(ARM), "aarch64") == "Arm BF16"
    assert bf16_from_flags({"fp", "asimd"}, "arm64") is None
    assert parse_cpuinfo_flags("") == set()


def test_where_the_system_lists_no_flags_torch_probes_decide(monkeypatch):
    """The fallback (e.g. Windows) gives the same answer as the flags on this machine."""
    flags = device_mod.cpu_flags()
    if flags is None:
        pytest.skip("this system lists no CPU flags")
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: None)
    device_mod.cpu_bf16_instructions.cache_clear()
    try:
        fallback = device_mod.cpu_bf16_instructions()
    finally:
        device_mod.cpu_bf16_instructions.cache_clear()
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert fallback == bf16_from_flags(flags, platform.machine())
    else:
        assert fallback is None  # torch's probes know x86 only
