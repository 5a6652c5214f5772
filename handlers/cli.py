"""The `crisisbot` command: console, slack, export, db upgrade, playbook check."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot import playbook as playbooks
from bot.config import Settings
from bot.db import Database
from bot.playbook import PlaybookError
from bot.runtime import build_core


class StartupError(Exception):
    """Something the person who runs crisisbot must fix; printed as one paragraph, no traceback."""


# Which settings (bot/config.py) each command reads; `--help` lists them with their meaning.
_CORE_VARIABLES = ("DATABASE_URL", "CRISISBOT_PLAYBOOK", "CRISISBOT_LANGUAGE")
READS = {
    "console": (*_CORE_VARIABLES, "USER"),
    "slack": (*_CORE_VARIABLES, "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_BASE_URL",
              "PORT"),
    "export": _CORE_VARIABLES,
    "db": ("DATABASE_URL",),
    "playbook": (),
}
_NOT_SETTINGS = {"USER": "your name in the console when --user is not given (default: your login name)"}


def version() -> str:
    try:
        return metadata.version("crisisbot")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _variables(names=None) -> str:
    """The environment variables, one a line with their meaning, for the end of a --help."""
    meanings = {field.alias: field.description or "" for field in Settings.model_fields.values() if field.alias}
    meanings.update(_NOT_SETTINGS)
    names = [n for n in meanings if n not in _NOT_SETTINGS] if names is None else list(names)
    if not names:
        return "environment variables: none"
    width = max(map(len, names))
    indent = " " * (width + 4)
    lines = [textwrap.fill(meanings[name], 79, initial_indent=f"  {name.ljust(width)}  ", subsequent_indent=indent)
             for name in names]
    return "environment variables:\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="crisisbot", description="Coordinates a social-media crisis team, in Slack or in this terminal.",
        epilog=_variables() + "\n\n`crisisbot COMMAND --help` shows a command's options and what it reads.",
        formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"crisisbot {version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                              epilog=_variables(READS[name]), formatter_class=formatter)

    console = command("console", "run the bot in this terminal (SQLite in ./crisisbot.db by default)")
    console.add_argument("--user", help="who you are in the console (default: $USER, your login name)")
    slack = command("slack", "serve Slack: HTTP on --port, or --socket-mode")
    slack.add_argument("--port", type=int, help="HTTP port (default: $PORT, else 3000)")
    slack.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0, every interface)")
    slack.add_argument("--socket-mode", action="store_true",
                       help="connect to Slack with SLACK_APP_TOKEN instead of serving HTTP")
    export = command("export", "write an incident's retrospective with its whole timeline")
    export.add_argument("ref", help="the incident, e.g. CRISIS-3")
    export.add_argument("--format", choices=["md", "json"], default="md", help="Markdown (default) or JSON")
    export.add_argument("--workspace", help="the workspace, when several have an incident with this number")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    db = command("db", "database maintenance")
    db.add_argument("action", choices=["upgrade"],
                    help="upgrade: bring the schema up to date (every start does it too)")
    pb = command("playbook", "playbook tools")
    pb.add_argument("action", choices=["check"], help="check: report every problem of a playbook with its line")
    pb.add_argument("path", help="the playbook YAML file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING if args.command in ("console", "export") else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.command == "playbook":
            return check_playbook(args.path)
        settings = _settings()
        if args.command == "db":
            _database(settings).upgrade()
            print(f"The database at {_redacted(settings.database_url)} is up to date.")
            return 0
        if args.command == "console":
            return run_console(settings, args.user)
        if args.command == "export":
            return run_export(settings, args.ref, args.format, args.workspace, args.output)
        return run_slack(settings, args.port, args.host, args.socket_mode)
    except StartupError as exc:
        # One unwrapped paragraph: paths and commands in it stay whole for copying.
        print(f"crisisbot cannot start: {exc}", file=sys.stderr)
        return 2


def check_playbook(path: str) -> int:
    _, problems = playbooks.check_file(Path(path))
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {path}.", file=sys.stderr)
        return 1
    print(f"{path}: the playbook is valid.")
    return 0


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise StartupError(f"the environment has invalid settings ({fields}).") from None


def _database(settings: Settings) -> Database:
    try:
        return Database(settings.database_url)
    except Exception as exc:  # bad URL or missing driver
        raise StartupError(f"DATABASE_URL {_redacted(settings.database_url)!r} cannot be used: {exc}.") from None


def _core(settings: Settings):
    try:
        return build_core(settings)
    except PlaybookError as exc:
        first = exc.problems[0]
        raise StartupError(
            f"the playbook {first.file} has {len(exc.problems)} problem(s), the first at line {first.line}: "
            f"{first.message}. Run `crisisbot playbook check {first.file}` to see them all, fix the file or "
            f"unset CRISISBOT_PLAYBOOK to use the default playbook.") from None
    except (SQLAlchemyError, OSError) as exc:
        raise StartupError(
            f"the database at {_redacted(settings.database_url)} cannot be opened or upgraded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]}). Check DATABASE_URL and that the server runs."
        ) from None


def run_console(settings: Settings, user: str | None) -> int:
    from handlers.console import Console, _name

    core = _core(settings)
    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
    name = _name(user or os.environ.get("USER") or getpass.getuser() or "you")

    def read(prompt: str) -> str:
        if interactive:
            return input(prompt)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    console = Console(core, name, read=read, echo=not interactive, playbook_path=settings.playbook)
    if not interactive:
        return console.run()
    # At a terminal, reminders must appear while the user thinks, not only when they press Enter.
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler()
    scheduler.add_job(console.deliver_due, "interval", seconds=5, coalesce=True, max_instances=1)
    scheduler.start()
    try:
        return console.run()
    finally:
        scheduler.shutdown(wait=False)


def run_export(settings: Settings, ref: str, form: str, workspace: str | None, output: str | None) -> int:
    from bot.errors import Refusal
    from bot.export import to_json, to_markdown
    from handlers.console import to_terminal

    core = _core(settings)
    try:
        incident_id, _ = core.find_incident(ref, workspace)
    except Refusal as refusal:
        print(to_terminal(core.explain(refusal)), file=sys.stderr)
        return 1
    retro = core.retrospective(incident_id)
    text = to_json(retro) if form == "json" else to_markdown(retro, core.playbook)
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(to_terminal(core.say("console_export_failed", path=output, reason=exc.strerror or str(exc))),
                  file=sys.stderr)
            return 1
        print(to_terminal(core.say("console_export_written", path=output)), file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run_slack(settings: Settings, port: int | None, host: str, socket_mode: bool) -> int:
    from handlers.slack.app import SlackBot
    from handlers.slack.server import serve_http, serve_socket_mode

    missing = [name for name, value in (("SLACK_BOT_TOKEN", settings.slack_bot_token),
                                        ("SLACK_SIGNING_SECRET", settings.slack_signing_secret))
               if not value]
    if socket_mode and not settings.slack_app_token:
        missing.append("SLACK_APP_TOKEN")
    if missing:
        raise StartupError(f"{', '.join(missing)} is not set. Create the Slack app from slack-manifest.yaml and "
                           "copy the tokens from its settings page (see the README).")
    core = _core(settings)
    # Objects alive after start-up live until exit; freezing them keeps full GC pauses short.
    gc.collect()
    gc.freeze()
    bot = SlackBot(core, settings.slack_bot_token, settings.slack_signing_secret, settings.slack_api_base_url)
    if socket_mode:
        asyncio.run(serve_socket_mode(bot, settings.slack_app_token))
    else:
        serve_http(bot, port or settings.port, host)
    return 0


def _redacted(url: str) -> str:
    """Never print a database password into a log."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


if __name__ == "__main__":
    sys.exit(main())
