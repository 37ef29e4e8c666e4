"""Read-model pages: every model's status, one model's rows (filtered, paged), the dead letters."""

from __future__ import annotations

__all__ = ["ERRORS", "PROJECTION", "PROJECTIONS"]

PROJECTIONS = """{% extends "base.html" %}{% block main %}
<h1>Read models</h1>
{% if status_error %}<p class="bad" id="status-error">{{ status_error }}</p>{% endif %}
<table id="read-models"><tr><th>read model</th><th class="num">position</th><th class="num">head</th>
<th class="num">lag (events)</th><th class="num">lag (s)</th><th class="num">rows</th>
<th class="num">dead letters</th><th>state</th><th>last error</th></tr>
{% for r in status %}<tr><td><a href="/projections/{{ r.name }}">{{ r.name }}</a></td>
<td class="num">{{ r.position }}</td><td class="num">{{ r.head }}</td>
<td class="num {% if r.lag %}tone-warn{% endif %}">{{ r.lag }}</td>
<td class="num">{{ r.lag_seconds }}</td><td class="num">{{ r.rows }}</td>
<td class="num">{% if r.errors %}<a class="bad" href="/errors?model={{ r.name }}">{{ r.errors }}</a>
{%- else %}0{% endif %}</td>
<td>{% if r.halted %}<span class="bad">halted</span>{% elif r.owner %}followed by <code>{{ r.owner }}</code>
{%- else %}idle{% endif %}</td><td><code>{{ r.last_error or "" }}</code></td></tr>{% endfor %}
</table>{% endblock %}"""

PROJECTION = """{% extends "base.html" %}{% from "pager.html" import pager %}{% block main %}
<h1>{{ model }}</h1>
<p class="muted">{% if row %}position {{ row.position }} of {{ row.head }} · lag {{ row.lag }} event(s) ·
{{ row.rows }} row(s){% if row.errors %} · <a class="bad" href="/errors?model={{ model }}">{{ row.errors }}
dead letter(s)</a>{% endif %}{% if row.halted %} · <span class="bad">halted</span>{% endif %} · {% endif %}
<a href="/api/projections/{{ model }}{{ api_query }}">JSON</a></p>
{% if count_by %}<p id="filters"><a class="chip{% if not filters %} on{% endif %}"
href="/projections/{{ model }}">all
{{ counts.values() | sum }}</a>{% for value, n in counts.items() %}<a class="chip tone-{{ value | tone }}
{%- if filters.get(count_by) == value %} on{% endif %}"
href="/projections/{{ model }}?{{ count_by }}={{ value | urlencode }}">{{ value }} {{ n }}</a>{% endfor %}</p>
{% endif %}
{% if filters %}<p class="muted" id="filtered">rows where {% for k, v in filters.items() %}<code>{{ k
}}</code> is
<code>{{ v }}</code>{% if not loop.last %} and {% endif %}{% endfor %}</p>{% endif %}
<div style="overflow-x:auto"><table id="rows"><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for c in columns %}{% set v = r[c] %}
{%- if c == key and prefix %}<td><a href="/streams/{{ (prefix ~ v) | urlencode }}">{{ v }}</a></td>
{%- elif c == count_by %}<td class="tone-{{ v | tone }}">{{ v }}</td>
{%- elif v is mapping or (v is iterable and v is not string) %}<td><pre>{{ v | tojson }}</pre></td>
{%- elif v is none %}<td class="muted"></td>{% elif v is sameas true %}<td>yes</td>
{%- elif v is sameas false %}<td class="muted">no</td>
{%- elif c.endswith("_at") or c == "since" %}<td class="when">{{ v }}</td>
{%- else %}<td>{{ v }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</table></div>
{% if not rows %}<p class="muted" id="nothing">no row{% if filters %} matches{% endif %}</p>{% endif %}
{{ pager(first, next, rows | length ~ " row(s)") }}{% endblock %}"""

ERRORS = """{% extends "base.html" %}{% block main %}
<h1>Dead letters</h1>
<p class="muted">Events a read model could not fold. They wait here until the fold is fixed and they are
retried: <code>phaselog projections retry [NAME]</code>{% if actions %}, or the buttons below{% endif %}.</p>
{% if retried is not none %}<p class="ok" id="retried">{{ retried }} event(s) folded on retry</p>{% endif %}
<p id="filters"><a class="chip{% if not model %} on{% endif %}" href="/errors">every read model</a>
{% for name in models %}<a class="chip{% if model == name %} on{% endif %}" href="/errors?model={{ name }}">
{{- name }}</a>{% endfor %}</p>
{% if actions %}<form method="post"
action="/errors/retry{% if model %}?model={{ model | urlencode }}{% endif %}"><button id="retry"
type="submit">
{%- if model %}Retry the dead letters of {{ model }}{% else %}Retry every dead letter{% endif
%}</button></form>
{% else %}<p class="muted" id="no-actions">Retrying from here needs the console started with a
token and <code>--allow-actions</code>.</p>{% endif %}
<table id="dead-letters"><tr><th>read model</th><th class="num">position</th><th>stream</th><th>event</th>
<th>error</th><th>since</th></tr>
{% for d in letters %}<tr><td><a href="/projections/{{ d.projection }}">{{ d.projection }}</a></td>
<td class="num">{{ d.position }}</td>
<td><a href="/streams/{{ d.stream | urlencode }}">{{ d.stream }}</a></td>
<td title="{{ d.topic }}">{{ d.topic.rsplit(".", 1)[-1] }}</td><td class="bad"><code>{{ d.error }}</code></td>
<td class="when">{{ d.at }}</td></tr>{% endfor %}</table>
{% if hidden %}<p class="muted" id="hidden">and {{ hidden }} more (the oldest are shown)</p>{% endif %}
{% if not letters %}<p class="ok" id="nothing">no dead letter</p>{% endif %}{% endblock %}"""
