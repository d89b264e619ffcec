"""The page frame every console page shares: head, navigation, sign-in state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

NAV = (("/", "Fleet"), ("/timeline", "Timeline"), ("/savings", "Savings"), ("/submit", "Submit"))


def page(
    title: str, body: str, *, active: str, signed_in: bool, csrf: str, scripts: tuple[str, ...] = ()
) -> str:
    links = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{name}</a>' for href, name in NAV
    )
    if signed_in:
        account = (
            f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" '
            f'value="{csrf}"><button type="submit" id="sign-out">Sign out</button></form>'
        )
    else:
        account = '<a href="/login" id="sign-in">Sign in</a>'
    tags = "".join(f'<script src="/static/{name}" defer></script>' for name in scripts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · CASPIAN</title>
<link rel="stylesheet" href="/static/console.css">
<link rel="icon" href="data:,">{tags}
</head><body>
<header><span class="brand">CASPIAN</span><nav>{links}</nav><span class="account">{account}</span></header>
<main>{body}</main>
</body></html>"""


def when(t: float | None) -> str:
    if t is None:
        return "–"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def grams(value: float) -> str:
    """The same rounding as `caspianctl`."""
    if abs(value) >= 1000:
        return f"{value / 1000:,.2f} kg"
    return f"{value:,.1f} g"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def table(
    headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, table_id: str = "", empty: str = "none"
) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    if not rows:
        return f'<p class="muted">{empty}</p>'
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return (
        f'<div class="scroll"><table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def problem(message: str) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>'
