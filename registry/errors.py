"""Registry errors with Confluent-compatible error codes and HTTP statuses.

Every failure a client can see is one of these; the HTTP layer renders them as
``{"error_code": N, "message": "..."}`` with the matching status.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: carries the Confluent-compatible error code and the HTTP status it maps to."""

    status: int = 500
    error_code: int = 50001

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Extra response headers (e.g. WWW-Authenticate for 401).
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


class Unauthorized(RegistryError):
    status, error_code = 401, 40101


class Forbidden(RegistryError):
    status, error_code = 403, 40301


class SubjectNotFound(RegistryError):
    status, error_code = 404, 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFound(RegistryError):
    status, error_code = 404, 40402

    def __init__(self, subject: str, version: int | str) -> None:
        super().__init__(f"Version {version} not found for subject '{subject}'.")


class SchemaNotFound(RegistryError):
    status, error_code = 404, 40403

    def __init__(self, message: str = "Schema not found") -> None:
        super().__init__(message)


class SubjectSoftDeleted(RegistryError):
    status, error_code = 404, 40404

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
        )


class SubjectNotSoftDeleted(RegistryError):
    status, error_code = 404, 40405

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted"
        )


class VersionSoftDeleted(RegistryError):
    status, error_code = 404, 40406

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently"
        )


class VersionNotSoftDeleted(RegistryError):
    status, error_code = 404, 40407

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first before being "
            "permanently deleted"
        )


class SubjectCompatibilityNotConfigured(RegistryError):
    status, error_code = 404, 40408

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )


class SubjectModeNotConfigured(RegistryError):
    status, error_code = 404, 40409

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' does not have subject-level mode configured")


class RouteNotFound(RegistryError):
    status, error_code = 404, 404

    def __init__(self) -> None:
        super().__init__("HTTP 404 Not Found")


class MethodNotAllowed(RegistryError):
    status, error_code = 405, 405

    def __init__(self) -> None:
        super().__init__("HTTP 405 Method Not Allowed")


class IncompatibleSchema(RegistryError):
    status, error_code = 409, 409

    def __init__(self, subject: str, messages: list[str]) -> None:
        super().__init__(
            "Schema being registered is incompatible with an earlier schema for subject "
            f'"{subject}"'
            f", details: {'; '.join(messages)}"
        )
        self.messages = messages


class UnsupportedMediaType(RegistryError):
    status, error_code = 415, 415


class InvalidRequestBody(RegistryError):
    """Malformed JSON or a body of the wrong shape."""

    status, error_code = 400, 400


class InvalidSchema(RegistryError):
    status, error_code = 422, 42201

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid schema: {detail}")


class InvalidVersion(RegistryError):
    status, error_code = 422, 42202

    def __init__(self, version: object) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            "between [1, 2^31-1] and the string \"latest\""
        )


class InvalidCompatibilityLevel(RegistryError):
    status, error_code = 422, 42203

    def __init__(self, level: object) -> None:
        super().__init__(
            f"Invalid compatibility level {level!r}. Valid values are none, backward, forward, "
            "full, backward_transitive, forward_transitive, and full_transitive"
        )


class InvalidMode(RegistryError):
    status, error_code = 422, 42204

    def __init__(self, mode: object) -> None:
        super().__init__(
            f"Invalid mode {mode!r}. Valid values are READWRITE, READONLY and IMPORT"
        )


class OperationNotPermitted(RegistryError):
    status, error_code = 422, 42205


class ReferenceExists(RegistryError):
    status, error_code = 422, 42206

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"One or more references exist to the schema {{subject={subject}, version={version}}}"
        )


class StoreError(RegistryError):
    status, error_code = 500, 50001


class OperationTimeout(RegistryError):
    status, error_code = 500, 50002


class ForwardingError(RegistryError):
    status, error_code = 500, 50003
