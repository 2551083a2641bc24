"""CLI command groups of the city service, one module each (users, audit, share, objection).

``govlake.cli`` stays the pipeline's commands; these groups are added to it by ``register``. Each module
defines ``group``, a click group, and imports its heavy dependencies inside the commands.
"""

from __future__ import annotations

import importlib

import click

MODULES = ("users", "audit", "share", "objection")


def register(main: click.Group) -> None:
    for name in MODULES:
        main.add_command(importlib.import_module(f"govlake.commands.{name}").group)
