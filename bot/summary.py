"""The retrospective summary as chat messages: one in the incident channel with the lesson
buttons, a copy for the announcement channel. Rendered from templates/<lang>/retro.j2.

A chat message has limits (Slack: 3000 characters a section, 50 blocks), so each list is cut
to what fits and says how many more the export holds; the export has everything.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.closing import LESSON_KINDS
from bot.messages import Actions, Button, Context, Message, Section
from bot.models import Incident
from bot.retrospective import BOT, Retrospective
from bot.texts import mention, person
from bot.views import Views

SECTION = 2900   # characters a section may take, under Slack's 3000
FIRST_TRY = 12   # list rows tried first; fewer when they do not fit


def fit(render: Callable[[int], str], count: int, start: int = FIRST_TRY) -> str:
    """The longest rendering, showing at most `start` of `count` rows, that fits a section."""
    shown = min(count, start)
    text = render(shown)
    while len(text) > SECTION and shown > 0:
        shown = shown // 2 if shown > 4 else shown - 1
        text = render(shown)
    return text if len(text) <= SECTION else text[: SECTION - 1] + "…"


def _more(rows: list, shown: int) -> int:
    return max(0, len(rows) - shown)


class Summary:
    def __init__(self, views: Views):
        self.views = views

    def t(self, incident: Incident, name: str, /, **values) -> str:
        return self.views.t(incident, name, **values)

    def messages(self, incident: Incident, retro: Retrospective, announce: bool) -> list[Message]:
        blocks = [*self.blocks(incident, retro), Section(self.lessons(incident, retro, here=True))]
        title = self.t(incident, "retro_title", ref=retro.ref, title=retro.title)
        footer = Context(self.t(incident, "retro_footer", events=len(retro.timeline), archived=retro.archived_at,
                                archive_at=None if retro.archived_at else retro.archive_due))
        out = [Message("retrospective", title, (*blocks, *self.buttons(incident, retro), footer))]
        if announce:
            where = Context(self.t(incident, "retro_announce_footer", channel=self.views.channel(incident),
                                   archived=retro.archived_at is not None))
            # A broad channel: people are named, not mentioned, so the copy pings nobody.
            copy = (*self.blocks(incident, retro, who=person),
                    Section(self.lessons(incident, retro, here=False, who=person)), where)
            out.append(Message("retrospective:announce", title, copy, place="announcement"))
        return out

    def buttons(self, incident: Incident, retro: Retrospective) -> list:
        if retro.archived_at is not None:
            return []
        return [Actions((
            Button("lesson.well", self.t(incident, "btn_lesson", kind="well"), "well", "primary"),
            Button("lesson.improve", self.t(incident, "btn_lesson", kind="improve"), "improve"),
            Button("lesson.action", self.t(incident, "btn_lesson", kind="action"), "action"),
            Button("retro.export", self.t(incident, "btn_export"), "md"),
            Button("retro.archive", self.t(incident, "btn_archive"), "now", "danger"),
        ))]

    def blocks(self, incident: Incident, retro: Retrospective, who: Callable = mention) -> list:
        """The summary's sections; `who` writes a person (mention pings, person only names)."""
        views = self.views
        sev = lambda level: views.severity_label(incident, level)  # noqa: E731
        day = retro.started_at.date()
        head = self.t(incident, "retro_head", ref=retro.ref, title=retro.title, severity=sev(retro.severity),
                      first_severity=sev(retro.first_severity), crisis_type=views.type_label(incident),
                      started=retro.started_at, resolved=retro.resolved_at, closed=retro.closed_at,
                      closed_by=who(retro.closed_by) if retro.closed_by else None)
        figures = self.t(incident, "retro_figures", acknowledge=retro.time_to_acknowledge,
                         first_statement=retro.time_to_first_statement, resolve=retro.time_to_resolve,
                         met=retro.met, missed=retro.missed, deadlines=len(retro.deadlines))
        moments = [self._moment(incident, m, who) for m in retro.moments]
        blocks = [Section(head), Section(figures),
                  Section(fit(lambda n: self.t(incident, "retro_moments", rows=moments[:n], more=len(moments) - n,
                                               day=day), len(moments)))]
        deadlines = [(d.kind, d.due_at, d.state, d.early_by, d.late_by, d.done_late_at,
                      who(d.snoozed_by) if d.snoozed_by else None, d.snooze_reason, d.snoozed_for,
                      d.reminders_sent, len(d.escalations), d.stopped_at_resolve) for d in retro.deadlines]
        # Missed and snoozed deadlines first: those are what a review talks about.
        deadlines.sort(key=lambda d: (d[2] != "missed", d[6] is None))
        if deadlines:
            blocks.append(Section(fit(lambda n: self.t(incident, "retro_deadlines", rows=deadlines[:n],
                                                       more=len(deadlines) - n, day=day), len(deadlines))))
        steps = [(self._step_name(incident, st.key), views.phase_label(incident, st.phase) if st.phase else "",
                  len(st.of("done")), [(i.title, who(i.by) if i.by else None) for i in st.of("skipped")],
                  [(i.title, views.role_label(incident, i.owner_role)) for i in st.of("open")])
                 for st in retro.checklist]
        blocks.append(Section(fit(lambda n: self.t(incident, "retro_checklist", steps=steps, limit=n),
                                  max((len(s[3]) + len(s[4]) for s in steps), default=0), start=24)))
        if retro.statements:
            rows = [self._statement(incident, st, who) for st in retro.statements]
            blocks.append(Section(fit(lambda n: self.t(incident, "retro_statements", rows=rows[:n],
                                                       more=len(rows) - n, day=day), len(rows))))
        roles = [(views.role_label(incident, r.role), who(r.user), r.started_at, r.ended_at) for r in retro.roles]
        people = [(who(p.user), p.actions) for p in retro.participants]
        changes = [(c.at, who(c.by), sev(c.previous), sev(c.severity)) for c in retro.severity_changes]
        blocks.append(Section(fit(lambda n: self.t(
            incident, "retro_people", roles=roles[:n], more_roles=_more(roles, n), people=people[:n],
            more_people=_more(people, n), changes=changes[:n], more_changes=_more(changes, n), day=day),
            max(len(roles), len(people), len(changes)))))
        return blocks

    def lessons(self, incident: Incident, retro: Retrospective, here: bool, who: Callable = mention) -> str:
        """The lessons section; `here`: in the incident channel, above the buttons that add them."""
        lessons = {kind: [(x.text, who(x.owner) if x.owner else None, who(x.author))
                          for x in retro.lessons if x.kind == kind] for kind in LESSON_KINDS}
        return fit(lambda n: self.t(
            incident, "retro_lessons", well=lessons["well"][:n], improve=lessons["improve"][:n],
            actions=lessons["action"][:n], more=sum(_more(v, n) for v in lessons.values()), here=here),
            max(len(v) for v in lessons.values()), start=20)

    def _moment(self, incident: Incident, moment, who: Callable = mention) -> tuple:
        views, data = self.views, moment.data
        detail: dict = {}
        if moment.kind == "acknowledged":
            detail = {"role": views.role_label(incident, data["role"]) if data.get("role") else None,
                      "item": data.get("title")}
        elif moment.kind == "severity.changed":
            detail = {"old": views.severity_label(incident, int(data.get("previous", 0))),
                      "new": views.severity_label(incident, int(data.get("severity", 0)))}
        elif moment.kind == "phase.changed":
            detail = {"new": views.phase_label(incident, data.get("phase"))}
        elif moment.kind == "statement.published":
            detail = {"number": data.get("statement"), "where": data.get("where")}
        elif moment.kind in ("deadline.missed", "deadline.snoozed"):
            detail = {"deadline": data.get("kind"), "reason": data.get("reason")}
        actor = who(moment.actor) if moment.actor and moment.actor != BOT else None
        return moment.at, actor, moment.kind, detail

    def _statement(self, incident: Incident, st, who: Callable = mention) -> tuple:
        views = self.views
        last = st.versions[-1]
        steps = [(s.index + 1, ", ".join(views.role_label(incident, r) for r in s.roles), s.took,
                  [(who(a.user), a.at) for a in s.approvals]) for s in last.steps]
        objections = sum(len(v.objections) for v in st.versions)
        return (st.number, st.title, st.audience, st.state, len(st.versions), steps, objections, st.published_at,
                st.published_where, st.published_link, st.draft_to_publish,
                who(st.published_by) if st.published_by else None)

    def _step_name(self, incident: Incident, key: str) -> str:
        step = next((s for s in self.views.playbook.checklist if s.key == key), None)
        return self.views.loc(incident, step.name) if step else key
