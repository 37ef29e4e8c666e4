"""The console's pages: Jinja2 templates kept as Python strings (no package data, no JS build step)."""

from __future__ import annotations

import jinja2

__all__ = ["environment"]

BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }} · phaselog</title>
<style>
:root { --fg:#1d2430; --muted:#667085; --line:#d8dde6; --bg:#f7f8fa; --ok:#1a7f37; --bad:#c4320a;
        --warn:#b54708; --accent:#2f5bd3; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg);
       background:var(--bg); }
header { display:flex; gap:1.5em; align-items:baseline; padding:.7em 1.5em; background:#1d2430; color:#fff; }
header a { color:#fff; text-decoration:none; }
header .brand { font-weight:700; font-size:1.15em; }
header .store { color:#b8c0cc; font-family:ui-monospace, monospace; font-size:.9em; margin-left:auto; }
main { padding:1.2em 1.5em; max-width:1280px; }
h1 { font-size:1.35em; margin:.2em 0 .6em; } h2 { font-size:1.1em; margin:1.2em 0 .5em; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(260px, 1fr)); gap:1em; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.8em 1em; }
.card h2 { margin-top:0; }
table { border-collapse:collapse; width:100%; background:#fff; }
th, td { text-align:left; padding:.3em .6em; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:.9em; }
td.when { white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.ok { color:var(--ok); font-weight:600; } .bad { color:var(--bad); font-weight:600; }
.muted { color:var(--muted); }
.alert { border:2px solid var(--warn); background:#fffaeb; border-radius:8px; padding:.7em 1em;
         margin:0 0 1em; } .alert.bad { border-color:var(--bad); background:#fef3f2; }
.alert h2 { margin:0 0 .3em; } .warn { color:var(--warn); font-weight:600; }
code, pre { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.86em; }
pre { margin:0; white-space:pre-wrap; word-break:break-word; max-width:640px; }
button { font:inherit; padding:.35em .9em; border-radius:6px; border:1px solid var(--accent);
         background:var(--accent); color:#fff; cursor:pointer; }
input[type=text] { font:inherit; padding:.3em .5em; border:1px solid var(--line); border-radius:6px; }
.bar { display:inline-block; height:.7em; background:var(--accent); border-radius:2px;
       vertical-align:middle; }
figure { margin:0 0 1em; } figcaption { margin-top:.3em; font-size:.9em; }
svg.timeline { background:#fff; border:1px solid var(--line); border-radius:8px; max-width:100%;
               height:auto; }
svg .lane { fill:#fff; stroke:#eef0f4; }
svg .lane-label, svg .axis, svg .mark-label { font:11px system-ui, sans-serif; fill:var(--muted); }
svg .phase-line { fill:none; stroke:var(--accent); stroke-width:2; }
svg .transition { fill:var(--accent); } svg .forced { fill:var(--warn); } svg .start { fill:#fff;
  stroke:var(--accent); stroke-width:2; }
svg .tick { stroke:var(--muted); stroke-width:2; } svg .tick.retry { stroke:var(--warn); }
svg .attempt.succeeded { fill:var(--ok); } svg .attempt.failed, svg .cleanup.failed { fill:var(--bad); }
svg .attempt.abandoned, svg .attempt.interrupted, svg .unfinished { fill:var(--warn); }
svg .pause { fill:#98a2b3; } svg .cleanup { fill:#7a5af8; }
svg .run { stroke:#1d2430; stroke-dasharray:3 3; } svg .run.finished { stroke-dasharray:none; }
svg .progress-line { fill:none; stroke:var(--ok); stroke-width:2; } svg .progress { fill:var(--ok); }
svg .state { fill:var(--accent); } svg .state.failed { fill:var(--bad); } svg .state.canceled,
  svg .state.cancel { fill:var(--warn); } svg .state.completed { fill:var(--ok); }
svg .log { stroke:var(--muted); } svg .log.error, svg .log.critical { stroke:var(--bad); }
svg .log.warning { stroke:var(--warn); } svg .event { fill:var(--accent); }
</style>
</head>
<body>
<header><a class="brand" href="/">phaselog</a>
<nav><a href="/">Overview</a> &nbsp; <a href="/streams">Streams</a></nav>
<span class="store">{{ store_url }}{% if read_only %} · read-only{% endif %}</span></header>
<main>{% block main %}{% endblock %}</main>
</body>
</html>
"""

COUNTS = """{% macro counts(title, rows, prefix) -%}
<div class="card"><h2>{{ title }}</h2>
{% if rows %}<table>{% set top = rows.values() | max %}
{% for key, n in rows.items() %}<tr><td>{{ key }}</td><td class="num">{{ n }}</td>
<td style="width:45%"><span class="bar" style="width:{{ (100 * n / top) | round(1) }}%"></span></td></tr>
{% endfor %}</table>{% else %}<p class="muted">none</p>{% endif %}
<p><a href="/streams?prefix={{ prefix | urlencode }}">all {{ prefix }} streams</a></p></div>
{%- endmacro %}"""

HORIZON = """{% macro stall_alert(h) -%}{% set s = h.stall %}
<div class="alert{% if h.unhealthy %} bad{% endif %}" id="stall">
<h2 class="{{ 'bad' if h.unhealthy else 'warn' }}">{% if h.unhealthy %}Degraded: readers stalled
{%- else %}Readers stalled{% endif %} for {{ "%.1f" | format(s.age_seconds) }} s</h2>
<p>Readers of the global order are held at position {{ h.position }} of {{ h.head }}:
{{ h.held_back }} committed event(s) wait for
{% if s.prepared %}prepared transaction <code>{{ s.prepared.gid }}</code>{% else %}pid
<code id="stall-pid">{{ s.pid }}</code>{% endif %}.</p>
<p><code id="stall-describe">{{ s.describe() }}</code></p>
<p>End it with <code id="stall-remedy">{{ s.remedy }}</code> (nothing is skipped to heal a stall).</p>
</div>{%- endmacro %}
{% macro horizon_card(h, error) -%}
<div class="card" id="horizon"><h2>Commit horizon</h2>
{% if error %}<p class="bad" id="horizon-error">{{ error }}</p>{% elif h is not none %}<table>
<tr><td>readers at position</td><td class="num" id="horizon-position">{{ h.position }}</td></tr>
<tr><td>newest committed</td><td class="num">{{ h.head }}</td></tr>
<tr><td>held back</td><td class="num {% if h.held_back %}warn{% endif %}" id="horizon-held">
{{- h.held_back }}</td></tr>
<tr><td>held for (s)</td><td class="num">{{ h.lag_seconds }}</td></tr>
<tr><td>appends in flight</td><td class="num">{{ h.in_flight | length }}</td></tr>
<tr><td>prepared transactions</td><td class="num {% if h.prepared %}warn{% endif %}">
{{- h.prepared | length }}</td></tr></table>
<p class="{{ 'bad' if h.unhealthy else 'warn' if h.stall else 'ok' }}" id="horizon-state">
{%- if h.unhealthy %}degraded{% elif h.stall %}stalled{% else %}moving{% endif %}</p>
{% for p in h.prepared %}<p class="warn">prepared <code>{{ p.gid }}</code> (owner {{ p.owner }},
database {{ p.database }}, {{ "%.0f" | format(p.age_seconds) }} s)</p>{% endfor %}
{% else %}<p class="muted">this store has no horizon</p>{% endif %}</div>
{%- endmacro %}"""

OVERVIEW = """{% extends "base.html" %}{% from "counts.html" import counts %}
{%- from "horizon.html" import stall_alert, horizon_card %}{% block main %}
<h1>Overview</h1>
{% if horizon is not none and horizon.stall %}{{ stall_alert(horizon) }}{% endif %}
<div class="cards">
{{ horizon_card(horizon, horizon_error) }}
{{ counts("Plugins by phase", plugins, "plugin:") }}
{{ counts("Tasks by state", tasks, "task:") }}
{{ counts("Plans by status", plans, "plan:") }}
</div>
<h2>Read models</h2>
{% if status_error %}<p class="bad" id="status-error">{{ status_error }}</p>{% endif %}
<table id="read-models"><tr><th>read model</th><th class="num">position</th><th class="num">head</th>
<th class="num">lag (events)</th><th class="num">lag (s)</th><th class="num">rows</th>
<th class="num">dead letters</th><th>state</th><th>last error</th></tr>
{% for r in status %}<tr><td><a href="/api/projections/{{ r.name }}">{{ r.name }}</a></td>
<td class="num">{{ r.position }}</td><td class="num">{{ r.head }}</td><td class="num">{{ r.lag }}</td>
<td class="num">{{ r.lag_seconds }}</td><td class="num">{{ r.rows }}</td>
<td class="num {% if r.errors %}bad{% endif %}">{{ r.errors }}</td>
<td>{% if r.halted %}<span class="bad">halted</span>{% elif r.owner %}followed{% else %}idle{% endif %}</td>
<td><code>{{ r.last_error or "" }}</code></td></tr>{% endfor %}
</table>
<h2>Audit</h2>
<div class="card" id="audit">
{% if verify is none %}<p class="muted" id="verify-result">not verified since this console started</p>
{% elif not verify.supported %}<p class="muted" id="verify-result">this store keeps no hash chain (memory)</p>
{% elif verify.ok %}<p class="ok" id="verify-result">verified: {{ verify.checked }} events intact
(head {{ verify.head_position }}, {{ verify.seals }} seal(s) checked)
{%- if verified_at %} at {{ verified_at }}{% endif %}</p>
{% else %}<p class="bad" id="verify-result">TAMPERED: {{ verify.problems | length }} problem(s) in
{{ verify.checked }} events{% if verified_at %} (verified at {{ verified_at }}){% endif %}</p>
<table id="problems"><tr><th class="num">position</th><th>kind</th><th>stream</th>
<th class="num">version</th><th>seal</th><th>detail</th></tr>{% for p in verify.problems %}<tr>
<td class="num">{{ "-" if p.position is none else p.position }}</td>
<td class="bad">{{ p.kind }}</td>
<td><a href="/streams/{{ p.stream_id | urlencode }}">{{ p.stream_id }}</a></td>
<td class="num">{{ "" if p.position is none else p.version }}</td>
<td>{{ "#" ~ p.seal if p.seal is not none else "" }}</td>
<td>{{ p.detail }}</td></tr>{% endfor %}</table>{% endif %}
{% if verify_summary %}<ul id="verify-summary">{% for line in verify_summary %}<li>{{ line }}</li>{% endfor %}
</ul>{% endif %}
<form method="post" action="/verify"><button id="verify" type="submit">Run audit verify</button></form>
</div>
{% endblock %}"""

STREAMS = """{% extends "base.html" %}{% block main %}
<h1>Streams</h1>
<form method="get" action="/streams"><input type="text" name="prefix" value="{{ prefix }}"
placeholder="prefix, e.g. plugin:"> <button type="submit">Filter</button></form>
<p class="muted">{{ heads | length }} stream(s)</p>
<table id="streams"><tr><th>stream</th><th>kind</th><th class="num">version</th><th class="num">position</th>
<th>open</th></tr>
{% for h in heads %}<tr><td><a href="/streams/{{ h.stream_id | urlencode }}">{{ h.stream_id }}</a></td>
<td>{{ h.stream_id.partition(":")[0] }}</td><td class="num">{{ h.version }}</td>
<td class="num">{{ h.position }}</td>
<td>{{ "open" if h.open else "closed" }}</td></tr>{% endfor %}
</table>{% endblock %}"""

STREAM = """{% extends "base.html" %}{% block main %}
<h1>{{ stream_id }}</h1>
<p class="muted">{{ kind }} · {{ events | length }} event(s) ·
<a href="/api/streams/{{ stream_id | urlencode }}">JSON</a></p>
<figure>{{ svg | safe }}
<figcaption class="muted">{% if kind == "plugin" %}○ created · ● transition · ◆ forced · ticks below:
grey a state write, orange a retry{% elif kind == "plan" %}bars: green attempt succeeded, red failed,
orange abandoned or unfinished, grey pause, violet cleanup · dashed lines: run started or resumed,
solid: run finished{% elif kind == "task" %}top: states · middle: progress (0 to 100 %) · bottom: log
entries{% else %}one mark per event{% endif %} · hover a mark for its event</figcaption></figure>
<table id="events"><tr><th class="num">position</th><th class="num">version</th><th>time</th><th>event</th>
<th>data</th></tr>
{% for e in events %}<tr><td class="num">{{ e.position }}</td><td class="num">{{ e.version }}</td>
<td class="when">{{ e.at.isoformat(timespec="milliseconds") if e.at else "" }}</td>
<td title="{{ e.topic }}">{{ e.name }}</td>
<td><pre>{{ e.fields | tojson(indent=1) }}</pre></td></tr>{% endfor %}
</table>{% endblock %}"""

ERROR = """{% extends "base.html" %}{% block main %}<h1>{{ code }}</h1>
<p class="bad">{{ message }}</p>{% endblock %}"""


def environment() -> jinja2.Environment:
    """The templates, HTML-escaped by default."""
    loader = jinja2.DictLoader(
        {
            "base.html": BASE,
            "counts.html": COUNTS,
            "horizon.html": HORIZON,
            "overview.html": OVERVIEW,
            "streams.html": STREAMS,
            "stream.html": STREAM,
            "error.html": ERROR,
        }
    )
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
