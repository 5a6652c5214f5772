"""The console after a restart, and its forms: the buttons come back on /join and /crisis show; a form
checks each answer as it is typed and asks again, is cancelled by Ctrl-D or a typed command without
ending the session, is refused before anything is typed when the action would be; a prefill reads
"[Enter keeps: …]"; a draft is previewed before it is posted; the banner says where the data is."""

from __future__ import annotations

import re
from types import SimpleNamespace

from bot.core import Core
from handlers.console import WORKSPACE, Console
from tests.test_console import CTRL_D, Session, after, claim_button, crisisbot, last_number
from tests.test_console_statements import PRIVATE, START, Terminal, privately, staffed, statement_button

CHANNEL = "2026-11-22-crisis-1-charger-overheats"


def standing(core: Core) -> list[str]:
    """The keys of CRISIS-1's messages in the channel: header, roster, one per checklist step."""
    keys = [m.key for m in core.standing_messages(core.incident_by_ref(WORKSPACE, "CRISIS-1")) if m.place == "incident"]
    assert keys[:3] == ["header", "roster", "checklist:assess"] and len(keys) >= 5
    return keys


def shown_keys(text: str) -> list[str]:
    return re.findall(r"^── (\S+) ", text, re.MULTILINE)


def started(core: Core) -> None:
    """An earlier console session: CRISIS-1 with its messages; then the process ends."""
    first = Session(core)
    first.run("/crisis start sev2 Charger overheats")
    assert "[1] Claim" in first.text


# --- after a restart ------------------------------------------------------------------------------------


def test_join_by_reference_after_a_restart_shows_the_messages_with_working_buttons(core):
    started(core)
    again = Session(core, "bob")  # a new process: no button numbers are known
    again.run("1", "/join CRISIS-1", claim_button("Legal"))
    text = again.text
    assert "There is no button 1." in after(text, "1")
    joined = after(text, "/join CRISIS-1")
    assert joined.startswith(f"\nYou are in #{CHANNEL}.\n")
    assert shown_keys(joined.split("\n> ")[0]) == standing(core)
    assert "Legal (required): open" in joined
    assert "@bob now holds Legal." in text.split("> /join CRISIS-1")[1]
    assert "Legal (required): @bob" in text.rsplit("── roster", 1)[1]


def test_join_by_channel_name_and_crisis_show_reshow_the_messages(core):
    started(core)
    again = Session(core, "alice")
    again.run(f"/join #{CHANNEL}", "/crisis show", "/join CRISIS-9", "/join general", "/crisis show")
    text = again.text
    by_name = after(text, f"/join #{CHANNEL}").split("\n> ")[0]
    assert shown_keys(by_name) == standing(core) and re.search(r"\[\d+\] Done", by_name)
    shown = after(text, "/crisis show").split("\n> ")[0]
    assert shown_keys(shown) == standing(core)
    assert "Severity: SEV2 · High   Phase: Detected" in shown
    assert "There is no channel #CRISIS-9." in after(text, "/join CRISIS-9")
    assert after(text, "/join general").split("\n> ")[0] == "\nYou are in #general."
    assert privately(text.rsplit("> /crisis show", 1)[1]) == [
        "“/crisis show” works inside an incident channel. Run it there, or start one with /crisis start Title."]


# --- Ctrl-D, commands typed into a form, asking again --------------------------------------------------


def test_ctrl_d_in_a_form_cancels_the_form_not_the_session(core):
    session = Session(core)
    code = session.run("/crisis start", "Charger overheats", CTRL_D, "/crisis start sev1 Next one")
    assert code == 0
    text = session.text
    assert "Form cancelled; nothing was saved." in after(text, "/crisis start")
    assert "🚨 CRISIS-1: Next one" in after(text, "/crisis start sev1 Next one")  # the session went on
    assert "Charger overheats" not in text.split("> /crisis start sev1")[1]


def test_a_command_typed_into_a_form_cancels_it_and_runs(core):
    session = Session(core)
    session.run("/crisis start", "/crisis status", "/quit", "/crisis start never")
    text = session.text
    assert ("“/crisis status” is a command, not an answer: the form is cancelled, nothing was saved.\n"
            "> /crisis status\n" + PRIVATE + "“/crisis status” works inside an incident channel.") in text
    assert "CRISIS-1" not in text and core.incident_by_ref(WORKSPACE, "CRISIS-1") is None
    assert session.read_count == 3  # /quit, typed into the next prompt, ended the session


def test_the_start_form_checks_each_answer_and_asks_again(core):
    session = Terminal(core)
    session.run("/crisis start", "   ", "Charger overheats", "fire", "defective-product", "sev9", "1",
                "x" * 3001, "Seen on TikTok")
    text = session.text
    assert privately(text) == [
        "A crisis needs a title: /crisis start [sev1..sev4] [type] Title words…",
        "“fire” is not a crisis type here. Use one of " + ", ".join(core.playbook.type_by_key) + ".",
        "“sev9” is not a severity here. Use one of sev1, sev2, sev3, sev4.",
        "The description has 3001 characters; keep it to 3000.",
        f"CRISIS-1 is open in #{CHANNEL}. Claim your roles there.",
    ]
    assert text.count("Please answer again (Ctrl-D cancels the form).") == 4
    # Each question came again right after its refusal; the answers before it were kept.
    assert [p.split(" (")[0].rstrip(": ") for p in session.prompts] == [
        "Title", "Title", "Type of crisis", "Type of crisis", "Severity", "Severity", "What we know so far",
        "What we know so far"]
    assert "🚨 CRISIS-1: Charger overheats" in text
    assert "Severity: SEV1 · Critical" in text and "Type: Defective product" in text
    assert "  Seen on TikTok" in text


# --- permission before the questions ---------------------------------------------------------------------


def test_a_reason_is_not_asked_from_someone_who_may_not_give_one(core):
    terminal = Terminal(core)
    terminal.run(*staffed("/crisis draft free We are aware.", "/as erin", statement_button("Request changes"),
                          "/crisis statements"))
    erin = after(terminal.text, "/as erin")
    assert "Reason:" not in erin  # refused at the press, before the reason was typed
    assert privately(erin.split("> /crisis statements")[0]) == [
        "Only members of the crisis team with a role in this incident can do that with statement 1. "
        "Claim a role first."]
    assert "Statements of CRISIS-1" in after(terminal.text, "/crisis statements")


def test_the_update_and_assign_forms_refuse_before_asking(core):
    terminal = Terminal(core)
    terminal.run("/crisis start sev2 Charger overheats", "/as erin", "/crisis update",
                 last_number(r"\[(\d+)\] Assign Legal…", "Legal's user picker"),
                 "/crisis status")
    erin = after(terminal.text, "/as erin")
    assert terminal.prompts == []  # no question was asked
    assert privately(erin.split("> /crisis status")[0])[:2] == [
        "Only members of the crisis team with a role in this incident can post a status update. Claim a role first.",
        "Only the lead (@alice) or the current holder can give Legal to someone.",
    ]


# --- prefill and preview ----------------------------------------------------------------------------------


def test_a_draft_is_previewed_and_the_answers_can_be_changed_before_it_is_posted(core):
    terminal = Terminal(core)
    terminal.run(START, "/crisis draft holding-statement", "", "", "e", "Our customer list", "", "wat", "",
                 "/crisis statements")
    text = after(terminal.text, "/crisis draft holding-statement")
    form = text.split("> /crisis statements")[0]
    # The prefill is what Enter keeps, never an example to copy.
    assert "What people are talking about (e.g. reports that our X200 blender overheats) " \
           "[Enter keeps: Customer list online]: \n" in form
    previews = form.split("Preview of the draft:\n")[1:]
    assert len(previews) == 2
    assert "  │ We are aware of Customer list online.\n" in previews[0]
    assert "drafted statement" not in previews[0]
    # Answering again offers what was typed before; the second preview shows the change.
    assert "[Enter keeps: Customer list online]: Our customer list\n" in previews[0]
    assert "  │ We are aware of Our customer list.\n" in previews[1]
    assert privately(previews[1]) == ["“wat” is neither Enter (post the draft) nor e (change the answers)."]
    assert "📝 @alice drafted statement 1 (Holding statement – we are on it)." in previews[1]
    assert "We are aware of Our customer list." in last_statement_text(core)


def last_statement_text(core: Core) -> str:
    return core.statement_text(core.incident_by_ref(WORKSPACE, "CRISIS-1"), 1)[1]


# --- the banner ---------------------------------------------------------------------------------------------


def test_the_banner_names_the_database_the_playbook_and_the_language(tmp_path):
    playbook = tmp_path / "team.yaml"
    from bot.playbook import default_playbook_path

    playbook.write_text(default_playbook_path().read_text(encoding="utf-8"), encoding="utf-8")
    result = crisisbot("console", "--user", "alice", input="/quit\n", DATABASE_URL="sqlite:///c.db",
                       CRISISBOT_PLAYBOOK=str(playbook), CRISISBOT_LANGUAGE="de", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    banner = result.stdout.splitlines()[0]
    assert banner == (f"crisisbot-Konsole: Sie sind @alice. Daten in {tmp_path / 'c.db'}; Playbook: {playbook}; "
                      "Sprache: Deutsch (de).")
    default = crisisbot("console", "--user", "alice", input="/quit\n", cwd=str(tmp_path))
    assert default.stdout.splitlines()[0] == (
        f"crisisbot console: you are @alice. Data in {tmp_path / 'crisisbot.db'}; playbook: the shipped default; "
        "language: English (en).")


def test_the_banner_never_shows_a_database_password(core):
    elsewhere = SimpleNamespace(db=SimpleNamespace(url="postgresql://crisis:s3cret@db.example.com:5432/crisis"),
                                language="en", say=core.say)  # a core on a server: only what the banner reads
    banner = Console(elsewhere, "alice").banner()
    assert "s3cret" not in banner and "Data in postgresql://crisis:***@db.example.com:5432/crisis;" in banner
