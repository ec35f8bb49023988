// The job page: follows /api/jobs/{id}/events from the job's first event, whenever the page opens,
// and keeps the answer, the timeline and the figures up to date until the stream's `end`.
//
// The answer is exact: each attempt's text is its deltas joined in seq order, from its `start` (a new
// attempt's text replaces the last's, as `retry` voids it); an event whose seq was applied already is
// skipped, so a stream read again from its start (after the browser gave up on it) adds nothing twice.
// A dropped connection is resumed by EventSource itself, with Last-Event-ID.
"use strict";

(() => {
  const RETRY_AFTER_MS = [1000, 2000, 5000, 10000, 30000]; // after the browser gave up: never faster than 1 s
  const KINDS = ["sources", "start", "delta", "retry", "waiting", "done", "failed", "cancelled", "gap", "result", "end"];
  const $ = (id) => document.getElementById(id);

  const job = {
    id: "",
    lastSeq: 0, // the events up to this seq are applied
    firstTs: null, // the timeline's zero: the first event's time
    attempt: null, // the attempt whose text is shown: {number, startTs, firstTokenTs, item}
    fromEvents: false, // the timeline holds the events (until then, the server's summary)
    finished: false, // a final event or the stored result was applied
    waitingItem: null, // the last `waiting` entry, while nothing else came after it
  };
  let source = null;
  let failures = 0;

  function connection(state, message) {
    const node = $("live-state");
    node.dataset.connection = state;
    askq.live(message || state);
  }

  // ---- what the page shows

  function setState(state) {
    $("job").dataset.state = state;
    const badge = $("job-state");
    badge.className = `state ${state}`;
    badge.textContent = state;
    $("answer").classList.toggle("streaming", state === "running");
  }

  function showUsage(usage) {
    if (!usage) return;
    $("tokens").textContent = askq.fmt(usage.total_tokens);
    const estimated = usage.estimated ? " (estimated)" : "";
    $("token-split").textContent = `${askq.fmt(usage.prompt_tokens)} in · ${askq.fmt(usage.completion_tokens)} out${estimated}`;
  }

  function showError(error) {
    const node = $("error");
    node.textContent = error || "";
    node.hidden = !error;
  }

  function showSources(sources) {
    if (!Array.isArray(sources)) return;
    $("sources-section").hidden = false;
    $("no-sources").hidden = sources.length > 0;
    $("sources").replaceChildren(...sources.map((s) => askq.el("li", {},
      askq.el("code", { text: `${s.file}#${s.chunk}` }), " ",
      askq.el("span", { className: "score", text: Number(s.score).toFixed(2) }))));
  }

  function when(ts) {
    if (typeof ts !== "number") return "";
    if (job.firstTs === null) job.firstTs = ts;
    if (ts === job.firstTs) return new Date(ts * 1000).toLocaleTimeString();
    return `+${askq.duration(ts - job.firstTs)}`;
  }

  // One timeline entry; the first one replaces the summary the server rendered.
  function note(kind, ts, what, detail) {
    const list = $("timeline");
    if (!job.fromEvents) {
      list.replaceChildren();
      job.fromEvents = true;
    }
    job.waitingItem = null;
    const item = askq.el("li", { className: kind },
      askq.el("span", { className: "when", text: when(ts) }), askq.el("span", { className: "what", text: what }));
    if (detail) item.append(askq.el("span", { className: "detail", text: detail }));
    list.append(item);
    return item;
  }

  // ---- the events

  const on = {
    sources(e) {
      showSources(e.sources);
      note("sources", e.ts, `Retrieved ${e.sources.length} source${e.sources.length === 1 ? "" : "s"}`);
    },
    start(e) {
      $("answer").textContent = ""; // a new attempt: its text is all there is
      setState("running");
      showError("");
      $("attempts").textContent = String(e.attempt);
      if (e.model) $("job-model").textContent = e.model;
      const item = note("start", e.ts, `Attempt ${e.attempt} started`, e.model || "");
      job.attempt = { number: e.attempt, startTs: e.ts, firstTokenTs: null, item };
    },
    delta(e) {
      $("answer").append(e.text || "");
      const attempt = job.attempt;
      if (attempt && attempt.firstTokenTs === null) {
        attempt.firstTokenTs = e.ts;
        const ttft = askq.duration(e.ts - attempt.startTs);
        $("ttft").textContent = ttft;
        attempt.item.append(askq.el("span", { className: "detail", text: `first token after ${ttft}` }));
      }
    },
    retry(e) {
      $("answer").textContent = ""; // the attempt's text is void
      const wait = typeof e.retry_in_s === "number" ? `retrying in ${askq.duration(e.retry_in_s)}` : "running it again";
      note("retry", e.ts, `Attempt ${e.attempt} failed, ${wait}`, e.error || "");
      setState("running");
    },
    waiting(e) {
      const reason = e.reason || "waiting";
      if (job.waitingItem && job.waitingItem.dataset.reason === reason) return; // the same wait, still
      const item = note("waiting", e.ts, "Waiting", reason);
      item.dataset.reason = reason;
      job.waitingItem = item;
    },
    done(e) { end("succeeded", e, "Succeeded"); },
    failed(e) { end("failed", e, "Failed"); },
    cancelled(e) { end("cancelled", e, "Cancelled"); },
    gap(e) {
      job.lastSeq = Math.max(job.lastSeq, e.last_seq || 0);
      note("gap", null, `Events ${e.first_seq}–${e.last_seq} are no longer in the log`,
        "The job's stored result holds its whole answer.");
    },
    result(e) { // the job's stored end: the whole answer, when its events left the log
      job.finished = true;
      setState(e.state);
      $("answer").textContent = e.answer || "";
      showError(e.error);
      showUsage(e.usage);
      showSources(e.sources);
      if (e.attempts) $("attempts").textContent = String(e.attempts);
      // An ended job's page came with its timeline from the record: the stored result adds nothing to it.
      if (!job.fromEvents && $("timeline").dataset.rendered === "ended") return;
      const count = `${e.attempts} attempt${e.attempts === 1 ? "" : "s"}`;
      note(`summary ${e.state}`, null, `${e.state[0].toUpperCase()}${e.state.slice(1)} after ${count}`,
        job.fromEvents ? "from its stored result" : "The attempts' events have left the log: this is the stored result.");
    },
    end() {
      source.close();
      $("job").dataset.stream = "ended";
      $("answer").classList.remove("streaming");
      connection("ended", `ended ${new Date().toLocaleTimeString()}`);
    },
  };

  function end(state, e, label) {
    job.finished = true;
    setState(state);
    showUsage(e.usage);
    showError(state === "succeeded" ? "" : e.error);
    if (typeof e.latency_ms === "number") $("latency").textContent = askq.duration(e.latency_ms / 1000);
    const latency = typeof e.latency_ms === "number" ? `after ${askq.duration(e.latency_ms / 1000)}` : "";
    note(state, e.ts, label, state === "succeeded" ? latency : [e.error, latency].filter(Boolean).join(" · "));
  }

  function receive(kind, message) {
    let data;
    try { data = JSON.parse(message.data); } catch (_) { return; }
    if (typeof data.seq === "number") {
      if (data.seq <= job.lastSeq) return; // applied already
      job.lastSeq = data.seq;
    }
    if (data.part) return; // a scheduled run's parts stream side by side: not a job's answer
    on[kind](data);
  }

  // ---- the connection

  function connect() {
    source = new EventSource(`/api/jobs/${askq.pathPart(job.id)}/events`);
    connection("connecting", "connecting…");
    source.addEventListener("open", () => { failures = 0; connection("live"); });
    source.addEventListener("error", () => {
      if ($("job").dataset.stream === "ended") return;
      if (source.readyState === EventSource.CONNECTING) {
        connection("reconnecting", "reconnecting…"); // the browser resumes by itself
      } else {
        gaveUp();
      }
    });
    for (const kind of KINDS) source.addEventListener(kind, (message) => receive(kind, message));
  }

  // The browser stops reconnecting when the server answers with an error (Redis away, signed out,
  // the job deleted) or 204 (after the stored result: the stream had ended). Ask the job why.
  async function gaveUp() {
    source.close();
    if (job.finished) { on.end(); return; }
    try {
      await askq.api(`/api/jobs/${askq.pathPart(job.id)}`);
    } catch (error) {
      if (error.status === 401 || error.status === 404) {
        connection("stopped", error.status === 401 ? "signed out: reload to sign in" : `stopped: ${error.message}`);
        return;
      }
    }
    const wait = RETRY_AFTER_MS[Math.min(failures, RETRY_AFTER_MS.length - 1)];
    failures += 1;
    connection("reconnecting", `disconnected; reconnecting in ${askq.duration(wait / 1000)}`);
    setTimeout(connect, wait); // from the first event: what was applied is skipped by its seq
  }

  document.addEventListener("DOMContentLoaded", () => {
    job.id = $("job").dataset.jobId;
    connect();
  });
})();
