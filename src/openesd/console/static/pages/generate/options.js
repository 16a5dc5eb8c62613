// What the Generate page's pickers offer: the user's Active model files by type and their InService endpoints,
// each read as one page of the public listings (the pickers are for choosing, the Models page lists).
import { can, get } from "../../api.js";

export const MODEL_TYPES = ["Stable-diffusion", "VAE", "Lora", "embeddings", "ControlNet", "ESRGAN", "rembg"];
const PICKER_SIZE = 100;

// The WebUI 1.10 samplers this worker runs (DPM adaptive and DDIM CFG++ are refused by the worker).
export const SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
  "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "Restart", "DDIM", "PLMS", "UniPC", "LCM"];
export const SCHEDULERS = ["Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform",
  "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"];
export const CONTROLNET_MODULES = ["none", "canny", "invert", "scribble_xdog", "threshold", "blur_gaussian",
  "tile_resample", "shuffle", "lineart_standard", "openpose", "softedge_pidinet", "softedge_hed"];
export const HIRES_UPSCALERS = ["Latent", "Latent (nearest)", "None", "Lanczos", "Nearest"];

// {type: [file names]} for every model type; a type the user may not list is empty.
export async function modelFiles(me) {
  const files = Object.fromEntries(MODEL_TYPES.map((type) => [type, []]));
  if (!can(me, "checkpoint:list")) return files;
  await Promise.all(MODEL_TYPES.map(async (type) => {
    const page = await get("/checkpoints", { types: type, status: "Active", per_page: PICKER_SIZE, username: me.username });
    files[type] = page.checkpoints.flatMap((checkpoint) => checkpoint.name).sort();
  }));
  return files;
}

// The names of the InService endpoints the user may use (empty when they may not list endpoints: the server
// then picks one of theirs).
export async function liveEndpoints(me) {
  if (!can(me, "sagemaker_endpoint:list")) return [];
  const page = await get("/endpoints", { username: me.username, limit: PICKER_SIZE });
  return page.endpoints.filter((e) => e.endpoint_status === "InService" && e.endpoint_type === "Async")
    .map((e) => e.endpoint_name);
}

export function stem(file) {
  return String(file).replace(/\.[^.]+$/, "");
}
