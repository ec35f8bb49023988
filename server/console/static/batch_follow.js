// The batch page's follow view: the running jobs' text as it is written, labelled by job, like
// `askq tail --batch --follow`. One EventSource on the batch's events (?skip_ended=true: the jobs
// ended before are not replayed); the browser resumes it by itself with Last-Event-ID.
"use strict";

(() => {
  const SHOWN = 8; // the latest jobs to start; older ones make room
  const TEXT_KEPT = 20000; // characters of an answer kept on screen (its job page has the whole)
  const ENDS = { done: "succeeded", failed: "failed", cancelled: "cancelled" };
  const REOPEN_AFTER_MS = [1000, 2000, 5000, 10000, 30000]; // after the browser gave up: never faster than 1 s
  const panels = new Map(); // job id -> {node, text, state, notice, attempt}
  let source = null, area, stateLine;
  let failures = 0, reopening = null, fresh = false;
  const NONE_RUNNING = "No job is running; answers appear here as jobs start.";

  function itemOf(jobId) { return jobId.slice(jobId.indexOf(":") + 1); }

  // Only a start makes a panel: the text of a job not shown (more than SHOWN run) is not followed.
  function started(jobId) {
    let found = panels.get(jobId);
    if (found) return found;
    while (panels.size >= SHOWN) evict();
    const state = askq.el("span", { className: "state running", text: "running" });
    const attempt = askq.el("span", { className: "muted" });
    const notice = askq.el("p", { className: "notice muted" });
    const text = document.createTextNode("");
    const pre = askq.el("pre", { className: "job-text" }, text);
    const node = askq.el("article", { className: "job-panel", "data-job": jobId },
      askq.el("header", {}, askq.el("a", { href: `/jobs/${askq.pathPart(jobId)}`, text: itemOf(jobId) }), " ", state, " ", attempt),
      notice,
      pre);
    area.append(node);
    found = { node, text, pre, state, notice, attempt };
    panels.set(jobId, found);
    stateLine.textContent = "Each running job's answer as it is written (the latest 8).";
    return found;
  }

  function evict() {
    // An ended job goes first; else the one that started longest ago. Never the panel holding the
    // keyboard's focus (its link), while another can go: its removal would drop the focus to <body>.
    const focused = document.activeElement;
    const movable = [...panels].filter(([, p]) => !p.node.contains(focused));
    const pool = movable.length ? movable : [...panels];
    const victim = (pool.find(([, p]) => p.ended) ?? pool[0])[0];
    panels.get(victim).node.remove();
    panels.delete(victim);
  }

  function setText(p, text) {
    p.text.data = text.length > TEXT_KEPT ? `…${text.slice(-TEXT_KEPT)}` : text;
  }

  const handlers = {
    start(e) {
      const p = started(e.job_id);
      setText(p, ""); // a new attempt writes the answer from its start
      p.ended = false;
      p.state.className = "state running";
      p.state.textContent = "running";
      p.attempt.textContent = `attempt ${e.attempt}`;
      p.notice.textContent = "";
    },
    delta(e, p) {
      // Kept at its newest words while the reader has not scrolled back.
      const following = p.pre.scrollHeight - p.pre.scrollTop - p.pre.clientHeight < 24;
      setText(p, p.text.data + e.text);
      if (following) p.pre.scrollTop = p.pre.scrollHeight;
      p.notice.textContent = "";
    },
    retry(e, p) {
      const next = typeof e.retry_in_s === "number" ? `, next in ${askq.duration(e.retry_in_s)}` : "";
      p.notice.textContent = `attempt ${e.attempt} failed (${e.error || "no reason"}); its text is void${next}`;
    },
    waiting(e, p) { p.notice.textContent = e.reason || "waiting"; },
    gap(e, p) { p.notice.textContent = `events ${e.first_seq}–${e.last_seq} left the log: the job page has the whole answer`; },
  };

  function ended(kind, e) {
    const p = panels.get(e.job_id);
    if (!p) return; // a job this view never showed running
    p.ended = true;
    p.state.className = `state ${ENDS[kind]}`;
    p.state.textContent = ENDS[kind];
    p.notice.textContent = e.error || "";
  }

  function open() {
    const batch = document.getElementById("batch-page").dataset.batch;
    source = new EventSource(`/api/batches/${askq.pathPart(batch)}/events?follow=true&skip_ended=true`);
    for (const [kind, handle] of Object.entries(handlers)) {
      source.addEventListener(kind, (message) => {
        const event = JSON.parse(message.data);
        const shown = kind === "start" ? null : panels.get(event.job_id);
        if (kind === "start" || shown) handle(event, shown);
      });
    }
    for (const kind of Object.keys(ENDS)) {
      source.addEventListener(kind, (message) => ended(kind, JSON.parse(message.data)));
    }
    source.addEventListener("progress", (message) => {
      document.dispatchEvent(new CustomEvent("askq:progress", { detail: JSON.parse(message.data) }));
    });
    source.addEventListener("open", () => {
      failures = 0;
      stateLine.dataset.connection = "open";
      if (fresh) clear(); // the panels of a stream opened anew: the old text stayed until now
      fresh = false;
    });
    source.addEventListener("error", () => {
      stateLine.dataset.connection = "lost";
      if (source.readyState === EventSource.CLOSED) reopenLater();
      else askq.live("live text: connection lost, resuming…"); // the browser resumes by itself
    });
    if (!panels.size) stateLine.textContent = NONE_RUNNING;
  }

  function clear() {
    for (const p of panels.values()) p.node.remove();
    panels.clear();
    stateLine.textContent = NONE_RUNNING;
  }

  // The browser stops for good when the server answers with an error (Redis away: 503; signed out:
  // 401): open the stream anew after a while, from the jobs running then, until it is paused.
  function reopenLater() {
    source.close();
    const wait = REOPEN_AFTER_MS[Math.min(failures, REOPEN_AFTER_MS.length - 1)];
    failures += 1;
    askq.live(`live text stopped by the server; trying again in ${askq.duration(wait / 1000)}`);
    reopening = setTimeout(() => { reopening = null; reopen(); }, wait);
  }

  // From the jobs running now (?skip_ended=true): the text shown stays until the new stream opens.
  function reopen() {
    fresh = true;
    open();
  }

  function toggle(event) {
    const button = event.currentTarget;
    const following = button.getAttribute("aria-pressed") === "true";
    if (following) {
      clearTimeout(reopening);
      reopening = null;
      source.close();
      source = null;
      stateLine.textContent = "Paused: the text shown stays as it was.";
    } else {
      reopen();
    }
    button.setAttribute("aria-pressed", String(!following));
    button.textContent = following ? "Follow" : "Pause";
  }

  document.addEventListener("DOMContentLoaded", () => {
    area = document.getElementById("follow");
    stateLine = document.getElementById("follow-state");
    document.getElementById("follow-toggle").addEventListener("click", toggle);
    open();
  });
})();
