"""One error hierarchy for everything a user can get wrong.

Every ``GovlakeError`` carries what went wrong, where (file, row, field) and how to fix it, so the CLI
can print it as a short Chinese message and exit non-zero instead of showing a stack trace.
Programming errors are *not* GovlakeErrors and still surface as traces.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GovlakeError(Exception):
    """Base class: ``message`` says what, ``where`` says where, ``hint`` says what to do."""

    message: str
    where: str | None = None
    hint: str | None = None
    exit_code: int = 2

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.where:
            parts.append(f"位置：{self.where}")
        if self.hint:
            parts.append(f"处理建议：{self.hint}")
        return "\n".join(parts)


class ConfigError(GovlakeError):
    """A contract, registry or setting is invalid (names the file and the dotted path)."""


class RegistryError(GovlakeError):
    """An unknown node, dataset, table or code list was named."""


class DeliveryRefused(GovlakeError):
    """A delivered file was refused as a whole; nothing of it was written."""


class AccessDenied(GovlakeError):
    """The role may not read the table it asked for."""


class QueryError(GovlakeError):
    """A SQL query failed for a reason the user can fix (syntax, unknown column)."""


class PipelineError(GovlakeError):
    """A job could not complete; the lake is left as it was before the job (Delta transactions)."""

    exit_code: int = 3


def did_you_mean(name: str, candidates: list[str] | set[str]) -> str | None:
    """Suggest the closest known name, as dbt and SQLMesh do for misspelt references."""
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"是否想输入 “{close[0]}”？" if close else None
