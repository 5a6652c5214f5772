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
from bot.delivery import REPAIR
from bot.drafting import FREE, check_field
from bot.errors import Refusal
from bot.export import filename as export_filename
from bot.export import to_markdown
from bot.messages import Actions, Button, Context, Message, Section, UserPicker
from bot.rehearsal import PLACEHOLDER, SOMEONE, rehearse
from bot.texts import Trusted, name_people

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
    text = _MENTION.sub(lambda m: m.group(1) + m.group(2), name_people(text, {}))  # console ids are names
    return _unescape(_ITALIC.sub(r"\1", _BOLD.sub(r"\1", text)))


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class FormCancelled(Exception):
    """Ctrl-D (or Ctrl-C) while a form asks: that form ends, nothing is saved, the session goes on."""


class CommandInForm(Exception):
    """A line starting with / typed while a form asks: the form ends and the line runs as a command."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


class Answered(Exception):
    """A form need not go on: the action would change nothing, and says why (privately)."""


@dataclass(frozen=True)
class Pressable:
    incident_id: int
    element: Button | UserPicker


class Console:
    def __init__(self, core: Core, user: str, out: TextIO = sys.stdout,
                 read: Callable[[str], str] | None = None, echo: bool = False, playbook_path: str | None = None):
        self.core = core
        self.playbook_path = playbook_path  # for the banner; None: the shipped playbook
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

    def ask(self, question: str, check: Callable[[str], object] | None = None, **values):
        """A question of a form; the space after it leaves room for the answer.

        ``check`` turns the answer into the value to keep or raises the Refusal the action would give:
        the refusal is shown and the same question asked again, so nothing typed before is lost.
        Ctrl-D cancels the form (FormCancelled); a line starting with / is a command (CommandInForm)."""
        while True:
            try:
                answer = self.read(self.t(question, **values) + " ")
            except (EOFError, KeyboardInterrupt):
                raise FormCancelled from None
            if answer.lstrip().startswith("/"):
                raise CommandInForm(answer.strip())
            if check is None:
                return answer
            try:
                return check(answer)
            except Refusal as refusal:
                self.private(self.core.explain(refusal))
                self.say(self.t("console_ask_again"))

    def rehearse(self, action: str, /, *args) -> None:
        """Raise now the refusal the action would give, before the form asks anyone to type; an action
        that would only answer (already published, unchanged) answers now and ends the form."""
        outcome = rehearse(self.core, action, *args)
        if isinstance(outcome, Outcome) and outcome.private and not outcome.notices and not outcome.updates:
            raise Answered(outcome.private)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        self.say(to_terminal(self.banner()))
        typed_in_form = None
        while True:
            if typed_in_form is None:
                try:
                    line = self.read(f"#{self.channel} @{self.user}> " if not self.echo else "")
                except (EOFError, KeyboardInterrupt):
                    self.say()
                    return 0
                self.deliver_due()  # what fell due while the user was typing (or the script was read)
            else:
                line, typed_in_form = typed_in_form, None
            if self.echo and line.strip():
                self.say(f"> {line}")
            if line.strip() in ("/quit", "/exit"):
                return 0
            try:
                self.handle(line)
                self.deliver_due()  # a change can make a reminder due at once (e.g. a snooze of the past)
            except FormCancelled:
                # Ctrl-D in a form, or the end of a script in the middle of one: nothing was saved.
                self.say()
                self.say(self.t("console_form_cancelled"))
            except CommandInForm as typed:
                self.say(self.t("console_form_command", line=typed.line))
                typed_in_form = typed.line
            except KeyboardInterrupt:  # Ctrl-C while an action runs: leave as at the prompt
                self.say()
                return 0

    def banner(self) -> str:
        db = self.core.db.url
        return self.t("console_welcome", user=self.user, database=_shown_database(db),
                      playbook=self.playbook_path or None, language=self.core.language)

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
                self.join(line.split(maxsplit=1)[1].strip().lstrip("#"))
            elif line == "/crisis" or line.startswith("/crisis "):
                # A terminal line has no line breaks of its own: "\n" stands for one.
                self.command(line[len("/crisis"):].strip().replace("\\n", "\n"))
            else:
                self.say(self.t("console_unknown_input"))
        except Refusal as refusal:
            self.private(self.core.explain(refusal))
        except Answered as answered:
            self.private(str(answered))

    def join(self, channel: str) -> None:
        """Go to a channel, by name or by the incident's reference (CRISIS-1), and see its messages
        with working buttons again: the numbers of an earlier session are gone after a restart."""
        incident_id = None
        if channel != HOME:
            incident_id = self.core.incident_in_channel(WORKSPACE, channel)
            if incident_id is None and (by_ref := self.core.incident_by_ref(WORKSPACE, channel)) is not None:
                incident_id, channel = by_ref, self.core.channel_of(by_ref) or channel
            if incident_id is None or self.core.incident_in_channel(WORKSPACE, channel) != incident_id:
                self.say(self.t("console_no_channel", channel=channel))
                return
        self.channel = channel
        self.say(self.t("console_in_channel", channel=channel))
        if incident_id is not None:
            self.show_standing(incident_id)

    def show_standing(self, incident_id: int) -> None:
        """Every standing message of the incident as it is now, with fresh button numbers."""
        for message in self.core.standing_messages(incident_id):
            if message.place == "incident":
                self.show(message, incident_id)

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
            self.update_form(incident_id)
        elif command.name == "statements":
            self.private(core.statement_list(incident_id))
        elif command.name == "draft" and not (command.template == FREE and command.text):
            self.draft_form(incident_id, command.template)
        elif command.name == "status":  # with a Repair button when a message is missing
            message = core.status_message(incident_id, PLATFORM)
            self.private(message.text)
            for element in message.buttons():
                self.say("    " + self._number(element, incident_id))
        elif command.name == "export":
            self.export(incident_id)
        elif command.name == "roles":
            self.show(core.roster(incident_id), incident_id, private=True)
        elif command.name == "show":
            self.show_standing(incident_id)
        else:
            self.apply(core.run(command, incident_id, self.user))

    def start_form(self) -> None:
        """The console's start modal: one question a line, each answer checked at once, Enter keeps the default."""
        pb = self.core.playbook
        title = self.ask("console_prompt_title", check=commands.check_title)
        crisis_type = self.ask("console_prompt_type", types=", ".join(pb.type_by_key),
                               check=lambda a: commands.parse_type(a.strip().lower() or None, pb))
        levels = ", ".join(f"sev{s.level}" for s in pb.severities)
        level = self.ask("console_prompt_severity", levels=levels,
                         check=lambda a: commands.parse_severity(a, pb) if a.strip() else None)
        description = self.ask("console_prompt_description", check=commands.check_description)
        self.start(title, crisis_type, level, description)

    def update_form(self, incident_id: int) -> None:
        """The status update form; each answer is checked by rehearsing the update with it."""
        user, rehearse = self.user, self.rehearse
        rehearse("status_update", incident_id, user, PLACEHOLDER, PLACEHOLDER, None)  # may this person update?
        known = self.ask("console_prompt_known", check=lambda a: (
            rehearse("status_update", incident_id, user, a, PLACEHOLDER, None), a)[1])
        doing = self.ask("console_prompt_doing", check=lambda a: (
            rehearse("status_update", incident_id, user, known, a, None), a)[1])
        following = self.ask("console_prompt_next", check=lambda a: (
            rehearse("status_update", incident_id, user, known, doing, a), a)[1])
        self.apply(self.core.status_update(incident_id, user, known, doing, following))

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
            template = self.ask("console_prompt_template", choices=", ".join(choices),
                                check=lambda a: _choice(a.strip().lower() or FREE, choices))
        form = core.draft_form(incident_id, template)
        kept = {field.name: field.value for field in form.fields}  # what Enter keeps: prefilled, then typed
        while True:
            values = {}
            for field in form.fields:
                # Enter keeps the value shown; "\n" types a line break on one line.
                values[field.name] = self.ask(
                    "console_prompt_variable", label=field.label, example=field.example, value=kept[field.name],
                    required=field.required,
                    check=lambda a, f=field, keep=kept[field.name]: check_field(
                        form, f, (a.strip() or keep).replace("\\n", "\n")))
            kept = values
            try:
                text = core.preview(incident_id, form.template, values)
            except Refusal as refusal:  # the whole text can fail where each answer passed (too long together)
                self.private(core.explain(refusal))
                self.say(self.t("console_ask_again"))
                continue
            self.say(self.t("console_preview"))
            self.say("\n".join("  │ " + line for line in text.splitlines()))
            if self.ask("console_prompt_post", check=_post_or_edit) == "post":
                break
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
            role, rehearse = element.value, self.rehearse
            rehearse("assign_role", incident_id, self.user, SOMEONE, role)  # may this person assign it?
            chosen = self.ask("console_prompt_user", check=lambda a: (
                rehearse("assign_role", incident_id, self.user, _name(a), role), _name(a))[1])
            self.apply(core.assign_role(incident_id, self.user, chosen, role))
        elif element.action == "role.claim":
            self.apply(core.claim_role(incident_id, self.user, element.value))
        elif element.action.startswith("stmt."):
            self.statement_button(incident_id, element.action.removeprefix("stmt."), element.value)
        elif element.action.startswith("lesson."):
            kind = element.action.removeprefix("lesson.")
            owner = SOMEONE if kind == "action" else None
            self.rehearse("add_lesson", incident_id, self.user, kind, PLACEHOLDER, owner)  # closed, not archived
            text = self.ask("console_prompt_lesson", kind=kind, check=lambda a: (check_lesson(kind, a, owner), a)[1])
            if kind == "action":
                owner = self.ask("console_prompt_owner", check=lambda a: check_lesson(
                    kind, text, _name(a) if a.strip() else None)[1])
            self.apply(core.add_lesson(incident_id, self.user, kind, text, owner))
        elif element.action == "retro.export":
            self.export(incident_id)
        elif element.action == "retro.archive":
            self.apply(core.archive(incident_id, self.user))
        elif element.action == REPAIR:
            self.repair(incident_id)
        else:
            self.apply(core.set_item(incident_id, self.user, element.value, element.action))

    def statement_button(self, incident_id: int, action: str, value: str) -> None:
        core = self.core
        number, _, version = value.partition(".")
        number, version = int(number), int(version)
        user, rehearse = self.user, self.rehearse
        # Each form first rehearses its action (may this person do it, to this version, now?), then
        # checks every answer the same way, so a refusal comes before the typing, not after it.
        if action == "approve":
            self.apply(core.decide(incident_id, user, number, version, "approve"))
        elif action in ("changes", "reject"):
            rehearse("decide", incident_id, user, number, version, action, PLACEHOLDER)
            reason = self.ask("console_prompt_reason", check=lambda a: (
                rehearse("decide", incident_id, user, number, version, action, a), a)[1])
            self.apply(core.decide(incident_id, user, number, version, action, reason))
        elif action == "edit":
            rehearse("edit", incident_id, user, number, version, PLACEHOLDER)
            text = self.ask("console_prompt_text", check=lambda a: (
                rehearse("edit", incident_id, user, number, version, a.replace("\\n", "\n")),
                a.replace("\\n", "\n"))[1])
            self.apply(core.edit(incident_id, user, number, version, text))
        elif action == "publish":
            rehearse("publish", incident_id, user, number, version, PLACEHOLDER, "")
            where = self.ask("console_prompt_where", check=lambda a: (
                rehearse("publish", incident_id, user, number, version, a, ""), a)[1])
            link = self.ask("console_prompt_link", check=lambda a: (
                rehearse("publish", incident_id, user, number, version, where, a), a)[1])
            self.apply(core.publish(incident_id, user, number, version, where, link))

    def repair(self, incident_id: int) -> None:
        """Show again what is missing; print the announcements that were lost (the core decides what)."""
        plan = self.core.repair(incident_id, self.user, PLATFORM)
        self.apply(plan.outcome)
        channel = self.core.playbook.team.announcement_channel
        for problem_id, text in plan.announcements:
            if channel and self.core.claim_problem(problem_id):
                self.say(f"[{self.t('console_announcement', channel=channel.lstrip('#'))}] {to_terminal(text)}")
                self.core.retry_done(problem_id, None)

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
            # The core decides what is new or changed (bot.delivery.pending); a terminal cannot fail to show it.
            for item in self.core.to_send(outcome.incident_id, PLATFORM, outcome.updates, everything=False):
                message = item.message
                if message.place == "announcement":
                    channel = self.core.playbook.team.announcement_channel
                    self.say(f"[{self.t('console_announcement', channel=channel.lstrip('#'))}]")
                self.show(message, outcome.incident_id, updated=not item.is_new)
                self.core.record_post(outcome.incident_id, PLATFORM, message.key, outcome.channel_id,
                                      message.key, message.fingerprint())
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


def _choice(answer: str, choices: list[str]) -> str:
    if answer not in choices:
        raise Refusal("unknown_template", given=answer, templates=", ".join(choices))
    return answer


def _post_or_edit(answer: str) -> str:
    """The answer to the preview: Enter (or y, yes, j, ja) posts the draft, e changes the answers."""
    answer = answer.strip().lower()
    if answer in ("", "y", "yes", "j", "ja", "p", "post"):
        return "post"
    if answer in ("e", "edit", "b", "bearbeiten", "n", "no", "nein"):
        return "edit"
    raise Refusal("console_post_or_edit", given=answer)


def _shown_database(url: str) -> str:
    """The database for the banner: never its password, and a SQLite file with its full path."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return "(unparsable URL)"
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return str(Path(parsed.database).resolve())
    return parsed.render_as_string(hide_password=True)


def _name(text: str) -> str:
    """Console user names look like the ids of other platforms: letters, digits, . _ -"""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "", text.strip().lstrip("@"))
    return cleaned[:40] or "someone"
