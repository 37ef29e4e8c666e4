"""The overview: counts that drill down to their rows, the commit horizon, read models and the audit."""

from __future__ import annotations

__all__ = ["COUNTS", "HORIZON", "OVERVIEW"]

COUNTS = """{% macro counts(title, rows, model, column) -%}
<div class="card" id="counts-{{ model }}"><h2>{{ title }}</h2>
{% if rows %}<table>{% set top = rows.values() | max %}
{% for key, n in rows.items() %}<tr><td><a class="drill tone-{{ key | tone }}"
href="/projections/{{ model }}?{{ column }}={{ key | urlencode }}">{{ key }}</a></td><td class="num">{{ n
}}</td>
<td style="width:45%"><span class="bar tone-{{ key | tone }}"
style="width:{{ (100 * n / top) | round(1) }}%"></span></td></tr>
{% endfor %}</table>{% else %}<p class="muted">none</p>{% endif %}
<p><a href="/projections/{{ model }}">all {{ rows.values() | sum }} rows of {{ model }}</a></p></div>
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
{{ counts("Plugins by phase", plugins, "plugin_phases", "phase") }}
{{ counts("Tasks by state", tasks, "task_statuses", "state_name") }}
{{ counts("Plans by status", plans, "plan_runs", "status") }}
</div>
<h2>Read models</h2>
{% if status_error %}<p class="bad" id="status-error">{{ status_error }}</p>{% endif %}
<table id="read-models"><tr><th>read model</th><th class="num">position</th><th class="num">head</th>
<th class="num">lag (events)</th><th class="num">lag (s)</th><th class="num">rows</th>
<th class="num">dead letters</th><th>state</th><th>last error</th></tr>
{% for r in status %}<tr><td><a href="/projections/{{ r.name }}">{{ r.name }}</a></td>
<td class="num">{{ r.position }}</td><td class="num">{{ r.head }}</td><td class="num">{{ r.lag }}</td>
<td class="num">{{ r.lag_seconds }}</td><td class="num">{{ r.rows }}</td>
<td class="num {% if r.errors %}bad{% endif %}">{% if r.errors %}<a class="bad"
href="/errors?model={{ r.name }}">{{ r.errors }}</a>{% else %}0{% endif %}</td>
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
