"""Logging set-up, with a filter that blanks every configured secret from every record.

The bridge never logs a secret on purpose; this makes sure a third-party library's message
(an exception text quoting a header, say) cannot leak one either.
"""

from __future__ import annotations

import logging

from bridge.config import Config


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(config: Config) -> None:
    secrets = [config.bridge.admin_token]
    if config.tunnel is not None:
        secrets.append(config.tunnel.token)
    for location in config.locations.values():
        secrets.extend(location.auth.secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.bridge.log_level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
