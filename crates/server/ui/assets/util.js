// Small helpers shared by the screens: DOM building, the JSON API, formatting,
// and the offline banner.

/** Builds an element: el("a.badge", {href: "#/"}, "text", child). */
export function el(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c !== undefined && c !== null && c !== false) node.append(c);
  }
  return node;
}

/** A copy of a `<template>`'s first element. */
export function fromTemplate(id) {
  const t = document.getElementById(id);
  return t.content.firstElementChild.cloneNode(true);
}

/** An API failure, with the server's message and per-field problems. */
export class ApiError extends Error {
  constructor(status, message, fields) {
    super(message);
    this.status = status;
    this.fields = fields || {};
  }
}

let onUnauthorized = () => {};

/** What to do when a request finds the session gone. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Calls the JSON API with the session cookie; throws ApiError. */
export async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", credentials: "same-origin", headers: {} };
  if (opts.body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "the server cannot be reached; check the connection");
  }
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    body = null;
  }
  if (!resp.ok) {
    const err = (body && body.error) || {};
    const message = err.message || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401 && !opts.quiet401) onUnauthorized();
    throw new ApiError(resp.status, message, err.fields);
  }
  return body;
}

/** "850 ms", "1.2 s", "3 min 4 s". */
export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago". */
export function age(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 30) return `${Math.round(s / 86400)} d ago`;
  return new Date(t).toLocaleDateString();
}

/** 950, "12.3k", "4.1M". */
export function count(n) {
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1000).toFixed(n < 1e4 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

/** All tokens of a usage record. */
export function tokens(u) {
  if (!u) return 0;
  return (
    (u.input_tokens || 0) +
    (u.output_tokens || 0) +
    (u.cache_creation_input_tokens || 0) +
    (u.cache_read_input_tokens || 0)
  );
}

/** A short form of a repository: `owner/name`, a URL's host and path, a path's tail. */
export function shortRepo(repo) {
  const r = repo.replace(/\.git$/, "").replace(/\/+$/, "");
  const url = r.match(/^[a-z+]+:\/\/(?:[^@/]*@)?(.+)$/i);
  if (url) return url[1];
  if (r.startsWith("/")) {
    const parts = r.split("/").filter(Boolean);
    return parts.length > 2 ? `…/${parts.slice(-2).join("/")}` : r;
  }
  return r;
}

/** Statuses after which a task no longer runs (a follow-up can wake it). */
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

const offlineSources = new Set();

/** Marks a part of the page (the list poll, a task socket) as cut off, or back. */
export function setOffline(source, off) {
  if (off) offlineSources.add(source);
  else offlineSources.delete(source);
  renderOffline();
}

export function renderOffline() {
  const banner = document.getElementById("offline");
  if (!banner) return;
  const off = !navigator.onLine || offlineSources.size > 0;
  banner.hidden = !off;
  banner.textContent = navigator.onLine
    ? "Connection lost. Reconnecting…"
    : "You are offline. Dockhand will reconnect when the network is back.";
}

addEventListener("online", renderOffline);
addEventListener("offline", renderOffline);
