// Dockhand's web UI: boot, hash routes (#/, #/new, #/tasks/<id>), sign-in,
// the task list and the new-task form. The live task view is in task.js.

import { TaskView } from "./task.js";
import {
  age, api, el, fromTemplate, renderOffline, setOffline,
  setUnauthorizedHandler, shortRepo,
} from "./util.js";

/** How often the task list asks for fresh statuses while it is on screen. */
const LIST_POLL_MS = 3000;

const state = { me: null, info: { github: false }, view: null };
const main = document.getElementById("main");

function setTitle(text) {
  document.title = text ? `${text} · Dockhand` : "Dockhand";
}

function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

function setWho() {
  const who = document.getElementById("who");
  who.replaceChildren();
  if (state.me) who.append(el("span.wide", { text: "Signed in as " }), el("b", { text: state.me.login }));
  document.getElementById("signout").hidden = !state.me;
}

/** Swaps the screen: the old view stops its timers and sockets. */
function show(view) {
  if (state.view && state.view.destroy) state.view.destroy();
  state.view = view;
  main.replaceChildren(view.node);
  main.focus({ preventScroll: true });
  scrollTo(0, 0);
}

function route() {
  if (!state.me) return show(signIn());
  const hash = location.hash || "#/";
  const task = hash.match(/^#\/tasks\/([A-Za-z0-9_-]+)$/);
  if (task) return show(new TaskView(task[1], { setTitle }));
  if (hash === "#/new") return show(newTask());
  return show(taskList());
}

function signIn() {
  setTitle("Sign in");
  const node = fromTemplate("t-signin");
  const form = node.querySelector("[data-token-form]");
  const error = form.querySelector("[data-error]");
  if (state.info.github) {
    node.querySelector("[data-github]").hidden = false;
    node.querySelector("[data-token-details]").append(form);
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = form.token.value.trim();
    if (!token) return showError(error, "Enter a token.");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("/auth/token", { method: "POST", body: { token }, quiet401: true });
      state.me = await api("/api/v1/me");
      setWho();
      route();
    } catch (err) {
      showError(error, err.status === 401 ? "That token is not valid, or it was revoked." : err.message);
      button.disabled = false;
      form.token.focus();
    }
  });
  return { node };
}

function taskItem(task) {
  const status = el("span.badge", {});
  const repo = el("span.repo.mono", {});
  const when = el("time.age", {});
  const prompt = el("span.prompt", {});
  const link = el("a", { href: `#/tasks/${task.id}` }, prompt, el("span.row", {}, status, repo, when));
  const li = el("li.task-item", { "data-id": task.id }, link);
  li.update = (t) => {
    if (prompt.textContent !== t.prompt) prompt.textContent = t.prompt;
    if (status.textContent !== t.status) {
      status.textContent = t.status;
      status.className = `badge s-${t.status}`;
    }
    const short = shortRepo(t.repo);
    if (repo.textContent !== short) {
      repo.textContent = short;
      repo.title = t.repo;
    }
    const ago = age(t.created_at);
    if (when.textContent !== ago) when.textContent = ago;
    when.dateTime = t.created_at;
    when.title = new Date(t.created_at).toLocaleString();
  };
  li.update(task);
  return li;
}

function taskList() {
  setTitle("Tasks");
  const node = fromTemplate("t-list");
  const list = node.querySelector("[data-tasks]");
  const empty = node.querySelector("[data-empty]");
  const more = node.querySelector("[data-more]");
  const error = node.querySelector("[data-error]");
  const items = new Map();
  let timer = 0;
  let dead = false;
  node.querySelector("[data-new]").addEventListener("click", () => {
    location.hash = "#/new";
  });

  // Keyed update: only rows whose data changed are touched, so a poll is cheap.
  function render(tasks) {
    const seen = new Set();
    let prev = null;
    for (const t of tasks) {
      seen.add(t.id);
      let li = items.get(t.id);
      if (li) li.update(t);
      else items.set(t.id, (li = taskItem(t)));
      const want = prev ? prev.nextSibling : list.firstChild;
      if (want !== li) list.insertBefore(li, want);
      prev = li;
    }
    for (const [id, li] of items) {
      if (!seen.has(id)) {
        li.remove();
        items.delete(id);
      }
    }
    empty.hidden = tasks.length > 0;
  }

  async function poll() {
    clearTimeout(timer);
    if (dead) return;
    if (!document.hidden) {
      try {
        const page = await api("/api/v1/tasks?limit=50");
        if (dead) return;
        render(page.tasks);
        more.hidden = !page.next_cursor;
        showError(error, "");
        setOffline("list", false);
      } catch (err) {
        if (dead) return;
        if (err.status === 0) setOffline("list", true);
        else showError(error, err.message);
      }
    }
    timer = setTimeout(poll, LIST_POLL_MS);
  }
  const onVisible = () => {
    if (!document.hidden) poll();
  };
  document.addEventListener("visibilitychange", onVisible);
  poll();
  return {
    node,
    destroy() {
      dead = true;
      clearTimeout(timer);
      setOffline("list", false);
      document.removeEventListener("visibilitychange", onVisible);
    },
  };
}

function newTask() {
  setTitle("New task");
  const node = fromTemplate("t-new");
  const form = node.querySelector("[data-new-form]");
  const error = form.querySelector("[data-error]");
  const datalist = node.querySelector("#repo-list");
  const suggest = new Set();
  const addSuggestions = (names) => {
    for (const n of names) {
      if (n && !suggest.has(n)) {
        suggest.add(n);
        datalist.append(el("option", { value: n }));
      }
    }
  };
  // Suggestions: repositories of recent tasks, then the user's GitHub repositories.
  api("/api/v1/tasks?limit=50")
    .then((page) => addSuggestions(page.tasks.map((t) => t.repo)))
    .catch(() => {});
  if (state.me && state.me.github) {
    node.querySelector("[data-repo-hint]").textContent =
      "owner/name of one of your GitHub repositories, or a git URL.";
    api("/api/v1/repos")
      .then((r) => addSuggestions((r.repos || []).map((x) => x.full_name)))
      .catch(() => {});
  }
  form.prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const repo = form.repo.value.trim();
    const prompt = form.prompt.value;
    const base = form.base.value.trim();
    if (!repo || !prompt.trim()) {
      showError(error, !repo ? "Name a repository." : "Write a prompt.");
      (!repo ? form.repo : form.prompt).focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const body = { repo, prompt };
      if (base) body.base_branch = base;
      const task = await api("/api/v1/tasks", { method: "POST", body });
      location.hash = `#/tasks/${task.id}`;
    } catch (err) {
      const fields = Object.entries(err.fields || {}).map(([k, v]) => `${k} ${v}`);
      showError(error, fields.length ? fields.join("; ") : err.message);
      button.disabled = false;
    }
  });
  return { node };
}

async function signOut() {
  try {
    await api("/auth/logout", { method: "POST", quiet401: true });
  } catch (err) {
    // Signed out either way: the cookie is cleared or already useless.
  }
  state.me = null;
  setWho();
  history.replaceState(null, "", "#/");
  route();
}

/** The signed-in user, or null; waits out a server that cannot be reached. */
async function whoAmI() {
  for (let wait = 1000; ; wait = Math.min(wait * 2, 15000)) {
    try {
      const me = await api("/api/v1/me", { quiet401: true });
      setOffline("boot", false);
      return me;
    } catch (err) {
      if (err.status !== 0) {
        setOffline("boot", false);
        return null;
      }
      setOffline("boot", true);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

async function boot() {
  setUnauthorizedHandler(() => {
    if (!state.me) return;
    state.me = null;
    setWho();
    route();
  });
  document.getElementById("signout").addEventListener("click", signOut);
  addEventListener("hashchange", route);
  renderOffline();
  const [info, me] = await Promise.all([
    api("/auth/info").catch(() => ({ github: false })),
    whoAmI(),
  ]);
  state.info = info;
  state.me = me;
  setWho();
  route();
}

boot();
