// Markdown to DOM nodes, safely: every piece of model text becomes a text node
// (createTextNode / textContent), never HTML. Nothing here parses HTML, so a
// model answer containing <script> or <img onerror=...> is shown as those characters.

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Inline markup: `code`, **bold**, *italic* / _italic_, ~~strike~~, [text](url), bare URLs.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|(?<![\w])_([^_\s][^_]*)_(?![\w])|~~([^~]+)~~|\[([^\]]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

export function renderInline(text, parent) {
  let last = 0;
  // matchAll works on a copy of the regex: the recursive calls below cannot move its position.
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    if (m[2] !== undefined) parent.append(el("code", "inline", m[2]));
    else if (m[3] !== undefined || m[4] !== undefined) renderInline(m[3] ?? m[4], parent.appendChild(el("strong")));
    else if (m[5] !== undefined || m[6] !== undefined) renderInline(m[5] ?? m[6], parent.appendChild(el("em")));
    else if (m[7] !== undefined) renderInline(m[7], parent.appendChild(el("s")));
    else if (m[8] !== undefined) parent.append(link(m[8], m[9]));
    else parent.append(link(m[10], m[10]));
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function link(text, url) {
  if (!SAFE_URL.test(url)) return document.createTextNode(`[${text}](${url})`);
  const a = el("a", null, text);
  a.href = url;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  return a;
}

function codeBlock(lang, code, onCopy) {
  const wrap = el("div", "code-block");
  const bar = el("div", "code-bar");
  bar.append(el("span", "code-lang", lang || "text"));
  const copy = el("button", "ghost small copy", "Copy");
  copy.type = "button";
  copy.addEventListener("click", () => onCopy(code, copy));
  bar.append(copy);
  const pre = el("pre");
  pre.append(el("code", null, code));
  wrap.append(bar, pre);
  return wrap;
}

function table(rows) {
  const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
  const t = el("table");
  const head = t.appendChild(el("thead")).appendChild(el("tr"));
  for (const c of cells(rows[0])) renderInline(c, head.appendChild(el("th")));
  const body = t.appendChild(el("tbody"));
  for (const row of rows.slice(2)) {
    const tr = body.appendChild(el("tr"));
    for (const c of cells(row)) renderInline(c, tr.appendChild(el("td")));
  }
  const wrap = el("div", "table-wrap");
  wrap.append(t);
  return wrap;
}

const FENCE = /^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
const TABLE_SEP = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;

// Render `source` into a fragment. An unclosed code fence (mid-stream) renders as code.
export function renderMarkdown(source, onCopy) {
  const frag = document.createDocumentFragment();
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  let para = [];
  const flush = () => {
    if (para.length) {
      const p = el("p");
      para.forEach((line, i) => {
        if (i) p.append(el("br"));
        renderInline(line, p);
      });
      frag.append(p);
      para = [];
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const code = [];
      const close = new RegExp(`^\\s*${fence[1][0] === "`" ? "`" : "~"}{${fence[1].length},}\\s*$`);
      for (i++; i < lines.length && !close.test(lines[i]); i++) code.push(lines[i]);
      frag.append(codeBlock(fence[2], code.join("\n"), onCopy));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      renderInline(heading[2], frag.appendChild(el(`h${Math.min(6, heading[1].length + 2)}`)));
      continue;
    }
    if (RULE.test(line)) {
      flush();
      frag.append(el("hr"));
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
      flush();
      const rows = [line, lines[i + 1]];
      for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i++) rows.push(lines[i]);
      i--;
      frag.append(table(rows));
      continue;
    }
    const item = BULLET.exec(line) ?? NUMBERED.exec(line);
    if (item) {
      flush();
      const ordered = !BULLET.test(line);
      const list = el(ordered ? "ol" : "ul");
      for (; i < lines.length; i++) {
        const m = ordered ? NUMBERED.exec(lines[i]) : BULLET.exec(lines[i]);
        if (!m) break;
        renderInline(m[1], list.appendChild(el("li")));
      }
      i--;
      frag.append(list);
      continue;
    }
    if (line.startsWith(">")) {
      flush();
      const quote = [];
      for (; i < lines.length && lines[i].startsWith(">"); i++) quote.push(lines[i].replace(/^>\s?/, ""));
      i--;
      const bq = el("blockquote");
      bq.append(renderMarkdown(quote.join("\n"), onCopy));
      frag.append(bq);
      continue;
    }
    if (!line.trim()) {
      flush();
      continue;
    }
    para.push(line);
  }
  flush();
  return frag;
}
