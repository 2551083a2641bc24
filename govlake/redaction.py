"""Redaction of unclassified text before it leaves bronze: error messages, title and footer lines, lineage.

Text that a delivery brought in is personal until a contract says otherwise. What may be kept is the
project's own wording (messages in its code, titles in its registries); every other run of non-ASCII letters
(a name, an address, a file name), every quoted value and every digit run is masked.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

# Digit runs of 4+ (any script: full-width too), also when spaced or hyphenated (4401 0619 9003 ...).
_DIGITS = re.compile(r"\d(?:[\s\-]?\d){3,}")
_QUOTED = re.compile(r"'[^']{1,200}'|\"[^\"]{1,200}\"|“[^”]{1,200}”|‘[^’]{1,200}’|「[^」]{1,200}」")
_WORDS = re.compile(r"[^\W\d_a-zA-Z]+")  # runs of letters outside ASCII: Chinese text, full-width Latin ...


SYNTHETIC = ("synth.py", "generate.py")  # the test-data generator's name and address parts are not wording


@lru_cache(maxsize=1)
def own_words() -> frozenset[str]:
    """Every run of non-ASCII letters the project itself wrote: its code's messages and its registries'
    titles. Error text may carry a delivered value (a CSV parser quotes the offending record, a path holds
    a file name); text that is not ours is unclassified and so treated as personal."""
    from govlake.project import find_project_dir

    roots = [Path(__file__).resolve().parent]
    try:
        project = find_project_dir()
        roots += [project / "jobs", project / "dags", project / "schemas", project / "catalog"]
    except Exception:  # scrubbing must work even without a project checkout
        pass
    words: set[str] = set()
    for root in roots:
        for path in (p for pattern in ("*.py", "*.yaml") for p in root.rglob(pattern) if p.name not in SYNTHETIC):
            text = path.read_text(encoding="utf-8", errors="ignore")
            for literal in (_literals(text) if path.suffix == ".py" else [text]):
                words.update(_WORDS.findall(literal))
    return frozenset(words)


def _literals(source: str) -> list[str]:
    """The string literals of a module that can end up in a message (not comments, not docstrings)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def scrub(text: str) -> str:
    """Error text as lineage may carry it: digit runs and quoted values masked, and every run of non-ASCII
    letters that is not the project's own wording (a name, an address, a file name) replaced by ``…``."""
    text = _DIGITS.sub(lambda m: "#" * len(m.group()), text)
    text = _QUOTED.sub(lambda m: m.group()[0] + "…" + m.group()[-1], text)
    words = own_words()
    return _WORDS.sub(lambda m: m.group() if m.group() in words else "…", text)


_ID_RUN = re.compile(r"\d{9,}[\dXx]?")


def mask_ids(name: str) -> str:
    """A file name or message as stored outside bronze: runs of 9+ digits (an ID number, a phone, a bank
    card) masked. Shorter runs stay: the delivery date (8) and region codes (6) are how a steward finds a
    delivery (``hukou_population__440106__20261201__01.csv``)."""
    return _ID_RUN.sub(lambda m: "#" * len(m.group()), name)
