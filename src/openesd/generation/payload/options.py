"""The WebUI 1.10 settings a payload may override (`override_settings`), with the WebUI's defaults.

Every setting is in exactly one table: HONOURED (changes the picture, and this worker does it), REFUSED
(changes the picture, and this worker cannot: accepted at the WebUI's default, refused otherwise, naming it
and why) or IGNORED (saving, the UI, speed: nothing the picture depends on). Anything else is unknown and
listed as such on the job, as are the ignored ones; none is dropped without a word.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from openesd.errors import PayloadError
from openesd.generation.payload.reader import Reader

PREFIX = "override_settings."
EMPHASIS_MODES = ("None", "Ignore", "Original", "No norm")
RANDN_SOURCES = ("GPU", "CPU", "NV")


@dataclass(frozen=True)
class Option:
    """One honoured setting: its WebUI default and the values it may take."""

    default: Any
    kind: type = float  # bool | int | float | str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


HONOURED: dict[str, Option] = {
    # Model, VAE, text encoder, prompt.
    "sd_model_checkpoint": Option(None, str),
    "sd_vae": Option("Automatic", str),
    "CLIP_stop_at_last_layers": Option(1, int, 1, 12),
    "emphasis": Option("Original", str, choices=EMPHASIS_MODES),
    "use_old_scheduling": Option(False, bool),
    "tiling": Option(False, bool),
    # Noise.
    "randn_source": Option("GPU", str, choices=RANDN_SOURCES),
    "eta_noise_seed_delta": Option(0, int),
    "sgm_noise_multiplier": Option(False, bool),
    # Sampler parameters.
    "eta_ancestral": Option(1.0, float, 0.0),
    "eta_ddim": Option(0.0, float, 0.0),
    "s_churn": Option(0.0, float, 0.0),
    "s_tmin": Option(0.0, float),
    "s_tmax": Option(0.0, float, 0.0),  # 0 is infinity
    "s_noise": Option(1.0, float, 0.0),
    "sigma_min": Option(0.0, float, 0.0),  # 0 is the model's own
    "sigma_max": Option(0.0, float, 0.0),
    "rho": Option(0.0, float, 0.0),  # 0 is the scheduler's own
    "always_discard_next_to_last_sigma": Option(False, bool),
    "use_old_karras_scheduler_sigmas": Option(False, bool),
    "beta_dist_alpha": Option(0.6, float, 0.01, 1.0),
    "beta_dist_beta": Option(0.6, float, 0.01, 1.0),
    "uni_pc_variant": Option("bh1", str, choices=("bh1", "bh2", "vary_coeff")),
    "uni_pc_skip_type": Option("time_uniform", str, choices=("time_uniform", "time_quadratic", "logSNR")),
    "uni_pc_order": Option(3, int, 1, 50),
    "uni_pc_lower_order_final": Option(True, bool),
    # The CFG denoiser.
    "s_min_uncond": Option(0.0, float, 0.0),
    "s_min_uncond_all": Option(False, bool),
    "skip_early_cond": Option(0.0, float, 0.0, 1.0),
    "pad_cond_uncond": Option(False, bool),
    "pad_cond_uncond_v0": Option(False, bool),
}

_NO_TAESD = "TAESD is not available on this worker; only the full VAE"
_NO_TOME = "token merging is not implemented on this worker"
_NO_IMG2IMG = "this worker runs img2img with the WebUI's default for it"
_NO_SDXL_COND = "this worker conditions SDXL with the WebUI's default for it"
_NO_OLD = "this worker follows the WebUI 1.10 behaviour only"
# Picture-changing settings this worker cannot do: accepted at the WebUI's default, refused otherwise.
REFUSED: dict[str, tuple[Any, str]] = {
    "no_dpmpp_sde_batch_determinism": (
        False,
        "the WebUI then draws the SDE samplers' noise from an unseeded generator, so no seed reproduces it",
    ),
    "sd_unet": ("Automatic", "separate UNet files are not supported; the checkpoint's UNet is used"),
    "sd_hypernetwork": ("None", "hypernetworks are not supported"),
    "enable_quantization": (False, "quantized k-diffusion sigmas are not implemented"),
    "enable_batch_seeds": (True, "batch noise that ignores each image's seed is not implemented"),
    "comma_padding_backtrack": (20, "prompts are chunked with the WebUI's default of 20 tokens"),
    "sdxl_clip_l_skip": (False, "clip skip on SDXL's first text encoder is not implemented"),
    "hires_fix_refiner_pass": ("second pass", "the refiner runs in the hires second pass only"),
    "sdxl_crop_top": (0, _NO_SDXL_COND),
    "sdxl_crop_left": (0, _NO_SDXL_COND),
    "sdxl_refiner_low_aesthetic_score": (2.5, _NO_SDXL_COND),
    "sdxl_refiner_high_aesthetic_score": (6.0, _NO_SDXL_COND),
    "sd_vae_encode_method": ("Full", _NO_TAESD),
    "sd_vae_decode_method": ("Full", _NO_TAESD),
    "inpainting_mask_weight": (1.0, _NO_IMG2IMG),
    "initial_noise_multiplier": (1.0, _NO_IMG2IMG),
    "img2img_extra_noise": (0.0, _NO_IMG2IMG),
    "img2img_color_correction": (False, _NO_IMG2IMG),
    "img2img_fix_steps": (False, _NO_IMG2IMG),
    "img2img_background_color": ("#ffffff", _NO_IMG2IMG),
    "overlay_inpaint": (True, _NO_IMG2IMG),
    "ddim_discretize": ("uniform", _NO_IMG2IMG),
    "upscaler_for_img2img": (None, _NO_IMG2IMG),
    "token_merging_ratio": (0.0, _NO_TOME),
    "token_merging_ratio_img2img": (0.0, _NO_TOME),
    "token_merging_ratio_hr": (0.0, _NO_TOME),
    "fp8_storage": ("Disable", "FP8 weights are not supported"),
    "cache_fp16_weight": (False, "FP8 weights are not supported"),
    "use_old_emphasis_implementation": (False, _NO_OLD),
    "use_old_hires_fix_width_height": (False, _NO_OLD),
    "hires_fix_use_firstpass_conds": (False, _NO_OLD),
    "use_downcasted_alpha_bar": (False, _NO_OLD),
    "refiner_switch_by_sample_steps": (False, _NO_OLD),
    "sd_noise_schedule": ("Default", "zero terminal SNR rescaling is not implemented"),
    "face_restoration": (False, "this worker has no face restoration models"),
    "extra_networks_default_multiplier": (1.0, "a LoRA tag without a weight always has weight 1"),
    "ESRGAN_tile": (192, "upscalers tile with the WebUI's defaults (192 px, 8 px overlap)"),
    "ESRGAN_tile_overlap": (8, "upscalers tile with the WebUI's defaults (192 px, 8 px overlap)"),
    "DAT_tile": (192, "upscalers tile with the WebUI's defaults (192 px, 8 px overlap)"),
    "DAT_tile_overlap": (8, "upscalers tile with the WebUI's defaults (192 px, 8 px overlap)"),
    "postprocessing_enable_in_main_ui": ([], "postprocessing in txt2img/img2img is not supported"),
    "samples_format": ("png", "results are always PNG"),
    "return_mask": (False, "inpainting returns the generated images only"),
    "return_mask_composite": (False, "inpainting returns the generated images only"),
}

# Saving, paths, the UI, previews, training, interrogation, speed and precision: nothing the picture
# depends on (upcast_attn and the VAE precision fallbacks change rounding only; sd3_enable_t5 is SD3-only).
IGNORED: frozenset[str] = frozenset(
    """
    samples_save samples_filename_pattern save_images_add_number save_images_replace_action grid_save
    grid_format grid_extended_filename grid_only_if_multiple grid_prevent_empty_spots grid_zip_filename_pattern
    n_rows font grid_text_active_color grid_text_inactive_color grid_background_color
    save_images_before_face_restoration save_images_before_highres_fix save_images_before_color_correction
    save_mask save_mask_composite jpeg_quality webp_lossless export_for_4chan img_downscale_threshold
    target_side_length img_max_size_mp use_original_name_batch use_upscaler_name_as_suffix save_selected_only
    save_write_log_csv save_init_img temp_dir clean_temp_dir_at_start save_incomplete_images notification_audio
    notification_volume
    outdir_samples outdir_txt2img_samples outdir_img2img_samples outdir_extras_samples outdir_grids
    outdir_txt2img_grids outdir_img2img_grids outdir_save outdir_init_images
    save_to_dirs grid_save_to_dirs use_save_to_dirs_for_ui directories_filename_pattern directories_max_prompt_words
    realesrgan_enabled_models dat_enabled_models set_scale_by_when_changing_upscaler
    face_restoration_model code_former_weight face_restoration_unload
    auto_launch_browser enable_console_prompts show_warnings show_gradio_deprecation_warnings memmon_poll_rate
    samples_log_stdout multiple_tqdm enable_upscale_progressbar print_hypernet_extra list_hidden_files
    disable_mmap_load_safetensors hide_ldm_prints dump_stacks_on_signal
    profiling_explanation profiling_enable profiling_activities profiling_record_shapes profiling_profile_memory
    profiling_with_stack profiling_filename
    api_enable_requests api_forbid_local_requests api_useragent
    unload_models_when_training pin_memory save_optimizer_state save_training_settings_to_txt
    dataset_filename_word_regex dataset_filename_join_string training_image_repeats_per_epoch
    training_write_csv_every training_xattention_optimizations training_enable_tensorboard
    training_tensorboard_save_images training_tensorboard_flush_every
    sd_checkpoints_limit sd_checkpoints_keep_in_cpu sd_checkpoint_cache upcast_attn sd3_enable_t5
    sd_vae_explanation sd_vae_checkpoint_cache sd_vae_overrides_per_model_preferences auto_vae_precision_bfloat16
    auto_vae_precision
    img2img_editor_height img2img_sketch_default_brush_color img2img_inpaint_mask_brush_color
    img2img_inpaint_sketch_default_brush_color img2img_batch_show_results_limit
    cross_attention_optimization persistent_cond_cache batch_cond_uncond auto_backcompat
    interrogate_keep_models_in_memory interrogate_return_ranks interrogate_clip_num_beams interrogate_clip_min_length
    interrogate_clip_max_length interrogate_clip_dict_limit interrogate_clip_skip_categories
    interrogate_deepbooru_score_threshold deepbooru_sort_alpha deepbooru_use_spaces deepbooru_escape
    deepbooru_filter_tags
    extra_networks_show_hidden_directories extra_networks_dir_button_function extra_networks_hidden_models
    extra_networks_card_width extra_networks_card_height extra_networks_card_text_scale extra_networks_card_show_desc
    extra_networks_card_description_is_html extra_networks_card_order_field extra_networks_card_order
    extra_networks_tree_view_style extra_networks_tree_view_default_enabled extra_networks_tree_view_default_width
    extra_networks_add_text_separator ui_extra_networks_tab_reorder textual_inversion_print_at_load
    textual_inversion_add_hashes_to_infotext
    keyedit_precision_attention keyedit_precision_extra keyedit_delimiters keyedit_delimiters_whitespace keyedit_move
    disable_token_counters include_styles_into_token_counters
    return_grid do_not_show_images js_modal_lightbox js_modal_lightbox_initially_zoomed js_modal_lightbox_gamepad
    js_modal_lightbox_gamepad_repeat sd_webui_modal_lightbox_icon_opacity sd_webui_modal_lightbox_toolbar_opacity
    gallery_height open_dir_button_choice
    compact_prompt_box samplers_in_dropdown dimensions_and_batch_together sd_checkpoint_dropdown_use_short
    hires_fix_show_sampler hires_fix_show_prompts txt2img_settings_accordion img2img_settings_accordion
    interrupt_after_current
    localization quicksettings_list ui_tab_order hidden_tabs ui_reorder_list gradio_theme gradio_themes_cache
    show_progress_in_title send_seed send_size enable_reloading_ui_scripts
    infotext_explanation enable_pnginfo save_txt add_model_name_to_info add_model_hash_to_info add_vae_name_to_info
    add_vae_hash_to_info add_user_name_to_info add_version_to_infotext disable_weights_auto_swap
    infotext_skip_pasting infotext_styles
    show_progressbar live_previews_enable live_previews_image_format show_progress_grid show_progress_every_n_steps
    show_progress_type live_preview_allow_lowvram_full live_preview_content live_preview_refresh_period
    live_preview_fast_interrupt js_live_preview_in_modal_lightbox prevent_screen_sleep_during_generation
    hide_samplers
    postprocessing_disable_in_extras postprocessing_operation_order upscaling_max_images_in_cache
    postprocessing_existing_caption_action
    disabled_extensions disable_all_extensions restore_config_state_file sd_checkpoint_hash
    """.split()
)

# k-diffusion's own values for the stochasticity parameters (what its sampler functions use when not given).
SIGMA_PARAM_DEFAULTS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": math.inf, "s_noise": 1.0}


@dataclass(frozen=True)
class OverrideSettings:
    """`override_settings` read: every honoured setting (WebUI default filled in) and what was not used."""

    values: dict[str, Any]
    ignored: list[str]
    unknown: list[str]


def read_override_settings(override: dict) -> OverrideSettings:
    """Validate `override_settings`; a picture-changing setting this worker cannot do fails naming it."""
    values = {key: option.default for key, option in HONOURED.items()}
    ignored, unknown = [], []
    for key, value in override.items():
        if key in HONOURED:
            values[key] = _read(key, value, HONOURED[key])
        elif key in REFUSED:
            _refuse_unless_default(key, value, *REFUSED[key])
        elif key in IGNORED:
            ignored.append(key)
        else:
            unknown.append(key)
    return OverrideSettings(values, sorted(ignored), sorted(unknown))


def sampler_fields(values: dict[str, Any], payload: Reader) -> dict[str, Any]:
    """SamplerOptions' fields from the honoured settings and the payload's own sampler fields, as the WebUI
    1.10 combines them (StableDiffusionProcessing.fill_fields_from_opts and Sampler.initialize)."""
    fields = {key: values[key] for key in _SAMPLER_KEYS}
    fields["eta"] = payload.float("eta", 0.0) if payload.raw("eta") is not None else None
    if payload.raw("s_min_uncond") is not None:
        fields["s_min_uncond"] = payload.float("s_min_uncond", 0.0, 0.0)
    for name in SIGMA_PARAM_DEFAULTS:
        fields[name] = _sigma_param(name, values[name], payload)
    return fields


# The honoured settings that are not SamplerOptions fields (GenerationSettings and the generator read them).
_MODEL_KEYS = ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "tiling")
_SAMPLER_KEYS = [key for key in HONOURED if key not in _MODEL_KEYS]


def _sigma_param(name: str, setting: float, payload: Reader) -> float:
    # The WebUI reads the setting first: where it differs from k-diffusion's default it wins over the
    # payload's value; only at the default does the payload's value (else the setting) reach the sampler.
    default = SIGMA_PARAM_DEFAULTS[name]
    setting = _infinite(setting) if name == "s_tmax" else setting
    if setting != default:
        return setting
    low = None if name == "s_tmin" else 0.0
    value = payload.float(name, setting, low) if payload.raw(name) is not None else setting
    return _infinite(value) if name == "s_tmax" else value


def _infinite(s_tmax: float) -> float:
    # 0 means infinity in the WebUI; JSON `Infinity` arrives as the largest float.
    return math.inf if s_tmax == 0 or s_tmax >= sys.float_info.max else s_tmax


def _read(key: str, value: Any, option: Option) -> Any:
    r = Reader({PREFIX + key: value})
    name = PREFIX + key
    if option.kind is bool:
        return r.bool(name, option.default)
    if option.kind is int:
        return r.int(name, option.default, _int(option.low), _int(option.high))
    if option.kind is float:
        return r.float(name, option.default, option.low, option.high)
    text = r.str(name, option.default) if value is not None else option.default
    if option.choices and text not in option.choices:
        raise PayloadError(f"{name} must be one of {', '.join(option.choices)}; got {text!r}")
    return text


def _int(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


# Values other than the default that mean the same here ("None": the checkpoint's own UNet).
_ALSO_DEFAULT = {"sd_unet": "None"}


def _refuse_unless_default(key: str, value: Any, default: Any, why: str) -> None:
    if value is None or _same(value, default) or value == _ALSO_DEFAULT.get(key):
        return
    raise PayloadError(
        f"{PREFIX}{key} {value!r} is not supported: {why} (accepted only at the WebUI's default, {default!r})"
    )


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, (bool, int)) and bool(value) == default and value in (0, 1)
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return float(value) == float(default)
    if default is None:
        return value in ("", "None")
    return bool(value == default)
