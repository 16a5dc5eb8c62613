// Sign in with a user name and password (`POST /tokens`, which mints a personal token) or with a personal
// token; the console keeps only that token.
import { get, post, session } from "../api.js";
import { clearErrors, field, h, showError } from "../ui.js";

export function render(main, ctx) {
  const username = h("input", { autocomplete: "username", required: true });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true });
  const byPassword = h("form", { id: "signin-password", class: "panel", novalidate: true },
    h("h1", {}, "Sign in"),
    field("User name", username, { name: "username" }),
    field("Password", password, { name: "password" }),
    h("button", { class: "primary", type: "submit" }, "Sign in"));
  byPassword.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(byPassword);
    try {
      const created = await post("/tokens", { username: username.value, password: password.value, name: "console" });
      session.keep(created.secret, created.token?.id);
      await enter(ctx);
    } catch (error) {
      password.value = "";
      showError(byPassword, error);
    }
  });

  const token = h("input", { type: "password", autocomplete: "off", placeholder: "oesd_…" });
  const byToken = h("form", { id: "signin-token", class: "panel", novalidate: true },
    h("h2", {}, "…or with a personal token"),
    field("Personal token", token, { name: "token" }),
    h("button", { type: "submit" }, "Use this token"));
  byToken.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(byToken);
    session.keep(token.value.trim(), null);
    try {
      await get("/users/me");
      await enter(ctx);
    } catch (error) {
      session.clear();
      showError(byToken, error.status === 403 || error.status === 401 ? new Error("token: not a valid personal token") : error);
    }
  });
  main.append(h("div", { class: "signin" }, byPassword, byToken));
  username.focus();
}

async function enter(ctx) {
  await ctx.signedIn();
  ctx.navigate("");
}
