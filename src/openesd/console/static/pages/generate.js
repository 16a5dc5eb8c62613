// Generate: txt2img and img2img/inpaint as async jobs (POST /inferences with the WebUI payload inline, as the SDK
// sends it), followed live to their images; extras (upscale, rembg) below. `#/generate?job=<id>` opens a job;
// `#/generate?lora=<name>` puts `<lora:name:1>` into the prompt.
import { post } from "../api.js";
import { clearErrors, h, remember, showError, toast } from "../ui.js";
import { extrasPanel } from "./generate/extras.js";
import { buildForm, changed, fillForm, requestBody } from "./generate/form.js";
import { maskEditor, readAsDataUrl, urlAsDataUrl } from "./generate/mask.js";
import { liveEndpoints, modelFiles } from "./generate/options.js";
import { jobView, renderImages, resultInfo } from "./generate/run.js";

const RUNNING_KEY = "openesd.generate.job";

// Server messages that name a field in the user's words rather than by its payload key.
const FIELD_OF = [
  [/ControlNet/, "cn_model"], [/\bsampler\b/i, "sampler_name"], [/\bscheduler\b/i, "scheduler"],
  [/type Stable-diffusion/, "model"], [/type VAE\b/, "vae"], [/type (Lora|embeddings)\b/, "prompt"],
  [/endpoint/i, "endpoint"], [/init_images|\bmask\b/, "init_images"],
];

export async function render(main, ctx) {
  const stop = new AbortController();
  const [files, endpoints] = await Promise.all([modelFiles(ctx.me), liveEndpoints(ctx.me)]);
  const images = { init: null, control: null };
  const mask = maskEditor();
  const form = buildForm(files, endpoints, mask);
  const view = jobView(ctx.me);
  const state = { lastSeed: null };
  remember(form, "generate");

  const input = (name) => form.elements.namedItem(name);
  if (ctx.params.lora && !input("prompt").value.includes(`<lora:${ctx.params.lora}:`)) {
    // "Try this LoRA" from a finished training: its tag goes into the prompt, once.
    input("prompt").value = `${input("prompt").value.trim()} <lora:${ctx.params.lora}:1>`.trim();
    changed(form);
  }
  const syncMode = () => { form.querySelector("#img2img-fields").hidden = input("mode").value !== "img2img"; };
  form.addEventListener("input", syncMode);
  form.addEventListener("change", syncMode);
  syncMode();
  input("init_images").addEventListener("change", async (event) => {
    images.init = event.target.files[0] ? await readAsDataUrl(event.target.files[0]) : null;
    mask.setImage(images.init);
  });
  input("cn_image").addEventListener("change", async (event) => {
    images.control = event.target.files[0] ? await readAsDataUrl(event.target.files[0]) : null;
  });
  form.querySelector("#seed-reuse").addEventListener("click", () => {
    if (state.lastSeed != null) { input("seed").value = state.lastSeed; changed(form); }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const submit = form.querySelector("#generate-submit");
    submit.disabled = true;
    let started = null;
    try {
      const body = requestBody(form, files, { ...images, mask: mask.dataUrl() });
      view.reset("Submitting…");
      started = await post("/inferences", body);
      await watch(started.inference.inference_id);
    } catch (error) {
      if (!started) view.element.hidden = true;  // refused: no job to show, the message goes to its field
      showAt(form, error.message || String(error));
    } finally {
      submit.disabled = false;
    }
  });

  // Follow a job to its end and show what it made, or why it did not.
  async function watch(id) {
    sessionStorage.setItem(RUNNING_KEY, id);
    const end = await view.follow(id, stop.signal);
    if (!end) return;
    sessionStorage.removeItem(RUNNING_KEY);
    if (end.kind === "failed") showAt(form, end.data.message || "The job failed");
    if (end.kind !== "succeeded") return;
    const info = await resultInfo(end.job);
    state.lastSeed = info.seed ?? null;
    form.querySelector("#seed-reuse").disabled = state.lastSeed == null;
    renderImages(view.results, end.job, info, (url) => [
      h("button", { type: "button", class: "use-settings", onclick: () => useSettings(end.job, info) }, "Use these settings again"),
      end.job.taskType === "txt2img" || end.job.taskType === "img2img"
        ? h("button", { type: "button", class: "send-img2img", onclick: () => sendToImg2img(url) }, "Send to img2img") : null,
    ]);
  }

  function useSettings(job, info) {
    let payload;
    try { payload = JSON.parse(job.payload_string || "{}"); } catch { payload = {}; }
    fillForm(form, job.taskType, payload, info.seed);
    if (payload.init_images?.[0]) { images.init = payload.init_images[0]; mask.setImage(images.init); }
    syncMode();
    form.scrollIntoView({ block: "start" });
    toast("The job's settings are in the form");
  }

  async function sendToImg2img(url) {
    try {
      images.init = await urlAsDataUrl(url);
      mask.setImage(images.init);
      input("mode").value = "img2img";
      changed(form);
      form.querySelector("#img2img-fields").scrollIntoView({ block: "start" });
    } catch (error) {
      toast(error.message, { bad: true });
    }
  }

  main.append(...[h("h1", {}, "Generate"), noModels(files), form, view.element, extrasPanel(ctx.me, files, stop.signal)]
    .filter(Boolean));
  const reopen = ctx.params.job || sessionStorage.getItem(RUNNING_KEY);
  if (reopen) watch(reopen).catch((error) => { sessionStorage.removeItem(RUNNING_KEY); showAt(form, error.message); });
  return () => stop.abort();
}

function noModels(files) {
  if (files["Stable-diffusion"].length) return null;
  return h("p", { class: "error", role: "alert" },
    "No Stable-diffusion checkpoint is available to you: upload one on the Models page (or ask for a role that has one).");
}

// The server's message next to the field it is about (by the words it uses, then by payload key), or at the foot.
function showAt(form, message) {
  const name = FIELD_OF.find(([pattern]) => pattern.test(message))?.[1];
  const slot = name && form.querySelector(`[data-error-for="${name}"]`);
  if (!slot) { showError(form, new Error(message)); return; }
  clearErrors(form);
  slot.textContent = message;
  form.elements.namedItem(name)?.setAttribute("aria-invalid", "true");
  slot.scrollIntoView({ block: "center" });
}
