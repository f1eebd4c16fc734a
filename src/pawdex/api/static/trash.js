// Delete with undo: a Delete button on the photo, animal and job pages (and on each library
// of the admin dashboard) that sends the thing to the trash and offers Undo at once, and the
// Trash page: every deletion with who and when, Restore, and Purge now for admins.

import { $, api, clearError, h, showError, when } from "./app.js";

const NOUN = { photos: "Photos", animal: "Animal", job: "Job", library: "Library" };

/** After a deletion: what went, an Undo that restores it, and the way to the trash. */
function deletedNotice(deletion, whereNext) {
  const status = h("p", { role: "status", "data-testid": "deleted-notice" });
  const undo = h("button", { type: "button", "data-testid": "undo-delete", text: "Undo" });
  undo.addEventListener("click", async () => {
    clearError();
    undo.disabled = true;
    try {
      await api(`/v1/trash/${deletion.id}/restore`, { method: "POST" });
      window.location.reload();
    } catch (error) {
      undo.disabled = false;
      showError(error);
    }
  });
  status.append(
    `${deletion.name} is in the trash (${deletion.photos} photo${deletion.photos === 1 ? "" : "s"}). `,
    undo,
    " ",
    h("a", { href: "/ui/trash", text: "See the trash" }),
    whereNext ? " · " : "",
    whereNext ? h("a", { href: whereNext.href, text: whereNext.text }) : "",
  );
  return status;
}

/** A Delete button in ``zone``: asks first, deletes, then shows the notice in its place. */
export function deleteButton(zone, { label, confirmText, request, whereNext }) {
  const button = h("button", { type: "button", class: "danger", "data-testid": "delete", text: label });
  button.addEventListener("click", async () => {
    if (!window.confirm(confirmText)) return;
    clearError();
    button.disabled = true;
    try {
      const deletion = await api(request.path, { method: request.method, json: request.json });
      zone.replaceChildren(deletedNotice(deletion, whereNext));
      for (const shown of document.querySelectorAll("figure.photo, #animal-photos")) {
        shown.classList.add("deleted"); // dimmed: it is in the trash now
      }
    } catch (error) {
      button.disabled = false;
      showError(error);
    }
  });
  zone.replaceChildren(button);
  zone.hidden = false;
}

/** The Delete button of the page, where the page shows one thing that can be deleted. */
export function pageDeleteControls(page) {
  const zone = $("#delete-zone");
  if (!zone) return;
  const { animalId, jobId } = document.body.dataset;
  if (page === "photo") {
    deleteButton(zone, {
      label: "Delete photo",
      confirmText: "Move this photo to the trash? It can be restored from the trash.",
      request: { method: "DELETE", path: `/v1/photos/${encodeURIComponent(animalId)}` },
      whereNext: { href: "/ui/", text: "Back to the photos" },
    });
  } else if (page === "animal") {
    deleteButton(zone, {
      label: "Delete animal",
      confirmText: "Move this animal and all its photos to the trash?",
      request: { method: "DELETE", path: `/v1/animals/${encodeURIComponent(animalId)}` },
      whereNext: { href: "/ui/animals", text: "Back to the animals" },
    });
  } else if (page === "job") {
    deleteButton(zone, {
      label: "Delete job",
      confirmText:
        "Move this job to the trash, with the photos it brought that no other upload holds?",
      request: { method: "DELETE", path: `/v1/jobs/${encodeURIComponent(jobId)}` },
      whereNext: { href: "/ui/jobs", text: "Back to the jobs" },
    });
  }
}

function stateText(d) {
  if (d.state === "purged") return `purged ${when(d.purged_at)} by ${d.purged_by}`;
  if (d.state === "restored") return `restored ${when(d.restored_at)} by ${d.restored_by}`;
  return `in the trash until ${when(d.purge_after)}, then purged`;
}

function deletionRow(d, me, refresh) {
  const buttons = h("div", { class: "actions" });
  const actions = h("td", { "data-label": "Action" }, buttons);
  const act = async (button, path, method) => {
    clearError();
    button.disabled = true;
    try {
      await api(path, { method });
      refresh();
    } catch (error) {
      button.disabled = false;
      showError(error);
    }
  };
  if (d.state === "trash") {
    const restore = h("button", { type: "button", "data-testid": "restore", text: "Restore" });
    restore.addEventListener("click", () => act(restore, `/v1/trash/${d.id}/restore`, "POST"));
    buttons.append(restore);
    if (me.role === "admin") {
      const purge = h("button", { type: "button", class: "danger", "data-testid": "purge", text: "Purge now" });
      purge.addEventListener("click", () => {
        if (window.confirm(`Delete ${d.name} for good, files included? This cannot be undone.`)) {
          act(purge, `/v1/trash/${d.id}`, "DELETE");
        }
      });
      buttons.append(purge);
    }
  }
  return h(
    "tr",
    { "data-testid": "deletion", "data-state": d.state },
    h(
      "td",
      { "data-label": "What" },
      h("span", {}, h("strong", { text: d.name }), h("br"), h("span", { class: "muted", text: NOUN[d.kind] })),
    ),
    h("td", { "data-label": "Photos", text: String(d.photos) }),
    h("td", { "data-label": "Deleted", text: `${when(d.deleted_at)} by ${d.deleted_by}` }),
    h("td", { "data-label": "State", "data-testid": "deletion-state", text: stateText(d) }),
    actions,
  );
}

export async function initTrash(me) {
  const body = $("#trash tbody");
  const select = $("#trash-state");
  const more = $("#trash-more");
  const empty = $("#trash-empty");
  let cursor = null;

  async function load(reset) {
    clearError();
    if (reset) {
      cursor = null;
      body.replaceChildren();
    }
    const params = new URLSearchParams({ limit: "50" });
    if (select.value) params.set("state", select.value);
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await api(`/v1/trash?${params}`);
      body.append(...page.items.map((d) => deletionRow(d, me, () => load(true))));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = body.children.length > 0;
      $("#trash").hidden = body.children.length === 0;
    } catch (error) {
      showError(error);
    }
  }

  select.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  await load(true);
}
