// The /doctor page: posts the form to POST /doctor and renders the report. Every value
// from the report goes in through textContent, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const cell = (row, text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  };
  function render(report) {
    const checks = $("checks"), body = checks.tBodies[0];
    body.replaceChildren();
    for (const c of report.checks) {
      const tr = document.createElement("tr");
      tr.dataset.check = c.name;
      tr.dataset.status = c.status;
      cell(tr, c.name);
      cell(tr, c.status + (c.reason ? " · " + c.reason : ""), c.status);
      const td = cell(tr, c.detail);
      if (c.hint && c.status !== "pass") {
        const hint = document.createElement("div");
        hint.className = "hint";
        hint.textContent = "Fix: " + c.hint;
        td.appendChild(hint);
      }
      body.appendChild(tr);
    }
    checks.hidden = false;
    const decisions = $("decisions"), dbody = decisions.tBodies[0];
    dbody.replaceChildren();
    for (const d of report.decisions) {
      const tr = document.createElement("tr");
      tr.dataset.path = d.path;
      cell(tr, d.path);
      cell(tr, d.action);
      // Under a refused token nothing is allowed: these are what it would get if accepted.
      const verdict = (d.hypothetical ? "if accepted: " : "") + (d.allowed ? "allowed · " : "denied · ");
      cell(tr, verdict + d.reason +
        (d.allowed ? "" : " (needs " + d.requiredRoles.join(", ") + "; viewer " + (d.viewerRole || "none") + ")"),
        d.hypothetical ? "skip" : d.allowed ? "pass" : "fail");
      tr.dataset.hypothetical = d.hypothetical ? "true" : "false";
      dbody.appendChild(tr);
    }
    decisions.hidden = report.decisions.length === 0;
    const a = report.answer;
    $("verdict").textContent = (report.ok ? "OK" : "Not OK") + " — the server answers " +
      (a.code ? a.code + " " + a.reason : "with the token accepted");
    $("verdict").className = report.ok ? "pass" : "fail";
  }
  $("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("verdict").textContent = "…";
    const payload = { token: $("token").value.trim() };
    if ($("organization").value.trim()) payload.organization = $("organization").value.trim();
    if ($("query").value.trim()) payload.query = $("query").value;
    try {
      const r = await fetch("/doctor", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(payload),
      });
      const body = await r.json();
      if (!r.ok) {
        $("verdict").textContent = (body.errors && body.errors[0] && body.errors[0].message) || ("HTTP " + r.status);
        $("verdict").className = "fail";
        return;
      }
      render(body);
    } catch (err) {
      $("verdict").textContent = "The server did not answer: " + err;
      $("verdict").className = "fail";
    }
  });
})();
