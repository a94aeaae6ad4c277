"""Small formatting helpers for the console's templates."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from provisioning.display import run_status_word
from tenants.formats import seconds_text, stamp_text

register = template.Library()

# How many written items (timeline items, stamps) a process keeps before it starts again.
_KEPT_MAX = 20_000


@register.filter
def duration(ms: int | None) -> str:
    """Milliseconds as an operator reads them: 840 ms, 2.4 s, 3 min 5 s."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


@register.filter
def seconds(value: float | None) -> str:
    return seconds_text(value)


@register.filter
def run_status(run: Any) -> str:
    """A run's status in the words every door's screen uses (stalled, abandoned, ...)."""
    return run_status_word(run)


@register.simple_tag
def state_badge(state: str) -> str:
    """A tenant state as a coloured badge (the text says it too, for colour-blind eyes)."""
    return format_html(
        '<span class="badge state-{}" data-state="{}">{}</span>', state, state, state.title()
    )


@register.filter
def get(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def shortid(value: Any) -> str:
    return str(value)[:8] if value else ""


@register.filter
def event_summary(data: Any) -> list[tuple[str, str]]:
    """An event's data as (key, value) pairs for display; nested values as compact JSON."""
    import json

    if not isinstance(data, dict):
        return [("data", json.dumps(data))]
    pairs = []
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        pairs.append((str(key), shown))
    return pairs


@register.filter
def urlencode_dict(mapping: dict[str, str]) -> str:
    """A dict of query parameters as a query string (escaped again by autoescape: fine in href)."""
    from django.utils.http import urlencode

    return urlencode(mapping) if mapping else ""


@register.simple_tag
def condition_badge(condition: str, state: str = "") -> str:
    """A tenant's condition as a badge; the ones needing an operator are marked as such.

    Beside a state badge that says the same word (a failed tenant's condition is ``failed``),
    the badge says only what the word does not: "Needs attention", or nothing at all.
    """
    from tenants.models import NEEDS_ATTENTION, Condition

    label = dict(Condition.choices).get(condition, condition)
    attention = condition in NEEDS_ATTENTION
    if state and condition == state:
        if not attention:
            return ""
        label = "Needs attention"
    return format_html(
        '<span class="badge condition cond-{}{}" data-condition="{}"{}>{}</span>',
        condition,
        " attention" if attention else "",
        condition,
        format_html(' title="{}"', "Needs attention") if attention else "",
        label,
    )


_STAMPS: dict[Any, str] = {}


@register.simple_tag
def stamp(moment: Any) -> str:
    """A timestamp as ``<time>``: machine-readable ISO 8601 plus the one readable format.

    Kept by moment (an aware datetime: equal moments in other zones are other keys, as their
    ISO text differs), bounded like the timeline's items: a page shows the same few moments
    on every refresh, and writing one was 15-20 µs."""
    if moment is None:
        return "—"
    key = (moment, moment.utcoffset())
    found = _STAMPS.get(key)
    if found is None:
        found = format_html('<time datetime="{}">{}</time>', moment.isoformat(), stamp_text(moment))
        if len(_STAMPS) >= _KEPT_MAX:
            _STAMPS.clear()
        _STAMPS[key] = found
    return found


@register.filter
def dotbreak(value: str) -> str:
    """A dotted name that may wrap after its dots and nowhere else (``<wbr>``)."""
    from django.utils.html import conditional_escape
    from django.utils.safestring import mark_safe

    return mark_safe(".<wbr>".join(conditional_escape(p) for p in str(value).split(".")))  # noqa: S308


@register.simple_tag
def tenant_rows(tenants: list[Any], selectable: Any) -> SafeString:
    """The tenant list's ``<tr>`` rows, written here instead of in a template loop.

    The same markup the loop wrote, for a reason measured at 100,000 tenants: the template
    engine spent about 25 ms on 50 rows (seven nodes, three tags, a URL reversal and a dozen
    variable lookups a row), more than every query of the page together; this spends a
    fraction of that. User text (slug, name, e-mail) is escaped; the badges come from the
    same tags the rest of the console uses, once per distinct value.
    """
    from tenants.models import Plan

    plans = dict(Plan.choices)
    states: dict[str, str] = {}
    conditions: dict[str, str] = {}
    # One reversal for the page: the detail URL with a placeholder where the id goes.
    marker = "00000000-0000-0000-0000-000000000000"
    detail_before, detail_after = reverse("console:tenant_detail", args=[marker]).split(marker)
    out: list[str] = []
    for t in tenants:
        slug = escape(t.slug)
        pk = escape(str(t.pk))
        if t.state not in states:
            states[t.state] = state_badge(t.state)
        if t.condition not in conditions:
            conditions[t.condition] = condition_badge(t.condition)
        out.append(
            f'<tr data-tenant="{slug}" data-condition="{escape(t.condition)}">'
            + (
                f'<td data-label="Select"><input type="checkbox" name="ids" value="{pk}" '
                f'form="bulk" aria-label="Select {slug}"></td>'
                if selectable  # a checkbox when the user may apply a bulk operation
                else ""
            )
            + f'<td class="wrap" data-label="Slug"><a href="{escape(detail_before)}{pk}'
            f'{escape(detail_after)}">{slug}</a></td>'
            f'<td class="wrap" data-label="Name">{escape(t.name)}</td>'
            f'<td data-label="State">{states[t.state]}</td>'
            f'<td data-label="Condition">{conditions[t.condition]}</td>'
            f'<td data-label="Plan">{escape(plans.get(t.plan, t.plan))}</td>'
            f'<td class="wrap" data-label="Admin e-mail">{escape(t.admin_email)}</td>'
            f'<td data-label="Created">{stamp(t.created_at)}</td></tr>\n'
        )
    return mark_safe("".join(out))  # noqa: S308 - every value above is escaped or built safe


# Each event's timeline item, by (id, digest), written once a process: an event is never
# rewritten, and its digest covers everything the item shows (audit.chain), so a kept item is
# the item. Bounded: emptied when full (a process serves a working set of recent tenants).
_EVENT_ITEMS: dict[tuple[int, str], str] = {}


@register.simple_tag
def timeline_items(events: list[Any]) -> SafeString:
    """The timeline's ``<li>`` items, newest first as given; "No events." when there are none.

    Written here rather than in a template loop for the reason ``tenant_rows`` is: the loop
    was half of the detail page's rendering (docs/performance.md, "The reads' cuts").
    """
    if not events:
        return mark_safe('<li class="muted">No events.</li>')
    out: list[str] = []
    for e in events:
        key = (e.id, e.digest)
        item = _EVENT_ITEMS.get(key)
        if item is None:
            item = _event_item(e)
            if len(_EVENT_ITEMS) >= _KEPT_MAX:
                _EVENT_ITEMS.clear()
            _EVENT_ITEMS[key] = item
        out.append(item)
    return mark_safe("".join(out))  # noqa: S308 - every value in an item is escaped or built safe


def _event_item(e: Any) -> str:
    kind = escape(e.type)
    run = (
        f'<span class="muted" title="run {escape(e.run_id)}">run {escape(shortid(e.run_id))}</span>'
        if e.run_id
        else ""
    )
    data = (
        '<dl class="event-data">'
        + "".join(
            f'<dt>{escape(k)}</dt><dd class="wrap">{escape(v)}</dd>'
            for k, v in event_summary(e.data)
        )
        + "</dl>"
        if e.data
        else ""
    )
    return (
        f'<li data-event-type="{kind}" data-event-id="{e.id}">'
        f'<div class="event-head"><code class="event-type">{kind}</code> {stamp(e.occurred_at)} '
        f'<span class="muted">{escape(e.actor)}</span> {run}</div>{data}</li>\n'
    )


_PATHS: dict[tuple[str, str, Any], str] = {}


@register.simple_tag
def path(name: str) -> str:
    """``{% url name %}`` for a route that takes no argument, reversed once a process (per
    script prefix and URLconf): the page's menu reversed the same eight routes on every
    request, a tenth of the detail page's time in process."""
    from django.urls import get_script_prefix, get_urlconf

    key = (name, get_script_prefix(), get_urlconf())
    found = _PATHS.get(key)
    if found is None:
        found = _PATHS[key] = reverse(name)
    return found


@register.simple_tag
def step_table_rows(steps: list[Any]) -> SafeString:
    """The current run's steps table rows (``console.presenters.StepRow``), written here for
    the reason ``tenant_rows`` is: the template loop was the largest part of the detail
    page's rendering once the timeline was written in Python (docs/performance.md)."""
    out: list[str] = []
    for step in steps:
        name, status = escape(step.name), escape(step.status)
        notes: list[str] = []
        if step.heartbeat_age is not None:
            overdue = step.heartbeat_overdue
            percent = step.heartbeat_percent
            notes.append(
                f'<div class="heartbeat{" overdue" if overdue else ""}">'
                f"<span>last heartbeat {escape(seconds_text(step.heartbeat_age))} ago · timeout "
                f"{escape(seconds_text(step.heartbeat_timeout))}</span>"
                f'<meter min="0" max="100" low="60" high="90" optimum="0" value="{percent}">'
                f"{percent}%</meter>"
                + (
                    "<strong>overdue: the watchdog will dispatch it again or flag the run</strong>"
                    if overdue
                    else ""
                )
                + "</div>"
            )
        if step.note:
            notes.append(f'<span class="muted">{escape(step.note)}</span>')
        if step.compensation:
            notes.append(
                f'<span class="muted">released by <code>{escape(step.compensation)}</code></span>'
            )
        if step.error:
            notes.append(f'<pre class="error-text small">{escape(step.error)}</pre>')
        out.append(
            f'<tr data-step="{name}" data-status="{status}" class="step-{status}">'
            f'<td data-label="#">{int(step.position)}</td>'
            f'<td data-label="Step"><code>{name}</code></td>'
            f'<td data-label="Status"><span class="badge step {status}">{status}</span></td>'
            f'<td data-label="Tries">{int(step.tries)}</td>'
            f'<td data-label="Duration">{escape(duration(step.duration_ms))}</td>'
            f'<td class="wrap notes" data-label="Notes">{"".join(notes)}</td></tr>\n'
        )
    return mark_safe("".join(out))  # noqa: S308 - every value above is escaped or a number


@register.simple_tag
def action_links(offered: list[dict[str, Any]], actions: list[dict[str, Any]]) -> SafeString:
    """The detail page's operations: a link to each one's confirmation step the user may take
    now, then every other with the reason it is not offered. Written here for the reason
    ``tenant_rows`` is (docs/performance.md, "The reads' cuts")."""
    out: list[str] = []
    for action in offered:
        kind = "danger" if action["danger"] else "primary"
        out.append(
            f'<a class="button action {kind}" href="{escape(action["url"])}" '
            f'data-action="{escape(action["name"])}">{escape(action["label"])}</a>\n'
        )
    if not offered:
        to_you = " to you" if actions else ""
        out.append(f'<p class="muted">No action is available{to_you} in this state.</p>\n')
    out.append('<ul class="unavailable small" aria-label="Not possible now">\n')
    for action in actions:
        if not action["available"] or not action["permitted"]:
            out.append(
                f'<li data-unavailable="{escape(action["name"])}"><strong>'
                f'{escape(action["label"])}</strong>: <span class="muted">'
                f"{escape(action['reason'])}</span></li>\n"
            )
    out.append("</ul>")
    return mark_safe("".join(out))  # noqa: S308 - every value above is escaped
