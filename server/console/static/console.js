// askq console: what every page shares. Plain JavaScript, no build step; every text from the
// server goes in with textContent, never as HTML.
"use strict";

const askq = (() => {
  const POLL_MIN_MS = 1000; // nothing polls faster than once a second

  async function api(path, options = {}) {
    const response = await fetch(path, { credentials: "same-origin", ...options });
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (!response.ok) {
      const error = new Error((body && body.error && body.error.message) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.problems = (body && body.error && body.error.problems) || [];
      throw error;
    }
    return body;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function fmt(value) {
    return value === null || value === undefined || Number.isNaN(value) ? "—" : Math.round(value).toLocaleString("en-US");
  }

  function age(createdAt) {
    if (!createdAt) return "—";
    const seconds = Math.max(0, Date.now() / 1000 - createdAt);
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
      if (seconds >= size) return `${Math.floor(seconds / size)} ${unit}`;
    }
    return `${Math.floor(seconds)} s`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 90) return `${seconds.toFixed(1)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function live(message) {
    const node = document.getElementById("live-state");
    if (node) node.textContent = message;
  }

  // A look that worked: its time shown beside the live region, not in it (not read out every 2 s),
  // and a failure said there before is cleared.
  function updated() {
    live("");
    const node = document.getElementById("live-time");
    if (node) node.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  // Calls fn now, then every intervalMs (at least a second) while the page is visible; fn returns
  // false to stop. One chain only: a tab shown again while a call is still out (no timer set yet)
  // must not start a second chain, which would poll twice as often from then on.
  function every(intervalMs, fn) {
    const wait = Math.max(POLL_MIN_MS, intervalMs);
    let timer = null;
    let calling = false;
    let stopped = false;
    async function tick() {
      timer = null;
      if (document.hidden || stopped) return;
      calling = true;
      try { stopped = (await fn()) === false; } catch (error) { live(`not updated: ${error.message}`); }
      calling = false;
      if (!stopped && !document.hidden) timer = setTimeout(tick, wait);
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer === null && !calling) tick();
    });
    tick();
  }

  function pathPart(value) { return encodeURIComponent(value); }

  return { api, el, fmt, age, duration, live, updated, every, pathPart };
})();
