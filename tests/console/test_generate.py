"""The Generate page in a real browser: txt2img with a live preview and its image, cancel, a failed job's message."""

from __future__ import annotations

import json

from tests.console.conftest import ADMIN, ADMIN_PASSWORD, screenshot, sign_in_with_token


def _open_generate(page, console_server, tiny_model, endpoint) -> str:
    token = console_server.token(ADMIN, ADMIN_PASSWORD)
    sign_in_with_token(page, token, "generate")
    page.wait_for_selector("#generate-form")
    page.select_option("#generate-form select[name=model]", tiny_model)
    page.select_option("#generate-form select[name=endpoint]", endpoint)
    for name, value in {"width": "64", "height": "64", "steps": "6", "preview_every": "1", "seed": "1234"}.items():
        page.fill(f"#generate-form input[name={name}]", value)
    return token


def test_txt2img_shows_the_live_preview_then_the_image_with_its_infotext(page, console_server, tiny_model, endpoint):
    token = _open_generate(page, console_server, tiny_model, endpoint)
    page.fill("#generate-form textarea[name=prompt]", "a tiny red cube")
    page.click("#generate-submit")
    page.wait_for_selector("#job-results .result-image", timeout=120_000)  # the session's first job may load the model
    # the preview the job made while sampling is shown (a loaded JPEG), then the final PNG
    preview = page.locator("#job-preview")
    assert preview.is_visible() and "/preview/" in preview.get_attribute("src")
    assert page.evaluate("document.querySelector('#job-preview').naturalWidth") > 0
    assert page.evaluate("document.querySelector('#job-results .result-image').naturalWidth") == 64
    assert "a tiny red cube" in page.inner_text(".infotext") and "Seed: 1234" in page.inner_text(".infotext")
    assert "Done" in page.inner_text("#job-status")
    screenshot(page, "generate-result")
    # "use these settings again" restores the job's prompt and seed after the form was changed
    page.fill("#generate-form textarea[name=prompt]", "something else")
    page.fill("#generate-form input[name=seed]", "-1")
    page.click(".use-settings")
    assert page.input_value("#generate-form textarea[name=prompt]") == "a tiny red cube"
    assert page.input_value("#generate-form input[name=seed]") == "1234"
    page.click(".send-img2img")
    page.wait_for_selector("#img2img-fields .mask-image[src^='data:image/png']")
    assert page.input_value("#generate-form select[name=mode]") == "img2img"
    # inpaint: a stroke painted on the image becomes the mask of an img2img job that the worker runs
    canvas = page.locator("#img2img-fields .mask-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    page.fill("#generate-form input[name=steps]", "2")
    page.fill("#generate-form input[name=preview_every]", "0")
    page.click("#generate-submit")
    page.wait_for_selector("#job-results .result-image", timeout=60_000)  # the last images went at the submit
    newest = console_server.api("GET", "/inferences", token, params={"type": "img2img", "limit": 1}).json()["data"]
    sent = json.loads(newest["inferences"][0]["payload_string"])
    assert sent["mask"].startswith("data:image/png;base64,") and sent["init_images"][0].startswith("data:image/png")
    assert page.evaluate("sessionStorage.getItem('openesd.generate.job')") is None  # kept only while it runs
    assert "Denoising strength: 0.75" in page.inner_text("#job-results .infotext")
    screenshot(page, "generate-inpaint")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "generate-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than a phone


def test_a_long_job_is_cancelled_from_the_page(page, console_server, tiny_model, endpoint):
    _open_generate(page, console_server, tiny_model, endpoint)
    page.fill("#generate-form textarea[name=prompt]", "a long one")
    page.fill("#generate-form input[name=steps]", "150")
    page.fill("#generate-form input[name=n_iter]", "50")
    page.fill("#generate-form input[name=preview_every]", "0")
    page.click("#generate-submit")
    page.wait_for_selector("#job-status:has-text('Sampling')", timeout=120_000)
    page.click("#job-cancel")
    page.wait_for_selector("#job-status .badge:text('cancelled')", timeout=30_000)
    assert "Cancelled by root" in page.inner_text("#job-status")
    assert page.locator("#job-results .result-image").count() == 0
    screenshot(page, "generate-cancelled")


def test_an_unknown_sampler_shows_the_servers_message_next_to_the_field_and_keeps_the_prompt(
    page, console_server, tiny_model, endpoint
):
    _open_generate(page, console_server, tiny_model, endpoint)
    # refused by the API (no job): the unknown LoRA's message goes next to the prompt that names it
    page.fill("#generate-form textarea[name=prompt]", "keep me <lora:nolora:1>")
    page.click("#generate-submit")
    page.wait_for_selector("[data-error-for=prompt]:has-text('nolora.safetensors, type Lora is not found')")
    assert page.locator("#job").is_hidden()
    page.fill("#generate-form textarea[name=prompt]", "keep me")
    page.fill("#generate-form input[name=sampler_name]", "Nope Sampler")
    page.click("#generate-submit")
    slot = page.locator("[data-error-for=sampler_name]")
    slot.wait_for(state="visible", timeout=120_000)
    page.wait_for_function("document.querySelector('[data-error-for=sampler_name]').textContent.length > 0")
    assert "Nope Sampler" in slot.inner_text() and "Euler" in slot.inner_text()  # the server's list of valid ones
    assert page.input_value("#generate-form textarea[name=prompt]") == "keep me"
    screenshot(page, "generate-error")
    page.reload()  # what was typed survives a reload too
    page.wait_for_selector("#generate-form")
    assert page.input_value("#generate-form textarea[name=prompt]") == "keep me"


def test_extras_upscales_an_image_and_says_when_no_background_model_exists(page, console_server, endpoint, tmp_path):
    from PIL import Image

    source = tmp_path / "small.png"
    Image.new("RGB", (48, 32), (200, 30, 30)).save(source)
    sign_in_with_token(page, console_server.token(ADMIN, ADMIN_PASSWORD), "generate")
    page.select_option("#extras-form select[name=task_type]", "rembg")
    assert page.locator("#no-rembg").is_visible()  # no rembg model was uploaded in this server
    page.select_option("#extras-form select[name=task_type]", "extra-single-image")
    page.set_input_files("#extras-form input[name=image]", str(source))
    page.select_option("#extras-form select[name=upscaler_1]", "Lanczos")
    page.fill("#extras-form input[name=upscaling_resize]", "2")
    page.click("#extras-submit")
    page.wait_for_selector("#extras-job-results .result-image", timeout=60_000)
    sizes = "[...document.querySelectorAll('#extras-job-results img')].map(i => [i.naturalWidth, i.naturalHeight])"
    assert page.evaluate(sizes) == [[96, 64]]
    screenshot(page, "generate-extras")
