"""INT8 dynamic quantization: Linear layers become int8, outputs stay close, the engine runs on it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig
from model.quantization import is_quantized, quantize_int8
from model.sampling import SamplingParams


def test_int8_replaces_linears_and_keeps_logits_close(tiny_checkpoint):
    fp32 = load_checkpoint(tiny_checkpoint).model
    int8 = quantize_int8(fp32)
    assert is_quantized(int8) and not is_quantized(fp32)
    assert not any(type(m) is nn.Linear for m in int8.modules())
    ids = torch.randint(0, fp32.config.vocab_size, (4, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = fp32(ids), int8(ids)
    cosine = torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).min()
    assert cosine > 0.99
    agreement = (a.argmax(-1) == b.argmax(-1)).float().mean()
    assert agreement > 0.8


def test_engine_generates_with_int8_model(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    engine = Engine(quantize_int8(loaded.model), EngineConfig(max_batch=4), eos_token_ids=[])
    engine.start()
    try:
        results = engine.generate(
            loaded.tokenizer.encode("hello"), SamplingParams(temperature=0, max_tokens=8), n=2
        )
        assert [len(r.token_ids) for r in results] == [8, 8]
        assert results[0].token_ids == results[1].token_ids
    finally:
        engine.shutdown()


def test_fused_projections_give_the_same_logits_and_tokens(tiny_checkpoint):
    import copy

    plain = load_checkpoint(tiny_checkpoint).model
    fused = copy.deepcopy(plain).fuse_projections()
    assert not hasattr(fused.layers[0].self_attn, "q_proj") and hasattr(fused.layers[0].mlp, "gate_up_proj")
    ids = torch.randint(0, plain.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (plain(ids) - fused(ids)).abs().max().item() < 1e-5
    results = []
    for model in (plain, fused):
        engine = Engine(model, EngineConfig(max_batch=2), eos_token_ids=[])
        engine.start()
        try:
            results.append(
                engine.generate([5, 6, 7], SamplingParams(temperature=0, max_tokens=12))[0].token_ids
            )
        finally:
            engine.shutdown()
    assert results[0] == results[1]


def _greedy_uncached(model, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt) :]


def test_fp32_serving_copy_keeps_logits_and_tokens_and_leaves_the_original(tiny_checkpoint):
    from model.inference import TransposedLinear, prepare_for_serving

    plain = load_checkpoint(tiny_checkpoint).model
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    served = prepare_for_serving(plain, "fp32")
    assert not any(type(m) is nn.Linear for m in served.modules())
    assert isinstance(served.lm_head, TransposedLinear) and isinstance(
        served.layers[0].self_attn.qkv_proj, TransposedLinear
    )
    # Norm weights folded into the matmuls, q/k in the paired rotary layout, lm_head untied from the table.
    assert all(n.weight is None for n in served.modules() if type(n).__name__ == "RMSNorm")
    assert (
        served.rope.turns.is_complex()
        and served.lm_head.weight_t.data_ptr() != served.embed_tokens.weight.data_ptr()
    )
    assert hasattr(plain.layers[0].self_attn, "q_proj")  # the original keeps its checkpoint layout
    assert plain.norm.weight is not None and not hasattr(plain.rope, "turns")
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())
    ids = torch.randint(0, plain.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert (plain(ids) - served(ids)).abs().max().item() < 1e-4
    engine = Engine(served, EngineConfig(max_batch=2), eos_token_ids=[])
    engine.start()
    try:
        got = engine.generate([5, 6, 7], SamplingParams(temperature=0, max_tokens=12))[0].token_ids
    finally:
        engine.shutdown()
    assert got == _greedy_uncached(plain, [5, 6, 7], 12)


def test_serving_copy_precisions(tiny_checkpoint):
    from model.inference import prepare_for_serving

    plain = load_checkpoint(tiny_checkpoint).model
    assert is_quantized(prepare_for_serving(plain, "int8")) and not is_quantized(
        prepare_for_serving(plain, "fp32")
    )
    with pytest.raises(ValueError, match="precision"):
        prepare_for_serving(plain, "fp16")


@pytest.mark.parametrize(("kv_heads", "tie"), [(2, True), (4, False)])
def test_serving_layout_keeps_logits_with_non_trivial_norm_weights(kv_heads, tie):
    """Folding norm weights and pairing rotary dims is exact algebra: with norm weights far from 1 (a fresh
    model's are all 1, which would hide a wrong fold) the copy's uncached and cached logits equal the
    original's, GQA and MHA, tied and untied embeddings."""
    from model.inference import prepare_for_serving
    from model.kv_cache import KVCache
    from model.transformer import RMSNorm, Transformer
    from tests.support import tiny_config

    torch.manual_seed(0)
    model = Transformer(tiny_config(512, num_key_value_heads=kv_heads, tie_word_embeddings=tie)).eval()
    with torch.no_grad():
        for norm in (m for m in model.modules() if isinstance(m, RMSNorm)):
            norm.weight.uniform_(0.3, 3.0)
    served = prepare_for_serving(model, "fp32")
    ids = torch.randint(0, 512, (2, 24), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        reference = model(ids)
        assert (served(ids) - reference).abs().max().item() < 1e-4
        cache = KVCache(model.config, 2, 64)
        prefill = served.forward_cached(ids[:, :20], torch.zeros(2, dtype=torch.long), cache)
        decoded = [
            served.forward_cached(ids[:, t : t + 1], torch.full((2,), t), cache) for t in range(20, 24)
        ]
    assert (prefill - reference[:, 19]).abs().max().item() < 1e-4
    for t, logits in zip(range(20, 24), decoded, strict=True):
        assert (logits - reference[:, t]).abs().max().item() < 1e-4


def _outlier_rows(rows: int, seed: int) -> torch.Tensor:
    """Activations like a small Llama's: one channel 60x the others (SmolLM2 has such channels)."""
    x = torch.randn(rows, 96, generator=torch.Generator().manual_seed(seed))
    x[:, 7] *= 60
    return x


def _reference(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The product with the int8 weights and exact activations: what activation quantization should keep."""
    w = linear.weight.detach()
    scale = w.abs().amax(1, keepdim=True) / 127
    return x @ ((w / scale).round() * scale).t()


KERNELS = ["auto", "fbgemm"]  # ours (model/kernels/int8_linear.cpp) where it builds, and the fallback


@pytest.mark.parametrize("kernel", KERNELS)
def test_two_activation_passes_recover_what_seven_bits_lose_on_outlier_channels(kernel):
    from model.quantization import Int8Linear

    torch.manual_seed(1)
    linear = nn.Linear(96, 80, bias=False)
    x = _outlier_rows(16, 2)
    expected = _reference(linear, x)
    with torch.inference_mode():
        errors = {
            residual: float((Int8Linear(linear, residual, kernel)(x) - expected).norm() / expected.norm())
            for residual in (False, True)
        }
    assert errors[False] > 0.03  # one pass: the other channels fall on a handful of levels
    assert errors[True] < 0.005 and errors[True] < errors[False] / 10


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("residual", [False, True])
def test_int8_rows_are_the_same_bits_alone_and_in_any_batch(residual, kernel):
    from model.quantization import Int8Linear

    torch.manual_seed(3)
    layer = Int8Linear(nn.Linear(96, 80, bias=False), residual, kernel)
    batch = torch.cat([_outlier_rows(1, 4), 1e-3 * torch.randn(3, 96), 500 * _outlier_rows(2, 5)])
    with torch.inference_mode():
        together = layer(batch)
        for i in range(len(batch)):
            assert torch.equal(layer(batch[i : i + 1]), together[i : i + 1])
        assert torch.equal(layer(batch.flip(0)), together.flip(0))


def test_serving_int8_uses_two_passes_and_stays_closer_to_fp32_than_one_pass(tiny_checkpoint):
    import copy

    from model.inference import prepare_for_serving
    from model.quantization import Int8Linear

    plain = load_checkpoint(tiny_checkpoint).model
    served = prepare_for_serving(plain, "int8")
    assert all(m.residual for m in served.modules() if isinstance(m, Int8Linear))
    one_pass = quantize_int8(copy.deepcopy(plain).to_serving_layout(), residual=False)
    ids = torch.randint(0, plain.config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        reference = plain(ids)
        error = {name: float((m(ids) - reference).norm()) for name, m in (("two", served), ("one", one_pass))}
    assert error["two"] < error["one"] / 2


def test_the_avx2_kernel_builds_on_a_machine_with_avx2_and_a_compiler():
    """The fast path must not silently fall back where it can run: the suite's install brings g++ and ninja."""
    from model.native import load_kernel

    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the CPU has no AVX2: fbgemm is the path here")
    assert load_kernel() is not None


@pytest.mark.parametrize("shape", [(1, 7, 5), (3, 33, 17), (9, 64, 8), (2, 1, 130)])
def test_the_kernel_pads_odd_shapes_and_adds_the_bias(shape):
    """Inputs not a multiple of 4, outputs not a multiple of 8, more rows than a tile, a 3-D input."""
    from model.quantization import Int8Linear

    rows, k, n = shape
    torch.manual_seed(rows * 100 + k)
    linear = nn.Linear(k, n, bias=True)
    x = torch.randn(2, rows, k)
    expected = _reference(linear, x) + linear.bias.detach()
    with torch.inference_mode():
        got = Int8Linear(linear, True, "auto")(x)
    assert got.shape == (2, rows, n)
    assert torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))


def test_both_kernels_agree_with_each_other_on_a_model_layer():
    from model.quantization import Int8Linear

    torch.manual_seed(5)
    linear = nn.Linear(96, 688, bias=False)
    x = _outlier_rows(12, 8)
    with torch.inference_mode():
        ours, fbgemm = Int8Linear(linear, True, "auto")(x), Int8Linear(linear, True, "fbgemm")(x)
    assert float((ours - fbgemm).norm() / fbgemm.norm()) < 2e-3
