// securecmr console: plain DOM, no framework, no build step, nothing from outside this server.
// The token lives in a closure variable only (never a URL, cookie or storage); every call sends it
// as a bearer header, so there is no ambient credential for a cross-site request to ride on.
"use strict";
(function () {
  let token = null;
  let me = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function fmtTime(t) {
    if (t === null || t === undefined) return "";
    return new Date(Number(t) * 1000).toISOString().replace("T", " ").slice(0, 19);
  }

  async function api(method, path, body, isForm) {
    const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
    if (body !== undefined) {
      if (isForm) { init.body = body; } else { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    }
    const resp = await fetch(path, init);
    if (!resp.ok) {
      let detail = "HTTP " + resp.status;
      try { const p = await resp.json(); detail = (p.error ? p.error + ": " : "") + (p.detail || detail); } catch (e) { /* not JSON */ }
      if (resp.status === 401) { signOut(detail); }
      const err = new Error(detail); err.status = resp.status; throw err;
    }
    if (resp.status === 204) return null;
    const ctype = resp.headers.get("content-type") || "";
    return ctype.includes("json") && !ctype.includes("ndjson") ? resp.json() : resp.blob();
  }

  function fillRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
      tr.appendChild(td);
    }
    return tr;
  }

  // ------------------------------------------------------------------ sign in / out
  function signOut(reason) {
    token = null; me = null;
    $("token").value = "";
    $("tabs").hidden = true;
    $("signout").hidden = true;
    $("whoami").textContent = "";
    document.querySelectorAll(".page").forEach((p) => { p.hidden = true; });
    $("signin-page").hidden = false;
    $("signin-error").textContent = reason || "";
  }

  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    try {
      me = await api("GET", "/v1/me");
    } catch (e) {
      signOut(e.message); return;
    }
    $("signin-page").hidden = true;
    $("signin-error").textContent = "";
    $("whoami").textContent = me.user + " (" + me.role + (me.tenant ? ", tenant " + me.tenant : "") + ")";
    $("signout").hidden = false;
    $("tabs").hidden = false;
    let first = null;
    document.querySelectorAll("#tabs button").forEach((b) => {
      const ok = (b.dataset.perm && me.permissions.includes(b.dataset.perm)) || (b.dataset.role && me.role === b.dataset.role);
      b.hidden = !ok;
      if (ok && !first) first = b.dataset.page;
    });
    if (first) show(first);
  });

  $("signout").addEventListener("click", () => signOut(""));

  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => show(b.dataset.page)));

  function show(page) {
    document.querySelectorAll(".page").forEach((p) => { p.hidden = p.id !== page + "-page"; });
    document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.page === page));
    const loaders = { search: loadSearch, audit: loadAudit, monitor: loadMonitor, users: loadUsers, collections: loadCollections };
    loaders[page]();
  }

  // ------------------------------------------------------------------ search
  async function loadSearch() {
    const sel = $("search-collection");
    try {
      const out = await api("GET", "/v1/collections");
      sel.replaceChildren(...out.collections.map((n) => { const o = el("option", n); o.value = n; return o; }));
      $("search-status").textContent = out.collections.length ? "" : "No collections visible to you.";
    } catch (e) { $("search-status").textContent = e.message; }
  }

  $("search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("search-collection").value;
    const k = parseInt($("search-k").value, 10) || 10;
    const text = $("search-text").value.trim();
    const file = $("search-image").files[0];
    const path = "/v1/collections/" + encodeURIComponent(name) + "/search";
    $("search-status").textContent = "Searching…";
    try {
      let out;
      if (file) {
        const fd = new FormData(); fd.append("image", file); fd.append("k", String(k));
        out = await api("POST", path, fd, true);
      } else {
        out = await api("POST", path, { text, k });
      }
      fillRows($("search-results").tBodies[0], out.hits.map((h, i) => row([i + 1, h.id, h.score, h.modality, h.ref, (h.labels || []).join(", ")])));
      $("search-status").textContent = out.hits.length + " result(s)";
    } catch (e) {
      fillRows($("search-results").tBodies[0], []);
      $("search-status").textContent = e.message;
    }
  });

  // ------------------------------------------------------------------ audit
  function auditQuery() {
    const q = new URLSearchParams();
    for (const key of ["user", "action", "collection"]) { const v = $("audit-" + key).value.trim(); if (v) q.set(key, v); }
    for (const key of ["since", "until"]) {
      const v = $("audit-" + key).value;
      if (v) q.set(key, String(Date.parse(v + "Z") / 1000));
    }
    q.set("limit", "500");
    return q.toString();
  }

  async function loadAudit() {
    try {
      const out = await api("GET", "/v1/audit/records?" + auditQuery());
      fillRows($("audit-records").tBodies[0], out.records.map((r) => row([
        r.seq, fmtTime(r.time), r.principal, r.action, r.collection, r.outcome, r.reason, (r.results || []).length,
      ])));
    } catch (e) { $("audit-verify-result").textContent = e.message; }
  }

  $("audit-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadAudit(); });

  $("audit-verify").addEventListener("click", async () => {
    const out$ = $("audit-verify-result");
    out$.className = ""; out$.textContent = "Verifying…";
    try {
      const r = await api("GET", "/v1/audit/verify");
      if (r.ok) {
        out$.className = "ok";
        out$.textContent = "Chain verified: " + r.records + " records, " + r.checkpoints + " checkpoints, head " + String(r.head).slice(0, 16) + "…";
      } else {
        out$.className = "bad";
        out$.textContent = "Verification FAILED: " + r.detail;
      }
    } catch (e) { out$.className = "bad"; out$.textContent = e.message; }
  });

  $("audit-download").addEventListener("click", async () => {
    try {
      const blob = await api("GET", "/v1/audit/export");
      const url = URL.createObjectURL(blob);
      const a = el("a"); a.href = url; a.download = "audit.jsonl";
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { $("audit-verify-result").textContent = e.message; }
  });

  // ------------------------------------------------------------------ monitor
  async function loadMonitor() {
    $("monitor-status").textContent = "";
    try {
      const rep = await api("GET", "/v1/monitor/report");
      fillRows($("monitor-report").tBodies[0], rep.principals.map((p) => {
        let action = "";
        if (p.blocked && me.role === "admin") {
          const box = el("span");
          const reason = el("input"); reason.type = "text"; reason.placeholder = "reason (audited)"; reason.className = "unblock-reason";
          const btn = el("button", "Unblock"); btn.type = "button"; btn.className = "unblock";
          btn.addEventListener("click", async () => {
            try {
              await api("POST", "/v1/monitor/unblock", { user: p.principal, reason: reason.value });
              await loadMonitor();
              $("monitor-status").textContent = "Unblocked " + p.principal + ".";
            } catch (e) { $("monitor-status").textContent = e.message; }
          });
          box.append(reason, btn); action = box;
        }
        return row([p.principal, p.score, p.flagged_windows, p.queries, (p.reasons || []).join("; "), p.blocked ? "yes" : "no", action]);
      }));
    } catch (e) {
      fillRows($("monitor-report").tBodies[0], []);
      $("monitor-status").textContent = e.message;
    }
    try {
      const al = await api("GET", "/v1/monitor/alerts");
      fillRows($("monitor-alerts").tBodies[0], al.alerts.map((a) => row([fmtTime(a.time), a.principal, a.outcome, a.reason, JSON.stringify(a.detail)])));
    } catch (e) { fillRows($("monitor-alerts").tBodies[0], []); }
  }

  // ------------------------------------------------------------------ users
  async function loadUsers() {
    try {
      const out = await api("GET", "/v1/users");
      fillRows($("users-table").tBodies[0], out.users.map((u) => {
        const box = el("span");
        if (!u.revoked && u.name !== me.user) {
          const revoke = el("button", "Revoke"); revoke.type = "button"; revoke.className = "revoke";
          revoke.addEventListener("click", async () => {
            try { await api("POST", "/v1/users/" + encodeURIComponent(u.name) + "/revoke"); loadUsers(); }
            catch (e) { $("users-status").textContent = e.message; }
          });
          const reissue = el("button", "New token"); reissue.type = "button"; reissue.className = "reissue";
          reissue.addEventListener("click", async () => {
            try { const t = await api("POST", "/v1/users/" + encodeURIComponent(u.name) + "/token"); showToken(t.name, t.token); loadUsers(); }
            catch (e) { $("users-status").textContent = e.message; }
          });
          box.append(revoke, reissue);
        }
        return row([u.name, u.role, u.tenant, u.tokens, u.revoked ? "revoked" : "active", box]);
      }));
    } catch (e) { $("users-status").textContent = e.message; }
  }

  function showToken(name, value) {
    $("new-token-user").textContent = name;
    $("new-token-value").value = value;
    $("new-token").hidden = false;
  }

  $("new-token-hide").addEventListener("click", () => { $("new-token-value").value = ""; $("new-token").hidden = true; });

  $("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { name: $("user-name").value.trim(), role: $("user-role").value };
    const tenant = $("user-tenant").value.trim();
    if (tenant) body.tenant = tenant;
    try {
      const out = await api("POST", "/v1/users", body);
      showToken(out.name, out.token);
      $("users-status").textContent = "Created " + out.name + ".";
      $("user-name").value = "";
      loadUsers();
    } catch (e) { $("users-status").textContent = e.message; }
  });

  // ------------------------------------------------------------------ collections
  async function loadCollections() {
    try {
      const out = await api("GET", "/v1/collections");
      const rows = [];
      for (const name of out.collections) {
        const s = await api("GET", "/v1/collections/" + encodeURIComponent(name));
        rows.push(row([s.name, s.items, s.bits, s.protection, s.ttl_hours, s.policy]));
      }
      fillRows($("collections-table").tBodies[0], rows);
      $("collections-status").textContent = rows.length + " collection(s)";
    } catch (e) { $("collections-status").textContent = e.message; }
  }

  signOut("");
})();
