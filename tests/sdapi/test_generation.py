"""txt2img (and png-info of its result), img2img with a mask, extras and rembg through `webuiapi`, answered as
A1111 answers, each a job of the caller's that the ESD job list shows."""

from __future__ import annotations

import io

import webuiapi
from PIL import Image, ImageChops, ImageStat

from tests.sdapi.conftest import WebUIServer


def test_txt2img_answers_like_the_webui_and_is_a_job_of_the_caller(webui: WebUIServer):
    api = webui.client()
    result = api.txt2img(prompt="a red cube", negative_prompt="blurry", width=64, height=64, seed=7, steps=2)

    assert [image.size for image in result.images] == [(64, 64)]
    assert result.info["seed"] == 7 and result.info["steps"] == 2  # the worker's infotext fields, as JSON
    assert result.parameters["prompt"] == "a red cube" and result.parameters["width"] == 64
    jobs = webui.esd.get("/prod/inferences", user="api", params={"type": "txt2img", "username": "alice"})
    listed = jobs.json()["data"]["inferences"]
    assert [(j["owner_group_or_role"], j["status"], j["inference_type"]) for j in listed][:1] == [
        (["alice"], "succeed", "Real-time")
    ]
    assert result.json.get("images") and listed[0]["InferenceJobId"]
    png = Image.open(io.BytesIO(webui.esd.http.get(_result_url(webui, listed[0]["InferenceJobId"])).content))
    assert "Steps: 2" in png.info["parameters"]

    fields = api.png_info(result.image).json["parameters"]  # the infotext read back into fields
    read_back = (fields["Prompt"], fields["Negative prompt"], fields["Seed"], fields["Size-1"])
    assert read_back == ("a red cube", "blurry", "7", "64")


def _result_url(webui: WebUIServer, job_id: str) -> str:
    view = webui.esd.get(f"/prod/inferences/{job_id}", user="api").json()["data"]
    return view["img_presigned_urls"][0]


def test_img2img_with_a_mask_repaints_only_the_masked_half_with_a_token(webui: WebUIServer):
    api = webui.client(token=webui.token)
    source = Image.new("RGB", (64, 64), (40, 120, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # left half white: repaint there

    result = api.img2img(
        images=[source], mask_image=mask, prompt="grass", width=64, height=64, denoising_strength=0.9, mask_blur=0
    )

    image = result.image.convert("RGB")
    assert image.size == (64, 64)
    diff = ImageChops.difference(image, source)
    left, right = diff.crop((0, 0, 28, 64)), diff.crop((36, 0, 64, 64))
    assert sum(ImageStat.Stat(right).mean) < 3  # kept: the WebUI pastes the original outside the mask
    assert sum(ImageStat.Stat(left).mean) > 10


def test_extras_upscale_one_image_and_a_batch_with_the_webui_upscaler_name(webui: WebUIServer):
    api = webui.client()
    image = Image.new("RGB", (24, 16), (200, 30, 30))

    single = api.extra_single_image(image=image, upscaler_1="R-ESRGAN 2x+", upscaling_resize=2)
    batch = api.extra_batch_images(images=[image, image.resize((8, 8))], upscaler_1="R-ESRGAN 2x+", upscaling_resize=2)

    assert single.image.size == (48, 32)
    assert [i.size for i in batch.images] == [(48, 32), (16, 16)]
    assert "R-ESRGAN 2x+" in single.info  # html_info: the WebUI's summary of what ran


def test_rembg_as_the_extension_serves_it(webui: WebUIServer):
    api = webui.client()
    image = Image.new("RGB", (32, 32), (10, 200, 10))

    result = webuiapi.RemBGInterface(api).rembg(input_image=image, model="u2net_human_seg", return_mask=True)

    assert result.image.size == (32, 32) and result.image.mode == "L"  # the mask, as asked
