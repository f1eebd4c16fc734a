// The admin dashboard's API keys: the table (never a key, only its first characters), a form
// that creates one and shows it once, and Revoke with a confirmation. The server refuses
// (409) to revoke the key this page is signed in with and the last active admin key.

import { $, api, clearError, h, showError, when } from "./app.js";

function copyText(input, status) {
  const done = () => {
    status.textContent = "Copied.";
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, () => {
      input.select();
      status.textContent = "Select the key and copy it (Ctrl+C).";
    });
    return;
  }
  // Plain http on another host: no clipboard API, the old command still copies a selection.
  input.select();
  status.textContent = document.execCommand("copy") ? "Copied." : "Select the key and copy it.";
}

function keyRow(key, me, onRevoke) {
  const mine = key.prefix === me.prefix;
  const state = key.revoked_at
    ? h("span", { class: "status status-failed", text: `revoked ${when(key.revoked_at)}` })
    : h("span", { class: "status status-succeeded", text: mine ? "active (you)" : "active" });
  const action = h("td", { "data-label": "Action" });
  if (!key.revoked_at && !mine) {
    const revoke = h("button", { type: "button", "data-testid": "key-revoke", text: "Revoke" });
    revoke.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger", "data-testid": "key-revoke-confirm", text: "Yes, revoke" });
      const no = h("button", { type: "button", class: "link-button", text: "Keep it" });
      no.addEventListener("click", () => action.replaceChildren(revoke));
      yes.addEventListener("click", () => onRevoke(key, yes));
      action.replaceChildren(
        h("span", { class: "confirm", text: `Revoke “${key.name}”? Requests with it will be refused. ` }),
        yes,
        " ",
        no,
      );
      yes.focus();
    });
    action.append(revoke);
  }
  return h(
    "tr",
    { "data-testid": "key-row", "data-key-id": key.id, "data-revoked": key.revoked_at ? "true" : "false" },
    h("td", { "data-label": "Name", "data-testid": "key-name", text: key.name }),
    h("td", { "data-label": "Role" }, h("span", { class: "role-badge", text: key.role })),
    h("td", { "data-label": "Key" }, h("code", { text: `${key.prefix}…` })),
    h("td", { "data-label": "Created", text: when(key.created_at) }),
    h("td", { "data-label": "Last used", text: key.last_used_at ? when(key.last_used_at) : "never" }),
    h("td", { "data-label": "State", "data-testid": "key-state" }, state),
    action,
  );
}

export function initKeys(me) {
  const body = $("#keys tbody");
  const form = $("#key-form");
  const shown = $("#new-key");
  const secret = $("#new-key-value");
  const copied = $("#new-key-copied");

  async function revoke(key, button) {
    button.disabled = true;
    clearError();
    try {
      await api(`/v1/keys/${key.id}`, { method: "DELETE" });
      await reload();
    } catch (error) {
      showError(error);
      button.disabled = false;
    }
  }

  async function reload() {
    const keys = await api("/v1/keys");
    body.replaceChildren(...keys.map((k) => keyRow(k, me, revoke)));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#key-create");
    button.disabled = true;
    clearError();
    try {
      const created = await api("/v1/keys", {
        method: "POST",
        json: { name: $("#key-name").value.trim(), role: $("#key-role").value },
      });
      form.reset();
      $("#new-key-what").textContent = `${created.name} (${created.role})`;
      secret.value = created.key;
      copied.textContent = "";
      shown.hidden = false;
      secret.focus();
      secret.select();
      await reload();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
  $("#new-key-copy").addEventListener("click", () => copyText(secret, copied));
  $("#new-key-done").addEventListener("click", () => {
    secret.value = ""; // gone from the page: it is not shown again
    shown.hidden = true;
  });
  reload().catch(showError);
}
