// Previous / next through a result set. A list page (the gallery, the review queue, an
// animal's photos) records what it showed — its API query, the photo ids in order, the cursor
// of the page after them — in this tab's sessionStorage, under a key that the photo links
// carry (``/ui/photos/42?in=gallery%3Fbreed%3Dbeagle``). The photo page finds its
// neighbours there, and fetches the list's next page when it stands at the edge. A deep link
// (no ``in``, or a tab that never saw the list) shows the photo without previous / next.

import { $, api, h, showError, typingIn } from "./app.js";

const STORE = "pawdex.trails";
const KEPT = 8; // the most recent lists a tab remembers

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE)) || {};
  } catch {
    return {};
  }
}

function save(key, trail) {
  const trails = load();
  delete trails[key];
  trails[key] = trail;
  const keys = Object.keys(trails);
  for (const old of keys.slice(0, Math.max(0, keys.length - KEPT))) delete trails[old];
  try {
    sessionStorage.setItem(STORE, JSON.stringify(trails));
  } catch {
    // storage full or refused: prev/next simply stays off
  }
}

export function photoUrl(id, key) {
  return key ? `/ui/photos/${id}?in=${encodeURIComponent(key)}` : `/ui/photos/${id}`;
}

/** A list page's trail: ``key`` names it, ``source`` is the API path that lists it (without
 * cursor), ``back`` the page to return to, ``label`` what to call it. ``add(page, links)``
 * records a page as it is shown and points its photo links (``a[data-photo-id]`` or
 * ``a[href^="/ui/photos/"]``) through the trail. */
export function trail(key, { source, back, label }) {
  const state = { source, back, label, ids: [], cursor: null };
  save(key, state);
  return {
    key,
    add(page, root) {
      state.ids.push(...page.items.map((item) => item.id));
      state.cursor = page.next_cursor || null;
      save(key, state);
      if (root) linkThrough(root, key);
    },
  };
}

/** Points the photo links under ``root`` through the trail ``key``. */
export function linkThrough(root, key) {
  for (const link of root.querySelectorAll('a[href^="/ui/photos/"]')) {
    const id = Number(new URL(link.href, location.href).pathname.split("/").pop());
    if (Number.isInteger(id) && id > 0) link.href = photoUrl(id, key);
  }
}

async function neighbours(key, id) {
  const state = load()[key];
  if (!state) return null;
  let at = state.ids.indexOf(id);
  if (at === -1) return null;
  if (at === state.ids.length - 1 && state.cursor) {
    // At the edge of what the list showed: its next page holds the next photo.
    const joiner = state.source.includes("?") ? "&" : "?";
    const page = await api(`${state.source}${joiner}cursor=${encodeURIComponent(state.cursor)}`);
    state.ids.push(...page.items.map((item) => item.id).filter((i) => !state.ids.includes(i)));
    state.cursor = page.next_cursor || null;
    save(key, state);
    at = state.ids.indexOf(id);
  }
  return {
    state,
    at,
    previous: at > 0 ? state.ids[at - 1] : null,
    next: at < state.ids.length - 1 ? state.ids[at + 1] : null,
  };
}

/** The photo page's previous / next links and ← → keys, when it was opened from a list. */
export async function photoNavigation(id) {
  const key = new URLSearchParams(location.search).get("in");
  const nav = $("#photo-nav");
  if (!key || !nav) return;
  let found;
  try {
    found = await neighbours(key, Number(id));
  } catch (error) {
    showError(error);
    return;
  }
  if (!found) return;
  const { state, at, previous, next } = found;
  const more = state.cursor ? "+" : "";
  const link = (target, text, rel, testid) =>
    target
      ? h("a", { href: photoUrl(target, key), rel, class: "button", "data-testid": testid, text })
      : h("span", { class: "button disabled", "aria-disabled": "true", "data-testid": testid, text });
  nav.replaceChildren(
    h("a", { href: state.back, class: "back", "data-testid": "photo-nav-back", text: `← ${state.label}` }),
    h(
      "span",
      { class: "photo-nav-steps" },
      link(previous, "‹ Previous", "prev", "photo-prev"),
      h("span", { class: "muted", "data-testid": "photo-nav-position", text: `${at + 1} of ${state.ids.length}${more}` }),
      link(next, "Next ›", "next", "photo-next"),
    ),
  );
  nav.hidden = false;
  document.addEventListener("keydown", (event) => {
    if (typingIn(event)) return;
    const target = { ArrowLeft: previous, ArrowRight: next }[event.key];
    if (!target) return;
    event.preventDefault();
    location.assign(photoUrl(target, key));
  });
}
