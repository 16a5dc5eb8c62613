"""ControlNet preprocessors against references written here from sd-webui-controlnet's documented operations,
tiny random-weight annotators given as ControlNet-annotator files, and detected maps returned by a job."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.errors import ModelError, UnsupportedFeature
from openesd.generation.adapters import _control_images as images
from openesd.generation.adapters import preprocessors as pre
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import b64png, png, run, txt2img_payload

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")


def picture(h: int = 48, w: int = 80) -> np.ndarray:
    """Colour gradients, a dark bar and a bright disc: every module finds something; not a multiple of 64."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)
    rgb[h // 3 : h // 3 + 4, 5 : w - 5] = 20
    cv2.circle(rgb, (w * 2 // 3, h // 2), h // 5, (250, 240, 230), -1)
    return rgb


# -- references, from the extension's processor.py as documented (resize_image_with_pad and each module) --
def ref_pad(img: np.ndarray, res: int) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = img.shape[:2]
    k = res / min(h, w)
    size = (int(round(w * k)), int(round(h * k)))
    resized = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    ph, pw = (64 - size[1] % 64) % 64, (64 - size[0] % 64) % 64
    return np.pad(resized, ((0, ph), (0, pw), (0, 0)), mode="edge"), (size[1], size[0])


def three(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2) if grey.ndim == 2 else grey


def reference(module: str, img: np.ndarray, res: int, a: float) -> np.ndarray:
    padded, (th, tw) = ref_pad(img, res)
    crop = (slice(0, th), slice(0, tw))
    if module == "canny":
        return three(cv2.Canny(padded, 100, 200)[crop])
    if module == "invert":
        return 255 - img
    if module == "threshold":
        return three(np.where(padded.min(axis=2) > a, 255, 0).astype(np.uint8)[crop])
    if module == "scribble_xdog":
        f = padded.astype(np.float32)
        dog = cv2.GaussianBlur(f, (0, 0), 5.0) - cv2.GaussianBlur(f, (0, 0), 0.5)
        darkest = (255 - dog.min(axis=2)).clip(0, 255).astype(np.uint8)
        return three(np.where(2 * (255 - darkest) > a, 255, 0).astype(np.uint8)[crop])
    if module == "blur_gaussian":
        return cv2.GaussianBlur(padded[crop], (0, 0), a)
    if module == "tile_resample":
        return img if a < 1.1 else cv2.resize(img, (int(img.shape[1] / a), int(img.shape[0] / a)), None, 0, 0, 3)
    if module == "lineart_standard":
        f = padded.astype(np.float32)
        lines = (cv2.GaussianBlur(f, (0, 0), 6.0) - f).min(axis=2).clip(0, 255)
        lines = lines / max(16, np.median(lines[lines > 8])) * 127
        return three(lines.clip(0, 255).astype(np.uint8)[crop])
    if module == "t2ia_color_grid":
        small = cv2.resize(img, (res // 64, res // 64), interpolation=cv2.INTER_CUBIC)
        return cv2.resize(small, (res, res), interpolation=cv2.INTER_NEAREST)
    raise AssertionError(module)


DEFAULTS = {"canny": 0, "invert": 0, "threshold": 127, "scribble_xdog": 32, "blur_gaussian": 9.0}
DEFAULTS.update({"tile_resample": 1.0, "lineart_standard": 0, "t2ia_color_grid": 0})


@pytest.mark.parametrize("module", sorted(DEFAULTS))
@pytest.mark.parametrize("res", [64, 100])
def test_weight_free_module_equals_the_extensions_operation(module, res):
    img = picture()
    got = pre.preprocess(img, module, {"processor_res": res}, res, [])
    want = reference(module, img, res, DEFAULTS[module])
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() == 0


@pytest.mark.parametrize(
    ("module", "key", "value"),
    [("threshold", "threshold_a", 60), ("scribble_xdog", "threshold_a", 8), ("blur_gaussian", "threshold_a", 2.5)],
)
def test_threshold_a_is_used_and_minus_one_means_the_default(module, key, value):
    img = picture()
    default = pre.preprocess(img, module, {key: -1}, 64, [])
    assert np.array_equal(default, reference(module, img, 64, DEFAULTS[module]))
    custom = pre.preprocess(img, module, {key: value}, 64, [])
    assert np.array_equal(custom, reference(module, img, 64, value))
    assert not np.array_equal(custom, default)


@pytest.mark.parametrize(("module", "code", "channel"), [("recolor_luminance", 44, 0), ("recolor_intensity", 40, 2)])
def test_recolor_is_a_gamma_corrected_grey(module, code, channel):
    img = picture()  # the extension converts with BGR2LAB / BGR2HSV (codes 44, 40) although the image is RGB
    grey = cv2.cvtColor(img, code)[:, :, channel].astype(np.float32) / 255.0
    for gamma in (1.0, 0.5):
        want = three(((grey**gamma) * 255.0).clip(0, 255).astype(np.uint8))
        assert np.array_equal(pre.preprocess(img, module, {"threshold_a": gamma}, 512, []), want)


def test_tile_resample_downsamples_by_its_rate():
    img = picture()
    assert pre.preprocess(img, "tile_resample", {"threshold_a": 2.0}, 512, []).shape == (24, 40, 3)


def test_binary_is_controlnet_1_0s_inverted_threshold_with_otsu_by_default():
    img = picture()
    grey = cv2.cvtColor(cv2.resize(img, (128, 64), interpolation=cv2.INTER_LANCZOS4), cv2.COLOR_RGB2GRAY)
    _, otsu = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    assert np.array_equal(pre.preprocess(img, "binary", {}, 64, []), three(otsu))


def test_shuffle_is_seeded_as_the_extension_seeds_numpy():
    img = picture()
    first = pre.preprocess(img, "shuffle", {}, 48, [], seed=7)
    assert np.array_equal(first, pre.preprocess(img, "shuffle", {}, 48, [], seed=7))
    assert not np.array_equal(first, pre.preprocess(img, "shuffle", {}, 48, [], seed=8))
    np.random.seed(7)  # the extension: np.random.seed(seed + subseed), then ContentShuffleDetector's noise disks
    disks = []
    for _ in range(2):
        noise = cv2.resize(np.random.uniform(0, 1, (2, 2, 1)), (80 + 512, 48 + 512), interpolation=cv2.INTER_CUBIC)
        noise = noise[256 : 256 + 48, 256 : 256 + 80]
        disks.append((noise - noise.min()) / (noise - noise.min()).max())
    flow = np.stack([disks[0] * 79, disks[1] * 47], axis=2).astype(np.float32)
    want = cv2.remap(img, flow, None, cv2.INTER_LINEAR)
    assert np.abs(first.astype(int) - want.astype(int)).max() <= 1


def test_processor_res_and_pixel_perfect_set_the_detection_size():
    img = picture()  # 48 x 80
    unit = {"processor_res": 48}
    small = images.control_map(img, "canny", unit, 160, 96, 0)
    perfect = images.control_map(img, "canny", {**unit, "pixel_perfect": True}, 160, 96, 0)
    # Pixel perfect: the shorter side scaled as the resize mode will (x2 here), so the map is already 96 x 160.
    assert np.array_equal(np.asarray(perfect), reference("canny", img, 96, 0))
    assert not np.array_equal(np.asarray(small), np.asarray(perfect))


def test_aliases_and_refusals():
    assert pre.canonical("lineart_standard (from white bg & black line)", 0) == "lineart_standard"
    assert pre.canonical("Invert (from white bg & black line)", 0) == "invert"
    assert pre.canonical("color", 0) == "t2ia_color_grid"
    assert pre.canonical("pidinet", 0) == "softedge_pidinet"
    assert pre.canonical("lineart", 0) == "lineart_realistic"
    assert pre.canonical("tile_colorfix+sharp", 0) == "tile_colorfix+sharp"
    assert pre.thresholds("tile_colorfix+sharp", {}) == (8.0, 1.0)  # the extension's Variation and Sharpness
    with pytest.raises(UnsupportedFeature, match=r"'depth_leres\+\+' is not supported: its boosting .*supported: none"):
        pre.canonical("depth_leres++", 0)
    with pytest.raises(UnsupportedFeature, match=r"'dw_openpose_full' is not supported: DWPose .*openpose_full"):
        pre.canonical("dw_openpose_full", 0)
    with pytest.raises(UnsupportedFeature, match=r"'nonsense' is not supported; supported: none, invert, canny"):
        pre.canonical("nonsense", 1)


# -- annotators with tiny random weights, saved as the extension's files --
def folder(root, name: str):
    (root / name).mkdir()
    return root / name


def write_pidinet(path, seed: int):
    from controlnet_aux.pidi.model import pidinet

    torch.manual_seed(seed)
    net = pidinet()
    # The real table5_pidinet.pth is a training checkpoint: {"state_dict": {"module.<key>": tensor}}.
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def write_lineart(path, seed: int):
    from controlnet_aux.lineart import Generator

    torch.manual_seed(seed)
    torch.save(Generator(3, 1, 3).state_dict(), path)
    return path


def test_annotator_file_is_used_and_its_weights_matter(tmp_path):
    img = picture()
    first = write_lineart(folder(tmp_path, "a") / "sk_model.pth", 1)
    second = write_lineart(folder(tmp_path, "b") / "sk_model.pth", 2)
    got = pre.preprocess(img, "lineart_realistic", {}, 64, [first])
    from controlnet_aux.lineart import Generator

    net = Generator(3, 1, 3)
    net.load_state_dict(torch.load(first, weights_only=True))
    padded, (th, tw) = ref_pad(img, 64)
    with torch.no_grad():
        line = net.eval()(torch.from_numpy(padded).float().permute(2, 0, 1)[None] / 255.0)[0, 0].numpy()
    want = three(255 - (line * 255).clip(0, 255).astype(np.uint8)[:th, :tw])
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert np.abs(pre.preprocess(img, "lineart_realistic", {}, 64, [second]).astype(int) - got).max() > 10


def test_pidinet_modules_read_table5_pidinet(tmp_path):
    from controlnet_aux.pidi.model import pidinet

    img, first = picture(), write_pidinet(folder(tmp_path, "a") / "table5_pidinet.pth", 1)
    soft = pre.preprocess(img, "softedge_pidinet", {}, 64, [first])
    net = pidinet()
    net.load_state_dict({k[7:]: v for k, v in torch.load(first, weights_only=True)["state_dict"].items()})
    padded, (th, tw) = ref_pad(img, 64)
    with torch.no_grad():  # PiDiNet reads BGR in [0, 1]; its last output is the fused edge map
        edge = net.eval()(torch.from_numpy(padded[:, :, ::-1].copy()).float().permute(2, 0, 1)[None] / 255)[-1]
    want = three((edge[0, 0].numpy() * 255).clip(0, 255).astype(np.uint8)[:th, :tw])
    assert soft.shape == (64, 107, 3) and np.abs(soft.astype(int) - want.astype(int)).max() <= 1
    second = write_pidinet(folder(tmp_path, "b") / "table5_pidinet.pth", 5)
    assert np.abs(pre.preprocess(img, "softedge_pidinet", {}, 64, [second]).astype(int) - soft).max() > 0
    safe = pre.preprocess(img, "softedge_pidisafe", {}, 64, [first])
    assert set(np.unique(safe)) <= {0, 127, 255}  # "safe" quantises the edge to three levels
    assert set(np.unique(pre.preprocess(img, "scribble_pidinet", {}, 64, [first]))) <= {0, 255}


def test_hed_modules_read_controlnet_hed(tmp_path):
    from controlnet_aux.hed import ControlNetHED_Apache2

    torch.manual_seed(2)
    net = ControlNetHED_Apache2()
    path = tmp_path / "ControlNetHED.pth"
    torch.save(net.state_dict(), path)
    img = picture()
    got = pre.preprocess(img, "softedge_hed", {}, 64, [path])
    padded, (th, tw) = ref_pad(img, 64)
    with torch.no_grad():  # ControlNet 1.1's HED: RGB in 0-255, side outputs resized, averaged, sigmoid
        sides = net.eval()(torch.from_numpy(padded).float().permute(2, 0, 1)[None])
    sides = [cv2.resize(s[0, 0].numpy(), (padded.shape[1], padded.shape[0])) for s in sides]
    edge = 1 / (1 + np.exp(-np.mean(np.stack(sides, axis=2), axis=2)))
    want = three((edge * 255).clip(0, 255).astype(np.uint8)[:th, :tw])
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert set(np.unique(pre.preprocess(img, "softedge_hedsafe", {}, 64, [path]))) <= {0, 127, 255}


def test_mlsd_reads_its_file_and_its_thresholds(tmp_path):
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large

    torch.manual_seed(3)
    path = tmp_path / "mlsd_large_512_fp32.pth"
    torch.save(MobileV2_MLSD_Large().state_dict(), path)
    img = picture()
    loose = pre.preprocess(img, "mlsd", {"threshold_a": 0.01, "threshold_b": 0.01}, 64, [path])
    strict = pre.preprocess(img, "mlsd", {"threshold_a": 1.9, "threshold_b": 19}, 64, [path])
    assert set(np.unique(loose)) <= {0, 255} and loose.shape == (64, 107, 3)
    assert (strict > 0).sum() < (loose > 0).sum()  # a higher score threshold keeps fewer line segments


@pytest.mark.parametrize(
    ("module", "given", "named"),
    [
        ("openpose_hand", ["body_pose_model.pth"], "hand_pose_model.pth"),
        ("openpose_faceonly", [], "body_pose_model.pth"),
        ("depth", [], "dpt_hybrid-midas-501f0c75.pt"),
        ("normal_bae", [], "scannet.pt"),
        ("depth_zoe", [], "ZoeD_M12_N.pt"),
        ("depth_leres", [], "res101.pth"),
        ("lineart_anime", [], "netG.pth"),
    ],
)
def test_each_annotator_module_names_the_file_it_lacks(tmp_path, module, given, named):
    files = [tmp_path / name for name in given]
    for path in files:
        torch.save({}, path)
    with pytest.raises(ModelError, match=f"needs the annotator files? '{named}'"):
        pre.preprocess(picture(), pre.canonical(module, 0), {}, 64, files)


def test_missing_annotator_names_the_file_and_the_checkpoint_type(tmp_path):
    with pytest.raises(
        ModelError, match=r"'lineart_coarse' needs the annotator file 'sk_model2.pth'.*'ControlNet-annotator'"
    ):
        pre.preprocess(picture(), "lineart_coarse", {}, 64, [tmp_path / "sk_model.pth"])


def test_pickled_annotator_is_refused_not_unpickled(tmp_path):
    path = ta.write_pickled_embedding(tmp_path / "netG.pth")  # tensors plus a pickled object
    with pytest.raises(ModelError, match="cannot be read as a tensor state dict"):
        pre.preprocess(picture(), "lineart_anime", {}, 64, [path])


# -- detected maps returned by a job --
def square() -> Image.Image:
    image = Image.new("RGB", (64, 64))
    image.paste((255, 255, 255), (16, 16, 48, 48))
    return image


def scripts(**unit) -> dict:
    enabled = {"enabled": True, "module": "canny", "model": "tiny_canny", "image": b64png(square()), **unit}
    return {"controlnet": {"args": [enabled]}}


def test_job_returns_the_detected_map_after_its_images(generator, sd15_models, tmp_path):
    models = {**sd15_models, "ControlNet": [ta.write_tiny_controlnet(tmp_path / "tiny_canny.safetensors")]}
    payload = txt2img_payload(alwayson_scripts=scripts(processor_res=64))
    result = run(generator, "txt2img", payload, models)
    assert len(result.images) == 2
    detected = np.asarray(png(result.images[1]).convert("RGB"))
    edges = cv2.Canny(np.asarray(square()), 100, 200)
    assert np.abs(detected.astype(int) - three(edges).astype(int)).max() == 0
    quiet = {"control_net_no_detectmap": True}  # the extension's option: no maps for the whole job
    assert len(run(generator, "txt2img", {**payload, "override_settings": quiet}, models).images) == 1


def test_a_unit_that_does_not_save_its_map_returns_none(tmp_path):
    from openesd.generation.adapters.controlnet import prepare_units, returned_maps

    models = {"ControlNet": [ta.write_tiny_controlnet(tmp_path / "tiny_canny.safetensors")]}
    units = scripts(processor_res=64)["controlnet"]["args"] * 2
    units[1] = {**units[1], "module": "invert", "save_detected_map": False}
    inputs = prepare_units(units, models, 64, 64, "cpu", torch.float32)
    maps = returned_maps(inputs, {})
    canny = three(cv2.Canny(np.asarray(square()), 100, 200))
    assert len(maps) == 1 and np.array_equal(np.asarray(maps[0]), canny)  # the canny unit's map only
