"""``pos-bridge loke-sandbox``: the LOKE sandbox (``bridge/platforms/loke/sandbox/``) on one
port, seeded with one addon client and two organisations, until Ctrl-C or SIGTERM.

It prints its base URL, the client it knows and the ``[loke]`` lines that point a bridge at
it. The client secret is the sandbox's own (not a LOKE credential), so printing it is fine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

DEFAULT_PORT = 8790
DEFAULT_CLIENT_ID = "pos-bridge"
DEFAULT_CLIENT_SECRET = "pos-bridge-sandbox-secret"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8787/admin/loke/callback"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        help=f"the bridge's OAuth callback (repeatable; default {DEFAULT_REDIRECT_URI})",
    )


def loke_section(base_url: str, client_id: str, client_secret: str, redirect_uri: str) -> str:
    """The ``[loke]`` table of a bridge's config that points it at this sandbox."""
    return "\n".join(
        [
            "[loke]",
            f'issuer = "{base_url}/"',
            f'api_url = "{base_url}/"',
            f'client_id = "{client_id}"',
            f'client_secret = "{client_secret}"',
            f'redirect_uri = "{redirect_uri}"',
        ]
    )


async def serve(args: argparse.Namespace) -> None:
    from bridge.platforms.loke.sandbox.app import start_sandbox
    from bridge.platforms.loke.sandbox.state import demo_state

    redirect_uris = tuple(args.redirect_uri or [DEFAULT_REDIRECT_URI])
    state = demo_state(args.client_id, args.client_secret, redirect_uris)
    runner, base_url = await start_sandbox(args.host, args.port, state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C is KeyboardInterrupt
            loop.add_signal_handler(signum, stop.set)
    try:
        print(f"LOKE sandbox on {base_url}", flush=True)
        print(f"client id: {args.client_id}", flush=True)
        print("in the bridge's config:", flush=True)
        print(
            loke_section(base_url, args.client_id, args.client_secret, redirect_uris[0]),
            flush=True,
        )
        print("Ctrl-C stops it.", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
    print("LOKE sandbox stopped", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"pos-bridge: the LOKE sandbox cannot listen on {args.host}:{args.port}:"
            f" {exc.strerror} (use --port)",
            file=sys.stderr,
        )
        return 1
    return 0
