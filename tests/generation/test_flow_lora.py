"""FLUX.1 and SD 3.5 LoRAs in the layouts users download, on the tiny flow pipelines through `apply_loras`."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from openesd.errors import ModelError
from openesd.generation.adapters import lora as lora_module
from openesd.generation.adapters.lora import apply_loras
from tests.support import flow_loras as fl
from tests.support import tiny_flow as tf

torch = pytest.importorskip("torch")

LAYOUTS = {
    "flux": ("kohya", "comfyui", "diffusers", "diffusers_alpha", "xlabs"),
    "sd3": ("kohya", "comfyui", "diffusers", "diffusers_alpha"),
}
CASES = [(family, layout) for family, layouts in LAYOUTS.items() for layout in layouts]


class Flow:
    """A tiny pipeline, its plain image and LoRA files of two sets of deltas in every layout."""

    def __init__(self, family: str, folder):
        from diffusers import FluxPipeline, StableDiffusion3Pipeline

        components = tf.tiny_flux_components() if family == "flux" else tf.tiny_sd3_components()
        self.family, self.folder = family, folder
        self.pipe = (FluxPipeline if family == "flux" else StableDiffusion3Pipeline)(**components)
        self.plain = self.render()
        self.deltas = {
            "style": fl.flow_lora_deltas(components, family, seed=5),
            "other": fl.flow_lora_deltas(components, family, seed=6),
            "xlabs": fl.flow_lora_deltas(components, family, seed=7, scale=0.8, parts="double_attn"),
        }

    def file(self, deltas: str, layout: str):
        path = self.folder / f"{self.family}_{deltas}_{layout}.safetensors"
        return path if path.exists() else fl.write_flow_lora(path, self.deltas[deltas], layout)

    def render(self):
        out = self.pipe(
            "a photo of a cat",
            height=64,
            width=64,
            num_inference_steps=1,
            max_sequence_length=tf.T5_MAX_LENGTH,
            output_type="np",
            generator=torch.Generator().manual_seed(7),
        )
        return out.images[0]

    @functools.cache  # noqa: B019  (one Flow per family per module)
    def reference(self, deltas: str):
        """The image of these deltas in the diffusers layout, which diffusers loads with no conversion."""
        return self.render_with([(self.file(deltas, "diffusers"), 1.0)])

    def render_with(self, loras):
        apply_loras(self.pipe, loras)
        return self.render()


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flow_loras")
    return {family: Flow(family, folder) for family in LAYOUTS}


@pytest.mark.parametrize(("family", "layout"), CASES)
def test_each_layout_changes_the_image_as_the_diffusers_file_of_the_same_deltas(flows, family, layout):
    flow = flows[family]
    deltas = "xlabs" if layout == "xlabs" else "style"
    with_lora = flow.render_with([(flow.file(deltas, layout), 1.0)])
    reference = flow.reference(deltas)
    assert np.abs(with_lora - flow.plain).max() > 0.02, f"the {layout} LoRA left the {family} image unchanged"
    np.testing.assert_allclose(with_lora, reference, atol=2e-5)


@pytest.mark.parametrize("family", LAYOUTS)
def test_weight_zero_and_no_lora_give_the_plain_image(flows, family):
    flow = flows[family]
    style = flow.file("style", "kohya")
    assert np.abs(flow.render_with([(style, 1.0)]) - flow.plain).max() > 0.02
    np.testing.assert_allclose(flow.render_with([(style, 0.0)]), flow.plain, atol=1e-6)
    np.testing.assert_allclose(flow.render_with([]), flow.plain, atol=1e-6)


@pytest.mark.parametrize("family", LAYOUTS)
def test_kohya_text_encoder_parts_reach_the_clip_encoders(flows, family):
    flow = flows[family]
    apply_loras(flow.pipe, [(flow.file("style", "kohya"), 1.0)])
    expected = {"transformer", "text_encoder"} | ({"text_encoder_2"} if family == "sd3" else set())
    assert {part for part, names in flow.pipe.get_list_adapters().items() if names} == expected
    apply_loras(flow.pipe, [])


@pytest.mark.parametrize("family", LAYOUTS)
def test_two_loras_at_once_and_half_weight(flows, family):
    flow = flows[family]
    style, other = flow.file("style", "kohya"), flow.file("other", "diffusers")
    alone = flow.render_with([(style, 1.0)])
    both = flow.render_with([(style, 1.0), (other, 0.8)])
    half = flow.render_with([(style, 0.5)])
    assert np.abs(both - alone).max() > 0.02
    assert np.abs(half - alone).max() > 0.005 and np.abs(half - flow.plain).max() > 0.005
    assert set(flow.pipe.get_active_adapters()) == {lora_module.adapter_name(style)}


def _save(path, state):
    from tests.support.tiny_adapters import _save_safetensors

    return _save_safetensors(path, state)


def test_unsupported_layouts_and_foreign_loras_are_refused_by_name(flows, tmp_path):
    from tests.support import tiny_adapters as ta

    flux, sd3 = flows["flux"], flows["sd3"]
    sd15 = ta.write_kohya_lora(tmp_path / "sd15.safetensors")
    with pytest.raises(ModelError, match=r"'sd15.safetensors' is an SD 1.x/2.x/SDXL LoRA .*this checkpoint is FLUX.1"):
        apply_loras(flux.pipe, [(sd15, 1.0)])
    with pytest.raises(ModelError, match=r"is a FLUX.1 LoRA .*this checkpoint is SD 3.5"):
        apply_loras(sd3.pipe, [(flux.file("style", "kohya"), 1.0)])
    t5 = {"lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight": torch.ones(4, tf.T5_D_MODEL)}
    t5["lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight"] = torch.ones(tf.T5_D_MODEL, 4)
    with pytest.raises(ModelError, match=r"'t5.safetensors' adapts the T5 text encoder \(lora_te3_"):
        apply_loras(sd3.pipe, [(_save(tmp_path / "t5.safetensors", t5), 1.0)])
    big = {
        k.replace("double_blocks_0_", "double_blocks_18_"): v
        for k, v in fl.kohya_state_dict(flux.deltas["style"]).items()
    }
    with pytest.raises(
        ModelError, match=r"'big.safetensors' does not fit this checkpoint: .*no module transformer_blocks.18"
    ):
        apply_loras(flux.pipe, [(_save(tmp_path / "big.safetensors", big), 1.0)])
    control = {"double_blocks.0.img_attn.norm.query_norm.scale": torch.ones(16)}
    control["double_blocks.0.img_attn.qkv.lora_A.weight"] = torch.ones(4, 32)
    with pytest.raises(ModelError, match=r"'control.safetensors' is a FLUX.1 Control LoRA"):
        apply_loras(flux.pipe, [(_save(tmp_path / "control.safetensors", control), 1.0)])
    odd = {"my_net.layer0.lora_A.weight": torch.ones(4, 32), "my_net.layer0.lora_B.weight": torch.ones(32, 4)}
    with pytest.raises(
        ModelError, match=r"'odd.safetensors' is in a layout this worker does not know .*supported for SD 3.5"
    ):
        apply_loras(sd3.pipe, [(_save(tmp_path / "odd.safetensors", odd), 1.0)])
    np.testing.assert_allclose(flux.render_with([]), flux.plain, atol=1e-6)  # refusals leave the pipelines whole
    np.testing.assert_allclose(sd3.render_with([]), sd3.plain, atol=1e-6)


def test_least_recently_used_flux_adapters_are_dropped(flows, monkeypatch):
    flow = flows["flux"]
    style, other = flow.file("style", "comfyui"), flow.file("other", "kohya")
    monkeypatch.setattr(lora_module, "MAX_ADAPTERS", 1)
    apply_loras(flow.pipe, [(style, 1.0)])
    apply_loras(flow.pipe, [(other, 1.0)])
    loaded = {n for names in flow.pipe.get_list_adapters().values() for n in names}
    assert loaded == {lora_module.adapter_name(other)}
    np.testing.assert_allclose(flow.render_with([]), flow.plain, atol=1e-6)
