// A checkpoint upload from the browser: ESD's multipart flow (POST /checkpoints, a PUT of each part to its
// signed URL, PUT /checkpoints/{id} with the ETags), parts in parallel, and resumable after a closed tab:
// the upload's state lives in localStorage, so picking the same file again sends only the missing parts.
import { ApiError, del, post, put } from "./api.js";

const STATE_KEY = "openesd.uploads";
const MiB = 1024 * 1024;
const MAX_PARTS = 100;  // ESD allows 1..100 parts per file

export class ExpiredUpload extends Error {}

// The file's identity as the browser knows it: a changed file (other size or date) is a new upload.
function fileKey(file, type) { return `${type}/${file.name}/${file.size}/${file.lastModified}`; }

function allStates() {
  try { return JSON.parse(localStorage.getItem(STATE_KEY) || "{}"); } catch { return {}; }
}

function keep(state) {
  const states = allStates();
  states[state.key] = state;
  localStorage.setItem(STATE_KEY, JSON.stringify(states));
}

function forget(key) {
  const states = allStates();
  delete states[key];
  localStorage.setItem(STATE_KEY, JSON.stringify(states));
}

// The unfinished upload of this very file, if one was begun (in this tab or one closed since).
export function savedUpload(file, type) { return allStates()[fileKey(file, type)] || null; }

export function partsDone(state) { return Object.keys(state.parts).length; }

function partSizeFor(size, wantedMiB) {
  const wanted = Math.max(1, Math.round((Number(wantedMiB) || 8) * MiB));
  return Math.max(wanted, Math.ceil(size / MAX_PARTS));
}

async function begin(file, type, partMiB, message) {
  const partSize = partSizeFor(file.size, partMiB);
  const count = Math.max(1, Math.ceil(file.size / partSize));
  const created = await post("/checkpoints", {
    checkpoint_type: type, params: { message }, filenames: [{ filename: file.name, parts_number: count }],
  });
  const state = {
    key: fileKey(file, type), id: created.checkpoint.id, type, filename: file.name, size: file.size,
    lastModified: file.lastModified, partSize, urls: created.s3PresignUrl[file.name], parts: {},
  };
  keep(state);
  return state;
}

async function sendPart(file, state, number, signal) {
  const start = (number - 1) * state.partSize;
  const body = file.slice(start, Math.min(file.size, start + state.partSize));
  const response = await fetch(state.urls[number - 1], { method: "PUT", body, signal });
  if (!response.ok) {
    const text = await response.text();
    let message = text;
    try { message = JSON.parse(text).message || text; } catch { /* S3 answers XML */ }
    if (response.status === 403 && /expired/i.test(text)) throw new ExpiredUpload(message);
    throw new ApiError(response.status, `part ${number} failed: ${message}`);
  }
  const etag = response.headers.get("ETag");
  if (!etag) throw new ApiError(0, `part ${number}: the storage answered without an ETag header`);
  return { etag, bytes: body.size };
}

// Upload `file` as a checkpoint of `type`, resuming a saved upload of the same file. `progress(done, total,
// sentNow, elapsedSeconds)` after each part. Resolves to the completed checkpoint; throws ExpiredUpload when
// the saved signed URLs expired (the caller starts over with `discard`).
export async function upload(file, type, { partMiB = 8, parallel = 4, message = "", signal, progress } = {}) {
  const state = savedUpload(file, type) || await begin(file, type, partMiB, message);
  const missing = state.urls.map((_, i) => i + 1).filter((n) => !(String(n) in state.parts));
  const sizeOf = (n) => Math.min(file.size, n * state.partSize) - (n - 1) * state.partSize;
  let done = Object.keys(state.parts).reduce((sum, n) => sum + sizeOf(Number(n)), 0);
  let sentNow = 0;
  const started = performance.now();
  const report = () => progress?.(done, file.size, sentNow, (performance.now() - started) / 1000);
  report();
  const queue = [...missing];
  let failure = null;
  const worker = async () => {
    while (queue.length && !failure) {
      const number = queue.shift();
      try {
        const { etag, bytes } = await sendPart(file, state, number, signal);
        state.parts[String(number)] = etag;
        keep(state);  // after every part: a closed tab loses at most the parts in flight
        done += bytes;
        sentNow += bytes;
        report();
      } catch (error) {
        failure = failure || error;  // no new part starts; those in flight finish and are kept
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, Math.max(1, queue.length)) }, worker));
  if (failure) throw failure;
  const tags = Object.entries(state.parts).map(([n, etag]) => ({ ETag: etag, PartNumber: Number(n) }))
    .sort((a, b) => a.PartNumber - b.PartNumber);
  const completed = await put(`/checkpoints/${encodeURIComponent(state.id)}`,
    { status: "Active", multi_parts_tags: { [state.filename]: tags } });
  forget(state.key);
  return completed.checkpoint;
}

// Drop a saved upload and its `Initial` record (which holds the file name), so the file can start over.
export async function discard(file, type) {
  const state = savedUpload(file, type);
  if (!state) return;
  try { await del("/checkpoints", { checkpoint_id_list: [state.id] }); } catch { /* gone already */ }
  forget(state.key);
}
