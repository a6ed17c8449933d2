// The console page: sessions, the composer, targets, and one chat request at a time.

import { ApiError, apiKey, chat, getJson } from "./api.js";
import { downscale, imagesFrom } from "./images.js";
import { Store } from "./store.js";
import { el, messageNode } from "./view.js";

const $ = (id) => document.getElementById(id);
const store = new Store();
const ui = {
  info: { image_max_side: 1536, keys_required: false },
  attachments: [], // {url, width, height, name}
  controller: null, // AbortController of the request in flight
  views: new Map(), // message -> {node, update}
};

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

// ---- API key ----------------------------------------------------------------------

function askForKey(error) {
  const dialog = $("key-dialog");
  $("key-error").hidden = !error;
  $("key-error").textContent = error ?? "";
  $("key-input").value = "";
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => {
    $("key-form").addEventListener(
      "submit",
      () => {
        apiKey.set($("key-input").value.trim());
        resolve();
      },
      { once: true },
    );
  });
}

async function withKey(call) {
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      await askForKey(apiKey.get() ? err.message : null);
    }
  }
}

// ---- sessions ---------------------------------------------------------------------

function renderSessions() {
  const list = $("sessions");
  list.replaceChildren();
  for (const session of store.sessions) {
    const item = el("li", session.id === store.current.id ? "session current" : "session");
    const button = el("button", "session-button", session.title);
    button.type = "button";
    button.title = session.title;
    button.dataset.session = session.id;
    button.addEventListener("click", () => {
      if (ui.controller) return setStatus("Stop the answer in progress first.", "warn");
      store.select(session.id);
      closeSidebar();
      renderAll();
    });
    const count = el("span", "session-count", String(session.messages.filter((m) => m.role === "user").length));
    item.append(button, count);
    list.append(item);
  }
}

function renderChat() {
  const chatBox = $("chat");
  chatBox.querySelectorAll(".msg").forEach((n) => n.remove());
  ui.views.clear();
  const session = store.current;
  $("empty").hidden = session.messages.length > 0;
  for (const message of session.messages) appendMessage(message);
  $("regenerate").disabled = !session.messages.some((m) => m.role === "user") || !!ui.controller;
  chatBox.scrollTop = chatBox.scrollHeight;
}

function appendMessage(message) {
  const session = store.current;
  const view = messageNode(message, {
    loadReport: () => withKey(() => getJson(`/api/sessions/${session.id}/compression`)).catch(() => null),
  });
  ui.views.set(message, view);
  $("chat").append(view.node);
  $("empty").hidden = true;
  return view;
}

function renderSettings() {
  const s = store.current.settings;
  $("session-title").textContent = store.current.title;
  $("system-prompt").value = s.system;
  $("temperature").value = s.temperature;
  $("max-tokens").value = s.maxTokens;
  $("stream").checked = s.stream;
  $("compress").checked = s.compress;
  if ([...$("target").options].some((o) => o.value === s.target)) $("target").value = s.target;
}

function renderAll() {
  setStatus("");
  renderSessions();
  renderSettings();
  renderChat();
  if (store.warning) setStatus(store.warning, "warn");
}

function readSettings() {
  const s = store.current.settings;
  s.system = $("system-prompt").value;
  s.temperature = Number($("temperature").value);
  s.maxTokens = Math.max(1, Math.round(Number($("max-tokens").value) || 512));
  s.stream = $("stream").checked;
  s.compress = $("compress").checked;
  s.target = $("target").value || "router";
  store.save();
}

// ---- targets ----------------------------------------------------------------------

async function loadTargets() {
  const { targets } = await withKey(() => getJson("/api/targets"));
  const select = $("target");
  const current = store.current.settings.target;
  select.replaceChildren();
  for (const t of targets) {
    const lanes = t.lanes.map((l) => `${l.name}${l.ready ? "" : " (not ready)"}`).join(", ");
    const option = el("option", null, `${t.label}${t.id === "router" ? "" : ` — ${lanes || "no lane"}`}`);
    option.value = t.id;
    option.disabled = !t.ready && t.id !== "router";
    select.append(option);
  }
  select.value = targets.some((t) => t.id === current) ? current : "router";
}

// ---- attachments ------------------------------------------------------------------

function renderAttachments() {
  const box = $("attachments");
  box.replaceChildren();
  box.hidden = ui.attachments.length === 0;
  ui.attachments.forEach((image, index) => {
    const chip = el("div", "chip");
    const img = el("img");
    img.src = image.url;
    img.alt = image.name;
    const remove = el("button", "chip-remove", "×");
    remove.type = "button";
    remove.title = `Remove ${image.name}`;
    remove.addEventListener("click", () => {
      ui.attachments.splice(index, 1);
      renderAttachments();
    });
    chip.append(img, el("span", "chip-size", `${image.width}×${image.height}`), remove);
    box.append(chip);
  });
}

async function attach(files) {
  for (const file of files) {
    try {
      ui.attachments.push(await downscale(file, ui.info.image_max_side));
    } catch (err) {
      setStatus(`Cannot use ${file.name || "that file"}: ${err.message}`, "error");
    }
  }
  renderAttachments();
}

// ---- sending ----------------------------------------------------------------------

function requestMessages(session) {
  const out = [];
  if (session.settings.system.trim()) out.push({ role: "system", content: session.settings.system });
  for (const m of session.messages) {
    if (m.role === "assistant") {
      if (m.content && !m.pending) out.push({ role: "assistant", content: m.content });
      continue;
    }
    const images = (m.images ?? []).filter(Boolean);
    if (!images.length) {
      out.push({ role: "user", content: m.content });
      continue;
    }
    const parts = m.content ? [{ type: "text", text: m.content }] : [];
    for (const url of images) parts.push({ type: "image_url", image_url: { url } });
    out.push({ role: "user", content: parts });
  }
  return out;
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  $("regenerate").disabled = on;
}

async function answer() {
  const session = store.current;
  readSettings();
  const s = session.settings;
  const body = {
    messages: requestMessages(session),
    stream: s.stream,
    temperature: s.temperature,
    max_tokens: s.maxTokens,
  };
  if (s.stream) body.stream_options = { include_usage: true };
  const reply = { role: "assistant", content: "", pending: true, stats: null, error: null };
  session.messages.push(reply);
  const view = appendMessage(reply);
  const controller = new AbortController();
  ui.controller = controller;
  busy(true);
  setStatus(`Sending to ${s.target}…`);
  const started = performance.now();
  let first = null;
  let last = null;
  let chunks = 0;
  const stats = {};
  let frame = 0;
  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(() => {
      frame = 0;
      view.update();
      $("chat").scrollTop = $("chat").scrollHeight;
    });
  };
  try {
    await withKey(() =>
      chat({
        body,
        target: s.target,
        session: session.id,
        compress: s.compress,
        signal: controller.signal,
        on: {
          start: ({ lane, compressed }) => {
            stats.lane = lane;
            stats.compressed = compressed;
            setStatus(`Answering on ${lane ?? "?"}…`);
          },
          delta: (text) => {
            const now = performance.now();
            first ??= now;
            last = now;
            chunks += 1;
            reply.content += text;
            redraw();
          },
          usage: (usage) => {
            stats.promptTokens = usage.prompt_tokens;
            stats.outputTokens = usage.completion_tokens;
            stats.cachedTokens = usage.prompt_tokens_details?.cached_tokens ?? null;
          },
          done: () => {},
        },
      }),
    );
    setStatus("");
  } catch (err) {
    reply.error = err.name === "AbortError" ? "Stopped." : err.message;
    setStatus(err.name === "AbortError" ? "Stopped." : "The request failed.", "error");
  } finally {
    ui.controller = null;
    reply.pending = false;
    stats.outputTokens ??= chunks || null;
    if (first !== null) {
      stats.ttftMs = first - started;
      // Streamed: the decode rate after the first token. Whole answers arrive at once, so
      // their rate is over the whole request (prefill included), which is all one can say.
      const span = s.stream ? (last - first) / 1000 : (last - started) / 1000;
      const counted = s.stream ? stats.outputTokens - 1 : stats.outputTokens;
      stats.tokPerS = span > 0 && counted > 0 ? counted / span : null;
    }
    reply.stats = stats;
    if (stats.compressed && s.compress) {
      const report = await getJson(`/api/sessions/${session.id}/compression`).catch(() => null);
      if (report) stats.report = report;
    }
    view.update();
    $("chat").scrollTop = $("chat").scrollHeight;
    busy(false);
    store.save();
    if (store.warning) setStatus(store.warning, "warn");
    renderSessions();
  }
}

async function send(event) {
  event?.preventDefault();
  if (ui.controller) return;
  const text = $("input").value.trim();
  if (!text && !ui.attachments.length) return;
  const session = store.current;
  const message = { role: "user", content: text, images: ui.attachments.map((a) => a.url) };
  session.messages.push(message);
  if (session.title === "New chat") session.title = (text || "Images").slice(0, 48);
  $("input").value = "";
  ui.attachments = [];
  renderAttachments();
  autosize();
  appendMessage(message);
  renderSessions();
  $("session-title").textContent = session.title;
  await answer();
}

async function regenerate() {
  const messages = store.current.messages;
  while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
  if (!messages.length) return;
  renderChat();
  await answer();
}

// ---- wiring -----------------------------------------------------------------------

function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("scrim").hidden = true;
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function rename() {
  const title = prompt("Session name", store.current.title);
  if (title && title.trim()) {
    store.current.title = title.trim().slice(0, 80);
    store.save();
    renderSessions();
    $("session-title").textContent = store.current.title;
  }
}

function wire() {
  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e);
  });
  $("input").addEventListener("input", autosize);
  $("input").addEventListener("paste", (e) => {
    const files = imagesFrom(e.clipboardData);
    if (files.length) {
      e.preventDefault();
      attach(files);
    }
  });
  $("file-input").addEventListener("change", (e) => {
    attach([...e.target.files]);
    e.target.value = "";
  });
  const main = document.querySelector(".main");
  main.addEventListener("dragover", (e) => {
    if ([...(e.dataTransfer?.types ?? [])].includes("Files")) {
      e.preventDefault();
      main.classList.add("dropping");
    }
  });
  main.addEventListener("dragleave", (e) => {
    if (e.target === main || !main.contains(e.relatedTarget)) main.classList.remove("dropping");
  });
  main.addEventListener("drop", (e) => {
    e.preventDefault();
    main.classList.remove("dropping");
    attach(imagesFrom(e.dataTransfer));
  });
  $("stop").addEventListener("click", () => ui.controller?.abort());
  $("regenerate").addEventListener("click", regenerate);
  $("new-session").addEventListener("click", () => {
    if (ui.controller) return setStatus("Stop the answer in progress first.", "warn");
    store.create();
    closeSidebar();
    renderAll();
    $("input").focus();
  });
  $("rename-session").addEventListener("click", rename);
  $("session-title").addEventListener("dblclick", rename);
  $("delete-session").addEventListener("click", () => {
    if (ui.controller) return;
    if (confirm(`Delete "${store.current.title}"?`)) {
      store.remove(store.current.id);
      renderAll();
    }
  });
  $("export-session").addEventListener("click", () => {
    const safe = store.current.title.replace(/[^\w-]+/g, "-").slice(0, 40) || "session";
    download(store.exportJson(store.current), `qwend-${safe}.json`);
  });
  $("forget-key").addEventListener("click", () => {
    apiKey.clear();
    location.reload();
  });
  $("toggle-sidebar").addEventListener("click", () => {
    document.body.classList.toggle("sidebar-open");
    $("scrim").hidden = !document.body.classList.contains("sidebar-open");
  });
  $("scrim").addEventListener("click", closeSidebar);
  for (const id of ["system-prompt", "temperature", "max-tokens", "stream", "compress", "target"]) {
    $(id).addEventListener("change", readSettings);
  }
}

async function main() {
  wire();
  renderAll();
  try {
    ui.info = await getJson("/api/info");
    $("version").textContent = `v${ui.info.version}`;
    $("forget-key").hidden = !ui.info.keys_required;
    if (ui.info.keys_required && !apiKey.get()) await askForKey(null);
    await loadTargets();
    renderSettings();
    document.body.dataset.ready = "true";
  } catch (err) {
    setStatus(`Cannot reach qwend: ${err.message}`, "error");
  }
}

main();
