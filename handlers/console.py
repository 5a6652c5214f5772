"""The terminal: the same flows as Slack, for trying crisisbot out and for drills.

Messages print as text; buttons get numbers and are pressed by typing the number.
When stdin is not a terminal, commands are read line by line, so sessions can be scripted.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot import commands
from bot.closing import check_lesson
from bot.core import Core, Outcome
from bot.drafting import FREE
from bot.errors import Refusal
from bot.export import filename as export_filename
from bot.export import to_markdown
from bot.messages import Actions, Button, Context, Message, Section, UserPicker
from bot.texts import Trusted

WORKSPACE = "console"
PLATFORM = "console"
HOME = "general"
_EMOJI = {":rotating_light:": "🚨", ":white_check_mark:": "✅", ":white_square:": "☐", ":fast_forward:": "⏭",
          ":arrow_up:": "↑", ":arrow_down:": "↓", ":warning:": "⚠", ":memo:": "📝", ":hourglass_flowing_sand:": "⏳",
          ":no_entry:": "⛔", ":leftwards_arrow_with_hook:": "↩", ":mega:": "📣", ":pencil2:": "✏",
          ":zzz:": "💤", ":loudspeaker:": "📢", ":alarm_clock:": "⏰",
          ":file_cabinet:": "🗄", ":page_facing_up:": "📄"}
_MENTION = re.compile(r"<([@#])([^>|]+)(?:\|[^>]*)?>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_ITALIC = re.compile(r"(?<!\w)_([^_\n]+)_(?!\w)")


def to_terminal(text: str) -> str:
    for code, symbol in _EMOJI.items():
        text = text.replace(code, symbol)
    text = _MENTION.sub(lambda m: m.group(1) + m.group(2), text)
    return _unescape(_ITALIC.sub(r"\1", _BOLD.sub(r"\1", text)))


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass(frozen=True)
class Pressable:
    incident_id: int
    element: Button | UserPicker


class Console:
    def __init__(self, core: Core, user: str, out: TextIO = sys.stdout,
                 read: Callable[[str], str] | None = None, echo: bool = False):
        self.core = core
        self.user = user
        self.out = out
        self.read = read or input
        self.echo = echo
        self.channel = HOME
        self.buttons: dict[int, Pressable] = {}
        self.worker = f"console:{os.getpid()}"
        self._reminder_lock = threading.Lock()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def t(self, name: str, **values) -> str:
        return self.core.say(name, **values)

    def ask(self, question: str, **values) -> str:
        """A question of a form; the space after it leaves room for the answer."""
        return self.read(self.t(question, **values) + " ")

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        self.say(to_terminal(self.t("console_welcome", user=self.user, database=self.core.db.url)))
        while True:
            try:
                line = self.read(f"#{self.channel} @{self.user}> " if not self.echo else "")
            except (EOFError, KeyboardInterrupt):
                self.say()
                return 0
            self.deliver_due()  # what fell due while the user was typing (or the script was read)
            if self.echo and line.strip():
                self.say(f"> {line}")
            if line.strip() in ("/quit", "/exit"):
                return 0
            try:
                self.handle(line)
                self.deliver_due()  # a change can make a reminder due at once (e.g. a snooze of the past)
            except (EOFError, KeyboardInterrupt):
                # The input ended in the middle of a form: nothing was saved; leave as at the prompt.
                self.say()
                return 0

    def handle(self, line: str) -> None:
        line = line.strip()
        try:
            if not line:
                return
            if line.isdigit():
                self.press(int(line))
            elif line.startswith("/as "):
                self.user = _name(line[4:])
                self.say(self.t("console_now_user", user=self.user))
            elif line.startswith(("/join ", "/channel ")):
                self.join(line.split(maxsplit=1)[1].lstrip("#"))
            elif line == "/crisis" or line.startswith("/crisis "):
                # A terminal line has no line breaks of its own: "\n" stands for one.
                self.command(line[len("/crisis"):].strip().replace("\\n", "\n"))
            else:
                self.say(self.t("console_unknown_input"))
        except Refusal as refusal:
            self.private(self.core.explain(refusal))

    def join(self, channel: str) -> None:
        if channel != HOME and self.core.incident_in_channel(WORKSPACE, channel) is None:
            self.say(self.t("console_no_channel", channel=channel))
            return
        self.channel = channel
        self.say(self.t("console_in_channel", channel=channel))

    # -- /crisis ---------------------------------------------------------------------------

    def command(self, text: str) -> None:
        core = self.core
        command = core.parse(text)
        if command.name == "help":
            self.private(core.help_text())
            return
        if command.name == "start":
            if command.title:
                self.start(command.title, command.crisis_type, command.severity, "")
            else:
                self.start_form()
            return
        incident_id = core.incident_in_channel(WORKSPACE, self.channel)
        if incident_id is None:
            raise Refusal("not_in_incident", command=command.name)
        if command.name == "update":
            known = self.ask("console_prompt_known")
            doing = self.ask("console_prompt_doing")
            following = self.ask("console_prompt_next")
            self.apply(core.status_update(incident_id, self.user, known, doing, following))
        elif command.name == "statements":
            self.private(core.statement_list(incident_id))
        elif command.name == "draft" and not (command.template == FREE and command.text):
            self.draft_form(incident_id, command.template)
        elif command.name == "status":
            self.private(core.status(incident_id))
        elif command.name == "export":
            self.export(incident_id)
        elif command.name == "roles":
            self.show(core.roster(incident_id), incident_id, private=True)
        else:
            self.apply(core.run(command, incident_id, self.user))

    def start_form(self) -> None:
        """The console's start modal: one question a line, Enter keeps the default."""
        pb = self.core.playbook
        title = self.ask("console_prompt_title")
        crisis_type = self.ask("console_prompt_type", types=", ".join(pb.type_by_key)).strip() or None
        levels = ", ".join(f"sev{s.level}" for s in pb.severities)
        severity = self.ask("console_prompt_severity", levels=levels).strip()
        description = self.ask("console_prompt_description")
        level = commands.parse_severity(severity, pb) if severity else None
        self.start(title, crisis_type, level, description)

    def start(self, title, crisis_type, severity, description) -> None:
        opening = self.core.start_incident(WORKSPACE, self.user, title, crisis_type=crisis_type,
                                           severity=severity, description=description)
        # The console's channel id is its name: nothing outside this database can clash with it.
        name = opening.channel_name()
        attempt = 1
        while self.core.incident_in_channel(WORKSPACE, name) is not None:
            attempt += 1
            name = opening.channel_name(attempt)
        outcome = self.core.opened(opening.incident_id, name, name)
        self.channel = name
        self.say(self.t("console_in_channel", channel=name))
        self.apply(outcome)

    def draft_form(self, incident_id: int, template: str | None) -> None:
        """The console's draft modal: choose a template, answer each variable, see the text, post."""
        core = self.core
        if template is None:
            choices = [key for key, _title in core.templates_for(incident_id)]
            template = self.ask("console_prompt_template", choices=", ".join(choices)).strip() or FREE
        form = core.draft_form(incident_id, template)
        values = {}
        for field in form.fields:
            answer = self.ask("console_prompt_variable", label=field.label,
                                      example=field.value or field.example, required=field.required)
            # Enter keeps what the incident prefilled; "\n" types a line break on one line.
            values[field.name] = (answer.strip() or field.value).replace("\\n", "\n")
        self.apply(core.draft(incident_id, self.user, form.template, values))

    # -- buttons ---------------------------------------------------------------------------

    def press(self, number: int) -> None:
        pressable = self.buttons.get(number)
        if pressable is None:
            self.say(self.t("console_unknown_button", number=number))
            return
        element, incident_id = pressable.element, pressable.incident_id
        core = self.core
        if isinstance(element, UserPicker):
            chosen = _name(self.ask("console_prompt_user"))
            self.apply(core.assign_role(incident_id, self.user, chosen, element.value))
        elif element.action == "role.claim":
            self.apply(core.claim_role(incident_id, self.user, element.value))
        elif element.action.startswith("stmt."):
            self.statement_button(incident_id, element.action.removeprefix("stmt."), element.value)
        elif element.action.startswith("lesson."):
            kind = element.action.removeprefix("lesson.")
            text = self.ask("console_prompt_lesson", kind=kind)
            check_lesson("well", text, None)  # the text first: no owner question for a lesson refused anyway
            answer = self.ask("console_prompt_owner").strip() if kind == "action" else ""
            self.apply(core.add_lesson(incident_id, self.user, kind, text, _name(answer) if answer else None))
        elif element.action == "retro.export":
            self.export(incident_id)
        elif element.action == "retro.archive":
            self.apply(core.archive(incident_id, self.user))
        else:
            self.apply(core.set_item(incident_id, self.user, element.value, element.action))

    def statement_button(self, incident_id: int, action: str, value: str) -> None:
        core = self.core
        number, _, version = value.partition(".")
        number, version = int(number), int(version)
        if action == "approve":
            self.apply(core.decide(incident_id, self.user, number, version, "approve"))
        elif action in ("changes", "reject"):
            reason = self.ask("console_prompt_reason")
            self.apply(core.decide(incident_id, self.user, number, version, action, reason))
        elif action == "edit":
            text = self.ask("console_prompt_text").replace("\\n", "\n")
            self.apply(core.edit(incident_id, self.user, number, version, text))
        elif action == "publish":
            where = self.ask("console_prompt_where")
            link = self.ask("console_prompt_link")
            self.apply(core.publish(incident_id, self.user, number, version, where, link))

    def export(self, incident_id: int) -> None:
        """The console's file upload: the Markdown retrospective in the current directory."""
        retro = self.core.retrospective(incident_id)
        path = Path(export_filename(retro, "md")).resolve()
        try:
            path.write_text(to_markdown(retro, self.core.playbook), encoding="utf-8")
        except OSError as exc:
            self.private(self.t("console_export_failed", path=str(path), reason=exc.strerror or str(exc)))
            return
        self.private(self.t("console_export_written", path=str(path)))

    # -- reminders ---------------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Print every reminder and escalation that is due; the console's own scheduler."""
        sent = 0
        with self._reminder_lock:
            while ids := self.core.claim_due(self.worker):
                for reminder_id in ids:
                    fired = self.core.fire(reminder_id, self.worker)
                    if fired is None:
                        continue
                    outcome, alerts = fired
                    self.apply(outcome)
                    for alert in alerts:
                        self.say(f"[{self.t('console_announcement', channel=alert.channel.lstrip('#'))}] "
                                 f"{to_terminal(alert.text)}")
                    self.core.mark_sent(reminder_id, self.worker)
                    sent += 1
        return sent

    # -- output ------------------------------------------------------------------------------

    def apply(self, outcome: Outcome) -> None:
        if outcome.private:
            self.private(outcome.private)
        for notice in outcome.notices:
            self.say(to_terminal(notice))
        if outcome.updates:
            posted = self.core.posted(outcome.incident_id, PLATFORM)
            latest = {m.key: m for m in self.core.standing_messages(outcome.incident_id)}
            for message in outcome.updates:
                message = latest.get(message.key, message)
                fingerprint = message.fingerprint()
                row = posted.get(message.key)
                if row is not None and row.fingerprint == fingerprint:
                    continue
                if message.place == "announcement":
                    channel = self.core.playbook.team.announcement_channel
                    if not channel:
                        continue
                    self.say(f"[{self.t('console_announcement', channel=channel.lstrip('#'))}]")
                self.show(message, outcome.incident_id, updated=row is not None)
                self.core.record_post(outcome.incident_id, PLATFORM, message.key, outcome.channel_id,
                                      message.key, fingerprint)
        if outcome.topic:
            self.say(f"  ({to_terminal(self.t('console_topic', topic=Trusted(outcome.topic)))})")
        channel = self.core.playbook.team.announcement_channel
        if outcome.announcement and channel:
            self.say(f"[{self.t('console_announcement', channel=channel.lstrip('#'))}] "
                     f"{to_terminal(outcome.announcement)}")
        if outcome.archive:  # the console's channels live in its database: nothing else to archive
            self.say(f"  ({self.t('console_archived', channel=outcome.channel_id)})")

    def private(self, text: str) -> None:
        self.say(f"[{self.t('console_private')}] {to_terminal(text)}")

    def show(self, message: Message, incident_id: int, updated: bool = False, private: bool = False) -> None:
        label = self.t("console_updated") if updated else (self.t("console_private") if private else "")
        self.say(f"── {message.key or ''}{f' ({label})' if label else ''} " + "─" * 20)
        for block in message.blocks:
            if isinstance(block, (Section, Context)):
                verbatim = isinstance(block, Section) and block.verbatim
                text = _unescape(block.text) if verbatim else to_terminal(block.text)
                self.say(("  " if isinstance(block, Context) else "") + text)
                if isinstance(block, Section) and block.button:
                    self.say("    " + self._number(block.button, incident_id))
            elif isinstance(block, Actions):
                self.say("    " + "  ".join(self._number(e, incident_id) for e in block.elements))

    def _number(self, element: Button | UserPicker, incident_id: int) -> str:
        number = len(self.buttons) + 1
        self.buttons[number] = Pressable(incident_id, element)
        label = element.placeholder if isinstance(element, UserPicker) else element.label
        return f"[{number}] {label}"


def _name(text: str) -> str:
    """Console user names look like the ids of other platforms: letters, digits, . _ -"""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "", text.strip().lstrip("@"))
    return cleaned[:40] or "someone"
