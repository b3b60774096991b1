"""Error families with user-facing messages; the CLI maps them to exit codes in one place."""

from __future__ import annotations


class HqError(Exception):
    """An error the user should see as a message (no traceback), optionally with a hint."""

    exit_code = 1
    #: How the CLI prints it: `Error: <message>` (upstream's HqError::GenericError, also every
    #: error the server returns); CommandError clears it.
    prefix = "Error: "

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class ServerNotFound(HqError):
    """No access record in the server directory."""


class ServerUnreachable(HqError):
    """An access record exists but its server does not answer."""


class AccessRecordError(HqError):
    """The access record is unreadable, of another version, or incomplete."""


class RequestFailed(HqError):
    """The server answered a request with an error."""


class UnsafeAccess(HqError):
    """The server directory or its access record cannot be used safely (another user could
    control it, or it has no key for this side): refused, never retried."""


class CommandError(HqError):
    """An error of the command itself, printed as the bare message (upstream's `anyhow` errors
    of the client commands, e.g. submit's checks)."""

    prefix = ""


class SpecError(CommandError):
    """A job or task specification is invalid (raised by `client.spec` before anything is sent).

    `field` names the offending value in the builder's terms (`"cwd"`, `"crash_limit"`,
    `"resources"`, ...), or is None for a problem of the whole submission; each front end (CLI
    options, job files, the Python API) turns it into its own wording (`'--cwd'`, `task[2].cwd`).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
