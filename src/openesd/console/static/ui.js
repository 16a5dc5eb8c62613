// Small DOM helpers shared by every page: element building, form fields with the server's message next to
// the field it names, tables, pagers, toasts and formatting.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

// A labelled input; `name` is the field the server's messages are matched against.
export function field(label, input, { name, hint, inline } = {}) {
  if (name) input.name = input.name || name;
  const id = input.id || `f-${name || Math.random().toString(36).slice(2)}`;
  input.id = id;
  const error = h("span", { class: "field-error", "data-error-for": input.name || "", role: "alert" });
  return h("label", { class: inline ? "field inline" : "field", for: id },
    inline ? [input, label] : [label, input], hint ? h("small", { class: "muted" }, hint) : null, error);
}

// Show `error` (an ApiError) next to the form field whose name it mentions, or at the form's foot.
export function showError(form, error) {
  clearErrors(form);
  const message = error?.message || String(error);
  const names = [...form.querySelectorAll("[name]")].map((input) => input.name).filter(Boolean);
  // The longest name first, so that `negative_prompt` wins over `prompt`.
  const named = names.sort((a, b) => b.length - a.length).find((name) => message.includes(name));
  const slot = named && form.querySelector(`[data-error-for="${CSS.escape(named)}"]`);
  if (slot) {
    slot.textContent = message;
    form.querySelector(`[name="${CSS.escape(named)}"]`)?.setAttribute("aria-invalid", "true");
  } else {
    let foot = form.querySelector(".form-error");
    if (!foot) { foot = h("p", { class: "error form-error", role: "alert" }); form.append(foot); }
    foot.textContent = message;
  }
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map((option) => {
    const [val, text] = Array.isArray(option) ? option : [option, option];
    return h("option", { value: val, selected: String(val) === String(value) }, text);
  }));
}

// A table of `rows` with `columns` = [[heading, row => cell], ...].
export function table(columns, rows, { empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", { scope: "col" }, heading)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row))))))));
}

export function toast(message, { bad = false } = {}) {
  const box = document.getElementById("toasts");
  const note = h("div", { class: bad ? "toast bad" : "toast" }, message);
  box.append(note);
  setTimeout(() => note.remove(), bad ? 8000 : 4000);
}

export function badge(status) {
  const s = String(status || "").toLowerCase();
  const kind = /succeed|complete|inservice|active|ok/.test(s) ? "ok"
    : /fail|error|cancel|stopp/.test(s) ? "bad" : /progress|creat|updat|run|queue|train|load/.test(s) ? "run" : "";
  return h("span", { class: `badge ${kind}` }, status ?? "");
}

export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function when(value) {
  if (!value) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

// Keeps what the user typed in a form across reloads and errors (sessionStorage, per form key).
export function remember(form, key) {
  const storeKey = `openesd.form.${key}`;
  try {
    const saved = JSON.parse(sessionStorage.getItem(storeKey) || "{}");
    for (const [name, value] of Object.entries(saved)) {
      const input = form.elements.namedItem(name);
      if (!input || input.type === "file" || input.type === "password") continue;
      if (input.type === "checkbox") input.checked = Boolean(value); else input.value = value;
    }
  } catch { /* a broken saved form is ignored */ }
  form.addEventListener("input", () => {
    const values = {};
    for (const input of form.elements) {
      if (!input.name || input.type === "file" || input.type === "password") continue;
      values[input.name] = input.type === "checkbox" ? input.checked : input.value;
    }
    sessionStorage.setItem(storeKey, JSON.stringify(values));
  });
}

// One server page at a time (the Training and Users pages): `load(key)` resolves to {items, next} for the page
// after cursor `key`; "Next" follows the server's cursor, "Previous" goes back to a cursor already seen.
export function cursorPager(load, show, { label = "Page" } = {}) {
  const keys = [null];
  let nextKey = null;
  const where = h("span", { class: "muted", "aria-live": "polite" });
  const previous = h("button", { type: "button", disabled: true, onclick: () => turn(keys.length - 2) }, "Previous");
  const next = h("button", { type: "button", disabled: true, onclick: () => { keys.push(nextKey); turn(keys.length - 1); } }, "Next");
  async function go(index) {
    keys.length = index + 1;
    const { items, next: key } = await load(keys[index]);
    nextKey = key || null;
    show(items);
    previous.disabled = index === 0;
    next.disabled = !nextKey;
    where.textContent = `${label} ${index + 1}`;
  }
  const turn = (index) => go(index).catch((error) => toast(error.message, { bad: true }));
  return { controls: h("div", { class: "pager" }, previous, where, next), reload: () => go(keys.length - 1) };
}
