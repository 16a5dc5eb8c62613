// The public API as the console speaks it: the personal token in a header (never in a URL), ESD's envelope
// unwrapped, errors as ApiError with the server's message, and Server-Sent Events read through fetch (an
// EventSource cannot send the Authorization header).

const TOKEN_KEY = "openesd.token";
const TOKEN_ID_KEY = "openesd.token_id";

export const session = {
  get token() { return localStorage.getItem(TOKEN_KEY); },
  get tokenId() { return localStorage.getItem(TOKEN_ID_KEY); },
  keep(token, tokenId) {
    localStorage.setItem(TOKEN_KEY, token);
    if (tokenId) localStorage.setItem(TOKEN_ID_KEY, tokenId); else localStorage.removeItem(TOKEN_ID_KEY);
  },
  clear() { localStorage.removeItem(TOKEN_KEY); localStorage.removeItem(TOKEN_ID_KEY); },
};

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function headers(extra = {}) {
  const sent = { ...extra };
  if (session.token) sent.Authorization = `Bearer ${session.token}`;
  return sent;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) params.append(key, String(item));
  }
  const text = params.toString();
  return text ? `${path}${path.includes("?") ? "&" : "?"}${text}` : path;
}

// One API call; resolves to the envelope's `data` (or the whole body where a route has no envelope).
export async function api(method, path, { body, query, signal, raw } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(withQuery(path, query), init);
  if (raw) return response;
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("openesd:unauthorized"));
    throw new ApiError(response.status, (parsed && parsed.message) || text || response.statusText, parsed);
  }
  if (parsed && typeof parsed === "object" && "data" in parsed) return parsed.data;
  return parsed;
}

export const get = (path, query, options = {}) => api("GET", path, { ...options, query });
export const post = (path, body, options = {}) => api("POST", path, { ...options, body });
export const put = (path, body, options = {}) => api("PUT", path, { ...options, body });
export const del = (path, body, options = {}) => api("DELETE", path, { ...options, body });

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

// Server-Sent Events from `path`, as {id, kind, data} objects, until the stream ends or `signal` aborts.
// Reconnects after a dropped connection with Last-Event-ID, so no event is missed.
export async function* events(path, { signal, query } = {}) {
  let lastId = null;
  for (let attempt = 0; !signal?.aborted; attempt++) {
    let response;
    try {
      const sent = headers({ Accept: "text/event-stream" });
      if (lastId) sent["Last-Event-ID"] = lastId;
      response = await fetch(withQuery(path, query), { headers: sent, signal });
    } catch (error) {
      if (signal?.aborted) return;
      await sleep(Math.min(1000 * 2 ** attempt, 10000));
      continue;
    }
    if (!response.ok) {
      const text = await response.text();
      let message = text;
      try { message = JSON.parse(text).message || text; } catch { /* not JSON */ }
      throw new ApiError(response.status, message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let ended = false;
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (!frame) continue;
          if (frame.id) lastId = frame.id;
          attempt = 0;
          yield frame;
          ended = TERMINAL.has(frame.kind);
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
    }
    if (ended) return;  // a single job's stream closes after its terminal event
    await sleep(500);
  }
}

function parseFrame(block) {
  const frame = { id: null, kind: "message", data: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") frame.id = value;
    else if (field === "event") frame.kind = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try { frame.data = JSON.parse(data.join("\n")); } catch { frame.data = data.join("\n"); }
  return frame;
}

export function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// Whether the signed-in user holds `permission` (`resource:action`); `resource:all` holds every action.
export function can(me, permission) {
  if (!me) return false;
  const [resource] = permission.split(":");
  return me.permissions.includes(permission) || me.permissions.includes(`${resource}:all`);
}
