// The signed-in user's own personal tokens: list, create (the secret is shown once), revoke.
import { del, get, post, session } from "../api.js";
import { clear, clearErrors, field, h, showError, table, toast, when } from "../ui.js";

export async function render(main, ctx) {
  const list = h("div", { id: "token-list" });
  const name = h("input", { required: true, maxlength: 100 });
  const days = h("input", { type: "number", min: 1, placeholder: "never" });
  const shown = h("div", { id: "new-token", "aria-live": "polite" });
  const form = h("form", { class: "panel", id: "create-token", novalidate: true },
    h("h2", {}, "New token"),
    h("div", { class: "row" }, field("Name", name, { name: "name" }), field("Expires in days", days, { name: "expires_in_days" })),
    h("button", { class: "primary", type: "submit" }, "Create token"), shown);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const body = { name: name.value || "default" };
      if (days.value) body.expires_in_days = Number(days.value);
      const created = await post("/tokens", body);
      clear(shown, h("p", {}, "Copy it now: it is not shown again."),
        h("input", { readonly: true, value: created.secret, class: "secret", "aria-label": "New token" }));
      name.value = "";
      await refresh();
    } catch (error) {
      showError(form, error);
    }
  });

  async function refresh() {
    const { tokens } = await get("/tokens");
    clear(list, table([
      ["Name", (t) => t.name],
      ["Created", (t) => when(t.created)],
      ["Last used", (t) => when(t.last_used)],
      ["Expires", (t) => when(t.expires) || "never"],
      ["", (t) => t.id === session.tokenId ? h("span", { class: "muted" }, "this console")
        : h("button", { class: "danger", type: "button", onclick: () => revoke(t) }, "Revoke")],
    ], tokens, { empty: "No tokens." }));
  }

  async function revoke(token) {
    if (!confirm(`Revoke the token “${token.name}”? Programs using it stop working.`)) return;
    try {
      await del(`/tokens/${encodeURIComponent(token.id)}`);
      toast(`Token ${token.name} revoked`);
      await refresh();
    } catch (error) {
      toast(error.message, { bad: true });
    }
  }

  main.append(h("h1", {}, `Tokens of ${ctx.me.username}`),
    h("p", { class: "muted" }, "Personal tokens let scripts, the SDK and WebUI clients act as you."),
    h("section", { class: "panel" }, h("h2", {}, "Your tokens"), list), form);
  await refresh();
}
