// The mobile mirror of one catty session: the transcript (older pages on scroll up), live events
// over the WebSocket, a send box, input focus and permission answers.
//
// Everything that comes from an agent or a user reaches the page as text (textContent), never as
// HTML: a transcript is written by whatever runs in the sandbox.
"use strict";

(() => {
  const PAGE = 50; // events per transcript page
  const OUTPUT_LINES = 12; // tool output longer than this is folded
  const OUTPUT_CHARS = 1500;
  const NEAR = 120; // px from an edge that counts as "at" it
  const CLIENT_KEY = "catty.mirror.client";

  const body = document.body;
  const BASE = body.dataset.baseUrl || "/";
  const LABEL = body.dataset.label || "";
  const API = `${BASE}catty/v1/sessions/${encodeURIComponent(LABEL)}`;
  const CLIENT = clientId();

  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"), meta: $("meta"), focus: $("focus"), focusText: $("focus-text"),
    take: $("take"), transcript: $("transcript"), older: $("older"), jump: $("jump"),
    pending: $("pending"), notice: $("notice"), composer: $("composer"), text: $("text"),
    send: $("send"), client: $("client"), conn: $("conn"),
  };

  const st = {
    first: null, // the oldest seq shown
    last: 0, // the newest seq seen: the stream resumes after it
    atStart: false,
    loadingOlder: false,
    session: null,
    focus: undefined, // undefined until the server has said (older servers never do)
    pending: new Map(), // request_id -> permission_request payload
    cards: new Map(), // request_id -> its transcript card
    asks: new Map(), // request_id -> its Approve/Deny card
    socket: null,
    retry: 0,
    timer: null,
    refreshTimer: null,
  };

  // --- identity and requests ---------------------------------------------------------------

  function clientId() {
    try {
      const saved = localStorage.getItem(CLIENT_KEY);
      if (saved && /^[\w.-]{1,64}$/.test(saved)) return saved;
    } catch (_) { /* storage disabled: a fresh id for this page */ }
    const bytes = new Uint8Array(2);
    crypto.getRandomValues(bytes);
    const id = "phone-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try { localStorage.setItem(CLIENT_KEY, id); } catch (_) { /* see above */ }
    return id;
  }

  function xsrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    if (match) {
      try { return decodeURIComponent(match[1]); } catch (_) { return match[1]; }
    }
    return body.dataset.xsrf || "";
  }

  async function call(method, path, data) {
    const init = { method, credentials: "same-origin", headers: { "X-XSRFToken": xsrfToken() } };
    if (data !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(data);
    }
    let resp;
    try {
      resp = await fetch(API + path, init);
    } catch (_) {
      throw new Error("The server cannot be reached. Check your connection and try again.");
    }
    const raw = await resp.text();
    let json = null;
    try { json = raw ? JSON.parse(raw) : null; } catch (_) { json = null; }
    if (!resp.ok) {
      let message = (json && json.message) || `${resp.status} ${resp.statusText}`;
      if (resp.status === 403) message = "You are logged out or not allowed. Reload the page.";
      const err = new Error(message);
      err.status = resp.status;
      err.reason = json && json.reason;
      throw err;
    }
    return json;
  }

  // --- small DOM helpers: text only ----------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clock(ts) {
    if (typeof ts !== "number") return "";
    return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function summary(input) {
    if (input === undefined || input === null) return "";
    if (typeof input === "string") return input;
    const shown = input.command || input.file_path || input.path || input.pattern || input.url;
    if (typeof shown === "string") return shown;
    try { return JSON.stringify(input); } catch (_) { return String(input); }
  }

  function clip(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function notify(message) {
    ui.notice.textContent = message || "";
    ui.notice.hidden = !message;
  }

  // --- rendering events ---------------------------------------------------------------------

  function bubble(cls, who, ev, text) {
    const node = el("article", `msg ${cls}`);
    const head = el("div", "who");
    head.append(el("span", "", who), el("time", "", clock(ev.ts)));
    node.append(head, el("div", "text", text));
    return node;
  }

  function line(cls, text) {
    return el("div", `line ${cls}`, text);
  }

  function output(raw, cls) {
    const text = raw.replace(/\n+$/, ""); // a final newline is not a line to count or show
    const node = el("div", `output ${cls || ""}`);
    const pre = el("pre");
    node.append(pre);
    const lines = text.split("\n");
    const long = lines.length > OUTPUT_LINES || text.length > OUTPUT_CHARS;
    if (!long) {
      pre.textContent = text;
      return node;
    }
    const short = clip(lines.slice(0, OUTPUT_LINES).join("\n"), OUTPUT_CHARS);
    pre.textContent = short;
    const more = el("button", "more", `Show all ${lines.length} lines`);
    more.type = "button";
    more.addEventListener("click", () => {
      const open = more.dataset.open === "1";
      pre.textContent = open ? short : text;
      more.dataset.open = open ? "0" : "1";
      more.textContent = open ? `Show all ${lines.length} lines` : "Show less";
    });
    node.append(more);
    return node;
  }

  function permissionCard(p) {
    const node = el("div", "line permission");
    node.append(
      el("strong", "", `Permission to use ${p.tool_name || "a tool"}`),
      el("code", "", clip(summary(p.input), 300)),
      el("span", "answer", "waiting for an answer"),
    );
    if (!st.pending.has(p.request_id)) settle(node, "answered");
    if (p.request_id) st.cards.set(p.request_id, node);
    return node;
  }

  function settle(card, how) {
    card.dataset.settled = how;
    card.querySelector(".answer").textContent = how;
  }

  function render(ev) {
    const p = ev.payload || {};
    switch (ev.kind) {
      case "user":
        return bubble("user", ev.client ? (ev.client === CLIENT ? "you" : ev.client) : "user",
          ev, p.text || "");
      case "assistant":
        return p.text ? bubble("assistant", "agent", ev, p.text) : null;
      case "comment":
        return bubble("comment", `comment${ev.client ? " by " + ev.client : ""}`, ev,
          p.text || p.message || "");
      case "tool_use": {
        const node = el("div", "line tool");
        node.append(el("strong", "", p.name || "tool"),
          el("code", "", clip(summary(p.input), 300)));
        return node;
      }
      case "tool_result": {
        const text = String(p.output ?? p.content ?? "");
        return text.trim() ? output(text, p.is_error ? "failed" : "") : null;
      }
      case "setup_log":
        return output(String(p.output || p.text || p.message || ""), "setup");
      case "permission_request":
        return permissionCard(p);
      case "permission_decision": {
        const yes = p.behavior === "allow";
        const card = st.cards.get(p.request_id);
        if (card) settle(card, yes ? "allowed" : "denied"); // also when paging back in time
        const who = ev.client ? ` by ${ev.client}` : "";
        return line(yes ? "decision allow" : "decision deny",
          `${yes ? "✓ Allowed" : "✗ Denied"}${who}${p.message ? ": " + p.message : ""}`);
      }
      case "status":
        if ("focus" in p) return line("note", p.message || `${p.focus || "nobody"} has control`);
        if (p.ready) return line("note", "agent ready");
        return null;
      case "result": {
        const secs = ((p.duration_ms || 0) / 1000).toFixed(1);
        const code = "exit_code" in p ? `, exit ${p.exit_code}` : "";
        const bad = p.is_error || p.interrupted;
        return line(bad ? "result bad" : "result",
          `${p.interrupted ? "turn interrupted" : "turn done"} (${secs} s${code})`);
      }
      case "system":
        return p.message ? line("system", p.message) : null;
      case "error":
        return line("error", p.message || "error");
      default:
        return line("system", `${ev.kind}: ${clip(summary(p), 200)}`);
    }
  }

  // A rendered event carries its seq; events that show nothing still advance the cursors.
  function node(ev) {
    const n = render(ev);
    if (n) {
      n.dataset.seq = String(ev.seq);
      n.dataset.kind = ev.kind;
    }
    return n;
  }

  // --- what events change -------------------------------------------------------------------

  function apply(ev) {
    const p = ev.payload || {};
    if (ev.kind === "status") {
      if ("focus" in p) {
        const now = st.focus || {};
        st.focus = { ...now, holder: p.focus || null, connected: true, expires: null };
        showFocus();
      }
      if (p.activity && st.session) {
        st.session.activity = p.activity;
        if (p.ready) st.session.state = "running";
        showState();
      }
    } else if (ev.kind === "permission_request" && p.request_id) {
      st.pending.set(p.request_id, p);
      showPending();
    } else if (ev.kind === "permission_decision" && p.request_id) {
      st.pending.delete(p.request_id);
      showPending();
    }
    if (ev.kind === "system" || ev.kind === "error" || ev.kind === "result" ||
        (ev.kind === "status" && (p.ready || "focus" in p))) {
      refreshSoon();
    }
  }

  function showState() {
    const s = st.session;
    if (!s) return;
    const live = s.state === "running";
    const shown = live ? (s.activity || "running") : s.state;
    ui.state.textContent = shown;
    ui.state.dataset.state = shown;
    ui.meta.textContent = [s.agent, s.environment, s.branch].filter(Boolean).join(" · ");
  }

  // A session no runtime serves (stopped, failed, expired) has no control to take: resume it.
  function ended() {
    const s = st.session;
    return Boolean(s) && s.state !== "running" && s.state !== "starting";
  }

  function showFocus() {
    const f = st.focus;
    let who = "unknown";
    let text = "Nobody is known to have control";
    if (ended()) {
      who = "ended";
      text = `This session is ${st.session.state}`;
    } else if (f && !f.holder) {
      who = "nobody";
      text = "Nobody has control";
    } else if (f && f.holder === CLIENT) {
      who = "me";
      text = "You have control (this page)";
    } else if (f) {
      who = "other";
      text = `${f.holder} has control${f.connected === false ? " (away)" : ""} · you are watching`;
    }
    // A notice about control (someone else holds it) is moot once the session has ended.
    if (who === "ended" && ui.focus.dataset.who !== "ended") notify("");
    ui.focus.dataset.who = who;
    ui.focusText.textContent = text;
    ui.take.textContent = who === "ended" ? "Resume" : "Take control";
    ui.take.hidden = who === "me";
    ui.text.disabled = who === "ended";
    ui.send.disabled = who === "ended";
    ui.text.placeholder = who === "ended" ? "Resume the session to send…"
      : who === "other" ? "Take control to send…" : "Message the agent…";
  }

  // Cards are kept, not redrawn, so a refresh does not undo a tap that is still on its way.
  function showPending() {
    for (const [id, card] of st.asks) {
      if (!st.pending.has(id)) {
        card.remove();
        st.asks.delete(id);
      }
    }
    for (const [id, p] of st.pending) {
      if (st.asks.has(id)) continue;
      const card = el("div", "ask");
      const what = el("div", "what");
      what.append(el("strong", "", `Allow ${p.tool_name || "a tool"}?`),
        el("code", "", clip(summary(p.input), 400)));
      const yes = el("button", "allow", "Approve");
      const no = el("button", "deny", "Deny");
      yes.type = no.type = "button";
      yes.addEventListener("click", () => answer(id, "allow", [yes, no]));
      no.addEventListener("click", () => answer(id, "deny", [yes, no]));
      const buttons = el("div", "buttons");
      buttons.append(no, yes);
      card.append(what, buttons);
      ui.pending.append(card);
      st.asks.set(id, card);
    }
    ui.pending.hidden = st.pending.size === 0;
  }

  // --- the transcript: first page, older pages, live events ----------------------------------

  function nearBottom() {
    const t = ui.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < NEAR;
  }

  function toBottom() {
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
    ui.jump.hidden = true;
  }

  function append(ev) {
    if (ev.seq <= st.last) return; // replayed after a reconnect: already shown
    const stick = nearBottom();
    st.last = ev.seq;
    if (st.first === null) st.first = ev.seq;
    apply(ev); // first, so a permission card knows whether it is still pending
    const n = node(ev);
    if (!n) return;
    ui.transcript.append(n);
    if (stick) toBottom();
    else ui.jump.hidden = false;
  }

  function showStart() {
    ui.older.textContent = st.atStart ? "Beginning of the transcript" : "Scroll up for older events";
    ui.older.dataset.start = st.atStart ? "1" : "0";
  }

  async function loadOlder() {
    if (st.atStart || st.loadingOlder || st.first === null) return;
    st.loadingOlder = true;
    ui.older.textContent = "Loading older events…";
    try {
      const page = await call("GET", `/transcript?tail=1&limit=${PAGE}&before=${st.first}`);
      const events = page.events.filter((ev) => ev.seq < st.first);
      const t = ui.transcript;
      const fromBottom = t.scrollHeight - t.scrollTop;
      const frag = document.createDocumentFragment();
      for (const ev of events) {
        const n = node(ev);
        if (n) frag.append(n);
      }
      ui.older.after(frag);
      t.scrollTop = t.scrollHeight - fromBottom; // keep what the reader looks at in place
      if (events.length) st.first = events[0].seq;
      st.atStart = page.events.length < PAGE || st.first <= 1;
    } catch (err) {
      notify(`Older events could not be loaded: ${err.message}`);
      return; // the next scroll tries again; retrying here would spin
    } finally {
      st.loadingOlder = false;
      showStart();
    }
    maybeLoadOlder(); // a short page may leave the top in view: fill the screen
  }

  function maybeLoadOlder() {
    if (ui.transcript.scrollTop < NEAR) loadOlder();
  }

  async function refresh() {
    const s = await call("GET", "");
    st.session = s;
    if ("focus" in s) st.focus = s.focus || { holder: null };
    if (Array.isArray(s.pending_permissions)) {
      st.pending = new Map(s.pending_permissions.filter((p) => p.request_id)
        .map((p) => [p.request_id, p]));
      for (const [id, card] of st.cards) {
        // Only a card still open: one the decision event settled says how it was answered.
        if (!st.pending.has(id) && !card.dataset.settled) settle(card, "answered");
      }
    }
    showState();
    showFocus();
    showPending();
  }

  // Several events in a row (a stop, a focus change) need only one look at the session.
  function refreshSoon() {
    clearTimeout(st.refreshTimer);
    st.refreshTimer = setTimeout(() => refresh().catch(() => {}), 300);
  }

  async function start() {
    ui.client.textContent = CLIENT;
    showFocus();
    try {
      await refresh();
    } catch (err) {
      notify(err.message);
    }
    try {
      const page = await call("GET", `/transcript?tail=1&limit=${PAGE}`);
      for (const ev of page.events) append(ev);
      st.atStart = page.events.length < PAGE || (st.first !== null && st.first <= 1);
    } catch (err) {
      notify(`The transcript could not be loaded: ${err.message}`);
    }
    showStart();
    toBottom();
    connect();
    maybeLoadOlder();
  }

  // --- the live stream ----------------------------------------------------------------------

  function setConn(state, text) {
    ui.conn.dataset.conn = state;
    ui.conn.textContent = text;
  }

  function connect() {
    if (st.socket) return;
    clearTimeout(st.timer);
    st.timer = null;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${API}/stream?after=${st.last}` +
      `&client=${encodeURIComponent(CLIENT)}`;
    const ws = new WebSocket(url);
    st.socket = ws;
    ws.onopen = () => {
      setConn("live", "live");
      refreshSoon(); // focus or permissions may have changed while away
    };
    ws.onmessage = (msg) => {
      st.retry = 0; // only a socket that delivers counts as healthy
      let ev;
      try { ev = JSON.parse(msg.data); } catch (_) { return; }
      if (ev && typeof ev.seq === "number") append(ev);
    };
    ws.onclose = () => {
      if (st.socket !== ws) return;
      st.socket = null;
      // Exponential backoff with jitter, so a restarting server is not hammered by every phone.
      const delay = Math.min(15000, 500 * 2 ** st.retry) * (0.75 + Math.random() / 2);
      st.retry = Math.min(st.retry + 1, 10);
      setConn("down", `reconnecting in ${Math.ceil(delay / 1000)} s…`);
      st.timer = setTimeout(connect, delay);
    };
  }

  // A phone that wakes up should not wait out a long backoff.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !st.socket) connect();
  });
  window.addEventListener("online", () => { if (!st.socket) connect(); });

  // --- actions ------------------------------------------------------------------------------

  async function send() {
    const text = ui.text.value;
    if (!text.trim()) return;
    ui.send.disabled = true;
    try {
      await call("POST", "/messages", { text, client: CLIENT });
      ui.text.value = "";
      grow();
      notify("");
    } catch (err) {
      notify(err.message); // a 409 focus_held message names the holder and says what to do
    } finally {
      ui.send.disabled = false;
    }
  }

  async function takeControl() {
    ui.take.disabled = true;
    const resuming = ended();
    try {
      if (resuming) {
        st.session = await call("POST", "/resume", { client: CLIENT });
        showState();
      } else {
        st.focus = await call("POST", "/focus", { client: CLIENT });
      }
      showFocus();
      notify("");
    } catch (err) {
      notify(`Could not ${resuming ? "resume" : "take control"}: ${err.message}`);
    } finally {
      ui.take.disabled = false;
    }
  }

  async function answer(id, behavior, buttons) {
    for (const b of buttons) b.disabled = true;
    try {
      await call("POST", `/permissions/${encodeURIComponent(id)}`,
        { behavior, message: "", client: CLIENT });
      notify("");
    } catch (err) {
      notify(err.message);
      for (const b of buttons) b.disabled = false;
    }
  }

  function grow() {
    ui.text.style.height = "auto";
    ui.text.style.height = `${Math.min(ui.text.scrollHeight, 160)}px`;
  }

  ui.composer.addEventListener("submit", (e) => { e.preventDefault(); send(); });
  ui.text.addEventListener("input", grow);
  ui.text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  ui.take.addEventListener("click", takeControl);
  ui.jump.addEventListener("click", toBottom);
  ui.transcript.addEventListener("scroll", () => {
    if (nearBottom()) ui.jump.hidden = true;
    maybeLoadOlder();
  }, { passive: true });

  // A login link's ?token= has done its job once the cookie is set; keep it off the screen.
  if (new URLSearchParams(location.search).has("token")) {
    history.replaceState(null, "", location.pathname);
  }

  start();
})();
