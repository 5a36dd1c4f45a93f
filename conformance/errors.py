"""Errors that mean "the suite could not judge": they end a check as `error`, never `failed`."""

from __future__ import annotations


class HarnessError(Exception):
    """Base: the check could not reach a verdict about the target."""


class TargetUnreachable(HarnessError):
    """A request to the target failed at the transport level or timed out."""


class ConnectionFailed(TargetUnreachable):
    """Nothing accepted the connection: refused, no such host, or no answer to connect."""


class TimedOut(TargetUnreachable):
    """The connection was accepted, but no complete response came within the suite's limits."""


class MalformedResponse(TargetUnreachable):
    """The response was not HTTP the suite can read (e.g. header lines beyond the cap)."""


class ResponseTooLarge(HarnessError):
    """A response body exceeded the suite's size cap."""


class TooManyRedirects(HarnessError):
    """A redirect chain went on beyond the suite's redirect cap."""


class OutOfScopeRequest(HarnessError):
    """A request would have gone to a host outside the run's scope."""


class PreconditionFailed(HarnessError):
    """Something a check builds on (metadata, a client, a token, a known-good request) failed."""


class ConfigError(Exception):
    """Bad suite configuration; reported as one line that says what to fix."""
