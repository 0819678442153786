// ISPS field work offline: the service worker of /field/offline/ (served at /field/offline/sw.js).
// It keeps the pages (receipt, visits), their lists (/field/offline/data) and the static files they
// use in one cache, and answers from it when the network is not there. Network first: with a network
// the page and its list are always the server's latest; the cache is only the fallback.
// Entries are not its business: the page keeps them in IndexedDB and sends them itself.
"use strict";

const CACHE = "isps-field-offline-v1";
const PREFIX = "isps-field-offline-";
const SHELL = [
  "/static/isps.css",
  "/static/htmx.min.js",
  "/static/nav.js",
  "/static/field_offline/offline.js",
  "/static/field_offline/offline.css",
  "/static/fonts/noto-nastaliq-urdu-arabic-400-normal.woff2",
  "/static/fonts/noto-nastaliq-urdu-arabic-700-normal.woff2",
];
const KEPT = ["/field/offline/receipt", "/field/offline/visits", "/field/offline/data"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith(PREFIX) && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function fromCache(hit) {
  // a copy that says it came from the cache, so the page can tell the list may be old
  const headers = new Headers(hit.headers);
  headers.set("X-ISPS-From-Cache", "1");
  return new Response(hit.body, {status: hit.status, statusText: hit.statusText, headers});
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic" && !response.redirected) {
      await cache.put(request, response.clone());
    }
    return response;
  } catch (err) {
    const hit = await cache.match(request);
    if (hit) return fromCache(hit);
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/static/") || KEPT.includes(url.pathname)) {
    event.respondWith(networkFirst(request));
  }
});
