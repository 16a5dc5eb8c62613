// The LoRA training form: the settings people change every time, and an advanced section of free kohya keys,
// sent as ESD's `POST /trainings` body (the SDK's `training_body`), so the trainer's own rules answer.
import { get, post } from "../../api.js";
import { clearErrors, field, h, remember, select, showError } from "../../ui.js";

// The common settings, by their kohya key; they go to the `[training]` table the template already has.
const COMMON = [
  ["resolution", "Resolution", { value: "512", hint: "one side (512) or width,height (768,512)" }],
  ["train_batch_size", "Batch size", { type: "number", min: 1, value: "1" }],
  ["unet_lr", "Learning rate", { value: "1e-4" }],
  ["text_encoder_lr", "Text encoder learning rate", { value: "1e-5" }],
  ["network_dim", "Network dim", { type: "number", min: 1, value: "32" }],
  ["network_alpha", "Network alpha", { type: "number", min: 0, step: "any", value: "16" }],
];

export function trainingForm(ctx, { onStarted }) {
  const model = h("input", { list: "training-models", required: true, autocomplete: "off" });
  const dataset = h("input", { list: "training-datasets", required: true, autocomplete: "off" });
  const output = h("input", { required: true, maxlength: 100, placeholder: "my_lora" });
  const fmType = select([["sd_1_5", "SD 1.5"], ["sd_xl", "SDXL"]], "sd_1_5");
  const instance = h("input", { value: "ml.g5.2xlarge" });
  const epochs = h("input", { type: "number", min: 1, value: "10" });
  const every = h("input", { type: "number", min: 1, value: "1" });
  const common = COMMON.map(([key, label, { hint, ...attrs }]) => field(label, h("input", attrs), { name: key, hint }));
  const advanced = h("textarea", { rows: 6, spellcheck: false,
    placeholder: "optimizer_type = \"AdamW\"\nlr_scheduler = \"constant\"\nseed = 42\n[additional_network]\nnetwork_train_unet_only = true" });
  const form = h("form", { class: "panel", id: "training-form", novalidate: true },
    h("h2", {}, "New LoRA training"),
    h("datalist", { id: "training-models" }), h("datalist", { id: "training-datasets" }),
    h("div", { class: "row" },
      field("Base model", model, { name: "model", hint: "a Stable-diffusion checkpoint's file name" }),
      field("Model family", fmType, { name: "fm_type" }),
      field("Dataset", dataset, { name: "dataset" }),
      field("LoRA name", output, { name: "output_name", hint: "the file is <name>.safetensors" })),
    h("div", { class: "row" },
      field("Epochs", epochs, { name: "max_train_epochs", hint: "kohya: epochs override max_train_steps" }),
      field("Save every n epochs", every, { name: "save_every_n_epochs" }),
      field("Instance type", instance, { name: "training_instance_type" })),
    h("div", { class: "row" }, common),
    h("details", {}, h("summary", {}, "Advanced kohya settings"),
      field("kohya keys", advanced, { name: "advanced", hint: "one key = value a line (TOML values); [section] starts a table, [training] by default; these win over the fields above" })),
    h("button", { class: "primary", type: "submit" }, "Start training"));
  remember(form, "training-form");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const body = requestBody(form, { model, dataset, output, fmType, instance, epochs, every, advanced });
      const created = await post("/trainings", body);
      onStarted(created.id);
    } catch (error) {
      showError(form, error);
    }
  });
  fillChoices(form);
  return {
    element: form,
    useDataset(name) { dataset.value = name; dataset.dispatchEvent(new Event("input", { bubbles: true })); output.focus(); },
  };
}

function requestBody(form, { model, dataset, output, fmType, instance, epochs, every, advanced }) {
  const training = {};
  for (const [key] of COMMON) {
    const text = form.elements.namedItem(key).value.trim();
    if (text) training[key] = key === "resolution" ? resolution(text) : number(key, text);
  }
  const config = {
    saving_arguments: { output_name: output.value.trim(), save_every_n_epochs: integer("save_every_n_epochs", every.value) },
    training_arguments: { max_train_epochs: integer("max_train_epochs", epochs.value) },
    training,
  };
  for (const [section, values] of Object.entries(parseKohya(advanced.value))) {
    config[section] = { ...(config[section] || {}), ...values };
  }
  return {
    lora_train_type: "kohya",
    params: {
      training_params: { training_instance_type: instance.value.trim(), model: model.value.trim(), dataset: dataset.value.trim(), fm_type: fmType.value },
      config_params: config,
    },
  };
}

function resolution(text) {
  return /^\d+$/.test(text) ? `${text},${text}` : text.replace(/\s+/g, "");
}

function number(key, text) {
  const value = Number(text);
  if (!Number.isFinite(value)) throw new Error(`${key}: '${text}' is not a number`);
  return value;
}

function integer(key, text) {
  const value = number(key, String(text).trim());
  if (!Number.isInteger(value) || value < 1) throw new Error(`${key}: '${text}' should be a whole number of at least 1`);
  return value;
}

// `key = value` lines (TOML-like: strings in quotes, numbers, true/false, [lists]) under `[section]` headers.
export function parseKohya(text) {
  const sections = {};
  let section = "training";
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/^\s+|\s+$/g, "");
    if (!line || line.startsWith("#")) return;
    const header = line.match(/^\[([A-Za-z0-9_.-]+)\]$/);
    if (header) { section = header[1]; return; }
    const pair = line.match(/^([A-Za-z0-9_.-]+)\s*=\s*(.+)$/);
    if (!pair) throw new Error(`advanced: line ${index + 1} '${line}' should read key = value or [section]`);
    (sections[section] ||= {})[pair[1]] = tomlValue(pair[2]);
  });
  return sections;
}

function tomlValue(text) {
  try { return JSON.parse(text.replace(/^'(.*)'$/, "\"$1\"")); } catch { return text; }  // a bare word stays a string
}

// Datalists from one page of each listing: choices to pick, never a limit on what may be typed.
async function fillChoices(form) {
  const models = form.querySelector("#training-models");
  const datasets = form.querySelector("#training-datasets");
  try {
    const { checkpoints = [] } = await get("/checkpoints", { types: "Stable-diffusion", status: "Active", per_page: 50 });
    models.replaceChildren(...checkpoints.map((c) => h("option", { value: (c.name || [])[0] || "" })));
  } catch { /* without checkpoint:list the name is typed */ }
  try {
    const { datasets: found = [] } = await get("/datasets", { dataset_status: "Enabled", limit: 50 });
    datasets.replaceChildren(...found.map((d) => h("option", { value: d.datasetName })));
  } catch { /* the datasets panel shows the error */ }
}
