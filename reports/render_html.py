"""The digest as one self-contained HTML page: inline CSS, charts as data: PNG, nothing fetched from anywhere.

Headline numbers first (green when they moved for the better, red for the
worse), then what needs attention (open alerts, the next actions with their
commands), then the detail. Every value from the data is escaped; the page
carries no script.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from reports.digest import Digest
from reports.digest_charts import Chart, digest_charts
from reports.text import (
    Tone,
    acceptance_change,
    day,
    experiment_values,
    headline_facts,
    job_text,
    move_text,
    pct,
    usd,
)

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2328;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:26px;margin:0}
h2{font-size:16px;margin:0 0 10px}
.sub{color:#59636e;margin:4px 0 20px}
.note{background:#fff8c5;border:1px solid #e9d38a;border-radius:8px;padding:8px 12px;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:18px}
.card{background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08);
border-top:4px solid #d0d7de}
.card.good{border-top-color:#1a7f37}.card.bad{border-top-color:#cf222e}
.card .label{color:#59636e;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:28px;font-weight:650;margin:2px 0}
.card .change{font-size:13px;color:#59636e}
.good .change,.up{color:#1a7f37}.bad .change,.down{color:#cf222e}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin-bottom:16px}
.grid3{display:grid;grid-template-columns:1fr 1fr 1fr;gap:16px;margin-bottom:16px}
@media (max-width:900px){.grid,.grid3{grid-template-columns:1fr}}
section{background:#fff;border-radius:10px;padding:16px 18px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:0}
section.full{margin-bottom:16px}
section.alert{border-left:5px solid #cf222e}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-size:12px;color:#59636e;font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}
.bar{display:inline-block;height:8px;border-radius:4px;background:#2563eb;vertical-align:middle;margin-right:6px}
ul{margin:0;padding-left:18px}li{margin:4px 0}
code{background:#f0f2f4;border-radius:4px;padding:1px 5px;font-size:12.5px}
.muted{color:#59636e}.sev{font-weight:650;text-transform:uppercase;font-size:11px;color:#cf222e}
img{max-width:100%;height:auto;display:block}
footer{color:#59636e;font-size:12px;margin-top:18px}
""".replace("\n", "")


def render_html(digest: Digest, *, charts: list[Chart] | None = None) -> str:
    """The page; `charts` default to the digest's own (pass them when already drawn)."""
    drawn = {
        chart.filename.rsplit("-", 1)[-1]: chart for chart in (digest_charts(digest) if charts is None else charts)
    }
    week = digest.week
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in digest.notes)
    body = (
        f"<h1>Weekly digest {_e(week.week)}</h1>"
        f'<p class="sub">{week.start:%a %d %b %Y} to {week.end:%a %d %b %Y} · {_e(week.timezone)} ·'
        f" generated {_e(day(digest.generated_at))}</p>{notes}"
        f"{_cards(digest)}{_attention(digest)}"
        f'<div class="grid">{_acceptance(digest)}{_chart(drawn.get("acceptance.png"), "No acceptance history yet.")}</div>'
        f"{_spend(digest, drawn.get('spend.png'))}"
        f'<section class="full">{_patterns(digest)}</section>'
        f'<div class="grid3">{_jobs(digest)}{_moves(digest)}{_experiments(digest)}</div>'
        f'<section class="full">{_approvals(digest)}</section>'
        "<footer>finetune-ops weekly digest. Acceptance: the mean share of each draft kept in the final text."
        " Edit patterns count all feedback mined so far.</footer>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Weekly digest {_e(week.week)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def write_page(page: str, path: Path) -> Path:
    """Write a rendered page to `path` atomically (a reader never sees half a page); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, path)
    return path


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cards(digest: Digest) -> str:
    cards = []
    for label, value, change, tone in headline_facts(digest):
        cards.append(
            f'<div class="card {tone}"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>'
            f'<div class="change">{_e(change)}</div></div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _attention(digest: Digest) -> str:
    parts = []
    if digest.alerts:
        items = "".join(
            f'<li><span class="sev">{_e(a.severity)}</span> <code>{_e(a.agent)}</code> {_e(a.kind)}: {_e(a.message)}'
            f' <span class="muted">(since {_e(day(a.created_at))})</span></li>'
            for a in digest.alerts
        )
        parts.append(f'<section class="alert full"><h2>Open alerts</h2><ul>{items}</ul></section>')
    if digest.actions:
        items = "".join(
            f'<li><b>{_e(a.label)}</b>: <code>{_e(a.command)}</code><br><span class="muted">{_e(a.reason)}</span></li>'
            for a in digest.actions
        )
        parts.append(f'<section class="full"><h2>Next actions</h2><ul>{items}</ul></section>')
    return "".join(parts)


def _tone_class(tone: Tone) -> str:
    return {"good": "up", "bad": "down"}.get(tone, "muted")


def _acceptance(digest: Digest) -> str:
    if not digest.agents:
        return '<section><h2>Acceptance by agent</h2><p class="muted">No feedback this week.</p></section>'
    rows = []
    for agent in digest.agents:
        change, tone = acceptance_change(agent.change)
        width = round((agent.acceptance or 0) * 80)
        rating = f"{agent.rating:.2f}" if agent.rating is not None else "-"
        rows.append(
            f"<tr><td><code>{_e(agent.agent)}</code></td><td class='num'>{agent.events:,}</td>"
            f"<td class='num'><span class='bar' style='width:{width}px'></span>{_e(pct(agent.acceptance))}</td>"
            f"<td class='num {_tone_class(tone)}'>{_e(change)}</td><td class='num'>{_e(pct(agent.unedited_share))}</td>"
            f"<td class='num'>{_e(rating)}</td></tr>"
        )
    head = (
        "<tr><th>agent</th><th class='num'>drafts</th><th class='num'>acceptance</th>"
        "<th class='num'>vs week before</th><th class='num'>unedited</th><th class='num'>rating</th></tr>"
    )
    return f"<section><h2>Acceptance by agent</h2><table>{head}{''.join(rows)}</table></section>"


def _chart(chart: Chart | None, empty: str) -> str:
    if chart is None:
        return f'<section><p class="muted">{_e(empty)}</p></section>'
    data = base64.b64encode(chart.png).decode("ascii")
    return f'<section><img alt="{_e(chart.title)}" src="data:image/png;base64,{data}"></section>'


def _spend(digest: Digest, chart: Chart | None) -> str:
    costs = digest.costs
    if costs is None:
        return ""
    estimated = " (partly estimated)" if costs.training_estimated else ""
    rows = "".join(
        f"<tr><td>{_e(row.kind)}</td><td><code>{_e(row.model)}</code></td><td>{_e(row.version or '-')}</td>"
        f"<td class='num'>{_e(usd(row.usd))}{' (est.)' if row.estimated else ''}</td></tr>"
        for row in costs.rows
    )
    table = (
        f"<table><tr><th>kind</th><th>model</th><th>version</th><th class='num'>amount</th></tr>{rows}</table>"
        if rows
        else '<p class="muted">Nothing was spent.</p>'
    )
    unpriced = (
        f'<p class="muted">{costs.unpriced_events:,} drafts reported no cost and are left out.</p>'
        if costs.unpriced_events
        else ""
    )
    summary = (
        f"<p><b>{_e(usd(costs.total_usd))}</b>: training {_e(usd(costs.training_usd))}{estimated}, inference"
        f" {_e(usd(costs.inference_usd))}; the week before {_e(usd(costs.previous_total_usd))}.</p>"
    )
    return (
        f'<div class="grid"><section><h2>Spend</h2>{summary}{table}{unpriced}</section>'
        f"{_chart(chart, 'No spend in the last weeks.')}</div>"
    )


def _patterns(digest: Digest) -> str:
    title = '<h2>What users edit most <span class="muted">(all feedback so far)</span></h2>'
    if not digest.patterns:
        return f'{title}<p class="muted">No edit patterns yet.</p>'
    rows = "".join(
        f"<tr><td><code>{_e(p.agent)}</code></td><td>{_e(p.kind)}</td><td><code>{_e(p.phrase)}</code></td>"
        f"<td class='num'>{p.frequency:.0%} ({p.support:,})</td><td>{_e(p.category)}</td><td class='muted'>"
        f"{_e(p.suggestion)}</td></tr>"
        for p in digest.patterns
    )
    head = (
        "<tr><th>agent</th><th>users</th><th>phrase</th><th class='num'>of edited drafts</th><th>category</th>"
        "<th>suggestion</th></tr>"
    )
    return f"{title}<table>{head}{rows}</table>"


def _listing(title: str, items: list[str], empty: str) -> str:
    if not items:
        return f'<section><h2>{_e(title)}</h2><p class="muted">{_e(empty)}</p></section>'
    return f"<section><h2>{_e(title)}</h2><ul>{''.join(f'<li>{item}</li>' for item in items)}</ul></section>"


def _jobs(digest: Digest) -> str:
    items = [
        f'<span class="{"down" if job.status == "failed" else "up" if job.status == "succeeded" else "muted"}">'
        f"{_e(job.status)}</span> {_e(job_text(job))}"
        for job in digest.jobs
    ]
    return _listing("Jobs finished", items, "None this week.")


def _moves(digest: Digest) -> str:
    items = [
        f'<span class="{"down" if m.move == "rollback" else "muted"}">{_e(m.move)}</span> {_e(move_text(m))}'
        f' <span class="muted">{_e(day(m.at))}</span>'
        for m in digest.moves
    ]
    return _listing("Deployments and rollbacks", items, "None this week.")


def _experiments(digest: Digest) -> str:
    classes = {"winner": "up", "loser": "down"}
    items = [
        f"<code>{_e(e.id)}</code> {_e(e.title)}: <b class='{classes.get(e.verdict, 'muted')}'>{_e(e.verdict)}</b>"
        f" ({_e(e.status)}); {_e(experiment_values(e))}"
        for e in digest.experiments
    ]
    return _listing("A/B experiments", items, "None running.")


def _approvals(digest: Digest) -> str:
    items = [
        f"<code>{_e(a.id)}</code> {_e(a.description)} <span class='muted'>requested by {_e(a.requested_by)}"
        f"{', ' + _e(a.progress) if a.progress else ''}; <code>finetune approve {_e(a.id)}</code></span>"
        for a in digest.approvals
    ]
    if not items:
        return '<h2>Pending approvals</h2><p class="muted">Nothing waits for a decision.</p>'
    return f"<h2>Pending approvals</h2><ul>{''.join(f'<li>{item}</li>' for item in items)}</ul>"
