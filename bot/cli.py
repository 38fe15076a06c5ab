"""The ``bananabot`` command: run, imagine, budget, policy, doctor, discord."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from bot.app import App, build_app, run
from bot.budgets import BudgetCap, CapScope, Period, cap_label
from bot.errors import BananabotError, ConfigurationError, ReferenceImageError, UserInputError
from bot.logs import configure_logging, secret_values
from bot.media.images import EXTENSION_FOR_MIME
from bot.messages import describe_done, render_error, render_failure, render_reset
from bot.models import Done, Failed, Generating, JobUpdate, Origin, Queued, parse_request
from bot.money import format_usd, parse_usd
from bot.policy import TOLERANCE_ORDER, ChannelPolicy
from bot.service import utcnow
from bot.settings import Settings

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3
CLI_WORKSPACE, CLI_CHANNEL = "local", "cli"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bananabot",
        description="Nano Banana Pro and Nano Banana 2 images for Discord, Slack and your browser.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    run_parser = sub.add_parser(
        "run", help="start every adapter with credentials (else the local playground)"
    )
    run_parser.add_argument(
        "--no-adapters",
        action="store_true",
        help="run workers and /healthz, /metrics only (same as 'bananabot worker')",
    )
    sub.add_parser("worker", help="run workers and /healthz, /metrics only: adapters run elsewhere")

    im = sub.add_parser("imagine", help="generate images from a prompt, through the full core")
    im.add_argument("prompt")
    im.add_argument("--model", default="nano-banana-2", help="nano-banana-pro | nano-banana-2")
    im.add_argument(
        "--ref",
        action="append",
        default=[],
        metavar="PATH_OR_URL",
        help="reference image (repeatable, up to 14)",
    )
    im.add_argument("--aspect-ratio", help="e.g. 16:9")
    im.add_argument("--resolution", help="0.5K | 1K | 2K | 4K")
    im.add_argument("--width", type=int, help="exact width in pixels (with --height)")
    im.add_argument("--height", type=int, help="exact height in pixels (with --width)")
    im.add_argument("--seed", type=int)
    im.add_argument("--n", type=int, default=1, help="number of images (1..20)")
    im.add_argument("--format", dest="output_format", type=str.upper, help="JPG | PNG | WEBP")
    im.add_argument("--quality", dest="output_quality", type=int, help="20..99")
    im.add_argument("--temperature", type=float, help="0..1, step 0.01")
    im.add_argument("--top-p", type=float, help="0..1, step 0.01")
    im.add_argument("--system-prompt")
    im.add_argument("--thinking", type=str.upper, help="MINIMAL | HIGH (Nano Banana 2)")
    im.add_argument("--web-search", action=argparse.BooleanOptionalAction, default=None)
    im.add_argument("--image-search", action=argparse.BooleanOptionalAction, default=None)
    im.add_argument("--safety-tolerance", type=str.lower, help=" | ".join(TOLERANCE_ORDER))
    im.add_argument("--provider", help="force a provider (e.g. sandbox, runware)")
    im.add_argument("--out", type=Path, default=Path("."), help="folder for the images")
    im.add_argument(
        "--allow-nsfw",
        action="store_true",
        help="write images the provider flagged NSFW (withheld otherwise)",
    )

    budget = sub.add_parser("budget", help="show and set budget caps (US dollars)")
    budget.add_argument("--workspace", default=CLI_WORKSPACE)
    bsub = budget.add_subparsers(dest="action", required=True)
    bsub.add_parser("show", help="caps with spend, held and left")
    for name in ("set", "remove"):
        b = bsub.add_parser(name, help=f"{name} a cap")
        b.add_argument("scope", choices=[s.value for s in CapScope])
        b.add_argument("scope_id", nargs="?", help="user or channel id (not for workspace)")
        b.add_argument("--period", choices=[p.value for p in Period], default="day")
        if name == "set":
            b.add_argument("--limit", required=True, help="US dollars, e.g. 5 or 2.50")

    policy = sub.add_parser("policy", help="show and set the safety policy")
    policy.add_argument("--workspace", default=CLI_WORKSPACE)
    policy.add_argument("--channel", default="", help="channel id; empty = the whole workspace")
    psub = policy.add_subparsers(dest="action", required=True)
    psub.add_parser("show")
    pset = psub.add_parser("set")
    pset.add_argument("max_tolerance", choices=TOLERANCE_ORDER)
    pset.add_argument("--force-check-content", action=argparse.BooleanOptionalAction, default=False)

    sub.add_parser("doctor", help="check the configuration and show it with secrets masked")

    dc = sub.add_parser("discord", help="Discord: push the slash commands, print the invite URL")
    dsub = dc.add_subparsers(dest="action", required=True)
    dsub.add_parser(
        "sync",
        help="push the commands (to DISCORD_GUILD_IDS at once if set, else globally)",
    )
    invite = dsub.add_parser("invite-url", help="print the URL that adds the bot to a server")
    invite.add_argument(
        "--client-id", type=int, help="the application id (default: read from DISCORD_TOKEN)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bananabot`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    quiet = logging.INFO if args.verbose else logging.WARNING
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"bananabot: configuration error: {_first_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    configured = logging.getLevelName(settings.log_level)
    # Long-running commands log at BANANABOT_LOG_LEVEL; one-shot commands stay quiet
    # unless -v asks (then BANANABOT_LOG_LEVEL may go lower still).
    if args.command in ("run", "worker"):
        level = configured
    else:
        level = min(quiet, configured) if args.verbose else quiet
    configure_logging(
        level,
        secret_values(settings),
        settings.log_format,
    )
    try:
        if args.command in ("run", "worker"):
            adapters = args.command == "run" and not args.no_adapters
            try:
                asyncio.run(run(settings, adapters=adapters))
            except KeyboardInterrupt:
                return EXIT_OK
            return EXIT_OK
        if args.command == "imagine":
            return asyncio.run(_imagine(args, settings))
        if args.command == "budget":
            return asyncio.run(_budget(args, settings))
        if args.command == "policy":
            return asyncio.run(_policy(args, settings))
        if args.command == "discord":
            return _discord(args, settings)
        return asyncio.run(_doctor(settings))
    except UserInputError as exc:
        print(f"bananabot: {render_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"bananabot: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except BananabotError as exc:
        print(f"bananabot: {render_error(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


class _Progress:
    """The CLI's delivery: collects the job's outcome and draws a progress line on a TTY."""

    platform = "cli"

    def __init__(self, job_id_future: asyncio.Future[str]) -> None:
        self.outcome: asyncio.Future[Done | Failed] = asyncio.get_running_loop().create_future()
        self._job_id = job_id_future
        self._state = "queued"
        self._started = time.monotonic()
        self._tty = sys.stderr.isatty()

    async def on_update(self, update: JobUpdate) -> None:
        if not self._job_id.done() or update.job.id != self._job_id.result():
            return
        if isinstance(update, Queued):
            self._state = f"queued #{update.position}"
        elif isinstance(update, Generating):
            self._state = f"generating on {update.provider}"
        elif not self.outcome.done():
            self.outcome.set_result(update)

    async def spin(self) -> None:
        if not self._tty:
            return
        frames = "|/-\\"
        tick = 0
        while not self.outcome.done():
            elapsed = time.monotonic() - self._started
            print(f"\r{frames[tick % 4]} {self._state} {elapsed:5.1f}s", end="", file=sys.stderr)
            tick += 1
            await asyncio.sleep(0.2)
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)


async def _imagine(args: argparse.Namespace, settings: Settings) -> int:
    fields: dict[str, Any] = {
        "prompt": args.prompt,
        "model": args.model,
        "aspect_ratio": args.aspect_ratio,
        "resolution": _tier(args.resolution),
        "width": args.width,
        "height": args.height,
        "seed": args.seed,
        "number_results": args.n,
        "output_format": "JPG" if args.output_format == "JPEG" else args.output_format,
        "output_quality": args.output_quality,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "system_prompt": args.system_prompt,
        "thinking": args.thinking,
        "web_search": args.web_search,
        "image_search": args.image_search,
        "safety_tolerance": args.safety_tolerance,
    }
    parse_request({k: v for k, v in fields.items() if v is not None})  # fail before any I/O
    async with build_app(settings) as app:
        job_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        progress = _Progress(job_id)
        app.router.register("cli", progress)
        references = [
            await app.service.load_reference(await _read_ref(ref, i), i)
            for i, ref in enumerate(args.ref)
        ]
        fields["references"] = tuple(references)
        request = parse_request({k: v for k, v in fields.items() if v is not None})
        origin = Origin(
            platform="cli",
            workspace_id=CLI_WORKSPACE,
            channel_id=CLI_CHANNEL,
            user_id=_user(),
            channel_nsfw=args.allow_nsfw,
        )
        submitted = await app.service.submit(
            request, origin, idempotency_key=f"cli:{time.time_ns()}", provider=args.provider
        )
        job_id.set_result(submitted.job.id)
        for notice in submitted.notices:
            print(f"bananabot: {notice}", file=sys.stderr)
        print(
            f"bananabot: job {submitted.job.id} on {submitted.job.provider}, "
            f"estimate {format_usd(submitted.estimate_micros)}",
            file=sys.stderr,
        )
        outcome = await _work_one(app, submitted.job.id, submitted.job.provider, progress)
        if isinstance(outcome, Failed):
            print(
                f"bananabot: {render_failure(outcome.error_code, outcome.message)}", file=sys.stderr
            )
            return EXIT_FAILED
        return await _write_images(app, outcome, args.out)


async def _work_one(app: App, job_id: str, provider: str, progress: _Progress) -> Done | Failed:
    async with asyncio.TaskGroup() as group:
        spinner = group.create_task(progress.spin())
        # A provider that refuses the connection hands the job to the next one (failover):
        # claim it again there until it has an outcome.
        while not progress.outcome.done():
            job = await app.store.claim(provider, _now(), job_id)
            if job is None:
                break
            await app.worker.run_job(job)
            provider = (await app.store.get_job(job_id)).provider
        outcome = await progress.outcome
        spinner.cancel()
    return outcome


async def _write_images(app: App, done: Done, out: Path) -> int:
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    for image in done.images:
        line: dict[str, Any] = {
            "job": done.job.id,
            "path": None,
            "seed": image.seed,
            "width": image.width,
            "height": image.height,
            "cost_usd": image.cost_micros / 1_000_000,
            "provider": done.job.provider,
            "model": done.job.request.model,
        }
        if image.withheld:
            line["withheld"] = "flagged NSFW by the provider; use --allow-nsfw to write it"
        else:
            extension = EXTENSION_FOR_MIME.get(image.mime_type, "img")
            path = out / f"{done.job.id}-{image.index + 1}.{extension}"
            data = await app.media.get(image.media_key)
            await asyncio.to_thread(path.write_bytes, data)
            line["path"] = str(path)
        print(json.dumps(line), flush=True)
    for notice in done.job.notices:
        print(f"bananabot: {notice}", file=sys.stderr)
    print(f"bananabot: {describe_done(done)}", file=sys.stderr)
    if done.job.provider == "sandbox":
        print(
            "bananabot: sandbox images are rendered locally, not real generations", file=sys.stderr
        )
    return EXIT_OK


async def _read_ref(ref: str, index: int) -> bytes | str:
    """A URL as is; a local file's bytes (only the CLI may read local files)."""
    if ref.lower().startswith(("http://", "https://")):
        return ref
    try:
        return await asyncio.to_thread(Path(ref).read_bytes)
    except OSError as exc:
        raise ReferenceImageError(f"cannot read {ref}: {exc.strerror}", index) from exc


def _tier(value: str | None) -> str | None:
    if value is None:
        return None
    return "0.5K" if value.strip().lower() in ("512", "0.5k") else value.strip().upper()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def _now() -> datetime:
    return utcnow()


async def _budget(args: argparse.Namespace, settings: Settings) -> int:
    async with build_app(settings, exclusive=False) as app:
        if args.action == "show":
            caps = await app.store.list_caps(args.workspace)
            if not caps:
                print(f"No caps in workspace {args.workspace!r}.")
            for usage in await app.store.usage(caps, _now()):
                cap = usage.cap
                who = cap.scope.value + (
                    f" {cap.scope_id}" if cap.scope is not CapScope.WORKSPACE else ""
                )
                print(
                    f"{who:<24} {cap.period.value:<6} limit {format_usd(cap.limit_micros):>10}  "
                    f"spent {format_usd(usage.spent_micros):>10}  held "
                    f"{format_usd(usage.held_micros):>10}  "
                    f"left {format_usd(usage.left_micros):>10}  "
                    f"{render_reset(usage.resets_at)}"
                )
            return EXIT_OK
        scope = CapScope(args.scope)
        scope_id = args.workspace if scope is CapScope.WORKSPACE else args.scope_id
        if not scope_id:
            print(f"bananabot: a {scope.value} cap needs the {scope.value} id", file=sys.stderr)
            return EXIT_USAGE
        limit = 0
        if args.action == "set":
            try:
                limit = parse_usd(args.limit)
            except ValueError as exc:
                print(f"bananabot: --limit: {exc}", file=sys.stderr)
                return EXIT_USAGE
        cap = BudgetCap(
            scope=scope,
            workspace_id=args.workspace,
            scope_id=scope_id,
            period=Period(args.period),
            limit_micros=limit,
        )
        if args.action == "set":
            await app.store.set_cap(cap, _now())
            label = cap_label(cap).replace("your", f"{scope_id}'s")
            print(f"Set {label} to {format_usd(limit)}.")
        elif await app.store.remove_cap(cap):
            print("Removed.")
        else:
            print("No such cap.")
        return EXIT_OK


async def _policy(args: argparse.Namespace, settings: Settings) -> int:
    async with build_app(settings, exclusive=False) as app:
        if args.action == "set":
            policy = ChannelPolicy(
                max_tolerance=args.max_tolerance, force_check_content=args.force_check_content
            )
            await app.store.set_policy(args.workspace, args.channel, policy, _now())
        origin = Origin(
            platform="cli",
            workspace_id=args.workspace,
            channel_id=args.channel or CLI_CHANNEL,
            user_id=_user(),
        )
        effective = await app.service.policy_for(origin)
        print(
            f"workspace {args.workspace!r} channel {args.channel or '(all)'!r}: most permissive "
            f"safety tolerance {effective.max_tolerance!r}; content check "
            f"{'forced on' if effective.force_check_content else 'as requested'}"
        )
        return EXIT_OK


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (``DATABASE_URL`` in ``doctor``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def _doctor(settings: Settings) -> int:
    print("Configuration (secrets masked):")
    for name, value in settings.model_dump().items():
        field = type(settings).model_fields[name]
        env = field.validation_alias.choices[0] if field.validation_alias else name  # type: ignore[union-attr]
        shown = "(set, hidden)" if name in settings.secret_fields() and value else value
        if name == "database_url":
            shown = masked_url(str(value))
        print(f"  {env:<32} {shown if shown not in (None, '', []) else '-'}")
    problems = 0
    try:
        async with build_app(settings, exclusive=False) as app:
            routing = settings.configured_providers()
            print(f"Providers in routing order: {', '.join(routing)}")
            for name, provider in app.providers.items():
                caps = provider.capabilities
                refs = (
                    "inline"
                    if caps.inline_references
                    else "as links (served at BANANABOT_PUBLIC_URL)"
                    if app.links is not None
                    else "as links only (Discord attachments; set BANANABOT_PUBLIC_URL)"
                )
                print(
                    f"  {name:<8} models {', '.join(sorted(caps.models))}; up to "
                    f"{caps.max_references} references, {refs}; reports cost: "
                    f"{caps.reports_cost}; resumable after a crash: {caps.resumable}; "
                    f"breaker: {app.worker.health.state(name).value} (per process)"
                )
            print(f"Database: {masked_url(settings.database_url)} (migrations applied)")
            probe = await app.media.put_image(_PROBE_PNG)
            print(
                f"Media store: {settings.data_dir / 'media'} (writable; probe {probe.key[:12]}...)"
            )
            if routing == ["sandbox"]:
                print("Note: no provider key is set; images come from the local sandbox.")
    except BananabotError as exc:
        problems += 1
        print(f"Problem: {exc.message}")
    except OSError as exc:
        problems += 1
        print(f"Problem: {exc}")
    print("OK" if not problems else f"{problems} problem(s)")
    return EXIT_OK if not problems else EXIT_CONFIG


def _discord(args: argparse.Namespace, settings: Settings) -> int:
    """``bananabot discord sync`` and ``bananabot discord invite-url``."""
    # Late: importing discord.py takes a while, and only these commands need it.
    from adapters.discord import application_id_from_token, invite_url

    if args.action == "invite-url":
        client_id = args.client_id
        if client_id is None:
            if settings.discord_token is None:
                raise ConfigurationError("set DISCORD_TOKEN or pass --client-id")
            try:
                client_id = application_id_from_token(settings.discord_token.get_secret_value())
            except ValueError as exc:
                raise ConfigurationError(
                    "DISCORD_TOKEN does not look like a bot token; pass --client-id"
                ) from exc
        print(invite_url(client_id))
        return EXIT_OK
    return asyncio.run(_discord_sync(settings))


async def _discord_sync(settings: Settings) -> int:
    import discord

    from adapters.discord import DiscordAdapter

    async with build_app(settings, exclusive=False) as app:
        adapter = DiscordAdapter.from_settings(settings, service=app.service, media=app.media)
        try:
            for line in await adapter.sync_commands():
                print(f"Synced {line}")
        except discord.HTTPException as exc:
            print(f"bananabot: Discord refused the commands: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if not settings.discord_guild_ids:
        print(
            "Global commands can take a moment to show up; set DISCORD_GUILD_IDS for "
            "instant updates in test servers."
        )
    return EXIT_OK


# A 1x1 PNG used to check that the media store is writable.
_PROBE_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


if __name__ == "__main__":
    raise SystemExit(main())
