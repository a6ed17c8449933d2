"""qwenctl exit statuses: the pure mapping from errors and outcomes."""

from __future__ import annotations

from qwend.api.client import ControlTimeout, DaemonNotRunning, RemoteError, SocketPermissionDenied
from qwend.api.messages import ErrorCode, ExitStatus, PromotionOutcome
from qwend.errors import ConfigError, QwendError

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
    if isinstance(error, ConfigError):
        return ExitStatus.USAGE
    if isinstance(error, QwendError):
        return ExitStatus.ERROR
    return ExitStatus.ERROR


def exit_status_for_outcome(outcome: PromotionOutcome) -> ExitStatus:
    """A finished promotion: promoted is OK, a rollback has its own status."""
    return {
        PromotionOutcome.PROMOTED: ExitStatus.OK,
        PromotionOutcome.ROLLED_BACK: ExitStatus.ROLLED_BACK,
        PromotionOutcome.FAILED: ExitStatus.ERROR,
    }[outcome]
