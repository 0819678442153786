// ISPS field work offline: the hand-over screen of a distribution site and the verification visits.
// The list comes from /field/offline/data (the service worker keeps it for when the network is gone);
// each entry is kept in IndexedDB with an instanceID made here ("uuid:" + a random UUID), shown as
// waiting, and sent to /field/offline/submit when the network returns (the "online" event, on load,
// every 30 seconds, or "Send now"). The server is idempotent by instanceID: a resend after a lost reply
// is answered as done. Everything the page shows from data is written as text, never as HTML.
"use strict";

(() => {
  const root = document.getElementById("fo-page");
  if (!root) return;
  const L = JSON.parse(document.getElementById("fo-labels").textContent);
  const PAGE = root.dataset.page;                 // "receipt" | "visits"
  const JOB = PAGE === "receipt" ? "receipt" : "visit";
  const DATA_URL = root.dataset.dataUrl;
  const USER = root.dataset.user;
  const SITE = root.dataset.site || "";
  const CACHE = "isps-field-offline-v1";          // the service worker's cache (sw.js)
  const DB_NAME = "isps-field-offline";
  const STORE = "entries";
  const SYNCED_KEY = `isps-field-offline:synced:${USER}:${DATA_URL}`;
  const $ = (id) => document.getElementById(id);
  const MAX_ROWS = 300;     // lines drawn at once

  let rows = [];            // the list: a site's lines or my visits
  let entries = [];         // this user's entries of this page's job (and site)
  let current = null;       // the line or visit the dialog is recording
  let sending = false;
  let waitingAll = 0;       // entries waiting on this laptop for this user, of any page

  const label = (key, values) => {
    let text = L[key] || key;
    for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, String(value));
    return text;
  };

  // ------------------------------------------------------------------ IndexedDB: the entries

  function openDb() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        const store = request.result.createObjectStore(STORE, {keyPath: "instance_id"});
        store.createIndex("user", "user");
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  const dbReady = openDb();

  async function allEntries() {
    // every entry of this user on this laptop, oldest first
    const db = await dbReady;
    const all = await new Promise((resolve, reject) => {
      const request = db.transaction(STORE).objectStore(STORE).index("user").getAll(USER);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return all.sort((a, b) => (a.seq || 0) - (b.seq || 0));
  }

  async function loadEntries() {
    // the ones this page shows: its job's (and, for a site, that site's)
    const all = await allEntries();
    waitingAll = all.filter((e) => e.state === "waiting").length;
    entries = all.filter((e) => e.job === JOB && (JOB !== "receipt" || e.site === SITE));
  }

  async function saveEntry(entry) {
    const db = await dbReady;
    await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, "readwrite");
      tx.objectStore(STORE).put(entry);
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
  }

  // ------------------------------------------------------------------ time, as ISPS keeps it

  // the moment, with the laptop's offset: the server turns it into its own local time, so a laptop
  // left on another time zone still dates its entries right
  function nowWithOffset() {
    const d = new Date(), pad = (n) => String(Math.abs(n)).padStart(2, "0");
    const off = -d.getTimezoneOffset();
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:` +
      `${pad(d.getMinutes())}:${pad(d.getSeconds())}${off < 0 ? "-" : "+"}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`;
  }
  const shortTime = (iso) => (iso || "").replace("T", " ").slice(0, 16);

  // ------------------------------------------------------------------ the list

  async function loadList() {
    let response = null;
    try {
      response = await fetch(DATA_URL, {credentials: "same-origin", cache: "no-store"});
    } catch (err) {
      response = null;
    }
    if (response === null || !response.ok) {
      // no network and no service worker yet (or signed out): what this page kept last time
      const cache = await caches.open(CACHE);
      const hit = await cache.match(DATA_URL);
      if (response && response.status === 401) showAlert(label("sign_in_again"));
      if (!hit) {
        if (!rows.length) showAlert(label("list_unavailable"));
        return;
      }
      response = hit;
    } else if (!response.headers.get("X-ISPS-From-Cache")) {
      const cache = await caches.open(CACHE);
      await cache.put(DATA_URL, response.clone());
      localStorage.setItem(SYNCED_KEY, nowWithOffset());
    }
    const body = await response.json();
    rows = PAGE === "receipt" ? body.entries : body.visits;
    render();
  }

  async function keepPage() {
    // the page itself, for a reload without a network (the worker also keeps it from then on)
    if (!navigator.onLine) return;
    try {
      const cache = await caches.open(CACHE);
      await cache.add(location.href);
    } catch (err) { /* offline again, or signed out: the copy kept before stays */ }
  }

  function entryFor(key) {
    // the newest entry for a line or visit that is not refused: one at a time
    for (let i = entries.length - 1; i >= 0; i -= 1) {
      const e = entries[i];
      if (e.key === key && e.state !== "refused") return e;
    }
    return null;
  }

  function stateOf(row) {
    const key = String(row.id);
    const mine = entryFor(key);
    if (PAGE === "receipt" && row.handed_over) return {state: "handed_over", text: label("handed_over")};
    if (mine && mine.state === "waiting") return {state: "waiting", text: label("waiting")};
    if (mine && mine.state === "sent") {
      return {state: PAGE === "receipt" ? "handed_over" : "done", text: label(PAGE === "receipt" ? "handed_over" : "sent")};
    }
    const refused = entries.filter((e) => e.key === key && e.state === "refused").pop();
    if (refused) return {state: "refused", text: label("refused"), reason: refused.message || ""};
    return {state: "open", text: label(PAGE === "receipt" ? "not_handed_over" : "waiting_visit")};
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function itemText(row) {
    const item = String(row.item || "").replace(/_/g, " ");
    return row.quantity > 1 ? `${item} × ${row.quantity}` : item;
  }

  function matches(row, query) {
    if (!query) return true;
    const q = query.toLowerCase();
    if (PAGE !== "receipt") return true;
    return String(row.token ?? "") === q || String(row.token ?? "").startsWith(q) || (row.name || "").toLowerCase().includes(q);
  }

  function renderList() {
    const body = $("fo-list").tBodies[0];
    const query = ($("fo-q") && $("fo-q").value.trim()) || "";
    const found = rows.filter((row) => matches(row, query));
    const shown = found.slice(0, MAX_ROWS); // a cash site's list may be thousands long: search narrows it
    const fresh = document.createDocumentFragment();
    for (const row of shown) {
      const tr = document.createElement("tr");
      const st = stateOf(row);
      tr.dataset.id = row.id;
      tr.dataset.state = st.state;
      if (PAGE === "receipt") {
        cell(tr, row.token, "num c-token");
        cell(tr, row.name);
        cell(tr, row.cnic, "mono nowrap").dir = "ltr";
        cell(tr, itemText(row));
        cell(tr, row.amount ? `Rs ${row.amount}` : "", "num c-amount").dir = "ltr";
      } else {
        cell(tr, row.visit_on).dir = "ltr";
        cell(tr, row.receipt).dir = "ltr";
        cell(tr, row.applicant);
        cell(tr, row.address);
      }
      const stateCell = cell(tr, "");
      const badge = document.createElement("span");
      badge.className = "fo-state";
      badge.dataset.state = st.state;
      badge.textContent = st.text;
      stateCell.appendChild(badge);
      if (st.reason) {
        const reason = document.createElement("span");
        reason.className = "fo-reason";
        reason.textContent = st.reason;
        reason.dir = "auto"; // the server's reason is English in an Urdu page
        stateCell.appendChild(reason);
      }
      const act = cell(tr, "");
      if (st.state === "open" || st.state === "refused") {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "fo-record";
        button.dataset.id = row.id;
        button.textContent = label("recorded_action");
        button.setAttribute("aria-label", `${label("recorded_action")}: ${PAGE === "receipt" ? `${row.token ?? ""} ${row.name}` : row.applicant}`);
        act.appendChild(button);
      }
      fresh.appendChild(tr);
    }
    body.replaceChildren(fresh);
    // an in-kind list has no tokens or amounts: no empty columns
    $("fo-list").classList.toggle("no-token", PAGE === "receipt" && !rows.some((r) => r.token != null));
    $("fo-list").classList.toggle("no-amount", PAGE === "receipt" && !rows.some((r) => r.amount));
    $("fo-list-empty").hidden = shown.length > 0;
    $("fo-list-count").textContent = `(${shown.length}${shown.length !== rows.length ? ` / ${rows.length}` : ""})`;
    $("fo-list-count").dir = "ltr";
  }

  function describe(entry) {
    return entry.label || entry.key;
  }

  function renderEntries() {
    const body = $("fo-entries").tBodies[0];
    const fresh = document.createDocumentFragment();
    for (const e of [...entries].reverse()) {
      const tr = document.createElement("tr");
      tr.dataset.instance = e.instance_id;
      tr.dataset.state = e.state;
      cell(tr, shortTime(e.recorded_at)).dir = "ltr";
      cell(tr, describe(e));
      const stateCell = cell(tr, "");
      const badge = document.createElement("span");
      badge.className = "fo-state";
      badge.dataset.state = e.state;
      badge.textContent = label(e.state);
      stateCell.appendChild(badge);
      // the server's reason for a refusal; for what was accepted, a word in the page's language
      cell(tr, e.state === "refused" ? e.message || "" : e.state === "sent" ? label(e.duplicate ? "already_here" : "accepted") : "",
           "msg").dir = "auto";
      fresh.appendChild(tr);
    }
    body.replaceChildren(fresh);
    $("fo-entries-none").hidden = entries.length > 0;
  }

  function renderStatus() {
    const net = $("fo-network");
    net.dataset.state = navigator.onLine ? "online" : "offline";
    net.textContent = label(navigator.onLine ? "online" : "offline");
    const waiting = waitingAll;
    const sent = entries.filter((e) => e.state === "sent").length;
    const count = $("fo-waiting");
    count.dataset.waiting = String(waiting);
    count.dataset.sent = String(sent);
    count.textContent = waiting ? label("n_waiting", {n: waiting}) : label("sent_count", {n: sent});
    const synced = localStorage.getItem(SYNCED_KEY);
    $("fo-synced").textContent = synced ? label("last_sync", {at: shortTime(synced)}) : label("never_synced");
    $("fo-send").disabled = waiting === 0;
  }

  function render() {
    renderList();
    renderEntries();
    renderStatus();
  }

  function showAlert(message) {
    const box = $("fo-alert");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // ------------------------------------------------------------------ recording

  function openDialog(row) {
    current = row;
    const form = $("fo-form");
    form.reset();
    $("fo-form-error").hidden = true;
    if (PAGE === "receipt") {
      $("fo-who").textContent = [row.token, row.name, row.cnic, itemText(row)].filter((x) => x != null && x !== "").join(" · ");
      const select = $("fo-received-by");
      const options = [new Option(`${label("named_recipient")}: ${row.name}`, "")];
      for (const m of row.members || []) {
        if (m.id !== row.recipient_id) options.push(new Option(m.name, m.id));
      }
      select.replaceChildren(...options);
      $("fo-cnic-field").hidden = true;
    } else {
      $("fo-who").textContent = `${row.receipt} · ${row.applicant}`;
    }
    $("fo-dialog").showModal();
  }

  function formError(message) {
    const box = $("fo-form-error");
    box.textContent = message;
    box.hidden = false;
  }

  async function record(event) {
    event.preventDefault();
    const row = current;
    if (!row) return;
    const form = $("fo-form");
    let values;
    let text;
    if (PAGE === "receipt") {
      const evidence = form.elements.evidence.value;
      const seen = form.elements.cnic_seen.value.replace(/[^0-9]/g, "");
      if (evidence === "cnic" && seen.length !== 13) { formError(label("cnic_needed")); return; }
      values = {site_id: SITE, entry_id: String(row.id), household_id: row.household_id, evidence,
                cnic_seen: evidence === "cnic" ? seen : "", received_by: form.elements.received_by.value};
      text = [row.token, row.name, itemText(row)].filter((x) => x != null && x !== "").join(" · ");
    } else {
      const outcome = form.elements.outcome.value;
      const note = form.elements.note.value.trim();
      if (!outcome) { formError(label("choose_outcome")); return; }
      if (outcome !== "confirmed" && !note) { formError(label("note_needed")); return; }
      values = {application_id: String(row.id), outcome, note};
      text = `${row.receipt} · ${row.applicant} · ${label(`outcome.${outcome}`)}`;
    }
    const entry = {instance_id: `uuid:${crypto.randomUUID()}`, user: USER, job: JOB, site: SITE, key: String(row.id),
                   values, label: text, collected_at: nowWithOffset(), recorded_at: nowWithOffset(), seq: Date.now(), state: "waiting",
                   message: ""};
    await saveEntry(entry);
    await loadEntries();
    $("fo-dialog").close();
    current = null;
    render();
    const q = $("fo-q");
    if (q) { q.value = ""; q.focus(); renderList(); }
    if (navigator.onLine) sendWaiting();
  }

  // ------------------------------------------------------------------ sending

  async function sendWaiting() {
    // every entry waiting on this laptop for this user, whichever page recorded it, oldest first
    if (sending) return;
    sending = true;
    const waiting = (await allEntries()).filter((e) => e.state === "waiting");
    if (!waiting.length) { sending = false; renderStatus(); return; }
    let changed = false;
    try {
      let who;
      try {
        const answer = await fetch("/field/offline/session", {credentials: "same-origin", cache: "no-store"});
        if (answer.status === 401) { showAlert(label("sign_in_again")); return; }
        if (!answer.ok) return;
        who = await answer.json();
      } catch (err) {
        return; // no network yet: they keep waiting
      }
      if (who.username !== USER) { showAlert(label("sign_in_again")); return; }
      showAlert("");
      for (const entry of waiting) {
        let response;
        try {
          response = await fetch("/field/offline/submit", {
            method: "POST", credentials: "same-origin", cache: "no-store",
            headers: {"Content-Type": "application/json", "X-CSRF-Token": who.csrf},
            body: JSON.stringify({job: entry.job, instance_id: entry.instance_id, collected_at: entry.collected_at,
                                  values: entry.values}),
          });
        } catch (err) {
          break; // the network went again: the rest keep waiting
        }
        if (response.status === 401) { showAlert(label("sign_in_again")); break; }
        if (response.status !== 200 && response.status !== 422) break; // try again later
        const out = await response.json();
        entry.state = response.status === 422 || out.status === "refused" ? "refused" : "sent";
        entry.message = out.message || "";
        entry.duplicate = Boolean(out.duplicate);
        entry.sent_at = nowWithOffset();
        await saveEntry(entry);
        changed = true;
        await loadEntries();
        renderEntries();
        renderStatus();
      }
    } finally {
      sending = false;
      if (changed) await loadList();
      render();
    }
  }

  // ------------------------------------------------------------------ wiring

  $("fo-form").addEventListener("submit", record);
  $("fo-cancel").addEventListener("click", () => { $("fo-dialog").close(); current = null; });
  $("fo-list").addEventListener("click", (event) => {
    const button = event.target.closest("button.fo-record");
    if (!button) return;
    const row = rows.find((r) => String(r.id) === button.dataset.id);
    if (row) openDialog(row);
  });
  if ($("fo-q")) {
    $("fo-q").addEventListener("input", renderList);
    $("fo-q").addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      const first = $("fo-list").querySelector("button.fo-record");
      if (first) first.click();
    });
  }
  const evidence = $("fo-form").elements.evidence;
  if (evidence) {
    for (const radio of evidence) {
      radio.addEventListener("change", () => { $("fo-cnic-field").hidden = $("fo-form").elements.evidence.value !== "cnic"; });
    }
  }
  $("fo-send").addEventListener("click", sendWaiting);
  // signing out from this page drops the pages and lists kept on the laptop (they carry names); the
  // static files stay, and so do the entries still waiting (IndexedDB), for whoever signs in as their user
  const signOut = document.querySelector("form[action='/logout']");
  if (signOut) {
    signOut.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const cache = await caches.open(CACHE);
        for (const request of await cache.keys()) {
          if (new URL(request.url).pathname.startsWith("/field/offline/")) await cache.delete(request);
        }
      } finally {
        signOut.submit();
      }
    }, {once: true});
  }
  window.addEventListener("online", () => { renderStatus(); sendWaiting(); });
  window.addEventListener("offline", renderStatus);
  setInterval(() => { if (navigator.onLine) sendWaiting(); }, 30000);

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/field/offline/sw.js", {scope: "/field/offline/"}).catch(() => {});
  }

  (async () => {
    await loadEntries();
    render();
    await loadList();
    await keepPage();
    root.dataset.ready = "true";
    if (navigator.onLine) await sendWaiting();
  })();
})();
