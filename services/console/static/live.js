// CASPIAN console: live figures on the fleet and savings pages (hub clock, totals, zone intensity now).
(() => {
  "use strict";
  const source = new EventSource("/events?jobs=0");
  window.addEventListener("pagehide", () => source.close());
  const clock = document.getElementById("clock");
  source.addEventListener("clock", (e) => {
    const c = JSON.parse(e.data);
    if (c.now != null && clock) clock.textContent = `hub time ${new Date(c.now * 1000).toISOString().slice(0, 19).replace("T", " ")}Z · live`;
  });
  source.addEventListener("intensity", (e) => {
    const points = JSON.parse(e.data);
    for (const zone in points) {
      for (const cell of document.querySelectorAll(`.intensity-now[data-zone="${CSS.escape(zone)}"]`)) {
        cell.textContent = Math.round(points[zone].v).toLocaleString("en");
      }
      for (const cell of document.querySelectorAll(`.carbon[data-zone="${CSS.escape(zone)}"]`)) {
        const state = points[zone].stale ? "stale" : "live";
        cell.textContent = state;
        cell.className = `carbon ${state}`;
      }
    }
  });
})();
