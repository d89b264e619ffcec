"""The plan timeline's page: the controls, and what the script needs to start (clusters, zones' intensity,
the hub's clock). The bars themselves arrive over /events and are drawn in the browser (static/timeline.js)."""

from __future__ import annotations

import json

from services.console.views import PHASES


def render_timeline(config: dict) -> str:
    phases = "".join(f'<option value="{p}">{p}</option>' for p in PHASES)
    legend = "".join(f'<span><span class="swatch {p}"></span>{p}</span>' for p in PHASES)
    # json.dumps does not escape "</"; replace it so the data cannot close the script element.
    data = json.dumps(config, separators=(",", ":")).replace("</", "<\\/")
    return f"""<h1>Plan timeline</h1>
<div class="controls">
<label>tenant <select id="filter-tenant"><option value="">all</option></select></label>
<label>phase <select id="filter-phase"><option value="">all</option>{phases}</select></label>
<label>label <input id="filter-label" placeholder="key=value" size="12"></label>
<button id="zoom-in" title="zoom in">+</button><button id="zoom-out" title="zoom out">−</button>
<button id="zoom-now">now</button>
<label><input type="checkbox" id="follow" checked> follow now</label>
<span id="live-status">connecting</span> <span class="muted" id="shown"></span>
</div>
<div class="timeline-box"><svg id="timeline" xmlns="http://www.w3.org/2000/svg" role="img"
 aria-label="jobs per cluster over time"></svg></div>
<div class="legend">{legend}<span class="muted">solid: ran · faded: planned · dashed line: waiting since
submission · lane shading: the zone's gCO2/kWh (darker is dirtier) · ctrl+wheel zooms</span></div>
<div id="tip" hidden></div>
<script type="application/json" id="config">{data}</script>"""
