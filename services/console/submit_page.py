"""Preview and submit from pasted or uploaded YAML: the same documents `caspianctl submit` takes.

Preview sends each AppWrapper to PreviewSchedule; submit sends them with request ids derived from the form's
nonce, so a form posted twice (a double click, a reload) submits each job once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from caspian.v1 import hub_pb2
from services.common.timeconv import duration_seconds
from services.console.layout import duration, grams, problem, table, when
from services.console.pasted import PastedError
from services.console.views import seconds

EXAMPLE = """name: nightly-report
tenant: analytics
image: python:3.11-slim
command: ["python", "-c", "print('report')"]
cpu: 500m
memory: 512Mi
runtime: 45m
deadline: 12h
labels: {team: analytics}
"""


@dataclass
class SubmitForm:
    text: str = ""
    nonce: str = ""
    error: PastedError | None = None
    rpc_error: str = ""
    previews: list[tuple[str, hub_pb2.PreviewScheduleResponse]] = field(default_factory=list)
    submitted: list[tuple[str, bool, str]] = field(default_factory=list)


def _numbered(text: str, bad_line: int) -> str:
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        mark = ' class="bad"' if number == bad_line else ""
        lines.append(f'<li{mark} data-line="{number}"><code>{escape(line) or "&nbsp;"}</code></li>')
    return f'<ol class="source" id="source">{"".join(lines)}</ol>'


def _preview_rows(previews) -> str:
    rows = []
    for name, p in previews:
        if not p.placeable:
            rows.append((escape(name), "no", "–", "–", "–", "–", "–", escape(p.reason) or "–"))
            continue
        share = f" ({100 * p.saving_gco2 / p.start_now_gco2:.1f} %)" if p.start_now_gco2 > 0 else ""
        rows.append(
            (
                escape(name),
                "yes",
                escape(p.cluster),
                when(seconds(p, "planned_start")),
                duration(duration_seconds(p.delay)),
                grams(p.planned_gco2),
                grams(p.start_now_gco2),
                grams(p.saving_gco2) + share,
            )
        )
    return table(
        (
            "AppWrapper",
            "placeable",
            "cluster",
            "planned start",
            "delay",
            "planned",
            "start now",
            "saving / reason",
        ),
        rows,
        table_id="preview",
    )


def render_submit(form: SubmitForm, *, csrf: str, can_submit: bool) -> str:
    text = form.text or EXAMPLE
    parts = ["<h1>Preview and submit</h1>"]
    if not can_submit:
        parts.append(
            '<p class="notice" id="submit-off">Submitting is off until you <a href="/login">sign in</a> with '
            "a hub token; preview works without one when the hub allows it.</p>"
        )
    if form.error is not None:
        where = f" (line {form.error.line})" if form.error.line else ""
        parts.append(f'<p class="error" role="alert" id="spec-error">{escape(form.error.message)}{where}</p>')
        parts.append(_numbered(form.text, form.error.line))
    if form.rpc_error:
        parts.append(problem(form.rpc_error))
    if form.submitted:
        rows = [
            (
                f'<a href="/jobs/{escape(i)}">{escape(i)}</a>',
                "created" if created else "already submitted",
                escape(phase),
            )
            for i, created, phase in form.submitted
        ]
        parts.append("<h2>Submitted</h2>" + table(("id", "result", "phase"), rows, table_id="submitted"))
    if form.previews:
        parts.append("<h2>Preview</h2>" + _preview_rows(form.previews))
        parts.append(
            '<p class="muted">Segments of an interruptible run are not shown: the API does not give them.</p>'
        )
    disabled = "" if can_submit else " disabled"
    parts.append(
        f"""<form method="post" action="/submit" enctype="multipart/form-data" id="submit-form">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="nonce" value="{escape(form.nonce)}">
<label for="spec">AppWrapper YAML or JSON (one or more documents)</label>
<textarea id="spec" name="spec" rows="14" spellcheck="false">{escape(text)}</textarea>
<label for="upload">or upload a file</label> <input type="file" id="upload" name="upload" accept=".yaml,.yml,.json">
<div class="actions"><button type="submit" name="action" value="preview" id="preview-button">Preview</button>
<button type="submit" name="action" value="submit" id="submit-button"{disabled}>Submit</button></div>
</form>"""
    )
    return "".join(parts)
