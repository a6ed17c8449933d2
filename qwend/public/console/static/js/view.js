// Rendering of chat messages, their statistics and the compression report.

import { renderMarkdown } from "./markdown.js";

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

const fmt = (n, digits = 0) => (n === null || n === undefined || Number.isNaN(n) ? "n/a" : Number(n).toFixed(digits));

function stat(label, value, title) {
  const item = el("span", "stat");
  item.dataset.stat = label;
  item.append(el("span", "stat-label", label), el("span", "stat-value", value));
  if (title) item.title = title;
  return item;
}

export function statsRow(s) {
  const row = el("div", "stats");
  row.append(
    stat("TTFT", s.ttftMs === undefined ? "n/a" : `${fmt(s.ttftMs)} ms`, "time to first token"),
    stat("tok/s", fmt(s.tokPerS, 1), "output tokens per second after the first token"),
    stat("prompt", fmt(s.promptTokens), "prompt tokens (usage.prompt_tokens)"),
    stat("output", fmt(s.outputTokens), "output tokens (usage.completion_tokens)"),
    stat("KV cached", fmt(s.cachedTokens), "prompt tokens served from the lane's prefix cache"),
    stat("lane", s.lane ?? "n/a", "the lane that served this answer (X-Qwend-Lane)"),
  );
  return row;
}

function turnReport(turn) {
  const box = el("div", "turn");
  const head = el("div", "turn-head");
  head.append(
    el("span", "turn-role", `#${turn.index} ${turn.role}`),
    el("span", "turn-tokens", `${turn.tokens_before} → ${turn.tokens_after} tokens${turn.verbatim ? " (verbatim)" : ""}`),
  );
  box.append(head);
  for (const [kind, list] of [["kept", turn.kept], ["dropped", turn.dropped]]) {
    if (!list.length || turn.verbatim) continue;
    const ul = el("ul", `sentences ${kind}`);
    for (const sentence of list) ul.append(el("li", null, sentence));
    box.append(el("div", "turn-kind", kind), ul);
  }
  return box;
}

export function compressionBadge(stats, loadReport) {
  const [before, after] = (stats.compressed ?? "").split("->").map(Number);
  if (!before || before === after) return null;
  const details = el("details", "compression");
  const summary = el("summary", "badge", `history compressed ${before} → ${after} tokens`);
  details.append(summary);
  const body = el("div", "compression-body");
  details.append(body);
  details.addEventListener("toggle", async () => {
    if (!details.open || body.childElementCount) return;
    const report = stats.report ?? (await loadReport());
    if (!report) {
      body.append(el("p", "muted", "The server no longer remembers this compression."));
      return;
    }
    const changed = report.turns.filter((t) => !t.verbatim && t.dropped.length);
    body.append(el("p", "muted", `Budget ${report.budget} tokens; ${changed.length} older turns shortened, recent turns and the system prompt kept verbatim.`));
    for (const turn of report.turns) if (!turn.verbatim) body.append(turnReport(turn));
    body.scrollIntoView({ block: "nearest" });
  });
  return details;
}

export function messageNode(message, { onCopy = copyText, loadReport } = {}) {
  const node = el("article", `msg ${message.role}`);
  node.dataset.role = message.role;
  const bubble = el("div", "bubble");
  if (message.images?.length) {
    const strip = el("div", "msg-images");
    for (const url of message.images) {
      if (!url) {
        strip.append(el("span", "muted", "[image not kept]"));
        continue;
      }
      const img = el("img");
      img.src = url;
      img.alt = "attached image";
      strip.append(img);
    }
    bubble.append(strip);
  }
  const content = el("div", "content");
  bubble.append(content);
  node.append(bubble);
  const update = () => {
    content.replaceChildren();
    if (message.role === "assistant") content.append(renderMarkdown(message.content, onCopy));
    else content.textContent = message.content;
    node.querySelector(".meta")?.remove();
    const meta = el("div", "meta");
    if (message.error) meta.append(el("div", "error", message.error));
    if (message.stats) {
      meta.append(statsRow(message.stats));
      const badge = compressionBadge(message.stats, loadReport);
      if (badge) meta.append(badge);
    }
    if (message.pending) meta.append(el("div", "typing", "…"));
    if (meta.childElementCount) node.append(meta);
  };
  update();
  return { node, update };
}
