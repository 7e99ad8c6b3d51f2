"""The int8 serving copy runs its decoder layers in C++ (model/kernels/decoder_layers.cpp): it must compute
what the Python loop computes, keep rows independent, and be used where it can be."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig
from model.inference import prepare_for_serving
from model.kv_cache import KVCache
from model.native import load_kernel
from model.quantization import quantize_int8
from model.sampling import SamplingParams

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "tinyllm-default"

pytestmark = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"), reason="the kernel needs AVX2"
)


def _without_fusion(model):
    plain = copy.deepcopy(model)
    plain.fused_layers = None
    return plain


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_int8_serving_copies_run_fused_and_the_others_do_not(tiny_checkpoint):
    assert load_kernel() is not None
    model = load_checkpoint(tiny_checkpoint).model
    assert prepare_for_serving(model, "int8").fused_layers is not None
    assert prepare_for_serving(model, "fp32").fused_layers is None
    # The fallback kernel, or a copy not in the serving layout (norm weights not folded), runs the Python loop.
    assert quantize_int8(model, kernel="fbgemm").fused_layers is None
    assert quantize_int8(model).fused_layers is None


def test_fused_prefill_and_decode_compute_what_the_python_loop_computes(tiny_checkpoint):
    fused = prepare_for_serving(load_checkpoint(tiny_checkpoint).model, "int8")
    plain = _without_fusion(fused)
    ids = torch.randint(3, fused.config.vocab_size, (3, 21), generator=torch.Generator().manual_seed(4))
    caches = [KVCache(fused.config, 5, 96) for _ in range(2)]
    with torch.inference_mode():
        # Rows at different offsets, in slots 1..3 (not the first), then two decode steps.
        start = torch.tensor([0, 4, 9])
        outs = [m.forward_cached(ids, start, c, 1) for m, c in zip((fused, plain), caches, strict=True)]
        assert _relative(*outs) < 5e-3
        assert _relative(caches[0].k, caches[1].k) < 5e-3 and _relative(caches[0].v, caches[1].v) < 5e-3
        assert torch.equal(
            caches[0].k[:, [0, 4]], torch.zeros_like(caches[0].k[:, [0, 4]])
        )  # other slots untouched
        for step in range(2):
            token, position = ids[:, step : step + 1], start + 21 + step
            outs = [
                m.forward_cached(token, position, c, 1) for m, c in zip((fused, plain), caches, strict=True)
            ]
            assert _relative(*outs) < 5e-3
            assert torch.equal(outs[0].argmax(-1), outs[1].argmax(-1))


def test_a_fused_decode_row_is_the_same_bits_alone_and_in_a_batch(tiny_checkpoint):
    model = prepare_for_serving(load_checkpoint(tiny_checkpoint).model, "int8")
    ids = torch.randint(3, model.config.vocab_size, (4, 12), generator=torch.Generator().manual_seed(5))
    start = torch.tensor([0, 2, 7, 30])
    with torch.inference_mode():
        together_cache = KVCache(model.config, 4, 64)
        model.forward_cached(ids, start, together_cache, 0)
        together = model.forward_cached(ids[:, :1], start + 12, together_cache, 0)
        for row in range(4):
            alone_cache = KVCache(model.config, 1, 64)
            model.forward_cached(ids[row : row + 1], start[row : row + 1], alone_cache, 0)
            alone = model.forward_cached(ids[row : row + 1, :1], start[row : row + 1] + 12, alone_cache, 0)
            assert torch.equal(alone[0], together[row])


def _greedy(model, prompts, tokens: int) -> list[list[int]]:
    engine = Engine(model, EngineConfig(max_batch=4), eos_token_ids=[])
    engine.start()
    try:
        params = SamplingParams(temperature=0, max_tokens=tokens)
        return [engine.generate(prompt, params)[0].token_ids for prompt in prompts]
    finally:
        engine.shutdown()


def test_the_shipped_model_greedy_text_is_the_same_fused_or_not():
    loaded = load_checkpoint(SHIPPED)
    prompts = [
        loaded.tokenizer.encode(text) for text in ("计算：12+7=", "What is 6 times 7?", "Once upon a time")
    ]
    fused = prepare_for_serving(loaded.model, "int8")
    assert fused.fused_layers is not None
    assert _greedy(fused, prompts, 24) == _greedy(_without_fusion(fused), prompts, 24)


def test_a_prebuilt_kernel_loads_without_a_compiler(tmp_path):
    """The Docker image's path: TINYLLM_NATIVE_PATH names the build, and no compiler is on the machine."""
    import os
    import subprocess
    import sys

    from model import native

    module = load_kernel()
    assert module is not None
    env = {**os.environ, "TINYLLM_NATIVE_PATH": module.__file__, "CXX": "/nonexistent/c++"}
    env["TORCH_EXTENSIONS_DIR"] = str(tmp_path)  # an empty build cache: building would have to compile
    code = (
        "from model.native import load_kernel; m = load_kernel(); "
        f"assert m is not None and m.__file__ == {module.__file__!r}, m; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert not any(tmp_path.iterdir()), "nothing was built"
    assert "TINYLLM_NATIVE_PATH" in native.ENVIRONMENT
