"""Where the project's declarative files and the lake live.

The environment is chosen in one place: the project directory (contracts, registries, suites) and the
lake root (local path or s3:// URI with storage options) are resolved here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from govlake.errors import ConfigError

_MARKERS = ("schemas", "catalog")


def find_project_dir(start: Path | None = None) -> Path:
    """The directory holding schemas/ and catalog/: $GOVLAKE_PROJECT, else the source checkout."""
    env = os.environ.get("GOVLAKE_PROJECT")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent)
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    for cand in candidates:
        if all((cand / m).is_dir() for m in _MARKERS):
            return cand
    raise ConfigError(
        "找不到 govlake 项目目录（需包含 schemas/ 与 catalog/）",
        hint="在项目根目录下运行，或设置环境变量 GOVLAKE_PROJECT 指向项目目录",
    )


@dataclass(frozen=True)
class Settings:
    """Runtime settings; every field can come from the environment."""

    lake_root: str = "./lake"
    project_dir: Path = field(default_factory=find_project_dir)
    storage_options: dict[str, str] = field(default_factory=dict)
    pseudonym_key: bytes = b""
    duckdb_memory_limit: str = "2GB"
    duckdb_threads: int = 2

    @classmethod
    def from_env(cls, lake: str | None = None) -> "Settings":
        root = lake or os.environ.get("GOVLAKE_LAKE") or "./lake"
        if not root.startswith(("s3://", "s3a://")):
            root = str(Path(root).expanduser().resolve())
        opts = {}
        for env_key, opt_key in (
            ("GOVLAKE_S3_ENDPOINT", "AWS_ENDPOINT_URL"),
            ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
            ("AWS_REGION", "AWS_REGION"),
        ):
            if os.environ.get(env_key):
                opts[opt_key] = os.environ[env_key]
        if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
        if root.startswith("s3"):
            opts.setdefault("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
        key = os.environ.get("GOVLAKE_PSEUDONYM_KEY", "")
        return cls(
            lake_root=root,
            storage_options=opts,
            pseudonym_key=key.encode("utf-8") if key else b"",
            duckdb_memory_limit=os.environ.get("GOVLAKE_DUCKDB_MEMORY", "2GB"),
            duckdb_threads=int(os.environ.get("GOVLAKE_THREADS", str(os.cpu_count() or 2))),
        )

    @cached_property
    def is_local(self) -> bool:
        return not self.lake_root.startswith(("s3://", "s3a://"))

    @property
    def schemas_dir(self) -> Path:
        return self.project_dir / "schemas"

    @property
    def catalog_dir(self) -> Path:
        return self.project_dir / "catalog"

    @property
    def expectations_dir(self) -> Path:
        return self.project_dir / "expectations"
