"""The quality cost of int8: perplexity of the int8 serving copy against fp32, and top-1 agreement.

    python -m benchmarks.bench_int8_quality [--checkpoint DIR] [--chunks 12] [--text FILE ...]

Text: the checkpoint's model card and the repository README (or the ``--text`` files, e.g.
/usr/share/common-licenses/GPL-3, which every Debian ships), tokenized, cut into ``--chunks`` overlapping
windows of the model's context, scored in ONE batch (a batch-wide activation scale, as the previous int8
path had, degrades with what shares the batch; per-row scales do not). Rows: the serving int8 (two
activation passes) and the one-pass variant it replaced.
"""

from __future__ import annotations

import argparse
import copy
import warnings
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.inference import prepare_for_serving
from model.quantization import quantize_int8

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = ROOT / "checkpoints" / "tinyllm-default"


def perplexity(logits: torch.Tensor, ids: torch.Tensor) -> float:
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    return float(torch.exp(loss))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--chunks", type=int, default=12)
    parser.add_argument("--text", type=Path, nargs="*", help="score these files instead")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    loaded = load_checkpoint(args.checkpoint)
    paths = args.text or [args.checkpoint / "README.md", ROOT / "README.md"]
    texts = [p.read_text() for p in paths if p.exists()]
    ids = [t for text in texts for t in loaded.tokenizer.encode(text)]
    width = min(512, loaded.config.max_position_embeddings)
    windows = [ids[i : i + width] for i in range(0, len(ids) - width + 1, width // 2)][: args.chunks]
    if not windows:
        raise SystemExit("not enough text for one window")
    batch = torch.tensor(windows)
    with torch.inference_mode():
        fp32 = prepare_for_serving(loaded.model, "fp32")(batch)
        int8 = prepare_for_serving(loaded.model, "int8")(batch)
        layout = copy.deepcopy(loaded.model).to_serving_layout()
        one_pass = quantize_int8(layout, copy_model=False, residual=False).eval()(batch)
    p32 = perplexity(fp32, batch)
    print(f"# int8 quality: {args.checkpoint.name}, {batch.numel()} tokens in {len(windows)} windows\n")
    print(f"perplexity fp32 {p32:.2f}\n")
    print("| int8 | perplexity | ratio to fp32 | top-1 agreement |\n|---|---:|---:|---:|")
    for name, logits in (("two passes (serving)", int8), ("one pass", one_pass)):
        p8, agreement = (
            perplexity(logits, batch),
            float((fp32.argmax(-1) == logits.argmax(-1)).float().mean()),
        )
        print(f"| {name} | {p8:.2f} | {p8 / p32:.4f} | {agreement:.3f} |")


if __name__ == "__main__":
    main()
