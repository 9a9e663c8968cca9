"use strict";
// Polls /admin/dashboard.json with the session cookie and fills the page. Values are written
// with textContent only: paths and addresses come from clients and must never become markup.
const POLL_MS = 2000;

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function percent(value) {
  return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %";
}

function number(value) {
  return value === null || value === undefined ? "–" : String(value);
}

function fillTable(id, rows, cells) {
  const body = document.querySelector("#" + id + " tbody");
  const fresh = document.createElement("tbody");
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const cell of cells(row)) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.appendChild(td);
    }
    fresh.appendChild(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = body.parentElement.querySelectorAll("th").length;
    td.className = "muted";
    td.textContent = "none";
    tr.appendChild(td);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

function render(data) {
  const requests = data.requests;
  text("rps", number(requests.per_second));
  text("requests-total", number(requests.total));
  text("error-rate", percent(requests.error_rate));
  text("client-error-rate", percent(requests.client_error_rate));
  text("rejections-total", String(data.policies.reduce((sum, p) => sum + p.rejections, 0)));
  fillTable("policies", data.policies, (p) => [
    p.policy, String(p.rejections), number(p.per_second), percent(p.rate),
  ]);
  fillTable("sources", data.top_blocked_sources, (s) => [
    s.ip, String(s.rejections), s.last_policy, s.last_seen,
  ]);
  fillTable("certificates", data.certificates, (c) => [
    c.listener, c.expires_at, String(c.days_left),
  ]);
  fillTable("events", data.recent_events, (e) => [
    e.time, e.kind, e.policy, e.code, String(e.status), e.mode, e.client_ip, e.route || "", e.path,
  ]);
  text("updated", "updated " + data.generated_at);
}

function problem(message) {
  const node = document.getElementById("problem");
  node.textContent = message;
  node.hidden = message === "";
}

async function poll() {
  try {
    const response = await fetch("/admin/dashboard.json", {
      credentials: "same-origin",
      cache: "no-store",
      headers: { accept: "application/json" },
    });
    if (response.status === 401) {
      problem("The session expired: reload the page to sign in again.");
      return; // stop polling
    }
    if (!response.ok) {
      problem("The gateway answered " + response.status + "; retrying.");
    } else {
      render(await response.json());
      problem("");
    }
  } catch (error) {
    problem("The admin listener is unreachable; retrying.");
  }
  window.setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", poll);
