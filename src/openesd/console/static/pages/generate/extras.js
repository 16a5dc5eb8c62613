// Extras on one image: upscale (`extra-single-image`) or remove its background (`rembg`), run as async jobs
// like any other and followed with the same progress view.
import { post } from "../../api.js";
import { clearErrors, field, h, remember, select, showError } from "../../ui.js";
import { readAsDataUrl } from "./mask.js";
import { jobView, renderImages, resultInfo } from "./run.js";

const BUILTIN_UPSCALERS = ["Lanczos", "Nearest", "None"];

export function extrasPanel(me, files, signal) {
  const view = jobView(me, "extras-job");
  const image = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp" });
  const task = select([["extra-single-image", "Upscale"], ["rembg", "Remove background"]], "extra-single-image");
  const noRembg = h("p", { class: "muted", id: "no-rembg" },
    "No background-removal model is available to you: an administrator uploads one (an ONNX file) as type rembg.");
  const form = h("form", { id: "extras-form", novalidate: true },
    h("div", { class: "row" }, field("Task", task, { name: "task_type" }), field("Image", image, { name: "image" })),
    h("div", { class: "row" },
      field("Upscaler", select([...BUILTIN_UPSCALERS, ...files.ESRGAN], "Lanczos"), { name: "upscaler_1" }),
      field("Scale by", h("input", { type: "number", value: 2, min: 1, max: 8, step: 0.5 }), { name: "upscaling_resize" }),
      field("Background model", select(files.rembg.length ? files.rembg : [["", "none available"]], files.rembg[0]), { name: "model" })),
    noRembg,
    h("button", { class: "primary", type: "submit", id: "extras-submit" }, "Run"));
  const sync = () => {
    const rembg = task.value === "rembg";
    form.elements.namedItem("upscaler_1").closest("label").hidden = rembg;
    form.elements.namedItem("upscaling_resize").closest("label").hidden = rembg;
    form.elements.namedItem("model").closest("label").hidden = !rembg;
    noRembg.hidden = !rembg || files.rembg.length > 0;
  };
  task.addEventListener("change", sync);
  remember(form, "extras");
  sync();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const submit = form.querySelector("#extras-submit");
    submit.disabled = true;
    try {
      if (!image.files[0]) throw Object.assign(new Error("image: choose an image first"), { status: 400 });
      const data = (await readAsDataUrl(image.files[0])).replace(/^data:[^,]*,/, "");  // bare base64, as ESD's clients send
      const body = extrasBody(form, task.value, data, files);
      view.reset("Submitting…");
      const started = await post("/inferences", body);
      const end = await view.follow(started.inference.inference_id, signal);
      if (end?.kind === "succeeded") renderImages(view.results, end.job, await resultInfo(end.job), () => []);
      else if (end?.kind === "failed") showError(form, new Error(end.data.message || "The job failed"));
    } catch (error) {
      showError(form, error);
    } finally {
      submit.disabled = false;
    }
  });
  return h("section", { class: "panel", id: "extras" }, h("h2", {}, "Extras"), form, view.element);
}

function extrasBody(form, taskType, image, files) {
  const value = (name) => form.elements.namedItem(name).value;
  let payload, models;
  if (taskType === "rembg") {
    payload = { input_image: image, model: value("model").replace(/\.[^.]+$/, "") };
    models = { rembg: value("model") ? [value("model")] : [] };
  } else {
    const upscaler = value("upscaler_1");
    payload = { image, resize_mode: 0, upscaling_resize: Number(value("upscaling_resize")), upscaler_1: upscaler,
      upscaler_2: "None", extras_upscaler_2_visibility: 0, gfpgan_visibility: 0, codeformer_visibility: 0 };
    models = { ESRGAN: files.ESRGAN.includes(upscaler) ? [upscaler] : [] };
  }
  return { task_type: taskType, inference_type: "Async", models, payload_string: JSON.stringify(payload) };
}
