"""Statements in the console, in-process: draft from a template by answering its questions, approve in
order by the right people, four eyes, an edit that resets approvals, reasons, publishing, and the
answers to bad input. Every assertion reads what a person at the terminal sees."""

from __future__ import annotations

import re

from bot.core import Core
from handlers.console import WORKSPACE
from tests.test_console import CTRL_D, Session, after, claim_button

PRIVATE = "[only you see this] "
START = "/crisis start sev1 data-leak Customer list online"


class Terminal(Session):
    """A scripted console that also prints each form question with the answer typed after it."""

    def __init__(self, core: Core, user: str = "alice"):
        super().__init__(core, user)
        self.prompts: list[str] = []

    def _read(self, prompt: str) -> str:
        answer = super()._read(prompt)
        if prompt:  # the command prompt is echoed by the console itself; form questions are not
            self.prompts.append(prompt)
            self.out.write(f"{prompt}{answer}\n")  # as a terminal shows it: the question ends with a space
        return answer


def statement_button(label: str, number: int = 1, keep: dict | None = None):
    """The number of a button on the statement's message as last shown; `keep` remembers it by label."""

    def find(output: str) -> str:
        start = output.rindex(f"── statement:{number} ")
        block = output[start:]
        end = block.find("\n── ", 1)
        found = re.search(rf"\[(\d+)\] {re.escape(label)}(?:  |\n|$)", block if end == -1 else block[:end])
        assert found, f"no {label} button on statement {number}"
        if keep is not None:
            keep[label] = found.group(1)
        return found.group(1)
    return find


def remember(label: str, keep: dict, number: int = 1):
    """Note a button's number without pressing it (an empty line does nothing), to press it later."""
    return lambda output: (statement_button(label, number, keep)(output), "")[1]


def staffed(*lines) -> tuple:
    """alice starts a sev1 data leak; bob claims Legal, carol PR / communications, dave Social-media manager."""
    return (START, "/as bob", claim_button("Legal"), "/as carol", claim_button("PR / communications"),
            "/as dave", claim_button("Social-media manager"), *lines)


def privately(text: str) -> list[str]:
    return [line[len(PRIVATE):] for line in text.splitlines() if line.startswith(PRIVATE)]


def last_statement(text: str, number: int = 1) -> str:
    """The statement's message as last shown (up to the next message or typed line)."""
    block = text[text.rindex(f"── statement:{number} "):]
    return re.split(r"\n(?:── |> )", block, maxsplit=1)[0]


# --- the whole approve flow ---------------------------------------------------------------------------


def test_draft_approve_in_order_and_publish(core):
    pressed = {}
    terminal = Terminal(core)
    code = terminal.run(*staffed(
        "/crisis draft holding-statement", "", "by 3 pm today",   # Enter keeps the incident's title
        "",                                                       # Enter posts the previewed draft
        "/as carol", statement_button("Approve"),                 # comms may not jump the queue
        "/as dave", statement_button("Approve"),                  # the author, who holds no Legal either
        "/as bob", statement_button("Approve"),                   # legal: step 1 of 2
        statement_button("Approve"),                              # a second press by bob
        "/as carol", statement_button("Approve"),                 # comms: step 2 of 2
        "/as dave", remember("Mark published", pressed), statement_button("Mark published"), "Instagram",
        "https://instagram.com/p/1",
        lambda _: pressed["Mark published"],                      # pressed again, from the old screen
        "/crisis statements",
    ))
    text = terminal.text
    assert code == 0 and "Traceback" not in text

    # The questions of the template; Enter keeps the prefill, which does not read as an example.
    drafted = after(text, "/crisis draft holding-statement")
    assert ("What people are talking about (e.g. reports that our X200 blender overheats) "
            "[Enter keeps: Customer list online]: \n") in drafted
    assert "When the next update follows (optional) (e.g. by 3 pm today) [optional]: by 3 pm today\n" in drafted
    assert "📝 @dave drafted statement 1 (Holding statement – we are on it). Please review: @bob\n" in drafted
    first = last_statement(drafted.split("> /as carol")[0])
    assert first.splitlines() == [
        "── statement:1 ────────────────────",
        "📝 Statement 1 · Holding statement – we are on it · version 1 · for public · awaiting approval · "
        "drafted by @dave",
        "We are aware of Customer list online.",
        "We are looking into it right now, take it seriously and will share verified facts as soon as we have "
        "them.",
        "Our next update follows by 3 pm today.",
        "  ⏳ Step 1 of 2: every one of Legal · waiting",
        "  ☐ Step 2 of 2: one of PR / communications",
        first.splitlines()[-1],
    ]
    assert re.fullmatch(r"    \[\d+\] Approve  \[\d+\] Request changes  \[\d+\] Reject  \[\d+\] Edit",
                        first.splitlines()[-1])

    flow = drafted
    refusals = privately(after(flow, "/as carol").split("> /as bob")[0])
    assert refusals == [
        "Statement 1 is at step 1, which needs approval from Legal. You don't hold that role (or it already "
        "approved).",
        "Statement 1 is at step 1, which needs approval from Legal. You don't hold that role (or it already "
        "approved).",
    ]
    assert "approved statement" not in after(flow, "/as carol").split("> /as bob")[0]

    as_bob = after(flow, "/as bob").split("> /as carol")[0]
    assert "@bob approved statement 1. Step 2 is open: @carol.\n" in as_bob
    assert "  ✅ Step 1 of 2: every one of Legal · approved by @bob (02:00 UTC)" in as_bob
    assert "  ⏳ Step 2 of 2: one of PR / communications · waiting" in as_bob
    assert privately(as_bob) == ["Statement 1 is at step 2, which needs approval from PR / communications. "
                                 "You don't hold that role (or it already approved)."]

    as_carol = flow.split("> /as carol")[-1].split("> /as dave")[0]
    assert ("✅ Statement 1 (version 1) is fully approved, last by @carol. It can be published now.\n"
            in as_carol)
    approved = last_statement(as_carol)
    assert "version 1 · for public · approved, ready to publish · drafted by @dave" in approved
    assert "  ✅ Step 2 of 2: one of PR / communications · approved by @carol (02:00 UTC)" in approved
    assert re.search(r"\[\d+\] Mark published  \[\d+\] Edit$", approved)

    published = flow.split("> /as dave")[-1]
    assert "Where was it published? Instagram\n" in published
    assert "Link to the post (Enter to leave empty): https://instagram.com/p/1\n" in published
    assert "📣 @dave published statement 1 on Instagram: https://instagram.com/p/1.\n" in published
    final = last_statement(published)
    assert "version 1 · for public · published · drafted by @dave" in final
    assert "  📣 Published by @dave at 2026-11-22 02:00 UTC on Instagram: https://instagram.com/p/1" in final
    assert "[" not in final.split("We are aware", 1)[1]  # no buttons left
    # Pressing the old Mark published again counts once, and asks nothing.
    assert privately(published.split("https://instagram.com/p/1.\n", 1)[1].split("> /crisis statements")[0]) \
        == ["Statement 1 is already marked as published."]

    assert (PRIVATE + "Statements of CRISIS-1\n"
            "• 1. Holding statement – we are on it · version 1 · published · 2/2 steps approved · on Instagram"
            in after(text, "/crisis statements"))

    incident = core.incident_by_ref(WORKSPACE, "CRISIS-1")
    events = [(e.kind, e.data.get("version")) for e in core.timeline(incident) if e.kind.startswith("statement.")]
    assert events == [("statement.drafted", 1), ("statement.approved", 1), ("statement.approved", 1),
                      ("statement.published", 1)]


def test_the_author_can_never_approve_own_version(core):
    terminal = Terminal(core)
    terminal.run(*staffed("/as bob", "/crisis draft free We are aware of the leak.", statement_button("Approve")))
    shown = after(terminal.text, "/crisis draft free We are aware of the leak.")
    assert "📝 @bob drafted statement 1 (Free statement)." in shown
    assert privately(shown) == ["You wrote version 1 of statement 1, so someone else must approve it (four eyes)."]
    assert "approved by" not in shown


# --- edits, reasons, rejection ------------------------------------------------------------------------


def test_an_edit_makes_version_2_and_resets_approvals(core):
    old = {}
    terminal = Terminal(core)
    terminal.run(*staffed(
        "/crisis draft holding-statement", "", "", "",
        remember("Approve", old), "/as bob", statement_button("Approve"),
        "/as carol", statement_button("Edit"), "We know a customer list was online.\\nWe are sorry.",
        lambda _: old["Approve"],                            # version 1's button, on a screen not refreshed
        "/as bob", statement_button("Approve"),
        "/as carol", statement_button("Approve"),            # carol wrote version 2: four eyes
    ))
    text = after(terminal.text, "/crisis draft holding-statement")
    edited = text.split("> /as carol", 1)[1]
    assert "New text (one line; \\n for a line break): We know a customer list was online.\\nWe are sorry.\n" \
        in edited
    assert "✏ @carol edited statement 1; version 2 needs every approval again. Please review: @bob\n" in edited
    v2 = last_statement(edited.split("> /as bob")[0])
    assert v2.splitlines()[1:5] == [
        "📝 Statement 1 · Holding statement – we are on it · version 2 · for public · awaiting approval · "
        "drafted by @carol",
        "We know a customer list was online.",
        "We are sorry.",
        "  ⏳ Step 1 of 2: every one of Legal · waiting",
    ]
    assert "approved by" not in v2
    assert privately(edited.split("> /as bob")[0]) == [
        "That button belongs to version 1 of statement 1; it is now at version 2. Use the buttons on the "
        "current message."]
    # The old press changed nothing: bob's approval of version 2 is the first one it has.
    second = text.split("> /as bob")[-1]
    assert "@bob approved statement 1. Step 2 is open" in second
    assert privately(second.split("> /as carol")[1]) == [
        "You wrote version 2 of statement 1, so someone else must approve it (four eyes)."]

    incident = core.incident_by_ref(WORKSPACE, "CRISIS-1")
    events = [(e.kind, e.data.get("version")) for e in core.timeline(incident) if e.kind.startswith("statement.")]
    assert events == [("statement.drafted", 1), ("statement.approved", 1), ("statement.edited", 2),
                      ("statement.approved", 2)]
    listing = core.statement_list(incident)
    assert "1. Holding statement – we are on it · version 2 · awaiting approval · 1/2 steps approved" in listing


def test_step_2_does_not_claim_nobody_holds_a_role_its_author_holds(core):
    """Carol wrote the text and holds the only comms role: she may not approve it, but she does hold it."""
    terminal = Terminal(core)
    terminal.run(*staffed("/as carol", "/crisis draft free We know.", "/as bob", statement_button("Approve")))
    opened = after(terminal.text, "/crisis draft free We know.").split("> /as bob")[1]
    assert "@bob approved statement 1. Step 2 is open" in opened
    # Today: "Step 2 is open; nobody holds its roles yet." although @carol holds PR / communications.
    assert "nobody holds its roles yet" not in opened


def test_a_role_holder_outside_the_policy_is_not_told_to_claim_a_role(core):
    terminal = Terminal(core)
    terminal.run(*staffed("/crisis draft free We know.", statement_button("Request changes"), "Too short."))
    refusal = privately(after(terminal.text, "/crisis draft free We know."))
    assert len(refusal) == 1 and "Claim a role first" not in refusal[0], refusal  # dave holds Social-media manager


def test_request_changes_needs_a_reason(core):
    seen = {}
    terminal = Terminal(core)
    terminal.run(*staffed(
        "/crisis draft holding-statement", "", "", "",
        remember("Approve", seen), "/as bob", statement_button("Request changes"), "   ", "Say sorry first.",
        statement_button("Reject"), "", "Wrong facts.",     # an empty reason is asked again
        "/as carol", lambda _: seen["Approve"],              # from a screen not yet refreshed
    ))
    text = after(terminal.text, "/crisis draft holding-statement")
    as_bob = after(text, "/as bob").split("> /as carol")[0]
    assert "Reason:    \n" in as_bob
    assert privately(as_bob) == ["Please give a reason, so the author knows what to change.",
                                 "Please give a reason, so the author knows what to change."]
    assert "↩ @bob asks @dave for changes to statement 1: Say sorry first.\n" in as_bob
    assert "  ↩ Changes requested by @bob at 02:00 UTC: Say sorry first." in as_bob
    assert "⛔ @bob rejected statement 1: Wrong facts.\n" in as_bob
    rejected = last_statement(as_bob)
    assert "· rejected ·" in rejected and "  ⛔ Rejected by @bob at 02:00 UTC: Wrong facts." in rejected
    assert "] Approve" not in rejected
    # A press from a screen not yet refreshed changes nothing.
    assert privately(after(text, "/as carol").split("\n", 1)[1]) == [
        "Statement 1 is rejected; it can no longer be changed or approved. Draft a new one with /crisis draft."]
    incident = core.incident_by_ref(WORKSPACE, "CRISIS-1")
    kinds = [e.kind for e in core.timeline(incident) if e.kind.startswith("statement.")]
    assert kinds == ["statement.drafted", "statement.changes_requested", "statement.rejected"]


# --- drafting -------------------------------------------------------------------------------------------


def test_draft_without_a_template_asks_which(core):
    terminal = Terminal(core)
    terminal.run(START, "/crisis draft", "apology", "Yesterday's export was public.", "We closed it.", "",
                 "/crisis draft", "", "Our own words & <!here> stay text.", "")
    text = terminal.text
    asked = after(text, "/crisis draft")
    # Only templates that fit a data leak, then the free statement.
    assert ("Template (holding-statement, apology, status-update, take-offline-reply, internal-talking-points, "
            "press-statement, data-leak-notice, free): apology\n") in asked
    assert terminal.prompts[0] == ("Template (holding-statement, apology, status-update, take-offline-reply, "
                                   "internal-talking-points, press-statement, data-leak-notice, free): ")
    assert "What went wrong, in one or two sentences (e.g. Yesterday's post about the floods was insensitive.): " \
           "Yesterday's export was public.\n" in asked
    assert "📝 @alice drafted statement 1 (Public apology)." in asked
    assert "We are sorry. Yesterday's export was public.\nThat was our mistake" in asked

    # Enter picks the free statement, which asks for its text and shows it exactly as typed.
    free = text.split("> /crisis draft")[-1]
    assert "free): \n" in free and "Statement text: Our own words & <!here> stay text.\n" in free
    assert "📝 @alice drafted statement 2 (Free statement)." in free
    assert "\nOur own words & <!here> stay text.\n" in last_statement(free, 2) + "\n"
    assert "Step 1 of 3: every one of Legal" in last_statement(free, 2)


def test_a_free_statement_keeps_its_line_break(core):
    terminal = Terminal(core)
    terminal.run(START, "/crisis draft free Line one\\nLine two")
    shown = last_statement(terminal.text)
    lines = shown.splitlines()
    assert lines[1].startswith("📝 Statement 1 · Free statement · version 1 · for public · awaiting approval")
    assert lines[2:4] == ["Line one", "Line two"]
    # A free statement needs the strictest policy: legal, then comms, then the lead.
    assert lines[4:7] == ["  ⏳ Step 1 of 3: every one of Legal · waiting",
                          "  ☐ Step 2 of 3: one of PR / communications",
                          "  ☐ Step 3 of 3: one of Crisis lead"]
    assert core.statement_text(core.incident_by_ref(WORKSPACE, "CRISIS-1"), 1) == (1, "Line one\nLine two")


def test_an_unknown_template_is_answered_privately(core):
    terminal = Terminal(core)
    terminal.run(START, "/crisis draft nonsense", "/crisis statements")
    answer = after(terminal.text, "/crisis draft nonsense").split("> /crisis statements")[0]
    assert answer == (
        f"\n{PRIVATE}“nonsense” is not a statement template here. Use one of holding-statement, apology, "
        "product-recall, status-update, take-offline-reply, internal-talking-points, press-statement, "
        "data-leak-notice, hacked-account-notice, fake-news-correction, free.\n")
    assert terminal.prompts == []  # no form was opened
    assert (PRIVATE + "CRISIS-1 has no statements yet. Draft one with /crisis draft."
            in after(terminal.text, "/crisis statements"))


def test_missing_and_too_long_values_are_refused_and_change_nothing(core):
    terminal = Terminal(core)
    terminal.run(START,  # each refused answer is asked again; Ctrl-D then cancels the form
                 "/crisis draft apology", "   ", CTRL_D,
                 "/crisis draft apology", "x" * 91, CTRL_D,
                 "/crisis draft free", "  ", CTRL_D, "/crisis statements")
    text = terminal.text
    assert privately(text.split("> /crisis statements")[0].split(START, 1)[1])[1:] == [
        "“What went wrong, in one or two sentences” is required for this template.",
        "“What went wrong, in one or two sentences” has 91 characters; this template allows 90.",
        "The statement has no text.",
    ]
    assert "drafted statement" not in text and text.count("Form cancelled; nothing was saved.") == 3
    assert PRIVATE + "CRISIS-1 has no statements yet." in after(text, "/crisis statements")


# --- the terminal itself -------------------------------------------------------------------------------


def test_end_of_input_at_a_form_question_ends_the_session(core):
    """The end of a piped script in a form cancels the form; at the command prompt it leaves cleanly."""
    terminal = Terminal(core)
    assert terminal.run(START, "/crisis draft holding-statement") == 0
    assert "drafted statement" not in terminal.text
    assert terminal.text.rstrip("\n").endswith("Form cancelled; nothing was saved.")


def test_a_form_question_leaves_room_for_the_answer(core):
    terminal = Terminal(core)
    terminal.run(START, "/crisis draft holding-statement", "", "")
    assert terminal.prompts and all(prompt.endswith(" ") for prompt in terminal.prompts), terminal.prompts


def test_statements_of_a_resolved_incident_are_closed(core, clock):
    seen = {}
    terminal = Terminal(core)
    terminal.run(*staffed(
        "/crisis draft free Holding text.", remember("Approve", seen),
        "/as alice", lambda _: (clock.advance(minutes=30), "/crisis resolve")[1],
        "/as bob", lambda _: seen["Approve"],                 # from a screen not yet refreshed
    ))
    text = terminal.text
    assert "@alice resolved CRISIS-1" in text
    refusal = privately(text.split("> /as bob")[-1])
    assert refusal == ["CRISIS-1 is resolved; it can no longer be changed."]
    assert "approved statement" not in text.split("> /as bob")[-1]
