"""Pulse's composition root and command line: settings → database → writer → hub → Tornado."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Callable, Sequence

from backend.auth import AccountError, create_user
from backend.server import PulseServer
from backend.settings import Settings, SettingsError, settings_help
from models import setup_database
from models.accounts import accounts_exist, issue_token
from models.entities import User
from models.websites import WebsiteError, create_website

log = logging.getLogger("pulse")


async def serve(settings: Settings, ready: Callable[[PulseServer], None] | None = None) -> None:
    """Run Pulse until SIGTERM or SIGINT."""
    server = PulseServer(settings)
    from ui.mount import mount_panel  # the panel is optional for the API-only tests

    fallback = await mount_panel(server)
    await server.start(fallback)
    log.info("Pulse listening on http://%s:%d", server.settings.host, server.port)
    if ready is not None:
        ready(server)
    await server.wait()


# -- command line ----------------------------------------------------------------------------

def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)),
                                   ("port", getattr(args, "port", None))) if v is not None}
    return Settings.from_env(**overrides)


def _open_db(settings: Settings) -> None:
    setup_database(settings.database)


def cmd_serve(args: argparse.Namespace) -> int:
    """``pulse serve``."""
    settings = _settings(args)
    asyncio.run(serve(settings))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``pulse demo``: serve, with a demo website fed by simulated visitors."""
    from backend.demo import demo_ready, demo_settings

    settings = demo_settings(_settings(args), host_given=args.host is not None)
    asyncio.run(serve(settings, demo_ready(args.rate)))
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise AccountError("the two passwords differ")
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    """``pulse create-user EMAIL``."""
    settings = _settings(args)
    _open_db(settings)
    is_admin = args.admin or not accounts_exist()
    user = create_user(args.email, _read_password(args), is_admin=is_admin)
    print(f"created {'admin ' if user.is_admin else ''}user {user.email}")
    return 0


def cmd_create_website(args: argparse.Namespace) -> int:
    """``pulse create-website DOMAIN``."""
    settings = _settings(args)
    _open_db(settings)
    owner = None
    if args.owner:
        owner = User.by_email(args.owner)
        if owner is None:
            raise AccountError(f"no user with the email {args.owner}")
    website = create_website(args.domain, name=args.name, origins=args.origin or [],
                             timezone=args.timezone, owner=owner)
    print(website.id)
    return 0


def cmd_create_token(args: argparse.Namespace) -> int:
    """``pulse create-token EMAIL``."""
    settings = _settings(args)
    _open_db(settings)
    user = User.by_email(args.email)
    if user is None:
        raise AccountError(f"no user with the email {args.email}")
    _, token = issue_token(user, args.name or "")
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``pulse`` command line."""
    env_help = "\n".join(f"  {name:<26} {help} (default: {default})"
                         for name, default, help in settings_help())
    parser = argparse.ArgumentParser(
        prog="pulse", description="Pulse: self-hosted web analytics with a live view.",
        epilog="configuration (environment variables):\n" + env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    serve_p = sub.add_parser("serve", help="run the server (the default)")
    serve_p.add_argument("--host", help="address to bind (PULSE_HOST)")
    serve_p.add_argument("--port", type=int, help="public port (PULSE_PORT)")
    serve_p.set_defaults(func=cmd_serve)

    demo_p = sub.add_parser("demo", help="serve a demo website fed by simulated visitors")
    demo_p.add_argument("--host", help="address to bind (default 127.0.0.1, or PULSE_HOST)")
    demo_p.add_argument("--port", type=int, help="public port (PULSE_PORT)")
    demo_p.add_argument("--rate", type=float, default=3.0,
                        help="simulated events per second (default 3)")
    demo_p.set_defaults(func=cmd_demo)

    user_p = sub.add_parser("create-user", help="create a panel account")
    user_p.add_argument("email")
    user_p.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    user_p.add_argument("--admin", action="store_true",
                        help="make the user an administrator (the first user always is)")
    user_p.set_defaults(func=cmd_create_user)

    site_p = sub.add_parser("create-website", help="add a website; prints its id")
    site_p.add_argument("domain")
    site_p.add_argument("--name", help="display name (default: the domain)")
    site_p.add_argument("--origin", action="append",
                        help="an extra allowed origin, e.g. http://localhost:3000 (repeatable)")
    site_p.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC)")
    site_p.add_argument("--owner", help="email of the owning user (default: every admin)")
    site_p.set_defaults(func=cmd_create_website)

    token_p = sub.add_parser("create-token", help="create an API token; prints it once")
    token_p.add_argument("email")
    token_p.add_argument("--name", help="a label for the token")
    token_p.set_defaults(func=cmd_create_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python app.py`` and the ``pulse`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    try:
        settings_level = Settings.from_env().log_level.upper()
    except SettingsError as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    if args.command not in ("serve", "demo"):  # one-shot commands print only their result
        settings_level = "WARNING"
    logging.basicConfig(level=getattr(logging, settings_level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (AccountError, WebsiteError, SettingsError) as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

if __name__ == "__main__":
    sys.exit(main())
