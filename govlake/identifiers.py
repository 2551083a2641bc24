"""Chinese identifiers: GB 11643 citizen ID numbers and GB 32100 unified social credit codes (USCC).

The one definition of the standards' constants (weights, alphabets, check characters, GB/T 2260 province
prefixes) and of how departments spell dates, timestamps and booleans: the conform SQL (govlake/checks.py,
jobs/conform/rules.py), the GX checks and the generator import them from here.

Scalar helpers compute check characters and build single values; the vectorized functions build millions of
values at once with numpy (ASCII byte matrices viewed as fixed-width strings, no Python loop per value).

``RicSpace`` maps a person index bijectively to an ID number (address code, birth date, sequence), so a
synthetic population of any size up to the space's capacity has unique, valid ID numbers and the same
person index always gets the same number. Address codes are GB/T 2260 county codes together with the years
in which they were in force, the same history python-stdnum (``stdnum.cn.ric``) checks birth places
against: a person born in 1975 never gets 440106 (天河区, created 1985).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from math import gcd
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the vectorized functions: the declarations (govlake/checks.py) need only the
    import numpy as np  # constants, and every command loads them; NumPy loads when values are generated or checked

RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RIC_CHECK = "10X98765432"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# Province-level prefixes of GB/T 2260 codes (the first two digits of an ID number or a division code).
PROVINCES = "(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[1-3])"

# How departments spell dates, timestamps and booleans; the conform SQL and GX's castable read the same lists.
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S")
TS_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M",
              "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H时%M分%S秒")
TRUE_WORDS = ("是", "Y", "YES", "TRUE", "T", "1", "有")
FALSE_WORDS = ("否", "N", "NO", "FALSE", "F", "0", "无")

# Registration authority (1st char) and entity type (2nd char) of a USCC (GB 32100 appendix A).
USCC_TYPES = {
    "9": {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"},
    "5": {"1": "社会团体", "2": "民办非企业单位", "3": "基金会"},
}



@cache
def _arrays() -> SimpleNamespace:
    """The constants as the NumPy arrays the vectorized functions compute with (built on first use)."""
    import numpy as np

    uscc_ascii = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
    ascii_to_uscc = np.full(256, -1, dtype=np.int64)
    ascii_to_uscc[uscc_ascii] = np.arange(31)
    ascii_to_org = np.full(256, -1, dtype=np.int64)
    ascii_to_org[np.frombuffer(ORG_ALPHABET.encode(), dtype=np.uint8)] = np.arange(36)
    return SimpleNamespace(ric_w=np.array(RIC_WEIGHTS, dtype=np.int64),
                           ric_check_ascii=np.frombuffer(RIC_CHECK.encode(), dtype=np.uint8),
                           uscc_w=np.array(USCC_WEIGHTS, dtype=np.int64), uscc_ascii=uscc_ascii,
                           org_w=np.array(ORG_WEIGHTS, dtype=np.int64), ascii_to_uscc=ascii_to_uscc,
                           ascii_to_org=ascii_to_org)


# -- scalar helpers -------------------------------------------------------------------------------

def ric_check_char(body17: str) -> str:
    """Check character of a GB 11643 ID number from its first 17 digits."""
    if len(body17) != 17 or not body17.isdigit():
        raise ValueError(f"需要 17 位数字：{body17!r}")
    return RIC_CHECK[sum(int(c) * w for c, w in zip(body17, RIC_WEIGHTS)) % 11]


def make_ric(address_code: str, birth: date | str, sequence: int) -> str:
    """A GB 11643 ID number: 6-digit address code, YYYYMMDD birth date, 3-digit sequence (odd = male), check."""
    b = birth.strftime("%Y%m%d") if isinstance(birth, date) else str(birth).replace("-", "")
    body = f"{address_code}{b}{sequence:03d}"
    return body + ric_check_char(body)


def ric_is_valid(value: str) -> bool:
    """Format, real birth date and check character (not the birth place history; stdnum also checks that)."""
    v = str(value).strip().upper()
    if len(v) != 18 or not v[:17].isdigit() or v[17] not in RIC_CHECK:
        return False
    try:
        date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    return ric_check_char(v[:17]) == v[17]


def org_code_check_char(body8: str) -> str:
    """GB 11714 organization code check character: 11 - (weighted sum mod 11); 10 -> X, 11 -> 0."""
    if len(body8) != 8 or any(c not in ORG_ALPHABET for c in body8):
        raise ValueError(f"需要 8 位数字或大写字母：{body8!r}")
    c = 11 - sum(ORG_ALPHABET.index(ch) * w for ch, w in zip(body8, ORG_WEIGHTS)) % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def uscc_check_char(body17: str) -> str:
    """GB 32100 check character: weights 3^i mod 31, check = (31 - sum mod 31) mod 31."""
    if len(body17) != 17 or any(c not in USCC_ALPHABET for c in body17):
        raise ValueError(f"需要 17 位统一社会信用代码字符：{body17!r}")
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body17, USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def make_uscc(authority: str, entity_type: str, division: str, org_body8: str) -> str:
    """A USCC from its parts; the organization code check and the final check are computed."""
    org = org_body8 + org_code_check_char(org_body8)
    body = f"{authority}{entity_type}{division}{org}"
    return body + uscc_check_char(body)


def uscc_is_valid(value: str) -> bool:
    v = str(value).strip().upper()
    if len(v) != 18 or not v[:8].isdigit() or any(c not in USCC_ALPHABET for c in v):
        return False
    return uscc_check_char(v[:17]) == v[17]


# -- vectorized -----------------------------------------------------------------------------------

def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) int64 matrix of the decimal digits of non-negative ints, most significant first."""
    import numpy as np

    v = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((len(v), width), dtype=np.int64)
    for i in range(width - 1, -1, -1):
        out[:, i] = v % 10
        v //= 10
    return out


def _as_str(matrix: np.ndarray) -> np.ndarray:
    """An (n, k) uint8 ASCII matrix as an array of k-byte strings (dtype S<k>)."""
    import numpy as np

    m = np.ascontiguousarray(matrix, dtype=np.uint8)
    return m.view(f"S{m.shape[1]}").ravel()


def ric_check_index(address: np.ndarray, birth_ymd: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """Index into RIC_CHECK of the correct check character for each (address, YYYYMMDD, sequence)."""
    import numpy as np

    digits = np.concatenate([_digits(address, 6), _digits(birth_ymd, 8), _digits(sequence, 3)], axis=1)
    return (digits @ _arrays().ric_w) % 11


def ric_numbers(address: np.ndarray, birth_ymd: np.ndarray, sequence: np.ndarray,
                check_shift: np.ndarray | None = None) -> np.ndarray:
    """ID numbers (dtype S18). ``check_shift`` (0..10 per value) moves the check character: non-zero
    entries give a deliberately wrong check character."""
    import numpy as np

    digits = np.concatenate([_digits(address, 6), _digits(birth_ymd, 8), _digits(sequence, 3)], axis=1)
    idx = (digits @ _arrays().ric_w) % 11
    if check_shift is not None:
        idx = (idx + np.asarray(check_shift, dtype=np.int64)) % 11
    mat = np.empty((len(idx), 18), dtype=np.uint8)
    mat[:, :17] = digits + 48
    mat[:, 17] = _arrays().ric_check_ascii[idx]
    return _as_str(mat)


def ric_valid_mask(values: np.ndarray) -> np.ndarray:
    """Vectorized format + check-character test (birth date validity not included) over dtype S18."""
    import numpy as np

    v = np.asarray(values, dtype="S18")
    mat = v.view(np.uint8).reshape(len(v), 18).astype(np.int64)
    body = mat[:, :17] - 48
    ok = ((body >= 0) & (body <= 9)).all(axis=1)
    idx = (np.clip(body, 0, 9) @ _arrays().ric_w) % 11
    return ok & (_arrays().ric_check_ascii[idx] == mat[:, 17])


def org_code_check_ascii(body: np.ndarray) -> np.ndarray:
    """GB 11714 check characters (ASCII) for an (n, 8) matrix of ORG_ALPHABET indices."""
    import numpy as np

    c = 11 - (np.asarray(body, dtype=np.int64) @ _arrays().org_w) % 11
    out = (c + 48).astype(np.uint8)
    out[c == 10] = ord("X")
    out[c == 11] = ord("0")
    return out


def uscc_numbers(authority: np.ndarray, entity_type: np.ndarray, division: np.ndarray, org_body: np.ndarray,
                 check_shift: np.ndarray | None = None) -> np.ndarray:
    """USCCs (dtype S18).

    ``authority`` and ``entity_type`` are ASCII codes (uint8) per value, ``division`` 6-digit ints,
    ``org_body`` an (n, 8) uint8 ASCII matrix over the USCC alphabet (so the whole code stays inside it).
    A non-zero ``check_shift`` (1..30) gives a wrong final check character.
    """
    import numpy as np

    n = len(division)
    mat = np.empty((n, 18), dtype=np.uint8)
    mat[:, 0] = authority
    mat[:, 1] = entity_type
    mat[:, 2:8] = _digits(division, 6) + 48
    mat[:, 8:16] = org_body
    mat[:, 16] = org_code_check_ascii(_arrays().ascii_to_org[mat[:, 8:16]])
    vals = _arrays().ascii_to_uscc[mat[:, :17]]
    if (vals < 0).any():
        raise ValueError("USCC 含有不在 GB 32100 字符集中的字符")
    idx = (31 - (vals @ _arrays().uscc_w) % 31) % 31
    if check_shift is not None:
        idx = (idx + np.asarray(check_shift, dtype=np.int64)) % 31
    mat[:, 17] = _arrays().uscc_ascii[idx]
    return _as_str(mat)


def uscc_valid_mask(values: np.ndarray) -> np.ndarray:
    import numpy as np

    v = np.asarray(values, dtype="S18")
    mat = v.view(np.uint8).reshape(len(v), 18)
    vals = _arrays().ascii_to_uscc[mat]
    ok = (vals >= 0).all(axis=1) & ((mat[:, :8] >= 48) & (mat[:, :8] <= 57)).all(axis=1)
    idx = (31 - (np.clip(vals[:, :17], 0, None) @ _arrays().uscc_w) % 31) % 31
    return ok & (idx == vals[:, 17])


# -- address codes ----------------------------------------------------------------------------------
# (code, years in force) per region; None = open end. Histories follow GB/T 2260 as recorded in
# python-stdnum's cn/loc database (the tests check every entry against it).

_OPEN = ((None, None),)

ADDRESS_CODES: dict[str, tuple[tuple[str, tuple[tuple[int | None, int | None], ...]], ...]] = {
    # Guangzhou (广州市): current districts and the codes people born earlier were registered under.
    "gz": (
        ("440103", ((1983, None),)), ("440104", ((1983, None),)), ("440105", ((1983, None),)),
        ("440106", ((1985, None),)), ("440111", ((1983, None),)), ("440112", ((1983, None),)),
        ("440113", ((2000, None),)), ("440114", ((2000, None),)), ("440115", ((2005, None),)),
        ("440117", ((2014, None),)), ("440118", ((2014, None),)), ("440102", ((1983, 2005),)),
        ("440107", ((1985, 2005),)), ("440116", ((2005, 2014),)), ("440120", ((None, 1983),)),
        ("440121", ((None, 1993),)), ("440122", ((None, 1994),)), ("440125", ((None, 1993),)),
        ("440126", ((None, 1992),)), ("440181", ((1992, 2000),)), ("440182", ((1993, 2000),)),
        ("440183", ((1993, 2014),)), ("440184", ((1994, 2014),)),
    ),
    # Other cities of Guangdong (广东省).
    "gd": (
        ("440224", ((1983, None),)), ("440229", ((1983, None),)), ("440282", ((1996, None),)),
        ("440303", ((1983, None),)), ("440304", ((1983, None),)), ("440305", ((1983, None),)),
        ("440306", ((1992, None),)), ("440307", ((1992, None),)), ("440309", ((2016, None),)),
        ("440402", ((1984, None),)), ("440403", ((2001, None),)), ("440507", ((1991, None),)),
        ("440511", ((1984, 1991), (2003, None))), ("440512", ((2003, None),)), ("440513", ((2003, None),)),
        ("440604", ((2002, None),)), ("440605", ((2002, None),)), ("440606", ((2002, None),)),
        ("440608", ((2002, None),)), ("440705", ((2002, None),)), ("440783", ((1993, None),)),
        ("440784", ((1993, None),)), ("440804", ((1984, None),)), ("440902", ((1985, None),)),
        ("440981", ((1993, None),)), ("441224", ((1988, None),)), ("441302", ((1988, None),)),
        ("441323", ((1988, None),)), ("441402", ((1988, None),)), ("441422", ((1988, None),)),
        ("441423", ((1988, None),)), ("441426", ((1988, None),)), ("441427", ((1988, None),)),
        ("441523", ((1988, None),)), ("441624", ((1988, None),)), ("441704", ((2014, None),)),
        ("441721", ((1988, None),)), ("441781", ((1994, None),)), ("441802", ((1988, None),)),
        ("441803", ((2012, None),)), ("441821", ((1988, None),)), ("441825", ((1988, None),)),
        ("441900", ((1988, None),)), ("442000", ((1988, None),)), ("445103", ((2013, None),)),
        ("445222", ((1991, None),)), ("445281", ((1993, None),)), ("445381", ((1994, None),)),
        ("442221", ((None, 1984),)), ("442228", ((None, 1987),)), ("442323", ((None, 1983),)),
        ("442324", ((None, 1983),)), ("442330", ((None, 1983),)), ("442421", ((None, 1983),)),
        ("442422", ((None, 1988),)), ("442823", ((None, 1988),)), ("442828", ((None, 1988),)),
        ("442830", ((None, 1988),)),
    ),
    # Other provinces, weighted towards where most 来穗人员 come from (湖南, 广西, 江西, 四川, 河南, 湖北 ...).
    "other": (
        ("430102", ((1983, None),)), ("430121", _OPEN), ("430204", ((1983, None),)), ("430223", ((1983, None),)),
        ("430224", ((1983, None),)), ("430304", ((1984, None),)), ("430321", _OPEN), ("430423", ((1983, None),)),
        ("430524", ((1986, None),)), ("430582", ((2019, None),)), ("430726", ((1988, None),)),
        ("431125", ((1995, None),)), ("431128", ((1995, None),)), ("431221", ((1997, None),)),
        ("431222", ((1997, None),)), ("431224", ((1997, None),)), ("433122", _OPEN), ("433123", _OPEN),
        ("433124", _OPEN), ("433125", _OPEN), ("433126", _OPEN), ("433127", _OPEN), ("433130", _OPEN),
        ("432225", ((None, 1986),)), ("432424", ((None, 1988),)), ("432428", ((None, 1988),)),
        ("450206", ((2016, None),)), ("450302", ((1983, None),)), ("450330", ((1998, None),)),
        ("450512", ((1994, None),)), ("450602", ((1993, None),)), ("451121", ((2002, None),)),
        ("451227", ((2002, None),)), ("451302", ((2002, None),)), ("451321", ((2002, None),)),
        ("451481", ((2002, None),)), ("452129", ((None, 2002),)), ("452629", ((None, 2002),)),
        ("360802", ((2000, None),)), ("360826", ((2000, None),)), ("360922", ((2000, None),)),
        ("360925", ((2000, None),)), ("361022", ((2000, None),)), ("361130", ((2000, None),)),
        ("362221", ((None, 1988),)), ("362422", ((None, 2000),)),
        ("510129", ((1983, None),)), ("510402", ((1983, None),)), ("510503", ((1995, None),)),
        ("510722", ((1985, None),)), ("511425", ((2000, None),)), ("513323", _OPEN), ("513332", _OPEN),
        ("512723", ((None, 1983),)), ("512929", ((None, 1993),)),
        ("410184", ((1994, None),)), ("410823", ((1986, None),)), ("410923", ((1983, None),)),
        ("411025", ((1997, None),)), ("411324", ((1994, None),)), ("411524", ((1998, None),)),
        ("411725", ((2000, None),)), ("412534", ((None, 1986),)), ("412931", ((None, 1994),)),
        ("420202", ((1983, None),)), ("420281", ((1994, None),)), ("420381", ((1994, None),)),
        ("420505", ((1995, None),)), ("420506", ((2001, None),)), ("420684", ((1994, None),)),
        ("420804", ((2001, None),)), ("420922", ((1993, None),)), ("422227", ((None, 1986),)),
        ("422722", ((None, 1987),)),
        ("520123", ((1995, None),)), ("520181", ((1995, None),)), ("522625", _OPEN), ("522322", ((None, 2018),)),
        ("522721", ((None, 1983),)), ("500108", ((1997, None),)), ("500230", ((1997, None),)),
        ("500236", ((1997, None),)), ("350206", ((1987, None),)), ("350424", ((1983, None),)),
        ("350622", ((1985, None),)), ("350628", ((1985, None),)), ("350825", ((1996, None),)),
        ("352726", ((None, 1983),)), ("352727", ((None, 1983),)), ("460107", ((2002, None),)),
        ("460108", ((2002, None),)),
    ),
}

# Old Guangzhou codes -> the current district that took them over (for a person's hukou district).
GZ_SUCCESSOR = {
    "440102": "440104", "440107": "440103", "440116": "440112", "440120": "440104", "440121": "440114",
    "440182": "440114", "440122": "440117", "440184": "440117", "440125": "440118", "440183": "440118",
    "440126": "440113", "440181": "440113",
}

BIRTH_YEARS = (1930, 2024)


def birth_year_weight(year: int) -> float:
    """A rough population pyramid: relative number of living people born in ``year``."""
    if year < 1945:
        return 0.15
    if year < 1960:
        return 0.45
    if year < 1975:
        return 0.8
    if year < 2000:
        return 1.0
    if year < 2015:
        return 0.8
    return 0.55


def _in_force(ranges: tuple[tuple[int | None, int | None], ...], year: int) -> bool:
    return any((s is None or year >= s) and (e is None or year <= e) for s, e in ranges)


def affine_params(size: int, salt: int) -> tuple[int, int]:
    """(a, b) with gcd(a, size) = 1, so k -> (a*k + b) mod size is a bijection of [0, size)."""
    size, salt = int(size), int(salt)
    if size <= 1:
        return 1, 0
    a = max(1, int(size * 0.6180339887498949) + (salt % 1009))
    while gcd(a, size) != 1:
        a += 1
    return a % size or 1, (salt * 2654435761) % size


def affine(k: np.ndarray, size: int, salt: int) -> np.ndarray:
    """Bijective scramble of [0, size) (golden-ratio stride: neighbouring k land far apart)."""
    import numpy as np

    size = int(size)
    if size > (1 << 42):
        raise ValueError("affine(): size too large")
    a, b = affine_params(size, salt)
    k = np.asarray(k, dtype=np.int64)
    if size < (1 << 31):
        return (k * a + b) % size
    # a*k may overflow int64 for huge sizes: split a into 2^20-sized halves.
    hi, lo = divmod(a, 1 << 20)
    return (((k * hi) % size) * (1 << 20) % size + (k * lo) % size + b) % size


@dataclass
class RicSpace:
    """Bijection index -> (address code, birth date, sequence) for one region's address codes.

    Each birth day holds (codes in force that year) x (sequence slots for that year) numbers; the number of
    slots follows ``birth_year_weight`` so ages look like a population pyramid while every index still
    maps to a distinct ID number. ``capacity`` is the number of distinct IDs the region can hold.
    """

    region: str
    salt: int = 0

    def __post_init__(self) -> None:
        import numpy as np

        entries = ADDRESS_CODES[self.region]
        self.codes = np.array([int(c) for c, _ in entries], dtype=np.int64)
        first, last = BIRTH_YEARS
        years = np.arange(first, last + 1)
        valid = [[i for i, (_, r) in enumerate(entries) if _in_force(r, int(y))] for y in years]
        width = max(1, max(len(v) for v in valid))
        self.year_codes = np.zeros((len(years), width), dtype=np.int64)
        counts = np.array([len(v) for v in valid], dtype=np.int64)
        for i, v in enumerate(valid):
            self.year_codes[i, : len(v)] = v
        w = np.array([birth_year_weight(int(y)) for y in years]) / np.maximum(counts, 1)
        slots = np.where(counts > 0, np.maximum(1, np.round(999 * w / w[counts > 0].max())), 0).astype(np.int64)
        day0 = np.datetime64(f"{first}-01-01", "D")
        days = np.arange(day0, np.datetime64(f"{last + 1}-01-01", "D"))
        self.day_year = days.astype("datetime64[Y]").astype(np.int64) + 1970 - first
        ymd = days.astype(object)
        self.day_ymd = np.array([d.year * 10000 + d.month * 100 + d.day for d in ymd], dtype=np.int64)
        self.day_slots = slots[self.day_year]
        self.day_codes = counts[self.day_year]
        block = self.day_slots * self.day_codes
        self.cum = np.cumsum(block)
        self.block = block
        self.capacity = int(self.cum[-1])

    def components(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(address code, YYYYMMDD, sequence 1..999) for each index < capacity (distinct in, distinct out)."""
        import numpy as np

        index = np.asarray(index, dtype=np.int64)
        if len(index) and int(index.max()) >= self.capacity:
            raise ValueError(f"人口规模超出 {self.region} 身份号码空间（{self.capacity}）")
        x = affine(index, self.capacity, self.salt)
        day = np.searchsorted(self.cum, x, side="right")
        r = x - (self.cum[day] - self.block[day])
        slots = self.day_slots[day]
        code_slot, s = np.divmod(r, slots)
        code_idx = self.year_codes[self.day_year[day], code_slot]
        # sequence: a per-(day, code) bijection of the used slots onto 1..999 (not always 001, 002, ...)
        seq = (s * 128 + (day * 31 + code_idx * 17 + self.salt) % 999) % 999 + 1
        return self.codes[code_idx], self.day_ymd[day], seq


def to_str_list(values: np.ndarray) -> list[str]:
    """S18 array -> list of Python strings (for small samples and tests)."""
    import numpy as np

    return [v.decode("ascii") for v in np.asarray(values).tolist()]
