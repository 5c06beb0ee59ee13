// Small DOM helpers: build elements from data (text is never parsed as HTML), tables, messages.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** el("a", {href: "/x", class: "b"}, "text", child) — strings become text nodes. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Say something in the page's live region; errors are announced too. */
export function say(message, kind = "info") {
  const status = $("#status");
  if (!status) return;
  status.textContent = message;
  status.dataset.kind = kind;
}

export function sayError(error) {
  const details = (error.errors || [])
    .map((item) => [item.loc && item.loc.join ? item.loc.join(".") : item.field, item.msg || item.message].filter(Boolean).join(": "))
    .filter(Boolean);
  say([error.message, ...details].join(" — "), "error");
}

/** Run an async action from a button or form, reporting failures in the status region. */
export async function attempt(action, { busy } = {}) {
  if (busy) busy.disabled = true;
  try {
    return await action();
  } catch (error) {
    sayError(error);
    return undefined;
  } finally {
    if (busy) busy.disabled = false;
  }
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/**
 * A table of rows; `columns` are [heading, row => cell (string or node)].
 * With no rows, `empty` (a sentence saying what to do next) is shown instead.
 */
export function table(columns, rows, empty, caption) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  // A wide table scrolls inside its own box; the box takes focus so keyboards can scroll it.
  return el(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption || "Table" },
    el(
      "table",
      {},
      caption ? el("caption", {}, caption) : null,
      el("thead", {}, el("tr", {}, columns.map(([heading]) => el("th", { scope: "col" }, heading)))),
      el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row) ?? "—"))))),
    ),
  );
}

/** The form's named fields as an object: empty strings left out, numbers and checkboxes typed. */
export function formValues(form) {
  const values = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled || field.type === "file" || field.type === "submit") continue;
    if (field.type === "checkbox") values[field.name] = field.checked;
    else if (field.value === "") continue;
    else if (field.type === "number") values[field.name] = Number(field.value);
    else values[field.name] = field.value;
  }
  return values;
}

/** Replace a container's children. */
export function show(container, ...children) {
  container.replaceChildren(...children.flat().filter(Boolean));
}

/** A button that copies `text` to the clipboard and says so. */
export function copyButton(text, label = "Copy") {
  return el("button", {
    type: "button",
    class: "secondary",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        say("Copied to the clipboard.");
      } catch {
        say("Select the text and copy it yourself: the browser refused clipboard access.", "error");
      }
    },
  }, label);
}

export function badge(text) {
  return el("span", { class: `badge badge-${String(text).replace(/[^a-z_]/gi, "")}` }, text);
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function itemId() {
  return document.body.dataset.itemId;
}

/** Poll `load` every `seconds` while the page is visible and `keepGoing()` says so. */
export function poll(load, seconds, keepGoing = () => true) {
  let timer = null;
  const tick = async () => {
    await load();
    if (keepGoing()) timer = setTimeout(tick, seconds * 1000);
  };
  tick();
  return () => clearTimeout(timer);
}

// Submit buttons start disabled in the HTML (so neither a click nor Enter can submit a form
// natively, e.g. a password in a URL) until the page's script listens: modules and deferred
// scripts have all run when DOMContentLoaded fires. Buttons marked data-ready="loaded" act on
// what the page loads first (an agent's saved settings, the agents to choose from): they wait
// for the page's `loaded()`, so a quick click never sends a half-filled form.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of $$('button[data-ready=""]')) button.disabled = false;
});

/** The page's first load is done: enable the buttons that were waiting for it. */
export function loaded() {
  for (const button of $$('button[data-ready="loaded"]')) button.disabled = false;
}

/** A button acting on one row of a table, after the person confirms `question` (if any). */
export function rowAction(label, name, action, question = null) {
  return el("button", {
    type: "button",
    class: "secondary",
    "aria-label": name,
    onclick: () => {
      if (question && !confirm(question)) return;
      attempt(action);
    },
  }, label);
}
