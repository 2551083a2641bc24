"""Tiny, explicit test data: valid identifiers computed with python-stdnum (independent of our code)."""

from __future__ import annotations

from stdnum.cn import ric, uscc


def ric_number(address: str = "440106", birth: str = "19900307", seq: str = "123") -> str:
    body = address + birth + seq
    return body + ric.calc_check_digit(body + "0")


def bad_check(value: str) -> str:
    """Same number with a wrong check character."""
    last = value[-1]
    return value[:-1] + ("0" if last != "0" else "1")


def uscc_code(kind: str = "91", division: str = "440106", org: str = "MA59ABCD1") -> str:
    body = kind + division + org
    return body + uscc.calc_check_digit(body + "0")
