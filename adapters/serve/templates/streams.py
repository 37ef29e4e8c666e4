"""Stream pages: search and pages of streams and events, one stream's history, its state at any event."""

from __future__ import annotations

__all__ = ["EVENTS", "STATE", "STREAM", "STREAMS"]

STREAMS = """{% extends "base.html" %}{% from "pager.html" import pager %}{% block main %}
<h1>Streams</h1>
<form class="search" method="get" action="/streams" id="stream-search">
<select name="kind" id="kind" aria-label="kind"><option value="">any kind</option>
{% for k in kinds %}<option value="{{ k }}"{% if k == query.kind %} selected{% endif %}>{{ k }}</option>{%
endfor %}
</select>
<input type="text" id="q" name="q" value="{{ query.text }}" placeholder="stream id starts with…" size="32"
aria-label="stream id starts with">
<label><input type="checkbox" id="open" name="open" value="1"{% if query.open_only %} checked{% endif %}>
open only</label> <input type="hidden" name="limit" value="{{ query.limit }}">
<button type="submit">Search</button></form>
<p class="muted">A stream is <em>open</em> while its aggregate may still need work, as it said when it was
last saved: a plugin not uninstalled, a task not finished, a plan with a run in progress. A finished plan
or task is closed.</p>
<table id="streams"><tr><th>stream</th><th>kind</th><th class="num">version</th><th class="num">position</th>
<th>open</th></tr>
{% for h in heads %}<tr><td><a href="/streams/{{ h.stream_id | urlencode }}">{{ h.stream_id }}</a></td>
<td>{{ h.stream_id.partition(":")[0] }}</td><td class="num">{{ h.version }}</td>
<td class="num">{{ h.position }}</td>
<td>{{ "open" if h.open else "closed" }}</td></tr>{% endfor %}
</table>
{% if not heads %}<p class="muted" id="nothing">no stream
{%- if query.prefix %} starts with <code>{{ query.prefix }}</code>{% endif %}
{%- if query.open_only %} and is open{% endif %}{% if query.after %} after <code>{{ query.after }}</code>{%
endif %}
</p>{% endif %}
{{ pager(first, next, heads | length ~ " stream(s)") }}{% endblock %}"""

EVENTS = """{% extends "base.html" %}{% from "pager.html" import pager %}{% block main %}
<h1>Events</h1>
<form class="search" method="get" action="/events" id="event-search">
<label>since <input type="text" id="since" name="since" value="{{ since }}"
placeholder="1h, yesterday, ISO-8601"
size="18"></label>
<label>until <input type="text" id="until" name="until" value="{{ until }}" placeholder="now, 30m, ISO-8601"
size="18"></label>
<label>type <input type="text" id="type" name="type" value="{{ query.topic }}" list="types"
placeholder="PhaseChanged" size="20"></label>
<datalist id="types">{% for t in types %}<option value="{{ t }}">{% endfor %}</datalist>
<input type="hidden" name="limit" value="{{ query.limit }}"> <button type="submit">Search</button></form>
<p class="muted" id="window">positions {{ start }} to {{ stop if stop is not none else head }} of {{ head }}
{%- if query.since or query.until %} (found by time: positions follow the commits, times rise with them)
{%- endif %}</p>
<table id="log"><tr><th class="num">position</th><th>stream</th><th class="num">version</th><th>time</th>
<th>event</th><th>data</th></tr>
{% for e in rows %}<tr><td class="num">{{ e.position }}</td>
<td><a href="/streams/{{ e.stream_id | urlencode }}">{{ e.stream_id }}</a></td>
<td class="num"><a href="/streams/{{ e.stream_id | urlencode }}/at/{{ e.version }}">{{ e.version }}</a></td>
<td class="when">{{ e.timestamp or "" }}</td><td title="{{ e.topic }}">{{ e.topic.rsplit(".", 1)[-1]
}}</td><td><code>{{ e.data | brief }}</code></td></tr>
{% endfor %}</table>
{% if not rows %}<p class="muted" id="nothing">no event matches</p>{% endif %}
{{ pager(first, next, rows | length ~ " event(s)") }}{% endblock %}"""

STREAM = """{% extends "base.html" %}{% block main %}
<h1>{{ stream_id }}</h1>
{% if failure %}<div class="failure tone-{{ failure.tone }}" id="failure">
<h2 class="tone-{{ failure.tone }}">{{ failure.title }}</h2>
<p id="failure-error"><strong>{{ failure.error }}</strong></p>
{% if failure.causes %}<ul id="failure-causes">{% for c in failure.causes %}<li>{{ c }}</li>{% endfor
%}</ul>{% endif %}
<p class="muted">{{ failure.at.isoformat(timespec="seconds") if failure.at else "" }} ·
<a href="/streams/{{ stream_id | urlencode }}/at/{{ failure.version }}">the state at that event</a></p>
</div>{% endif %}
<p class="muted">{{ kind }} · {{ events | length }} event(s) ·
<a href="/api/streams/{{ stream_id | urlencode }}">JSON</a> ·
<a href="/streams/{{ stream_id | urlencode }}/at/{{ events[-1].version }}">state now</a></p>
{% if steps %}<h2>Steps of the last run</h2>
<table id="steps"><tr><th>step</th><th>outcome</th><th
class="num">attempts</th><th>error</th><th>cleanup</th></tr>
{% for s in steps %}<tr class="step-{{ s.status.split()[0] }}"><td>{{ s.name }}</td>
<td class="tone-{{ s.status | tone }}">{{ s.status }}</td><td class="num">{{ s.attempts }}</td>
<td>{{ s.error or "" }}</td><td class="tone-{{ (s.cleanup or "") | tone }}">{{ s.cleanup or "" }}</td></tr>
{% endfor %}</table>{% endif %}
<figure>{{ svg | safe }}
<figcaption class="muted">{% if kind == "plugin" %}○ created · ● transition · ◆ forced · ticks below:
grey a state write, orange a retry{% elif kind == "plan" %}bars: green attempt succeeded, red failed,
orange abandoned or unfinished, grey pause, violet cleanup · dashed lines: run started or resumed,
solid: run finished{% elif kind == "task" %}top: states · middle: progress (0 to 100 %) · bottom: log
entries{% else %}one mark per event{% endif %} · hover a mark for its event</figcaption></figure>
<p><label><input type="checkbox" id="tail" checked> live tail (new events appear below)</label>
<span class="muted" id="tail-status"></span></p>
<table id="events" data-api="/api/streams/{{ stream_id | urlencode }}" data-version="{{ events[-1].version }}"
data-state="/streams/{{ stream_id | urlencode }}/at/"><thead><tr><th class="num">position</th>
<th class="num">version</th><th>time</th><th>event</th><th>data</th><th></th></tr></thead><tbody>
{% for e in events %}<tr><td class="num">{{ e.position }}</td><td class="num">{{ e.version }}</td>
<td class="when">{{ e.at.isoformat(timespec="milliseconds") if e.at else "" }}</td>
<td title="{{ e.topic }}">{{ e.name }}</td>
<td><pre>{{ e.fields | tojson }}</pre></td>
<td><a href="/streams/{{ stream_id | urlencode }}/at/{{ e.version }}">state</a></td></tr>{% endfor %}
</tbody></table>{% endblock %}"""

STATE = """{% extends "base.html" %}{% block main %}
<h1>{{ stream_id }} at version {{ state.version }}</h1>
<p class="muted">{{ state.aggregate }} · {{ state.timestamp }} · <span id="event-name">{{ event.name
}}</span> ·
{% if state.version > 1 %}<a id="previous" href="{{ state.version - 1 }}">← version {{ state.version - 1
}}</a>
· {% endif %}{% if state.version < last %}<a id="next" href="{{ state.version + 1 }}">version
{{ state.version + 1 }} →</a> · {% endif %}<a href="/streams/{{ stream_id | urlencode }}">the stream</a> ·
<a href="/api/streams/{{ stream_id | urlencode }}/at/{{ state.version }}">JSON</a></p>
<h2>What this event changed</h2>
{% if changes %}<table id="diff"><tr><th>field</th><th>change</th><th>before</th><th>after</th></tr>
{% for c in changes %}<tr><td><code>{{ c.path }}</code></td><td>{{ c.kind }}</td>
<td class="diff-{{ c.kind }}"><pre>{{ "" if c.kind == "added" else c.before | tojson }}</pre></td>
<td class="diff-{{ c.kind }}"><pre>{{ "" if c.kind == "removed" else c.after | tojson }}</pre></td></tr>
{% endfor %}</table>{% else %}<p class="muted" id="no-change">no field of the state changed
(the event moved only its version)</p>{% endif %}
<h2>The event</h2><pre id="event">{{ event.fields | tojson(indent=1) }}</pre>
<h2>The state after it</h2><pre id="state">{{ state.state | tojson(indent=1) }}</pre>
{% endblock %}"""
