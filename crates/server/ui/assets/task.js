// The live task view (#/tasks/<id>): the events WebSocket, rendered as a
// timeline. Every committed event leaves exactly one element with its
// `data-seq`; live text deltas stream into a block that the committed
// `assistant_text` replaces.
//
// Test hook: `window.dockhandSocket` is the current events WebSocket, so a
// browser test can close it and watch the page reconnect.

import { TERMINAL, api, count, duration, el, fromTemplate, setOffline, shortRepo, tokens } from "./util.js";

/** What each network level means, for the chip's tooltip. */
const NETWORK_HELP = {
  none: "no network: loopback only",
  allowlist: "only allowed names, through Dockhand's egress proxy",
  open: "unfiltered outbound network",
};

/** Text kept per tool call; older output is dropped from the page (not the log). */
const OUTPUT_CAP = 64 * 1024;
/** Waits between reconnect attempts; reset once a connection catches up. */
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000, 15000];
/** Rendering work per animation frame, so a long replay never freezes the page. */
const FRAME_BUDGET_MS = 8;
/** A hidden page that comes back after this long reconnects: a sleeping phone's socket may be dead. */
const STALE_AFTER_HIDDEN_MS = 10000;
/** Disconnections shorter than this do not flash the offline banner. */
const BANNER_GRACE_MS = 1000;

function firstLine(text) {
  const s = String(text || "");
  const i = s.indexOf("\n");
  return i < 0 ? s : `${s.slice(0, i)} …`;
}

function capTail(text, cap) {
  return text.length > cap ? `… ${text.slice(text.length - cap)}` : text;
}

/** Lines of `text`, each prefixed and classed, for an edit shown as a diff. */
function diffLines(prefix, cls, text) {
  return String(text || "")
    .split("\n")
    .map((line) => el(`span.${cls}`, { text: `${prefix}${line}\n` }));
}

/** The one-line summary and the detail block of a tool call. */
function describe(name, input) {
  input = input || {};
  if (name === "bash") {
    if (input.restart) return { line: "restart the shell" };
    const cmd = String(input.command || "");
    const long = cmd.includes("\n") || cmd.length > 60;
    return { line: `$ ${firstLine(cmd)}`, detail: long ? el("pre.input", { text: cmd }) : null };
  }
  if (name === "str_replace_based_edit_tool") {
    const line = `${input.command || "edit"} ${input.path || ""}`.trim();
    let detail = null;
    if (input.command === "create") {
      detail = el("pre.input.diff", {}, ...diffLines("+ ", "add", capTail(String(input.file_text || ""), OUTPUT_CAP)));
    } else if (input.command === "str_replace") {
      detail = el("pre.input.diff", {}, ...diffLines("- ", "del", input.old_str), ...diffLines("+ ", "add", input.new_str));
    } else if (input.command === "insert") {
      detail = el("pre.input.diff", {}, `after line ${input.insert_line}\n`, ...diffLines("+ ", "add", input.new_str));
    } else if (Array.isArray(input.view_range)) {
      detail = el("p.muted.small", { text: `lines ${input.view_range.join("–")}` });
    }
    return { line, detail };
  }
  return { line: name, detail: el("pre.input", { text: JSON.stringify(input, null, 2) }) };
}

export class TaskView {
  constructor(id, ctx) {
    this.id = id;
    this.ctx = ctx;
    this.node = fromTemplate("t-task");
    const q = (s) => this.node.querySelector(s);
    this.ui = {
      title: q("[data-title]"), status: q("[data-status]"), repo: q("[data-repo]"),
      branch: q("[data-branch]"), usage: q("[data-usage]"), pr: q("[data-pr]"),
      error: q("[data-error]"), cancel: q("[data-cancel]"), confirm: q("[data-confirm]"),
      yes: q("[data-confirm-yes]"), no: q("[data-confirm-no]"), form: q("[data-send-form]"),
      sendError: q("[data-send-error]"),
    };
    this.timeline = q("[data-timeline]");
    this.liveBox = q("[data-live]");
    this.lastSeq = 0; // the last event seq accepted; every seq up to it is queued or rendered
    this.queue = [];
    this.tools = new Map(); // tool_use id → its block
    this.grown = new Set(); // blocks whose output grew in this frame
    this.live = new Map(); // streaming text block index → element
    this.partial = false; // live text resumed mid-block after a reconnect
    this.ws = null;
    this.attempt = 0;
    this.caughtUp = false; // until the first replay is done, the header keeps the fetched status
    this.follow = true;
    this.status = null;
    this.eventStatus = null;
    this.timers = {};
    this.wire();
    this.load();
  }

  wire() {
    const u = this.ui;
    u.cancel.addEventListener("click", () => this.confirming(true));
    u.no.addEventListener("click", () => this.confirming(false));
    u.confirm.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.confirming(false);
    });
    u.yes.addEventListener("click", () => this.cancel());
    u.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
    u.form.followup.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) u.form.requestSubmit();
    });
    this.onScroll = () => {
      const doc = document.documentElement;
      this.follow = innerHeight + scrollY >= doc.scrollHeight - 120;
    };
    // Back online: a socket that looks open may be dead (the phone changed
    // networks), so start a fresh one; seq dedupe makes this safe.
    this.onOnline = () => {
      if (this.dead || !this.task) return;
      this.attempt = 0;
      this.reconnect(0);
    };
    this.onVisibility = () => {
      if (document.hidden) {
        this.hiddenAt = Date.now();
      } else if (this.ws && Date.now() - (this.hiddenAt || Date.now()) > STALE_AFTER_HIDDEN_MS) {
        this.reconnect(0);
      }
    };
    addEventListener("scroll", this.onScroll, { passive: true });
    addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  destroy() {
    this.dead = true;
    this.detach();
    for (const t of Object.values(this.timers)) clearTimeout(t);
    if (this.frame) cancelAnimationFrame(this.frame);
    clearTimeout(this.frameTimer);
    removeEventListener("scroll", this.onScroll);
    removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisibility);
    setOffline("task", false);
  }

  async load() {
    this.ctx.setTitle("Task");
    try {
      this.task = await api(`/api/v1/tasks/${encodeURIComponent(this.id)}`);
    } catch (err) {
      if (this.dead || err.status === 401) return;
      if (err.status === 0) {
        this.banner(true);
        this.timers.load = setTimeout(() => this.load(), 2000);
        return;
      }
      this.ui.title.textContent = err.status === 404 ? "No such task" : "This task cannot be shown";
      this.showError(err.message);
      this.ui.form.hidden = true;
      return;
    }
    if (this.dead) return;
    const t = this.task;
    this.ui.title.textContent = t.title || t.prompt;
    this.ui.repo.textContent = shortRepo(t.repo);
    this.ui.repo.title = t.repo;
    this.ui.branch.textContent = t.branch;
    this.setUsage(t.usage);
    if (t.pull_request) this.setPr(t.pull_request.url, t.pull_request.number);
    this.setStatus(t.status);
    this.connect();
  }

  // ---- the socket ----

  async connect() {
    if (this.dead) return;
    clearTimeout(this.timers.retry);
    let ticket;
    try {
      ticket = (await api("/api/v1/ws-ticket", { method: "POST" })).ticket;
    } catch (err) {
      if (err.status !== 401) this.retryLater();
      return;
    }
    if (this.dead || this.ws) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url =
      `${proto}//${location.host}/api/v1/tasks/${encodeURIComponent(this.id)}/events` +
      `?after=${this.lastSeq}&ticket=${encodeURIComponent(ticket)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    window.dockhandSocket = ws;
    ws.onopen = () => {
      if (ws === this.ws) this.banner(false);
    };
    ws.onmessage = (m) => {
      if (ws === this.ws) this.receive(m.data);
    };
    ws.onclose = () => {
      if (ws !== this.ws) return;
      this.detach();
      this.retryLater();
    };
    // Text streamed before this connection may have gaps; restart the live blocks.
    this.enqueue({ kind: "_reset_live" });
  }

  /** Forgets the current socket without reacting to its close. */
  detach() {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (window.dockhandSocket === ws) window.dockhandSocket = null;
    if (ws.readyState <= WebSocket.OPEN) ws.close();
  }

  retryLater() {
    if (this.dead) return;
    this.banner(true);
    if (!navigator.onLine) return; // the online event reconnects
    const wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), wait);
  }

  reconnect(wait) {
    this.detach();
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), wait);
  }

  banner(off) {
    clearTimeout(this.timers.banner);
    if (!off) return setOffline("task", false);
    if (!navigator.onLine) return setOffline("task", true);
    this.timers.banner = setTimeout(() => setOffline("task", true), BANNER_GRACE_MS);
  }

  /** Accepts a message in order: duplicates are dropped and a gap refetches, so nothing shows twice or goes missing. */
  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (msg.control) {
      // `resume`: the server closes next, and the reconnect asks for after=lastSeq.
      if (msg.control === "caught_up") {
        this.attempt = 0;
        this.enqueue({ kind: "_caught_up" });
      }
      return;
    }
    if (msg.kind === "assistant_delta") {
      // A delta from before an event we already have belongs to a committed block.
      if (msg.after_seq >= this.lastSeq) this.enqueue(msg);
      return;
    }
    if (typeof msg.seq !== "number" || msg.seq <= this.lastSeq) return;
    if (msg.seq !== this.lastSeq + 1) return this.reconnect(0);
    this.lastSeq = msg.seq;
    this.enqueue(msg);
  }

  // ---- batched rendering ----

  enqueue(msg) {
    this.queue.push(msg);
    this.schedule();
  }

  schedule() {
    if (this.frame || this.frameTimer) return;
    // Hidden pages get no animation frames; a timer keeps the queue short.
    if (document.hidden) this.frameTimer = setTimeout(() => this.flush(), 500);
    else this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    this.frameTimer = 0;
    if (this.dead) return;
    const start = performance.now();
    let i = 0;
    while (i < this.queue.length) {
      this.apply(this.queue[i++]);
      if (performance.now() - start > FRAME_BUDGET_MS) break;
    }
    this.queue = this.queue.slice(i);
    for (const block of this.grown) {
      if (block.details.open && block.stick) block.out.scrollTop = block.out.scrollHeight;
    }
    this.grown.clear();
    if (this.follow) scrollTo(0, document.documentElement.scrollHeight);
    if (this.queue.length) this.schedule();
  }

  /** Status changes and start-up phases share one compact, wrapping row while they follow each other. */
  step(seq, node) {
    let group = this.timeline.lastElementChild;
    if (!group || !group.classList.contains("steps")) {
      group = el("li.ev.steps");
      this.timeline.append(group);
    }
    node.dataset.seq = seq;
    group.append(node);
  }

  row(kind, seq, ...children) {
    const li = el(`li.ev.k-${kind}`, { "data-seq": seq }, ...children);
    this.timeline.append(li);
    return li;
  }

  apply(m) {
    const d = m.data || {};
    switch (m.kind) {
      case "_reset_live":
        this.partial = this.live.size > 0;
        this.dropLive();
        return;
      case "_caught_up":
        this.caughtUp = true;
        if (this.eventStatus) this.setStatus(this.eventStatus);
        return;
      case "assistant_delta":
        return this.delta(m);
      case "status": {
        const mark = { succeeded: "✔", failed: "✘", cancelled: "■" }[d.status] || "●";
        const cls = TERMINAL.has(d.status) ? ".end" : "";
        this.step(m.seq, el(`span.step.s-${d.status}${cls}`, {}, el("span", { "aria-hidden": "true", text: `${mark} ` }), d.status, d.message ? el("span.msg", { text: `: ${d.message}` }) : ""));
        this.eventStatus = d.status;
        if (this.caughtUp) this.setStatus(d.status);
        if (TERMINAL.has(d.status)) this.dropLive();
        return;
      }
      case "phase":
        if (d.phase === "policy") {
          this.step(m.seq, el("span.chip.policy", { title: d.detail || "" }, "policy: ", el("b", { text: d.detail || "" })));
          return;
        }
        {
          const chip = el("span.chip", { title: d.detail ? `start-up: ${d.detail}` : "start-up" }, `${d.phase} `, el("b", { text: duration(d.duration_ms || 0) }));
          // One element per event: the network level rides along in the phase's own element.
          const net = d.network ? el(`span.chip.net-${d.network}`, { title: NETWORK_HELP[d.network] || "" }, "network ", el("b", { text: d.network })) : "";
          this.step(m.seq, d.network ? el("span.chips", {}, chip, " ", net) : chip);
        }
        return;
      case "user_message":
        this.row("user", m.seq, el("div.who", { text: "You" }), el("div.text", { text: d.text }));
        return;
      case "assistant_text":
        this.dropLive(d.index);
        this.partial = false;
        this.row("assistant", m.seq, el("div.text", { text: d.text }));
        return;
      case "tool_call":
        this.dropLive();
        this.tool(d.id, m.seq, d.name, d.input);
        return;
      case "tool_output":
        return this.output(m.seq, d);
      case "tool_result":
        return this.result(m.seq, d);
      case "retry":
        this.dropLive();
        this.row("retry", m.seq, `↻ Retrying in ${duration(d.wait_ms || 0)} (attempt ${d.attempt}): ${d.reason}`);
        return;
      case "usage":
        this.setUsage(d.total);
        this.row("usage", m.seq, `${count(tokens(d.turn))} tokens this turn · ${count(tokens(d.total))} in all`);
        return;
      case "diff":
        return this.diff(m.seq, d);
      case "error":
        this.row("error", m.seq, el("strong", { text: "Error: " }), d.message);
        return;
      case "pull_request": {
        const link = this.safeLink(d.url, `pull request #${d.number}`);
        this.row("pr", m.seq, d.updated ? "Updated " : "Opened ", link);
        this.setPr(d.url, d.number);
        return;
      }
      case "checkpoint":
        if (d.skipped_reason) {
          this.row("checkpoint", m.seq, `Checkpoint after turn ${d.turn} skipped: ${d.skipped_reason}`);
        } else {
          this.step(m.seq, el("span.chip", { title: `checkpoint ${d.commit || ""}` }, "checkpoint ", el("b", { text: `${count(d.bytes || 0)} B` })));
        }
        return;
      default:
        this.row("other", m.seq, el("code", { text: m.kind }), " ", JSON.stringify(d));
    }
  }

  delta(m) {
    let block = this.live.get(m.index);
    if (!block) {
      block = el("div.assistant.streaming", { "aria-busy": "true" });
      if (this.partial) block.classList.add("partial");
      this.live.set(m.index, block);
      this.liveBox.append(block);
    }
    block.append(m.data.text);
  }

  dropLive(index) {
    if (index === undefined) {
      for (const b of this.live.values()) b.remove();
      this.live.clear();
    } else if (this.live.has(index)) {
      this.live.get(index).remove();
      this.live.delete(index);
    }
  }

  tool(id, seq, name, input, label) {
    const { line, detail } = label ? { line: label } : describe(name, input);
    const state = el("span.tool-state", { text: label ? "" : "running" });
    const tail = el("span.tail");
    const out = el("pre.output", { hidden: true });
    const note = el("p.muted.small", { hidden: true });
    const body = el("div.tool-body", {}, detail, note, out);
    const summary = el("summary", {}, el("span.tool-line", {}, el("code.cmd", { text: line }), state), tail);
    const details = el("details.tool", {}, summary, body);
    const li = el("li.ev.k-tool", { "data-seq": seq }, details);
    this.timeline.append(li);
    const block = { li, details, body, out, note, state, tail, chars: 0, spans: [], first: 0, dropped: 0, stick: true };
    // Output reads like a log: opened, it shows its end, and follows while scrolled there.
    details.addEventListener("toggle", () => {
      if (details.open) for (const pre of body.querySelectorAll("pre.output")) pre.scrollTop = pre.scrollHeight;
    });
    out.addEventListener("scroll", () => {
      block.stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 24;
    }, { passive: true });
    this.tools.set(id, block);
    return block;
  }

  output(seq, d) {
    // Setup and prepare output has no tool call of its own.
    const block = this.tools.get(d.id) || this.tool(d.id, null, null, null, `${d.id} output`);
    const span = el("span", { "data-seq": seq, text: d.text });
    block.out.append(span);
    this.grown.add(block);
    block.out.hidden = false;
    block.spans.push(span);
    block.chars += d.text.length;
    // Keep the newest output only; an emptied span stays as the record of its seq.
    while (block.chars > OUTPUT_CAP && block.first < block.spans.length - 1) {
      const old = block.spans[block.first++];
      block.chars -= old.textContent.length;
      block.dropped += old.textContent.length;
      old.textContent = "";
    }
    if (block.chars > OUTPUT_CAP) {
      const cut = block.chars - OUTPUT_CAP;
      span.textContent = span.textContent.slice(cut);
      block.chars -= cut;
      block.dropped += cut;
    }
    if (block.dropped) {
      block.note.hidden = false;
      block.note.textContent = `${count(block.dropped)} earlier characters are not shown here.`;
    }
    const last = d.text.split("\n").map((l) => l.trim()).filter(Boolean).pop();
    if (last) block.tail.textContent = last.slice(0, 200);
    // The server stops streaming a very long output with this note; the result has the end.
    if (d.text.includes("[live output stops here:")) block.streamCut = true;
  }

  result(seq, d) {
    const block = this.tools.get(d.id) || this.tool(d.id, null, d.name, null);
    let label = "done";
    let cls = "ok";
    if (d.is_error) {
      label = "error";
      cls = "bad";
    } else if (typeof d.exit_code === "number") {
      label = `exit ${d.exit_code}`;
      cls = d.exit_code === 0 ? "ok" : "warn";
    }
    block.state.textContent = `${label} · ${duration(d.duration_ms || 0)}`;
    block.state.className = `tool-state ${cls}`;
    const text = String(d.output || "");
    const last = text.split("\n").map((l) => l.trim()).filter(Boolean).pop();
    if (!block.spans.length && text) {
      // Tools without live output (the editor) show their result instead.
      block.out.textContent = capTail(text, OUTPUT_CAP);
      block.out.hidden = false;
      if (last) block.tail.textContent = last.slice(0, 200);
    }
    const res = el(`div.result.${cls}`, { "data-seq": seq, text: `${label} after ${duration(d.duration_ms || 0)}` });
    if ((d.is_error || block.streamCut) && block.spans.length && text) {
      // What the model saw: the error, or the end of an output too long to stream.
      const copy = el("pre.output", { text: capTail(text, OUTPUT_CAP) });
      res.append(el("p.muted.small", { text: "The result, as the agent saw it:" }), copy);
      if (last) block.tail.textContent = last.slice(0, 200);
    }
    block.body.append(res);
  }

  diff(seq, d) {
    const summary = d.files_changed
      ? [`${d.files_changed} file${d.files_changed === 1 ? "" : "s"} changed `, el("span.add", { text: `+${d.insertions}` }), " ", el("span.del", { text: `−${d.deletions}` })]
      : ["No changes"];
    const li = this.row("diff", seq, el("div", {}, ...summary, " on ", el("code", { text: d.branch })));
    if (d.stat) li.append(el("details", {}, el("summary", { text: "Diff stat" }), el("pre.output", { text: d.stat })));
  }

  safeLink(url, text) {
    return /^https?:\/\//i.test(url || "") ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank", text }) : el("span", { text });
  }

  // ---- the header and actions ----

  setStatus(status) {
    if (!status) return;
    this.status = status;
    const u = this.ui;
    u.status.textContent = status;
    u.status.className = `badge s-${status}`;
    this.node.dataset.status = status;
    this.ctx.setTitle(status);
    const done = TERMINAL.has(status);
    if (done) this.confirming(false);
    u.cancel.hidden = done || !u.confirm.hidden;
  }

  setUsage(usage) {
    const all = tokens(usage);
    this.ui.usage.textContent = all ? `${count(all)} tokens` : "";
    if (usage) {
      this.ui.usage.title = `${usage.input_tokens} in, ${usage.cache_read_input_tokens || 0} cached, ` +
        `${usage.cache_creation_input_tokens || 0} cache writes, ${usage.output_tokens} out`;
    }
  }

  setPr(url, number) {
    const pr = this.ui.pr;
    if (!/^https?:\/\//i.test(url || "")) return;
    pr.href = url;
    pr.rel = "noopener noreferrer";
    pr.target = "_blank";
    pr.textContent = `Pull request #${number}`;
    pr.hidden = false;
  }

  showError(message) {
    this.ui.error.textContent = message || "";
    this.ui.error.hidden = !message;
  }

  confirming(on) {
    const u = this.ui;
    const wasOpen = !u.confirm.hidden;
    u.confirm.hidden = !on;
    u.cancel.hidden = on || TERMINAL.has(this.status);
    if (on) u.no.focus();
    else if (wasOpen && !u.cancel.hidden) u.cancel.focus();
  }

  async cancel() {
    this.ui.yes.disabled = true;
    try {
      await api(`/api/v1/tasks/${encodeURIComponent(this.id)}/cancel`, { method: "POST" });
      this.showError("");
    } catch (err) {
      this.showError(err.message);
    }
    this.ui.yes.disabled = false;
    this.confirming(false);
  }

  async send() {
    const form = this.ui.form;
    const text = form.followup.value;
    const err = this.ui.sendError;
    if (!text.trim()) {
      err.textContent = "Write a message first.";
      err.hidden = false;
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api(`/api/v1/tasks/${encodeURIComponent(this.id)}/messages`, { method: "POST", body: { text } });
      form.followup.value = "";
      err.hidden = true;
      this.follow = true;
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
    button.disabled = false;
  }
}
