"""The SQL rule compiler against independent oracles: python-stdnum for GB 11643 / GB 32100,
Python's hmac for pseudonyms, and hand-checked standardization cases, all evaluated in real DuckDB."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import date, timedelta

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

from govlake.engine.base import Dialect
from govlake.jobs.conform.rules import USCC_ALPHABET, CompiledContract, ric_valid, uscc_valid

D = Dialect()
ADDRESS_CODES = ["440103", "440104", "440106", "440111", "440113", "110105", "310104", "450102", "430102"]


def ric_oracle(v: str) -> bool:
    """GB 11643 as far as our rule goes, computed by stdnum: check character, real past birth date, province."""
    import re

    if not re.fullmatch(r"(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[1-3])[0-9]{15}[0-9X]", v):
        return False
    try:
        born = ric.get_birth_date(v)
    except Exception:
        return False
    return ric.calc_check_digit(v) == v[17] and date(1900, 1, 1) <= born <= date.today()


def make_ric(rng: random.Random) -> str:
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 30000))
    body = rng.choice(ADDRESS_CODES) + birth.strftime("%Y%m%d") + f"{rng.randrange(0, 1000):03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects the check slot present


def make_uscc(rng: random.Random) -> str:
    body = rng.choice("95") + rng.choice("123") + rng.choice(ADDRESS_CODES) + "".join(rng.choice(USCC_ALPHABET[:-5]) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def corrupt(value: str, rng: random.Random, alphabet: str) -> str:
    """Change one character: a typo the check character must catch (or an impossible birth date)."""
    i = rng.randrange(len(value))
    c = rng.choice([a for a in alphabet if a != value[i]])
    return value[:i] + c + value[i + 1:]


def sql_eval(expr_of: callable, values: list[str]) -> list[bool]:
    con = duckdb.connect()
    con.execute("CREATE TABLE v (s VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [[v] for v in values])
    out = [bool(r[0]) for r in con.execute(f"SELECT coalesce({expr_of(D, 's')}, false) FROM v ORDER BY rowid").fetchall()]
    con.close()
    return out


def test_ric_matches_stdnum_on_valid_and_corrupted_numbers() -> None:
    rng = random.Random(7)
    valid = [make_ric(rng) for _ in range(300)]
    broken = [corrupt(v, rng, "0123456789X") for v in valid]
    values = valid + broken
    got = sql_eval(ric_valid, values)
    want = [ric_oracle(v) for v in values]
    assert got == want
    assert sum(got[:300]) == 300 and sum(got[300:]) < 60  # a typo is almost always caught


def test_ric_rejects_impossible_birth_dates_and_formats() -> None:
    body = "44010619900230123"  # 30 February
    bad_date = body + ric.calc_check_digit(body + "0")
    future = "440106" + (date.today() + timedelta(days=400)).strftime("%Y%m%d") + "123"
    future += ric.calc_check_digit(future + "0")
    assert sql_eval(ric_valid, [bad_date, future, "4.40106199003071e+17", "44010619900307123", "abc"]) == [False] * 5


def test_uscc_matches_stdnum() -> None:
    rng = random.Random(11)
    valid = [make_uscc(rng) for _ in range(300)]
    broken = [corrupt(v, rng, USCC_ALPHABET) for v in valid]
    values = valid + broken + ["91440101MA59XXXXXI", "9144010"]
    assert sql_eval(uscc_valid, values) == [uscc.is_valid(v) for v in values]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789X", min_size=18, max_size=18))
def test_ric_never_accepts_what_stdnum_rejects(value: str) -> None:
    # Random 18-character strings: SQL and the stdnum-based oracle agree on every one.
    assert sql_eval(ric_valid, [value])[0] == ric_oracle(value)


def test_hmac_in_sql_equals_python_hmac() -> None:
    key = b"k3y-for-test"
    con = duckdb.connect()
    for text in ["110105194912310021", "张三", "", "a'b"]:
        got = con.execute(f"SELECT {D.hmac_hex('?', key)}", [text]).fetchone()[0]
        assert got == hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _std(ctx, dataset: str, field: str, raw: str | None):
    """Standardized text and typed value of one delivered value, computed in DuckDB."""
    cc = CompiledContract(ctx.contract(dataset), ctx.registry, D, b"k")
    f = ctx.contract(dataset).field(field)
    con = duckdb.connect()
    con.execute("CREATE TABLE b (raw VARCHAR)")
    con.execute("INSERT INTO b VALUES (?)", [raw])
    s = cc.std(f, "raw")
    val = con.execute(f"SELECT {s}, {cc.typed(f, '(' + s + ')')} FROM b").fetchone()
    con.close()
    return val


@pytest.mark.parametrize("raw,expected", [
    ("2021-03-05", date(2021, 3, 5)), ("2021/3/5", date(2021, 3, 5)), ("2021年3月5日", date(2021, 3, 5)),
    ("20210305", date(2021, 3, 5)), ("2021.03.05", date(2021, 3, 5)), ("２０２１－０３－０５", date(2021, 3, 5)),
    (" 2021-03-05 ", date(2021, 3, 5)), ("2021-02-30", None), ("2021-13-01", None), ("5/3/2021", None),
    ("epoch", None), ("infinity", None),
    # Trailing text is not cut off: a date with something after it is invalid, never truncated to a date.
    ("2021-3-5 x", None), ("2021-03-5x", None), ("2021-03-05x", None), ("2021-03-05 garbage", None),
    ("2021-03-05 01:02:03", date(2021, 3, 5)),
])
def test_date_standardization(ctx, raw: str, expected) -> None:
    assert _std(ctx, "market_entities", "establish_date", raw)[1] == expected


@pytest.mark.parametrize("raw,expected", [
    ("440106", "440106"), ("天河区", "440106"), ("天河", "440106"), ("广州市天河区", "440106"),
    ("４４０１０６", "440106"), (" 440106 ", "440106"), ("440300", "440300"),
])
def test_district_names_become_codes(ctx, raw: str, expected: str) -> None:
    assert _std(ctx, "market_entities", "district_code", raw)[0] == expected


@pytest.mark.parametrize("raw,expected", [("1200.5", "1200.5000"), ("1,200", "1200.0000"), ("１２", "12.0000"),
                                          ("12.34567", None), ("abc", None), ("4.4e+17", None)])
def test_decimal_typing_never_guesses(ctx, raw: str, expected) -> None:
    got = _std(ctx, "market_entities", "registered_capital", raw)[1]
    assert (None if got is None else str(got)) == expected


def test_rule_names_are_unique_and_cover_the_contract(ctx) -> None:
    cc = CompiledContract(ctx.contract("market_entities"), ctx.registry, D, b"k")
    names = [r.name for r in cc.rules()]
    assert len(names) == len(set(names))
    for required in ("uscc.cn_uscc", "entity_name.required", "establish_date.future", "establish_date.too_early",
                     "district_code.gz_district", "legal_rep_id_number.cn_ric", "legal_rep_id_number.excel_number"):
        assert required in names
