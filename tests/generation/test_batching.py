"""Jobs run together as one UNet batch (`Generator.run_together`) give each job the bytes it gets alone."""

from __future__ import annotations

from openesd.generation import GenerationRequest
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import run, txt2img_payload


def together(generator, payloads: list[dict], models: dict, progress=None) -> list:
    runs = [(GenerationRequest("txt2img", p, models), (progress or {}).get(i), None) for i, p in enumerate(payloads)]
    return generator.run_together(runs)


def counting_unet_calls(generator, models, monkeypatch) -> list[int]:
    """Batch sizes of the real UNet's calls (the loaded checkpoint's forward)."""
    from openesd.generation import job as jobs

    unet = generator._load(jobs.select_checkpoint(models, None)).pipe.unet
    sizes: list[int] = []
    plain = type(unet).forward

    def forward(self, sample, *args, **kwargs):
        sizes.append(sample.shape[0])
        return plain(self, sample, *args, **kwargs)

    monkeypatch.setattr(type(unet), "forward", forward)
    return sizes


JOBS = [
    txt2img_payload(seed=1, cfg_scale=7),
    txt2img_payload(seed=2, prompt="a blue bird on a branch", cfg_scale=4.5),
    txt2img_payload(seed=3, negative_prompt="dark, grainy", cfg_scale=9, batch_size=2),
]


def test_jobs_together_give_the_bytes_they_give_alone_in_fewer_unet_calls(generator, sd15_models, monkeypatch):
    alone = [run(generator, "txt2img", p, sd15_models).images for p in JOBS]
    sizes = counting_unet_calls(generator, sd15_models, monkeypatch)
    results = together(generator, JOBS, sd15_models)
    assert [r.images for r in results] == alone
    assert sizes == [8, 8]  # two steps, each one call: (1 + 1 + 2 images) x cond/uncond


def test_a_lora_job_batch_matches_alone(generator, sd15_models, tmp_path):
    models = {**sd15_models, "Lora": [ta.write_kohya_lora(tmp_path / "style.safetensors")]}
    payloads = [txt2img_payload(seed=s, prompt=f"a red fox {s} <lora:style:0.8>") for s in (5, 6)]
    alone = [run(generator, "txt2img", p, models).images for p in payloads]
    assert [r.images for r in together(generator, payloads, models)] == alone


def test_hires_fix_jobs_batch_matches_alone(generator, sd15_models):
    hires = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.6}
    payloads = [txt2img_payload(seed=8, **hires), txt2img_payload(seed=9, prompt="a cat", cfg_scale=5, **hires)]
    alone = [run(generator, "txt2img", p, sd15_models).images for p in payloads]
    assert [r.images for r in together(generator, payloads, sd15_models)] == alone


def test_a_failing_job_leaves_the_others_of_its_batch_correct(generator, sd15_models):
    alone = [run(generator, "txt2img", p, sd15_models).images for p in (JOBS[0], JOBS[2])]

    def fail_at_second_call(step: int, total: int) -> None:
        if step >= 1:
            raise RuntimeError("lost the device")

    results = together(generator, JOBS, sd15_models, progress={1: fail_at_second_call})
    assert isinstance(results[1], RuntimeError) and "lost the device" in str(results[1])
    assert [results[0].images, results[2].images] == alone


def test_invalid_job_fails_alone_with_its_message(generator, sd15_models):
    from openesd.generation import GenerationError

    results = together(generator, [JOBS[0], txt2img_payload(sampler_name="Nope")], sd15_models)
    assert results[0].images == run(generator, "txt2img", JOBS[0], sd15_models).images
    assert isinstance(results[1], GenerationError) and "Nope" in str(results[1])


def test_cfg_1_job_runs_its_calls_alone_and_still_matches(generator, sd15_models, monkeypatch):
    payloads = [txt2img_payload(seed=4, cfg_scale=1), JOBS[0]]
    alone = [run(generator, "txt2img", p, sd15_models).images for p in payloads]
    sizes = counting_unet_calls(generator, sd15_models, monkeypatch)
    assert [r.images for r in together(generator, payloads, sd15_models)] == alone
    assert sorted(sizes) == [1, 1, 2, 2]


def test_one_job_together_is_the_job_alone(generator, sd15_models):
    alone = run(generator, "txt2img", JOBS[0], sd15_models).images
    assert together(generator, JOBS[:1], sd15_models)[0].images == alone
