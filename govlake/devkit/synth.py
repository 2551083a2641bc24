"""Value synthesis for ``govlake generate``: clean, realistic column values for any dataset contract.

Nothing here names a dataset. Each contract field is classified from its metadata (``check``, ``codes``,
type, ``min``/``max``, ``pattern``, title keywords) into a *kind* with a generator; the business key gets a
``KeyPlan`` that maps key ordinals to unique key values. Values are built column-wise with numpy and
pyarrow.compute (no Python loop per row).

Shared worlds make datasets agree with each other:

* ``Population``: person index -> GB 11643 ID number, name, gender, birth date. The 户籍 dataset takes a
  block of persons, the 来穗 dataset overlaps part of it (with occasional conflicting name/gender/birth
  date), every other person-keyed dataset samples the union.
* ``EntityPool``: entity index -> GB 32100 USCC, name, type and district, per registration authority
  (9 市场监管, 5 民政, 1 机关). Registries (a 法人 dataset keyed by USCC) own a pool; every other USCC field
  references existing entities of a pool.

Randomness is either a per-row stream (``numpy.random.Generator``) or a hash of an index (splitmix64), so
the same key always gets the same key values and the same person always gets the same ID number.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from govlake.contracts import Contract, Field
from govlake.identifiers import (
    ADDRESS_CODES,
    GZ_SUCCESSOR,
    USCC_ALPHABET,
    RicSpace,
    affine,
    ric_numbers,
    uscc_numbers,
)
from govlake.registry import Registry

REF_DATE = date(2026, 11, 20)
EPOCH = date(1970, 1, 1)
OVERLAP_RATE = 0.08          # share of 来穗 registrations whose person also has a Guangzhou hukou
CONFLICT_RATES = {"name": 0.10, "gender": 0.03, "birth_date": 0.06}  # among those overlapping persons
OPTIONAL_EMPTY_RATE = 0.02   # optional (not required) values left empty; valid
MAX_ENTITY_INDEX = 10**8

# -- hashing and arrow helpers ----------------------------------------------------------------------

_U = np.uint64


def salt_of(*parts: object) -> int:
    """A stable 63-bit salt from strings/ints (Python's hash() is randomized per process)."""
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of (x xor salt): uniform 64-bit hashes, vectorized."""
    with np.errstate(over="ignore"):
        z = np.asarray(x).astype(np.uint64) ^ _U(salt & 0xFFFFFFFFFFFFFFFF)
        z = z + _U(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
        return z ^ (z >> _U(31))


def unit(h: np.ndarray) -> np.ndarray:
    """uint64 hashes -> floats in [0, 1)."""
    return (h >> _U(11)).astype(np.float64) * (1.0 / (1 << 53))


def below(h: np.ndarray, n) -> np.ndarray:
    """uint64 hashes -> ints in [0, n) (n scalar or array)."""
    return np.minimum((unit(h) * n).astype(np.int64), np.asarray(n, dtype=np.int64) - 1)


def weighted(h: np.ndarray, weights) -> np.ndarray:
    w = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.minimum(np.searchsorted(w / w[-1], unit(h), side="right"), len(w) - 1)


def take(options, idx: np.ndarray) -> pa.Array:
    arr = options if isinstance(options, pa.Array) else pa.array(list(options), pa.string())
    return arr.take(pa.array(np.asarray(idx, dtype=np.int64)))


def join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def num_str(values: np.ndarray, width: int = 0) -> pa.Array:
    s = pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string())
    return pc.utf8_lpad(s, width, "0") if width else s


def const(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))


def day_of(d: date | str) -> int:
    if isinstance(d, str):
        d = date.fromisoformat(d)
    return (d - EPOCH).days


def iso_days(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), pa.date32()).cast(pa.string())


def ts_text(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64), pa.timestamp("s")).cast(pa.string())


def ymd_to_days(ymd: np.ndarray) -> np.ndarray:
    ymd = np.asarray(ymd, dtype=np.int64)
    months = (ymd // 10000 - 1970) * 12 + (ymd // 100 % 100 - 1)
    return (months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + ymd % 100 - 1)


def days_to_ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days, dtype="int64").astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, dd


def month_start(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[M]").astype(
        "datetime64[D]").astype(np.int64)


# -- vocabularies -----------------------------------------------------------------------------------

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁郑谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈"
            "钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵万覃武钱戴严莫孔向常汤康易乔赖文")
SURNAME_LIST = list(SURNAMES) + ["欧阳", "司徒", "上官", "诸葛"]
SURNAME_WEIGHTS = np.concatenate([1.0 / np.sqrt(np.arange(1, len(SURNAMES) + 1)) * 8, np.full(4, 0.3)])
MALE_CHARS = list("伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳建国志文晨永嘉子锦荣德海东振宏家成立")
FEMALE_CHARS = list("芳娜敏静丽艳娟霞秀玲桂英梅琳雪婷倩颖慧佳欣怡萍红莉洁月晶燕琪瑶蓉璐思雨诗梦婉嘉子晓丹琳雅")
FIRM_CHARS = list("华盛鸿信达腾越恒瑞祥泰丰源嘉禾宏远新力创智博汇通广粤穗羊城珠江南方明天云海星辉德润金银康美和")
INDUSTRY_WORDS = ["科技", "贸易", "实业", "建筑工程", "餐饮管理", "信息技术", "物业管理", "电子商务", "文化传播", "医药",
                  "物流", "房地产开发", "投资", "咨询服务", "环保科技", "教育科技", "生物科技", "装饰工程", "服装", "食品"]
FIRM_SUFFIX = ["有限公司"] * 8 + ["股份有限公司", "有限责任公司"]
SHOP_WORDS = ["便利店", "商行", "餐饮店", "五金店", "服装店", "水果店", "理发店", "小吃店", "士多店", "茶餐厅"]
COOP_WORDS = ["果蔬专业合作社", "种养专业合作社", "花卉专业合作社", "荔枝专业合作社", "农机专业合作社"]
SOCIETY_WORDS = ["协会", "商会", "学会", "研究会", "促进会", "联合会"]
NONPROFIT_WORDS = ["养老院", "颐养院", "幼儿园", "社会工作服务中心", "培训中心", "康复中心", "长者服务中心", "心理咨询中心"]
FOUNDATION_WORDS = ["慈善基金会", "教育基金会", "公益基金会", "助学基金会"]
ROADS = ["天河路", "中山大道", "黄埔大道", "广州大道", "东风路", "环市东路", "解放路", "江南大道", "新港路", "机场路",
         "白云大道", "市桥街", "迎宾大道", "新华路", "凤凰路", "体育西路", "员村二横路", "石牌西路", "宝岗大道", "工业大道",
         "广园路", "沙太路", "同和路", "科学大道", "开创大道", "荔湾路", "中山八路", "康王路", "滨江路", "昌岗路",
         "南沙大道", "进港大道", "荔城街", "街口街", "新街大道", "站前路", "光孝路", "龙口西路", "花城大道", "珠江东路"]
COMMUNITIES = ["花园", "新村", "小区", "大厦", "广场", "雅苑", "名苑", "公寓"]
STREETS = ["街道", "镇"]
STREET_NAMES = ["沙河", "石牌", "员村", "猎德", "冼村", "林和", "天园", "五山", "龙洞", "新塘", "荔城", "石楼", "大石",
                "钟村", "市桥", "新雅", "狮岭", "太和", "人和", "江高", "同和", "京溪", "赤岗", "琶洲", "江海", "南华西",
                "北京", "东山", "大塘", "农林", "华林", "多宝", "逢源", "南源", "黄埔", "鱼珠", "长洲", "萝岗", "九佛", "南沙"]
RIVERS = ["珠江前航道", "珠江后航道", "流溪河", "白坭河", "沙河涌", "猎德涌", "车陂涌", "石井河", "东濠涌", "荔枝湾涌",
          "新河浦涌", "增江", "沙湾水道", "蕉门水道", "乌涌", "南岗河", "凤凰河", "大观河"]
DEPARTMENTS_SUFFIX = ["市场监督管理局", "政务服务数据管理局", "人力资源和社会保障局", "城市管理和综合执法局", "民政局",
                      "卫生健康局", "教育局", "住房和城乡建设局", "生态环境分局", "应急管理局"]
DISTRICT_WEIGHTS = {  # 2020 census, millions
    "440103": 1.12, "440104": 1.04, "440105": 1.82, "440106": 2.24, "440111": 3.74, "440112": 1.26,
    "440113": 2.65, "440114": 1.64, "440115": 0.85, "440117": 0.72, "440118": 1.47,
}
DISTRICT_CENTRES = {  # (lng, lat)
    "440103": (113.24, 23.11), "440104": (113.27, 23.13), "440105": (113.32, 23.09), "440106": (113.36, 23.14),
    "440111": (113.27, 23.25), "440112": (113.46, 23.15), "440113": (113.38, 22.95), "440114": (113.22, 23.40),
    "440115": (113.53, 22.78), "440117": (113.59, 23.55), "440118": (113.81, 23.26),
}
VOCAB: dict[str, list[str]] = {
    "污染物": ["PM2.5", "O3", "PM10", "NO2", "PM2.5", "O3"],
    "频段": ["n78", "n41", "n28", "n79", "n1"],
    "河": RIVERS,
    "来源": ["网格员巡查", "群众举报", "12345热线转办", "视频监控发现", "部门移交", "专项检查"],
    "事项": ["营业执照核发", "食品经营许可", "户口迁移", "居住证签发", "社会保障卡申领", "不动产登记", "公积金提取",
           "出生登记", "婚姻登记", "医保参保登记", "建设工程规划许可", "道路运输经营许可", "药品经营许可", "人才引进入户"],
    "备注": ["", "", "", "无", "已核实", "待复核", "系统导出", "按月更新"],
}
VARYING_VOCAB = {"污染物"}
TEXT_PHRASES = ["正常", "已核实", "按规定办理", "信息已更新", "待补充材料", "已完成整改", "情况属实", "按期办结"]

_PERSON_TITLES = ("姓名", "法定代表人", "负责人", "联系人", "持证人", "户主", "申请人", "参保人")
_END_WORDS = ("止", "截止", "到期", "至", "失效", "完成", "办结", "结案", "处置", "时限")
_END_NAMES = ("valid_to", "closed", "resolved", "completed", "due", "expire", "_to", "end")
_NAME_SUFFIXES = ("_id_number", "_id_no", "_idcard", "_uscc", "_code", "_id", "_no", "_number")

# -- field classification -----------------------------------------------------------------------------


@dataclass
class Spec:
    """How one field is synthesized."""

    f: Field
    kind: str
    role: str = ""            # refinement: birth, month, end, start, lat, lng, age, year, flavour ...
    link: str | None = None   # the identity field (ric/uscc/mixed id) this field describes
    pool: str = ""            # uscc: '9' | '5' | '1' (机关)
    static: bool = False      # derived from the key (same key -> same value) rather than per row
    ref: str | None = None    # serial FK: dataset whose key this field references
    related: str | None = None  # number: the field it is a share of; end date: its start field

    @property
    def name(self) -> str:
        return self.f.name


def _prefix(name: str) -> str:
    for suf in _NAME_SUFFIXES:
        if name.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    return "" if name in ("uscc", "id_number", "id_no") else name


def _has(text: str, words) -> bool:
    return any(w in text for w in words)


def is_registry(c: Contract) -> bool:
    """A 法人 base dataset keyed by one USCC: it owns its pool of entities."""
    return len(c.key) == 1 and c.field(c.key[0]).check == "cn_uscc" and c.catalog.base == "法人"


def authority_of(c: Contract) -> str:
    text = c.title + c.catalog.category
    return "5" if _has(text, ("社会组织", "社会团体", "民办非企业", "基金会")) or c.owner == "mzj" else "9"


def person_role(c: Contract) -> str | None:
    """native (户籍), migrant (来穗/流动) or any, for datasets keyed by a citizen ID number."""
    if not any(c.field(k).check == "cn_ric" for k in c.key):
        return None
    text = c.title + c.catalog.category
    if _has(text, ("来穗", "流动人口", "居住登记")):
        return "migrant"
    if "户籍" in text:
        return "native"
    return "any"


def time_role(f: Field) -> str:
    t, n = f.title, f.name
    if "出生" in t or "birth" in n:
        return "birth"
    if _has(t, ("月份", "年月", "统计期")) or "month" in n:
        return "month"
    if _has(t, _END_WORDS) or _has(n, _END_NAMES):
        return "end"
    return "start"


def classify(c: Contract, registry: Registry, contracts: dict[str, Contract]) -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    serial_keys = {cc.key[0]: cc.dataset for cc in contracts.values()
                   if len(cc.key) == 1 and cc.dataset != c.dataset and not cc.field(cc.key[0]).check
                   and cc.field(cc.key[0]).type == "string"}
    for f in c.fields:
        t, n, d = f.title, f.name, f.description
        s = Spec(f, "text")
        if f.check == "cn_ric":
            s.kind = "ric"
        elif f.check == "cn_uscc":
            s.kind = "uscc"
            gov = _has(t, ("机关", "发证机构", "决定机构", "部门")) or n.split("_")[0] in ("authority", "issuer")
            s.pool = "1" if gov and n not in c.key else ""
        elif ("公民身份号码" in d and "统一社会信用代码" in d) or ("证件号" in t and f.type == "string" and not f.codes):
            s.kind = "mixed_id"
        elif f.check == "gz_district" or "district_code" in f.standardize:
            s.kind = "district"
        elif f.check == "gb2260":
            s.kind = "gb2260"
        elif f.check == "phone" or (_has(t, ("电话", "手机", "联系方式", "号码")) and f.type == "string" and not f.pattern):
            s.kind = "phone"
        elif f.codes:
            s.kind = "codes"
        elif f.type == "boolean":
            s.kind = "bool"
        elif f.type in ("date", "timestamp"):
            s.kind, s.role = f.type, time_role(f)
        elif f.type in ("integer", "decimal"):
            s.kind = "number"
            s.role = ("lng" if "经度" in t else "lat" if "纬度" in t else "age" if "年龄" in t
                      else "year" if _has(t, ("年份", "年度")) else "")
        elif f.pattern:
            s.kind = "pattern"
        elif n in serial_keys and n not in c.key:
            s.kind, s.ref = "fk", serial_keys[n]
        elif _has(t, _PERSON_TITLES) or (n.endswith("name") and f.pii == "personal"):
            s.kind = "person_name"
        elif "名称" in t:
            s.kind = "org_name"
        elif _has(t, ("地址", "住址", "住所")):
            s.kind = "address"
        elif _has(t, ("文书号", "文号")):
            s.kind = "doc_no"
        elif t.endswith(("编号", "编码", "代码", "号码", "卡号", "单号", "流水号", "标识码")):
            s.kind = "serial"
        elif _has(t, ("单位", "部门", "机关", "机构")):
            s.kind = "agency"
        elif _has(t, ("企业", "公司", "运营")):
            s.kind = "company"
        elif _has(t, ("街道", "街镇")):
            s.kind = "street"
        elif any(k in t for k in VOCAB):
            s.kind, s.role = "vocab", next(k for k in VOCAB if k in t)
        elif n.endswith(("_id", "_no", "_code", "_number")) or t.endswith(("编号", "编码", "代码", "号码", "卡号", "号")):
            s.kind = "serial"
        specs[n] = s

    # links: person attributes -> ID number field, entity attributes -> USCC field, names -> their code
    rics = [s for s in specs.values() if s.kind == "ric"]
    usccs = [s for s in specs.values() if s.kind == "uscc"]
    mixed = [s for s in specs.values() if s.kind == "mixed_id"]
    key_ric = next((s for s in rics if s.name in c.key), rics[0] if len(rics) == 1 else None)
    main_uscc = next((s for s in usccs if s.name in c.key), None) or next((s for s in usccs if s.pool != "1"), None)

    def owner_of(s: Spec, candidates: list[Spec]) -> Spec | None:
        best = None
        for cand in candidates:
            p = _prefix(cand.name)
            if p and p != cand.name and s.name.startswith(p) and (best is None or len(p) > len(_prefix(best.name))):
                best = cand
        return best

    for s in specs.values():
        if s.kind in ("ric", "uscc", "mixed_id"):
            continue
        person_attr = (s.kind == "person_name" or (s.kind == "codes" and s.f.codes == "gender")
                       or s.role in ("birth", "age") or (s.kind in ("district", "gb2260") and "户籍" in s.f.title))
        entity_attr = s.kind in ("org_name", "agency", "company") or (s.kind == "codes" and s.name.endswith("type")) \
            or (s.kind == "district" and not _has(s.f.title, ("户籍", "居住", "参保")))
        owner = owner_of(s, rics + usccs + mixed)
        if owner is not None:
            s.link = owner.name
        elif person_attr and key_ric is not None and s.kind != "gb2260" or (s.kind == "gb2260" and key_ric is not None):
            s.link = key_ric.name
        elif entity_attr and main_uscc is not None and s.kind != "agency":
            s.link = main_uscc.name
        if s.link and specs[s.link].kind == "uscc" and specs[s.link].pool == "1" and s.kind not in ("agency", "org_name", "company"):
            s.link = None

    # number shares (nursing_beds <= beds) and end dates after their start
    numbers = [s for s in specs.values() if s.kind == "number" and s.f.type == "integer" and not s.role]
    for i, s in enumerate(numbers):
        tail = s.name.rsplit("_", 1)[-1]
        first = next((o for o in numbers[:i] if o.name.rsplit("_", 1)[-1] == tail), None)
        if first is not None and s.f.max is not None and first.f.max is not None and s.f.max >= first.f.max:
            s.related = first.name
    for s in specs.values():
        if s.kind == "codes" and s.f.codes:
            base = next((o.name for o in specs.values() if o.kind == "number" and s.f.codes.startswith(o.name + "_")), None)
            s.related = base
    for kind in ("date", "timestamp"):
        starts = [s for s in specs.values() if s.kind == kind and s.role == "start"]
        for s in specs.values():
            if s.kind == kind and s.role == "end" and starts:
                p = _prefix(s.name).rsplit("_", 1)[0]
                s.related = next((o.name for o in starts if p and o.name.startswith(p)), starts[0].name)
    return specs


# -- regex synthesis (for `pattern`) ----------------------------------------------------------------

try:  # Python 3.11+
    import re._constants as _rc
    import re._parser as _rp
except ImportError:  # pragma: no cover
    import sre_constants as _rc  # type: ignore
    import sre_parse as _rp  # type: ignore

_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) not in ',"\\')


class PatternError(ValueError):
    pass


def _charset(items) -> str:
    chars: list[str] = []
    negate = False
    for op, av in items:
        if op is _rc.NEGATE:
            negate = True
        elif op is _rc.LITERAL:
            chars.append(chr(av))
        elif op is _rc.RANGE:
            chars.extend(chr(x) for x in range(av[0], av[1] + 1))
        elif op is _rc.CATEGORY:
            if av is _rc.CATEGORY_DIGIT:
                chars.extend("0123456789")
            elif av is _rc.CATEGORY_WORD:
                chars.extend("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz0123456789")
            elif av is _rc.CATEGORY_SPACE:
                chars.append(" ")
            else:
                raise PatternError(str(av))
        else:
            raise PatternError(str(op))
    if negate:
        chars = [ch for ch in "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789" if ch not in chars]
    out = "".join(dict.fromkeys(ch for ch in chars if ch not in ',"\n\r'))
    if not out:
        raise PatternError("empty class")
    return out


def compile_pattern(pattern: str):
    """Regex -> tree of ('lit', s) / ('set', chars) / ('seq', [...]) / ('rep', node, lo, hi) / ('alt', [...])."""

    def conv(sub) -> tuple:
        items = []
        for op, av in sub:
            if op is _rc.LITERAL:
                items.append(("lit", chr(av)))
            elif op is _rc.IN:
                items.append(("set", _charset(av)))
            elif op is _rc.ANY:
                items.append(("set", "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"))
            elif op in (_rc.MAX_REPEAT, _rc.MIN_REPEAT, getattr(_rc, "POSSESSIVE_REPEAT", None)):
                lo, hi, inner = av
                hi = lo + 4 if hi is _rc.MAXREPEAT or hi > lo + 16 else hi
                items.append(("rep", conv(inner), lo, hi))
            elif op is _rc.SUBPATTERN:
                items.append(conv(av[-1]))
            elif op is _rc.BRANCH:
                items.append(("alt", [conv(b) for b in av[1]]))
            elif op is _rc.AT:
                continue
            else:
                raise PatternError(str(op))
        return ("seq", items)

    return conv(_rp.parse(pattern))


def pattern_random(node, h: np.ndarray, salt: int = 1):
    """Random strings matching the compiled pattern (vectorized; returns str or pa.Array)."""
    kind = node[0]
    n = len(h)
    if kind == "lit":
        return node[1]
    if kind == "set":
        return take(list(node[1]), below(mix(h, salt), len(node[1])))
    if kind == "seq":
        parts = [pattern_random(x, h, salt * 31 + i + 1) for i, x in enumerate(node[1])]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
        return join(*[p if not isinstance(p, str) else const(p, n) for p in parts]) if len(parts) > 1 else parts[0]
    if kind == "rep":
        _, inner, lo, hi = node
        count = lo + below(mix(h, salt + 7), hi - lo + 1)
        pieces = []
        for j in range(hi):
            p = pattern_random(inner, h, salt * 131 + j + 11)
            p = const(p, n) if isinstance(p, str) else p
            pieces.append(p if j < lo else pc.if_else(pa.array(count > j), p, ""))
        return join(*pieces) if len(pieces) > 1 else (pieces[0] if pieces else "")
    if kind == "alt":
        alts = [pattern_random(a, h, salt * 17 + i + 3) for i, a in enumerate(node[1])]
        alts = [const(a, n) if isinstance(a, str) else a for a in alts]
        return pc.choose(pa.array(below(mix(h, salt + 5), len(alts))), *alts)
    raise PatternError(kind)


def pattern_template(node) -> list[str]:
    """Fixed-length positions (alphabets) of the largest branch, for unique key values."""
    kind = node[0]
    if kind == "lit":
        return [node[1]]
    if kind == "set":
        return [node[1]]
    if kind == "seq":
        return [p for x in node[1] for p in pattern_template(x)]
    if kind == "rep":
        _, inner, lo, hi = node
        return pattern_template(inner) * hi
    if kind == "alt":
        opts = [pattern_template(a) for a in node[1]]
        return max(opts, key=lambda o: float(np.prod([len(p) for p in o], dtype=np.float64)))
    raise PatternError(kind)


class Template:
    """Unique strings from an index: position alphabets filled by the digits of a scrambled index."""

    LIMIT = 1 << 40

    def __init__(self, positions: list[str], salt: int) -> None:
        self.salt = salt
        fixed: list[str] = []
        cap = 1
        varying = []
        for i in range(len(positions) - 1, -1, -1):
            alpha = positions[i]
            if len(alpha) > 1 and cap * len(alpha) < self.LIMIT:
                cap *= len(alpha)
                varying.append(i)
        self.positions = positions
        self.varying = sorted(varying)
        self.capacity = cap
        rnd = salt
        for i, alpha in enumerate(positions):
            rnd = (rnd * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
            fixed.append(alpha[(rnd >> 33) % len(alpha)])
        self.fixed = fixed

    def values(self, index: np.ndarray) -> pa.Array:
        x = affine(np.asarray(index, dtype=np.int64) % self.capacity, self.capacity, self.salt)
        n = len(x)
        parts: list = [None] * len(self.positions)
        for i in reversed(self.varying):
            alpha = self.positions[i]
            x, digit = np.divmod(x, len(alpha))
            parts[i] = take(list(alpha), digit)
        out = [p if p is not None else self.fixed[i] for i, p in enumerate(parts)]
        merged: list = []
        for p in out:  # merge runs of constant characters
            if isinstance(p, str) and merged and isinstance(merged[-1], str):
                merged[-1] += p
            else:
                merged.append(p)
        arrays = [const(p, n) if isinstance(p, str) else p for p in merged]
        return join(*arrays) if len(arrays) > 1 else arrays[0]


def serial_template(contract: Contract, f: Field, digits: int = 10) -> Template:
    words = [w for w in contract.dataset.split("_") if w and w[0].isalpha()]
    prefix = "".join(w[0] for w in words[:3]).upper() or "GZ"
    if f.pattern:
        try:
            return Template(pattern_template(compile_pattern(f.pattern)), salt_of(contract.dataset, f.name))
        except PatternError:
            pass
    return Template(list(prefix) + ["0123456789"] * digits, salt_of(contract.dataset, f.name))


# -- timelines (date-like key axes) -----------------------------------------------------------------

@dataclass
class Timeline:
    unit: str  # day | month | year
    lo_day: int
    hi_day: int
    kind: str  # date | timestamp | integer | text
    fmt: str | None = None

    def available(self) -> int:
        if self.unit == "day":
            return max(1, self.hi_day - self.lo_day + 1)
        y0, m0, _ = (int(v[0]) for v in days_to_ymd(np.array([self.lo_day])))
        y1, m1, _ = (int(v[0]) for v in days_to_ymd(np.array([self.hi_day])))
        if self.unit == "month":
            return max(1, (y1 - y0) * 12 + m1 - m0 + 1)
        return max(1, y1 - y0 + 1)

    def render(self, back: np.ndarray, h: np.ndarray) -> tuple[pa.Array, np.ndarray]:
        """``back`` periods before the last one -> text values and their day numbers."""
        back = np.asarray(back, dtype=np.int64)
        if self.unit == "day":
            days = self.hi_day - back
        elif self.unit == "month":
            last = np.array([self.hi_day]).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)[0]
            days = (last - back).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        else:
            last = np.array([self.hi_day]).astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)[0]
            days = (last - back).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
        if self.kind == "integer":
            return num_str(days_to_ymd(days)[0]), days
        if self.kind == "timestamp":
            secs = days * 86400 + 8 * 3600 + below(mix(h, 3), 12 * 3600)
            return ts_text(secs), days
        if self.fmt:
            ts = pa.array(days.astype("datetime64[D]").astype("datetime64[s]"), pa.timestamp("s"))
            return pc.strftime(ts, format=self.fmt), days
        return iso_days(days), days


def timeline_for(f: Field, role: str) -> Timeline | None:
    """A key field that is a point in time: a date, a month, a year."""
    lo = day_of(f.min_date) if f.min_date else day_of("2000-01-01")
    lo = max(lo, day_of("2000-01-01"))
    hi = day_of(REF_DATE) - 1
    if f.type in ("date", "timestamp"):
        return Timeline("month" if role == "month" else "day", lo, hi, f.type)
    if f.type == "integer" and (_has(f.title, ("年份", "年度")) or f.name.endswith("year")):
        y0 = int(f.min) if f.min is not None else 2000
        y1 = min(int(f.max) if f.max is not None else REF_DATE.year, REF_DATE.year)
        return Timeline("year", day_of(date(y0, 1, 1)), day_of(date(y1, 1, 1)), "integer")
    if f.type == "string" and (_has(f.title, ("月份", "年月", "统计期", "日期", "年度", "年份")) or
                               _has(f.name, ("month", "date", "year"))):
        for unit, fmt in (("month", "%Y-%m"), ("month", "%Y%m"), ("month", "%Y年%m月"), ("day", "%Y-%m-%d"),
                          ("day", "%Y%m%d"), ("year", "%Y")):
            if not f.pattern or re.fullmatch(f.pattern, date(2026, 3, 5).strftime(fmt)):
                return Timeline(unit, lo, hi, "text", fmt)
    return None


# -- shared worlds --------------------------------------------------------------------------------------

REGION_MIX = {  # person class -> (gz, gd, other) probabilities for the ID number's address code
    "native": (0.85, 0.10, 0.05),
    "overlap": (0.04, 0.36, 0.60),
    "migrant": (0.03, 0.30, 0.67),
}
REGIONS = ("gz", "gd", "other")


class Population:
    """Person index -> identity. Layout: [0, Kh) 户籍 persons (the last ``overlap`` of its initial
    block also registered as 来穗), then 来穗-only persons; ``size`` is the union."""

    def __init__(self, seed: int, native_initial: int, native_total: int, migrant_total: int) -> None:
        self.seed = seed
        self.kh0, self.kh = native_initial, native_total
        self.overlap = int(round(OVERLAP_RATE * min(native_initial, migrant_total))) if native_total else 0
        self.km = migrant_total
        self.size = max(1, self.kh + self.km - self.overlap)
        self.spaces = {r: RicSpace(r, salt=salt_of(seed, "ric", r) % 100_003) for r in REGIONS}

    # index mappings per role
    def native(self, k: np.ndarray) -> np.ndarray:
        return np.asarray(k, dtype=np.int64)

    def migrant(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=np.int64)
        return np.where(k < self.overlap, self.kh0 - self.overlap + k, self.kh + k - self.overlap)

    def any(self, k: np.ndarray, total: int) -> np.ndarray:
        return affine(np.asarray(k, dtype=np.int64), max(self.size, total), salt_of(self.seed, "any"))

    def random(self, h: np.ndarray) -> np.ndarray:
        return below(h, self.size)

    def overlapping(self, p: np.ndarray) -> np.ndarray:
        return (p >= self.kh0 - self.overlap) & (p < self.kh0)

    def components(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.asarray(p, dtype=np.int64)
        klass = np.where(self.overlapping(p), 1, np.where(p < self.kh, 0, 2))
        u = unit(mix(p, salt_of(self.seed, "region")))
        probs = np.array([REGION_MIX["native"], REGION_MIX["overlap"], REGION_MIX["migrant"]])
        cum = np.cumsum(probs, axis=1)[klass]
        region = (u[:, None] >= cum[:, :2]).sum(axis=1)
        for r, name in enumerate(REGIONS[:2]):  # overflowing indices move to a bigger region
            region = np.where((region == r) & (p >= self.spaces[name].capacity), r + 1, region)
        addr = np.empty(len(p), dtype=np.int64)
        ymd = np.empty(len(p), dtype=np.int64)
        seq = np.empty(len(p), dtype=np.int64)
        for r, name in enumerate(REGIONS):
            m = region == r
            if m.any():
                addr[m], ymd[m], seq[m] = self.spaces[name].components(p[m])
        return addr, ymd, seq

    def names(self, p: np.ndarray, male: np.ndarray, variant: int = 0) -> pa.Array:
        h = mix(p, salt_of(self.seed, "name"))
        sur = take(SURNAME_LIST, weighted(h, SURNAME_WEIGHTS))
        single = unit(mix(h, 1)) < 0.22
        c1 = np.where(male, below(mix(h, 2), len(MALE_CHARS)), below(mix(h, 2), len(FEMALE_CHARS)) + len(MALE_CHARS))
        c2 = np.where(male, below(mix(h, 3 + variant), len(MALE_CHARS)),
                      below(mix(h, 3 + variant), len(FEMALE_CHARS)) + len(MALE_CHARS))
        chars = MALE_CHARS + FEMALE_CHARS
        second = pc.if_else(pa.array(single & (variant == 0)), "", take(chars, c2))
        return join(sur, take(chars, c1), second)


def random_names(h: np.ndarray) -> pa.Array:
    male = unit(mix(h, 9)) < 0.5
    sur = take(SURNAME_LIST, weighted(mix(h, 1), SURNAME_WEIGHTS))
    chars = MALE_CHARS + FEMALE_CHARS
    c1 = np.where(male, below(mix(h, 2), len(MALE_CHARS)), below(mix(h, 2), len(FEMALE_CHARS)) + len(MALE_CHARS))
    c2 = np.where(male, below(mix(h, 3), len(MALE_CHARS)), below(mix(h, 3), len(FEMALE_CHARS)) + len(MALE_CHARS))
    second = pc.if_else(pa.array(unit(mix(h, 4)) < 0.22), "", take(chars, c2))
    return join(sur, take(chars, c1), second)


class EntityPool:
    """Entity index -> USCC, name, type, district for one registration authority."""

    TYPE_MIX = {"9": (0.70, 0.25, 0.05), "5": (0.42, 0.53, 0.05)}

    def __init__(self, authority: str, size: int, seed: int, districts: list[str], labels: dict[str, str]) -> None:
        self.authority = authority
        self.size = max(1, size)
        self.salt = salt_of(seed, "entity", authority)
        self.districts = districts
        self.labels = labels
        self.dweights = np.array([DISTRICT_WEIGHTS.get(d, 1.0) for d in districts])

    def type_char(self, i: np.ndarray) -> np.ndarray:
        return weighted(mix(i, self.salt + 1), self.TYPE_MIX[self.authority]) + 1

    def district_idx(self, i: np.ndarray) -> np.ndarray:
        return weighted(mix(i, self.salt + 2), self.dweights)

    def district(self, i: np.ndarray) -> pa.Array:
        return take(self.districts, self.district_idx(i))

    def uscc(self, i: np.ndarray, check_shift: np.ndarray | None = None) -> np.ndarray:
        i = np.asarray(i, dtype=np.int64)
        if len(i) and int(i.max()) >= MAX_ENTITY_INDEX:
            raise ValueError("市场主体规模超出统一社会信用代码生成空间")
        n = len(i)
        h = mix(i, self.salt + 3)
        city_level = unit(h) < 0.2
        division = np.where(city_level, 440101, np.array([int(d) for d in self.districts])[self.district_idx(i)])
        new_style = unit(mix(h, 1)) < 0.65
        body = np.empty((n, 8), dtype=np.uint8)
        alpha = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
        x = affine(i, 31 ** 6, self.salt % 1_000_003)
        body[:, 0] = ord("M")
        body[:, 1] = ord("A")
        for j in range(7, 1, -1):
            x, d = np.divmod(x, 31)
            body[:, j] = alpha[d]
        y = affine(i, 10 ** 8, (self.salt >> 7) % 1_000_003)
        old = np.empty((n, 8), dtype=np.uint8)
        for j in range(7, -1, -1):
            y, d = np.divmod(y, 10)
            old[:, j] = 48 + d
        body = np.where(new_style[:, None], body, old)
        auth = np.full(n, ord(self.authority), dtype=np.uint8)
        etype = (48 + self.type_char(i)).astype(np.uint8)
        return uscc_numbers(auth, etype, division, body, check_shift)

    def names(self, i: np.ndarray) -> pa.Array:
        i = np.asarray(i, dtype=np.int64)
        h = mix(i, self.salt + 4)
        n = len(i)
        firm = join(take(FIRM_CHARS, below(mix(h, 1), len(FIRM_CHARS))), take(FIRM_CHARS, below(mix(h, 2), len(FIRM_CHARS))))
        dist = take([self.labels.get(d, "") for d in self.districts], self.district_idx(i))
        t = self.type_char(i)
        if self.authority == "9":
            a = join(const("广州", n), firm, take(INDUSTRY_WORDS, below(mix(h, 3), len(INDUSTRY_WORDS))),
                     take(FIRM_SUFFIX, below(mix(h, 4), len(FIRM_SUFFIX))))
            b = join(const("广州市", n), dist, firm, take(SHOP_WORDS, below(mix(h, 5), len(SHOP_WORDS))))
            c = join(const("广州市", n), dist, firm, take(COOP_WORDS, below(mix(h, 6), len(COOP_WORDS))))
        else:
            a = join(const("广州市", n), firm, take(INDUSTRY_WORDS, below(mix(h, 3), len(INDUSTRY_WORDS))),
                     take(SOCIETY_WORDS, below(mix(h, 4), len(SOCIETY_WORDS))))
            b = join(const("广州市", n), dist, firm, take(NONPROFIT_WORDS, below(mix(h, 5), len(NONPROFIT_WORDS))))
            c = join(const("广州市", n), firm, take(FOUNDATION_WORDS, below(mix(h, 6), len(FOUNDATION_WORDS))))
        return pc.choose(pa.array(t - 1), a, b, c)


class GovPool:
    """Government agencies (registration authority 1, 机关): names and USCCs."""

    def __init__(self, registry: Registry, seed: int) -> None:
        city = registry.city.name  # 广州市: nodes.yaml's city, not a constant
        short = city.removesuffix("市")
        self.city_code = int(registry.city.code)
        names = [f"{short}{n.name}" if not n.name.startswith(short) else n.name for n in registry.departments]
        divisions = [self.city_code] * len(names)
        for d in registry.districts:
            label = (d.district or d.name)[:3]
            for suffix in DEPARTMENTS_SUFFIX[:6]:
                names.append(f"{city}{label}{suffix}")
                divisions.append(int(d.code) if d.code.isdigit() else self.city_code)
        self.names_list = names or [f"{city}人民政府办公厅"]
        self.division = np.array(divisions or [self.city_code], dtype=np.int64)
        self.size = len(self.names_list)
        self.salt = salt_of(seed, "gov")

    def pick(self, h: np.ndarray, district: str | None = None) -> np.ndarray:
        if district is None or not district.isdigit():
            return below(h, self.size)
        local = np.flatnonzero(self.division == int(district))
        city = np.flatnonzero(self.division == self.city_code)
        if not len(local) or not len(city):
            return below(h, self.size)
        return np.where(unit(mix(h, 1)) < 0.7, local[below(h, len(local))], city[below(mix(h, 2), len(city))])

    def uscc(self, j: np.ndarray, check_shift: np.ndarray | None = None) -> np.ndarray:
        j = np.asarray(j, dtype=np.int64)
        y = affine(j, 10 ** 6, self.salt % 1_000_003)
        body = np.empty((len(j), 8), dtype=np.uint8)
        body[:, 0], body[:, 1] = ord("0"), ord("0")
        for k in range(7, 1, -1):
            y, d = np.divmod(y, 10)
            body[:, k] = 48 + d
        one = np.full(len(j), ord("1"), dtype=np.uint8)
        return uscc_numbers(one, one, self.division[j], body, check_shift)

    def names(self, j: np.ndarray) -> pa.Array:
        return take(self.names_list, j)


@dataclass
class World:
    """Everything datasets share within one generate run."""

    registry: Registry
    seed: int
    population: Population
    pools: dict[str, object]
    key_sizes: dict[str, int] = field(default_factory=dict)  # dataset -> distinct keys (all nodes)
    models: dict[str, "DatasetModel"] = field(default_factory=dict)

    @property
    def districts(self) -> list[str]:
        return [n.code for n in self.registry.districts]

    def district_labels(self) -> dict[str, str]:
        try:
            return {c.code: c.label for c in self.registry.district_codes.codes}
        except Exception:  # noqa: BLE001 - registry without the code list: use node names
            return {n.code: (n.district or n.name) for n in self.registry.districts}

    def model(self, dataset: str) -> "DatasetModel":
        if dataset not in self.models:
            self.models[dataset] = DatasetModel(self.registry.contracts[dataset], self)
        return self.models[dataset]


def build_world(registry: Registry, seed: int, key_sizes: dict[str, int], initial_sizes: dict[str, int]) -> World:
    contracts = registry.contracts
    roles = {name: person_role(c) for name, c in contracts.items()}
    native = [d for d, r in roles.items() if r == "native" and d in key_sizes]
    migrant = [d for d, r in roles.items() if r == "migrant" and d in key_sizes]
    pop = Population(seed, sum(initial_sizes.get(d, 0) for d in native[:1]), sum(key_sizes[d] for d in native[:1]),
                     sum(key_sizes[d] for d in migrant[:1]))
    districts = [n.code for n in registry.districts]
    w = World(registry, seed, pop, {}, dict(key_sizes))
    labels = w.district_labels()
    for auth in ("9", "5"):
        owners = [d for d, c in contracts.items() if is_registry(c) and authority_of(c) == auth and d in key_sizes]
        size = key_sizes[owners[0]] if owners else 10_000
        w.pools[auth] = EntityPool(auth, size, seed, districts, labels)
    w.pools["1"] = GovPool(registry, seed)
    return w


# -- key plans ----------------------------------------------------------------------------------------

@dataclass
class Axis:
    field: str
    kind: str            # person | entity | serial | timeline | district | codes | range | bool
    size: int | None     # finite domain size (None: unbounded / elastic)
    timeline: Timeline | None = None


@dataclass
class KeyPlan:
    mode: str            # injective | radix | finite
    axes: list[Axis]
    major: Axis | None = None
    elastic: Axis | None = None

    def capacity(self, fixed_district: bool) -> int | None:
        if self.mode == "injective" or (self.mode == "radix" and self.elastic is not None):
            return None
        cap = 1
        for a in self.axes:
            size = 1 if (a.kind == "district" and fixed_district) else (a.timeline.available() if a.timeline else a.size)
            cap *= max(1, size or 1)
        return cap


class DatasetModel:
    """Field specs and key plan of one contract, and the column generator."""

    def __init__(self, contract: Contract, world: World) -> None:
        self.c = contract
        self.w = world
        self.reg = world.registry
        self.specs = classify(contract, world.registry, world.registry.contracts)
        self.role = person_role(contract)
        self.registry_pool = authority_of(contract) if is_registry(contract) else None
        self.ref_pool = authority_of(contract)  # pool preferred when referencing entities
        self.salt = salt_of(world.seed, contract.dataset)
        self.labels = world.district_labels()
        self.keyplan = self._keyplan()
        self.templates: dict[str, Template] = {}
        self.patterns: dict[str, object] = {}
        for s in self.specs.values():
            if s.kind == "pattern":
                try:
                    self.patterns[s.name] = compile_pattern(s.f.pattern)
                except PatternError:
                    s.kind = "serial"
        # static (key-derived) fields: the same key keeps the same descriptive attributes
        axis_prefixes = [_prefix(k) for k in contract.key if _prefix(k) != k or k.endswith(("_code", "_id", "_no"))]
        for s in self.specs.values():
            if s.name in contract.key:
                continue
            if s.kind in ("org_name", "address", "district", "street", "agency", "company", "person_name", "phone",
                          "serial", "pattern", "text", "fk", "gb2260", "doc_no") or s.role in ("lat", "lng"):
                s.static = True
            elif s.kind == "vocab" and s.role not in VARYING_VOCAB:
                s.static = True
            elif s.kind == "codes" and any(p and s.name.startswith(p) for p in axis_prefixes):
                s.static = True

    # -- planning ----------------------------------------------------------------------------------
    def _axis(self, name: str) -> Axis:
        s = self.specs[name]
        f = s.f
        if s.kind == "ric":
            return Axis(name, "person", None)
        if s.kind == "uscc":
            return Axis(name, "entity", None)
        if s.kind == "district":
            return Axis(name, "district", len(self.w.districts))
        if s.kind == "codes":
            return Axis(name, "codes", len(self.reg.code_list(f.codes).codes))
        if s.kind == "bool":
            return Axis(name, "bool", 2)
        tl = timeline_for(f, s.role if s.kind in ("date", "timestamp") else time_role(f))
        if tl is not None and (f.type != "string" or s.kind in ("pattern", "serial", "text", "vocab")):
            return Axis(name, "timeline", None, tl)
        if f.type == "integer" and f.min is not None and f.max is not None and f.max - f.min < 100_000:
            return Axis(name, "range", int(f.max - f.min + 1))
        return Axis(name, "serial", None)

    def _keyplan(self) -> KeyPlan:
        axes = [self._axis(k) for k in self.c.key]
        if len(axes) == 1:
            a = axes[0]
            if a.kind in ("person", "entity", "serial"):
                return KeyPlan("injective", axes, major=a)
            if a.kind == "timeline":
                return KeyPlan("radix", axes, major=a)
            return KeyPlan("finite", axes, major=a)
        timeline = next((a for a in axes if a.kind == "timeline"), None)
        if timeline is not None:
            elastic = next((a for a in axes if a.size is None and a is not timeline), None)
            return KeyPlan("radix", axes, major=timeline, elastic=elastic)
        for kind in ("serial", "person", "entity"):
            a = next((a for a in axes if a.kind == kind), None)
            if a is not None:
                return KeyPlan("injective", axes, major=a)
        return KeyPlan("finite", axes, major=max(axes, key=lambda a: a.size or 0))

    def fixed_district(self, node: str) -> str | None:
        n = self.reg.nodes.get(node)
        return node if n is not None and n.kind == "district" and node in self.w.districts else None

    def capacity(self, node: str) -> int | None:
        cap = self.keyplan.capacity(self.fixed_district(node) is not None)
        if self.keyplan.mode == "injective" and self.keyplan.major.kind == "serial":
            t = serial_template(self.c, self.specs[self.keyplan.major.field].f)
            return t.capacity
        return cap

    def radix_layout(self, node_keys: int, fixed: bool) -> tuple[list[tuple[Axis, int]], int]:
        """Minor axes with their sizes (least significant first) and the timeline length for a node."""
        kp = self.keyplan
        minors: list[tuple[Axis, int]] = []
        finite = 1
        for a in kp.axes:
            if a is kp.major or a is kp.elastic:
                continue
            size = 1 if (a.kind == "district" and fixed) else (a.size or 1)
            minors.append((a, size))
            finite *= size
        avail = kp.major.timeline.available() if kp.major.timeline else 1
        if kp.elastic is not None:
            f = {"day": 0.1, "month": 1.0, "year": 5.0}[kp.major.timeline.unit]
            e = max(1, int(np.ceil(np.sqrt(node_keys * f) / finite)))
            e = max(e, int(np.ceil(node_keys / (finite * avail))))
            minors.append((kp.elastic, e))
            finite *= e
        periods = max(1, int(np.ceil(node_keys / finite)))
        return minors, min(periods, avail) if kp.elastic is None else periods

    # -- generation ----------------------------------------------------------------------------------
    def generate(self, node: str, k_global: np.ndarray, k_local: np.ndarray, node_index: int, node_keys: int,
                 rng: np.random.Generator, asof: int, timeline_end: int) -> "Rows":
        rows = Rows(self, node, len(k_global), rng, asof)
        rows.key_index = np.asarray(k_global, dtype=np.int64)
        self._keys(rows, np.asarray(k_global, np.int64), np.asarray(k_local, np.int64), node_index, node_keys,
                   timeline_end)
        order = sorted((s for s in self.specs.values() if s.name not in rows.values),
                       key=lambda s: (6 if s.kind == "codes" and s.related else _ORDER.get(s.kind, 5)) * 10
                       + (1 if s.role == "end" or s.related else 0))
        for s in order:
            rows.values[s.name] = rows.gen(s)
        return rows

    def _keys(self, rows: "Rows", kg: np.ndarray, kl: np.ndarray, node_index: int, node_keys: int, tl_end: int) -> None:
        kp = self.keyplan
        fixed = self.fixed_district(rows.node) is not None
        if kp.mode == "injective":
            major = kp.major
            rows.static_index = kg
            self._key_axis(rows, major, kg, unbounded=True)
            for a in kp.axes:
                if a is not major:
                    rows.values[a.field] = rows.gen(self.specs[a.field], key_hash=mix(kg, salt_of(self.salt, a.field)))
            return
        if kp.mode == "finite":
            minors = [(a, 1 if (a.kind == "district" and fixed) else a.size) for a in kp.axes]
            x = kl if fixed else kg
            rows.static_index = x
            for a, size in minors:
                x, d = np.divmod(x, max(1, size))
                self._key_axis(rows, a, d, unbounded=False)
            return
        minors, periods = self.radix_layout(node_keys, fixed)
        x = kl
        elastic_index = None
        for a, size in minors:
            x, d = np.divmod(x, max(1, size))
            if a is kp.elastic:
                elastic_index = d + (0 if fixed else node_index * size)
                self._key_axis(rows, a, elastic_index, unbounded=True)
            else:
                self._key_axis(rows, a, d, unbounded=False)
        rows.static_index = elastic_index if elastic_index is not None else np.zeros(len(kl), dtype=np.int64)
        tl = kp.major.timeline
        tl = Timeline(tl.unit, tl.lo_day, min(tl.hi_day, tl_end), tl.kind, tl.fmt)
        back = np.clip(periods - 1 - x, 0, tl.available() - 1)
        vals, days = tl.render(back, mix(kg, self.salt))
        rows.values[kp.major.field] = vals
        rows.days[kp.major.field] = days

    def _key_axis(self, rows: "Rows", a: Axis, index: np.ndarray, unbounded: bool) -> None:
        s = self.specs[a.field]
        if a.kind == "person":
            p = self._persons(index)
            rows.set_person(s.name, p)
        elif a.kind == "entity":
            rows.set_entity(s.name, *self._entities(index))
        elif a.kind == "district":
            codes = self.w.districts
            fixed = self.fixed_district(rows.node)
            rows.values[a.field] = const(fixed, len(index)) if fixed else take(codes, index % len(codes))
            rows.district_codes[a.field] = rows.values[a.field]
        elif a.kind == "codes":
            rows.values[a.field] = take(self.reg.code_list(s.f.codes).values, index)
        elif a.kind == "bool":
            rows.values[a.field] = take(["是", "否"], index % 2)
        elif a.kind == "range":
            rows.values[a.field] = num_str(int(s.f.min) + index)
        else:
            rows.values[a.field] = self.template(s.name).values(index)

    def template(self, name: str) -> Template:
        if name not in self.templates:
            self.templates[name] = serial_template(self.c, self.specs[name].f)
        return self.templates[name]

    def _persons(self, k: np.ndarray) -> np.ndarray:
        pop = self.w.population
        if self.role == "native":
            return pop.native(k)
        if self.role == "migrant":
            return pop.migrant(k)
        return pop.any(k, self.w.key_sizes.get(self.c.dataset, 0))

    def _entities(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pool authority code per row, entity index) for key USCCs."""
        if self.registry_pool:
            return np.full(len(k), ord(self.registry_pool)), np.asarray(k, dtype=np.int64)
        pool = self.w.pools[self.ref_pool]
        total = max(pool.size, self.w.key_sizes.get(self.c.dataset, 0))
        return np.full(len(k), ord(self.ref_pool)), affine(np.asarray(k, np.int64), total, self.salt % 1_000_003)


_ORDER = {"ric": 0, "uscc": 0, "codes": 1, "mixed_id": 2, "district": 2, "gb2260": 2, "date": 3, "timestamp": 3,
          "number": 4, "bool": 4}


class Rows:
    """Column values of one chunk under construction, with the identities behind them."""

    def __init__(self, model: DatasetModel, node: str, n: int, rng: np.random.Generator, asof: int) -> None:
        self.m = model
        self.node = node
        self.n = n
        self.rng = rng
        self.asof = asof
        self.values: dict[str, pa.Array] = {}
        self.days: dict[str, np.ndarray] = {}
        self.numbers: dict[str, np.ndarray] = {}
        self.persons: dict[str, dict] = {}
        self.entities: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.district_codes: dict[str, pa.Array] = {}
        self.holder_kind: dict[str, np.ndarray] = {}
        self.static_index = np.zeros(n, dtype=np.int64)
        self.key_index = np.zeros(n, dtype=np.int64)

    # randomness: per-row stream, or hash of the key for static fields
    def bits(self, s: Spec) -> np.ndarray:
        if s.static:
            return mix(self.static_index, salt_of(self.m.salt, s.name))
        return self.rng.bit_generator.random_raw(self.n).astype(np.uint64)

    # identities
    def set_person(self, name: str, p: np.ndarray) -> None:
        pop = self.m.w.population
        addr, ymd, seq = pop.components(p)
        ids = ric_numbers(addr, ymd, seq)
        self.persons[name] = {"p": p, "addr": addr, "ymd": ymd, "seq": seq, "male": seq % 2 == 1}
        self.values[name] = pa.array(ids).cast(pa.string())

    def set_entity(self, name: str, auth: np.ndarray, i: np.ndarray) -> None:
        self.entities[name] = (auth, i)
        out = np.empty(len(i), dtype="S18")
        for code in np.unique(auth):
            m = auth == code
            pool = self.m.w.pools[chr(int(code))]
            out[m] = pool.uscc(i[m])
        self.values[name] = pa.array(out).cast(pa.string())

    def entity_attr(self, link: str, what: str) -> pa.Array:
        auth, i = self.entities[link]
        parts = {}
        for code in np.unique(auth):
            pool = self.m.w.pools[chr(int(code))]
            parts[int(code)] = (pool.names(i) if what == "name" else
                                pool.district(i) if what == "district" and hasattr(pool, "district") else None)
        if len(parts) == 1:
            return next(iter(parts.values()))
        codes = sorted(parts)
        return pc.choose(pa.array(np.searchsorted(codes, auth)), *[parts[c] for c in codes])

    def district_idx(self, h: np.ndarray) -> np.ndarray:
        d = self.m.w.districts
        return weighted(h, [DISTRICT_WEIGHTS.get(x, 1.0) for x in d])

    # generators
    def gen(self, s: Spec, key_hash: np.ndarray | None = None) -> pa.Array:
        h = key_hash if key_hash is not None else self.bits(s)
        out = getattr(self, "_g_" + s.kind)(s, h)
        if (key_hash is None and not s.f.required and s.name not in self.m.c.key and s.kind not in ("ric", "uscc")
                and not s.related):
            empty = unit(mix(h, 99)) < OPTIONAL_EMPTY_RATE
            if empty.any():
                out = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), out)
                if s.name in self.days:
                    self.days[s.name] = np.where(empty, -10**6, self.days[s.name])
        return out

    def _g_ric(self, s: Spec, h: np.ndarray) -> pa.Array:
        """A person described by the row (legal representative ...): an adult of the population."""
        pop = self.m.w.population
        p = pop.random(h)
        cutoff = int(str(date.fromordinal(EPOCH.toordinal() + self.asof).replace(day=1)).replace("-", "")) - 180000
        for attempt in range(4):
            _, ymd, _ = pop.components(p)
            young = ymd > cutoff
            if not young.any():
                break
            p = np.where(young, pop.random(mix(h, 100 + attempt)), p)
        self.set_person(s.name, p)
        return self.values[s.name]

    def _g_uscc(self, s: Spec, h: np.ndarray) -> pa.Array:
        if s.pool == "1":
            gov = self.m.w.pools["1"]
            j = gov.pick(h)
            self.entities[s.name] = (np.full(self.n, ord("1")), j)
            return pa.array(gov.uscc(j)).cast(pa.string())
        own = self.m.ref_pool
        other = "5" if own == "9" else "9"
        auth = np.where(unit(mix(h, 1)) < 0.85, ord(own), ord(other))
        i = np.empty(self.n, dtype=np.int64)
        for code in (own, other):
            m = auth == ord(code)
            i[m] = below(mix(h[m], 2), self.m.w.pools[code].size)
        self.set_entity(s.name, auth, i)
        return self.values[s.name]

    def _g_mixed_id(self, s: Spec, h: np.ndarray) -> pa.Array:
        kind_field = next((o for o in self.m.specs.values() if o.kind == "codes" and o.f.codes
                           and any("自然人" in c.label for c in self.m.reg.code_list(o.f.codes).codes)), None)
        natural = unit(mix(h, 1)) < 0.7
        if kind_field is not None and kind_field.name in self.values:
            lst = self.m.reg.code_list(kind_field.f.codes)
            person_codes = {c.code for c in lst.codes if "自然人" in c.label}
            spellings = [k for k, v in lst.lookup().items() if v in person_codes]
            natural = pc.fill_null(pc.is_in(self.values[kind_field.name], value_set=pa.array(spellings)),
                                   False).to_numpy(zero_copy_only=False)
        self.holder_kind[s.name] = natural
        p = self.m.w.population.random(mix(h, 2))
        pool = self.m.w.pools["9"]
        i = below(mix(h, 3), pool.size)
        self.set_person(s.name + "#p", p)
        self.set_entity(s.name + "#e", np.full(self.n, ord("9")), i)
        return pc.if_else(pa.array(natural), self.values[s.name + "#p"], self.values[s.name + "#e"])

    def _person_of(self, s: Spec) -> dict | None:
        if s.link and s.link in self.persons:
            return self.persons[s.link]
        if s.link and s.link + "#p" in self.persons:
            return self.persons[s.link + "#p"]
        return None

    def _conflict(self, s: Spec, person: dict, what: str) -> np.ndarray:
        if self.m.role != "migrant" or s.link not in self.m.c.key:
            return np.zeros(self.n, dtype=bool)
        pop = self.m.w.population
        p = person["p"]
        return pop.overlapping(p) & (unit(mix(p, salt_of(pop.seed, "conflict", what))) < CONFLICT_RATES[what])

    def _g_person_name(self, s: Spec, h: np.ndarray) -> pa.Array:
        person = self._person_of(s)
        if s.link and s.link in self.holder_kind:
            natural = self.holder_kind[s.link]
            names = self.m.w.population.names(person["p"], person["male"])
            ent = self.entity_attr(s.link + "#e", "name")
            return pc.if_else(pa.array(natural), names, ent)
        if person is None:
            return random_names(h)
        names = self.m.w.population.names(person["p"], person["male"])
        conflict = self._conflict(s, person, "name")
        if conflict.any():
            names = pc.if_else(pa.array(conflict), self.m.w.population.names(person["p"], person["male"], 1), names)
        return names

    def _g_codes(self, s: Spec, h: np.ndarray) -> pa.Array:
        lst = self.m.reg.code_list(s.f.codes)
        codes = lst.codes
        person = self._person_of(s)
        idx = None
        if s.f.codes == "gender" and person is not None:
            male = person["male"]
            conflict = self._conflict(s, person, "gender")
            male = male ^ conflict
            values = [c.code for c in codes]
            idx = np.where(male, values.index("1") if "1" in values else 0, values.index("2") if "2" in values else 0)
        elif s.link and s.link in self.entities:
            auth, i = self.entities[s.link]
            idx = self._entity_type_idx(lst, auth, i, h)
        elif s.related and s.related in self.numbers and s.f.codes == "aqi_level":
            idx = np.searchsorted([50, 100, 150, 200, 300], self.numbers[s.related], side="left").clip(0, len(codes) - 1)
        if idx is None:
            w = np.full(len(codes), 1.0)
            w[0] = max(1.0, len(codes) * 0.8)
            idx = weighted(h, w)
        code_arr = take([c.code for c in codes], idx)
        if "code_label" not in s.f.standardize:
            return code_arr
        label_arr = take([c.label for c in codes], idx)
        alias_arr = take([(c.aliases[0] if c.aliases else c.label) for c in codes], idx)
        u = unit(mix(h, 77))
        return pc.choose(pa.array(np.where(u < 0.7, 0, np.where(u < 0.95, 1, 2))), code_arr, label_arr, alias_arr)

    def _entity_type_idx(self, lst, auth, i, h) -> np.ndarray | None:
        words = {("9", 2): ("个体",), ("9", 3): ("合作社",), ("5", 1): ("社会团体", "社团"),
                 ("5", 2): ("民办非企业", "社会服务机构"), ("5", 3): ("基金会",)}
        labels = [c.label for c in lst.codes]
        matches = {k: next((j for j, lab in enumerate(labels) if any(w in lab for w in v)), None) for k, v in words.items()}
        if not any(v is not None for v in matches.values()):
            return None
        special = {j for j in matches.values() if j is not None}
        rest = [j for j in range(len(labels)) if j not in special] or list(range(len(labels)))
        w = np.array([3.0] + [1.0] * (len(rest) - 1))
        idx = np.array(rest)[weighted(mix(h, 5), w)]
        for code in np.unique(auth):
            pool = self.m.w.pools.get(chr(int(code)))
            if not isinstance(pool, EntityPool):
                continue
            m = auth == code
            t = pool.type_char(i[m])
            sub = idx[m]
            for tc in (1, 2, 3):
                j = matches.get((pool.authority, tc))
                if j is not None:
                    sub = np.where(t == tc, j, sub)
            idx[m] = sub
        return idx

    def _g_district(self, s: Spec, h: np.ndarray) -> pa.Array:
        fixed = self.m.fixed_district(self.node)
        person = self._person_of(s)
        if fixed and (s.link is None or person is None):
            out = const(fixed, self.n)
        elif person is not None and "户籍" in s.f.title:
            mapped = person["addr"].copy()
            for old, new in GZ_SUCCESSOR.items():
                mapped[mapped == int(old)] = int(new)
            districts = np.array([int(d) for d in self.m.w.districts if d.isdigit()], dtype=np.int64)
            pos = np.searchsorted(np.sort(districts), mapped).clip(0, len(districts) - 1)
            gz = np.sort(districts)[pos] == mapped
            rnd = np.array([int(d) for d in self.m.w.districts])[self.district_idx(mix(person["p"], 11))]
            out = num_str(np.where(gz, mapped, rnd))
        elif s.link and s.link in self.entities and self.entities[s.link][0][0] != ord("1"):
            out = self.entity_attr(s.link, "district")
        elif fixed:
            out = const(fixed, self.n)
        else:
            out = take(self.m.w.districts, self.district_idx(h))
        self.district_codes[s.name] = out
        return out

    def _g_gb2260(self, s: Spec, h: np.ndarray) -> pa.Array:
        person = self._person_of(s)
        if person is not None:
            return num_str(person["addr"])
        codes = [c for region in ADDRESS_CODES.values() for c, _ in region]
        return take(codes, below(h, len(codes)))

    def _g_phone(self, s: Spec, h: np.ndarray) -> pa.Array:
        mobile = join(const("1", self.n), take(list("3456789"), weighted(mix(h, 1), [3, 1, 3, 1, 2, 3, 3])),
                      num_str(below(mix(h, 2), 10**9), 9))
        land = join(const("020-", self.n), take(list("2345678"), below(mix(h, 3), 7)), num_str(below(mix(h, 4), 10**7), 7))
        return pc.if_else(pa.array(unit(mix(h, 5)) < 0.85), mobile, land)

    def _g_bool(self, s: Spec, h: np.ndarray) -> pa.Array:
        return take(["是", "否"], (unit(h) >= 0.6).astype(np.int64))

    def _start_lo(self, s: Spec) -> int:
        lo = day_of(s.f.min_date) if s.f.min_date else day_of("1990-01-01")
        return max(lo, self.asof - 365 * (25 if s.kind == "date" else 8))

    def _g_date(self, s: Spec, h: np.ndarray) -> pa.Array:
        days = self._days(s, h)
        self.days[s.name] = days
        if s.role == "month":
            days = month_start(days)
            self.days[s.name] = days
        out = iso_days(days)
        if "9999-12-31" in s.f.description:
            forever = unit(mix(h, 8)) < 0.05
            out = pc.if_else(pa.array(forever), "9999-12-31", out)
        return out

    def _days(self, s: Spec, h: np.ndarray) -> np.ndarray:
        u = unit(h)
        person = self._person_of(s)
        if s.role == "birth":
            if person is not None:
                days = ymd_to_days(person["ymd"])
                conflict = self._conflict(s, person, "birth_date")
                if conflict.any():
                    shift = np.where(unit(mix(h, 3)) < 0.5, 365, 30) * np.where(unit(mix(h, 4)) < 0.5, -1, 1)
                    days = np.where(conflict, days + shift, days)
                return days
            return self.asof - (18 * 365 + (u * 60 * 365).astype(np.int64))
        if s.role == "end" and s.related and s.related in self.days:
            start = self.days[s.related]
            if s.kind == "timestamp" or "时限" in s.f.title:
                span = (1 + unit(mix(h, 2)) * 20).astype(np.int64)
            else:
                span = np.array([365, 730, 1095, 1825, 3650])[below(mix(h, 2), 5)] - 1
            days = np.where(start < -10**5, self.asof - 30, start + span)
            if s.f.not_future:
                days = np.minimum(days, self.asof)
            return days
        if s.role == "end":
            days = self.asof + 30 + (u * 1500).astype(np.int64)
            return np.minimum(days, self.asof) if s.f.not_future else days
        lo = self._start_lo(s)
        if person is None and any(p for p in self.persons.values() if p is not None):
            person = next(iter(self.persons.values()))
        if person is not None and s.role != "month":
            lo = np.maximum(lo, ymd_to_days(person["ymd"]))
        lo = np.minimum(lo, self.asof)
        return lo + ((self.asof - lo) * u ** 0.6).astype(np.int64)

    def _g_timestamp(self, s: Spec, h: np.ndarray) -> pa.Array:
        if s.role == "end" and s.related and s.related in self.days:
            start_s = self.days[s.related] * 86400 + self.numbers.get(s.related + "#sec", 0)
            if "时限" in s.f.title:
                hours = (1 + below(mix(h, 2), 15)) * 24
            else:
                hours = ((unit(mix(h, 2)) ** 2) * 24 * 15).astype(np.int64) + 1
            secs = start_s + hours * 3600 + below(mix(h, 3), 3600)
            if s.f.not_future:
                secs = np.minimum(secs, self.asof * 86400 + 86399)
            secs = np.where(self.days[s.related] < -10**5, self.asof * 86400, secs)
        else:
            days = self._days(s, h)
            tod = 8 * 3600 + (unit(mix(h, 5)) * 11 * 3600).astype(np.int64)
            secs = days * 86400 + tod
            self.numbers[s.name + "#sec"] = tod
        self.days[s.name] = secs // 86400
        return ts_text(secs)

    def _g_number(self, s: Spec, h: np.ndarray) -> pa.Array:
        f = s.f
        u = unit(h)
        lo = f.min if f.min is not None else 0.0
        hi = f.max if f.max is not None else lo + (1000 if f.type == "integer" else 10000)
        if s.role in ("lng", "lat"):
            dist = next(iter(self.district_codes.values()), None)
            centre = np.array([DISTRICT_CENTRES.get(c, (113.3, 23.13))[0 if s.role == "lng" else 1]
                               for c in (dist.to_pylist() if dist is not None else ["440106"] * self.n)])
            v = centre + (unit(mix(h, 1)) - 0.5) * 0.12
        elif s.role == "age" and self.persons:
            person = next(iter(self.persons.values()))
            v = (self.asof - ymd_to_days(person["ymd"])) / 365.25
        elif s.role == "year":
            y1 = min(hi, REF_DATE.year)
            v = lo + u * (y1 - lo + 0.999)
        elif s.related and s.related in self.numbers:
            v = self.numbers[s.related] * (0.2 + 0.8 * u)
        elif hi - lo <= 200:
            v = lo + (hi - lo) * u
        elif hi - lo <= 10_000:
            v = lo + (hi - lo) * u ** 3.5
        else:
            v = lo + np.minimum(10 ** (u * np.log10(hi - lo) * 0.75), hi - lo)
        v = np.clip(v, lo, hi)
        if f.type == "integer":
            iv = np.floor(v).astype(np.int64)
            self.numbers[s.name] = iv.astype(np.float64)
            return num_str(iv)
        digits = min(f.scale, 6 if s.role in ("lng", "lat") else 2)
        scaled = np.round(v * 10 ** digits).astype(np.int64)
        self.numbers[s.name] = scaled / 10 ** digits
        if digits == 0:
            return num_str(scaled)
        ip, fp = np.divmod(scaled, 10 ** digits)
        return join(num_str(ip), const(".", self.n), num_str(fp, digits))

    def _g_pattern(self, s: Spec, h: np.ndarray) -> pa.Array:
        out = pattern_random(self.m.patterns[s.name], h)
        return const(out, self.n) if isinstance(out, str) else out

    def _g_fk(self, s: Spec, h: np.ndarray) -> pa.Array:
        target = self.m.w.model(s.ref)
        total = max(1, self.m.w.key_sizes.get(s.ref, 1000))
        return target.template(target.c.key[0]).values(below(h, total))

    def _g_serial(self, s: Spec, h: np.ndarray) -> pa.Array:
        t = self.m.template(s.name)
        return t.values(below(h, t.capacity))

    def _g_org_name(self, s: Spec, h: np.ndarray) -> pa.Array:
        if s.link and s.link in self.holder_kind:
            return self.entity_attr(s.link + "#e", "name")
        if s.link and s.link in self.entities:
            return self.entity_attr(s.link, "name")
        return self._flavoured_name(s, h)

    def _district_labels_for(self, h: np.ndarray) -> pa.Array:
        codes = next(iter(self.district_codes.values()), None)
        if codes is None:
            codes = take(self.m.w.districts, self.district_idx(mix(h, 21)))
        labels = self.m.labels
        return pc.fill_null(pc.cast(take([labels.get(c, "") for c in self.m.w.districts] + [""],
                                         _index_of(codes, self.m.w.districts)), pa.string()), "")

    def _flavoured_name(self, s: Spec, h: np.ndarray) -> pa.Array:
        t = s.f.title + self.m.c.title
        n = self.n
        dist = self._district_labels_for(h)
        firm = join(take(FIRM_CHARS, below(mix(h, 1), len(FIRM_CHARS))), take(FIRM_CHARS, below(mix(h, 2), len(FIRM_CHARS))))
        road = take(ROADS, below(mix(h, 3), len(ROADS)))
        num = num_str(1 + below(mix(h, 4), 300))
        if "社区" in t:
            return join(take(STREET_NAMES, below(mix(h, 5), len(STREET_NAMES))), take(["社区", "村", "居委会"], weighted(mix(h, 6), [6, 2, 1])))
        if "线路" in t:
            return join(num_str(1 + below(mix(h, 5), 999)), const("路", n))
        if "断面" in t:
            return join(take(RIVERS, below(mix(h, 6), len(RIVERS))), take(["桥", "闸", "口", "涌口", "监测点"], below(mix(h, 7), 5)))
        if "基站" in t:
            return join(dist, road, num, const("号基站", n))
        if "充电" in t or "充换电" in t:
            return join(dist, road, firm, const("充电站", n))
        if "站" in t or "监测" in t:
            return join(dist, road, const("监测站", n))
        if "医" in t:
            kinds = ["医院", "人民医院", "中医院", "妇幼保健院", "社区卫生服务中心", "门诊部"]
            return join(const("广州市", n), dist, firm, take(kinds, below(mix(h, 8), len(kinds))))
        if "学校" in t or "校" in t:
            kinds = ["小学", "中学", "实验学校", "幼儿园", "外国语学校"]
            return join(const("广州市", n), dist, firm, take(kinds, below(mix(h, 8), len(kinds))))
        if "养老" in t:
            return join(const("广州市", n), dist, firm, take(NONPROFIT_WORDS[:2], below(mix(h, 8), 2)))
        if "事项" in t:
            return take(VOCAB["事项"], below(h, len(VOCAB["事项"])))
        return join(const("广州", n), firm, take(INDUSTRY_WORDS, below(mix(h, 9), len(INDUSTRY_WORDS))), const("有限公司", n))

    def _g_address(self, s: Spec, h: np.ndarray) -> pa.Array:
        n = self.n
        key = next((w for w in ("户籍", "居住", "现住", "住所", "注册", "经营") if w in s.f.title), None)
        codes = None
        for name, arr in self.district_codes.items():
            if key and key in self.m.specs[name].f.title:
                codes = arr
        if codes is None:
            codes = next(iter(self.district_codes.values()), None)
        if codes is None:
            codes = take(self.m.w.districts, self.district_idx(mix(h, 21)))
        labels = self.m.labels
        dist = pc.fill_null(take([labels.get(c, "") for c in self.m.w.districts] + [""],
                                 _index_of(codes, self.m.w.districts)), "")
        road = take(ROADS, below(mix(h, 1), len(ROADS)))
        num = num_str(1 + below(mix(h, 2), 800))
        building = num_str(1 + below(mix(h, 3), 30))
        room = num_str(101 + below(mix(h, 4), 30) * 100 + below(mix(h, 5), 8))
        detailed = unit(mix(h, 6)) < 0.6
        tail = pc.if_else(pa.array(detailed), join(building, const("栋", n), room, const("房", n)), "")
        return join(const("广州市", n), dist, road, num, const("号", n), tail)

    def _g_doc_no(self, s: Spec, h: np.ndarray) -> pa.Array:
        n = self.n
        abbr = take(["市监", "发改", "城管", "环", "住建", "卫健", "交", "应急"], below(mix(h, 1), 8))
        kind = take(["许", "罚", "处", "准"], below(mix(h, 2), 4))
        year = num_str(2015 + below(mix(h, 3), 12))
        return join(const("穗", n), abbr, kind, const("〔", n), year, const("〕", n), num_str(1 + below(mix(h, 4), 9999)),
                    const("号", n))

    def _g_agency(self, s: Spec, h: np.ndarray) -> pa.Array:
        if s.link and s.link in self.entities:
            return self.entity_attr(s.link, "name")
        gov = self.m.w.pools["1"]
        return gov.names(gov.pick(h, self.m.fixed_district(self.node)))

    def _g_company(self, s: Spec, h: np.ndarray) -> pa.Array:
        n = self.n
        firm = join(take(FIRM_CHARS, below(mix(h, 1), len(FIRM_CHARS))), take(FIRM_CHARS, below(mix(h, 2), len(FIRM_CHARS))))
        words = ["公共交通", "新能源", "交通运输", "运营管理", "能源科技", "客运"] if _has(s.f.title, ("运营", "运营商")) \
            else INDUSTRY_WORDS
        return join(const("广州", n), firm, take(words, below(mix(h, 3), len(words))),
                    take(FIRM_SUFFIX, below(mix(h, 4), len(FIRM_SUFFIX))))

    def _g_street(self, s: Spec, h: np.ndarray) -> pa.Array:
        return join(take(STREET_NAMES, below(h, len(STREET_NAMES))), take(STREETS, weighted(mix(h, 1), [5, 1])))

    def _g_vocab(self, s: Spec, h: np.ndarray) -> pa.Array:
        words = VOCAB[s.role]
        return take(words, below(h, len(words)))

    def _g_text(self, s: Spec, h: np.ndarray) -> pa.Array:
        return take(TEXT_PHRASES, below(h, len(TEXT_PHRASES)))


def _index_of(values: pa.Array, options: list[str]) -> pa.Array:
    idx = pc.index_in(values, value_set=pa.array(options, pa.string()))
    return pc.fill_null(idx, len(options))


