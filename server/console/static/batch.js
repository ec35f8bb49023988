// The batch page: counters, rate and ETA, errors and the provider gate from GET /api/batches/{batch}
// every 2 s (and the counters also from the follow stream's progress events), retry and cancel
// behind a confirmation, and the item list a page at a time. Text goes in with textContent only.
"use strict";

(() => {
  const POLL_MS = 2000;
  const ITEMS_SHOWN = 25;
  const RATE_WINDOW_S = 60; // throughput over the last minute's looks
  const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
  let page, base;
  let counts = null; // the latest counts, from the status or the stream's progress: what the dialogs say
  const samples = []; // {at, finished, tokens}
  const items = { state: "", after: null, back: [], counts: "", readAt: 0 };

  const $ = (id) => document.getElementById(id);
  const finishedOf = (counts) => counts.succeeded + counts.failed + counts.cancelled;
  const counted = (n, what) => `${askq.fmt(n)} ${what}${n === 1 ? "" : "s"}`;

  function ms(value) {
    if (value === null || value === undefined) return "—";
    return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
  }

  function showCounts(latest, total, tokens, done) {
    counts = latest;
    const finished = finishedOf(counts);
    for (const state of STATES) document.querySelector(`[data-count=${state}]`).textContent = askq.fmt(counts[state]);
    document.querySelector("[data-count=failed]").classList.toggle("some", counts.failed > 0);
    const bar = $("progress");
    bar.max = total || 0;
    bar.value = finished;
    bar.setAttribute("aria-label", `${finished} of ${total} done`);
    $("done-of").textContent = `${askq.fmt(finished)} / ${askq.fmt(total)} done`;
    $("done-flag").hidden = !done;
    $("tokens").textContent = askq.fmt(tokens.total);
    $("tokens-split").textContent = `${askq.fmt(tokens.prompt)} in · ${askq.fmt(tokens.completion)} out`;
    $("retry-button").disabled = !(counts.failed || counts.cancelled);
    $("cancel-button").disabled = !(counts.queued || counts.running);
    sample(finished, tokens.total);
    showRate(total - finished, done);
  }

  function sample(finished, tokens) {
    const at = Date.now() / 1000;
    samples.push({ at, finished, tokens });
    while (samples.length > 2 && at - samples[0].at > RATE_WINDOW_S) samples.shift();
  }

  function showRate(remaining, done) {
    const first = samples[0], last = samples[samples.length - 1];
    const seconds = last.at - first.at;
    if (done) {
      $("rate").textContent = "—";
      $("token-rate").textContent = "finished";
      $("eta").textContent = "done";
      return;
    }
    if (seconds < 2) return; // too short a look to say
    const jobs = (last.finished - first.finished) / seconds;
    $("rate").textContent = `${jobs.toFixed(jobs < 10 ? 1 : 0)} jobs/s`;
    $("token-rate").textContent = `${askq.fmt((last.tokens - first.tokens) / seconds)} tokens/s`;
    $("eta").textContent = jobs > 0 ? askq.duration(remaining / jobs) : "— (none ended lately)";
  }

  function errorLines(document) {
    return (document.errors || []).map((e) =>
      `${askq.fmt(e.retried + e.failed)} × ${e.reason}${e.failed ? ` (${e.failed} failed)` : ""}`);
  }

  function gateLines(document) {
    const lines = [];
    if (document.halt) lines.push(["halt", `Halted: its jobs are not sent. ${document.halt}`]);
    for (const p of document.providers || []) {
      if (p.unreachable_since) {
        const since = new Date(p.unreachable_since * 1000).toLocaleTimeString("en-GB");
        lines.push(["outage", `${p.endpoint} unreachable since ${since}: ${p.unreachable_error || ""}`]);
      }
      if (p.in_flight_limit !== null && p.in_flight_limit !== undefined) {
        lines.push(["limit", `${p.endpoint}: at most ${p.in_flight_limit} calls in flight. ${p.in_flight_limit_reason || ""}`]);
      }
      if (p.cooldown_s !== null && p.cooldown_s !== undefined) {
        lines.push(["cooldown", `${p.endpoint} asked to hold off (429): ${p.cooldown_s.toFixed(1)} s left`]);
      }
      if (p.pace_wait_s !== null && p.pace_wait_s !== undefined) {
        lines.push(["pace", `${p.endpoint} paced: a call asked now goes in ${p.pace_wait_s.toFixed(1)} s`]);
      }
    }
    return lines;
  }

  function showList(listId, emptyId, lines) {
    const list = $(listId);
    list.replaceChildren(...lines.map(([kind, text]) => askq.el("li", kind ? { className: `gate-${kind}`, text } : { text })));
    list.hidden = lines.length === 0;
    $(emptyId).hidden = lines.length > 0;
  }

  async function refresh() {
    const status = await askq.api(base);
    showCounts(status.counts, status.total, status.tokens, status.done);
    $("latency").textContent = `${ms(status.latency_ms.p50)} / ${ms(status.latency_ms.p95)}`;
    $("first-token").textContent = `${ms(status.first_token_ms.p50)} / ${ms(status.first_token_ms.p95)}`;
    $("batch-age").textContent = askq.age(status.created_at);
    showList("errors", "no-errors", errorLines(status).map((text) => [null, text]));
    showList("gate", "gate-open", gateLines(status));
    await itemsMoved(status.counts);
    askq.updated();
  }

  // The states moved: the item page shown is read again (at most once a second, from either source).
  async function itemsMoved(counts) {
    const now = Date.now();
    const seen = JSON.stringify(counts);
    if (seen === items.counts || now - items.readAt < 1000) return;
    items.counts = seen;
    items.readAt = now;
    await loadItems(items.after);
  }

  // Retry and cancel: a <dialog> says what will happen; nothing is sent unless confirmed.
  function ask(title, text, yes, option, danger = false) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    $("confirm-yes").className = danger ? "danger" : "";
    $("confirm-option").hidden = !option;
    $("confirm-cancelled").checked = false;
    if (option) $("confirm-option-text").textContent = option;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
  }

  async function act(path, said) {
    const result = $("action-result");
    try {
      const answer = await askq.api(`${base}/${path}`, { method: "POST" });
      result.className = "";
      result.textContent = said(answer);
      await refresh();
    } catch (error) {
      result.className = "error";
      result.textContent = `Not done: ${error.message}`;
    }
  }

  // The buttons are enabled from the latest counts, so the dialogs word them too (the status read
  // every 2 s may be older: "0 failed jobs" and no cancelled option, under an enabled Retry).
  async function retry() {
    const option = counts.cancelled ? `Also the ${askq.fmt(counts.cancelled)} cancelled jobs` : null;
    const text = counts.failed
      ? `Queue the ${askq.fmt(counts.failed)} failed jobs of ${page.dataset.batch} again. A worker answers them anew.`
      : `No job of ${page.dataset.batch} failed; tick below to queue its cancelled jobs again.`;
    if (!(await ask("Retry failed jobs?", text, "Retry", option))) return;
    const cancelled = $("confirm-cancelled").checked;
    await act(cancelled ? "retry?cancelled=true" : "retry", (a) => `${counted(a.requeued, "job")} queued again.`);
  }

  async function cancel() {
    const running = counts.running ? ` and stop the ${askq.fmt(counts.running)} running ones` : "";
    const text = `Cancel the ${askq.fmt(counts.queued)} queued jobs of ${page.dataset.batch}${running}. Retry can queue them again.`;
    if (!(await ask("Cancel this batch?", text, "Cancel the batch", null, true))) return;
    await act("cancel", (a) => `${counted(a.queued_cancelled, "queued job")} cancelled; ${counted(a.running_aborting, "running job")} told to stop.`);
  }

  // Items: GET .../items a page at a time; the address bar keeps the filter and place for a reload.
  function itemRow(item) {
    const text = askq.el("td", { "data-label": "Text", className: "text" }, askq.el("span", { className: "question", text: item.question }));
    if (item.answer !== null) text.append(askq.el("span", { className: "answer-text", text: item.answer }));
    if (item.error) text.append(askq.el("span", { className: "error", text: item.error }));
    return askq.el("tr", { "data-job": item.job_id },
      askq.el("td", { className: "num", "data-label": "#", text: String(item.index + 1) }),
      askq.el("td", { "data-label": "Item" }, askq.el("a", { href: `/jobs/${askq.pathPart(item.job_id)}`, text: item.id })),
      askq.el("td", { "data-label": "State" }, askq.el("span", { className: `state ${item.state}`, text: item.state })),
      text,
      askq.el("td", { className: "num", "data-label": "Attempts", text: String(item.attempts) }));
  }

  function query(after) {
    const params = new URLSearchParams({ limit: String(ITEMS_SHOWN) });
    if (items.state) params.set("state", items.state);
    if (after !== null) params.set("after", String(after));
    return params;
  }

  async function loadItems(after) {
    const found = await askq.api(`${base}/items?${query(after)}`);
    items.after = after;
    $("items").querySelector("tbody").replaceChildren(...found.data.map(itemRow));
    const empty = $("items-empty");
    empty.hidden = found.data.length > 0;
    empty.textContent = found.has_more ? `None among the ${askq.fmt(found.scanned)} items looked at; the next page goes on.` : "No items here.";
    const next = $("items-next");
    next.hidden = !found.has_more;
    next.dataset.after = found.has_more ? String(found.next_after) : "";
    $("items-previous").hidden = items.back.length === 0;
    $("items-first").hidden = after === null;
    $("items-where").textContent = `${askq.fmt(found.total)} items`;
    const shown = query(after);
    shown.delete("limit");
    history.replaceState(null, "", String(shown) ? `?${shown}` : location.pathname);
  }

  function pager() {
    const previous = askq.el("button", { type: "button", id: "items-previous", className: "secondary", text: "Previous page" });
    previous.hidden = true;
    $("items-first").before(previous);
    previous.addEventListener("click", () => loadItems(items.back.pop() ?? null));
    $("items-first").addEventListener("click", (event) => { event.preventDefault(); items.back = []; loadItems(null); });
    $("items-next").addEventListener("click", (event) => {
      event.preventDefault();
      items.back.push(items.after);
      loadItems(Number(event.currentTarget.dataset.after));
    });
    $("items-state").addEventListener("change", (event) => { items.state = event.target.value; items.back = []; loadItems(null); });
    $("items-filter").addEventListener("submit", (event) => { event.preventDefault(); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    page = $("batch-page");
    counts = JSON.parse(page.dataset.counts);
    base = `/api/batches/${askq.pathPart(page.dataset.batch)}`;
    const asked = new URLSearchParams(location.search);
    items.state = asked.get("state") || "";
    items.after = /^\d+$/.test(asked.get("after") || "") ? Number(asked.get("after")) : null;
    $("items-next").dataset.after = new URLSearchParams($("items-next").search).get("after") || "";
    pager();
    $("retry-button").addEventListener("click", retry);
    $("cancel-button").addEventListener("click", cancel);
    // The follow stream's progress events: the counters move at once, between two looks.
    document.addEventListener("askq:progress", (event) => {
      const p = event.detail;
      showCounts(p.counts, p.total, p.tokens, p.done);
      itemsMoved(p.counts).catch((error) => askq.live(`items not updated: ${error.message}`));
    });
    askq.every(POLL_MS, refresh);
  });
})();
