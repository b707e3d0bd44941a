// edgefleet console: uploads with per-file progress, replace/delete, live purge acknowledgements and
// refreshing fleet charts. Plain JavaScript, no libraries; the token never reaches this code (the session
// is an HttpOnly cookie) and every state-changing request carries the page's CSRF token.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      return body.error || response.statusText;
    } catch (e) {
      return response.statusText || "HTTP " + response.status;
    }
  }

  async function refresh(targetId, src) {
    const target = document.getElementById(targetId);
    if (!target || !src) return;
    const response = await fetch(src, { credentials: "same-origin" });
    if (response.status === 401) { window.location.assign("/login"); return; }
    if (!response.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();  // server-rendered, escaped HTML from the same origin
    const fresh = holder.firstElementChild;
    if (fresh && fresh.id === targetId) target.replaceWith(fresh); else target.innerHTML = holder.innerHTML;
  }

  // ---- uploads -------------------------------------------------------------------------------------
  const typeByExtension = {
    jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", avif: "image/avif",
    gif: "image/gif", css: "text/css", js: "text/javascript", woff: "font/woff", woff2: "font/woff2",
    json: "application/json",
  };

  function uploadOne(file, key, tags, replace, list, max) {
    return new Promise((resolve) => {
      const item = el("li", { "data-key": key, class: "upload-item" });
      const label = el("span", { class: "name" }, key);
      const bar = el("progress", { max: "100", value: "0", "aria-label": "Upload of " + key });
      const status = el("span", { class: "status", role: "status" }, "waiting");
      item.append(label, bar, status);
      list.append(item);
      const type = file.type || typeByExtension[(file.name.split(".").pop() || "").toLowerCase()] || "";
      if (file.size > max) {
        item.classList.add("failed");
        status.textContent = "too large: " + (file.size / 1e6).toFixed(1) + " MB is over the " +
          (max / 1e6).toFixed(1) + " MB limit";
        resolve(false);
        return;
      }
      const xhr = new XMLHttpRequest();
      const params = new URLSearchParams();
      if (tags) params.set("tags", tags);
      if (replace) params.set("replace", "1");
      xhr.open("PUT", "/api/assets/" + key.split("/").map(encodeURIComponent).join("/") + "?" + params.toString());
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Content-Type", type || "application/octet-stream");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          bar.value = Math.round((event.loaded / event.total) * 100);
          status.textContent = bar.value + "%";
        }
      });
      xhr.addEventListener("load", () => {
        let message = "";
        try { message = JSON.parse(xhr.responseText).error || ""; } catch (e) { message = ""; }
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 100;
          item.classList.add("done");
          status.textContent = xhr.status === 201 ? "uploaded" : "replaced";
          resolve(true);
        } else {
          item.classList.add("failed");
          status.textContent = message || "failed (HTTP " + xhr.status + ")";
          resolve(false);
        }
      });
      xhr.addEventListener("error", () => {
        item.classList.add("failed");
        status.textContent = "the connection failed; try again";
        resolve(false);
      });
      status.textContent = "0%";
      xhr.send(file);
    });
  }

  function setUpUploads() {
    const zone = document.getElementById("dropzone");
    if (!zone) return;
    const input = document.getElementById("upload-files");
    const list = document.getElementById("upload-list");
    const max = Number(zone.dataset.max || "0");
    async function start(files) {
      let prefix = document.getElementById("upload-prefix").value.trim();
      if (prefix && !prefix.endsWith("/")) prefix += "/";
      const tags = document.getElementById("upload-tags").value.trim();
      const replace = document.getElementById("upload-replace").checked;
      const jobs = Array.from(files).map((file) => uploadOne(file, prefix + file.name, tags, replace, list, max));
      await Promise.all(jobs);
      const source = document.getElementById("asset-list-source");
      if (source) await refresh("asset-list", source.dataset.src);
    }
    input.addEventListener("change", () => { if (input.files.length) start(input.files).then(() => { input.value = ""; }); });
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) start(event.dataTransfer.files);
    });
  }

  function setUpObject() {
    const holder = document.querySelector(".object[data-key]");
    if (!holder) return;
    const key = holder.dataset.key;
    const path = "/api/assets/" + key.split("/").map(encodeURIComponent).join("/");
    const status = document.getElementById("object-status");
    document.getElementById("delete-button").addEventListener("click", async () => {
      const response = await fetch(path, { method: "DELETE", headers: { "X-CSRF-Token": csrf } });
      status.textContent = response.ok ? "Deleted " + key + "." : "Not deleted: " + (await errorOf(response));
    });
    document.getElementById("replace-button").addEventListener("click", async () => {
      const file = document.getElementById("replace-file").files[0];
      if (!file) { status.textContent = "Choose a file first."; return; }
      const type = file.type || typeByExtension[(file.name.split(".").pop() || "").toLowerCase()] || "";
      const response = await fetch(path + "?replace=1", {
        method: "PUT", body: file, headers: { "X-CSRF-Token": csrf, "Content-Type": type || "application/octet-stream" },
      });
      status.textContent = response.ok ? "Replaced " + key + "." : "Not replaced: " + (await errorOf(response));
    });
  }

  // ---- purges --------------------------------------------------------------------------------------
  function renderPurge(target, state) {
    const table = el("table", { class: "acks" });
    table.innerHTML = "<thead><tr><th scope=\"col\">Edge</th><th scope=\"col\">State</th></tr></thead>";
    const body = el("tbody");
    for (const [edge, ms] of Object.entries(state.acks)) {
      const row = el("tr", { class: "acked", "data-edge": edge });
      row.append(el("th", { scope: "row" }, edge), el("td", {}, "acknowledged after " + ms.toFixed(0) + " ms"));
      body.append(row);
    }
    for (const edge of state.pending) {
      const row = el("tr", { class: "pending", "data-edge": edge });
      row.append(el("th", { scope: "row" }, edge), el("td", {}, "waiting"));
      body.append(row);
    }
    table.append(body);
    const summary = el("p", { class: state.complete ? "ok" : "note", id: "purge-summary" },
      state.complete
        ? "Every edge acknowledged " + state.description + " in " + (state.duration_ms || 0).toFixed(0) + " ms."
        : Object.keys(state.acks).length + (state.expected !== null ? " of " + state.expected : "") +
          " edges acknowledged " + state.description + " so far.");
    target.replaceChildren(summary, table);
  }

  function setUpPurges() {
    const form = document.getElementById("purge-form");
    if (!form) return;
    const live = document.getElementById("purge-live");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const kind = form.querySelector('input[name="kind"]:checked').value;
      const payload = {
        kind: kind,
        targets: document.getElementById("purge-targets").value.split("\n"),
        soft: document.getElementById("purge-soft").checked,
      };
      const response = await fetch("/api/purges", {
        method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(payload),
      });
      if (!response.ok) {
        live.replaceChildren(el("p", { class: "error", role: "alert" }, "Not purged: " + (await errorOf(response))));
        return;
      }
      const issued = await response.json();
      live.replaceChildren(el("p", { class: "note" }, "Published " + issued.description + "; waiting for the edges."));
      const events = new EventSource("/api/purges/" + encodeURIComponent(issued.entry_id) + "/events");
      events.addEventListener("status", (message) => renderPurge(live, JSON.parse(message.data)));
      events.addEventListener("done", () => {
        events.close();
        const recent = document.getElementById("recent-purges");
        if (recent) refreshInto(recent, recent.dataset.src);
      });
      events.addEventListener("error", () => events.close());
    });
  }

  async function refreshInto(target, src) {
    const response = await fetch(src, { credentials: "same-origin" });
    if (response.ok) target.innerHTML = await response.text();
  }

  // ---- fleet ---------------------------------------------------------------------------------------
  function setUpFleet() {
    const panel = document.getElementById("fleet-panel");
    if (!panel) return;
    const src = panel.dataset.src;
    window.setInterval(() => { if (!document.hidden) refresh("fleet-panel", src); }, 5000);
  }

  // A thumbnail the fleet could not make (an image the origin cannot decode) becomes a plain note.
  document.addEventListener("error", (event) => {
    const image = event.target;
    if (image instanceof HTMLImageElement && image.classList.contains("thumb")) {
      image.replaceWith(el("span", { class: "thumb none" }, "no preview"));
    }
  }, true);

  document.addEventListener("DOMContentLoaded", () => {
    setUpUploads();
    setUpObject();
    setUpPurges();
    setUpFleet();
  });
})();
