// Models: the checkpoints a user may see, one server page at a time (filter by type), and for those who may
// create checkpoints: upload from the computer (parallel, resumable), import by URL, rename, delete.
import { can, del, get, post, put } from "../api.js";
import { ExpiredUpload, discard, partsDone, savedUpload, upload } from "../multipart.js";
import { badge, bytes, clear, clearErrors, field, h, remember, select, showError, table, toast, when } from "../ui.js";

const TYPES = ["Stable-diffusion", "Lora", "embeddings", "VAE", "ControlNet", "hypernetworks", "ESRGAN", "rembg",
  "ControlNet-annotator", "ADetailer"];
const PER_PAGE = 20;

export async function render(main, ctx) {
  const creator = can(ctx.me, "checkpoint:create");
  const stop = new AbortController();
  const page = Math.max(1, Number(ctx.params.page) || 1);
  const type = TYPES.includes(ctx.params.type) ? ctx.params.type : "";
  const list = h("div", { id: "model-list", "aria-live": "polite" });
  let timer = null;
  const filter = select([["", "All types"], ...TYPES], type, { id: "model-type-filter", "aria-label": "Type" });
  filter.addEventListener("change", () => ctx.navigate("models", filter.value ? { type: filter.value } : {}));

  async function refresh() {
    const data = await get("/checkpoints", { page, per_page: PER_PAGE, types: type || undefined });
    clear(list, table(columns(creator, { rename, remove }), data.checkpoints, { empty: "No models here yet." }),
      pager(ctx, page, data.pages, data.total, type));
    clearTimeout(timer);
    if (!stop.signal.aborted && data.checkpoints.some((c) => c.status === "Initial" && c.params?.import)) {
      timer = setTimeout(() => refresh().catch(() => {}), 3000);  // an import moves: show how far it is
    }
  }

  const renaming = h("div", { id: "rename-slot" });
  function rename(checkpoint) {
    const name = h("input", { required: true, maxlength: 20, value: checkpoint.name[0] });
    const form = h("form", { class: "rename-form", id: "rename-model", novalidate: true },
      field(`New name for ${checkpoint.name[0]}`, name, { name: "name", hint: "A letter, then letters, digits, _ or -" }),
      h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, "Rename"),
        h("button", { type: "button", onclick: () => clear(renaming) }, "Cancel")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      try {
        await put(`/checkpoints/${encodeURIComponent(checkpoint.id)}`, { name: name.value });
        toast(`Renamed to ${name.value}`);
        clear(renaming);
        await refresh();
      } catch (error) { showError(form, error); }
    });
    clear(renaming, form);
    name.focus();
  }

  async function remove(checkpoint) {
    if (!confirm(`Delete ${checkpoint.name.join(", ")}? Its files are removed from the store.`)) return;
    try {
      await del("/checkpoints", { checkpoint_id_list: [checkpoint.id] });
      toast(`Deleted ${checkpoint.name[0]}`);
      await refresh();
    } catch (error) { toast(error.message, { bad: true }); }
  }

  main.append(h("h1", {}, "Models"),
    creator ? h("div", { class: "grid2" }, uploadForm(refresh, stop.signal), importForm(refresh)) : null,
    h("section", { class: "panel" }, h("div", { class: "row models-head" }, h("h2", {}, "Checkpoints"), filter), renaming, list));
  await refresh();
  return () => { stop.abort(); clearTimeout(timer); };
}

function columns(creator, { rename, remove }) {
  const cols = [
    ["Name", (c) => h("span", { class: "model-name" }, c.name.join(", "))],
    ["Type", (c) => c.type],
    ["Status", (c) => [badge(c.status), importing(c),
      c.params?.error ? h("small", { class: "error" }, ` ${c.params.error}`) : null]],
    ["Size", (c) => bytes(c.size ?? c.params?.progress?.bytes_total)],
    ["Hash", (c) => c.short_hash ? h("code", { title: c.hash }, c.short_hash) : ""],
    ["Created", (c) => when(Number(c.created))],
  ];
  if (creator) {
    cols.push(["", (c) => h("span", { class: "model-actions" },
      c.status === "Active" ? h("button", { type: "button", onclick: () => rename(c) }, "Rename") : null,
      h("button", { type: "button", class: "danger", onclick: () => remove(c) }, "Delete"))]);
  }
  return cols;
}

// A URL import's progress, while it runs (params.import / params.progress, docs/decisions.md "Checkpoints").
function importing(checkpoint) {
  const job = checkpoint.params?.import;
  if (!job || checkpoint.status !== "Initial") return null;
  const { bytes_done: done, bytes_total: total } = checkpoint.params.progress || {};
  const part = total ? ` ${Math.floor((100 * (done || 0)) / total)}%` : done ? ` ${bytes(done)}` : "";
  return h("small", { class: "muted" }, ` importing${part}`);
}

function pager(ctx, page, pages, total, type) {
  const go = (to) => ctx.navigate("models", { ...(type ? { type } : {}), ...(to > 1 ? { page: to } : {}) });
  return h("div", { class: "pager" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => go(page - 1) }, "Previous"),
    h("span", { class: "muted" }, `Page ${Math.min(page, Math.max(pages, 1))} of ${Math.max(pages, 1)} · ${total} models`),
    h("button", { type: "button", id: "models-next", disabled: page >= pages, onclick: () => go(page + 1) }, "Next"));
}

function uploadForm(refresh, signal) {
  const file = h("input", { type: "file", required: true, accept: ".safetensors,.ckpt,.pt,.pth,.bin,.onnx,.yaml" });
  const kind = select(TYPES, "Stable-diffusion");
  const partMiB = h("input", { type: "number", min: "0.25", step: "any", value: "8" });
  const status = h("p", { class: "muted upload-status", "aria-live": "polite" });
  const bar = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const go = h("button", { class: "primary", type: "submit" }, "Upload");
  const restart = h("button", { type: "button", hidden: true }, "Start over");
  const form = h("form", { class: "panel", id: "upload-model", novalidate: true }, h("h2", {}, "Upload from this computer"),
    field("File", file, { name: "filename" }), h("div", { class: "row" }, field("Type", kind, { name: "checkpoint_type" }),
      field("Part size (MiB)", partMiB, { name: "part_size", hint: "S3 stores need at least 5" })),
    h("div", { class: "model-actions" }, go, restart), bar, status);
  remember(form, "models.upload");
  const resumable = () => {
    const saved = file.files[0] && savedUpload(file.files[0], kind.value);
    status.textContent = saved ? `Resumes: ${partsDone(saved)} of ${saved.urls.length} parts are uploaded already.` : "";
    restart.hidden = !saved;
  };
  // A saved upload the server no longer takes (its record deleted, say) would fail forever: the user drops it.
  restart.addEventListener("click", async () => {
    await discard(file.files[0], kind.value);
    resumable();
    status.textContent = "The saved upload is dropped: Upload sends the whole file.";
  });
  file.addEventListener("change", resumable);
  kind.addEventListener("change", resumable);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const chosen = file.files[0];
    if (!chosen) return showError(form, new Error("Choose a file to upload (filename)"));
    go.disabled = true;
    bar.hidden = false;
    try {
      const checkpoint = await sendWithRestart(chosen, kind.value, partMiB.value, signal, (done, total, sentNow, secs) => {
        bar.value = total ? done / total : 1;
        const speed = secs > 0 ? sentNow / secs : 0;
        const eta = speed > 0 ? Math.ceil((total - done) / speed) : null;
        status.textContent = `${bytes(done)} of ${bytes(total)} · ${bytes(speed)}/s${eta !== null ? ` · ${eta} s left` : ""}`;
      }, status);
      status.textContent = `${chosen.name} is uploaded (${checkpoint.status}).`;
      restart.hidden = true;
      toast(`${chosen.name} uploaded`);
      file.value = "";
      await refresh();
    } catch (error) {
      if (signal.aborted) return;
      showError(form, error);
      const saved = savedUpload(chosen, kind.value);
      status.textContent = saved ? "Upload again (or pick the same file after a reload) to resume." : "";
      restart.hidden = !saved;
      refresh().catch(() => {});  // the record of the unfinished upload (Initial) shows in the list
    } finally {
      go.disabled = false;
    }
  });
  return form;
}

// An upload whose signed URLs expired cannot resume: say so, drop it and send the whole file again.
async function sendWithRestart(file, type, partMiB, signal, progress, status) {
  try {
    return await upload(file, type, { partMiB, signal, progress });
  } catch (error) {
    if (!(error instanceof ExpiredUpload)) throw error;
    status.textContent = "The saved upload's signed URLs expired: starting over.";
    toast("The saved upload expired: starting over", { bad: true });
    await discard(file, type);
    return upload(file, type, { partMiB, signal, progress });
  }
}

function importForm(refresh) {
  const url = h("input", { type: "url", required: true, placeholder: "https://…/model.safetensors" });
  const kind = select(TYPES, "Stable-diffusion");
  const form = h("form", { class: "panel", id: "import-model", novalidate: true }, h("h2", {}, "Import from a URL"),
    field("URL", url, { name: "urls" }), field("Type", kind, { name: "checkpoint_type" }),
    h("button", { class: "primary", type: "submit" }, "Import"));
  remember(form, "models.import");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      await post("/checkpoints", { checkpoint_type: kind.value, urls: [url.value.trim()], params: { message: "console" } });
      toast("Import started: the model appears as Initial, then Active");
      url.value = "";
      url.dispatchEvent(new Event("input", { bubbles: true }));
      await refresh();
    } catch (error) { showError(form, error); }
  });
  return form;
}
