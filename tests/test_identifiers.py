"""GB 11643 ID numbers and GB 32100 USCCs, with python-stdnum as the oracle."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from stdnum.cn import ric, uscc

from govlake.identifiers import (
    ADDRESS_CODES,
    RIC_CHECK,
    USCC_ALPHABET,
    RicSpace,
    affine,
    make_ric,
    make_uscc,
    org_code_check_char,
    ric_check_char,
    ric_check_index,
    ric_is_valid,
    ric_numbers,
    ric_valid_mask,
    to_str_list,
    uscc_check_char,
    uscc_is_valid,
    uscc_numbers,
    uscc_valid_mask,
)


def test_known_check_characters() -> None:
    assert ric_check_char("11010519491231002") == "X"  # the example of GB 11643 itself
    assert uscc_check_char("91110000600037341") == "L"  # stdnum's example
    assert org_code_check_char("60003734") == "1"
    assert make_uscc("9", "1", "110000", "60003734") == "91110000600037341L"
    assert ric.is_valid(make_ric("110105", date(1949, 12, 31), 2))
    with pytest.raises(ValueError):
        ric_check_char("12345")
    with pytest.raises(ValueError):
        uscc_check_char("9111000060003734O")  # O is not in the GB 32100 alphabet


def test_org_code_check_maps_10_and_11() -> None:
    seen = {org_code_check_char(f"{i:08d}") for i in range(200)}
    assert "X" in seen and "0" in seen and seen <= set("0123456789X")


def test_scalar_validators_agree_with_stdnum() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        body = "4401061990" + f"{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}{rng.integers(0, 1000):03d}"
        good = body + ric_check_char(body)
        bad = body + RIC_CHECK[(RIC_CHECK.index(good[-1]) + 1 + int(rng.integers(10))) % 11]
        assert ric_is_valid(good) and ric.is_valid(good)
        assert not ric_is_valid(bad) and not ric.is_valid(bad)
    u = make_uscc("5", "2", "440106", "MA5CX3Q1")
    assert uscc_is_valid(u) and uscc.is_valid(u)
    broken = u[:-1] + USCC_ALPHABET[(USCC_ALPHABET.index(u[-1]) + 5) % 31]
    assert not uscc_is_valid(broken) and not uscc.is_valid(broken)


@pytest.mark.parametrize("region", sorted(ADDRESS_CODES))
def test_ric_space_is_a_bijection_onto_valid_ids(region: str) -> None:
    space = RicSpace(region, salt=11)
    idx = np.concatenate([np.arange(20_000), np.arange(space.capacity - 2_000, space.capacity)])
    addr, ymd, seq = space.components(idx)
    ids = to_str_list(ric_numbers(addr, ymd, seq))
    assert len(set(ids)) == len(ids)
    assert all(ric.is_valid(v) for v in ids[::7])
    assert ric_valid_mask(np.array(ids, dtype="S18")).all()
    # deterministic, and odd sequence numbers (men) and even ones (women) both occur
    assert to_str_list(ric_numbers(*space.components(idx[:50]))) == ids[:50]
    assert 0.4 < (seq % 2).mean() < 0.6
    with pytest.raises(ValueError):
        space.components(np.array([space.capacity]))


def test_every_address_code_is_valid_in_the_years_it_was_in_force() -> None:
    for region, entries in ADDRESS_CODES.items():
        for code, ranges in entries:
            for start, end in ranges:
                for year in {start or 1930, end or 2024, ((start or 1930) + (end or 2024)) // 2}:
                    assert ric.is_valid(make_ric(code, date(year, 6, 15), 123)), (region, code, year)


def test_broken_ids_fail() -> None:
    space = RicSpace("other", salt=3)
    addr, ymd, seq = space.components(np.arange(2_000))
    shift = np.random.default_rng(0).integers(1, 11, len(addr))
    bad = to_str_list(ric_numbers(addr, ymd, seq, check_shift=shift))
    assert not any(ric.is_valid(v) for v in bad)
    assert not ric_valid_mask(np.array(bad, dtype="S18")).any()
    # an impossible birth date with a correct check character: fails only on the date
    impossible = np.full(len(addr), 19900230)
    ids = to_str_list(ric_numbers(addr, impossible, seq))
    assert ric_valid_mask(np.array(ids, dtype="S18")).all()
    assert not any(ric.is_valid(v) for v in ids)
    assert not any(ric_is_valid(v) for v in ids)
    idx = ric_check_index(addr[:5], ymd[:5], seq[:5])
    assert [RIC_CHECK[i] for i in idx] == [v[-1] for v in to_str_list(ric_numbers(addr[:5], ymd[:5], seq[:5]))]


def test_vectorized_usccs() -> None:
    n = 5_000
    rng = np.random.default_rng(5)
    alphabet = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
    body = alphabet[rng.integers(0, 31, (n, 8))]
    auth = np.where(rng.random(n) < 0.5, ord("9"), ord("5")).astype(np.uint8)
    etype = (ord("1") + rng.integers(0, 3, n)).astype(np.uint8)
    division = rng.choice([440101, 440103, 440106, 440118], n)
    good = to_str_list(uscc_numbers(auth, etype, division, body))
    assert all(uscc.is_valid(v) for v in good)
    assert uscc_valid_mask(np.array(good, dtype="S18")).all()
    # the embedded organization code carries its own GB 11714 check character
    assert all(org_code_check_char(v[8:16]) == v[16] for v in good[:500])
    bad = to_str_list(uscc_numbers(auth, etype, division, body, check_shift=rng.integers(1, 31, n)))
    assert not any(uscc.is_valid(v) for v in bad)
    assert not uscc_valid_mask(np.array(bad, dtype="S18")).any()


def test_affine_is_a_permutation() -> None:
    for size in (1, 2, 10, 997, 10_000, 123_456):
        out = affine(np.arange(size), size, salt=42)
        assert sorted(out.tolist()) == list(range(size))


def test_the_standards_are_defined_only_here() -> None:
    """GB 11643 / GB 32100 weights and alphabets, the province prefixes, date formats and boolean words are
    spelt once (govlake/identifiers.py); the conform SQL, the check types and GX import them (issue 12, point 7)."""
    from pathlib import Path

    project = Path(__file__).resolve().parents[1]
    spellings = ("10X98765432", "7, 9, 10, 5, 8, 4, 2", "0123456789ABCDEFGHJKLMNPQRTUWXY", "1[1-5]|2[1-3]|3[1-7]",
                 "%Y年%m月%d日 %H时", '"是", "Y", "YES"', '"否", "N", "NO"', "1, 3, 9, 27, 19")
    elsewhere = [f"{p.relative_to(project)}: {s}" for folder in ("govlake", "jobs", "dags")
                 for p in (project / folder).rglob("*.py") if p.name != "identifiers.py"
                 for s in spellings if s in p.read_text(encoding="utf-8")]
    assert elsewhere == []
