"""One error hierarchy for everything a user can get wrong.

Every ``GovlakeError`` carries what went wrong, where (file, row, field) and how to fix it, so the CLI
can print it as a short Chinese message and exit non-zero instead of showing a stack trace.
Programming errors are *not* GovlakeErrors and still surface as traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class GovlakeError(Exception):
    """Base class: ``message`` says what, ``where`` says where, ``hint`` says what to do."""

    message: str
    where: str | None = None
    hint: str | None = None
    # A class constant, not a field: as a dataclass field the base's __init__ reset every subclass's code to 2.
    exit_code: ClassVar[int] = 2

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

    exit_code: ClassVar[int] = 3


def did_you_mean(name: str, candidates: list[str] | set[str]) -> str | None:
    """Suggest the closest known name, as dbt and SQLMesh do for misspelt references."""
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"是否想输入 “{close[0]}”？" if close else None


class StorageError(GovlakeError):
    """The lake's storage refused a write (full, read-only, no permission). Delta commits are atomic, so the
    lake is as it was before the interrupted transaction; rerunning the same command after the fix resumes."""

    exit_code: ClassVar[int] = 3


# errno values and the texts Rust (delta-rs, object_store) and C++ (DuckDB, Arrow) put in their messages.
_STORAGE_FAILURES = (
    (28, ("No space left on device", "os error 28"), "湖所在的存储空间已满，本次写入未完成",
     "释放空间或扩容后重新运行同一命令；未提交的 Delta 事务不会留下数据，重跑会从中断处继续"),
    (122, ("Disk quota exceeded", "os error 122"), "湖所在存储的配额已用完，本次写入未完成",
     "提高配额或清理空间后重新运行同一命令；未提交的 Delta 事务不会留下数据"),
    (30, ("Read-only file system", "os error 30"), "湖所在的存储为只读，无法写入",
     "检查挂载方式（只读挂载、快照或只读副本），在可写的湖上运行；只读查询请使用 govlake sql"),
    (13, ("Permission denied", "os error 13"), "没有写入湖目录的权限",
     "以湖的属主身份运行（湖文件仅属主可读写），或请管理员检查目录权限"),
)


def storage_error(exc: BaseException) -> StorageError | None:
    """Translate a storage failure from any layer (Python OSError, delta-rs, DuckDB, Arrow) into a clear
    StorageError; None when ``exc`` is something else. Only the errno and the OS's own wording are inspected,
    so no delivered value can leak into the message."""
    errno = getattr(exc, "errno", None)
    text = str(exc)
    for code, needles, message, hint in _STORAGE_FAILURES:
        if errno == code or any(n in text for n in needles):
            where = getattr(exc, "filename", None)
            return StorageError(message, where=str(where) if where else None, hint=hint)
    return None
