// One job as it runs: its live events (GET /inferences/{id}/events) as a progress bar with step, ETA, phase and
// preview, a Cancel button, then its images with their infotext, or the server's message.
import { can, events, get, put } from "../../api.js";
import { badge, clear, h, toast } from "../../ui.js";

export function jobView(me, prefix = "job") {
  const status = h("p", { class: "job-status", id: `${prefix}-status`, "aria-live": "polite" });
  const bar = h("progress", { id: `${prefix}-progress`, max: 1, value: 0, "aria-label": "Progress" });
  const preview = h("img", { id: `${prefix}-preview`, class: "job-preview", alt: "Live preview" });
  const cancel = h("button", { type: "button", class: "danger", id: `${prefix}-cancel` }, "Cancel");
  const results = h("div", { id: `${prefix}-results`, class: "results" });
  const element = h("section", { class: "panel job", id: prefix }, h("h2", {}, "Progress"), status, bar, preview,
    h("div", { class: "row actions" }, cancel), results);
  element.hidden = true;
  let current = null;
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const view = await put(`/inferences/${encodeURIComponent(current)}/cancel`);
      say(view.status === "cancelled" ? "cancelled" : "cancelling", "Stopping at the next sampling step…");
    } catch (error) {
      cancel.disabled = false;
      toast(error.message, { bad: true });
    }
  });
  function say(state, text) { clear(status, badge(state), " ", text); }

  // Follow job `id` to its end; resolves to {kind, data, job} of its terminal event (null when `signal` aborts).
  async function follow(id, signal) {
    current = id;
    reset("Submitted");
    cancel.hidden = !can(me, "inference:all");
    const ended = await endOf(id);
    if (current !== id) return null;  // a newer job took the view meanwhile
    if (ended) { cancel.hidden = true; show(ended); return ended; }
    for await (const event of events(`/inferences/${encodeURIComponent(id)}/events`, { signal })) {
      if (current !== id) return null;
      const end = show(event);
      if (end) {
        cancel.hidden = true;
        return { ...end, job: await get(`/inferences/${encodeURIComponent(id)}`) };
      }
    }
    return null;
  }

  function show({ kind, data }) {
    if (kind === "queued") say("queued", `Queued: position ${data.queue_position ?? "?"} (${data.instances ?? 0} instance(s) running)`);
    else if (kind === "scheduled") say("loading", "A worker took the job: loading");
    else if (kind === "phase") say("loading", `${data.phase} ${data.model || ""}${data.seconds != null ? ` (${Number(data.seconds).toFixed(1)} s)` : ""}`);
    else if (kind === "step") {
      bar.max = data.total || 1;
      bar.value = data.step || 0;
      const eta = data.eta_seconds != null ? `, ETA ${Math.max(0, Math.round(data.eta_seconds))} s` : "";
      say("sampling", `Sampling: step ${data.step}/${data.total}${eta}`);
      showPreview(data.preview_url);
    } else if (kind === "preview") showPreview(data.preview_url);
    else if (kind === "succeeded") { bar.value = bar.max; say("succeeded", "Done"); return { kind, data }; }
    else if (kind === "failed") { say("failed", data.message || "The job failed"); return { kind, data }; }
    else if (kind === "cancelled") {
      say("cancelled", `Cancelled by ${data.by || "someone"}${data.total ? ` at step ${data.step}/${data.total}` : ""}`);
      return { kind, data };
    }
    return null;
  }

  // An empty view for a job being submitted (the last job's images go: they are on the Jobs page).
  function reset(text) {
    element.hidden = false;
    clear(results);
    preview.hidden = true;
    preview.removeAttribute("src");
    bar.value = 0;
    cancel.hidden = true;
    cancel.disabled = false;
    say("queued", text);
  }

  // A job that has ended already is read once (its events may have been pruned, and a stream would then wait).
  async function endOf(id) {
    const job = await get(`/inferences/${encodeURIComponent(id)}`);
    if (job.status === "succeed") return { kind: "succeeded", data: {}, job };
    if (job.status === "failed") return { kind: "failed", data: { message: job.sagemakerRaw }, job };
    if (job.status === "cancelled") {
      const { step, total_steps: total } = job.progress || {};
      return { kind: "cancelled", data: { by: job.cancelled_by, step, total }, job };
    }
    return null;
  }

  function showPreview(url) {
    if (!url) return;
    preview.src = url;
    preview.hidden = false;
  }

  return { element, follow, reset, results, say };
}

// The job's infotexts and seed from its result file (`output_presigned_urls`: {parameters, info, html_info}).
export async function resultInfo(job) {
  const url = job.output_presigned_urls?.[0];
  if (!url) return {};
  try {
    const response = await fetch(url);
    if (!response.ok) return {};
    const stored = await response.json();
    const info = typeof stored.info === "string" ? JSON.parse(stored.info) : stored.info || {};
    return { infotexts: info.infotexts || [], seed: info.seed, seeds: info.all_seeds || [], html: stored.html_info };
  } catch {
    return {};  // an unreadable info file leaves the images without their text
  }
}

// The images of a finished job, each with its infotext and the actions `actions(url, index)` returns.
export function renderImages(box, job, info, actions) {
  const figures = (job.img_presigned_urls || []).map((url, index) => h("figure", { class: "result" },
    h("a", { href: url, target: "_blank", rel: "noopener" }, h("img", { src: url, alt: `Result ${index + 1}`, class: "result-image" })),
    h("figcaption", {}, info.infotexts?.[index] ? h("pre", { class: "infotext" }, info.infotexts[index]) : null,
      h("div", { class: "row actions" }, actions(url, index)))));
  clear(box, h("div", { class: "gallery results-grid" }, figures));
}
