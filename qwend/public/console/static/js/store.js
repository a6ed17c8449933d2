// Chat sessions, kept in this browser's localStorage (nothing is stored on the server).

const KEY = "qwend.console.sessions.v1";
const CURRENT = "qwend.console.current";

function newId() {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function newSession() {
  return {
    id: newId(),
    title: "New chat",
    created: Date.now(),
    messages: [],
    settings: { system: "", temperature: 0.7, maxTokens: 512, target: "router", stream: true, compress: true },
  };
}

export class Store {
  constructor() {
    this.sessions = [];
    try {
      const saved = JSON.parse(localStorage.getItem(KEY) ?? "[]");
      if (Array.isArray(saved)) this.sessions = saved.filter((s) => s && s.id && Array.isArray(s.messages));
    } catch {
      this.sessions = [];
    }
    if (!this.sessions.length) this.sessions.push(newSession());
    const current = localStorage.getItem(CURRENT);
    this.current = this.sessions.find((s) => s.id === current) ?? this.sessions[0];
    this.warning = "";
  }

  select(id) {
    this.current = this.sessions.find((s) => s.id === id) ?? this.current;
    this.save();
  }

  create() {
    const session = newSession();
    session.settings = { ...this.current.settings };
    this.sessions.unshift(session);
    this.current = session;
    this.save();
    return session;
  }

  remove(id) {
    this.sessions = this.sessions.filter((s) => s.id !== id);
    if (!this.sessions.length) this.sessions.push(newSession());
    if (this.current.id === id) this.current = this.sessions[0];
    this.save();
  }

  // Save everything; when the browser's quota is full, older images are left out of
  // storage (they stay on screen until the page is reloaded).
  save() {
    localStorage.setItem(CURRENT, this.current.id);
    let data = JSON.stringify(this.sessions);
    this.warning = "";
    try {
      localStorage.setItem(KEY, data);
      return;
    } catch {
      data = JSON.stringify(this.sessions, (key, value) => (key === "images" ? value.map(() => "") : value));
      this.warning = "Browser storage is full: images are not kept across reloads.";
    }
    try {
      localStorage.setItem(KEY, data);
    } catch {
      this.warning = "Browser storage is full: this session is not saved. Delete old sessions.";
    }
  }

  exportJson(session) {
    const doc = { format: "qwend-console-session", version: 1, exported: new Date().toISOString(), session };
    return new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
  }
}
