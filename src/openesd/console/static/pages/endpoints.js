// Endpoints: the worker pools a user may see (status, type, instance counts now/min/max), one server page at a
// time; create one (sagemaker_endpoint:create or :all) and delete (sagemaker_endpoint:all, as the API asks).
import { can, del, get, post } from "../api.js";
import { badge, clear, clearErrors, field, h, remember, select, showError, table, toast, when } from "../ui.js";

const LIMIT = 20;
const INSTANCE_TYPES = ["cpu", "gpu", "ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.g5.xlarge", "ml.g5.2xlarge",
  "ml.g5.4xlarge", "ml.g6.xlarge", "ml.g6.2xlarge"];

export async function render(main, ctx) {
  const me = ctx.me;
  const deleter = can(me, "sagemaker_endpoint:all");
  const after = ctx.params.after || "";
  const list = h("div", { id: "endpoint-list", "aria-live": "polite" });

  async function refresh() {
    // `username`: a holder of sagemaker_endpoint:list sees the endpoints of their roles only with it (§7.3).
    const data = await get("/endpoints", { username: me.username, limit: LIMIT, exclusive_start_key: after || undefined });
    clear(list, table(columns(deleter, remove), data.endpoints, { empty: "No endpoints yet." }),
      h("div", { class: "pager" },
        h("button", { type: "button", disabled: !after, onclick: () => ctx.navigate("endpoints") }, "First page"),
        h("button", { type: "button", id: "endpoints-next", disabled: !data.last_evaluated_key,
          onclick: () => ctx.navigate("endpoints", { after: data.last_evaluated_key }) }, "Next")));
  }

  async function remove(endpoint) {
    if (!confirm(`Delete the endpoint ${endpoint.endpoint_name}? Its instances stop; jobs waiting on it fail.`)) return;
    try {
      await del("/endpoints", { endpoint_name_list: [endpoint.endpoint_name] });
      toast(`Endpoint ${endpoint.endpoint_name} deleted`);
      await refresh();
    } catch (error) { toast(error.message, { bad: true }); }
  }

  const creator = can(me, "sagemaker_endpoint:create");
  main.append(h("h1", {}, "Endpoints"),
    creator ? await createForm(me, refresh) : null,
    h("section", { class: "panel" }, h("h2", {}, "Endpoints"), list));
  await refresh();
  // Creating and Updating endpoints change by themselves: look again every few seconds while the page is open.
  const timer = setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, 5000);
  return () => clearInterval(timer);
}

function columns(deleter, remove) {
  const cols = [
    ["Name", (e) => h("span", { class: "endpoint-name" }, e.endpoint_name)],
    ["Status", (e) => [badge(e.endpoint_status), e.error ? h("small", { class: "error" }, ` ${e.error}`) : null]],
    ["Type", (e) => e.endpoint_type],
    ["Instance", (e) => e.instance_type],
    ["Instances now / min / max", (e) => `${e.current_instance_count} / ${e.min_instance_number} / ${e.max_instance_number}`],
    ["Autoscaling", (e) => (e.autoscaling ? "on" : "off")],
    ["Roles", (e) => (e.owner_group_or_role || []).join(", ")],
    ["Started", (e) => when(e.startTime)],
  ];
  if (deleter) {
    cols.push(["", (e) => h("button", { type: "button", class: "danger", onclick: () => remove(e) }, "Delete")]);
  }
  return cols;
}

// The roles an endpoint may serve: all of them for whoever may list roles, else the user's own.
async function roleNames(me) {
  if (!can(me, "role:list")) return me.roles;
  try {
    const data = await get("/roles");
    return data.roles.map((role) => role.role_name);
  } catch { return me.roles; }
}

async function createForm(me, refresh) {
  const name = h("input", { maxlength: 20, placeholder: "e.g. team-a", pattern: "[A-Za-z0-9-]*" });
  const type = select(["Async", "Real-time"], "Async");
  const instance = h("input", { list: "instance-types", value: "cpu", required: true });
  const types = h("datalist", { id: "instance-types" }, INSTANCE_TYPES.map((t) => h("option", { value: t })));
  const number = (value, min) => h("input", { type: "number", min, step: 1, value });
  const initial = number("1", "1"), low = number("0", "0"), high = number("1", "1");
  const autoscaling = h("input", { type: "checkbox", checked: true });
  const roles = h("fieldset", { class: "role-picks" }, h("legend", {}, "Serves the roles"),
    (await roleNames(me)).map((role) => h("label", { class: "field inline" },
      h("input", { type: "checkbox", name: `role:${role}`, value: role }), role)));
  const form = h("form", { class: "panel", id: "create-endpoint", novalidate: true }, h("h2", {}, "New endpoint"),
    h("div", { class: "row" }, field("Name", name, { name: "endpoint_name" }), field("Type", type, { name: "endpoint_type" }),
      field("Instance type", instance, { name: "instance_type" })),
    types, h("p", { class: "muted" }, "Each instance type has a quota of instances; a request over it is refused naming the quota."),
    h("div", { class: "row" }, field("Instances at start", initial, { name: "initial_instance_count" }),
      field("Min", low, { name: "min_instance_number" }), field("Max", high, { name: "max_instance_number" })),
    field("Autoscaling (async endpoints scale to 0 when idle)", autoscaling, { name: "autoscaling_enabled", inline: true }),
    roles, h("button", { class: "primary", type: "submit" }, "Create endpoint"));
  remember(form, "endpoints.create");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      endpoint_type: type.value, instance_type: instance.value.trim(), creator: me.username,
      initial_instance_count: Number(initial.value), autoscaling_enabled: autoscaling.checked,
      min_instance_number: Number(low.value), max_instance_number: Number(high.value),
      assign_to_roles: [...roles.querySelectorAll("input:checked")].map((box) => box.value),
    };
    if (name.value.trim()) body.endpoint_name = name.value.trim();
    try {
      const created = await post("/endpoints", body);
      toast(`Endpoint ${created.endpoint_name} is being created`);
      await refresh();
    } catch (error) { showError(form, error); }
  });
  return form;
}
