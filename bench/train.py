"""Benchmark: our LoRA trainer vs a minimal diffusers + peft loop, same full-size SD 1.5 architecture and settings.

SD 1.5's real architecture with random weights is built in memory and saved as an A1111 single file,
so our loader runs too. Both sides: UNet LoRA (dim 32, alpha 16) on to_q/to_k/to_v/to_out.0,
AdamW, lr 1e-4 constant, latents and text embeddings precomputed, fp16 autocast with fp32 LoRA
weights on a GPU (fp32 on the CPU). Each side runs in its own process so peak memory is its own.
Prints iterations per second (after one warm-up step) and peak memory per batch size.

On a shared CPU a run measures the load more than the code: with as many threads as cores, a core
taken by another process stalls every op (one side, unchanged, has measured 0.03 to 0.47 it/s).
There, use one thread and several alternating runs per side, of which the best is printed.

    OMP_NUM_THREADS=1 python bench/train.py --size 128 --steps 6 --batches 1 --repeats 3   # CPU
    python bench/train.py --steps 30 --batches 1,8,16,24            # GPU, 512x512; batches that do not fit say so
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RANK, ALPHA, LR = 32, 16, 1e-4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="square training resolution")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run (the first is warm-up)")
    parser.add_argument("--batches", default="1,8", help="batch sizes, comma-separated; the largest that fits wins")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating; the best is printed")
    return parser.parse_args()


def _quiet() -> None:
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    warnings.filterwarnings("ignore")
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()


def make_dataset(root: Path, size: int, count: int) -> Path:
    import numpy as np
    from PIL import Image

    folder = root / "1_bench"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a photo of sks object number {i}")
    return root


def _peak(cuda: bool) -> float:
    """Peak GiB: allocated CUDA memory on a GPU, the process's peak resident memory on the CPU."""
    import resource

    import torch

    if cuda:
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_ours(checkpoint: Path, dataset: Path, args: dict, batch: int) -> dict:
    import torch

    from openesd.trainer import TrainingConfig, TrainingJob, train

    _quiet()
    cuda = torch.cuda.is_available()
    config = TrainingConfig.from_kohya(
        {
            "training": {
                "network_dim": RANK,
                "network_alpha": ALPHA,
                "learning_rate": LR,
                "network_train_unet_only": True,
                "optimizer_type": "AdamW",
                "lr_scheduler": "constant",
                "resolution": args["size"],
                "train_batch_size": batch,
                "max_train_steps": args["steps"],
                "cache_latents": True,
                "mixed_precision": "fp16" if cuda else "no",
                "seed": 0,
                "output_name": "bench",
                "gradient_checkpointing": args["gradient_checkpointing"],
            }
        },
        {},
    )
    marks: list[tuple[int, float]] = []

    def progress(p):
        marks.append((p.step, time.perf_counter()))

    import openesd.trainer.loop as trainer

    trainer.PROGRESS_EVERY = 10**9  # reports only at step 1 and at the end: no extra host syncs
    with tempfile.TemporaryDirectory() as out:
        train(TrainingJob(checkpoint, "sd_1_5", dataset, Path(out), config), progress=progress)
    (first, t0), (last, t1) = marks[0], marks[-1]
    return {"it_s": (last - first) / (t1 - t0), "peak_gib": _peak(cuda)}


def run_reference(checkpoint: Path, dataset: Path, args: dict, batch: int) -> dict:
    """The textbook loop (diffusers' train_text_to_image_lora.py, trimmed): peft on the UNet, AdamW, autocast."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict  # noqa: F401  (what a real loop saves with)

    from openesd.generation.models.loading import load_checkpoint

    _quiet()
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    pipe = load_checkpoint(checkpoint, "cpu", torch.float32).pipe
    unet, vae, text, tok = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    for m in (unet, vae, text):
        m.requires_grad_(False)
    unet.to(device, dtype=dtype)
    vae.to(device)
    text.to(device, dtype=dtype)
    unet.add_adapter(
        LoraConfig(
            r=RANK, lora_alpha=ALPHA, init_lora_weights="gaussian", target_modules=["to_k", "to_q", "to_v", "to_out.0"]
        )
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if args["gradient_checkpointing"]:
        unet.enable_gradient_checkpointing()
    unet.train()
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    images = sorted((dataset / "1_bench").glob("*.png"))
    latents, embeds = _precompute(images, vae, text, tok, device, dtype, args["size"])
    timings = []
    for step in range(args["steps"]):
        idx = [(step * batch + i) % len(images) for i in range(batch)]
        x, e = latents[idx], embeds[idx]
        noise = torch.randn_like(x)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch,), device=device)
        with torch.autocast(device, dtype=dtype, enabled=cuda):
            pred = unet(noise_scheduler.add_noise(x, noise, t), t, e).sample
        loss = F.mse_loss(pred.float(), noise.float())
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the usual per-step logging sync
        timings.append(time.perf_counter())
    return {"it_s": (len(timings) - 1) / (timings[-1] - timings[0]), "peak_gib": _peak(cuda)}


def _precompute(images, vae, text, tok, device, dtype, size):
    import numpy as np
    import torch
    from PIL import Image

    latents, embeds = [], []
    with torch.no_grad():
        for path in images:
            pixels = np.asarray(Image.open(path).convert("RGB").resize((size, size)), dtype=np.float32) / 127.5 - 1
            tensor = torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None].to(device)
            latents.append(vae.encode(tensor).latent_dist.sample() * vae.config.scaling_factor)
            ids = tok(
                [path.with_suffix(".txt").read_text()],
                padding="max_length",
                max_length=77,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            embeds.append(text(ids.to(device))[0])
    return torch.cat(latents), torch.cat(embeds)


def _child(side: str, checkpoint: Path, dataset: Path, args: dict, batch: int, queue) -> None:
    import torch

    runner = run_ours if side == "ours" else run_reference
    try:
        queue.put(runner(checkpoint, dataset, args, batch))
    except torch.OutOfMemoryError:
        queue.put({"error": "out of memory"})


def measure(side: str, checkpoint: Path, dataset: Path, args: dict, batch: int) -> dict:
    context = multiprocessing.get_context("spawn")  # a fresh process: its own peak memory, no CUDA state shared
    queue = context.Queue()
    process = context.Process(target=_child, args=(side, checkpoint, dataset, args, batch, queue))
    process.start()
    process.join()
    return queue.get() if not queue.empty() else {"error": f"exit code {process.exitcode}"}


def main() -> None:
    import torch

    from bench.generate import build_checkpoint

    options = parse_args()
    _quiet()
    args = {"size": options.size, "steps": options.steps, "gradient_checkpointing": options.gradient_checkpointing}
    batches = [int(b) for b in options.batches.split(",")]
    cuda = torch.cuda.is_available()
    print(
        f"SD 1.5 architecture, random weights, {options.size}x{options.size}, {options.steps} steps, "
        f"LoRA dim {RANK}, {'cuda fp16 autocast' if cuda else 'cpu fp32'}, torch {torch.__version__}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        components, checkpoint = build_checkpoint(False, Path(tmp), half=cuda)
        del components
        dataset = make_dataset(Path(tmp) / "data", options.size, max(batches) * 2)
        for batch in batches:
            runs: dict[str, list[dict]] = {"ours": [], "reference": []}
            for _ in range(options.repeats):  # alternating, so that load on a shared machine hits both alike
                for side, results in runs.items():
                    results.append(measure(side, checkpoint, dataset, args, batch))
            for side, results in runs.items():
                fitted = [r for r in results if "error" not in r]
                if not fitted:
                    print(f"batch {batch:3d}  {side:9s}  does not fit: {results[0]['error']}", flush=True)
                    continue
                result = max(fitted, key=lambda r: r["it_s"])
                print(
                    f"batch {batch:3d}  {side:9s}  {result['it_s']:.3f} it/s  "
                    f"{result['it_s'] * batch:.3f} images/s  peak {result['peak_gib']:.2f} GiB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
