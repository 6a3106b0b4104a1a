"""Self-contained HTML pages with an inline SVG timeline, in the spirit of Jepsen's ``timeline.html``.

No network, no JavaScript: one lane per task, time running left to right, one bar per attempt
(green: completed, red and cross-hatched: failed, with the worded event under it and as a tooltip),
an orange marker where a fault fired, a dashed arrow for each retry, a dotted line where the
regions were released together, and the aggregation bar in its own lane after the regions.

Everything here renders from the plain ``summary.json`` data of :mod:`pytest_distproc.plugin.reportdir`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH = 1120
LABEL = 210
RIGHT = 36
LANE = 62
BAR = 22
TOP = 46

DASH = "\u2013"
GREEN, RED, BLUE, GREY, ORANGE, INK = "#2f9e44", "#e03131", "#1c7ed6", "#868e96", "#f08c00", "#212529"
NODE_COLOURS = ("#7048e8", "#0c8599", "#d6336c", "#5c940d", "#e8590c", "#1864ab", "#862e9c", "#495057")
"""One colour per Ray node: a strip along the top of each attempt bar says where the attempt ran."""


def node_colours(summary: Mapping[str, Any]) -> dict[str, str]:
    """Each node's colour, in the order the nodes first appear among the attempts."""
    names = dict.fromkeys(a["node"]["name"] for a in summary.get("attempts", []) if a.get("node"))
    return {name: NODE_COLOURS[i % len(NODE_COLOURS)] for i, name in enumerate(names)}

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212529;
       background: #f4f5f7; }
main { max-width: 1180px; margin: 0 auto; padding: 22px 28px 40px; }
h1 { font-size: 24px; margin: 0 10px 0 0; display: inline; }
h2 { font-size: 16px; margin: 26px 0 10px; color: #343a40; }
.sub { color: #6c757d; margin: 6px 0 16px; }
.badge { display: inline-block; padding: 3px 12px; border-radius: 999px; font-weight: 700; color: #fff;
         font-size: 13px; vertical-align: 4px; letter-spacing: .04em; }
.passed { background: #2f9e44; } .failed { background: #e03131; } .error { background: #f08c00; }
.skipped { background: #868e96; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 8px 0 6px; }
.card { background: #fff; border-radius: 10px; padding: 10px 16px; min-width: 120px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card b { display: block; font-size: 22px; }
.card span { color: #6c757d; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.panel { background: #fff; border-radius: 12px; padding: 14px 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.mismatch { background: #fff5f5; border-left: 5px solid #e03131; border-radius: 8px; padding: 10px 14px; }
.mismatch li { margin: 3px 0; white-space: pre-wrap; font-family: ui-monospace, Menlo, monospace;
               font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; background: #fff; border-radius: 10px; overflow: hidden;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
td .sub { overflow-wrap: anywhere; }
th, td { text-align: left; padding: 7px 12px; border-bottom: 1px solid #eef0f2; }
th { background: #f8f9fa; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #495057; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 700; background: #f8f9fa; }
pre { background: #1e1e24; color: #e9ecef; padding: 14px 16px; border-radius: 10px; overflow-x: auto;
      font-size: 12.5px; line-height: 1.5; }
details summary { cursor: pointer; color: #1c7ed6; margin: 6px 0; }
a { color: #1c7ed6; text-decoration: none; } a:hover { text-decoration: underline; }
.state { font-weight: 600; } .s-COMPLETE { color: #2f9e44; } .s-FAILED { color: #e03131; }
.s-CANCELLED { color: #868e96; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _ticks(span: float) -> tuple[float, list[float]]:
    """A 1-2-5 step giving about six ticks over ``span`` seconds."""
    raw = span / 6
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    count = int(span / step + 1e-9)
    return step, [i * step for i in range(count + 1)]


def _fmt_t(t: float, step: float) -> str:
    return f"{t * 1000:.0f} ms" if step < 1 else f"{t:g} s"


def timeline_svg(summary: Mapping[str, Any], *, compact: bool = False) -> str:
    """The timeline of one run as an ``<svg>`` element (``compact``: a thumbnail without text)."""
    tasks = [t["id"] for t in summary["tasks"]]
    lane = 13 if compact else LANE
    bar = 9 if compact else BAR
    label = 0 if compact else LABEL
    width = 230 if compact else WIDTH
    top = 4 if compact else TOP
    right = 6 if compact else RIGHT
    plot = width - label - right
    # a little room after the run's end, so that the (instant) aggregation bar sits after the regions
    span = max(float(summary.get("duration") or 0.0), 1e-4) * 1.04
    height = top + lane * len(tasks) + (4 if compact else 48)

    def x(t: float) -> float:
        return label + plot * min(max(t, 0.0), span) / span

    def lane_y(task: str) -> float:
        return top + lane * tasks.index(task)

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        + (f'width="{width}" height="{height}"' if compact else 'width="100%" style="display:block"')
        + f' role="img" aria-label="timeline of {_e(summary["name"])}">',
        "<defs>"
        f'<pattern id="hatch" width="7" height="7" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="7" height="7" fill="{RED}"/><line x1="0" y1="0" x2="0" y2="7" stroke="#fff" '
        'stroke-opacity=".35" stroke-width="3"/></pattern>'
        f'<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{INK}"/></marker>'
        "</defs>",
    ]
    # lanes and axis
    for index, task in enumerate(tasks):
        y = lane_y(task)
        fill = "#ffffff" if index % 2 == 0 else "#f8f9fa"
        out.append(f'<rect x="0" y="{y}" width="{width}" height="{lane}" fill="{fill}"/>')
        if not compact:
            state = next(t["state"] for t in summary["tasks"] if t["id"] == task)
            colour = {"COMPLETE": GREEN, "FAILED": RED, "CANCELLED": GREY}.get(state, INK)
            out.append(f'<text x="12" y="{y + 24}" font-size="13.5" font-weight="600" fill="{INK}">'
                       f"{_e(task)}</text>")
            out.append(f'<text x="12" y="{y + 42}" font-size="11" fill="{colour}">{_e(state)}</text>')
    if not compact:
        step, ticks = _ticks(span)
        bottom = top + lane * len(tasks)
        for t in ticks:
            out.append(f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{bottom}" stroke="#dee2e6"/>')
            out.append(f'<text x="{x(t):.1f}" y="{top - 12}" font-size="11" fill="#868e96" '
                       f'text-anchor="middle">{_fmt_t(t, step)}</text>')
        out.append(f'<line x1="{label}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#adb5bd"/>')
    regions = [t for t in tasks if t.startswith("process-region-")]
    # the regions released together (the proof behind expect.concurrent)
    for event in summary.get("events", []):
        if event["kind"] == "together" and regions and not compact:
            gx = x(event["t"])
            y1, y2 = lane_y(regions[0]) + 2, lane_y(regions[-1]) + lane - 2
            out.append(f'<g><title>{_e(event["text"])}</title><line x1="{gx:.1f}" y1="{y1}" x2="{gx:.1f}" '
                       f'y2="{y2}" stroke="#7048e8" stroke-width="1.5" stroke-dasharray="2 3"/>'
                       f'<text x="{gx + 3:.1f}" y="{y2 - 3}" font-size="10" fill="#7048e8">go</text></g>')
    # attempts
    attempts = summary.get("attempts", [])
    colours = node_colours(summary)
    for attempt in attempts:
        y = lane_y(attempt["task"]) + (2 if compact else 10)
        x1, x2 = x(attempt["start"]), x(attempt["end"])
        w = max(x2 - x1, 3.0 if compact else 5.0)
        ok = attempt["ok"]
        fill = GREEN if ok else "url(#hatch)"
        stroke = "" if ok else f' stroke="{RED}" stroke-width="1"'
        tip = attempt["event"] or f"{attempt['task']} attempt {attempt['attempt']}"
        node = attempt.get("node")
        if node:
            tip += f" (node {node['name']})"
        parts = [f'<g class="attempt {"ok" if ok else "failed"}"><title>{_e(tip)}</title>',
                 f'<rect x="{x1:.1f}" y="{y}" width="{w:.1f}" height="{bar}" rx="{2 if compact else 4}" '
                 f'fill="{fill}"{stroke}/>']
        if node:
            parts.append(f'<rect class="node" data-node="{_e(node["name"])}" x="{x1:.1f}" y="{y}" width="{w:.1f}" '
                         f'height="{2 if compact else 4}" fill="{colours[node["name"]]}"/>')
        if not compact:
            mark = "✓" if ok else "✕"
            if w > 46:
                parts.append(f'<text x="{x1 + 7:.1f}" y="{y + 15}" font-size="11.5" font-weight="700" '
                             f'fill="#fff">#{attempt["attempt"]} {mark}</text>')
            else:
                parts.append(f'<text x="{x1 + w / 2:.1f}" y="{y + 15}" font-size="11.5" font-weight="700" '
                             f'fill="#fff" text-anchor="middle">{mark}</text>')
            if not ok:
                reason = attempt["reason"] or "failed"
                if len(reason) > 70:
                    reason = reason[:67] + "…"
                anchor, tx = ("end", x1 + w) if x1 + w > label + plot * 0.6 else ("start", x1)
                parts.append(f'<text x="{tx:.1f}" y="{y + bar + 14}" font-size="11" fill="{RED}" '
                             f'text-anchor="{anchor}">{_e(reason)}</text>')
        parts.append("</g>")
        out.append("".join(parts))
    # retries: a dashed arrow from a failed attempt to the next attempt of the same task
    for before in attempts:
        after = next((a for a in attempts if a["task"] == before["task"] and a["attempt"] == before["attempt"] + 1),
                     None)
        if after is None or before["ok"] or compact:
            continue
        y = lane_y(before["task"]) + 10
        xa, xb = x(before["end"]), max(x(after["start"]), x(before["end"]) + 18)
        out.append(f'<g><title>retry: attempt {after["attempt"]} of {_e(before["task"])}</title>'
                   f'<path d="M{xa:.1f},{y} C{xa:.1f},{y - 12} {xb:.1f},{y - 12} {xb:.1f},{y - 1}" fill="none" '
                   f'stroke="{INK}" stroke-width="1.4" stroke-dasharray="3 2" marker-end="url(#arrow)"/>'
                   f'<text x="{xb + 5:.1f}" y="{y - 4}" font-size="10.5" font-weight="600" fill="{INK}">retry</text>'
                   "</g>")
    # faults
    for event in summary.get("events", []):
        if event["kind"] != "fault" or event.get("task") not in tasks:
            continue
        fx = x(event["t"])
        fy = lane_y(event["task"]) + (2 if compact else 10)
        size = 4 if compact else 7
        out.append(f'<g class="fault"><title>{_e(event["text"])}</title>'
                   f'<path d="M{fx:.1f},{fy - size} L{fx + size:.1f},{fy} L{fx:.1f},{fy + size} '
                   f'L{fx - size:.1f},{fy} z" fill="{ORANGE}" stroke="#fff" stroke-width="1.2"/></g>')
        if not compact:
            kind = event["text"].rsplit("injected ", 1)[-1]
            out.append(f'<text x="{fx - 10:.1f}" y="{fy - 3}" font-size="10.5" font-weight="600" fill="{ORANGE}" '
                       f'text-anchor="end">⚡ {_e(kind)}</text>')
    # aggregation, after the regions (and every stage of a task graph, after its own blockers)
    stages = [(task, moves, "Σ " + task) for task, moves in summary.get("stages", {}).items()]
    stages.append(("aggregate-results", summary["aggregate"]["moves"], "Σ aggregate"))
    for stage, moves, caption in stages:
        if stage not in tasks or not moves:
            continue
        y = lane_y(stage) + (2 if compact else 10)
        started = next((m for m in moves if m["to"] == "IN_PROGRESS"), None)
        final = moves[-1]
        if started is not None:
            x1 = x(started["t"])
            w = max(x(final["t"]) - x1, 4.0 if compact else 10.0)
            colour = BLUE if final["to"] == "COMPLETE" else RED
            x1 = min(x1, label + plot - w)
            if not compact:
                gy1, gy2 = top + 2, y + bar
                out.append(f'<line x1="{x1:.1f}" y1="{gy1}" x2="{x1:.1f}" y2="{gy2}" stroke="{BLUE}" '
                           'stroke-width="1.2" stroke-dasharray="4 3" opacity=".8"/>')
            kind = "aggregate" if stage == "aggregate-results" else "stage"
            out.append(f'<g class="{kind}"><title>{_e(final["event"] or final["to"])}</title>'
                       f'<rect x="{x1:.1f}" y="{y}" width="{w:.1f}" height="{bar}" rx="{2 if compact else 4}" '
                       f'fill="{colour}"/></g>')
            if not compact:
                out.append(f'<text x="{x1 - 6:.1f}" y="{y + 15}" font-size="11.5" font-weight="700" '
                           f'fill="{BLUE}" text-anchor="end">{_e(caption)}</text>')
        else:
            cx = x(final["t"])
            out.append(f'<g class="aggregate cancelled"><title>{_e(final["event"] or final["to"])}</title>'
                       f'<rect x="{cx - (4 if compact else 9):.1f}" y="{y}" width="{8 if compact else 18}" '
                       f'height="{bar}" rx="3" fill="{GREY}"/></g>')
            if not compact:
                out.append(f'<text x="{cx - 14:.1f}" y="{y + 15}" font-size="11.5" font-weight="700" '
                           f'fill="{GREY}" text-anchor="end">⊘ {_e(final["to"].lower())}</text>')
    if not compact:
        out.append(_legend(width, height, colours))
    out.append("</svg>")
    # ids must be unique in a page that holds many timelines (the index)
    uid = f"{zlib.crc32(str(summary.get('nodeid', summary['name'])).encode()):08x}{'c' if compact else ''}"
    text = "\n".join(out)
    for name in ("hatch", "arrow"):
        text = text.replace(f'id="{name}"', f'id="{name}-{uid}"').replace(f"url(#{name})", f"url(#{name}-{uid})")
    return text


def _legend(width: int, height: int, colours: Mapping[str, str]) -> str:
    y = height - 18
    items = [
        (f'<rect width="22" height="12" rx="3" fill="{GREEN}"/>', "attempt completed"),
        ('<rect width="22" height="12" rx="3" fill="url(#hatch)"/>', "attempt failed"),
        (f'<path d="M11,-1 L18,6 L11,13 L4,6 z" fill="{ORANGE}"/>', "fault injected"),
        (f'<path d="M2,10 C2,0 20,0 20,9" fill="none" stroke="{INK}" stroke-dasharray="3 2" '
         'marker-end="url(#arrow)"/>', "retry"),
        ('<line x1="11" y1="-2" x2="11" y2="14" stroke="#7048e8" stroke-dasharray="2 3" stroke-width="1.5"/>',
         "regions released together"),
        (f'<rect width="22" height="12" rx="3" fill="{BLUE}"/>', "aggregation"),
        *((f'<rect width="22" height="4" fill="{colour}"/>', f"node {name}") for name, colour in colours.items()),
    ]
    parts: list[str] = []
    cursor: float = LABEL
    for glyph, text in items:
        parts.append(f'<g transform="translate({cursor},{y - 10})">{glyph}'
                     f'<text x="28" y="10" font-size="11.5" fill="#495057">{_e(text)}</text></g>')
        cursor += 40 + 6.6 * len(text)
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return DASH
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def _result_cells(result: Mapping[str, Any] | None) -> str:
    if not result:
        return '<td class="num">&ndash;</td>' * 5
    return "".join(f'<td class="num">{_num(result.get(k), 0 if k == "count" else 4 if k != "sum" else 2)}</td>'
                   for k in ("count", "sum", "mean", "min", "max"))


def scenario_page(summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()) -> str:
    """One scenario: verdict, numbers, the timeline, per-region results, the transcript, the history."""
    verdict = summary["verdict"]
    faults = summary["faults"]["fired"]
    cards = [
        (summary["outcome"], "run outcome"),
        (f'{summary["duration"] * 1000:.0f} ms' if summary["duration"] < 10 else f'{summary["duration"]:.1f} s',
         "duration"),
        (len(summary["attempts"]), "attempts"),
        (len(faults), "faults fired"),
        (summary["retries"], "retries"),
        (", ".join(summary["recovered"]) or DASH, "recovered"),
    ]
    body = [
        f'<header><h1>{_e(summary["name"])}</h1><span class="badge {_e(verdict)}">{_e(verdict.upper())}</span>',
        f'<p class="sub"><code>{_e(summary["nodeid"])}</code> · seed {_e(summary["seed"])} · backend '
        f'{_e(summary["backend"])}{" · " + _e(summary["description"]) if summary.get("description") else ""}</p>'
        "</header>",
        '<div class="cards">' + "".join(f"<div class=card><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                                        for v, k in cards) + "</div>",
    ]
    if summary.get("mismatches"):
        body.append('<h2>What went wrong</h2><div class="mismatch"><ul>'
                    + "".join(f"<li>{_e(m)}</li>" for m in summary["mismatches"]) + "</ul></div>")
    body += ["<h2>Timeline</h2>", f'<div class="panel">{timeline_svg(summary)}</div>', "<h2>Results</h2>",
             '<table><tr><th>region</th><th>task</th><th>state</th><th class="num">attempts</th>'
             '<th class="num">records</th><th class="num">sum</th><th class="num">mean</th>'
             '<th class="num">min</th><th class="num">max</th></tr>']
    for region in summary["regions"]:
        body.append(f'<tr><td>{_e(region["id"])}</td><td>{_e(region["task"])}</td>'
                    f'<td class="state s-{_e(region["state"])}">{_e(region["state"])}'
                    f'{" (recovered)" if region["recovered"] else ""}</td>'
                    f'<td class="num">{region["attempts"]}</td>{_result_cells(region["result"])}</tr>')
    body.append(f'<tr class="total"><td>Total</td><td>aggregate-results</td>'
                f'<td class="state s-{_e(summary["aggregate"]["state"])}">{_e(summary["aggregate"]["state"])}</td>'
                f'<td class="num"></td>{_result_cells(summary.get("total"))}</tr></table>')
    body += ["<h2>Transcript</h2>", f"<pre>{_e(summary['transcript'])}</pre>"]
    if history:
        body.append("<details><summary>History: every transition, in the coordinator's order</summary>"
                    '<table><tr><th class="num">seq</th><th class="num">t</th><th>task</th><th>from</th><th>to</th>'
                    '<th class="num">attempt</th><th class="num">pid</th><th>event</th></tr>')
        for line in history:
            body.append(f'<tr><td class="num">{line["seq"]}</td><td class="num">{line["t"] * 1000:.1f} ms</td>'
                        f'<td>{_e(line["task"])}</td><td>{_e(line["from"] or "")}</td>'
                        f'<td class="state s-{_e(line["to"])}">{_e(line["to"])}</td>'
                        f'<td class="num">{line["attempt"]}</td><td class="num">{_e(line["pid"] or "")}</td>'
                        f'<td>{_e(line["event"])}</td></tr>')
        body.append("</table></details>")
    body.append('<p class="sub">Files beside this page: <a href="summary.json">summary.json</a> · '
                '<a href="history.jsonl">history.jsonl</a> · <a href="events.jsonl">events.jsonl</a> · '
                '<a href="transcript.txt">transcript.txt</a> · <a href="../index.html">all scenarios</a></p>')
    return _page(f"{summary['name']}: {verdict}", "\n".join(body))


def index_page(rows: Sequence[Mapping[str, Any]], headline: str) -> str:
    """Every scenario of the run: verdict, a thumbnail timeline, and the numbers."""
    body = [f"<header><h1>distproc report</h1><p class=sub>{_e(headline)}</p></header>",
            '<table><tr><th>scenario</th><th>verdict</th><th>outcome</th><th>timeline</th>'
            '<th class="num">attempts</th><th class="num">faults</th><th class="num">retries</th>'
            '<th>recovered</th><th class="num">duration</th></tr>']
    for row in rows:
        summary = row.get("summary")
        verdict = row["verdict"]
        name = (f'<a href="{_e(row["slug"])}/timeline.html">{_e(row["name"])}</a>' if "slug" in row
                else _e(row["name"]))
        note = ""
        if row.get("mismatches"):
            first = row["mismatches"][0].splitlines()[0]
            note = f'<div class="sub" style="margin:4px 0 0;color:#c92a2a">{_e(first)}</div>'
        thumb = timeline_svg(summary, compact=True) if summary else ""
        duration = f'{row["duration"] * 1000:.0f} ms' if row.get("duration") is not None else DASH
        body.append(f'<tr><td>{name}<div class="sub" style="margin:2px 0 0;font-size:12px">'
                    f'{_e(row["nodeid"])}</div>{note}</td>'
                    f'<td><span class="badge {_e(verdict)}">{_e(verdict.upper())}</span></td>'
                    f'<td class="state s-{_e(row.get("outcome") or "")}">{_e(row.get("outcome") or DASH)}</td>'
                    f"<td>{thumb}</td>"
                    f'<td class="num">{_e(row.get("attempts", DASH))}</td><td class="num">{_e(row.get("faults", DASH))}'
                    f'</td><td class="num">{_e(row.get("retries", DASH))}</td>'
                    f'<td>{_e(", ".join(row.get("recovered") or []) or DASH)}</td>'
                    f'<td class="num">{duration}</td></tr>')
    body.append("</table>")
    body.append('<p class="sub">Also here: <a href="summary.md">summary.md</a> (for a CI job summary) · '
                '<a href="index.json">index.json</a></p>')
    return _page("distproc report", "\n".join(body))
