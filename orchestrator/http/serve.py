"""Serving the read-only app in the daemon's own event loop.

``start_http`` binds the listen address (before the daemon tells systemd READY=1) and returns the
runner, or None when the endpoint is off or its address cannot be bound (logged at error level;
the daemon works on without it); ``stop_http`` closes it in
the drain. Access logs are off: a scrape every 15 s would drown the journal.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.http.app import Sources, make_app
from orchestrator.logs import get_logger

log = get_logger(__name__)

# How long open connections get to finish when the endpoint stops (the drain is bounded).
SHUTDOWN_SECONDS = 2.0


async def start_http(address: tuple[str, int] | None, sources: Sources) -> web.AppRunner | None:
    """Serve the app on ``address`` ((host, port); port 0 picks one); None when it is off."""
    if address is None:
        log.info("http.disabled")
        return None
    host, port = address
    runner = web.AppRunner(
        make_app(sources),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as error:
        # The daemon's work (archiving before Twilio removes the files) matters more than its
        # endpoint: it runs on without one, and the scrape failing (up == 0) alerts.
        await runner.cleanup()
        log.error(
            "http.listen_failed",
            host=host,
            port=port,
            error=str(error),
            action="running without the HTTP endpoint; free the port or change [http] listen",
        )
        return None
    log.info("http.listening", urls=[_url(a) for a in runner.addresses])
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner listens on (the one picked for port 0)."""
    address = runner.addresses[0]
    return int(address[1])


async def stop_http(runner: web.AppRunner | None) -> None:
    """Stop serving (nothing when the endpoint is off)."""
    if runner is not None:
        await runner.cleanup()
        log.info("http.stopped")


def _url(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"http://[{host}]:{address[1]}/" if ":" in host else f"http://{host}:{address[1]}/"
    return str(address)
