// The console's dashboard: one page over the REST API, refreshing itself.
// Every time is shown as the API gives it (the display zone's wall clock); every text
// from the server is set as text, never parsed as HTML.
"use strict";

const REFRESH_MS = 10000;        // status, jobs, runs, account, risk ...
const SLOW_REFRESH_MS = 60000;   // equity snapshots and the calendar
const TOKEN_KEY = "krx-console-token";
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

// --- building the page ---------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fillRows(table, rows, emptyText) {
  const body = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {colspan: columns, class: "empty",
                                                                        text: emptyText}))]));
}

function cell(text, cls) { return el("td", {class: cls, text: text ?? ""}); }
function numCell(text, cls) { return cell(text, "num" + (cls ? " " + cls : "")); }

// --- formatting ----------------------------------------------------------------------------

const won = (n) => n === null || n === undefined ? "-" : "₩" + Math.round(n).toLocaleString("ko-KR");
const signedWon = (n) => n === null || n === undefined ? "-" : (n > 0 ? "+" : n < 0 ? "-" : "") + won(Math.abs(n));
const pct = (ratio, digits = 2) => ratio === null || ratio === undefined ? "-" : (ratio * 100).toFixed(digits) + "%";
const signedPct = (ratio) => ratio === null || ratio === undefined ? "-" : (ratio > 0 ? "+" : "") + pct(ratio);
const count = (n) => n === null || n === undefined ? "-" : Number(n).toLocaleString("ko-KR");
const sign = (n) => (n > 0 ? "gain" : n < 0 ? "loss" : "");
const hhmm = (iso) => iso ? iso.slice(11, 16) : "";
const dayTime = (iso) => iso ? iso.slice(5, 10) + " " + iso.slice(11, 16) : "";
const minutesOfDay = (iso) => Number(iso.slice(11, 13)) * 60 + Number(iso.slice(14, 16));
const outcomeClass = (outcome) => String(outcome || "").replace(/\s+/g, "-");

// --- the API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function get(path) {
  const response = await fetch(path, {cache: "no-store", headers: {Accept: "application/json"}});
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.detail || response.statusText);
  return body;
}

async function post(path, body, token) {
  const response = await fetch(path, {
    method: "POST", cache: "no-store",
    headers: {"Content-Type": "application/json", Authorization: "Bearer " + token},
    body: JSON.stringify(body ?? {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer.detail || response.statusText);
  return answer;
}

function isoDay(date) {
  return date.getFullYear() + "-" + String(date.getMonth() + 1).padStart(2, "0") + "-" +
    String(date.getDate()).padStart(2, "0");
}

// --- panels ----------------------------------------------------------------------------------

function showStatus(status) {
  const s = status.settings;
  const label = $("account-label");
  label.textContent = s.user_id + " · " + (s.dry_run ? "paper" : "LIVE");
  label.classList.toggle("live", !s.dry_run);
  document.title = (status.halt && status.halt.halted ? "HALTED · " : "") + "KRX orchestrator · " + s.user_id;
  $("now").textContent = status.now.slice(0, 16).replace("T", " ") + " " + status.now.slice(-6);
  const halt = status.halt && status.halt.halted ? status.halt : null;
  $("halt-banner").hidden = !halt;
  $("halt-button").hidden = !!halt;
  $("trading-state").textContent = halt ? "" : "Trading active";
  if (halt) {
    $("halt-text").textContent = "since " + dayTime(halt.halted_at) + " by " + halt.halted_by + ": " + halt.reason;
  }
  const warning = $("calendar-warning");
  warning.hidden = !status.calendar.warning;
  warning.textContent = status.calendar.warning || "";
  showJobs(status.jobs);
}

let jobOrder = [];  // the jobs as /api/status lists them: the timeline's lanes

function showJobs(jobs) {
  jobOrder = jobs.map((job) => job.job);
  fillRows($("jobs"), jobs.map((job) => {
    const last = job.last_run;
    const next = job.enabled ? (job.next_fire_times[0] ? dayTime(job.next_fire_times[0]) : "none") : "disabled";
    return el("tr", {"data-job": job.job},
      el("td", {}, job.job, el("br"), el("span", {class: "muted small", text: job.schedule})), cell(next),
      last ? el("td", {}, el("span", {class: "outcome " + outcomeClass(last.outcome), text: last.outcome}),
                " " + dayTime(last.scheduled_for), last.reason || last.error ? el("br") : null,
                last.reason || last.error ? el("span", {class: "muted", text: last.reason || last.error}) : null)
           : cell("never", "muted"),
      el("td", {}, job.enabled && job.service_installed
        ? el("button", {class: "small", type: "button", text: "Run", title: "queue a run of " + job.job + " now",
                        onclick: () => openAction("run", job.job)}) : null));
  }), "no jobs");
}

function showTimeline(timeline) {
  $("timeline-date").textContent = timeline.date + (timeline.session
    ? " · session " + timeline.session.open + "-" + timeline.session.close +
      (timeline.session.status === "special" ? " (special hours)" : "")
    : " · market closed");
  const width = 960, left = 150, right = 10, laneHeight = 22, top = 18;
  // a lane per job, in the registry's order (as /api/status lists them), then any other job that ran
  const lanes = [...new Set([...jobOrder, ...timeline.items.map((item) => item.job)])];
  const height = top + lanes.length * laneHeight + 4;
  const x = (minutes) => left + (width - left - right) * minutes / 1440;
  const svg = el("svg:svg", {viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": "today's fires of each job and their outcomes"});
  if (timeline.session) {
    const [openH, openM] = timeline.session.open.split(":").map(Number);
    const [closeH, closeM] = timeline.session.close.split(":").map(Number);
    const open = openH * 60 + openM;
    const close = closeH * 60 + closeM > open ? closeH * 60 + closeM : 1440;  // past midnight in this zone
    svg.append(el("svg:rect", {class: "session", x: x(open), y: top - 4, width: x(close) - x(open),
                               height: lanes.length * laneHeight}));
  }
  for (let hour = 0; hour <= 24; hour += 3) {
    svg.append(el("svg:text", {x: x(hour * 60), y: 11, "text-anchor": "middle", text: String(hour).padStart(2, "0")}));
  }
  lanes.forEach((job, index) => {
    const y = top + index * laneHeight + laneHeight / 2 - 4;
    svg.append(el("svg:text", {x: 0, y: y + 4, text: job}));
    svg.append(el("svg:line", {class: "lane", x1: left, x2: width - right, y1: y, y2: y}));
  });
  for (const item of timeline.items) {
    const y = top + lanes.indexOf(item.job) * laneHeight + laneHeight / 2 - 4;
    const dot = el("svg:circle", {class: "dot " + outcomeClass(item.outcome) + (item.scheduled ? "" : " manual"),
                                  cx: x(minutesOfDay(item.fire_time)), cy: y, r: 4.5});
    dot.append(el("svg:title", {text: `${item.job} ${hhmm(item.fire_time)}: ${item.outcome}` +
                                      (item.scheduled ? "" : " (" + item.origin + ")") +
                                      (item.reason ? " — " + item.reason : "")}));
    svg.append(dot);
  }
  if (timeline.now.slice(0, 10) === timeline.date) {
    const nowX = x(minutesOfDay(timeline.now));
    svg.append(el("svg:line", {class: "now", x1: nowX, x2: nowX, y1: top - 6, y2: height}));
  }
  $("timeline").replaceChildren(svg);
  const counts = {};
  for (const item of timeline.items) counts[item.outcome] = (counts[item.outcome] || 0) + 1;
  $("timeline-counts").textContent = timeline.items.length
    ? Object.entries(counts).map(([outcome, n]) => `${n} ${outcome}`).join(" · ")
    : "no fires today";
}

function showRuns(page) {
  fillRows($("runs"), page.runs.map((run) => el("tr", {},
    cell(dayTime(run.scheduled_for)), cell(run.job),
    el("td", {}, el("span", {class: "outcome " + outcomeClass(run.outcome), text: run.outcome})),
    cell(run.reason || run.error || "", "reason"), cell(run.origin))), "no runs yet");
}

function showAccount(account) {
  const figures = [
    ["Equity", won(account.equity)], ["Cash", won(account.cash)], ["Exposure", pct(account.exposure, 1)],
    ["Day P&L", signedWon(account.day_pnl) + " (" + signedPct(account.day_return) + ")", sign(account.day_pnl)],
    ["Total P&L", signedWon(account.total_pnl) + " (" + signedPct(account.total_return) + ")", sign(account.total_pnl)],
    ["Positions", count(account.positions)], ["Valued on", account.valued_on || "-"],
  ];
  $("account-figures").replaceChildren(...figures.map(([name, value, cls]) =>
    el("div", {}, el("dt", {text: name}), el("dd", {class: cls, text: value}))));
}

function showEquity(snapshots) {
  const box = $("equity-chart");
  if (snapshots.length < 2) {
    box.replaceChildren(el("p", {class: "empty", text: "no equity snapshots in the last 30 days"}));
    return;
  }
  const width = 600, height = 200, ddHeight = 50, left = 70, pad = 6;
  const equity = snapshots.map((s) => s.equity);
  let peak = -Infinity;
  const drawdown = equity.map((value) => { peak = Math.max(peak, value); return (peak - value) / peak; });
  const lo = Math.min(...equity), hi = Math.max(...equity), span = hi - lo || 1;
  const maxDd = Math.max(...drawdown) || 0.0001;
  const x = (i) => left + (width - left - pad) * i / (equity.length - 1);
  const y = (v) => pad + (height - 2 * pad) * (1 - (v - lo) / span);
  const line = equity.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const ddTop = height + 14;
  const ddY = (d) => ddTop + ddHeight * d / maxDd;
  const ddPoints = drawdown.map((d, i) => `${x(i).toFixed(1)},${ddY(d).toFixed(1)}`).join(" ");
  const first = snapshots[0].trading_date, last = snapshots[snapshots.length - 1].trading_date;
  const svg = el("svg:svg", {viewBox: `0 0 ${width} ${ddTop + ddHeight + 16}`, role: "img",
                             "aria-label": "equity and drawdown"},
    el("svg:polygon", {class: "equity-area", points: `${x(0)},${height - pad} ${line} ${x(equity.length - 1)},${height - pad}`}),
    el("svg:polyline", {class: "equity", points: line}),
    el("svg:text", {x: 0, y: pad + 8, text: won(hi)}),
    el("svg:text", {x: 0, y: height - pad, text: won(lo)}),
    el("svg:polygon", {class: "drawdown", points: `${x(0)},${ddTop} ${ddPoints} ${x(equity.length - 1)},${ddTop}`}),
    el("svg:text", {x: 0, y: ddTop + 10, text: "drawdown"}),
    el("svg:text", {x: 0, y: ddTop + ddHeight, text: "-" + pct(maxDd)}),
    el("svg:text", {x: left, y: ddTop + ddHeight + 14, text: first}),
    el("svg:text", {x: width - pad, y: ddTop + ddHeight + 14, "text-anchor": "end", text: last}));
  box.replaceChildren(svg);
}

function showPositions(positions) {
  fillRows($("positions"), positions.map((p) => el("tr", {},
    cell(p.ticker), cell(p.name), numCell(count(p.quantity)), numCell(won(p.average_cost)),
    numCell(won(p.last_price)), numCell(won(p.market_value)),
    numCell(signedWon(p.unrealised_pnl), sign(p.unrealised_pnl)),
    numCell(signedPct(p.unrealised_return), sign(p.unrealised_return)))), "no open positions");
}

function showOrders(orders) {
  fillRows($("orders"), orders.map((o) => el("tr", {},
    cell(dayTime(o.created_at)), cell(o.ticker), cell(o.side), cell(o.order_type), numCell(count(o.quantity)),
    numCell(count(o.filled_quantity)), numCell(o.limit_price === null ? "" : won(o.limit_price)),
    cell(o.reason, "reason"))), "no open orders");
}

function showFills(fills) {
  fillRows($("fills"), fills.slice().reverse().slice(0, 30).map((f) => el("tr", {},
    cell(dayTime(f.filled_at)), cell(f.ticker), cell(f.side), numCell(count(f.quantity)), numCell(won(f.price)),
    numCell(won(f.amount)), numCell(won(f.commission + f.tax)))), "no fills in the last 30 days");
}

function showWatchlist(watchlist) {
  if (watchlist === null) {
    $("watchlist-date").textContent = "";
    fillRows($("watchlist"), [], "no watchlist yet (watchlist_update has not run)");
    $("watchlist-exits").textContent = "";
    return;
  }
  $("watchlist-date").textContent = watchlist.date;
  fillRows($("watchlist"), watchlist.entries.map((e) => el("tr", {},
    numCell(e.rank), cell(e.ticker), cell(e.name), numCell(e.score.toFixed(3)), numCell(won(e.close)),
    cell(e.entered_on), numCell(signedPct(e.return_since_entry), sign(e.return_since_entry)))), "empty list");
  const exits = watchlist.exits || [];
  $("watchlist-exits").textContent = exits.length
    ? "Left the list: " + exits.map((e) => e.ticker + (e.name ? " " + e.name : "")).join(", ") : "";
}

function limitRow(name, now, limit, text, limitText) {
  const ratio = limit > 0 ? Math.max(0, now) / limit : 0;
  const bar = el("div", {class: "bar"}, el("span", {class: ratio >= 1 ? "over" : ratio >= 0.8 ? "near" : "",
                                                    style: `width: ${Math.min(100, ratio * 100).toFixed(0)}%`}));
  return el("tr", {}, cell(name), numCell(text), numCell(limitText), el("td", {}, bar));
}

function showRisk(risk) {
  const limits = risk.limits, check = risk.latest_check, m = check ? check.metrics || {} : null;
  const num = (v) => (typeof v === "number" ? v : 0);
  const rows = m ? [
    limitRow("largest position", num(m.largest_position_pct), limits.max_position_size_pct,
             `${num(m.largest_position_pct).toFixed(2)}% ${m.largest_position || ""}`, limits.max_position_size_pct + "%"),
    limitRow("open positions", num(m.positions), limits.max_positions, String(num(m.positions)),
             String(limits.max_positions)),
    limitRow("day loss", -num(m.daily_pnl_pct), limits.max_daily_loss_pct, `${num(m.daily_pnl_pct).toFixed(2)}%`,
             "-" + limits.max_daily_loss_pct + "%"),
    limitRow("drawdown", num(m.drawdown_pct), limits.max_total_loss_pct, `${num(m.drawdown_pct).toFixed(2)}%`,
             limits.max_total_loss_pct + "%"),
  ] : [];
  fillRows($("risk"), rows, "no risk check yet");
  $("risk-checked").textContent = check ? "checked " + dayTime(check.checked_at) + " (run " + check.run_id + ")" : "";
  fillRows($("breaches"), risk.breaches.map((b) => el("tr", {},
    cell(dayTime(b.checked_at)), cell(b.limit), cell(b.subject), numCell(Number(b.value).toFixed(2)),
    numCell(Number(b.threshold).toFixed(2)), cell(b.action))), "no breaches");
}

function showCalendar(days, today) {
  const box = $("calendar");
  if (!days.length) { box.replaceChildren(); return; }
  $("calendar-month").textContent = days[0].date.slice(0, 7);
  const cells = ["Mon", "Tue", "Wed", "Thu", "Fri"].map((d) => el("div", {class: "head", text: d}));
  const firstWeekday = (new Date(days[0].date + "T00:00:00Z").getUTCDay() + 6) % 7;  // Monday 0
  for (let i = 0; i < firstWeekday; i++) cells.push(el("div"));
  for (const day of days) {
    const hours = day.status === "closed" ? "closed" : day.open + "-" + day.close;
    cells.push(el("div", {class: "day " + day.status + (day.date === today ? " today" : ""),
                          title: day.date + ": " + (day.status === "special" ? "special hours " : "") + hours},
      el("b", {text: Number(day.date.slice(8))}), day.status === "regular" ? "" : hours));
  }
  box.replaceChildren(...cells);
}

// --- refreshing ------------------------------------------------------------------------------

function failed(panel, error) {
  const card = $(panel);
  let line = card.querySelector(".panel-error");
  if (!line) { line = el("p", {class: "error panel-error"}); card.append(line); }
  line.textContent = error ? "not updated: " + error.message : "";
  line.hidden = !error;
}

async function panel(id, path, show) {
  try {
    show(await get(path));
    failed(id, null);
    return true;
  } catch (error) {
    failed(id, error);
    return false;
  }
}

let lastSlow = 0;
let refreshing = Promise.resolve();

// One refresh at a time: a refresh asked for while one runs (after a change) starts
// once it ends, so an older answer never paints over a newer one.
function refresh() {
  refreshing = refreshing.then(refreshOnce, refreshOnce);
  return refreshing;
}

async function refreshOnce() {
  const slow = Date.now() - lastSlow >= SLOW_REFRESH_MS;
  const jobs = [
    panel("jobs-card", "/api/status", showStatus).then((ok) => Promise.all([
      panel("timeline-card", "/api/timeline", showTimeline),  // after the jobs: their order gives the lanes
      ok && slow ? panel("calendar-card", "/api/calendar",
                         (days) => showCalendar(days, $("now").textContent.slice(0, 10))) : ok,
    ])).then((answers) => answers.some(Boolean)),
    panel("runs-card", "/api/runs?limit=20", showRuns),
    panel("account-card", "/api/account", showAccount),
    panel("positions-card", "/api/positions", showPositions),
    panel("orders-card", "/api/orders?status=open", showOrders),
    panel("fills-card", "/api/fills", showFills),
    watchlistPanel(),
    panel("risk-card", "/api/risk", showRisk),
  ];
  if (slow) jobs.push(panel("account-card", "/api/equity", showEquity));
  const answered = await Promise.all(jobs);
  if (!answered.some(Boolean)) {
    $("updated").textContent = "not updated: the console does not answer (retrying every 10 s)";
    return;
  }
  if (slow) lastSlow = Date.now();
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  if (!document.body.dataset.loaded) {
    window.dashboardLoadedMs = performance.now();
    document.body.dataset.loaded = "true";
  }
}

// A watchlist not made yet is a 404: an empty panel, not an error.
async function watchlistPanel() {
  try {
    showWatchlist(await get("/api/watchlist"));
    failed("watchlist-card", null);
    return true;
  } catch (error) {
    if (error.status === 404) { showWatchlist(null); failed("watchlist-card", null); return true; }
    failed("watchlist-card", error);
    return false;
  }
}

// --- changes: halt, resume, emergency stop, run a job ------------------------------------------

const ACTIONS = {
  halt: {title: "Halt trading", text: "No new orders are placed until trading is resumed.", reason: true,
         path: () => "/api/halt", body: (f) => ({reason: f.reason}),
         done: (a) => a.made ? "halted" : "already halted"},
  resume: {title: "Resume trading", text: "Orders are placed again from the next fire on.",
           path: () => "/api/resume", body: () => ({}), done: () => "resumed"},
  emergency: {title: "Emergency stop", reason: true, flatten: true,
              text: "Halts trading and cancels every open order of the account at once.",
              path: () => "/api/emergency-stop", body: (f) => ({reason: f.reason, flatten: f.flatten}),
              done: (a) => `stopped: ${a.cancelled} order(s) cancelled, ${a.exit_orders} exit(s) placed`},
  run: {title: "Run now", date: true, text: "", path: (job) => `/api/jobs/${encodeURIComponent(job)}/run`,
        body: (f) => (f.date ? {date: f.date} : {}), done: (a) => `${a.job} queued (#${a.queued_id}) for ${a.trading_date}`},
};

let pending = null;

function openAction(kind, job) {
  const action = ACTIONS[kind];
  pending = {kind, job};
  $("action-title").textContent = action.title + (job ? ": " + job : "");
  $("action-text").textContent = action.text || "A running scheduler of this account runs it within seconds.";
  $("action-reason-label").hidden = !action.reason;
  $("action-flatten-label").hidden = !action.flatten;
  $("action-date-label").hidden = !action.date;
  $("action-reason").value = "";
  $("action-date").value = "";
  $("action-flatten").checked = false;
  $("action-token-label").hidden = !!sessionStorage.getItem(TOKEN_KEY);
  $("action-token").value = "";
  $("action-error").textContent = "";
  $("action-dialog").showModal();
  (action.reason ? $("action-reason") : $("action-confirm")).focus();
}

async function confirmAction(event) {
  event.preventDefault();
  const action = ACTIONS[pending.kind];
  const fields = {reason: $("action-reason").value.trim(), flatten: $("action-flatten").checked,
                  date: $("action-date").value};
  const token = sessionStorage.getItem(TOKEN_KEY) || $("action-token").value.trim();
  if (action.reason && !fields.reason) { $("action-error").textContent = "a reason is needed"; return; }
  if (!token) { $("action-token-label").hidden = false; $("action-error").textContent = "the token is needed"; return; }
  $("action-confirm").disabled = true;
  try {
    const answer = await post(action.path(pending.job), action.body(fields), token);
    sessionStorage.setItem(TOKEN_KEY, token);
    $("action-dialog").close();
    $("notice").textContent = action.done(answer);
    await refresh();
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("action-token-label").hidden = false;
      $("action-token").value = "";
    }
    $("action-error").textContent = error.message;
  } finally {
    $("action-confirm").disabled = false;
  }
}

// --- start -----------------------------------------------------------------------------------

function start() {
  $("halt-button").addEventListener("click", () => openAction("halt"));
  $("resume-button").addEventListener("click", () => openAction("resume"));
  $("emergency-button").addEventListener("click", () => openAction("emergency"));
  $("action-cancel").addEventListener("click", () => $("action-dialog").close());
  $("action-form").addEventListener("submit", confirmAction);
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
}

document.addEventListener("DOMContentLoaded", start);
