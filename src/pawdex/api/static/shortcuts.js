// The review queue by keyboard: j / k (or the arrow keys) move between photos, 1–5 take the
// model's k-th breed, Enter or y confirms the model's answer, n says "not a dog", u takes
// back this session's last label (DELETE /v1/photos/{id}/label), ? shows the keys. Keys typed into a field are the field's.

import { $, api, h, modelVerdict, showError, typingIn } from "./app.js";

export const REVIEW_KEYS = [
  [["j", "↓", "→"], "next photo"],
  [["k", "↑", "←"], "previous photo"],
  [["1", "2", "3", "4", "5"], "label as the model's 1st … 5th breed"],
  [["Enter", "y"], "confirm the model's answer"],
  [["n"], "not a dog"],
  [["u"], "undo this session's last label"],
  [["?"], "show or hide these keys"],
  [["Esc"], "close this help"],
];

/** A help overlay listing ``keys`` ([[key, …], what] pairs); returns its toggle. */
export function helpOverlay(keys) {
  const close = h("button", { type: "button", class: "primary", "data-testid": "shortcuts-close", text: "Close" });
  const dialog = h(
    "div",
    { class: "overlay", role: "dialog", "aria-modal": "true", "aria-labelledby": "shortcuts-title", "data-testid": "shortcuts-help", hidden: true },
    h(
      "div",
      { class: "overlay-panel" },
      h("h2", { id: "shortcuts-title", text: "Keyboard shortcuts" }),
      h(
        "dl",
        { class: "shortcut-list" },
        ...keys.flatMap(([names, what]) => [
          h("dt", {}, ...names.map((k) => h("kbd", { text: k }))),
          h("dd", { text: what }),
        ]),
      ),
      close,
    ),
  );
  document.body.append(dialog);
  let before = null;
  const toggle = (show = dialog.hidden) => {
    if (show) before = document.activeElement;
    dialog.hidden = !show;
    if (show) close.focus();
    else if (before && before.isConnected) before.focus();
  };
  close.addEventListener("click", () => toggle(false));
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) toggle(false);
  });
  return toggle;
}

/** Keys for the review list ``listEl`` (cards ``li[data-animal-id]``, each with its photo in
 * ``card.photo``); ``label(card, body)`` stores a label and removes the card; ``changed()``
 * after an undo put a card back. */
export function reviewShortcuts(listEl, label, changed) {
  const undoable = []; // this session's labels, newest last: [card, next sibling]
  const cards = () => [...listEl.querySelectorAll(":scope > li[data-animal-id]")];
  const current = () => listEl.querySelector(":scope > li.current") || null;

  function select(card) {
    for (const c of cards()) {
      c.classList.toggle("current", c === card);
      c.tabIndex = c === card ? 0 : -1;
    }
    if (card) {
      card.focus();
      card.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    const all = cards();
    if (!all.length) return;
    const at = all.indexOf(current());
    select(at === -1 ? all[0] : all[Math.max(0, Math.min(all.length - 1, at + step))]);
  }

  async function labelCurrent(body) {
    const card = current() || cards()[0];
    if (!card || !body) return;
    const after = card.nextElementSibling || card.previousElementSibling;
    const place = card.nextElementSibling;
    await label(card, body);
    if (card.isConnected) return; // refused: it stays, the banner says why
    undoable.push([card, place]);
    select(after && after.isConnected ? after : cards()[0] || null);
  }

  async function undo() {
    const last = undoable.pop();
    if (!last) return;
    const [card, place] = last;
    try {
      await api(`/v1/photos/${card.dataset.animalId}/label`, { method: "DELETE" });
    } catch (error) {
      showError(error);
      return;
    }
    for (const b of card.querySelectorAll("button")) b.disabled = false;
    listEl.insertBefore(card, place && place.isConnected ? place : listEl.firstChild);
    select(card);
    changed();
  }

  // A click on a card makes it the current one (focus follows the pointer too).
  listEl.addEventListener("focusin", (event) => {
    const card = event.target.closest("li[data-animal-id]");
    if (card && !card.classList.contains("current")) {
      for (const c of cards()) c.classList.toggle("current", c === card);
    }
  });

  const help = helpOverlay(REVIEW_KEYS);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("[data-testid=shortcuts-help]").hidden) {
      help(false);
      return;
    }
    const helpShown = !$("[data-testid=shortcuts-help]").hidden;
    if (typingIn(event) || (helpShown && event.key !== "?")) return;
    // Enter on a button or a link is theirs to take.
    if (event.key === "Enter" && event.target.closest("button, a")) return;
    const card = current() || cards()[0];
    const photo = card && card.photo;
    const topK = (photo && photo.top_k) || [];
    const actions = {
      j: () => move(1), ArrowDown: () => move(1), ArrowRight: () => move(1),
      k: () => move(-1), ArrowUp: () => move(-1), ArrowLeft: () => move(-1),
      Enter: () => labelCurrent(photo && modelVerdict(photo)),
      y: () => labelCurrent(photo && modelVerdict(photo)),
      n: () => labelCurrent({ species: "other", breed: null }),
      u: undo,
      "?": () => help(),
    };
    for (let k = 1; k <= 5; k++) {
      const breed = topK[k - 1] && topK[k - 1].breed;
      actions[String(k)] = () => labelCurrent(breed ? { species: "dog", breed } : null);
    }
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });
  return { select };
}
