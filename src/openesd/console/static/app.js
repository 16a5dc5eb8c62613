// The console's shell: sign-in, the page registry, hash routing (#/page?key=value) and the navigation,
// which offers only the pages the signed-in user's permissions allow.
import { ApiError, can, del, get, session } from "./api.js";
import { clear, h } from "./ui.js";

// Each page module exports `render(main, ctx)`; it may return a function that stops what it started.
// `allowed(me)`: whether the page is offered (the API refuses the rest anyway).
export const PAGES = [
  { path: "generate", title: "Generate", allowed: (me) => can(me, "inference:create") },
  { path: "jobs", title: "Jobs", allowed: (me) => can(me, "inference:list") || can(me, "inference:create") },
  { path: "models", title: "Models", allowed: (me) => can(me, "checkpoint:list") || can(me, "checkpoint:create") },
  { path: "endpoints", title: "Endpoints", allowed: (me) => can(me, "sagemaker_endpoint:list") },
  { path: "training", title: "Training", allowed: (me) => can(me, "train:all") },
  { path: "users", title: "Users", allowed: (me) => can(me, "user:list") || can(me, "role:list") },
  { path: "account", title: "Tokens", allowed: () => true },
];

const state = { me: null, stop: null, routing: 0 };

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { path: path || "", params: Object.fromEntries(new URLSearchParams(query)) };
}

export function navigate(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  location.hash = `#/${path}${query ? `?${query}` : ""}`;
}

async function whoAmI() {
  if (!session.token) return null;
  try {
    return await get("/users/me");
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      session.clear();
      return null;
    }
    throw error;
  }
}

async function signOut() {
  const id = session.tokenId;
  if (id) {
    try { await del(`/tokens/${encodeURIComponent(id)}`); } catch { /* an expired token is gone already */ }
  }
  session.clear();
  sessionStorage.clear();
  state.me = null;
  navigate("signin");
}

function renderShell(current) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!state.me) {
    clear(nav);
    clear(who);
    return;
  }
  clear(nav, PAGES.filter((page) => page.allowed(state.me)).map((page) =>
    h("a", { href: `#/${page.path}`, "aria-current": page.path === current ? "page" : false }, page.title)));
  clear(who, h("span", { id: "whoami" }, state.me.username),
    h("button", { id: "sign-out", type: "button", onclick: signOut }, "Sign out"));
}

async function route() {
  // A later navigation wins: a route still awaiting (who am I, a page module) when the hash changes again
  // must not draw over the newer one.
  const mine = ++state.routing;
  const stale = () => mine !== state.routing;
  if (state.stop) { try { state.stop(); } catch { /* already stopped */ } state.stop = null; }
  const main = document.getElementById("main");
  const { path, params } = parseHash();
  if (!state.me) state.me = await whoAmI().catch(() => null);
  if (stale()) return;
  let name = path;
  if (!state.me) name = "signin";
  else if (!path || path === "signin") {
    const first = PAGES.find((page) => page.allowed(state.me));
    return navigate(first ? first.path : "account");
  }
  const known = name === "signin" || PAGES.some((page) => page.path === name && page.allowed(state.me));
  renderShell(name);
  document.getElementById("nav").classList.remove("open");
  if (!known) {
    clear(main, h("h1", {}, "Not here"), h("p", {}, `There is no page “${name}” for you.`));
    return;
  }
  const ctx = { me: state.me, params, navigate, signedIn: async () => { state.me = await whoAmI(); } };
  clear(main, h("p", { class: "muted" }, "Loading…"));
  try {
    const module = await import(`./pages/${name}.js`);
    if (stale()) return;
    clear(main);
    document.title = `${PAGES.find((page) => page.path === name)?.title || "Sign in"} · OpenESD`;
    const stop = (await module.render(main, ctx)) || null;
    if (stale()) { if (stop) stop(); return; }
    state.stop = stop;
  } catch (error) {
    clear(main, h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, error.message || String(error)));
  }
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
window.addEventListener("openesd:unauthorized", () => {
  if (state.me) { session.clear(); state.me = null; navigate("signin"); }
});
document.getElementById("menu-toggle").addEventListener("click", (event) => {
  const nav = document.getElementById("nav");
  nav.classList.toggle("open");
  event.currentTarget.setAttribute("aria-expanded", String(nav.classList.contains("open")));
});
route();
