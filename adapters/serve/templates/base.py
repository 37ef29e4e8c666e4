"""The page every console page extends: style, navigation and the small script (auto-refresh, live tail)."""

from __future__ import annotations

__all__ = ["BASE", "ERROR", "PAGER", "SCRIPT"]

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
.tone-ok, .ok { color:var(--ok); font-weight:600; } .tone-bad, .bad { color:var(--bad); font-weight:600; }
.tone-warn { color:var(--warn); font-weight:600; }
.bar.tone-bad { background:var(--bad); } .bar.tone-ok { background:var(--ok); }
.bar.tone-warn { background:var(--warn); }
.chip { display:inline-block; padding:.1em .6em; margin:0 .3em .3em 0; border-radius:999px;
        border:1px solid var(--line); background:#fff; text-decoration:none; color:var(--fg); }
.chip.on { border-color:var(--accent); background:#eef2fc; }
.chip.tone-bad { border-color:var(--bad); } .chip.tone-ok { border-color:var(--ok); }
.chip.tone-warn { border-color:var(--warn); }
form.search { display:flex; flex-wrap:wrap; gap:.5em; align-items:center; margin:0 0 .8em; }
select { font:inherit; padding:.25em .4em; border:1px solid var(--line); border-radius:6px; }
.pager { display:flex; gap:1em; margin:.8em 0; } .pager .muted { margin-left:auto; }
.failure { border:2px solid var(--bad); background:#fef3f2; border-radius:8px; padding:.7em 1em;
           margin:0 0 1em; } .failure.tone-warn { border-color:var(--warn); background:#fffaeb; }
.failure h2 { margin:0 0 .3em; }
tr.new td { background:#eef8f0; } tr.step-never td { color:var(--muted); font-style:italic; }
td.diff-added { background:#eef8f0; } td.diff-removed { background:#fef3f2; } td.diff-changed {
background:#fffaeb; }
header label { color:#b8c0cc; font-size:.9em; }
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
<nav><a href="/">Overview</a> &nbsp; <a href="/streams">Streams</a> &nbsp; <a href="/events">Events</a>
&nbsp; <a href="/projections">Read models</a> &nbsp; <a href="/errors">Dead letters</a></nav>
{% if refresh %}<label><input type="checkbox" id="auto-refresh"> auto-refresh (5 s)</label>{% endif %}
<span class="store">{{ store_url }}{% if read_only %} · read-only{% endif %}</span></header>
<main>{% block main %}{% endblock %}</main>
<script>{{ script | safe }}</script>
</body>
</html>
"""

SCRIPT = """
(() => {
  const box = document.getElementById("auto-refresh");
  if (box) {
    const key = "phaselog.refresh";
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      if (box.checked) timer = setTimeout(() => location.reload(), 5000);
    };
    box.checked = localStorage.getItem(key) === "1";
    box.addEventListener("change", () => { localStorage.setItem(key, box.checked ? "1" : "0"); arm(); });
    arm();
  }
  const table = document.getElementById("events");
  const tail = document.getElementById("tail");
  if (!table || !tail || !table.dataset.api) return;
  const said = document.getElementById("tail-status");
  let last = Number(table.dataset.version);
  const cell = (row, text, cls) => {
    const td = row.insertCell(-1);
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  };
  const add = (e) => {
    const row = table.tBodies[0].insertRow(-1);
    row.className = "new";
    cell(row, String(e.position), "num");
    cell(row, String(e.version), "num");
    cell(row, e.timestamp || "", "when");
    cell(row, e.topic.split(".").pop()).title = e.topic;
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(e.data);
    row.insertCell(-1).appendChild(pre);
    const link = document.createElement("a");
    link.href = table.dataset.state + e.version;
    link.textContent = "state";
    row.insertCell(-1).appendChild(link);
  };
  const poll = async () => {
    if (tail.checked) {
      try {
        const answer = await fetch(table.dataset.api + "?after=" + last, { headers: { accept:
"application/json" } });
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        const body = await answer.json();
        for (const e of body.events) { add(e); last = e.version; }
        said.textContent = "live: version " + last + " at " + new Date().toLocaleTimeString();
      } catch (err) {
        said.textContent = "live tail paused: " + err.message;
      }
    }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
})();
"""

PAGER = """{% macro pager(first, next, shown) -%}
<div class="pager">{% if first %}<a id="first-page" href="{{ first }}">first page</a>{% endif %}
{% if next %}<a id="next-page" href="{{ next }}">next page →</a>{% endif %}
<span class="muted">{{ shown }} shown</span></div>
{%- endmacro %}"""

ERROR = """{% extends "base.html" %}{% block main %}<h1>{{ code }}</h1>
<p class="bad">{{ message }}</p>{% endblock %}"""
