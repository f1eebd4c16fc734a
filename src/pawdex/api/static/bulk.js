// Bulk selection in the gallery (archivists): a checkbox on each card, shift-click for a
// range, "select all on this page", and a sticky bar with the count and what can be done to
// the selected photos: label them as a breed (POST /v1/labels), move them to an animal
// (found by its shelter id) or into a new one, delete them (to the trash).

import { $, api, breedList, breedName, clearError, h, showError } from "./app.js";

const LABELS = "/v1/labels";

/** ``grid``: the gallery's list of cards (``li[data-animal-id]``); ``bar``: the action bar;
 * ``reload()``: show the gallery again after a change. */
export function bulkSelection(grid, bar, reload) {
  const selected = new Set();
  let anchor = null; // the last checkbox clicked without shift: one end of a range
  const count = $("#bulk-count", bar);
  const status = $("#bulk-status", bar);
  const boxes = () => [...grid.querySelectorAll("input[data-testid=card-select]")];

  function show() {
    const n = selected.size;
    count.textContent = `${n} photo${n === 1 ? "" : "s"} selected`;
    bar.hidden = n === 0 && !status.textContent;
    for (const button of bar.querySelectorAll("[data-needs-selection]")) button.disabled = n === 0;
    for (const box of boxes()) box.closest("li").classList.toggle("selected", box.checked);
  }

  function set(box, checked) {
    box.checked = checked;
    const id = Number(box.value);
    if (checked) selected.add(id);
    else selected.delete(id);
  }

  function onClick(event) {
    const box = event.currentTarget;
    status.textContent = "";
    if (event.shiftKey && anchor && anchor.isConnected) {
      const all = boxes();
      const [from, to] = [all.indexOf(anchor), all.indexOf(box)].sort((a, b) => a - b);
      for (const b of all.slice(from, to + 1)) set(b, box.checked);
    } else {
      set(box, box.checked);
    }
    anchor = box;
    show();
  }

  /** Checkboxes on the cards that have none yet (called after each page is shown). */
  function adopt() {
    for (const card of grid.querySelectorAll("li[data-animal-id]:not([data-pickable])")) {
      card.dataset.pickable = "true";
      const id = Number(card.dataset.animalId);
      const box = h("input", {
        type: "checkbox",
        value: id,
        "data-testid": "card-select",
        "aria-label": `Select photo ${id}`,
      });
      box.checked = selected.has(id);
      box.addEventListener("click", onClick);
      card.prepend(h("label", { class: "card-pick", title: "Select (shift-click: a range)" }, box));
    }
    show();
  }

  function clear() {
    selected.clear();
    for (const box of boxes()) box.checked = false;
    anchor = null;
    show();
  }

  async function act(button, work) {
    clearError();
    const buttons = [...bar.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    const ids = [...selected];
    try {
      const done = await work(ids);
      selected.clear();
      anchor = null;
      await reload();
      status.replaceChildren(...[].concat(done));
    } catch (error) {
      showError(error.status === undefined ? error.message : error);
    } finally {
      for (const b of buttons) b.disabled = false;
      show();
    }
  }

  const plural = (n) => `${n} photo${n === 1 ? "" : "s"}`;

  async function label(ids) {
    const breed = $("#bulk-breed", bar).value;
    if (!breed) throw new Error("Choose a breed first.");
    const items = ids.map((id) => ({ photo_id: id, species: "dog", breeds: [breed], mix: false }));
    const result = await api(LABELS, { method: "POST", json: { items } });
    const done = `${plural(result.applied)} labelled as ${breedName(breed)}.`;
    if (!result.failed) return done;
    return `${done} ${result.failed} refused: ${result.errors.map((e) => e.reason).join("; ")}`;
  }

  async function animalByShelterId() {
    const external = $("#bulk-animal", bar).value.trim();
    if (!external) throw new Error("Type the animal's shelter ID, or choose New animal.");
    const page = await api(`/v1/animals?external_id=${encodeURIComponent(external)}&limit=1`);
    if (!page.items.length) {
      throw new Error(`No animal has the shelter ID ${external}: choose New animal to make one.`);
    }
    return page.items[0];
  }

  const animalLink = (animal) =>
    h("a", { href: `/ui/animals/${animal.id}`, "data-testid": "bulk-animal-link", text: animal.external_id || `animal ${animal.id}` });

  async function move(ids) {
    const animal = await animalByShelterId();
    const moved = await api(`/v1/animals/${animal.id}/photos`, { method: "POST", json: { photo_ids: ids } });
    return [`${plural(ids.length)} moved to `, animalLink(moved), "."];
  }

  async function newAnimal(ids) {
    const external = $("#bulk-animal", bar).value.trim();
    const created = await api("/v1/animals", {
      method: "POST",
      json: { photo_ids: ids, external_id: external || null },
    });
    return [`${plural(ids.length)} are now `, animalLink(created), "."];
  }

  async function remove(ids) {
    await api("/v1/trash", { method: "POST", json: { photo_ids: ids } });
    return `${plural(ids.length)} moved to the trash.`;
  }

  const on = (selector, work) => {
    const button = $(selector, bar);
    button.addEventListener("click", () => act(button, work));
  };
  on("#bulk-label", label);
  const select = $("#bulk-breed", bar);
  breedList()
    .then((breeds) => {
      select.replaceChildren(
        h("option", { value: "", text: "Choose a breed…" }),
        ...breeds.map((b) => h("option", { value: b, text: breedName(b) })),
      );
    })
    .catch(showError);
  on("#bulk-delete", remove);
  on("#bulk-move", move);
  on("#bulk-new-animal", newAnimal);
  $("#bulk-clear", bar).addEventListener("click", () => {
    status.textContent = "";
    clear();
  });
  $("#select-page").addEventListener("click", () => {
    status.textContent = "";
    for (const box of boxes()) set(box, true);
    show();
  });
  $("#select-page").hidden = false;
  for (const form of bar.querySelectorAll("form")) form.addEventListener("submit", (e) => e.preventDefault());
  show();
  return { adopt, clear };
}
