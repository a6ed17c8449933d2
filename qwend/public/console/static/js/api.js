// Calls to the console's server: the API key (when the server wants one) on every call,
// OpenAI chat completions streamed as server-sent events, errors as readable messages.

const KEY = "qwend.console.apiKey";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export const apiKey = {
  get: () => localStorage.getItem(KEY) ?? "",
  set: (value) => localStorage.setItem(KEY, value),
  clear: () => localStorage.removeItem(KEY),
};

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

async function errorOf(resp) {
  let message = `HTTP ${resp.status}`;
  try {
    const doc = await resp.json();
    message = doc?.error?.message ?? message;
  } catch {
    /* not JSON: keep the status */
  }
  return new ApiError(message, resp.status);
}

export async function getJson(path) {
  const resp = await fetch(path, { headers: headers(), cache: "no-store" });
  if (!resp.ok) throw await errorOf(resp);
  return resp.json();
}

// One chat completion. `on` receives: start({lane, compressed}), delta(text), usage(usage),
// done(finishReason). Rejects with ApiError (HTTP or mid-stream error) or AbortError.
export async function chat({ body, target, session, compress, signal, on }) {
  const extra = {
    "Content-Type": "application/json",
    "X-Qwend-Target": target,
    "X-Qwend-Session": session,
    "X-Qwend-Compress": compress ? "auto" : "off",
  };
  const resp = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(extra),
    body: JSON.stringify(body),
    signal,
  });
  if (!resp.ok) throw await errorOf(resp);
  on.start({ lane: resp.headers.get("X-Qwend-Lane"), compressed: resp.headers.get("X-Qwend-Compressed") });
  if (!body.stream) {
    const doc = await resp.json();
    const choice = doc.choices?.[0];
    on.delta(choice?.message?.content ?? "");
    if (doc.usage) on.usage(doc.usage);
    on.done(choice?.finish_reason ?? null);
    return;
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") {
          on.done(finish);
          return;
        }
        let doc;
        try {
          doc = JSON.parse(data);
        } catch {
          continue;
        }
        if (doc.error) throw new ApiError(doc.error.message ?? "the lane failed", 502);
        const choice = doc.choices?.[0];
        if (choice?.delta?.content) on.delta(choice.delta.content);
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (doc.usage) on.usage(doc.usage);
      }
    }
  }
  if (finish === null) throw new ApiError("The answer ended before it was complete (the connection closed).", 502);
  on.done(finish);
}
