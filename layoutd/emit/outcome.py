"""An error or a "no" as the one JSON document `--format json` promises for every outcome. Pure."""

from typing import Any

from layoutd.errors import HostUnavailable, LayoutdError, NoAnswer, QemuRefusal, UnsupportedOption

KINDS = ((QemuRefusal, "qemu-refusal"), (UnsupportedOption, "unsupported"),
         (HostUnavailable, "host-unavailable"), (NoAnswer, "no"), (LayoutdError, "input"))


def error_document(command: str, error: LayoutdError | None, *, message: str | None = None,
                   exit_code: int = 2, kind: str | None = None) -> dict[str, Any]:
    """{"command", "exit_code", "error": {kind, message, file, field}} and the error's details
    (plan's "no": blocked_by and would_work)."""
    if error is not None:
        kind = kind or next(name for cls, name in KINDS if isinstance(error, cls))
        message, exit_code = error.message, error.exit_code
    body = {"kind": kind or "usage", "message": message,
            "file": getattr(error, "file", None), "field": getattr(error, "field", None)}
    return {"command": command, "exit_code": exit_code, "error": body,
            **(error.details if error is not None else {})}
