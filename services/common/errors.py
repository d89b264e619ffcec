"""Contract errors raised by domain code, free of gRPC.

The shared interceptor maps each to its gRPC status; anything else is a bug and becomes INTERNAL.
"""

from __future__ import annotations

# Trailing-metadata key of a stable, machine-readable reason sent beside the status code when one status covers
# several causes that a caller must tell apart (the message is for people and may change).
REASON_KEY = "caspian-reason"

# The reasons, one name each across the services.
DEADLINE_PASSED = "DEADLINE_PASSED"


class ContractError(Exception):
    """A failure the caller caused or must handle; `code` names the gRPC status, `reason` (optional) the cause."""

    code = "UNKNOWN"

    def __init__(self, message: str, field: str | None = None, reason: str | None = None):
        self.field = field
        self.reason = reason
        self.message = f"{field}: {message}" if field else message
        super().__init__(self.message)


class InvalidArgument(ContractError):
    code = "INVALID_ARGUMENT"


class NotFound(ContractError):
    code = "NOT_FOUND"


class AlreadyExists(ContractError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(ContractError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(ContractError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(ContractError):
    code = "UNAVAILABLE"


class PermissionDenied(ContractError):
    code = "PERMISSION_DENIED"


class Unauthenticated(ContractError):
    code = "UNAUTHENTICATED"


class DataLoss(ContractError):
    """Stored data that cannot be read back (a damaged record): not the caller's error, nor a bug."""

    code = "DATA_LOSS"
