"""Benchmark: the FLUX.1 transformer stored as fp8 (or GGUF Q8_0) against the same weights in full precision.

The transformer has FLUX.1-dev's real width (3072, 24 heads of 128) and `--double`/`--single` blocks
(the real model has 19 and 38), random weights. Both sides run the same inputs in the same process;
prints the parameter bytes and the seconds per forward of each, and the ratios against full precision
(bytes: < 1 is smaller; time: > 1 is slower). On the CPU it computes in fp32, on CUDA in bf16.

    python bench/flow_quant.py --tokens 256 --repeats 3           # CPU (a few GB of RAM)
    python bench/flow_quant.py --double 19 --single 38 --tokens 4096   # GPU: FLUX.1-dev at 1024x1024
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--double", type=int, default=1, help="double-stream blocks (FLUX.1: 19)")
    parser.add_argument("--single", type=int, default=1, help="single-stream blocks (FLUX.1: 38)")
    parser.add_argument("--tokens", type=int, default=256, help="image tokens (1024x1024: 4096)")
    parser.add_argument("--text", type=int, default=128, help="text tokens (FLUX.1-dev: 512)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gguf", action="store_true", help="also GGUF Q8_0 (needs the gguf package)")
    return parser.parse_args()


def main() -> None:
    import torch
    from diffusers import FluxTransformer2DModel

    from openesd.generation.quant import load_flow_transformer
    from tests.support.flow_files import flux_to_bfl

    args = parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    config = {"num_layers": args.double, "num_single_layers": args.single, "guidance_embeds": True}
    full = FluxTransformer2DModel(**config).to(dtype).eval().requires_grad_(False)
    bfl = flux_to_bfl(full)
    config = dict(full.config)
    sides = {"full": full, "fp8": load_flow_transformer(dict(bfl), "flux", config, "fp8", dtype)}
    if args.gguf:
        from tests.support.gguf_files import write_gguf

        folder = Path(tempfile.mkdtemp())
        path = write_gguf({k: v.float() for k, v in bfl.items()}, folder / "flux-Q8_0.gguf")
        sides["gguf Q8_0"] = load_flow_transformer(path, "flux", config, "auto", dtype)
    del bfl
    inputs = _inputs(args, device, dtype)
    results = {}
    for name, model in sides.items():
        model.to(device)
        results[name] = (_bytes(model), _seconds(model, inputs, args.repeats, device))
        model.to("cpu")
    base_bytes, base_seconds = results["full"]
    print(f"{args.double} double + {args.single} single blocks, {args.tokens}+{args.text} tokens, {device} {dtype}")
    for name, (size, seconds) in results.items():
        print(
            f"{name:10s} {size / 1e9:7.3f} GB  {seconds:8.3f} s/forward  "
            f"bytes x{size / base_bytes:.3f}  time x{seconds / base_seconds:.3f}"
        )


def _inputs(args: argparse.Namespace, device: str, dtype: object) -> dict:
    import torch

    return {
        "hidden_states": torch.randn(1, args.tokens, 64, device=device, dtype=dtype),
        "encoder_hidden_states": torch.randn(1, args.text, 4096, device=device, dtype=dtype),
        "pooled_projections": torch.randn(1, 768, device=device, dtype=dtype),
        "timestep": torch.tensor([0.5], device=device, dtype=dtype),
        "guidance": torch.tensor([3.5], device=device, dtype=dtype),
        "img_ids": torch.zeros(args.tokens, 3, device=device),
        "txt_ids": torch.zeros(args.text, 3, device=device),
        "return_dict": False,
    }


def _bytes(model: object) -> int:
    tensors = [*model.parameters(), *model.buffers()]  # type: ignore[attr-defined]
    return sum(t.numel() * t.element_size() for t in tensors)


def _seconds(model: object, inputs: dict, repeats: int, device: str) -> float:
    import torch

    with torch.inference_mode():
        model(**inputs)  # type: ignore[operator]  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            model(**inputs)  # type: ignore[operator]
        if device == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


if __name__ == "__main__":
    main()
