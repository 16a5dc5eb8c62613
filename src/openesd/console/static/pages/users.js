// Users and roles (administration): one page of users at a time, create, delete and assign roles (user:all);
// roles with their permissions, create (role:create) and delete (role:all). What the user may not do is not offered.
import { can, del, get, post } from "../api.js";
import { clear, clearErrors, cursorPager, field, h, remember, showError, table, toast } from "../ui.js";

const RESOURCES = ["inference", "checkpoint", "sagemaker_endpoint", "train", "user", "role"];
const ACTIONS = ["all", "list", "create"];
const DEFAULT_ROLE = "IT Operator";  // the API refuses to delete it

export async function render(main, ctx) {
  const roles = { names: [], changed: [] };  // the roles the user may see, for the role pickers
  const panels = [
    can(ctx.me, "user:list") ? usersPanel(ctx, roles) : null,
    can(ctx.me, "role:list") ? rolesPanel(ctx, roles) : null,
  ].filter(Boolean);
  main.append(h("h1", {}, "Users and roles"), ...panels.map((panel) => panel.element));
  await Promise.all(panels.map((panel) => panel.refresh()));
}

// Checkboxes of the known roles (refreshed when roles change) plus a field for roles not listed.
function rolePicker(roles, chosen = []) {
  const box = h("fieldset", { class: "checks" }, h("legend", {}, "Roles"));
  const other = h("input", { placeholder: "other role names, comma separated" });
  function draw() {
    const ticked = new Set([...box.querySelectorAll("input[type=checkbox]:checked")].map((input) => input.value).concat(chosen));
    clear(box, h("legend", {}, "Roles"), roles.names.map((name) => h("label", { class: "field inline" },
      h("input", { type: "checkbox", value: name, checked: ticked.has(name), "data-role": name }), name)));
    other.value = chosen.filter((name) => !roles.names.includes(name)).join(", ");
    chosen = [];
  }
  draw();
  roles.changed.push(draw);
  return {
    elements: [box, field("Other roles", other, { name: "other_roles" })],
    value: () => [...box.querySelectorAll("input:checked")].map((input) => input.value)
      .concat(other.value.split(",").map((name) => name.trim()).filter(Boolean)),
  };
}

function usersPanel(ctx, roles) {
  const list = h("div", { id: "user-list" });
  const editing = h("div", { id: "user-edit" });
  const admin = can(ctx.me, "user:all");
  const pager = cursorPager(async (key) => {
    const data = await get("/users", { limit: 10, exclusive_start_key: key });
    return { items: data.users || [], next: data.last_evaluated_key };
  }, (items) => clear(list, table([
    ["User", (u) => u.username],
    ["Roles", (u) => u.roles.join(", ")],
    ["Created by", (u) => u.creator],
    ["", (u) => admin ? h("div", { class: "row-buttons" },
      h("button", { type: "button", onclick: () => clear(editing, rolesForm(u)) }, "Roles…"),
      u.username === ctx.me.username ? null
        : h("button", { type: "button", class: "danger", "data-delete-user": u.username, onclick: () => remove(u) }, "Delete")) : ""],
  ], items, { empty: "No users." })), { label: "Users page" });

  async function refresh() {
    try { await pager.reload(); } catch (error) { clear(list, h("p", { class: "error", role: "alert" }, error.message)); }
  }
  async function remove(user) {
    if (!confirm(`Delete the user “${user.username}”? Their tokens stop working.`)) return;
    try {
      await del("/users", { user_name_list: [user.username] });
      toast(`User ${user.username} deleted`);
      await refresh();
    } catch (error) { toast(error.message, { bad: true }); }
  }
  // The API sets roles with the password (ESD's upsert): the current one keeps the user's tokens, a new one
  // signs them out everywhere.
  function rolesForm(user) {
    const picker = rolePicker(roles, user.roles);
    const password = h("input", { type: "password", autocomplete: "new-password", required: true });
    const form = h("form", { class: "panel", id: "user-roles", novalidate: true }, h("h3", {}, `Roles of ${user.username}`),
      ...picker.elements,
      field("Password", password, { name: "password", hint: "their current password keeps their tokens; a new one signs them out" }),
      h("button", { class: "primary", type: "submit" }, "Save roles"),
      h("button", { type: "button", onclick: () => clear(editing) }, "Cancel"));
    form.addEventListener("submit", (event) => save(event, form, { username: user.username, password: password.value, roles: picker.value() }));
    return form;
  }
  async function save(event, form, body) {
    event.preventDefault();
    clearErrors(form);
    try {
      await post("/users", body);
      toast(`User ${body.username} saved`);
      if (form.id === "user-roles") clear(editing); else form.reset();
      await refresh();
    } catch (error) { showError(form, error); }
  }
  const parts = [h("h2", {}, "Users"), list, pager.controls, editing];
  if (admin) parts.push(createUserForm(roles, save));
  return { element: h("section", { class: "panel", id: "users" }, parts), refresh };
}

function createUserForm(roles, save) {
  const username = h("input", { required: true, autocomplete: "off" });
  const password = h("input", { type: "password", autocomplete: "new-password", required: true });
  const picker = rolePicker(roles);
  const form = h("form", { id: "create-user", novalidate: true }, h("h3", {}, "New user"),
    h("div", { class: "row" }, field("User name", username, { name: "username" }), field("Password", password, { name: "password" })),
    ...picker.elements, h("button", { class: "primary", type: "submit" }, "Create user"));
  remember(form, "users-create");
  form.addEventListener("submit", (event) => save(event, form, { username: username.value.trim(), password: password.value, roles: picker.value() }));
  return form;
}

function rolesPanel(ctx, roles) {
  const list = h("div", { id: "role-list" });
  const mayDelete = can(ctx.me, "role:all");
  async function refresh() {
    try {
      const data = await get("/roles");  // ESD answers every role at once; a deployment has a handful
      roles.names = data.roles.map((role) => role.role_name).sort();
      roles.changed.forEach((draw) => draw());
      clear(list, table([
        ["Role", (r) => r.role_name],
        ["Permissions", (r) => r.permissions.join(", ")],
        ["Created by", (r) => r.creator],
        ["", (r) => mayDelete && r.role_name !== DEFAULT_ROLE
          ? h("button", { type: "button", class: "danger", "data-delete-role": r.role_name, onclick: () => remove(r.role_name) }, "Delete") : ""],
      ], data.roles, { empty: "No roles." }));
    } catch (error) { clear(list, h("p", { class: "error", role: "alert" }, error.message)); }
  }
  async function remove(name) {
    if (!confirm(`Delete the role “${name}”? Users holding it lose its permissions.`)) return;
    try {
      await del("/roles", { role_name_list: [name] });
      toast(`Role ${name} deleted`);
      await refresh();
    } catch (error) { toast(error.message, { bad: true }); }
  }
  const parts = [h("h2", {}, "Roles"), list];
  if (can(ctx.me, "role:create")) parts.push(createRoleForm(refresh));
  return { element: h("section", { class: "panel", id: "roles" }, parts), refresh };
}

function createRoleForm(refresh) {
  const name = h("input", { required: true, autocomplete: "off" });
  const grid = h("fieldset", { class: "checks" }, h("legend", {}, "Permissions"),
    RESOURCES.flatMap((resource) => ACTIONS.map((action) => h("label", { class: "field inline" },
      h("input", { type: "checkbox", name: `perm-${resource}-${action}`, value: `${resource}:${action}` }), `${resource}:${action}`))));
  const other = h("input", { placeholder: "resource:action, comma separated" });
  const form = h("form", { id: "create-role", novalidate: true }, h("h3", {}, "New role"),
    field("Role name", name, { name: "role_name" }), grid, field("Other permissions", other, { name: "permission" }),
    h("button", { class: "primary", type: "submit" }, "Create role"));
  remember(form, "users-role");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const permissions = [...grid.querySelectorAll("input:checked")].map((input) => input.value)
      .concat(other.value.split(",").map((p) => p.trim()).filter(Boolean));
    try {
      await post("/roles", { role_name: name.value.trim(), permissions });
      toast(`Role ${name.value.trim()} saved`);
      form.reset();
      await refresh();
    } catch (error) { showError(form, error); }
  });
  return form;
}
