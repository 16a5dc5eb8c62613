// Jobs: the user's inference jobs (an administrator's: everyone's), newest first, one server page at a time
// (GET /inferences with type, status, limit and exclusive_start_key), as a table or a gallery; delete.
import { can, del, get } from "../api.js";
import { badge, clear, field, h, remember, select, table, toast } from "../ui.js";

const TYPES = ["txt2img", "img2img", "extra-single-image", "extra-batch-images", "rembg"];
const STATUSES = ["created", "inprogress", "succeed", "failed", "cancelled"];
const REFRESH_MS = 4000;

export async function render(main, ctx) {
  // GET /inferences/{id} of one's own jobs (images, queue place): anyone who may list or create jobs;
  // DELETE /inferences needs inference:all.
  const mayRead = can(ctx.me, "inference:list") || can(ctx.me, "inference:create");
  const mayDelete = can(ctx.me, "inference:all");
  const endpoints = await endpointNames(ctx.me);
  const form = h("form", { id: "jobs-filters", class: "panel row", novalidate: true },
    field("Type", select(TYPES, "txt2img"), { name: "type" }),
    field("Status", select([["", "any"], ...STATUSES], ""), { name: "status" }),
    field("Endpoint (this page)", select([["", "any"], ...endpoints], ""), { name: "endpoint" }),
    field("Per page", select([10, 20, 50], 20), { name: "limit" }),
    field("View", select([["table", "table"], ["gallery", "gallery"]], "table"), { name: "view" }),
    h("button", { type: "button", id: "jobs-refresh", onclick: () => load() }, "Refresh"));
  remember(form, "jobs");
  const list = h("div", { id: "job-list", "aria-live": "polite" });
  const previous = h("button", { type: "button", id: "jobs-previous" }, "Previous");
  const next = h("button", { type: "button", id: "jobs-next" }, "Next");
  const where = h("span", { class: "muted" });
  const state = { keys: [null], page: 0, timer: null, stopped: false };
  const value = (name) => form.elements.namedItem(name).value;

  form.addEventListener("change", (event) => {
    if (event.target.name !== "view") { state.keys = [null]; state.page = 0; }  // a new filter starts at page 1
    load();
  });
  previous.addEventListener("click", () => { state.page -= 1; load(); });
  next.addEventListener("click", () => { state.page += 1; load(); });

  async function load() {
    clearTimeout(state.timer);
    try {
      const data = await get("/inferences", {
        type: value("type"), status: value("status"), limit: value("limit"), exclusive_start_key: state.keys[state.page],
      });
      state.keys[state.page + 1] = data.last_evaluated_key;
      let jobs = data.inferences;
      if (value("endpoint")) jobs = jobs.filter((job) => job.params?.sagemaker_inference_endpoint_name === value("endpoint"));
      const views = mayRead ? await details(jobs) : {};
      clear(list, value("view") === "gallery" ? gallery(jobs, views) : jobTable(jobs, views));
      previous.disabled = state.page === 0;
      next.disabled = !data.last_evaluated_key;
      where.textContent = `Page ${state.page + 1}`;
      if (!state.stopped && jobs.some((job) => job.status === "inprogress")) {
        state.timer = setTimeout(refresh, REFRESH_MS);  // a waiting or running job moves: show where it is
      }
    } catch (error) {
      clear(list, h("p", { class: "error", role: "alert" }, error.message));
    }
  }

  // Not under the keyboard: a user tabbing through the rows keeps their place until they leave the list.
  function refresh() {
    if (list.contains(document.activeElement)) state.timer = setTimeout(refresh, REFRESH_MS);
    else load();
  }

  // The job views (signed image URLs, progress and queue place) of the jobs on this page that have any.
  async function details(jobs) {
    const wanted = jobs.filter((job) => job.status === "succeed" || job.status === "inprogress");
    const views = await Promise.all(wanted.map((job) =>
      get(`/inferences/${encodeURIComponent(job.InferenceJobId)}`).catch(() => null)));
    return Object.fromEntries(wanted.map((job, n) => [job.InferenceJobId, views[n]]));
  }

  function jobTable(jobs, views) {
    return table([
      ["Created", (job) => job.createTime?.slice(0, 19) || ""],
      ["Type", (job) => job.taskType],
      ["Status", (job) => statusCell(job, views[job.InferenceJobId])],
      ["Endpoint", (job) => job.params?.sagemaker_inference_endpoint_name || ""],
      ["Owner", (job) => (job.owner_group_or_role || []).join(", ")],
      ["Images", (job) => thumbnails(views[job.InferenceJobId], 2)],
      ["", (job) => actions(job)],
    ], jobs, { empty: "No jobs on this page." });
  }

  function gallery(jobs, views) {
    const tiles = jobs.flatMap((job) => (views[job.InferenceJobId]?.img_presigned_urls || []).map((url, n) =>
      h("figure", { class: "result" }, h("a", { href: url, target: "_blank", rel: "noopener" },
        h("img", { src: url, alt: `${job.taskType} ${job.InferenceJobId} image ${n + 1}`, loading: "lazy" })),
      h("figcaption", { class: "muted" }, job.createTime?.slice(0, 16), " ", actions(job)))));
    return tiles.length ? h("div", { class: "gallery", id: "job-gallery" }, tiles) : h("p", { class: "muted" }, "No images on this page.");
  }

  function actions(job) {
    const open = mayRead && (job.taskType === "txt2img" || job.taskType === "img2img") && job.status !== "created"
      ? h("a", { class: "button", href: `#/generate?job=${encodeURIComponent(job.InferenceJobId)}` }, "Open") : null;
    const remove = mayDelete ? h("button", { type: "button", class: "danger delete-job", dataset: { id: job.InferenceJobId },
      onclick: () => remove_(job) }, "Delete") : null;
    return h("span", { class: "row-actions" }, open, remove);
  }

  async function remove_(job) {
    if (!confirm(`Delete the ${job.taskType} job of ${job.createTime?.slice(0, 19)} and its images?`)) return;
    try {
      await del("/inferences", { inference_id_list: [job.InferenceJobId] });
      toast("Job deleted");
      await load();
    } catch (error) {
      toast(error.message, { bad: true });
    }
  }

  main.append(h("h1", {}, can(ctx.me, "user:all") ? "Jobs (everyone's)" : "Your jobs"), form, list,
    h("div", { class: "pager" }, previous, where, next));
  await load();
  return () => { state.stopped = true; clearTimeout(state.timer); };
}

function statusCell(job, view) {
  const progress = view?.progress;
  let detail = "";
  if (progress?.phase === "queued") detail = `queue position ${progress.queue_position ?? "?"}`;
  else if (progress?.total_steps) detail = `step ${progress.step}/${progress.total_steps}`;
  else if (progress?.phase) detail = progress.phase;
  else if (job.status === "failed" || job.status === "cancelled") detail = job.sagemakerRaw || "";
  return [badge(job.status), detail ? h("small", { class: "muted job-detail" }, ` ${detail}`) : null];
}

function thumbnails(view, most) {
  const urls = view?.img_presigned_urls || [];
  return urls.slice(0, most).map((url, n) => h("img", { src: url, alt: `image ${n + 1}`, class: "thumb", loading: "lazy" }));
}

async function endpointNames(me) {
  if (!can(me, "sagemaker_endpoint:list")) return [];
  try {
    const page = await get("/endpoints", { username: me.username, limit: 100 });
    return page.endpoints.map((endpoint) => endpoint.endpoint_name);
  } catch {
    return [];  // the filter then offers "any" only
  }
}
