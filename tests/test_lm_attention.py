"""Shared-prefix attention against plain softmax attention over the prompt's and own keys joined."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.smc.lm.transformers.attention import prefix_attention
from selfsteer.smc.lm.transformers.kv import Segment, new_block


def reference(query, key, value, mask, prefix_k, prefix_v, scale):
    """Softmax attention in float64, each query head over [prefix keys, own keys where mask]."""
    b, hq, q_len, d = query.shape
    groups = hq // key.shape[1]
    out = torch.zeros(b, q_len, hq, d, dtype=torch.float64)
    for row in range(b):
        for head in range(hq):
            kv = head // groups
            keys, values = key[row, kv].double(), value[row, kv].double()
            for i in range(q_len):
                own = mask[row, 0, i]
                k = torch.cat([prefix_k[0, kv].double(), keys[own]]) if prefix_k is not None else keys[own]
                v = torch.cat([prefix_v[0, kv].double(), values[own]]) if prefix_v is not None else values[own]
                if len(k):
                    weights = torch.softmax(k @ query[row, head, i].double() * scale, dim=0)
                    out[row, i, head] = weights @ v
    return out


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 3), kv_heads=st.integers(1, 2), groups=st.integers(1, 3), q_len=st.integers(1, 3),
    written=st.integers(0, 4), prefix_len=st.integers(0, 5), spread=st.sampled_from([1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_prefix_attention_is_softmax_attention(rows, kv_heads, groups, q_len, written, prefix_len, spread, seed):
    gen = torch.Generator().manual_seed(seed)
    d, width = 4, written + q_len
    query = torch.randn(rows, kv_heads * groups, q_len, d, generator=gen) * spread
    key = torch.randn(rows, kv_heads, width, d, generator=gen)
    value = torch.randn(rows, kv_heads, width, d, generator=gen)
    mask = torch.rand(rows, 1, q_len, width, generator=gen) < 0.6  # holes, padding; rows may see nothing
    prefix = ()
    if prefix_len:
        pk = torch.randn(1, kv_heads, prefix_len, d, generator=gen)
        pv = torch.randn(1, kv_heads, prefix_len, d, generator=gen)
        prefix = (Segment([pk], [pv]),)
    block = new_block(prefix, rows, width, [key[:1, :, :0]])
    block.split_prefix = True
    pk, pv = block.prefix_kv(0)

    out, _ = prefix_attention(SimpleNamespace(layer_idx=0), query, key, value, mask, scaling=0.5, selfsteer_block=block)

    assert out.shape == (rows, q_len, kv_heads * groups, d)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), reference(query, key, value, mask, pk, pv, 0.5), atol=1e-5, rtol=1e-4)


def test_a_prefix_split_in_segments_is_read_as_one():
    gen = torch.Generator().manual_seed(0)
    query = torch.randn(2, 2, 1, 4, generator=gen)
    key, value = torch.randn(2, 1, 3, 4, generator=gen), torch.randn(2, 1, 3, 4, generator=gen)
    mask = torch.ones(2, 1, 1, 3, dtype=torch.bool)
    pk, pv = torch.randn(1, 1, 5, 4, generator=gen), torch.randn(1, 1, 5, 4, generator=gen)
    whole = new_block((Segment([pk], [pv]),), 2, 3, [key[:1, :, :0]])
    split = new_block((Segment([pk[:, :, :2]], [pv[:, :, :2]]), Segment([pk[:, :, 2:]], [pv[:, :, 2:]])), 2, 3, [key[:1, :, :0]])
    module = SimpleNamespace(layer_idx=0)
    a, _ = prefix_attention(module, query, key, value, mask, selfsteer_block=whole)
    b, _ = prefix_attention(module, query, key, value, mask, selfsteer_block=split)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.double(), reference(query, key, value, mask, pk, pv, 4**-0.5), atol=1e-5, rtol=1e-4)


def test_bfloat16_inputs_are_attended_in_float32_and_returned_in_bfloat16():
    gen = torch.Generator().manual_seed(1)
    query = torch.randn(3, 4, 2, 8, generator=gen).bfloat16()
    key, value = torch.randn(3, 2, 5, 8, generator=gen).bfloat16(), torch.randn(3, 2, 5, 8, generator=gen).bfloat16()
    mask = torch.rand(3, 1, 2, 5, generator=gen) < 0.5
    pk, pv = torch.randn(1, 2, 6, 8, generator=gen).bfloat16(), torch.randn(1, 2, 6, 8, generator=gen).bfloat16()
    block = new_block((Segment([pk], [pv]),), 3, 5, [key[:1, :, :0]])

    out, _ = prefix_attention(SimpleNamespace(layer_idx=0), query, key, value, mask, selfsteer_block=block)

    assert out.dtype == torch.bfloat16
    expected = reference(query, key, value, mask, pk, pv, 8**-0.5)
    torch.testing.assert_close(out.double(), expected, atol=1e-2, rtol=1e-2)  # bf16 rounding of the output only


def test_which_forwards_split_the_prompt_off(monkeypatch):
    """The two-part attention serves every multi-row forward on the CPU; on CUDA only a prompt
    whose per-layer copies for all rows would pass ``copy_prefix_bytes`` (the device is faked:
    the rule reads only the device's type and the model's key shape)."""
    from tiny_lm import tiny_lm

    lm = tiny_lm(seed=1)  # 2 KV heads of 16 dims, float32: 256 bytes of keys and values per position
    assert [lm._split_prefix(rows, 40) for rows in (1, 2, 64)] == [False, True, True]
    monkeypatch.setattr(lm, "device", torch.device("cuda"))
    lm.copy_prefix_bytes = 64 * 40 * 256
    assert [lm._split_prefix(64, n) for n in (1, 40, 41)] == [False, False, True]
    assert not lm._split_prefix(1, 10_000)  # one row: nothing to share
    lm._shared_prefix_attention = False
    assert not lm._split_prefix(64, 10_000)


@pytest.mark.parametrize("bad", [-1, 1.5, "32MiB", True])
def test_a_bad_copy_prefix_bytes_is_refused_with_the_fix(bad):
    from tiny_lm import bundled_tokenizer, tiny_model

    from selfsteer.smc.lm.transformers.backend import TransformersLM

    with pytest.raises(ValueError, match="copy_prefix_bytes must be an int >= 0"):
        TransformersLM(tiny_model(), bundled_tokenizer(), copy_prefix_bytes=bad)
