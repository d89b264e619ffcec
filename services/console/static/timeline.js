// CASPIAN console: the plan timeline. One lane per cluster over a shading of its zone's carbon intensity,
// jobs as bars at their planned and actual times, a "now" line; live from /events (server-sent events).
(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const svg = document.getElementById("timeline");
  const tip = document.getElementById("tip");
  const status = document.getElementById("live-status");
  const HOUR = 3600, LANE = 64, AXIS = 22, SUBROWS = 8;
  const LABEL = window.innerWidth < 700 ? 76 : 96;
  const jobs = new Map();
  // [x, y, width, height, job id, lane] of every bar in the last draw.
  let hits = [];
  const zones = cfg.zones || {};
  // A narrow screen starts with a shorter window, so bars stay wide enough to see and tap.
  const before = window.innerWidth < 700 ? 3 : 12, after = window.innerWidth < 700 ? 9 : 24;
  const state = { now: cfg.now, start: cfg.now - before * HOUR, end: cfg.now + after * HOUR, synced: false };
  const filters = { tenant: "", phase: "", label: "" };
  const stats = { draws: 0, lastDrawMs: 0, lastBatch: 0, lastBatchMs: 0, firstFullDraw: null, batches: [], drawMs: [] };
  window.__timeline = { jobs, stats, state };
  // Where each job is drawn: id -> lane name (what the end-to-end tests check).
  window.__timeline.lanes = () => {
    const names = lanes(), out = {};
    for (const h of hits) out[h[4]] = names[h[5]];
    return out;
  };
  // The centre of a job's bar in CSS pixels from the drawing's top left corner, or null.
  window.__timeline.centreOf = (id) => {
    const h = hits.find((b) => b[4] === id);
    if (!h) return null;
    const box = svg.getBoundingClientRect(), k = box.width / svg.viewBox.baseVal.width;
    return [(h[0] + h[2] / 2) * k, (h[1] + h[3] / 2) * k];
  };
  function jobAt(e) {
    const box = svg.getBoundingClientRect();
    const vb = svg.viewBox.baseVal, k = vb && vb.width ? vb.width / box.width : 1;
    const px = (e.clientX - box.left) * k, py = (e.clientY - box.top) * k;
    for (let i = hits.length - 1; i >= 0; i--) {
      const [hx, hy, hw, hh, id] = hits[i];
      if (px >= hx - 1 && px <= hx + hw + 1 && py >= hy && py <= hy + hh) return jobs.get(id);
    }
    return null;
  }

  const lanes = () => {
    const names = cfg.clusters.map((c) => c.name);
    for (const job of jobs.values()) if (job.cluster && !names.includes(job.cluster)) names.push(job.cluster);
    names.push("");
    return names;
  };
  const zoneOf = {};
  for (const c of cfg.clusters) zoneOf[c.name] = c.zone;

  function visible(job) {
    if (filters.tenant && job.tenant !== filters.tenant) return false;
    if (filters.phase && job.phase !== filters.phase) return false;
    if (filters.label) {
      const [k, v] = filters.label.split("=");
      if (!(k in job.labels) || (v !== undefined && job.labels[k] !== v)) return false;
    }
    return true;
  }

  // Where a job's bar goes: the run as it happened when it started, else the plan.
  function span(job) {
    if (job.started != null) return [job.started, job.finished != null ? job.finished : Math.max(state.now, job.started), "actual"];
    if (job.planned != null) return [job.planned, job.planned + (job.runtime || 0), "planned"];
    const from = job.earliest != null ? job.earliest : job.created;
    return from != null ? [from, from + (job.runtime || 0), "unplaced"] : null;
  }

  function shade(v, lo, hi) {
    const f = hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0.5;
    // Clean hours light green, dirty hours amber to brown, one scale across all zones.
    const stops = [[214, 240, 214], [246, 231, 176], [226, 150, 104]];
    const [a, b, w] = f < 0.5 ? [stops[0], stops[1], f * 2] : [stops[1], stops[2], (f - 0.5) * 2];
    return `rgb(${a.map((c, i) => Math.round(c + (b[i] - c) * w)).join(",")})`;
  }

  function draw() {
    const t0 = performance.now();
    const width = Math.max(320, svg.clientWidth || 900);
    const names = lanes();
    const height = AXIS + names.length * LANE;
    const plotW = width - LABEL - 8;
    const scale = plotW / (state.end - state.start);
    const x = (t) => LABEL + (t - state.start) * scale;
    const out = [];
    // Intensity shading per lane, the colour scale shared by every zone.
    let lo = Infinity, hi = -Infinity;
    for (const z in zones) for (const p of zones[z]) { lo = Math.min(lo, p.v); hi = Math.max(hi, p.v); }
    names.forEach((name, i) => {
      const y = AXIS + i * LANE;
      out.push(`<rect class="lane" x="${LABEL}" y="${y}" width="${plotW}" height="${LANE - 2}"/>`);
      const points = zones[zoneOf[name]] || [];
      for (const p of points) {
        const a = Math.max(p.t, state.start), b = Math.min(p.t + (p.d || 900), state.end);
        if (b <= a) continue;
        out.push(`<rect class="shade" x="${x(a).toFixed(1)}" y="${y}" width="${((b - a) * scale + 0.5).toFixed(1)}" height="${LANE - 2}" fill="${shade(p.v, lo, hi)}"/>`);
      }
      const label = name ? `${name}` : "not placed";
      const zone = name ? (zoneOf[name] || "") : "";
      out.push(`<text class="lane-label" x="4" y="${y + 24}">${esc(label)}</text><text class="lane-zone" x="4" y="${y + 40}">${esc(zone)}</text>`);
    });
    // Time axis: a tick every 1, 3, 6, 12 or 24 hours depending on zoom.
    const spanH = (state.end - state.start) / HOUR;
    const step = [1, 3, 6, 12, 24, 48].find((h) => spanH / h <= Math.max(3, plotW / 90)) * HOUR || 96 * HOUR;
    for (let t = Math.ceil(state.start / step) * step; t <= state.end; t += step) {
      const d = new Date(t * 1000);
      const text = step >= 24 * HOUR ? d.toISOString().slice(5, 10) : d.toISOString().slice(11, 16);
      out.push(`<line class="tick" x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${AXIS - 4}" y2="${height}"/><text class="axis" x="${x(t).toFixed(1)}" y="${AXIS - 8}">${text}</text>`);
    }
    // Job bars, packed into sub-rows per lane; a thin line shows the wait from submission to start. All bars of
    // one phase and kind are one <path>, so 5,000 jobs cost a handful of elements; `hits` finds a job under
    // the pointer.
    const index = new Map(names.map((n, i) => [n, i]));
    const rows = names.map(() => new Array(SUBROWS).fill(-Infinity));
    const placed = [];
    for (const job of jobs.values()) {
      if (!visible(job)) continue;
      const s = span(job);
      if (!s || s[1] < state.start || s[0] > state.end) continue;
      placed.push([s[0], s[1], s[2], job]);
    }
    placed.sort((a, b) => a[0] - b[0]);
    const subH = (LANE - 8) / SUBROWS, barH = Math.max(2, subH - 1);
    const paths = new Map(), waits = [];
    hits = [];
    for (const [a, b, kind, job] of placed) {
      const lane = index.has(job.cluster) ? index.get(job.cluster) : names.length - 1;
      const free = rows[lane];
      let r = 0;
      while (r < SUBROWS && free[r] > a) r++;
      if (r === SUBROWS) r = hits.length % SUBROWS;
      free[r] = b;
      const y = AXIS + lane * LANE + 3 + r * subH;
      const xa = Math.max(LABEL, x(a)), w = Math.max(2, Math.min(width - 8, x(b)) - xa);
      const since = job.created;
      if (since != null && since < a && kind !== "unplaced") {
        const wa = Math.max(LABEL, x(since));
        if (xa - wa > 1) waits.push(`M${wa.toFixed(1)} ${(y + subH / 2).toFixed(1)}H${xa.toFixed(1)}`);
      }
      const key = `${job.phase} ${kind}`;
      if (!paths.has(key)) paths.set(key, []);
      paths.get(key).push(`M${xa.toFixed(1)} ${y.toFixed(1)}h${w.toFixed(1)}v${barH.toFixed(1)}h${(-w).toFixed(1)}z`);
      hits.push([xa, y, w, barH, job.id, lane]);
    }
    if (waits.length) out.push(`<path class="wait" d="${waits.join("")}"/>`);
    for (const [key, parts] of paths) out.push(`<path class="bar ${key}" d="${parts.join("")}"/>`);
    const shown = hits.length;
    if (state.now >= state.start && state.now <= state.end) {
      const xn = x(state.now).toFixed(1);
      out.push(`<line class="now" x1="${xn}" x2="${xn}" y1="${AXIS - 6}" y2="${height}"/><text class="now-label" x="${xn}" y="${height - 2}">now</text>`);
    }
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("height", height);
    svg.innerHTML = out.join("");
    document.getElementById("shown").textContent = `${shown} of ${jobs.size} AppWrappers drawn`;
    stats.draws++;
    stats.lastDrawMs = performance.now() - t0;
    stats.drawMs.push(stats.lastDrawMs);
    stats.shown = shown;
    if (state.synced && stats.firstFullDraw == null) {
      stats.firstFullDraw = performance.now();
      performance.mark("timeline-synced-drawn");
    }
  }

  let queued = false;
  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; draw(); });
  }

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }

  function applyJobs(batch) {
    const t0 = performance.now();
    for (const job of batch.updated) jobs.set(job.id, job);
    for (const id of batch.removed) jobs.delete(id);
    refreshTenants();
    // While the initial replay streams in, draw once at its end rather than after every batch.
    if (state.synced) schedule();
    stats.lastBatch = batch.updated.length + batch.removed.length;
    stats.lastBatchMs = performance.now() - t0;
    stats.batches.push([stats.lastBatch, stats.lastBatchMs]);
  }
  window.__timeline.applyJobs = applyJobs;

  const tenantSelect = document.getElementById("filter-tenant");
  const known = new Set();
  function refreshTenants() {
    for (const job of jobs.values()) {
      if (job.tenant && !known.has(job.tenant)) {
        known.add(job.tenant);
        const o = document.createElement("option");
        o.value = o.textContent = job.tenant;
        tenantSelect.appendChild(o);
      }
    }
  }

  // Live data.
  const source = new EventSource("/events");
  // Close the stream when the page goes, so that it never holds one of the browser's few connections.
  window.addEventListener("pagehide", () => source.close());
  source.addEventListener("jobs", (e) => {
    if (stats.firstBatchAt == null) stats.firstBatchAt = performance.now();
    applyJobs(JSON.parse(e.data));
  });
  source.addEventListener("synced", () => {
    stats.syncedAt = performance.now(); state.synced = true; status.textContent = "live"; status.className = "live"; schedule(); });
  source.addEventListener("reset", () => { jobs.clear(); state.synced = false; schedule(); });
  source.addEventListener("clock", (e) => {
    const c = JSON.parse(e.data);
    if (c.now != null) {
      const moved = c.now - state.now;
      state.now = c.now;
      if (follow.checked) { state.start += moved; state.end += moved; }
      schedule();
    }
  });
  source.addEventListener("intensity", (e) => {
    const points = JSON.parse(e.data);
    for (const zone in points) {
      const list = zones[zone] || (zones[zone] = []);
      const p = points[zone];
      if (!list.length || list[list.length - 1].t < p.t) list.push(p);
    }
    schedule();
  });
  source.addEventListener("failure", (e) => { const f = JSON.parse(e.data); status.textContent = `${f.code}: ${f.message}`; status.className = "error"; });
  source.onerror = () => { if (status.className !== "error") { status.textContent = "reconnecting"; status.className = "stale"; } };

  // Filters and zoom.
  const follow = document.getElementById("follow");
  tenantSelect.addEventListener("change", () => { filters.tenant = tenantSelect.value; schedule(); });
  document.getElementById("filter-phase").addEventListener("change", (e) => { filters.phase = e.target.value; schedule(); });
  document.getElementById("filter-label").addEventListener("input", (e) => { filters.label = e.target.value.trim(); schedule(); });
  function zoom(factor, at) {
    const centre = at != null ? at : (state.start + state.end) / 2;
    const span = Math.min(14 * 24 * HOUR, Math.max(HOUR, (state.end - state.start) * factor));
    const share = (centre - state.start) / (state.end - state.start);
    state.start = centre - span * share;
    state.end = state.start + span;
    schedule();
  }
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2));
  document.getElementById("zoom-now").addEventListener("click", () => {
    state.start = state.now - before * HOUR; state.end = state.now + after * HOUR; schedule();
  });
  svg.addEventListener("wheel", (e) => {
    if (!e.ctrlKey && !e.shiftKey) return;
    e.preventDefault();
    const box = svg.getBoundingClientRect();
    const at = state.start + ((e.clientX - box.left - LABEL) / (box.width - LABEL - 8)) * (state.end - state.start);
    zoom(e.deltaY > 0 ? 1.25 : 0.8, at);
  }, { passive: false });
  svg.addEventListener("click", (e) => {
    const job = jobAt(e);
    if (job) window.location.href = `/jobs/${encodeURIComponent(job.id)}`;
  });
  svg.addEventListener("mousemove", (e) => {
    const job = jobAt(e);
    svg.style.cursor = job ? "pointer" : "";
    if (!job) { tip.hidden = true; return; }
    const when = (t) => (t == null ? "–" : new Date(t * 1000).toISOString().slice(0, 16).replace("T", " "));
    tip.textContent = `${job.id} · ${job.tenant || "–"} · ${job.phase} · ${job.cluster || "not placed"} · planned ${when(job.planned)} · started ${when(job.started)}${job.reason ? " · " + job.reason : ""}`;
    tip.hidden = false;
    tip.style.left = `${e.pageX + 12}px`;
    tip.style.top = `${e.pageY + 12}px`;
  });
  window.addEventListener("resize", schedule);
  draw();
})();
