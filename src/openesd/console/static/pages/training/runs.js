// Trainings: one page of the list with their status, and one training followed live from its events (progress,
// the loss chart), with Stop while it runs and "Try this LoRA" once it is done.
import { ApiError, can, events, get, put } from "../../api.js";
import { badge, clear, cursorPager, h, table, toast, when } from "../../ui.js";
import { lossChart } from "./chart.js";

const ENDED = new Set(["Completed", "Failed", "Fail", "Stopped"]);

export const loraName = (t) => t.params?.config_params?.saving_arguments?.output_name || t.id;

function progressText(p) {
  if (!p || !p.step) return "";
  const parts = [`step ${p.step}${p.total_steps ? ` of ${p.total_steps}` : ""}`];
  if (p.total_epochs) parts.push(`epoch ${p.epoch} of ${p.total_epochs}`);
  if (Number.isFinite(p.loss)) parts.push(`loss ${Number(p.loss).toPrecision(3)}`);
  if (Number.isFinite(p.eta_seconds)) parts.push(`about ${Math.ceil(p.eta_seconds)} s left`);
  return parts.join(" · ");
}

async function stopTraining(id) {
  try {
    await put(`/trainings/${encodeURIComponent(id)}/stop`);
    toast("Stopping the training…");
    return true;
  } catch (error) {
    toast(error.message, { bad: true });
    return false;
  }
}

export function trainingsPanel(ctx) {
  const list = h("div", { id: "training-list" });
  const pager = cursorPager(async (key) => {
    const data = await get("/trainings", { limit: 10, exclusive_start_key: key });
    return { items: data.trainings || [], next: data.last_evaluated_key };
  }, (items) => clear(list, table([
    ["LoRA", (t) => h("a", { href: `#/training?id=${encodeURIComponent(t.id)}` }, loraName(t))],
    ["Base model", (t) => t.modelName],
    ["Status", (t) => badge(t.status)],
    ["Progress", (t) => progressText(t.progress)],
    ["Started", (t) => when(Number(t.created))],
    ["", (t) => ENDED.has(t.status) ? "" : h("button", { type: "button", class: "danger",
      onclick: async () => { if (await stopTraining(t.id)) await refresh(); } }, "Stop")],
  ], items, { empty: "No trainings yet." })), { label: "Trainings page" });
  async function refresh() {
    try { await pager.reload(); } catch (error) { clear(list, h("p", { class: "error", role: "alert" }, error.message)); }
  }
  return { element: h("section", { class: "panel", id: "trainings" }, h("h2", {}, "Trainings"), list, pager.controls), refresh };
}

// One training, live: returns {element, stop} (stop ends the event stream when the user leaves).
export function trainingDetail(ctx, id) {
  const abort = new AbortController();
  const title = h("h2", {}, "Training");
  const status = h("span", { id: "training-status" });
  const facts = h("p", { class: "muted" });
  const bar = h("progress", { id: "training-progress", max: 1, value: 0 });
  const line = h("p", { id: "training-progress-text", "aria-live": "polite" });
  const chart = lossChart();
  const message = h("div", { role: "alert" });
  const actions = h("div", { class: "row-buttons" });
  const element = h("section", { class: "panel", id: "training-detail" },
    h("p", {}, h("a", { href: "#/training" }, "← All trainings")), title, h("p", {}, "Status: ", status), facts,
    bar, line, h("div", { class: "chart-wrap" }, chart.element), message, actions);

  function showRecord(t) {
    title.textContent = `LoRA ${loraName(t)}`;
    clear(status, badge(t.job_status));
    const tp = t.params?.training_params || {};
    facts.textContent = [tp.model_name && `base ${tp.model_name}`, tp.dataset_name && `dataset ${tp.dataset_name}`,
      tp.training_instance_type, when(Number(t.timestamp))].filter(Boolean).join(" · ");
    showProgress(t.progress);
    const error = t.params?.resp?.error_msg;
    const ignored = t.params?.ignored_keys || [];
    clear(message, error ? h("p", { class: "error" }, error) : null,
      ignored.length ? h("p", { class: "muted" }, `kohya keys this trainer does not use: ${ignored.join(", ")}`) : null);
    clear(actions, ENDED.has(t.job_status) ? null : h("button", { type: "button", class: "danger", id: "stop-training",
      onclick: async (event) => {
        const button = event.currentTarget;
        button.disabled = true;
        button.disabled = await stopTraining(t.id);
      } }, "Stop"),
    t.job_status === "Completed" && can(ctx.me, "inference:create")
      ? h("button", { type: "button", class: "primary", id: "try-lora", onclick: () => ctx.navigate("generate", { lora: loraName(t) }) }, "Try this LoRA")
      : null);
  }

  function showProgress(p) {
    if (!p) return;
    if (p.total_steps || p.total) { bar.max = p.total_steps || p.total; bar.value = p.step || 0; }
    line.textContent = progressText(p);
  }

  async function follow() {
    showRecord(await get(`/trainings/${encodeURIComponent(id)}`));
    for await (const frame of events(`/trainings/${encodeURIComponent(id)}/events`, { signal: abort.signal })) {
      const data = frame.data || {};
      if (frame.kind === "step") {
        chart.add(Number(data.step), Number(data.loss));
        showProgress({ ...data, total_steps: data.total });
        clear(status, badge("Training"));
      } else if (frame.kind === "phase" || frame.kind === "scheduled") {
        clear(status, badge(data.phase));
      } else if (frame.kind === "queued") {
        clear(status, badge("Queued"));
      }
    }
    if (abort.signal.aborted) return;
    const ended = await get(`/trainings/${encodeURIComponent(id)}`);
    showRecord(ended);
    if (!chart.count) chart.note("No loss was recorded (no steps ran, or its events are older than the server keeps)");
  }
  follow().catch((error) => {
    if (abort.signal.aborted) return;
    clear(message, h("p", { class: "error" }, error instanceof ApiError ? error.message : String(error)));
  });
  return { element, stop: () => abort.abort() };
}
