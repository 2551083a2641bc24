"""Declarations (contracts, gold models, registries): validated by their JSON Schema, then built from the dict.

Every YAML file a steward writes goes through the same two steps, as dbt's parser does
(``cls.validate(data); return cls.from_dict(data)``):

1. ``read``: parse the YAML and validate it against ``schemas/_meta/<kind>.schema.json`` (Draft 2020-12).
   The first error (in document order) becomes a ``ConfigError`` naming the file, the dotted path inside it
   and what to change, in Chinese, with a "did you mean" for a misspelt key.
2. ``build``: construct the frozen dataclass tree from the validated dict, generically from the dataclass's
   fields and type hints (lists become tuples, nested mappings nested dataclasses). A YAML key that is not a
   valid Python name (``from``) is mapped with ``field(metadata={"key": "from"})``.

So the JSON Schema says what a file may contain and the dataclass says what the code sees; there is no third,
hand-written loader repeating either. Checks that need more than one file (a contract naming an unknown node)
stay with the registry, which sees all files.
"""

from __future__ import annotations

import json
import types
from dataclasses import fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from govlake.errors import ConfigError, did_you_mean

T = TypeVar("T")

# The format definitions of this code version, for callers that know the catalog but not the schemas folder.
BUILTIN_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

# Kind (schema file stem) -> what the file is called in messages.
LABELS = {
    "contract": "数据集契约",
    "gold": "金层模型",
    "nodes": "节点登记表",
    "codes": "代码表",
    "duties": "职责清单",
    "data_items": "数据项登记表",
    "indicators": "指标定义",
    "sharing": "共享申请规则",
}

_TYPE_WORDS = {"string": "文本", "integer": "整数", "number": "数值", "boolean": "布尔值（true/false）",
               "array": "列表", "object": "映射", "null": "空值"}


# libyaml's parser when PyYAML was built with it: every command loads some fifty declaration files, and the
# pure-Python parser took most of a no-op ``govlake run``'s registry load. Same constructor, same data.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    """A YAML file as plain data; a syntax error or an unreadable file is a ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 (a safe loader)
        except yaml.YAMLError:
            return yaml.safe_load(text)  # the pure-Python parser says where, with the snippet stewards know
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML 语法错误：{exc}", where=str(path), hint="修正该文件的 YAML 格式") from None
    except OSError as exc:
        raise ConfigError(f"无法读取文件：{exc.strerror or exc}", where=str(path), hint="检查文件是否存在、是否可读") from None


def schema_path(kind: str, schemas_dir: Path | None = None) -> Path:
    return (schemas_dir or BUILTIN_SCHEMAS) / "_meta" / f"{kind}.schema.json"


@lru_cache(maxsize=32)
def _validator(path: str) -> Draft202012Validator:
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)  # a broken meta schema is our bug, not the steward's
    return Draft202012Validator(schema)


def validator(kind: str, schemas_dir: Path | None = None) -> Draft202012Validator:
    return _validator(str(schema_path(kind, schemas_dir)))


def dotted(err: ValidationError) -> str:
    """The dotted path of an error inside the document (``fields.6.type``), ``(根)`` for the top level."""
    return ".".join(str(p) for p in err.absolute_path) or "(根)"


def _doc_order(err: ValidationError) -> list[tuple[int, int, str]]:
    """Sort key putting errors in document order: list indexes numerically, keys by name."""
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in err.absolute_path]


def validate(doc: Any, kind: str, path: Path, schemas_dir: Path | None = None) -> None:
    """Raise ConfigError for the first schema violation of ``doc`` (read from ``path``), in document order."""
    errors = sorted(validator(kind, schemas_dir).iter_errors(doc), key=_doc_order)
    if not errors:
        return
    err = errors[0]
    message, hint = describe(err)
    raise ConfigError(f"{LABELS.get(kind, kind)}无效：{message}", where=f"{path} → {dotted(err)}",
                      hint=hint or f"对照 schemas/_meta/{kind}.schema.json 修改")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def describe(err: ValidationError) -> tuple[str, str | None]:
    """A Chinese sentence for the common JSON Schema failures (what is wrong) and, where one helps, the fix."""
    v, arg = err.validator, err.validator_value
    inst = err.instance
    shown = _short(inst)
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = [k for k in inst if k not in allowed]
        if extra:
            return (f"无法识别的键 “{extra[0]}”",
                    did_you_mean(str(extra[0]), allowed) or f"允许的键：{', '.join(sorted(allowed))}")
    if v == "required":
        missing = [k for k in arg if isinstance(inst, dict) and k not in inst]
        return f"缺少必填项 “{missing[0] if missing else arg}”", f"补上 {', '.join(missing or arg)}"
    if v == "enum":
        return (f"取值 “{shown}” 不在允许范围内",
                did_you_mean(str(inst), [str(a) for a in arg]) or f"可选值：{'、'.join(map(str, arg))}")
    if v == "const":
        return f"取值 “{shown}” 应为 “{arg}”", None
    if v == "type":
        want = "或".join(_TYPE_WORDS.get(t, t) for t in ([arg] if isinstance(arg, str) else arg))
        quote = "；数字形式的代码请加引号，例如 \"440100\"" if "string" in str(arg) and isinstance(inst, int) and not isinstance(inst, bool) else ""
        return f"“{shown}” 的类型不对，应为{want}", f"改为{want}{quote}"
    if v == "pattern":
        return f"“{shown}” 不符合格式 {arg}", None
    if v in ("oneOf", "anyOf"):
        return f"“{shown}” 不是允许的写法之一", None
    if v in ("minItems", "minLength"):
        return f"至少需要 {arg} {'项' if v == 'minItems' else '个字符'}", None
    if v in ("minimum", "maximum"):
        return f"{shown} {'小于最小值' if v == 'minimum' else '大于最大值'} {arg}", None
    return err.message, None


def read(path: Path, kind: str, schemas_dir: Path | None = None) -> Any:
    """Parse and validate one declaration file (step 1); the plain, valid data."""
    doc = load_yaml(path)
    validate(doc, kind, path, schemas_dir)
    return doc


def build(cls: type[T], data: dict[str, Any], **extra: Any) -> T:
    """The dataclass ``cls`` built from validated data (step 2); ``extra`` sets fields the file does not hold
    (the file's own path, a node's kind taken from its section). Absent keys take the dataclass default."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key = f.metadata.get("key", f.name)
        if key in data:
            kwargs[f.name] = _convert(hints[f.name], data[key])
    kwargs.update(extra)
    return cls(**kwargs)


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a declaration class: resolving them is most of what building costs, and a
    class's hints never change (every command builds some five hundred objects of a dozen classes)."""
    return get_type_hints(cls)


def load(cls: type[T], source: Path, kind: str, schemas_dir: Path | None = None, **extra: Any) -> T:
    """Both steps for a file that declares one object (a contract, a gold model, a code list)."""
    return build(cls, read(source, kind, schemas_dir), **extra)


def _convert(hint: Any, value: Any) -> Any:
    """``value`` shaped as ``hint`` says: tuples for ``tuple[X, ...]``, dataclasses for nested mappings.
    Scalars are kept as written (an integer bound stays an integer, so suites built from it do not change)."""
    if value is None:
        return None
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        return _convert(real[0], value) if len(real) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value))
    if origin is dict:
        return {k: _convert(args[1], v) for k, v in value.items()}
    if isinstance(hint, type) and is_dataclass(hint) and isinstance(value, dict):
        from_dict = getattr(hint, "from_dict", None)
        return from_dict(value) if from_dict is not None else build(hint, value)
    return value
