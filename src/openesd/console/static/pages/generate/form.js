// The Generate form: the WebUI's txt2img/img2img fields, named after the payload keys they fill (so that the
// server's messages, which name those keys, land next to them), and the request body they make.
import { field, h, select } from "../../ui.js";
import { CONTROLNET_MODULES, HIRES_UPSCALERS, SAMPLERS, SCHEDULERS, stem } from "./options.js";

const num = (value, attrs = {}) => h("input", { type: "number", value, ...attrs });

export function buildForm(files, endpoints, mask) {
  const models = files["Stable-diffusion"];
  const prompt = h("textarea", { rows: 3, placeholder: "a photo of a cat" });
  const negative = h("textarea", { rows: 2 });
  const lora = select([["", "Add a LoRA…"], ...files.Lora.map((f) => [stem(f), f])], "", { "aria-label": "LoRA" });
  const embedding = select([["", "Add an embedding…"], ...files.embeddings.map((f) => [stem(f), f])], "", { "aria-label": "Embedding" });
  lora.addEventListener("change", () => { insert(prompt, `<lora:${lora.value}:1>`); lora.value = ""; });
  embedding.addEventListener("change", () => { insert(prompt, embedding.value); embedding.value = ""; });
  const seed = num(-1, { step: 1 });
  const initImage = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp" });
  const cnImage = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp" });
  const samplerList = h("datalist", { id: "samplers" }, SAMPLERS.map((s) => h("option", { value: s })));
  const moduleList = h("datalist", { id: "cn-modules" }, CONTROLNET_MODULES.map((s) => h("option", { value: s })));

  const img2img = h("fieldset", { class: "panel", id: "img2img-fields" }, h("legend", {}, "img2img and inpaint"),
    field("Image", initImage, { name: "init_images" }),
    h("p", { class: "muted" }, "Paint on the image to inpaint only there; leave it unpainted for plain img2img."),
    mask.element,
    h("div", { class: "row" },
      field("Denoising strength", num(0.75, { min: 0, max: 1, step: 0.05 }), { name: "denoising_strength" }),
      field("Mask blur", num(4, { min: 0, max: 64 }), { name: "mask_blur" }),
      field("Masked content", select([[1, "original"], [0, "fill"], [2, "latent noise"], [3, "latent nothing"]], 1), { name: "inpainting_fill" })));

  const form = h("form", { id: "generate-form", novalidate: true },
    h("section", { class: "panel" },
      h("div", { class: "row" },
        field("Mode", select([["txt2img", "txt2img"], ["img2img", "img2img / inpaint"]], "txt2img"), { name: "mode" }),
        field("Checkpoint", select(models.length ? models : [["", "no checkpoint available"]], models[0]), { name: "model" }),
        field("VAE", select(["Automatic", "None", ...files.VAE], "Automatic"), { name: "vae" }),
        field("Endpoint", select([["", "Any of mine"], ...endpoints], ""), { name: "endpoint" })),
      field("Prompt", prompt, { name: "prompt" }),
      field("Negative prompt", negative, { name: "negative_prompt" }),
      h("div", { class: "row" }, lora, embedding)),
    img2img,
    h("section", { class: "panel" },
      h("div", { class: "row" },
        field("Sampler", h("input", { list: "samplers", value: "Euler a", autocomplete: "off" }), { name: "sampler_name" }),
        field("Schedule type", select(SCHEDULERS, "Automatic"), { name: "scheduler" }),
        field("Steps", num(20, { min: 1, max: 150 }), { name: "steps" }),
        field("CFG scale", num(7, { min: 0, max: 30, step: 0.5 }), { name: "cfg_scale" })),
      h("div", { class: "row" },
        field("Width", num(512, { min: 64, step: 8 }), { name: "width" }),
        field("Height", num(512, { min: 64, step: 8 }), { name: "height" }),
        field("Batch size", num(1, { min: 1, max: 64 }), { name: "batch_size" }),
        field("Batch count", num(1, { min: 1, max: 100 }), { name: "n_iter" })),
      h("div", { class: "row seed-row" }, field("Seed", seed, { name: "seed" }),
        h("button", { type: "button", id: "seed-random", onclick: () => { seed.value = -1; changed(form); } }, "Random seed"),
        h("button", { type: "button", id: "seed-reuse", disabled: true }, "Reuse last seed"),
        field("Preview every N model calls (0: none)", num(5, { min: 0, max: 1000 }), { name: "preview_every" }))),
    details("Hires. fix",
      field("Upscale the first pass", h("input", { type: "checkbox" }), { name: "enable_hr", inline: true }),
      h("div", { class: "row" },
        field("Upscaler", select([...HIRES_UPSCALERS, ...files.ESRGAN], "Latent"), { name: "hr_upscaler" }),
        field("Upscale by", num(2, { min: 1, max: 8, step: 0.05 }), { name: "hr_scale" }),
        field("Hires steps (0: same)", num(0, { min: 0, max: 150 }), { name: "hr_second_pass_steps" }),
        field("Denoising strength", num(0.7, { min: 0, max: 1, step: 0.05 }), { name: "hr_denoising_strength" }))),
    details("Refiner",
      h("div", { class: "row" },
        field("Refiner checkpoint", select(["None", ...models], "None"), { name: "refiner_checkpoint" }),
        field("Switch at", num(0.8, { min: 0, max: 1, step: 0.05 }), { name: "refiner_switch_at" }))),
    details("ControlNet",
      field("Enable the unit", h("input", { type: "checkbox" }), { name: "cn_enabled", inline: true }),
      h("div", { class: "row" },
        field("Preprocessor", h("input", { list: "cn-modules", value: "none", autocomplete: "off" }), { name: "module" }),
        field("Model", select(files.ControlNet.length ? files.ControlNet : [["", "no ControlNet models"]], files.ControlNet[0]), { name: "cn_model" }),
        field("Control weight", num(1, { min: 0, max: 2, step: 0.05 }), { name: "weight" })),
      field("Control image", cnImage, { name: "cn_image" })),
    samplerList, moduleList,
    h("div", { class: "row actions" },
      h("button", { class: "primary", type: "submit", id: "generate-submit" }, "Generate")));
  return form;
}

function details(title, ...children) {
  return h("details", { class: "panel" }, h("summary", {}, title), ...children);
}

function insert(textarea, text) {
  if (!text) return;
  textarea.value = `${textarea.value.trimEnd()}${textarea.value.trim() ? " " : ""}${text}`;
  changed(textarea.form);
}

// Tell `remember` (and the mode switch) that a value changed from code.
export function changed(form) {
  form.dispatchEvent(new Event("input", { bubbles: true }));
}

const value = (form, name) => form.elements.namedItem(name).value;
const checked = (form, name) => form.elements.namedItem(name).checked;
// A number field: its number, or the text as typed (the server names what is wrong with it), or nothing.
function number(form, name) {
  const input = form.elements.namedItem(name);
  if (input.value === "") return input.validity?.badInput ? "not a number" : undefined;
  return Number(input.value);
}

// The POST /inferences body of the form: task, models, endpoint, previews and the WebUI payload.
export function requestBody(form, files, images) {
  const task = value(form, "mode");
  const model = value(form, "model");
  const vae = value(form, "vae");
  const payload = {
    prompt: value(form, "prompt"), negative_prompt: value(form, "negative_prompt"),
    sampler_name: value(form, "sampler_name"), scheduler: value(form, "scheduler"),
    steps: number(form, "steps"), cfg_scale: number(form, "cfg_scale"),
    width: number(form, "width"), height: number(form, "height"), seed: number(form, "seed"),
    batch_size: number(form, "batch_size"), n_iter: number(form, "n_iter"),
    override_settings: { sd_model_checkpoint: model, sd_vae: vae },
    send_images: true, save_images: false,
  };
  const checkpoints = [model];
  if (task === "txt2img" && checked(form, "enable_hr")) {
    Object.assign(payload, { enable_hr: true, hr_upscaler: value(form, "hr_upscaler"), hr_scale: number(form, "hr_scale"),
      hr_second_pass_steps: number(form, "hr_second_pass_steps"), denoising_strength: number(form, "hr_denoising_strength") });
  }
  const refiner = value(form, "refiner_checkpoint");
  if (refiner && refiner !== "None") {
    Object.assign(payload, { refiner_checkpoint: refiner, refiner_switch_at: number(form, "refiner_switch_at") });
    if (refiner !== model) checkpoints.push(refiner);
  }
  const models = { "Stable-diffusion": checkpoints, VAE: [vae] };
  if (checked(form, "cn_enabled")) {
    const unit = { enabled: true, module: value(form, "module"), model: value(form, "cn_model"), weight: number(form, "weight"),
      image: images.control, resize_mode: "Crop and Resize", control_mode: "Balanced", guidance_start: 0, guidance_end: 1 };
    payload.alwayson_scripts = { controlnet: { args: [unit] } };
    models.ControlNet = [value(form, "cn_model")];
  }
  if (task === "img2img") {
    Object.assign(payload, { init_images: images.init ? [images.init] : [], denoising_strength: number(form, "denoising_strength"),
      resize_mode: 0 });
    if (images.mask) {
      Object.assign(payload, { mask: images.mask, mask_blur: number(form, "mask_blur"),
        inpainting_fill: number(form, "inpainting_fill"), inpaint_full_res: false, inpainting_mask_invert: 0 });
    }
  }
  const text = `${payload.prompt} ${payload.negative_prompt}`;
  models.Lora = [...text.matchAll(/<lora:([^:>]+)(?::[^>]*)?>/g)].map(([, name]) => fileOf(files.Lora, name));
  models.embeddings = files.embeddings.filter((file) => new RegExp(`(^|[^\\w])${escape(stem(file))}([^\\w]|$)`).test(text));
  const body = { task_type: task, inference_type: "Async", models, payload_string: JSON.stringify(payload),
    preview_every: number(form, "preview_every") ?? 0 };
  if (value(form, "endpoint")) body.sagemaker_endpoint_name = value(form, "endpoint");
  return body;
}

// A LoRA named in the prompt as the file the `models` map lists (`cat` -> `cat.safetensors`, as the SDK does).
function fileOf(available, name) {
  return available.find((file) => stem(file) === name || file === name) || (name.includes(".") ? name : `${name}.safetensors`);
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// Fill the form from a job's payload ("use these settings again"); `seed` replaces the payload's (-1) seed.
export function fillForm(form, task, payload, seed) {
  const set = (name, v) => {
    const input = form.elements.namedItem(name);
    if (!input || v === undefined || v === null) return;
    if (input.type === "checkbox") input.checked = Boolean(v); else input.value = v;
  };
  set("mode", task === "img2img" ? "img2img" : "txt2img");
  for (const key of ["prompt", "negative_prompt", "sampler_name", "scheduler", "steps", "cfg_scale", "width", "height",
    "batch_size", "n_iter", "hr_upscaler", "hr_scale", "hr_second_pass_steps", "refiner_switch_at", "mask_blur", "inpainting_fill"]) {
    set(key, payload[key]);
  }
  set("seed", seed ?? payload.seed);
  set("model", payload.override_settings?.sd_model_checkpoint);
  set("vae", payload.override_settings?.sd_vae);
  set("enable_hr", payload.enable_hr);
  set(payload.enable_hr ? "hr_denoising_strength" : "denoising_strength", payload.denoising_strength);
  set("refiner_checkpoint", payload.refiner_checkpoint || "None");
  const unit = payload.alwayson_scripts?.controlnet?.args?.[0];
  set("cn_enabled", Boolean(unit?.enabled));
  if (unit) { set("module", unit.module); set("cn_model", unit.model); set("weight", unit.weight); }
  changed(form);
}
