"""One error root; each subclass carries the exit status of the contract.

The core raises these; only the CLI turns them into messages and exit codes (the hook into its
verdict). Every error a user can meet, and where it lives:

    LayoutdError (2)
    ├── InputError (2)                 bad input or usage
    │   ├── UnknownDevice (2)          a device the host lacks, named where it was given
    │   ├── QemuRefusal (2)            QEMU itself would refuse; its own words
    │   ├── NotModelled (2)            the model cannot answer (the hook lets the domain start)
    │   │   └── UnsupportedOption (2)  an option that touches memory and is not modelled
    │   ├── ParseError (2)             a kernel buffer, sysfs file or dump that does not parse
    │   └── NeedsHostCpu (2)           qemu/cpus.py: the guest CPU needs the host's, unknown
    ├── HostUnavailable (3)            the host could not be asked
    │   └── TimeLimit (3)              the hook's check ran past its time limit
    └── NoAnswer (1)                   the answer is no
        ├── NoLayout (1)               plan's "no", with what blocks and what would work
        ├── HotplugFailed (1)          live/hotplug.py: QEMU refused or misplaced the device
        └── QemuSaid (1)               live/session.py: a QMP error reply

Caught where they are raised, never shown as such: ConfigError (libvirt/hookconf.py, a hook
configuration problem kept as text), FieldError and Invalid (models/fields.py, models/validate.py:
a spec or dump's problem, turned into InputError or ParseError naming the file and field),
UsageError (cli.py, argparse's complaint, exit 2).
"""

from typing import Any


class LayoutdError(Exception):
    """Root of every error layoutd reports to a user."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 details: dict[str, Any] | None = None):
        self.message = message
        self.file = file
        self.field = field
        self.details = details or {}  # extra JSON keys for --format json (plan's "no": would_work)
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.field:
            where.append(self.field)
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class InputError(LayoutdError):
    """Bad input or usage: a missing file, invalid YAML/XML/dump, unknown device (exit 2)."""

    exit_code = 2


class UnknownDevice(InputError):
    """A device the host does not have; `at()` names where the user gave it (a command line's
    host=, a domain's <hostdev>, a spec's devices entry), --devices unless said."""

    def __init__(self, device: str, message: str, *, file: str | None = None,
                 field: str | None = "--devices"):
        super().__init__(message, file=file, field=field)
        self.device = device

    def at(self, origins: dict[str, tuple[str | None, str]]) -> "UnknownDevice":
        file, field = origins.get(self.device, (self.file, self.field or "--devices"))
        return UnknownDevice(self.device, self.message, file=file, field=field)


class QemuRefusal(InputError):
    """QEMU itself would refuse this command line; the message is QEMU's (exit 2). `fixes`:
    what would make QEMU take it, each line said as `would work: ...` (in JSON `would_work`)."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 details: dict[str, Any] | None = None, fixes: tuple[Any, ...] = ()):
        self.fixes = fixes  # texts, or {"change", "text"} documents
        texts = [fix["text"] if isinstance(fix, dict) else str(fix) for fix in fixes]
        details = {**(details or {}), **({"would_work": [
            fix if isinstance(fix, dict) else {"change": {}, "text": fix} for fix in fixes]}
            if fixes else {})}
        self.texts = texts
        super().__init__(message, file=file, field=field, details=details)

    def render(self) -> str:
        lines = [f"QEMU would refuse this: {super().render()}",
                 *(f"  would work: {text}" for text in getattr(self, "texts", []))]
        return "\n".join(lines)


class NotModelled(InputError):
    """The model cannot answer: an option, machine type, architecture or QEMU version it does
    not cover (exit 2). The hook lets such a domain start (it proves no collision)."""


class UnsupportedOption(NotModelled):
    """A QEMU option that touches memory and is not modelled (exit 2)."""


class HostUnavailable(LayoutdError):
    """The host could not be asked: permission, a busy group, an old kernel (exit 3)."""

    exit_code = 3


class TimeLimit(HostUnavailable):
    """The hook's check ran past the configured time limit (exit 3)."""


class ParseError(InputError):
    """A kernel buffer, sysfs file or dump that does not parse (exit 2)."""


class NoAnswer(LayoutdError):
    """The answer is no: a collision, no layout, a refused hotplug (exit 1)."""

    exit_code = 1


class NoLayout(NoAnswer):
    """plan's "no": what blocks (`lines`, and `blocked_by` in details) and the suggestions that
    plan when applied (each with `.change`, `.text()`); `say` renders them in another language."""

    def __init__(self, headline: str, lines: list[str], suggestions: list[Any], *,
                 details: dict[str, Any] | None = None, say: Any = None):
        self.headline, self.lines, self.suggestions = headline, lines, suggestions
        self.say = say  # how the suggestions are said now (None: the spec's own words)
        details = dict(details or {})
        details["would_work"] = [idea.as_json() for idea in suggestions]
        super().__init__(self._text(say), details=details)

    def _text(self, say: Any) -> str:
        ideas = [f"would work: {say(idea) if say else idea.text()}" for idea in self.suggestions]
        ideas = ideas or ["nothing close works: use other hosts or drop the VFIO devices"]
        return "\n".join([self.headline, *(f"  {line}" for line in self.lines + ideas)])

    def speaking(self, say: Any) -> "NoLayout":
        """The same "no" with the suggestions in another language (XML elements, options)."""
        return NoLayout(self.headline, self.lines, self.suggestions, details=self.details, say=say)


def exit_status(collision: bool, not_judged: object) -> int:
    """`check`'s and `plan`'s status for an answer: 1 for a proven collision (or "no"), else 3
    while anything is not judged (never a silent yes), else 0."""
    if collision:
        return NoAnswer.exit_code
    return HostUnavailable.exit_code if not_judged else 0
