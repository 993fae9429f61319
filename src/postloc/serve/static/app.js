// postloc page: plain JS, no build step. Talks only to this server (/v1/...).
// Data (POI names, tokens, messages) is only ever written as text: textContent, or an element built with it
// (Leaflet inserts a *string* tooltip as HTML). Nothing here writes markup.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("post-form"), drop = $("drop"), photoInput = $("photo"), preview = $("preview");
  let photo = null, config = { tile_url: null, max_body_bytes: 10485760 };

  // No tile layer unless the server is configured with one (no network needed); the base map is drawn from the run.
  const map = L.map("map", { zoomControl: true, attributionControl: true }).setView([0, 0], 1);
  const layer = L.layerGroup().addTo(map);
  fetch("/v1/config").then((r) => r.json()).then((c) => {
    config = c;
    showInputs(c);
    // Leaflet's attribution control writes its string as HTML: escape the configured text.
    if (c.tile_url) L.tileLayer(c.tile_url, { attribution: escapeHtml(c.tile_attribution || ""), maxZoom: 19 }).addTo(map);
  }).catch(() => {});

  // Which parts of a post the loaded model reads; the photo box only where an uploaded photo reaches the model.
  const INPUT_NAMES = { text: "caption", hashtags: "hashtags", image: "photo" };
  function showInputs(c) {
    const trained = c.inputs || [];
    const read = trained.filter((m) => m !== "image" || c.photo_used).map((m) => INPUT_NAMES[m] || m);
    let line = (c.model ? "This model (" + c.model + ") reads: " : "This model reads: ") +
      (read.length ? read.join(", ") : "nothing of the post (every post gets the same answer)");
    if (trained.includes("image") && !c.photo_used) line += ". It was trained with photos, but here " + (c.photo_note || "the photo is not used");
    $("model-inputs").textContent = line + ".";
    drop.hidden = !c.photo_used;
    drop.style.display = c.photo_used ? "" : "none";  // the stylesheet's display: flex would show a [hidden] box
    if (!c.photo_used) photo = null;
  }

  // The map as the page opens: a scale bar, where the training posts were made (a picture this server draws
  // from the run: the city's streets and shores, no tile server needed) and every POI with its name.
  fetch("/v1/pois").then((r) => (r.ok ? r.json() : null)).then((body) => {
    if (!body || !Array.isArray(body.pois)) return;
    baseMap(body.pois.filter((p) => typeof p.lat === "number" && typeof p.lon === "number"));
  }).catch(() => {});

  let pois = [], labelPane = null;
  function baseMap(known) {
    pois = known;
    L.control.scale({ metric: true, imperial: false, maxWidth: 160 }).addTo(map);
    map.createPane("density").style.zIndex = 350;  // under the markers (Leaflet's overlay pane: 400)
    map.createPane("basemap").style.zIndex = 340;  // the user's streets and shores (--basemap), under the density
    labelPane = map.createPane("labels");
    labelPane.style.zIndex = 450; labelPane.style.pointerEvents = "none";
    const dots = L.layerGroup().addTo(map);
    pois.forEach((p) => {
      const tip = el("span", "", p.name || p.poi);  // an element with textContent: Leaflet inserts strings as HTML
      L.circleMarker([p.lat, p.lon], { radius: 4, color: "#1d2330", weight: 1, fillColor: "#fff", fillOpacity: 0.9,
        className: "poi-dot" }).bindTooltip(tip, { direction: "top" }).addTo(dots);
    });
    if (pois.length) map.fitBounds(L.latLngBounds(pois.map((p) => [p.lat, p.lon])).pad(0.15), { maxZoom: 15 });
    map.on("zoomend viewreset resize", drawLabels);
    drawLabels();
    // Geometry only, in one fixed style: the server drops the file's properties, and nothing here reads them.
    fetch("/v1/basemap").then((r) => (r.ok ? r.json() : null)).then((g) => {
      if (!g || g.type !== "FeatureCollection") return;
      L.geoJSON(g, { pane: "basemap", interactive: false,
        style: () => ({ color: "#b5bcc4", weight: 1, opacity: 1, fillColor: "#e4e7ea", fillOpacity: 0.8 }) }).addTo(map);
    }).catch(() => {});
    fetch("/v1/density").then((r) => (r.ok ? r.json() : null)).then((d) => {
      if (!d || !d.available) return;
      L.imageOverlay(d.image, d.bounds, { pane: "density", opacity: 0.9, interactive: false,
        alt: "where the training posts were made" }).addTo(map);
      if (!pois.length) map.fitBounds(d.bounds);
      $("map-note").textContent = "Shaded: where the " + d.posts + " training posts were made (cells with posts of " +
        "one person only are left out). Dots: the places the model knows.";
    }).catch(() => {});
  }

  // Labels that do not overlap: each goes right of its dot, else left, above or below, at the first place where
  // its box overlaps no label already placed; a label with no free place is left out (its dot keeps a tooltip).
  function placeLabels(items, gap) {
    const placed = [];
    return items.map((it) => {
      const tries = [[gap, -it.h / 2], [-gap - it.w, -it.h / 2], [-it.w / 2, -gap - it.h], [-it.w / 2, gap]];
      for (const [dx, dy] of tries) {
        const box = { x: it.x + dx, y: it.y + dy, w: it.w, h: it.h };
        if (!placed.some((b) => overlaps(b, box))) { placed.push(box); return box; }
      }
      return null;
    });
  }
  function overlaps(a, b) { return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h; }
  function drawLabels() {
    if (!labelPane) return;
    const spans = pois.map((p) => el("span", "poi-name", p.name || p.poi));
    labelPane.replaceChildren(...spans);
    const items = pois.map((p, i) => {
      const at = map.latLngToLayerPoint([p.lat, p.lon]);
      return { x: at.x, y: at.y, w: spans[i].offsetWidth, h: spans[i].offsetHeight };
    });
    placeLabels(items, 6).forEach((box, i) => {
      if (!box) { spans[i].remove(); return; }
      spans[i].style.transform = "translate(" + box.x + "px, " + box.y + "px)";
    });
  }

  // How far the loaded run can be trusted (its quickstart verdict, or its own test score): plain text.
  fetch("/v1/about").then((r) => (r.ok ? r.json() : null)).then((a) => {
    if (!a || typeof a.text !== "string" || !a.text) return;
    const line = $("verdict"); line.textContent = a.text; line.hidden = false;
  }).catch(() => {});

  function setPhoto(file) {
    if (!file) return;
    if (file.size > config.max_body_bytes) { status("The photo is larger than the server accepts."); return; }
    photo = file;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("drop-text").hidden = true;
  }
  photoInput.addEventListener("change", () => setPhoto(photoInput.files[0]));
  ["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((e) => drop.addEventListener(e, (ev) => { ev.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (ev) => setPhoto(ev.dataTransfer.files[0]));

  function status(text) { $("status").textContent = text || ""; }
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
  }
  function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = new FormData();
    body.append("text", $("text").value);
    body.append("hashtags", $("hashtags").value);
    body.append("top_k", $("top_k").value || "5");
    body.append("explain", "true");
    if (photo) body.append("photo", photo, "photo");
    $("submit").disabled = true; status("");
    try {
      const response = await fetch("/v1/predict", { method: "POST", body });
      const data = await response.json();
      if (!response.ok) { status((data.error && data.error.message) || ("Error " + response.status)); return; }
      show(data);
    } catch (e) {
      status("The server could not be reached.");
    } finally {
      $("submit").disabled = false;
    }
  });

  function show(data) {
    const preds = data.predictions;
    // Map: one circle per POI, radius and opacity by probability, fitted to the POIs' bounds.
    layer.clearLayers();
    const points = [];
    preds.forEach((p, i) => {
      if (p.lat === null || p.lon === null) return;
      const ll = [p.lat, p.lon]; points.push(ll);
      // A POI known by name only (no training posts; server started with --pois) gets a dashed outline.
      const byName = p.source === "names";
      const m = L.circleMarker(ll, { radius: 6 + 24 * Math.sqrt(p.probability), color: i === 0 ? "#d9480f" : "#2a6cf0",
        fillOpacity: 0.25 + 0.6 * p.probability, weight: 2, dashArray: byName ? "4 4" : null,
        className: byName ? "poi-marker name-only" : "poi-marker" });
      const label = el("span", "", `${i + 1}. ${p.name || p.poi} (${(100 * p.probability).toFixed(1)}%)${byName ? " (name only)" : ""}`);
      m.bindTooltip(label, { permanent: i === 0, direction: "top" });
      m.addTo(layer);
    });
    if (points.length === 1) map.setView(points[0], 14);
    else if (points.length) map.fitBounds(L.latLngBounds(points).pad(0.3), { maxZoom: 16 });

    const bars = $("bars"); bars.replaceChildren();
    preds.forEach((p) => {
      const li = el("li", "prob");
      const label = el("span", "name", p.name || p.poi);
      if (p.source === "names") label.append(" ", el("span", "badge", "name only"));
      else if (p.source === "model+names") label.append(" ", el("span", "badge soft", "+ name"));
      li.append(label);
      const bar = el("div", "bar"); const fill = el("span"); fill.style.width = (100 * p.probability).toFixed(1) + "%";
      bar.append(fill); li.append(bar, el("span", "num", (100 * p.probability).toFixed(1) + "%"));
      bars.append(li);
    });
    // Calibrated: the run's temperature is applied, so 70% means right about 70% of the time.
    $("confidence").textContent = data.poi === null && data.reason
      ? "No answer: " + data.reason
      : "Calibrated confidence: " + (100 * data.confidence).toFixed(1) + "%";
    // Which answers came from names alone: a POI without training posts, matched by the name the post writes.
    $("source-note").textContent = data.source === "names"
      ? "This answer comes from the place's name only: the model has no training posts there."
      : data.source === "model+names" ? "The model's answer, strengthened by the place's name in the post." : "";
    $("image-note").textContent = data.image.received ? "Photo: " + data.image.message : "";

    const tbody = document.querySelector("#explain tbody"); tbody.replaceChildren();
    const ex = data.explanation;
    if (ex) {
      const scale = Math.max(0.01, ...ex.contributions.map((c) => Math.abs(c.contribution)));
      ex.contributions.forEach((c) => {
        const tr = el("tr");
        tr.append(el("td", "", c.kind === "hashtag" ? "#" + c.token : c.kind === "image" ? "(the photo)" : c.token), el("td", "", c.kind));
        const td = el("td"); const box = el("div", "contrib"); const track = el("div", "track");
        const fill = el("span", c.contribution >= 0 ? "pos" : "neg");
        const w = 50 * Math.abs(c.contribution) / scale;
        fill.style.width = w + "%"; fill.style.left = c.contribution >= 0 ? "50%" : (50 - w) + "%";
        track.append(fill); box.append(track, el("span", "num", (c.contribution >= 0 ? "+" : "") + (100 * c.contribution).toFixed(1) + " pts"));
        td.append(box); tr.append(td); tbody.append(tr);
      });
      $("ignored").textContent = ex.ignored_hashtags.length ? "Unknown to the model (no effect): " + ex.ignored_hashtags.map((t) => "#" + t).join(" ") : "";
    }
  }
})();
