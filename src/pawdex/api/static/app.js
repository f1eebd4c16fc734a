// pawdex web UI: each page is a server-rendered shell; this module fills it from the JSON
// API (same origin, session cookie). Data is only ever inserted as text (textContent,
// setAttribute), never parsed as HTML.

// The pages' larger parts live in their own modules, which import their helpers from here
// (a cycle ES modules allow: they only call them after this module has run).
import { bulkSelection } from "./bulk.js";
import { photoNavigation, trail } from "./browse.js";
import { initKeys } from "./keys.js";
import { reviewShortcuts } from "./shortcuts.js";
import { initTrash, pageDeleteControls } from "./trash.js";

// The server's words, rendered by base.html from its enums (pawdex.core.models): the roles,
// lowest first, and the statuses of a finished job. Never spelled out here.
const VOCABULARY = JSON.parse(document.getElementById("vocabulary").textContent);
const ROLES = VOCABULARY.roles;
const FINISHED = new Set(VOCABULARY.finished_statuses);
const ARCHIVE = /\.(zip|tar|tar\.gz|tgz)$/i;
// Cookie-authenticated changes must carry this header (the API refuses them otherwise).
const UI_HEADER = { "X-Requested-With": "pawdex-ui" };

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// ---------------------------------------------------------------- helpers

const $ = (selector, root = document) => root.querySelector(selector);

/** Build an element: attributes set as attributes (``text`` as textContent, ``on*`` as
 * listeners); children are nodes or strings (text nodes). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) {
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const breedName = (breed) => (breed ? breed.replaceAll("_", " ") : "");
const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`);

/** Datetimes without an offset are UTC (the server stores UTC). */
function parseTime(iso) {
  if (!iso) return null;
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`);
}

function when(iso) {
  const d = parseTime(iso);
  return d ? d.toLocaleString() : "–";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function speciesText(animal) {
  if (animal.species === "dog") return breedName(animal.breed) || "dog";
  return animal.species === "cat" ? "cat (not a dog)" : "not a dog";
}

function jobUrl(id) {
  return `/ui/jobs/${encodeURIComponent(id)}`;
}

function detailOf(data, status, statusText) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's 422: a list of {loc, msg}
    return detail
      .map((d) => `${Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : ""}: ${d.msg}`)
      .join("; ");
  }
  return `${status} ${statusText || "error"}`.trim();
}

function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/ui/login?next=${encodeURIComponent(next)}`);
}

/** fetch a JSON API path; 401 sends the user to the sign-in page. */
async function api(path, { method = "GET", json, body, headers = {}, redirect401 = true } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...headers },
  };
  if (method !== "GET") Object.assign(init.headers, UI_HEADER);
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body; // its Content-Type is in ``headers``
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "the server cannot be reached");
  }
  let data = null;
  if ((response.headers.get("content-type") || "").includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (response.status === 401 && redirect401) {
    toLogin();
    const error = new ApiError(401, detailOf(data, 401, "sign in required"));
    error.redirected = true; // nothing to show: the page is going away
    throw error;
  }
  if (!response.ok) throw new ApiError(response.status, detailOf(data, response.status, response.statusText));
  return data;
}

function showError(error) {
  const banner = $("#banner");
  if (!banner || (error && error.redirected)) return;
  $(".banner-text", banner).textContent = error instanceof ApiError ? error.message : String(error);
  banner.hidden = false;
}

function clearError() {
  const banner = $("#banner");
  if (banner) banner.hidden = true;
}

const allows = (me, role) => me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);

/** Whether ``me`` may use ``el``: the page marks it (or a parent) with the least role. */
function mayUse(me, el) {
  const marked = el.closest("[data-min-role]");
  return !marked || allows(me, marked.dataset.minRole);
}

/** Show what the signed-in key may use; hide the rest. */
function applyRole(me) {
  for (const el of document.querySelectorAll("[data-min-role]")) {
    el.hidden = !allows(me, el.dataset.minRole);
  }
  const who = $(".whoami");
  if (who) {
    $(".whoami-name", who).textContent = me.name || "signed in";
    $(".role-badge", who).textContent = me.role;
    who.hidden = false;
  }
}

/** Page through a cursor-paginated list: ``fetchPage(cursor)`` returns {items, next_cursor}. */
function pager(button, fetchPage, render) {
  let cursor = null;
  let busy = false;
  let done = false;
  let generation = 0;
  async function more() {
    if (busy || done) return;
    busy = true;
    const mine = generation;
    button.disabled = true;
    try {
      const page = await fetchPage(cursor);
      if (mine !== generation) return;
      render(page);
      cursor = page.next_cursor;
      done = !cursor;
      button.hidden = done;
      if (!done && observing) {
        // Still near the bottom (a short page): keep filling, as scrolling would.
        requestAnimationFrame(() => {
          if (button.getBoundingClientRect().top < innerHeight + 300) more();
        });
      }
    } catch (error) {
      showError(error);
    } finally {
      busy = false;
      button.disabled = false;
    }
  }
  button.addEventListener("click", more);
  // Infinite scroll: the button coming into view loads the next page.
  const observing = "IntersectionObserver" in window;
  if (observing) {
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !button.hidden) more();
    }, { rootMargin: "300px" }).observe(button);
  }
  return {
    more,
    async reset() {
      generation += 1;
      cursor = null;
      done = false;
      busy = false;
      button.hidden = true;
      await more();
    },
  };
}

function queryOf(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  return q;
}

// ---------------------------------------------------------------- sign in / out

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/ui/";
  // Only a path on this site: never "//other.example" or "https://…".
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/ui/";
}

function initLogin() {
  const form = $("#login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const key = $("#api-key").value.trim();
    if (!key) {
      showError("Enter your API key.");
      return;
    }
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      await api("/v1/session", { method: "POST", headers: { "X-API-Key": key }, redirect401: false });
      location.assign(safeNext());
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
}

async function signOut() {
  try {
    await api("/v1/session", { method: "DELETE", redirect401: false });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      showError(error);
      return;
    }
  }
  location.assign("/ui/login");
}

// ---------------------------------------------------------------- gallery

function animalCard(animal) {
  const human = animal.label_source === "human";
  const name = speciesText(animal);
  return h(
    "li",
    {
      class: `animal-card${human ? " human" : ""}`,
      "data-testid": "animal-card",
      "data-breed": animal.breed || "",
      "data-species": animal.species,
      "data-label-source": animal.label_source || "model",
      "data-animal-id": animal.id,
    },
    h(
      "a",
      { href: `/ui/photos/${animal.id}` },
      h("img", {
        src: animal.thumbnail_url,
        loading: "lazy",
        alt: `${name}, ${animal.filename}`,
        width: 150,
        height: 150,
      }),
      h(
        "span",
        { class: "card-caption" },
        h("span", { class: "card-breed", "data-testid": "card-breed", text: name }),
        h("span", { class: "card-conf", "data-testid": "card-conf", text: human ? "labelled" : confidenceText(animal) }),
      ),
      human ? h("span", { class: "badge human-badge", "data-testid": "human-badge", text: "human" }) : null,
    ),
  );
}

const GALLERY_FIELDS = [
  "breed", "species", "min_confidence", "max_confidence", "job_id", "label_source", "sort",
  "might_be", "might_be_min", "path_prefix", "indexed_after", "indexed_before",
];

/** "1,234 photos" or "10,000+ photos": a list's total as the server counted it (capped). */
function totalText(page, noun) {
  const n = page.total ?? 0;
  return `${n.toLocaleString("en-US")}${page.total_capped ? "+" : ""} ${noun}${n === 1 && !page.total_capped ? "" : "s"}`;
}

/** What a card or a page shows first: a dog's breed confidence, else the species' own. */
function confidenceText(animal) {
  if (animal.species === "dog") return pct(animal.confidence);
  return pct(animal.model_species === animal.species ? animal.species_confidence : null);
}

function galleryFilters() {
  const url = new URLSearchParams(location.search);
  const filters = Object.fromEntries(GALLERY_FIELDS.map((f) => [f, url.get(f) || ""]));
  filters.sort = filters.sort || "-confidence";
  return filters;
}

function fillForm(form, values) {
  for (const [name, value] of Object.entries(values)) {
    const field = form.elements.namedItem(name);
    if (!field) continue;
    if (field.tagName === "SELECT" && value && ![...field.options].some((o) => o.value === value)) {
      field.append(h("option", { value, text: breedName(value) }));
    }
    field.value = value;
  }
}

/** The gallery's result set, remembered for the photo pages' previous / next. */
function galleryTrail() {
  const limit = new URLSearchParams(location.search).get("limit") || 48;
  const q = queryOf({ ...galleryFilters(), limit });
  const back = location.pathname + location.search;
  return trail(`gallery?${q}`, { source: `/v1/photos?${q}`, back, label: "Gallery" });
}

async function initGallery(me) {
  const form = $("#filters");
  const grid = $("#gallery");
  const status = $("#gallery-status");
  let shown = 0;
  let results = null;
  const bar = $("#bulk-bar");
  const bulk = mayUse(me, bar) ? bulkSelection(grid, bar, () => reload()) : null;

  const list = pager(
    $("#load-more"),
    (cursor) => {
      // ``limit`` in the page URL (not in the form) sets the page size: handy for links.
      const limit = new URLSearchParams(location.search).get("limit") || 48;
      const q = queryOf({ ...galleryFilters(), limit, cursor });
      return api(`/v1/photos?${q}`);
    },
    (page) => {
      grid.append(...page.items.map(animalCard));
      results.add(page, grid);
      if (bulk) bulk.adopt();
      shown += page.items.length;
      const filtered = Object.entries(galleryFilters()).some(([k, v]) => k !== "sort" && v);
      if (shown) {
        status.textContent = `${totalText(page, "photo")} · ${shown} shown${page.next_cursor ? " (more below)" : ""}`;
      } else if (filtered) {
        status.textContent = "No photos match these filters.";
      } else {
        status.replaceChildren(
          "No photos yet. ",
          h("a", { href: "/ui/upload", "data-testid": "empty-upload-link", text: "Upload photos or an archive" }),
          " to start the index.",
        );
      }
    },
  );

  async function reload() {
    clearError();
    grid.replaceChildren();
    shown = 0;
    status.textContent = "Loading…";
    fillForm(form, galleryFilters());
    results = galleryTrail();
    if (bulk) bulk.clear();
    await list.reset();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(GALLERY_FIELDS.map((f) => [f, form.elements.namedItem(f).value]));
    if (values.sort === "-confidence") values.sort = ""; // the default: keep links short
    const q = queryOf(values).toString();
    history.pushState(null, "", q ? `?${q}` : location.pathname);
    reload();
  });
  window.addEventListener("popstate", reload);

  fillForm(form, galleryFilters());
  const breeds = api("/v1/breeds")
    .then((counts) => {
      const select = $("#f-breed");
      const current = galleryFilters().breed;
      select.replaceChildren(h("option", { value: "", text: "Any breed" }));
      for (const { breed, count } of counts) {
        select.append(h("option", { value: breed, text: `${breedName(breed)} (${count})` }));
      }
      fillForm(form, { breed: current });
      select.dataset.loaded = "true";
    })
    .catch(showError);
  const jobs = api("/v1/jobs?limit=100")
    .then((page) => {
      const select = $("#f-job");
      const current = galleryFilters().job_id;
      select.replaceChildren(h("option", { value: "", text: "Any job" }));
      for (const job of page.items) {
        const day = new Date(job.created_at).toLocaleDateString();
        select.append(h("option", { value: job.id, text: `${job.name || job.id.slice(0, 12)} · ${day}` }));
      }
      fillForm(form, { job_id: current });
    })
    .catch(showError);
  const names = breedList()
    .then((all) => $("#f-breed-names").replaceChildren(...all.map((b) => h("option", { value: breedName(b) }))))
    .catch(showError);
  await Promise.all([reload(), breeds, jobs, names]);
}

// ---------------------------------------------------------------- upload

// A file larger than one chunk goes as a resumable upload (tus 1.0, tus-js-client, served
// from /static/vendor): in chunks, each retried when the connection drops; offline, it waits
// for the network; on a page closed and opened again, the same file dropped again is found
// (by name, type, size and date, in localStorage) and carries on where it stopped. A smaller
// file gains nothing (one request either way) and goes as a plain upload. The chunk size is
// the server's (PAWDEX_RESUMABLE_CHUNK_BYTES, rendered into the page).
const CHUNK_BYTES = Number(document.body.dataset.chunkBytes) || 8 * 1024 * 1024;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];

function uploadItem(label) {
  $("#uploads-empty").hidden = true;
  const progress = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${label}` });
  const state = h("span", { class: "upload-state", "data-testid": "upload-state", text: "uploading…" });
  const item = h(
    "li",
    { class: "upload", "data-testid": "upload-item" },
    h("span", { class: "upload-name", text: label }),
    progress,
    state,
  );
  $("#uploads").prepend(item);
  return { item, progress, state };
}

function showJob({ item, progress, state }, job) {
  progress.value = 100;
  item.classList.add("ok");
  state.setAttribute("data-testid", "upload-state");
  state.replaceChildren(
    `${job.status} · `,
    h("a", { href: jobUrl(job.job_id), "data-testid": "job-link", text: job.name || `job ${job.job_id.slice(0, 8)}` }),
  );
}

function showFailure({ item, state }, text, ...actions) {
  item.classList.add("failed");
  state.replaceChildren(text, ...actions);
  state.setAttribute("data-testid", "upload-error");
}

function uploadOne(url, files, label) {
  const row = uploadItem(label);
  const { progress, state } = row;

  const body = new FormData();
  for (const file of files) body.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", url);
  xhr.withCredentials = true;
  xhr.setRequestHeader("Accept", "application/json");
  xhr.setRequestHeader("X-Requested-With", UI_HEADER["X-Requested-With"]);
  xhr.upload.onprogress = (event) => {
    if (!event.lengthComputable) return;
    progress.value = Math.round((event.loaded / event.total) * 100);
    state.textContent = event.loaded < event.total ? `uploading… ${progress.value} %` : "processing…";
  };
  xhr.onload = () => {
    let data = null;
    try {
      data = JSON.parse(xhr.responseText);
    } catch {
      data = null;
    }
    if (xhr.status === 401) return toLogin();
    if (xhr.status === 202 && data && data.job_id) return showJob(row, data);
    showFailure(row, detailOf(data, xhr.status, xhr.statusText));
  };
  xhr.onerror = () => showFailure(row, "the upload failed: the server cannot be reached");
  xhr.send(body);
}

/** The server's ``detail`` of a tus request that failed, else what went wrong. */
function tusErrorText(error) {
  const response = error.originalResponse;
  if (!response || !response.getStatus()) return "the upload failed: the server cannot be reached";
  let data = null;
  try {
    data = JSON.parse(response.getBody());
  } catch {
    data = null;
  }
  return `the upload failed: ${detailOf(data, response.getStatus(), "")}`;
}

async function uploadResumable(file) {
  const row = uploadItem(file.name);
  row.item.dataset.resumable = "true";
  const upload = new window.tus.Upload(file, {
    endpoint: "/v1/uploads",
    chunkSize: CHUNK_BYTES,
    retryDelays: RETRY_DELAYS,
    headers: UI_HEADER, // the session cookie travels too (same origin)
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    removeFingerprintOnSuccess: true,
    onProgress(sent, total) {
      row.progress.value = Math.floor((sent / total) * 100);
      row.state.textContent = sent < total ? `uploading… ${row.progress.value} %` : "processing…";
    },
    onSuccess: () => requestJob(),
    onError(error) {
      const response = error.originalResponse;
      if (response && response.getStatus() === 401) return toLogin();
      const resume = () => {
        row.item.classList.remove("failed");
        row.state.setAttribute("data-testid", "upload-state");
        row.state.textContent = "resuming…";
        upload.start(); // asks the server where the upload stands, sends the rest
      };
      if (!navigator.onLine) {
        row.state.textContent = `offline: waiting for the network (${row.progress.value} % sent)`;
        row.state.setAttribute("data-testid", "upload-waiting");
        addEventListener("online", resume, { once: true });
        return;
      }
      const again = h("button", { type: "button", class: "link-button", "data-testid": "upload-resume", text: "Resume", onclick: resume });
      showFailure(row, `${tusErrorText(error)} · `, again);
    },
  });

  async function requestJob() {
    row.state.textContent = "processing…";
    try {
      // Asked again after a lost answer, the server answers the same job.
      const job = await api(`${new URL(upload.url, location.href).pathname}/job`, { method: "POST", json: {} });
      showJob(row, job);
    } catch (error) {
      if (!error.redirected) showFailure(row, `the upload arrived, but: ${error.message}`);
    }
  }

  try {
    const previous = await upload.findPreviousUploads();
    if (previous.length) {
      previous.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime));
      upload.resumeFromPreviousUpload(previous[0]);
      row.state.textContent = "resuming…";
    }
  } catch {
    // no storage to look in (private mode): a new upload
  }
  upload.start();
}

function uploadFiles(fileList) {
  const all = [...fileList];
  const resumable = window.tus && window.tus.isSupported;
  const large = all.filter((f) => resumable && f.size > CHUNK_BYTES);
  for (const file of large) uploadResumable(file);
  const files = all.filter((f) => !large.includes(f));
  const archives = files.filter((f) => ARCHIVE.test(f.name));
  const photos = files.filter((f) => !ARCHIVE.test(f.name));
  for (const archive of archives) uploadOne("/v1/archives", [archive], archive.name);
  if (photos.length) {
    const label = photos.length === 1 ? photos[0].name : `${photos.length} photos`;
    uploadOne("/v1/images", photos, label);
  }
}

function initUpload() {
  const zone = $("#dropzone");
  const input = $("#file-input");
  input.addEventListener("change", () => {
    if (input.files.length) uploadFiles(input.files);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) uploadFiles(event.dataTransfer.files);
  });
}

// ---------------------------------------------------------------- jobs

const processed = (job) => job.done + job.failed + job.duplicates + job.skipped;

function initJobs() {
  const form = $("#jobs-filter");
  const body = $("#jobs-body");
  const line = $("#jobs-status-line");
  const current = (field) => new URLSearchParams(location.search).get(field) || "";
  const list = pager(
    $("#jobs-more"),
    (cursor) =>
      api(`/v1/jobs?${queryOf({ status: current("status"), name: current("name"), limit: 50, cursor })}`),
    (page) => {
      for (const job of page.items) {
        body.append(
          h(
            "tr",
            { "data-testid": "job-row" },
            h(
              "td",
              {},
              h("a", { href: jobUrl(job.id), text: job.name || job.id.slice(0, 12) }),
              h("div", { class: "muted job-id", text: job.id.slice(0, 12) }),
            ),
            h("td", { text: job.created_by ? `${job.origin} · ${job.created_by}` : job.origin }),
            h("td", {}, h("span", { class: `status status-${job.status}`, text: job.status })),
            h("td", { text: `${processed(job)} / ${job.total}` }),
            h("td", { text: job.failed }),
            h("td", { text: when(job.created_at) }),
          ),
        );
      }
      line.textContent = body.children.length ? "" : "No jobs.";
    },
  );
  const reload = () => {
    body.replaceChildren();
    form.elements.namedItem("status").value = current("status");
    form.elements.namedItem("name").value = current("name");
    list.reset();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const field = (name) => form.elements.namedItem(name).value.trim();
    const q = queryOf({ status: field("status"), name: field("name") }).toString();
    history.pushState(null, "", q ? `?${q}` : location.pathname);
    reload();
  });
  window.addEventListener("popstate", reload);
  reload();
}

function renderJob(job) {
  const status = $("#job-status");
  status.textContent = job.status;
  status.className = `status status-${job.status}`;
  $("#job-kind").textContent = `(${job.kind})`;
  const progress = $("#job-progress");
  const seen = processed(job);
  if (job.total > 0) {
    progress.max = job.total;
    progress.value = Math.min(seen, job.total);
  } else if (FINISHED.has(job.status)) {
    progress.max = 1;
    progress.value = 1;
  } else {
    progress.removeAttribute("value"); // indeterminate until the archive is counted
  }
  const share = job.total ? Math.round((seen / job.total) * 100) : FINISHED.has(job.status) ? 100 : 0;
  $("#job-progress-text").textContent = `${seen} of ${job.total} files processed (${share} %)${
    FINISHED.has(job.status) ? ` · ${job.status}` : ""
  }`;

  $("#job-name").textContent = job.name || "Job";
  document.title = `${job.name || "Job"} · pawdex`;
  const facts = [
    ["From", job.created_by ? `${job.origin} · ${job.created_by}` : job.origin],
    ["Total files", job.total],
    ["Classified", job.done],
    ["Failed", job.failed],
    ["Duplicates", job.duplicates],
    ["Skipped (system files)", job.skipped],
    ["Photos per second", job.photos_per_second == null ? "–" : job.photos_per_second.toFixed(2)],
    ["Time left", FINISHED.has(job.status) ? "–" : duration(job.eta_seconds)],
    ["Created", when(job.created_at)],
    ["Started", when(job.started_at)],
    ["Finished", when(job.finished_at)],
  ];
  $("#job-facts").replaceChildren(
    ...facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { "data-fact": k, text: v })]),
  );
  const message = $("#job-message");
  message.textContent = job.message || "";
  message.hidden = !job.message;
  $("#job-errors-count").textContent = job.failed ? `(${job.failed})` : "";
  // Cancel stays enabled: the server is the judge (a job may finish between two polls).
}

function initJob(me) {
  const id = document.body.dataset.jobId;
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  $("#job-gallery-link").href = `/ui/?${queryOf({ job_id: id })}`;
  let timer = null;
  const dupBody = $("#job-dups tbody");
  const dups = pager(
    $("#dups-more"),
    (cursor) => api(`${path}/duplicates?${queryOf({ limit: 100, cursor })}`),
    (page) => {
      dupBody.append(
        ...page.items.map((d) =>
          h(
            "tr",
            { "data-testid": "job-duplicate" },
            h("td", {}, h("code", { text: d.name })),
            h("td", {}, h("a", { href: `/ui/photos/${d.image_id}`, text: d.path })),
          ),
        ),
      );
      $("#job-dups").hidden = !dupBody.children.length;
      $("#job-no-dups").hidden = Boolean(dupBody.children.length);
    },
  );
  let dupsShown = false;
  // All of a job's errors, a page at a time (its document holds only the first few): listed
  // again from the top whenever the job has counted more.
  const errorBody = $("#job-errors tbody");
  const fileErrors = pager(
    $("#errors-more"),
    (cursor) => api(`${path}/errors?${queryOf({ limit: 100, cursor })}`),
    (page) => {
      errorBody.append(
        ...page.items.map((e) =>
          h("tr", { "data-testid": "job-error" }, h("td", {}, h("code", { text: e.name })), h("td", { text: e.error })),
        ),
      );
      $("#job-errors").hidden = !errorBody.children.length;
      $("#job-no-errors").hidden = Boolean(errorBody.children.length);
    },
  );
  let errorsListed = 0;

  function renderJobAndErrors(job) {
    renderJob(job);
    if (job.failed !== errorsListed) {
      errorsListed = job.failed;
      errorBody.replaceChildren();
      $("#job-errors").hidden = !job.failed;
      $("#job-no-errors").hidden = Boolean(job.failed);
      if (job.failed) fileErrors.reset();
    }
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const job = await api(path);
      renderJobAndErrors(job);
      if (FINISHED.has(job.status) && !dupsShown) {
        dupsShown = true; // listed once the job has found them all
        dupBody.replaceChildren();
        dups.reset();
      }
      if (!FINISHED.has(job.status)) timer = setTimeout(poll, 1000);
    } catch (error) {
      showError(error);
      if (error.status !== 404 && error.status !== 401 && error.status !== 403) {
        timer = setTimeout(poll, 3000);
      }
    }
  }

  async function act(verb, button) {
    clearError();
    button.disabled = true;
    try {
      renderJobAndErrors(await api(`${path}/${verb}`, { method: "POST" }));
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
      poll();
    }
  }

  if (mayUse(me, $("#cancel-job"))) {
    $("#cancel-job").addEventListener("click", (e) => act("cancel", e.currentTarget));
    $("#retry-job").addEventListener("click", (e) => act("retry", e.currentTarget));
  }
  poll();
}

// ---------------------------------------------------------------- animal detail & labels

let allBreeds = null;

async function breedList() {
  allBreeds = allBreeds || (await api("/v1/breeds/all"));
  return allBreeds;
}

function fillBreedSelect(select, selected) {
  return breedList().then((breeds) => {
    select.replaceChildren(
      h("option", { value: "", text: "Choose a breed…" }),
      ...breeds.map((b) => h("option", { value: b, text: breedName(b) })),
    );
    select.value = selected && breeds.includes(selected) ? selected : "";
  });
}

/** The breed as a page shows it: a person's label as shelters write it ("Labrador Retriever
 * mix", "mixed breed"), the model's "uncertain between A and B", or the species. */
function verdictText(animal) {
  if (animal.species !== "dog") return speciesText(animal);
  return animal.breed_text || breedName(animal.breed) || "dog";
}

/** The label form of the photo and animal pages: up to three breeds (the first is the one
 * the catalogue files it under), "mix", "mixed breed" or "unknown breed". ``onSave`` gets
 * the label body; ``onRemove`` (optional) withdraws the current label. */
function labelForm(current, { onSave, onRemove }) {
  const kind = h(
    "select",
    { id: "label-kind", "data-testid": "label-kind" },
    h("option", { value: "breeds", text: "Breed (up to three)" }),
    h("option", { value: "mixed", text: "Mixed breed (parents unknown)" }),
    h("option", { value: "unknown", text: "Unknown breed" }),
  );
  const breeds = [1, 2, 3].map((n) =>
    h("select", {
      id: n === 1 ? "correct-breed" : `label-breed-${n}`,
      "data-testid": n === 1 ? "correct-breed" : `label-breed-${n}`,
      "aria-label": n === 1 ? null : `Breed ${n} (optional)`,
    }),
  );
  const labelled = current.label_source === "human" && current.species === "dog";
  const parents = labelled ? current.breeds || [] : [];
  breeds.forEach((select, i) => fillBreedSelect(select, parents[i] || (i ? null : current.breed)).catch(showError));
  const mix = h("input", { type: "checkbox", id: "label-mix", "data-testid": "label-mix", checked: labelled && current.mix });
  if (labelled && !parents.length) kind.value = current.mix ? "mixed" : "unknown";
  const pickers = h("span", { class: "breed-pickers" }, ...breeds);
  const showPickers = () => {
    pickers.hidden = kind.value !== "breeds";
    mix.parentElement.hidden = kind.value !== "breeds";
  };
  const form = h(
    "form",
    { id: "correct-form", class: "inline-form label-form", "data-testid": "label-form" },
    h("label", { for: "label-kind", text: "Kind" }),
    kind,
    h("label", { for: "correct-breed", text: "Correct breed" }),
    pickers,
    h("label", { class: "check" }, mix, " Mix"),
    h("button", { type: "submit", "data-testid": "label-correct", text: "Correct" }),
    onRemove &&
      h("button", {
        type: "button",
        "data-testid": "label-remove",
        text: "Remove label",
        hidden: current.label_source !== "human",
        onclick: onRemove,
      }),
  );
  kind.addEventListener("change", showPickers);
  showPickers();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (kind.value !== "breeds") {
      onSave({ species: "dog", breeds: [], mix: kind.value === "mixed" });
      return;
    }
    const chosen = [...new Set(breeds.map((select) => select.value).filter(Boolean))];
    if (!chosen.length) {
      showError("Choose a breed first.");
      return;
    }
    onSave({ species: "dog", breeds: chosen, mix: mix.checked });
  });
  return form;
}

/** The model's own verdict, as a label body (what "Confirm" agrees with). */
function modelVerdict(animal) {
  const species = animal.model_species || animal.species;
  const breed = animal.model_species ? animal.model_breed : animal.breed;
  return species === "dog" ? { species, breed } : { species, breed: null };
}

function bar(label, confidence, testid) {
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = `${Math.max(0, Math.min(1, confidence)) * 100}%`;
  return h(
    "li",
    { class: "bar", "data-testid": testid },
    h("span", { class: "bar-label", text: label }),
    h("span", { class: "bar-track", "aria-hidden": "true" }, fill),
    h("span", { class: "bar-value", text: pct(confidence) }),
  );
}

function renderAnimal(animal) {
  const photo = $("#animal-photo");
  photo.src = animal.image_url;
  photo.alt = `${speciesText(animal)}: ${animal.filename}`;
  $("#animal-path").textContent = animal.path;
  $("#animal-title").textContent = verdictText(animal);
  document.title = `${verdictText(animal)} · pawdex`;
  const human = animal.label_source === "human";
  // Species and its confidence first; a breed's percentage only where the model sees a dog.
  const facts = [
    ["Species", `${animal.model_species} · ${pct(animal.species_confidence)} (the model)`, "species"],
    ...(animal.model_species === "dog" ? [["Model's breed confidence", pct(animal.confidence), "confidence"]] : []),
    ["Label source", animal.label_source || "model", "label-source"],
  ];
  if (human) {
    facts.push(["Labelled by", `${animal.labeled_by || "?"}, ${when(animal.labeled_at)}`, "labeled-by"]);
    const model = animal.model_species === "dog" ? breedName(animal.model_breed) : animal.model_species;
    facts.push(["The model said", model || "–", "model-said"]);
  }
  facts.push(["Model version", animal.model_version, "model-version"]);
  facts.push(["Size", `${animal.width} × ${animal.height}`, "size"]);
  facts.push(["Indexed", when(animal.indexed_at), "indexed"]);
  $("#animal-facts").replaceChildren(
    ...facts.flatMap(([k, v, id]) => [h("dt", { text: k }), h("dd", { "data-testid": id, text: v })]),
  );
  if (animal.job_id) {
    $("#animal-facts").append(
      h("dt", { text: "Job" }),
      h("dd", {}, h("a", { href: jobUrl(animal.job_id), "data-testid": "animal-job-link", text: animal.job_id.slice(0, 12) })),
    );
  }
  $("#topk").replaceChildren(
    ...(animal.top_k || []).slice(0, 5).map((t) => bar(breedName(t.breed), t.confidence, "top-k-bar")),
  );
}

async function initAnimal(me) {
  const id = document.body.dataset.animalId;
  photoNavigation(id); // previous / next, when opened from a list
  let animal;
  try {
    animal = await api(`/v1/photos/${encodeURIComponent(id)}`);
  } catch (error) {
    showError(error);
    return;
  }
  renderAnimal(animal);
  if (!mayUse(me, $("#label-panel"))) return;

  const statusLine = $("#label-status");
  const url = `/v1/photos/${encodeURIComponent(id)}/label`;
  async function label(method, body) {
    clearError();
    statusLine.textContent = "Saving…";
    try {
      animal = await api(url, { method, json: body });
      renderAnimal(animal);
      showForm();
      statusLine.textContent = method === "DELETE" ? "Label removed." : `Saved: ${verdictText(animal)}.`;
    } catch (error) {
      statusLine.textContent = "";
      showError(error);
    }
  }
  function showForm() {
    const onSave = (body) => label("POST", body);
    $("#label-form-slot").replaceChildren(labelForm(animal, { onSave, onRemove: () => label("DELETE") }));
  }
  showForm();
  $("#label-confirm").addEventListener("click", () => label("POST", modelVerdict(animal)));
  $("#label-not-dog").addEventListener("click", () => label("POST", { species: "other", breed: null }));
  $("#label-cat").addEventListener("click", () => label("POST", { species: "cat", breed: null }));
}

// ---------------------------------------------------------------- review queue

function reviewCard(animal, onLabel) {
  const select = h("select", { id: `breed-${animal.id}`, "data-testid": "review-breed" });
  const verdict = modelVerdict(animal);
  const confirmText =
    verdict.species === "dog"
      ? `Confirm ${breedName(verdict.breed)}`
      : `Confirm: ${verdict.species === "cat" ? "a cat" : "not a dog"}`;
  const card = h(
    "li",
    { class: "review-card", "data-testid": "review-card", "data-animal-id": animal.id },
    h(
      "a",
      { href: `/ui/photos/${animal.id}`, class: "review-photo" },
      h("img", { src: animal.thumbnail_url, loading: "lazy", alt: animal.filename, width: 150, height: 150 }),
    ),
    h(
      "div",
      { class: "review-body" },
      h("p", { class: "review-file" }, h("code", { text: animal.path })),
      animal.model_species === "dog"
        ? null
        : h("p", { class: "review-species", "data-testid": "review-species", text: `${animal.model_species} · ${pct(animal.species_confidence)}` }),
      animal.model_species === "dog" ? null : h("p", { class: "muted", text: "If it is a dog:" }),
      h("ol", { class: "bars compact" }, ...(animal.top_k || []).slice(0, 3).map((t) => bar(breedName(t.breed), t.confidence, "review-top"))),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "primary", "data-testid": "review-confirm", text: confirmText, onclick: () => onLabel(card, verdict) }),
        h("button", { type: "button", "data-testid": "review-not-dog", text: "Not a dog", onclick: () => onLabel(card, { species: "other", breed: null }) }),
      ),
      h(
        "form",
        {
          class: "inline-form",
          onsubmit: (event) => {
            event.preventDefault();
            if (select.value) onLabel(card, { species: "dog", breed: select.value });
          },
        },
        h("label", { for: `breed-${animal.id}`, text: "Another breed" }),
        select,
        h("button", { type: "submit", "data-testid": "review-set-breed", text: "Set breed" }),
      ),
    ),
  );
  breedList()
    .then((breeds) => {
      select.replaceChildren(
        h("option", { value: "", text: "Choose…" }),
        ...breeds.map((b) => h("option", { value: b, text: breedName(b) })),
      );
    })
    .catch(showError);
  return card;
}

function initReview() {
  const form = $("#review-form");
  const input = $("#threshold");
  const listEl = $("#review-list");
  const status = $("#review-status");
  const threshold = () => new URLSearchParams(location.search).get("threshold") || "";
  const notDogs = $("#include-not-dogs");
  // Photos the model is sure are not dogs stay out of the queue unless asked for.
  const withNotDogs = () => (new URLSearchParams(location.search).get("include_not_dogs") === "true" ? "true" : "");
  input.value = threshold();
  let total = null;

  function updateStatus(extra = "") {
    const n = listEl.children.length;
    const of = total ? ` (of ${totalText(total, "photo")})` : "";
    status.textContent = `${extra}${n ? `${n} photo${n === 1 ? "" : "s"} to review${of}` : "Nothing to review."}`;
  }

  async function onLabel(card, body) {
    clearError();
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      const animal = await api(`/v1/photos/${card.dataset.animalId}/label`, { method: "POST", json: body });
      card.remove();
      updateStatus(`Labelled ${animal.filename} as ${speciesText(animal)}. `);
    } catch (error) {
      showError(error);
      for (const b of card.querySelectorAll("button")) b.disabled = false;
    }
  }

  let results = null;
  const list = pager(
    $("#review-more"),
    (cursor) => api(`/v1/review?${queryOf({ threshold: threshold(), include_not_dogs: withNotDogs(), limit: 24, cursor })}`),
    (page) => {
      if (!input.value && page.threshold !== undefined) input.value = page.threshold;
      total = page;
      // ``photo``: what the keyboard's 1–5 and Enter read.
      listEl.append(...page.items.map((a) => Object.assign(reviewCard(a, onLabel), { photo: a })));
      results.add(page, listEl);
      updateStatus();
    },
  );
  reviewShortcuts(listEl, onLabel, () => updateStatus());
  const reload = () => {
    clearError();
    listEl.replaceChildren();
    input.value = threshold();
    notDogs.checked = withNotDogs() === "true";
    total = null;
    const q = queryOf({ threshold: threshold(), include_not_dogs: withNotDogs(), limit: 24 });
    const back = location.pathname + location.search;
    results = trail(`review?${q}`, { source: `/v1/review?${q}`, back, label: "Review queue" });
    list.reset();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = queryOf({ threshold: input.value, include_not_dogs: notDogs.checked ? "true" : "" }).toString();
    history.pushState(null, "", q ? `?${q}` : location.pathname);
    reload();
  });
  window.addEventListener("popstate", reload);
  reload();
}

// ---------------------------------------------------------------- animals

function animalTitle(animal) {
  const id = animal.external_id || `Animal ${animal.id}`;
  return animal.name ? `${animal.name} (${id})` : id;
}

function breedText(animal) {
  if (animal.label_source === "human") return `${animal.breed_text || animal.species} (labelled)`;
  // Torn between two breeds: the words say it; the pooled bars give both percentages.
  if (animal.uncertain_between) return animal.breed_text;
  if (animal.breed) return `${animal.breed_text || breedName(animal.breed)} · ${pct(animal.confidence)}`;
  // Not a dog: its species and how sure, never a dog breed's percentage.
  if (animal.species) return `${animal.species} · ${pct(animal.species_confidence)}`;
  return "not classified yet";
}

function animalRecordCard(animal) {
  const title = animalTitle(animal);
  return h(
    "li",
    { class: "animal-card", "data-testid": "animal-record-card", "data-animal-id": animal.id },
    h(
      "a",
      { href: `/ui/animals/${animal.id}` },
      animal.cover_url
        ? h("img", { src: animal.cover_url, loading: "lazy", alt: title, width: 150, height: 150 })
        : null,
      h(
        "span",
        { class: "card-caption record-caption" },
        h("span", { class: "card-breed", "data-testid": "card-title", text: title }),
        h("span", { class: "card-conf", "data-testid": "card-breed", text: breedText(animal) }),
        h("span", {
          class: "card-conf",
          "data-testid": "card-photos",
          text: `${animal.photo_count} photo${animal.photo_count === 1 ? "" : "s"}`,
        }),
      ),
    ),
  );
}

async function initAnimals() {
  const form = $("#animal-search");
  const params = new URLSearchParams(location.search);
  fillForm(form, Object.fromEntries(params));
  const list = $("#animals");
  let shown = 0;
  const pages = pager($("#load-more"), (cursor) => {
    const query = queryOf({ ...Object.fromEntries(params), limit: 48, cursor });
    return api(`/v1/animals?${query}`);
  }, (page) => {
    list.append(...page.items.map(animalRecordCard));
    shown += page.items.length;
    $("#animals-status").textContent = shown
      ? `${totalText(page, "animal")}${page.next_cursor ? ` · ${shown} shown` : ""}`
      : "No animals match. Upload photos to see them here.";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    location.search = queryOf(values);
  });
  $("#records-form").addEventListener("submit", importRecords);
  await pages.more();
}

/** The shelter software's CSV export: names and intake dates by shelter ID (PATCH /v1/animals). */
async function importRecords(event) {
  event.preventDefault();
  const file = $("#records-file").files[0];
  const out = $("#records-result");
  if (!file) return;
  clearError();
  out.replaceChildren(h("p", { class: "muted", text: `Reading ${file.name}…` }));
  let result;
  try {
    result = await api("/v1/animals", {
      method: "PATCH",
      body: await file.text(),
      headers: { "Content-Type": "text/csv" },
    });
  } catch (error) {
    out.replaceChildren();
    showError(error);
    return;
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const lines = [
    h("p", {
      "data-testid": "records-updated",
      text: `${plural(result.updated, "animal")} updated from ${plural(result.received, "row")}.`,
    }),
  ];
  if (result.unknown) {
    const more = result.unknown > result.unknown_ids.length ? ", …" : "";
    lines.push(
      h("p", {
        class: "muted",
        "data-testid": "records-unknown",
        text:
          `${plural(result.unknown, "shelter ID")} ha${result.unknown === 1 ? "s" : "ve"} no photos yet ` +
          `(${result.unknown_ids.join(", ")}${more}): import again once their photos are in.`,
      }),
    );
  }
  if (result.failed) {
    lines.push(
      h("p", { text: `${plural(result.failed, "row")} refused:` }),
      h(
        "ul",
        { class: "errors", "data-testid": "records-errors" },
        ...result.errors.map((e) => h("li", { text: `line ${e.row}: ${e.reason}` })),
      ),
    );
  }
  out.replaceChildren(...lines);
  if (result.updated) {
    out.append(h("a", { href: location.href, "data-testid": "records-refresh", text: "Show the animals as they are now" }));
  }
}

function renderAnimalRecord(animal) {
  $("#animal-heading").textContent = animalTitle(animal);
  document.title = `${animalTitle(animal)} · pawdex`;
  const facts = [
    ["Shelter ID", animal.external_id || "none"],
    ["Name", animal.name || "none"],
    ["Intake", animal.intake_date || "unknown"],
    ["Breed", breedText(animal)],
    ["Photos", String(animal.photo_count)],
  ];
  $("#animal-record-facts").replaceChildren(
    ...facts.flatMap(([term, value]) => [h("dt", { text: term }), h("dd", { text: value })]),
  );
  $("#pooled").replaceChildren(
    ...animal.top_k.map((t) => bar(t.breed.replaceAll("_", " "), t.confidence, "pooled-breed")),
  );
  $("#edit-external").value = animal.external_id || "";
  $("#edit-name").value = animal.name || "";
  $("#edit-intake").value = animal.intake_date || "";
  $("#animal-photos").replaceChildren(
    ...animal.photos.map((p) =>
      h(
        "li",
        { class: `animal-card${p.agrees ? "" : " disagrees"}`, "data-testid": "animal-photo-card" },
        h(
          "a",
          { href: `/ui/photos/${p.id}` },
          h("img", { src: p.thumbnail_url, loading: "lazy", alt: p.path, width: 150, height: 150 }),
          h(
            "span",
            { class: "card-caption" },
            h("span", {
              class: "card-breed",
              "data-testid": "photo-breed",
              text: p.label ? `${p.label} (labelled)` : p.breed ? breedName(p.breed) : "not a dog",
            }),
            h("span", {
              class: "card-conf",
              "data-testid": "photo-agrees",
              text: p.agrees ? "agrees" : "differs",
            }),
          ),
        ),
      ),
    ),
  );
  const photos = trail(`animal/${animal.id}`, { source: null, back: location.pathname, label: animalTitle(animal) });
  photos.add({ items: animal.photos, next_cursor: null }, $("#animal-photos"));
}

async function initAnimalRecord() {
  const id = document.body.dataset.animalId;
  let record;
  try {
    record = await api(`/v1/animals/${encodeURIComponent(id)}`);
    renderAnimalRecord(record);
  } catch (error) {
    showError(error);
    return;
  }
  // One label for every photo of the animal (the same form as a photo's).
  const labelStatus = $("#animal-label-status");
  function showLabelForm() {
    $("#animal-label-slot").replaceChildren(labelForm(record, { onSave: labelAnimal }));
  }
  async function labelAnimal(body) {
    clearError();
    labelStatus.textContent = "Saving…";
    try {
      record = await api(`/v1/animals/${encodeURIComponent(id)}/label`, { method: "POST", json: body });
      renderAnimalRecord(record);
      showLabelForm();
      labelStatus.textContent = `Saved: ${verdictText(record)}.`;
    } catch (error) {
      labelStatus.textContent = "";
      showError(error);
    }
  }
  showLabelForm();
  $("#animal-edit").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const animal = await api(`/v1/animals/${encodeURIComponent(id)}`, {
        method: "PATCH",
        json: {
          external_id: $("#edit-external").value,
          name: $("#edit-name").value,
          intake_date: $("#edit-intake").value || null,
        },
      });
      renderAnimalRecord(animal);
      $("#edit-status").textContent = "Saved.";
    } catch (error) {
      showError(error);
    }
  });
}

// ---------------------------------------------------------------- admin dashboard

function statCard(label, value, testid) {
  return h(
    "li",
    { class: "stat", "data-testid": testid },
    h("span", { class: "stat-value", text: value }),
    h("span", { class: "stat-label", text: label }),
  );
}

function throughputChart(points) {
  const width = 600;
  const height = 120;
  const max = Math.max(1, ...points.map((p) => p.photos));
  const step = width / Math.max(points.length, 1);
  const total = points.reduce((s, p) => s + p.photos, 0);
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "throughput",
    role: "img",
    "aria-label": `${total} photos in the last ${points.length} minutes, at most ${max} in one minute`,
    preserveAspectRatio: "none",
  });
  chart.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  points.forEach((p, i) => {
    const bh = (p.photos / max) * (height - 4);
    const rect = svg("rect", {
      x: i * step + 1,
      y: height - bh,
      width: Math.max(step - 2, 1),
      height: bh,
      class: "bar-rect",
    });
    const t = parseTime(p.minute);
    rect.append(svg("title", {}, `${t ? t.toLocaleTimeString() : p.minute}: ${p.photos} photos`));
    chart.append(rect);
  });
  return chart;
}

function renderOverview(o) {
  $("#queues").replaceChildren(...o.queues.map((q) => statCard(`queue ${q.name}`, q.depth, "queue-card")));
  $("#hour-stats").replaceChildren(
    statCard("photos classified", o.photos_last_hour, "photos-last-hour"),
    statCard("failed files", o.failures_last_hour, "failures-last-hour"),
  );
  $("#throughput").replaceChildren(throughputChart(o.throughput || []));
  const peak = Math.max(0, ...(o.throughput || []).map((p) => p.photos));
  $("#throughput-peak").textContent = `(busiest minute: ${peak} photos)`;
  $("#jobs-by-status").replaceChildren(
    ...Object.entries(o.jobs_by_status || {}).map(([s, n]) =>
      h("li", {}, h("a", { href: `/ui/jobs?${queryOf({ status: s })}`, class: `status status-${s}`, text: `${s}: ${n}` })),
    ),
  );
  // Workers grouped per host (a host is online while any of its workers is).
  const hosts = new Map();
  for (const w of o.workers) {
    const name = w.host || "unknown host";
    if (!hosts.has(name)) hosts.set(name, []);
    hosts.get(name).push(w);
  }
  const workerRow = (w) =>
    h(
      "tr",
      { "data-testid": "worker-row", "data-online": w.online ? "true" : "false" },
      h("td", {}, h("span", { class: `dot ${w.online ? "online" : "offline"}`, "aria-hidden": "true" }), h("span", { "data-testid": "worker-state", text: w.online ? "online" : "offline" })),
      h("td", {}, h("code", { text: w.hostname })),
      h("td", { text: (w.queues || []).join(", ") }),
      h("td", { "data-testid": "worker-device", text: [w.device, w.runtime].filter(Boolean).join(" · ") || "–" }),
      h("td", { text: w.model_version || "–" }),
      h("td", { text: w.current_task || "idle" }),
      h(
        "td",
        {},
        String(w.batches),
        w.near_visibility_timeout
          ? h("span", {
              class: "status status-partial",
              "data-testid": "worker-visibility-warning",
              title: "Lower PAWDEX_BATCH_SIZE or raise PAWDEX_BROKER_VISIBILITY_TIMEOUT",
              text: ` longest ${Math.round(w.longest_batch_seconds)} s, over half the ${o.visibility_timeout} s visibility timeout`,
            })
          : null,
      ),
      h("td", { text: w.photos }),
      h("td", { text: when(w.last_seen) }),
    );
  $("#workers-body").replaceChildren(
    ...[...hosts].flatMap(([name, group]) => {
      const online = group.filter((w) => w.online).length;
      const address = group.find((w) => w.address)?.address;
      const header = h(
        "tr",
        { class: "host-row", "data-testid": "host-row", "data-host": name, "data-online": online ? "true" : "false" },
        h(
          "th",
          { scope: "rowgroup", colspan: 9 },
          h("span", { class: `dot ${online ? "online" : "offline"}`, "aria-hidden": "true" }),
          h("span", { "data-testid": "host-name", text: name }),
          address ? h("span", { class: "muted", text: ` ${address}` }) : null,
          h("span", { "data-testid": "host-state", text: ` · ${online ? "online" : "offline"} (${online} of ${group.length} workers)` }),
        ),
      );
      return [header, ...group.map(workerRow)];
    }),
  );
  if (!o.workers.length) {
    $("#workers-body").append(h("tr", {}, h("td", { colspan: 9, text: "No worker has reported yet." })));
  }
  $("#active-model").textContent = o.active_model ? `${o.active_model.name} (version ${o.active_model.version})` : "No active model.";

  const failures = $("#recent-failures");
  $("tbody", failures).replaceChildren(
    ...o.recent_failures.map((f) =>
      h(
        "tr",
        {},
        h("td", { text: when(f.created_at) }),
        h("td", {}, h("a", { href: jobUrl(f.job_id), text: f.job_id.slice(0, 8) })),
        h("td", {}, h("code", { text: f.name })),
        h("td", { text: f.error }),
      ),
    ),
  );
  failures.hidden = !o.recent_failures.length;
  $("#no-failures").hidden = !failures.hidden;

  const top = (o.breeds || []).slice(0, 20);
  const most = Math.max(1, ...top.map((b) => b.count));
  $("#breed-chart").replaceChildren(
    ...top.map((b) => {
      const item = bar(breedName(b.breed), b.count / most, "breed-bar");
      $(".bar-value", item).textContent = b.count;
      return item;
    }),
  );
  const flower = $("#flower-link");
  const flowerOk = typeof o.flower_url === "string" && /^https?:\/\//i.test(o.flower_url);
  flower.hidden = !flowerOk;
  if (flowerOk) flower.href = o.flower_url;
  $("#admin-updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
}

function libraryRow(library, onScan, onDelete) {
  const job = library.last_job;
  const last = job
    ? h("a", { href: jobUrl(job.id), text: `${job.status}, ${when(job.created_at)}` })
    : "never";
  const scan = h("button", { type: "button", text: "Scan", "data-testid": "library-scan" });
  scan.disabled = Boolean(job && !FINISHED.has(job.status));
  scan.addEventListener("click", () => onScan(library, scan));
  const remove = h("button", { type: "button", class: "danger", text: "Delete", "data-testid": "library-delete" });
  remove.disabled = scan.disabled;
  remove.addEventListener("click", () => onDelete(library, remove));
  return h(
    "tr",
    { "data-testid": "library-row" },
    h("td", { text: library.name }),
    h("td", {}, h("code", { text: library.root })),
    h("td", { text: String(library.files) }),
    h("td", { text: String(library.photos) }),
    h("td", {}, last),
    h("td", {}, scan, " ", remove),
  );
}

function initLibraries() {
  const table = $("#libraries");
  async function scan(library, button) {
    button.disabled = true;
    clearError();
    try {
      await api(`/v1/libraries/${library.id}/scan`, { method: "POST" });
      await reload();
    } catch (error) {
      showError(error);
      button.disabled = false;
    }
  }
  async function remove(library, button) {
    const question = `Stop indexing ${library.name}? Its photos that no upload holds go to the trash (restorable); the folder is not touched.`;
    if (!window.confirm(question)) return;
    button.disabled = true;
    clearError();
    try {
      const deletion = await api(`/v1/libraries/${library.id}`, { method: "DELETE" });
      $("#library-status").replaceChildren(
        `${deletion.name} is in the trash (${deletion.photos} photos). `,
        h("a", { href: "/ui/trash", text: "Restore it from the trash" }),
      );
      await reload();
    } catch (error) {
      showError(error);
      button.disabled = false;
    }
  }
  async function reload() {
    const libraries = await api("/v1/libraries");
    $("tbody", table).replaceChildren(...libraries.map((l) => libraryRow(l, scan, remove)));
    table.hidden = libraries.length === 0;
    $("#no-libraries").hidden = libraries.length > 0;
  }
  $("#library-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#library-add");
    button.disabled = true;
    clearError();
    try {
      await api("/v1/libraries", {
        method: "POST",
        json: { path: $("#library-path").value.trim(), name: $("#library-name").value.trim() },
      });
      event.target.reset();
      await reload();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
  return reload;
}

function initAdmin(me) {
  const reloadLibraries = initLibraries();
  initKeys(me);
  $("#reindex-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#reindex");
    button.disabled = true;
    clearError();
    try {
      const job = await api("/v1/admin/reindex", {
        method: "POST",
        json: { all: $("#reindex-all").checked },
      });
      const link = h("a", { href: jobUrl(job.id), text: `job ${job.id.slice(0, 8)}` });
      $("#reindex-result").replaceChildren(`${job.total} photos queued: `, link);
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });

  async function refresh() {
    try {
      renderOverview(await api("/v1/admin/overview"));
      await reloadLibraries();
      clearError();
    } catch (error) {
      showError(error);
      if (error.status === 403 || error.status === 401) return;
    }
    setTimeout(refresh, 5000);
  }
  refresh();
}

// ---------------------------------------------------------------- shared with the modules

/** Whether a key press belongs to a field the user types into (not to the page's shortcuts). */
function typingIn(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return true;
  const el = event.target;
  return Boolean(el && el.closest && el.closest("input, textarea, select, [contenteditable]"));
}

export { $, api, breedList, clearError, h, modelVerdict, showError, typingIn, when };

// ---------------------------------------------------------------- start

const PAGES = {
  gallery: initGallery,
  upload: initUpload,
  jobs: initJobs,
  job: initJob,
  photo: initAnimal,
  animals: initAnimals,
  animal: initAnimalRecord,
  review: initReview,
  admin: initAdmin,
  trash: initTrash,
};

async function start() {
  const close = $(".banner-close");
  if (close) close.addEventListener("click", clearError);
  const page = document.body.dataset.page;
  if (page === "login") {
    initLogin();
    return;
  }
  const signOutButton = $("#sign-out");
  if (signOutButton) signOutButton.addEventListener("click", signOut);
  let me;
  try {
    me = await api("/v1/me");
  } catch (error) {
    showError(error);
    return;
  }
  applyRole(me);
  const init = PAGES[page];
  if (init) await init(me);
  const deleteZone = $("#delete-zone");
  if (deleteZone && mayUse(me, deleteZone)) pageDeleteControls(page);
  document.body.dataset.ready = "true";
}

start();
