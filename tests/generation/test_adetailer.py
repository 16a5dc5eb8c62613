"""ADetailer: its API arguments, the YOLOv8 ONNX decoding, the masks, and the inpaint passes on the tiny SD 1.5."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.errors import ModelError, PayloadError, UnsupportedFeature
from openesd.generation.adetailer.args import VERSION, infotext_params, read_adetailer
from openesd.generation.adetailer.detect import YoloDetector, find_model
from openesd.generation.adetailer.masks import build_masks
from openesd.generation.tasks.adetailer import ad_prompts
from tests.support.generation_jobs import b64png, info, png, run, txt2img_payload
from tests.support.tiny_yolo import write_tiny_yolo

SIZE = 64  # the job's image; letterboxed to 640 with a gain of 10 and no padding
BOX = (16, 16, 32, 32)  # what the tiny detector finds, in image pixels


def _centre(box, gain=10.0, score=0.9):
    x1, y1, x2, y2 = (v * gain for v in box)
    return ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, score)


@pytest.fixture(scope="module")
def face_model(tmp_path_factory):
    # BOX at 0.9; a near-copy at 0.8 that NMS drops; a box below the default confidence 0.3.
    near = _centre((17, 17, 32, 32), score=0.8)
    low = _centre((45, 45, 60, 60), score=0.2)
    return write_tiny_yolo(tmp_path_factory.mktemp("ad") / "face_yolov8n.onnx", [_centre(BOX), near, low])


@pytest.fixture(scope="module")
def empty_model(tmp_path_factory):
    return write_tiny_yolo(tmp_path_factory.mktemp("ad") / "nothing.onnx", [_centre(BOX, score=0.1)])


def _tab(**overrides):
    return {"ad_model": "face_yolov8n.pt", **overrides}


# -- arguments -------------------------------------------------------------------------------------------


def test_new_form_with_defaults_and_infotext():
    options = read_adetailer([True, False, _tab(), {"ad_model": "None"}])
    assert options is not None and len(options.active) == 1
    tab = options.tabs[0]
    assert (tab["ad_confidence"], tab["ad_dilate_erode"], tab["ad_mask_blur"]) == (0.3, 4, 4)
    assert (tab["ad_denoising_strength"], tab["ad_inpaint_only_masked_padding"]) == (0.4, 32)
    assert infotext_params(options) == {
        "ADetailer model": "face_yolov8n.pt",
        "ADetailer confidence": 0.3,
        "ADetailer dilate erode": 4,
        "ADetailer mask blur": 4,
        "ADetailer denoising strength": 0.4,
        "ADetailer inpaint only masked": True,
        "ADetailer inpaint padding": 32,
        "ADetailer version": VERSION,
    }


def test_second_tab_entries_carry_its_ordinal():
    options = read_adetailer([True, _tab(), _tab(ad_model="hand_yolov8n.pt", ad_prompt="a hand", ad_mask_k=2)])
    params = infotext_params(options)
    assert params["ADetailer model 2nd"] == "hand_yolov8n.pt"
    assert params["ADetailer prompt 2nd"] == "a hand"
    assert params["ADetailer mask only top k 2nd"] == 2
    assert params["ADetailer method to decide top k masks 2nd"] == "Area"
    assert "ADetailer prompt" not in params


def test_older_forms_are_read():
    options = read_adetailer(
        [{"ad_model": "face_yolov8n.pt", "ad_conf": 50, "ad_inpaint_full_res": False, "ad_mask_k_largest": 1}]
    )
    tab = options.tabs[0]
    assert (tab["ad_confidence"], tab["ad_inpaint_only_masked"], tab["ad_mask_k"]) == (0.5, False, 1)
    assert options.skip_img2img is False
    assert "ADetailer inpaint padding" not in infotext_params(options)
    assert read_adetailer([True, True, _tab()]).skip_img2img is True


@pytest.mark.parametrize("args", [[False, _tab()], [True, {"ad_model": "None"}], [], [True, _tab(ad_tab_enable=False)]])
def test_disabled_forms(args):
    options = read_adetailer(args)
    assert options is None or options.active == []


@pytest.mark.parametrize(
    ("tab", "error", "named"),
    [
        (_tab(ad_bogus=1), PayloadError, "ad_bogus"),
        (_tab(ad_confidence=1.5), PayloadError, "ad_confidence"),
        (_tab(ad_mask_merge_invert="Both"), PayloadError, "Merge and Invert"),
        (_tab(ad_model="mediapipe_face_full"), UnsupportedFeature, "mediapipe"),
        (_tab(ad_restore_face=True), UnsupportedFeature, "ad_restore_face"),
        (_tab(ad_controlnet_model="control_v11p_sd15_inpaint"), UnsupportedFeature, "ad_controlnet_model"),
        (_tab(ad_use_checkpoint=True, ad_checkpoint="other.safetensors"), UnsupportedFeature, "ad_checkpoint"),
        (_tab(ad_use_noise_multiplier=True, ad_noise_multiplier=1.2), UnsupportedFeature, "ad_noise_multiplier"),
        (_tab(ad_use_inpaint_width_height=True, ad_inpaint_width=500), PayloadError, "multiple of 8"),
    ],
)
def test_refusals_name_the_key(tab, error, named):
    with pytest.raises(error, match=named):
        read_adetailer([True, False, tab])


def test_positional_list_is_refused():
    with pytest.raises(PayloadError, match="args\\[1\\]"):
        read_adetailer([True, "face_yolov8n.pt"])


# -- detection and masks ---------------------------------------------------------------------------------


def test_detector_decodes_boxes_with_confidence_and_nms(face_model):
    found = YoloDetector(face_model).detect(Image.new("RGB", (SIZE, SIZE)), 0.3)
    assert [d.box for d in found] == [list(map(float, BOX))]
    assert found[0].confidence == pytest.approx(0.9)
    assert len(YoloDetector(face_model).detect(Image.new("RGB", (SIZE, SIZE)), 0.1)) == 2  # the low box too


def test_detector_undoes_the_letterbox_of_a_wide_image(tmp_path):
    # 256x128 -> gain 2.5, 160 rows of grey above and below: image box (40, 20)-(80, 60).
    model = write_tiny_yolo(tmp_path / "wide.onnx", [(150.0, 260.0, 100.0, 100.0, 0.9)])
    found = YoloDetector(model).detect(Image.new("RGB", (256, 128)), 0.3)
    assert found[0].box == [40.0, 20.0, 80.0, 60.0]


def test_segmentation_model_gives_its_mask(tmp_path):
    protos = np.full((32, 160, 160), -1.0, np.float32)
    protos[0, 40:60, 40:60] = 1.0  # letterbox rows/cols 160..240 of 640: image pixels 16..24 of 64
    model = write_tiny_yolo(tmp_path / "person_yolov8n-seg.onnx", [_centre(BOX)], protos=protos)
    mask = np.asarray(YoloDetector(model).detect(Image.new("RGB", (SIZE, SIZE)), 0.3)[0].mask) > 127
    assert mask[17:23, 17:23].all() and not mask[26:32, 26:32].any() and not mask[:14].any()


def test_masks_dilate_offset_merge_invert_as_opencv_and_pil(face_model):
    det = YoloDetector(face_model).detect(Image.new("RGB", (SIZE, SIZE)), 0.3)[0]
    tab = read_adetailer([_tab(ad_dilate_erode=4)]).tabs[0]
    (mask,) = build_masks([det], tab, (SIZE, SIZE))
    expected = np.zeros((SIZE, SIZE), np.uint8)
    expected[15:35, 15:35] = 255  # PIL fills 16..32 inclusive; a 4x4 kernel anchored at 2 adds 1 before, 2 after
    assert np.array_equal(np.asarray(mask), expected)
    tab = read_adetailer(
        [_tab(ad_dilate_erode=0, ad_x_offset=3, ad_y_offset=2, ad_mask_merge_invert="Merge and Invert")]
    ).tabs[0]
    (mask,) = build_masks([det], tab, (SIZE, SIZE))
    expected = np.full((SIZE, SIZE), 255, np.uint8)
    expected[14:31, 19:36] = 0  # moved 3 right and 2 up, then inverted
    assert np.array_equal(np.asarray(mask), expected)


def test_masks_filter_by_ratio_and_top_k(face_model):
    found = YoloDetector(face_model).detect(Image.new("RGB", (SIZE, SIZE)), 0.1)  # BOX (1/16 of the image) and the low
    areas = lambda tab: [int((np.asarray(m) > 0).sum()) for m in build_masks(found, tab, (SIZE, SIZE))]  # noqa: E731
    assert areas(read_adetailer([_tab(ad_dilate_erode=0)]).tabs[0]) == [17 * 17, 16 * 16]
    assert areas(read_adetailer([_tab(ad_dilate_erode=0, ad_mask_k=1)]).tabs[0]) == [17 * 17]
    conf = read_adetailer([_tab(ad_dilate_erode=0, ad_mask_k=1, ad_mask_filter_method="Confidence")]).tabs[0]
    assert areas(conf) == [17 * 17]
    assert areas(read_adetailer([_tab(ad_dilate_erode=0, ad_mask_max_ratio=0.06)]).tabs[0]) == [16 * 16]


def test_missing_model_names_the_file_and_type():
    with pytest.raises(ModelError, match="face_yolov8s.onnx.*'ADetailer'"):
        find_model({"ADetailer": []}, "face_yolov8s.pt")


# -- the inpaint passes ----------------------------------------------------------------------------------


def _payload(**ad):
    # One step for the job, two for the passes (ad_use_steps): the cheapest run that inpaints at 0.9.
    tab = {"ad_model": "face_yolov8n.pt", "ad_denoising_strength": 0.9, "ad_use_steps": True, "ad_steps": 2, **ad}
    return txt2img_payload(steps=1, alwayson_scripts={"ADetailer": {"args": [True, False, tab]}})


def _pixels(data) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def plain(generator, sd15_checkpoint):
    result = run(generator, "txt2img", txt2img_payload(steps=1), {"Stable-diffusion": [sd15_checkpoint]})
    return _pixels(result.images[0])


def test_txt2img_repaints_the_detected_box_and_nothing_else(generator, sd15_models, face_model, plain):
    models = {**sd15_models, "ADetailer": [face_model]}
    seen = []
    detailed = run(generator, "txt2img", _payload(), models, lambda s, t: seen.append((s, t)))
    diff = np.abs(_pixels(detailed.images[0]) - plain).max(axis=2)
    outside = np.ones((SIZE, SIZE), bool)
    outside[15 - 14 : 35 + 14, 15 - 14 : 35 + 14] = False  # the dilated box plus the blur's reach
    assert diff[outside].max() == 0
    assert diff[18:30, 18:30].mean() > 10
    assert seen[:3] == [(1, 1), (2, 3), (3, 3)] and seen[-1] == (3, 3)  # 1 step, then the pass's int(0.9 * 2) + 1
    text = png(detailed.images[0]).info["parameters"]
    assert "ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, ADetailer dilate erode: 4" in text
    assert f"ADetailer version: {VERSION}" in text
    assert info(detailed)["adetailer"] == ["1 masks on image 1 with 1st settings."]


def test_nothing_detected_leaves_the_image(generator, sd15_models, empty_model, plain):
    models = {**sd15_models, "ADetailer": [empty_model]}
    detailed = run(generator, "txt2img", _payload(ad_model="nothing.onnx"), models)
    assert np.array_equal(_pixels(detailed.images[0]), plain)
    assert "ADetailer model: nothing.onnx" in png(detailed.images[0]).info["parameters"]
    assert info(detailed)["adetailer"] == ["nothing detected on image 1 with 1st settings."]


def test_missing_model_fails_the_job(generator, sd15_models):
    with pytest.raises(ModelError, match="face_yolov8n.onnx"):
        run(generator, "txt2img", _payload(), sd15_models)


def test_prompt_syntax_sep_prompt_and_blank():
    assert ad_prompts("", "main") == ["main"]
    assert ad_prompts("a face [SEP] [SEP] [PROMPT], smile", "main") == ["a face", "main", "main, smile"]


def test_img2img_skip_img2img_details_the_init_image(generator, sd15_models, face_model):
    x = np.linspace(0, 255, SIZE, dtype=np.uint8)
    init = Image.fromarray(
        np.stack([np.tile(x, (SIZE, 1)), np.tile(x[:, None], (1, SIZE)), np.full((SIZE, SIZE), 90, np.uint8)], 2)
    )
    tab = {"ad_model": "face_yolov8n.pt", "ad_denoising_strength": 0.9, "ad_mask_blur": 0, "ad_dilate_erode": 0}
    tab.update(ad_use_steps=True, ad_steps=2)
    payload = txt2img_payload(
        steps=1,
        init_images=[b64png(init)],
        denoising_strength=0.75,
        alwayson_scripts={"ADetailer": {"args": [True, True, tab]}},
    )
    out = run(generator, "img2img", payload, {**sd15_models, "ADetailer": [face_model]})
    diff = np.abs(_pixels(out.images[0]) - np.asarray(init, dtype=np.int16)).max(axis=2)
    outside = np.ones((SIZE, SIZE), bool)
    outside[16:33, 16:33] = False  # the box itself: no dilation, no blur
    assert diff[outside].max() == 0
    assert diff[18:30, 18:30].mean() > 10


def test_an_uploaded_pickle_is_refused_with_the_export_command(tmp_path):
    pickle = tmp_path / "face_yolov8n.pt"
    pickle.write_bytes(b"not unpickled")
    with pytest.raises(ModelError, match="yolo export model=face_yolov8n.pt format=onnx"):
        find_model({"ADetailer": [pickle]}, "face_yolov8n.pt")


def test_skip_img2img_with_inpainting_is_refused(generator, sd15_models, face_model):
    payload = txt2img_payload(
        init_images=[b64png(Image.new("RGB", (SIZE, SIZE)))],
        mask=b64png(Image.new("L", (SIZE, SIZE), 255)),
        alwayson_scripts={"ADetailer": {"args": [True, True, {"ad_model": "face_yolov8n.pt"}]}},
    )
    with pytest.raises(UnsupportedFeature, match="skip_img2img"):
        run(generator, "img2img", payload, {**sd15_models, "ADetailer": [face_model]})
