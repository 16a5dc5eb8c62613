"""The Training page in a real browser: a kohya folder's upload and its problems, a tiny LoRA trained from the
page with its loss chart drawn from the live events, and "Try this LoRA"."""

from __future__ import annotations

from tests.console.conftest import ADMIN, ADMIN_PASSWORD, screenshot, sign_in_with_token
from tests.training.conftest import make_dataset

# The smallest training that still trains (tests/trainings' TINY): 2 images x 2 repeats x 2 epochs = 8 steps.
ADVANCED = """enable_bucket = false
optimizer_type = "AdamW"
lr_scheduler = "constant"
mixed_precision = "no"
save_precision = "float"
seed = 3"""


def endless_training(model: str, dataset: str) -> dict:
    """A training that would run for ever: only Stop ends it."""
    tiny = {"resolution": "32,32", "enable_bucket": False, "network_dim": 4, "optimizer_type": "AdamW"}
    return {
        "lora_train_type": "kohya",
        "params": {
            "training_params": {
                "training_instance_type": "cpu",
                "model": model,
                "dataset": dataset,
                "fm_type": "sd_1_5",
            },
            "config_params": {
                "saving_arguments": {"output_name": "endless", "save_every_n_epochs": 1000},
                "training_arguments": {"max_train_epochs": 100000},
                "training": tiny | {"mixed_precision": "no", "save_precision": "float"},
            },
        },
    }


def upload_folder(page, folder) -> None:
    page.set_input_files("#dataset-upload input[type=file]", str(folder))
    page.click("#dataset-upload button[type=submit]")


def test_a_dataset_folder_is_uploaded_checked_and_trained_into_a_lora_with_a_live_loss_chart(
    page, console_server, tiny_model, tmp_path
):
    broken = tmp_path / "broken" / "1_bad"
    broken.mkdir(parents=True)
    (broken / "x.png").write_bytes(b"this is not a PNG file")
    cats = make_dataset(tmp_path / "cats", {"2_cat": [("a", (64, 64), "sks cat"), ("b", (64, 64), None)]})
    admin = console_server.token(ADMIN, ADMIN_PASSWORD)
    sign_in_with_token(page, admin, "training")

    upload_folder(page, broken.parent)
    problems = page.wait_for_selector("#dataset-upload .dataset-problems li")
    assert "x.png" in problems.inner_text()  # what the API found wrong, one line per problem
    screenshot(page, "training-dataset-problems")

    page.fill("#dataset-upload input[name=dataset_name]", "")  # named after the next folder
    upload_folder(page, cats)
    page.wait_for_selector("#dataset-detail button:text('Train on it')")
    assert page.input_value("#dataset-upload input[name=dataset_name]") == "cats"
    assert "2 image(s), 1 other file(s)" in page.inner_text("#dataset-detail")
    # what the API notes about an accepted dataset: b.png has no caption, so it trains with the concept name
    assert "no .txt caption" in page.inner_text("#dataset-detail .dataset-notes")
    page.click("#dataset-detail button:text('Train on it')")
    assert page.input_value("#training-form input[name=dataset]") == "cats"

    # Stop from the list: a training that would never end (it stops while the LoRA below trains)
    endless = console_server.api("POST", "/trainings", admin, json=endless_training(tiny_model, "cats"))
    assert endless.status_code == 201, endless.text
    page.reload()  # what was typed in the form survives
    page.click("#training-list tr:has-text('endless') button:text('Stop')")
    page.wait_for_selector("#toasts :text('Stopping the training')")

    form = "#training-form"
    for name, value in {
        "model": tiny_model,
        "output_name": "sks_cat_console",
        "max_train_epochs": "2",
        "training_instance_type": "cpu",
        "resolution": "32",
        "network_dim": "4",
        "network_alpha": "4",
        "unet_lr": "5e-2",
        "text_encoder_lr": "2e-2",
    }.items():
        page.fill(f"{form} [name={name}]", value)
    page.click(f"{form} summary")
    page.fill(f"{form} textarea[name=advanced]", "not a setting")
    page.click(f"{form} button[type=submit]")
    error = page.wait_for_selector(f"{form} [data-error-for=advanced]:not(:empty)")
    assert "line 1 'not a setting'" in error.inner_text()  # next to the field, nothing sent
    page.fill(f"{form} textarea[name=advanced]", ADVANCED)
    screenshot(page, "training-form")
    page.click(f"{form} button[type=submit]")

    page.wait_for_selector("#training-detail")
    assert "#/training?id=" in page.url
    page.wait_for_selector("#try-lora", timeout=120_000)  # Completed
    assert page.inner_text("#training-status") == "Completed"
    points = int(page.get_attribute("#loss-chart", "data-points"))
    assert points >= 2 and page.locator("#loss-chart circle").count() == points
    assert page.locator("#stop-training").count() == 0  # a finished training offers no Stop
    assert page.get_attribute("#training-progress", "value") == page.get_attribute("#training-progress", "max") == "8"
    screenshot(page, "training-done")

    page.click("#try-lora")
    page.wait_for_url(lambda url: url.endswith("#/generate?lora=sks_cat_console"))
    prompt = page.wait_for_selector("#generate-form textarea[name=prompt]")
    assert "<lora:sks_cat_console:1>" in prompt.input_value()

    page.goto("/console/#/training")
    row = page.wait_for_selector("#training-list tr:has-text('sks_cat_console')")
    assert "Completed" in row.inner_text()
    page.wait_for_selector("#training-list tr:has-text('endless') :text-is('Stopped')")  # it stopped meanwhile
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "training-phone")
