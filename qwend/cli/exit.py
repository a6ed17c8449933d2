"""qwenctl exit statuses, and the pure mapping to them from errors and outcomes."""

from __future__ import annotations

from enum import IntEnum

from qwend.api.client import ControlTimeout, DaemonNotRunning, RemoteError, SocketPermissionDenied
from qwend.api.messages import ErrorCode, PromotionOutcome
from qwend.bench.scenarios import ScenarioError
from qwend.errors import ConfigError, QwendError


class ExitStatus(IntEnum):
    """qwenctl exit statuses (documented in docs/qwenctl.md; stable)."""

    OK = 0
    """The command did what was asked."""
    ERROR = 1
    """The daemon refused or failed the request (the message says why)."""
    USAGE = 2
    """Bad command line (argparse's convention), or an invalid configuration for check-config."""
    UNREACHABLE = 3
    """No daemon answers on the control socket (not running, or wrong socket)."""
    PERMISSION_DENIED = 4
    """The control socket exists but this user may not open it (join its group)."""
    ROLLED_BACK = 5
    """The promotion failed and the previous lane was restored."""
    CONFLICT = 6
    """Another promotion of the same role is running, or the lane's state forbids the action."""
    NOT_FOUND = 7
    """No such lane or role."""
    TIMEOUT = 8
    """The daemon did not answer in time."""
    GATE_REFUSED = 9
    """The latency gate found the candidate slower than allowed; the incumbent serves on."""
    PEER_UNREACHABLE = 10
    """``status`` across hosts: shown, but some peer did not answer (its line says why)."""


_REMOTE = {
    ErrorCode.NOT_FOUND: ExitStatus.NOT_FOUND,
    ErrorCode.CONFLICT: ExitStatus.CONFLICT,
    ErrorCode.BAD_REQUEST: ExitStatus.USAGE,
}


def exit_status_for(error: BaseException) -> ExitStatus:
    """The exit status for an error that ended a command."""
    if isinstance(error, SocketPermissionDenied):
        return ExitStatus.PERMISSION_DENIED
    if isinstance(error, DaemonNotRunning):
        return ExitStatus.UNREACHABLE
    if isinstance(error, ControlTimeout | TimeoutError):
        return ExitStatus.TIMEOUT
    if isinstance(error, RemoteError):
        return _REMOTE.get(error.code, ExitStatus.ERROR)
    if isinstance(error, ConfigError | ScenarioError):
        return ExitStatus.USAGE
    if isinstance(error, QwendError):
        return ExitStatus.ERROR
    return ExitStatus.ERROR


_ERROR_TYPES = {
    ExitStatus.UNREACHABLE: "unreachable",
    ExitStatus.PERMISSION_DENIED: "permission_denied",
    ExitStatus.TIMEOUT: "timeout",
    ExitStatus.USAGE: "usage",
}


def error_object(error: BaseException, status: ExitStatus) -> dict[str, object]:
    """The ``error`` object qwenctl prints on stdout under --json (pure).

    ``type`` is the daemon's error code when it answered with one, else what went wrong
    on this side; ``exit_status`` is the status qwenctl exits with.
    """
    kind = error.code.value if isinstance(error, RemoteError) else _ERROR_TYPES.get(status, "error")
    if isinstance(error, ConfigError):
        kind = ErrorCode.CONFIG_INVALID.value
    return {"type": kind, "message": str(error), "exit_status": int(status)}


def exit_status_for_outcome(outcome: PromotionOutcome) -> ExitStatus:
    """A finished promotion: promoted is OK, a rollback has its own status."""
    return {
        PromotionOutcome.PROMOTED: ExitStatus.OK,
        PromotionOutcome.ROLLED_BACK: ExitStatus.ROLLED_BACK,
        PromotionOutcome.FAILED: ExitStatus.ERROR,
        PromotionOutcome.REFUSED: ExitStatus.GATE_REFUSED,
    }[outcome]
