// Training datasets: one page of the list, a kohya folder's upload (drop a directory or pick one) and what
// the API reports about a dataset: the problems `Enabled` refuses it for, and the notes it accepts it with.
import { ApiError, del, get, post, put } from "../../api.js";
import { badge, clear, clearErrors, cursorPager, field, h, remember, showError, table, toast, when } from "../../ui.js";
import { checkName, chunks, fileType, filesFromDrop, filesFromPicker, planUpload } from "./folder.js";

const PARALLEL = 4;  // files uploaded at once: enough to hide the round trips, few enough for a phone

export function datasetsPanel(ctx, { onUse }) {
  const list = h("div", { id: "dataset-list" });
  const detail = h("div", { id: "dataset-detail", "aria-live": "polite" });
  const pager = cursorPager(async (key) => {
    const data = await get("/datasets", { limit: 10, exclusive_start_key: key });
    return { items: data.datasets || [], next: data.last_evaluated_key };
  }, (items) => clear(list, table([
    ["Name", (d) => h("button", { type: "button", class: "link", onclick: () => show(d.datasetName) }, d.datasetName)],
    ["Status", (d) => badge(d.status)],
    ["Created", (d) => when(Number(d.timestamp))],
    ["Description", (d) => d.description || ""],
  ], items, { empty: "No datasets yet: upload a folder below." })), { label: "Datasets page" });

  async function show(name) {
    try {
      clear(detail, datasetDetail(await get(`/datasets/${encodeURIComponent(name)}`), { onUse, refresh, show }));
    } catch (error) {
      clear(detail, h("p", { class: "error", role: "alert" }, error.message));
    }
  }
  async function refresh() {
    try { await pager.reload(); } catch (error) { clear(list, h("p", { class: "error", role: "alert" }, error.message)); }
  }
  const upload = uploadForm(ctx, { refresh, show });
  return {
    element: h("section", { class: "panel", id: "datasets" }, h("h2", {}, "Datasets"), list, pager.controls, detail, upload),
    refresh,
  };
}

function datasetDetail(dataset, { onUse, refresh, show }) {
  const items = dataset.data || [];
  const images = items.filter((item) => item.type === "image").length;
  const notes = dataset.notes || [];
  const enable = h("button", { type: "button" }, "Check and enable");
  const problems = h("div", { class: "dataset-problems", role: "alert" });
  enable.addEventListener("click", async () => {
    try {
      await put(`/datasets/${encodeURIComponent(dataset.datasetName)}`, { status: "Enabled" });
      await refresh();
      await show(dataset.datasetName);
    } catch (error) {
      clear(problems, problemList(error));
    }
  });
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete the dataset “${dataset.datasetName}” and its files?`)) return;
    try {
      await del("/datasets", { dataset_name_list: [dataset.datasetName] });
      toast(`Dataset ${dataset.datasetName} deleted`);
      await refresh();
    } catch (error) { toast(error.message, { bad: true }); }
  });
  return h("div", { class: "dataset-card" },
    h("h3", {}, dataset.datasetName, " ", badge(dataset.status)),
    h("p", { class: "muted" }, `${images} image(s), ${items.length - images} other file(s)`, dataset.description ? ` · ${dataset.description}` : ""),
    notes.length ? h("ul", { class: "dataset-notes" }, notes.map((note) => h("li", {}, note))) : null,
    problems,
    h("div", { class: "row-buttons" },
      dataset.status === "Enabled" ? h("button", { type: "button", class: "primary", onclick: () => onUse(dataset.datasetName) }, "Train on it")
        : enable,
      remove));
}

// The API lists every problem of a dataset in one 400; one line each, as the trainer would meet them.
function problemList(error) {
  const message = String(error.message || error);
  const listed = message.match(/^(.*?problem\(s\)):\s*(.*)$/s);
  const lines = listed ? listed[2].split("; ") : [];
  return h("div", {}, h("p", { class: "error" }, listed ? `${listed[1]}:` : message),
    lines.length ? h("ul", { class: "error" }, lines.map((line) => h("li", {}, line))) : null);
}

function uploadForm(ctx, { refresh, show }) {
  const picker = h("input", { type: "file", webkitdirectory: true, multiple: true });
  const name = h("input", { maxlength: 20, placeholder: "from the folder's name" });
  const description = h("input", { maxlength: 200 });
  const drop = h("div", { class: "drop-zone", tabindex: "0", role: "button", "aria-label": "Drop a dataset folder here or choose one" },
    "Drop a kohya folder here (", h("code", {}, "10_cat/a.png + a.txt"), ") or choose one:");
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const problems = h("div", { class: "dataset-problems", role: "alert" });
  const send = h("button", { class: "primary", type: "submit", disabled: true }, "Upload dataset");
  const form = h("form", { id: "dataset-upload", novalidate: true }, h("h3", {}, "Upload a dataset folder"), drop,
    field("Folder", picker, { name: "folder" }),
    h("div", { class: "row" }, field("Dataset name", name, { name: "dataset_name" }), field("Description", description, { name: "description" })),
    summary, bar, send, problems);
  remember(form, "training-dataset");
  let plan = null;

  function choose(found) {
    clearErrors(form);
    clear(problems);
    try {
      plan = planUpload(found);
      if (!name.value) name.value = plan.name;
      summary.textContent = `${plan.folders.map((f) => f.prefix).join(", ")}: ${plan.images} image(s), ${plan.captions} caption or other file(s)`;
      send.disabled = false;
    } catch (error) {
      plan = null;
      send.disabled = true;
      summary.textContent = "";
      showError(form, error);
    }
  }
  picker.addEventListener("change", () => choose(filesFromPicker(picker)));
  drop.addEventListener("click", () => picker.click());
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); picker.click(); } });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    choose(await filesFromDrop(event.dataTransfer));
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    clear(problems);
    if (!plan) return;
    send.disabled = true;
    try {
      checkName(name.value);
      const answer = await uploadDataset(ctx, plan, name.value, description.value, bar, summary);
      toast(`Dataset ${name.value} is ready`);
      summary.textContent = answer.notes?.length ? answer.notes.join(" ") : `Dataset ${name.value} is enabled.`;
      await refresh();
      await show(name.value);
    } catch (error) {
      if (error instanceof ApiError && error.status === 400 && /cannot be Enabled/.test(error.message)) {
        clear(problems, problemList(error));
        await refresh();  // the dataset is listed, not enabled, until its problems are fixed
      } else {
        showError(form, error);
      }
    } finally {
      send.disabled = !plan;
    }
  });
  return form;
}

// Register each folder's files (≤ 100 a request), PUT each to its signed URL, then ask for `Enabled`, which
// checks the dataset as the trainer will read it.
async function uploadDataset(ctx, plan, name, description, bar, summary) {
  const total = plan.folders.reduce((sum, folder) => sum + folder.files.length, 0);
  let done = 0;
  bar.hidden = false;
  bar.max = total;
  bar.value = 0;
  for (const { prefix, files } of plan.folders) {
    for (const batch of chunks(files)) {
      const content = batch.map((file) => ({ filename: file.name, name: file.name, type: fileType(file), params: {} }));
      const created = await post("/datasets", { dataset_name: name, content, params: { description }, prefix, creator: ctx.me.username });
      const queue = [...batch];
      await Promise.all(Array.from({ length: PARALLEL }, async () => {
        for (let file = queue.shift(); file; file = queue.shift()) {
          await putFile(created.s3PresignUrl[file.name], file);
          bar.value = ++done;
          summary.textContent = `Uploaded ${done} of ${total} files`;
        }
      }));
    }
  }
  return put(`/datasets/${encodeURIComponent(name)}`, { status: "Enabled" });
}

async function putFile(url, file) {
  const answer = await fetch(url, { method: "PUT", body: file });
  if (!answer.ok) {
    let message = await answer.text();
    try { message = JSON.parse(message).message || message; } catch { /* not JSON */ }
    throw new ApiError(answer.status, `${file.name}: the upload failed (${message || answer.status})`);
  }
}
