// kefu agent console. Plain JS, no dependencies; every text goes through
// textContent so customer input can never become markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { me: null, csrf: "", current: null, chat: null, es: null, reminders: new Set(), seq: 0 };

const stateNames = { bot: "机器人", queued: "排队中", assigned: "已分配", closed: "已结束", abandoned: "已放弃" };
const ticketReasons = { closed_hours: "非工作时间", queue_full: "排队已满", queue_timeout: "排队超时" };
const roleNames = { customer: "客户", bot: "机器人", agent: "坐席", system: "系统", note: "备注" };

async function api(method, path, body) {
  const opt = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    opt.headers["Content-Type"] = "application/json";
    opt.headers["X-CSRF-Token"] = state.csrf;
    opt.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opt);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && path !== "/api/login") { showLogin(); }
  if (!r.ok) { throw new Error((data && data.error) || ("HTTP " + r.status)); }
  return data;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function flash(msg, isErr) {
  const f = $("flash");
  f.textContent = msg;
  f.className = "flash" + (isErr ? " err" : "");
  clearTimeout(flash.t);
  flash.t = setTimeout(() => f.classList.add("hidden"), 5000);
}

function showLogin() {
  $("app-view").classList.add("hidden");
  $("login-view").classList.remove("hidden");
  if (state.es) { state.es.close(); state.es = null; }
}

function fmtTime(s) {
  if (!s) return "";
  const d = new Date(s);
  return d.toLocaleTimeString("zh-CN", { hour12: false });
}

function waited(c) {
  const ms = Date.now() - new Date(c.queued_at).getTime();
  return Math.max(0, Math.round(ms / 1000)) + "秒";
}

async function start() {
  try {
    state.me = await api("GET", "/api/me");
    state.csrf = state.me.csrf;
    enterApp();
  } catch (e) {
    showLogin();
  }
}

function enterApp() {
  $("login-view").classList.add("hidden");
  $("app-view").classList.remove("hidden");
  $("me").textContent = state.me.name + "（" + state.me.role + "）";
  $("ongoing-box").classList.toggle("hidden", state.me.role === "agent");
  $("assign-box").classList.toggle("hidden", !state.me.supervisor);
  $("status").parentElement.classList.toggle("hidden", !state.me.agent); // only the roster takes chats
  const sel = $("disposition");
  sel.textContent = "";
  for (const d of state.me.dispositions) { sel.appendChild(el("option", "", d)).value = d; }
  connect();
  refresh();
}

function connect() {
  if (state.es) state.es.close();
  const es = new EventSource("/api/events");
  state.es = es;
  es.addEventListener("hello", () => { $("live").className = "live on"; $("live").dataset.ready = "1"; });
  es.addEventListener("update", (ev) => {
    const u = JSON.parse(ev.data);
    if (u.kind === "reminder") { state.reminders.add(u.conv); flash("客户等待回复：" + u.conv, true); }
    refresh();
    if (state.current && (u.conv === state.current || u.kind === "agent")) openChat(state.current, true);
  });
  es.addEventListener("expired", () => { es.close(); showLogin(); });
  es.onerror = () => { $("live").className = "live off"; };
}

let refreshing = null;
function refresh() {
  if (refreshing) { refreshing.again = true; return; }
  refreshing = { again: false };
  doRefresh().finally(() => {
    const again = refreshing.again;
    refreshing = null;
    if (again) refresh();
  });
}

async function doRefresh() {
  try {
    const q = await api("GET", "/api/queue");
    renderList($("mine"), q.mine, (c) => c.customer + (c.accepted ? "" : " · 待接入"));
    $("mine-count").textContent = "(" + q.mine.length + ")";
    renderList($("queue"), q.queue, (c) => c.customer + " · " + c.store + " · 已等待" + waited(c));
    $("queue-count").textContent = "(" + q.queue.length + ")";
    renderList($("ongoing"), q.ongoing, (c) => c.customer + " · " + (c.agent || ""));
    const tickets = await api("GET", "/api/tickets");
    const tl = $("tickets");
    tl.textContent = "";
    for (const t of tickets.slice(0, 20)) {
      tl.appendChild(el("li", "", fmtTime(t.created_at) + " " + t.customer + " · " + t.store + " · " + (ticketReasons[t.reason] || t.reason)));
    }
    const agents = await api("GET", "/api/agents");
    if (state.me.supervisor) {
      const al = $("agents");
      const names = $("agent-names");
      al.textContent = "";
      names.textContent = "";
      for (const a of agents) {
        al.appendChild(el("li", "", a.name + " · " + a.status + " · " + a.chats.length + "/" + a.max_chats));
        names.appendChild(el("option")).value = a.name;
      }
    }
    const self = agents.find((a) => a.name === state.me.user);
    if (self) {
      // My load against my cap, and my status as the desk knows it.
      $("mine-count").textContent = "(" + q.mine.length + "/" + self.max_chats + ")";
      if (document.activeElement !== $("status")) $("status").value = self.status;
    }
  } catch (e) {
    flash(e.message, true);
  }
}

function renderList(ul, items, label) {
  ul.textContent = "";
  for (const c of items) {
    const li = el("li", "", label(c));
    li.dataset.id = c.id;
    if (c.id === state.current) li.classList.add("active");
    if (state.reminders.has(c.id)) li.classList.add("remind");
    li.addEventListener("click", () => openChat(c.id));
    ul.appendChild(li);
  }
}

async function openChat(id, quiet) {
  try {
    const data = await api("GET", "/api/chats/" + encodeURIComponent(id));
    state.current = id;
    state.chat = data;
    renderChat(data);
  } catch (e) {
    if (!quiet) flash(e.message, true);
  }
}

function renderChat(d) {
  const c = d.conv;
  $("chat").classList.remove("hidden");
  $("profile").classList.remove("hidden");
  $("chat").dataset.id = c.id;
  $("chat").dataset.state = c.state;
  $("chat-customer").textContent = c.customer;
  $("chat-meta").textContent = " " + c.channel + " · " + c.store + (c.agent ? " · 坐席 " + c.agent : "");
  $("chat-state").textContent = stateNames[c.state] || c.state;
  const mine = c.agent === state.me.user;
  $("accept").classList.toggle("hidden", !(mine && c.state === "assigned" && !c.accepted));
  $("takeover").classList.toggle("hidden", !(state.me.supervisor && !mine && (c.state === "queued" || c.state === "assigned")));
  const tr = $("transcript");
  tr.textContent = "";
  for (const t of d.transcript) {
    const li = el("li", "turn " + t.role + (t.state === "queued" && t.role === "customer" ? " queued" : ""));
    li.appendChild(el("span", "who", (roleNames[t.role] || t.role) + (t.agent ? " " + t.agent : "") + " · " + fmtTime(t.at) + (t.state === "queued" && t.role === "customer" ? " · 排队时" : "")));
    li.appendChild(document.createTextNode(t.text));
    if (t.entry) li.appendChild(el("span", "entry", "知识库 " + t.entry));
    if (t.intent && t.role === "bot") li.appendChild(el("span", "entry", "意图 " + t.intent));
    tr.appendChild(li);
  }
  tr.scrollTop = tr.scrollHeight;
  const q = d.quota;
  let qt = q.remaining < 0 ? "该渠道不限条数" : "剩余可发送 " + q.remaining + " 条";
  if (q.until) qt += "，窗口截止 " + new Date(q.until).toLocaleString("zh-CN", { hour12: false });
  if (q.note) qt += " · " + q.note;
  $("quota").textContent = qt;
  $("quota").dataset.remaining = q.remaining;
  const canReply = mine && c.state === "assigned" && c.accepted && q.can_reply;
  $("reply-send").disabled = !canReply;
  $("close-btn").disabled = !(c.state === "assigned" && (mine || state.me.supervisor));
  renderKB($("suggestions"), d.suggestions);
  $("p-store").textContent = c.store || "—";
  $("p-channel").textContent = c.channel + " (" + c.channel_type + ")";
  $("p-reason").textContent = c.reason || "—";
  $("p-history").textContent = d.history.length ? d.history.map((h) => fmtTime(h.ended_at) + " " + (h.disposition || h.end_reason)).join("；") : "—";
  $("p-surveys").textContent = d.profile && d.profile.surveys.length ? d.profile.surveys.map((s) => s.score + "分").join("，") : "—";
  $("p-cases").textContent = d.profile && d.profile.open_cases.length ? d.profile.open_cases.map((k) => k.id + " " + k.state).join("，") : "—";
  state.reminders.delete(c.id);
}

function renderKB(ul, items) {
  ul.textContent = "";
  if (!items || !items.length) { ul.appendChild(el("li", "muted", "—")); return; }
  for (const s of items) {
    const li = el("li", "", s.question);
    li.appendChild(el("div", "muted", s.answer));
    const b = el("button", "insert", "插入");
    b.type = "button";
    b.addEventListener("click", () => {
      const ta = $("reply-text");
      ta.value = ta.value ? ta.value + "\n" + s.answer : s.answer;
      ta.focus();
    });
    li.appendChild(b);
    ul.appendChild(li);
  }
}

async function act(path, body, okMsg) {
  if (!state.current) return;
  try {
    await api("POST", "/api/chats/" + encodeURIComponent(state.current) + "/" + path, body);
    if (okMsg) flash(okMsg);
    await openChat(state.current, true);
    refresh();
    return true;
  } catch (e) {
    flash(e.message, true);
    return false;
  }
}

function wire() {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      state.me = await api("POST", "/api/login", { user: $("login-user").value, password: $("login-pass").value });
      state.csrf = state.me.csrf;
      $("login-pass").value = "";
      enterApp();
    } catch (e) {
      $("login-error").textContent = e.message;
    }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (e) { /* logged out anyway */ }
    showLogin();
  });
  $("status").addEventListener("change", async () => {
    try { await api("POST", "/api/status", { status: $("status").value }); flash("状态已更新"); } catch (e) { flash(e.message, true); }
  });
  $("accept").addEventListener("click", () => act("accept", {}, "已接入"));
  $("takeover").addEventListener("click", () => act("takeover", {}, "已接管"));
  $("reply-send").addEventListener("click", async () => {
    const text = $("reply-text").value.trim();
    if (!text) return;
    state.seq += 1;
    const id = "c" + Date.now().toString(36) + state.seq;
    if (await act("reply", { client_id: id, text }, "已发送")) $("reply-text").value = "";
  });
  $("note-add").addEventListener("click", async () => {
    if (await act("note", { text: $("note-text").value }, "备注已添加")) $("note-text").value = "";
  });
  $("transfer-btn").addEventListener("click", () => act("transfer", { to: $("transfer-to").value, reason: $("transfer-reason").value }, "已转接"));
  $("assign-btn").addEventListener("click", () => act("assign", { agent: $("assign-agent").value }, "已分配"));
  $("close-btn").addEventListener("click", () => act("close", { disposition: $("disposition").value, resolved: $("resolved").checked }, "会话已结束"));
  $("kb-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("kb-q").value.trim();
    if (!q) return;
    const store = state.chat ? state.chat.conv.store : "";
    try {
      renderKB($("kb-results"), await api("GET", "/api/kb?q=" + encodeURIComponent(q) + "&store=" + encodeURIComponent(store)));
    } catch (e) { flash(e.message, true); }
  });
}

wire();
start();
