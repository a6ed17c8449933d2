"""qwenctl's exit statuses: stable values, and the pure mapping from errors and outcomes."""

from __future__ import annotations

import pytest

from qwend.api.client import ControlTimeout, DaemonNotRunning, RemoteError, SocketPermissionDenied
from qwend.api.messages import ErrorCode, PromotionOutcome
from qwend.bench.scenarios import ScenarioError
from qwend.cli.exit import ExitStatus, exit_status_for, exit_status_for_outcome
from qwend.errors import ConfigError, QwendError


def test_exit_statuses_are_stable() -> None:
    assert {s.name: s.value for s in ExitStatus} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "UNREACHABLE": 3,
        "PERMISSION_DENIED": 4,
        "ROLLED_BACK": 5,
        "CONFLICT": 6,
        "NOT_FOUND": 7,
        "TIMEOUT": 8,
        "GATE_REFUSED": 9,
        "PEER_UNREACHABLE": 10,
    }


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SocketPermissionDenied("x"), ExitStatus.PERMISSION_DENIED),
        (DaemonNotRunning("x"), ExitStatus.UNREACHABLE),
        (ControlTimeout("x"), ExitStatus.TIMEOUT),
        (TimeoutError(), ExitStatus.TIMEOUT),
        (RemoteError(ErrorCode.NOT_FOUND, "x", 404), ExitStatus.NOT_FOUND),
        (RemoteError(ErrorCode.CONFLICT, "x", 409), ExitStatus.CONFLICT),
        (RemoteError(ErrorCode.BAD_REQUEST, "x", 400), ExitStatus.USAGE),
        (RemoteError(ErrorCode.INTERNAL, "x", 500), ExitStatus.ERROR),
        (ConfigError([]), ExitStatus.USAGE),
        (ScenarioError("unknown scenario"), ExitStatus.USAGE),
        (QwendError("x"), ExitStatus.ERROR),
        (OSError("x"), ExitStatus.ERROR),
    ],
)
def test_errors_map_to_statuses(error: BaseException, status: ExitStatus) -> None:
    assert exit_status_for(error) is status


def test_outcomes_map_to_statuses() -> None:
    assert exit_status_for_outcome(PromotionOutcome.PROMOTED) is ExitStatus.OK
    assert exit_status_for_outcome(PromotionOutcome.ROLLED_BACK) is ExitStatus.ROLLED_BACK
    assert exit_status_for_outcome(PromotionOutcome.FAILED) is ExitStatus.ERROR
    assert exit_status_for_outcome(PromotionOutcome.REFUSED) is ExitStatus.GATE_REFUSED
