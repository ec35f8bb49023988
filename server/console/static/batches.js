// The batches page: the upload form, and the list kept live by one listing request every 2 s.
"use strict";

(() => {
  const LIST_EVERY_MS = 2000;
  const seen = new Map(); // batch -> {finished, at}: the rate is finished jobs between two looks

  function finishedOf(b) { return b.counts.succeeded + b.counts.failed + b.counts.cancelled; }

  function row(b) {
    const link = askq.el("a", { href: `/batches/${askq.pathPart(b.batch)}`, text: b.batch });
    const progress = askq.el("progress", { max: String(b.total || 0), value: "0" });
    return askq.el("tr", { "data-batch": b.batch },
      askq.el("td", { "data-label": "Batch" }, link, " ", askq.el("span", { className: "muted", text: b.job_type || "" })),
      askq.el("td", { "data-label": "Progress" }, progress, " ", askq.el("span", { className: "done" })),
      askq.el("td", { "data-label": "Running", className: "num running" }),
      askq.el("td", { "data-label": "Failed", className: "num failed" }),
      askq.el("td", { "data-label": "Tokens", className: "num tokens" }),
      askq.el("td", { "data-label": "Rate", className: "num rate", text: "—" }),
      askq.el("td", { "data-label": "Age", className: "num age" }));
  }

  function update(tr, b) {
    const finished = finishedOf(b);
    const progress = tr.querySelector("progress");
    progress.max = b.total || 0;
    progress.value = finished;
    progress.setAttribute("aria-label", `${finished} of ${b.total} done`);
    tr.querySelector(".done").textContent = `${askq.fmt(finished)} / ${askq.fmt(b.total)}`;
    tr.querySelector(".running").textContent = askq.fmt(b.counts.running);
    tr.querySelector(".failed").textContent = askq.fmt(b.counts.failed);
    tr.querySelector(".failed").classList.toggle("some", b.counts.failed > 0);
    tr.querySelector(".tokens").textContent = askq.fmt(b.tokens.total);
    tr.querySelector(".age").textContent = askq.age(b.created_at);
    const now = Date.now() / 1000;
    const before = seen.get(b.batch);
    if (b.done) tr.querySelector(".rate").textContent = "done";
    else if (before && now > before.at) {
      tr.querySelector(".rate").textContent = `${((finished - before.finished) / (now - before.at)).toFixed(1)}/s`;
    }
    seen.set(b.batch, { finished, at: now });
  }

  async function refresh() {
    const listing = await askq.api("/api/batches?limit=50");
    const body = document.querySelector("#batches tbody");
    const rows = new Map([...body.querySelectorAll("tr")].map((tr) => [tr.dataset.batch, tr]));
    let previous = null;
    for (const b of listing.data) {
      let tr = rows.get(b.batch);
      if (!tr) {
        tr = row(b);
        if (previous) previous.after(tr); else body.prepend(tr);
      }
      update(tr, b);
      previous = tr;
    }
    const none = document.getElementById("no-batches");
    if (listing.data.length) {
      if (none) none.remove();
      document.getElementById("batches").hidden = false;
    }
    askq.updated();
  }

  function showProblems(target, error) {
    target.replaceChildren(askq.el("p", { className: "error", text: error.problems.length ? "Nothing was enqueued: the file has bad lines." : error.message }));
    if (error.problems.length) {
      const list = askq.el("ul", { className: "problems", id: "upload-problems" });
      for (const problem of error.problems) list.append(askq.el("li", { text: problem }));
      target.append(list);
    }
  }

  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const result = document.getElementById("upload-result");
    const data = new FormData(form);
    for (const name of ["job", "batch"]) if (!data.get(name)) data.delete(name);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    result.replaceChildren(askq.el("p", { className: "muted", text: "Uploading and checking every line…" }));
    try {
      const report = await askq.api("/api/batches", { method: "POST", body: data });
      window.location.assign(`/batches/${askq.pathPart(report.batch)}`);
    } catch (error) {
      showProblems(result, error);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("upload").addEventListener("submit", submit);
    askq.every(LIST_EVERY_MS, refresh);
  });
})();
