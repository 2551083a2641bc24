"""Compile a dataset contract into SQL: standardization, typing, pseudonymization and row-level rules.

Everything a contract says about a field becomes one SQL expression, so the conform job evaluates every
rule for every row in a single pass of the engine (no scan per expectation). Expressions go through the
engine's Dialect, so the same compiled contract runs on DuckDB and on Spark.

The SQL of each check is its check type's own (govlake/checks.py; ``compile_check`` is a lookup); the domain
validators there mirror python-stdnum (``stdnum.cn.ric``, ``stdnum.cn.uscc``), which the tests use as the
oracle over generated and random values.
"""

from __future__ import annotations

from dataclasses import dataclass

from govlake.checks import RIC_FORMAT, Check, Operands, check_type, uscc_valid
from govlake.checks import in_list as _in_list
from govlake.checks import ri_view, ric_digits, ric_valid  # noqa: F401  (re-exported: silver.py, tests)
from govlake.contracts import Contract, Field
from govlake.engine.base import Dialect, sql_str
from govlake.identifiers import DATE_FORMATS, FALSE_WORDS, TRUE_WORDS, TS_FORMATS
from govlake.identifiers import USCC_ALPHABET  # noqa: F401  (re-exported: tests)
from govlake.jobs.quality.suites import Suite, contract_checks
from govlake.registry import Registry

HALF = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz()-/.:, "
FULL = "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ（）－／．：，　"


@dataclass(frozen=True)
class Rule:
    """A row-level rule: ``fails`` is SQL that is TRUE when the row breaks it."""

    name: str
    field: str | None
    fails: str
    description: str
    severity: str = "error"  # error: quarantine; warn: kept and counted; fatal: batch not published
    mostly: float = 1.0  # fatal rules: the batch is published only if at least this share of rows passes


def _case_map(expr: str, mapping: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in mapping.items() if k != v)
    return f"CASE {expr} {whens} ELSE {expr} END" if whens else expr


# Redaction of unclassified text (ragged records, unmapped columns): every digit becomes 9, every other
# character *, except the delimiters that show how a record was cut (so a steward still sees "3 fields
# where 7 were expected"). Nothing of a value survives but its length and digit positions.
RAW_KEEP = ",;|\t\" "
FULLWIDTH_DIGITS = "０１２３４５６７８９"
ID_RUN_SQL = "[0-9]{9,}[0-9Xx]?"  # govlake.redaction.mask_ids in SQL: an ID number or a phone in a file name


def redact_sql(d: Dialect, expr: str, keep: str = "") -> str:
    """SQL twin of ``redact_text``: digits (half- and full-width) -> 9, other characters but ``keep`` -> *."""
    digits = d.replace_all(expr, f"[0-9{FULLWIDTH_DIGITS}]", "9")
    return d.replace_all(digits, f"[^9{keep}]", "*")


def redact_text(value: object, keep: str = "") -> str | None:
    """A value reduced to its shape: every decimal digit (any script) -> 9, every other character but
    ``keep`` -> *. ``redact_text("ab 440106")`` is ``"***999999"`` (with ``keep=" "``: ``"** 999999"``)."""
    if value is None:
        return None
    return "".join("9" if ch.isdecimal() else ch if ch in keep else "*" for ch in str(value))


def compile_check(d: Dialect, ck: Check, value, pid, reg: Registry | None, contract: Contract | None) -> str | None:
    """SQL that is TRUE when a row fails ``ck``: the check type's own SQL for this engine (govlake/checks.py).

    ``value(column, typed)`` names a column's standardized text (typed=False) or typed value (typed=True);
    on gold tables both are the column itself. ``pid`` pseudonymizes a text expression. ``reg`` is unused
    (kept for callers); code lists are resolved when the suite is built.
    """
    return check_type(ck.type).sql(Operands(d, value, pid, contract), ck)


class CompiledContract:
    """SQL pieces for one contract on one dialect."""

    def __init__(self, contract: Contract, registry: Registry, dialect: Dialect, key: bytes,
                 suite: Suite | None = None) -> None:
        self.c = contract
        self.reg = registry
        self.d = dialect
        self.key = key
        # Without a suite, the rules the contract alone implies (what unit tests and `rules off` need).
        self.suite = suite if suite is not None else Suite(f"silver.{contract.dataset}",
                                                            tuple(contract_checks(contract, registry)), "")

    # -- per field ------------------------------------------------------------------------------
    def std(self, f: Field, src: str) -> str:
        """Standardized text: half-width, trimmed, upper, names to codes; '' becomes NULL."""
        e = src
        steps = set(f.standardize)
        if "halfwidth" in steps:
            # translate() over a long Unicode map is slow; almost every value is already ASCII.
            e = f"CASE WHEN {self.d.is_ascii(e)} THEN {e} ELSE translate({e}, {sql_str(FULL)}, {sql_str(HALF)}) END"
        e = f"NULLIF(trim({e}), '')" if "trim" in steps else f"NULLIF({e}, '')"
        if "upper" in steps:
            e = f"upper({e})"
        if "district_code" in steps:  # names are Chinese: ASCII values are codes already
            e = f"CASE WHEN {self.d.is_ascii(e)} THEN {e} ELSE {_case_map(e, self.reg.district_codes.lookup())} END"
        if "code_label" in steps and f.codes:
            e = _case_map(e, self.reg.code_list(f.codes).lookup())
        if f.type in ("integer", "decimal"):
            e = f"replace({e}, ',', '')"
        return e

    def typed(self, f: Field, s: str) -> str:
        d = self.d
        if f.type == "string":
            return s
        if f.type == "integer":
            return f"CASE WHEN {d.regex_full(s, '[+-]?[0-9]{1,18}')} THEN {d.try_cast(s, 'BIGINT')} END"
        if f.type == "decimal":
            frac = f"(\\.[0-9]{{1,{f.scale}}})?" if f.scale else ""
            return f"CASE WHEN {d.regex_full(s, '[+-]?[0-9]{1,14}' + frac)} THEN {d.try_cast(s, d.decimal(f.scale))} END"
        if f.type == "boolean":
            return f"CASE WHEN upper({s}) IN ({', '.join(map(sql_str, TRUE_WORDS))}) THEN TRUE " \
                   f"WHEN upper({s}) IN ({', '.join(map(sql_str, FALSE_WORDS))}) THEN FALSE END"
        if f.type == "date":
            # The ISO fast path needs the whole text to be ISO: both engines' casts stop at a space or a
            # stray character ('2021-3-5 x', '2021-03-5x' -> 2021-03-05), which would be silent coercion.
            parts = [f"CASE WHEN {d.regex_full(s, '[0-9]{4}-[0-9]{2}-[0-9]{2}')} THEN {d.try_cast(s, 'DATE')} END",
                     f"CASE WHEN {d.regex_full(s, '[0-9]{8}')} THEN {d.parse_date(s, '%Y%m%d')} END"]
            parts += [d.parse_date(s, fmt) for fmt in DATE_FORMATS]  # %Y-%m-%d again: 2015-6-1 is not 10 long
            return f"coalesce({', '.join(parts)})"
        if f.type == "timestamp":
            return f"coalesce({', '.join(d.parse_timestamp(s, fmt) for fmt in TS_FORMATS)})"
        raise ValueError(f.type)

    def mask(self, f: Field, s: str) -> str:
        """The display value of a masked PII field. A mask keeps only what cannot be combined with the other
        columns of the same table to recover the value, and has a fixed width (no length leaks):

        * ``id``: the 6-digit region code only. Birth date and gender sit beside it in silver, so any further
          digit narrows the ~500 sequence candidates (the old mask, region + last four, left exactly one).
          A valid unified social credit code (a legal person's, public by law) is kept whole where the
          field may hold one (no ``cn_ric`` check), but never a value shaped like an ID number.
        * ``name``: the first character (surname) and one ``*``, whatever the length.
        * ``phone``: the first 3 digits (carrier or area prefix).
        * ``address``: the text up to the district or county (``广州市天河区``), else nothing.
        * anything else (``full``): ``****``.
        Text that does not have the expected shape shows nothing of itself.
        """
        d = self.d
        if f.mask == "id":
            region = f"{d.regex_full(f'substr({s}, 1, 6)', '[1-9][0-9]{5}')} AND length({s}) >= 15"
            out = f"CASE WHEN {region} THEN substr({s}, 1, 6) || '{'*' * 12}' ELSE '{'*' * 18}' END"
            if f.check != "cn_ric":
                public = f"{uscc_valid(d, s)} AND NOT {d.regex_full(s, RIC_FORMAT)}"
                out = f"CASE WHEN {public} THEN {s} ELSE {out} END"
        elif f.mask == "name":
            out = f"substr({s}, 1, 1) || '*'"
        elif f.mask == "phone":
            out = f"CASE WHEN {d.regex_full(f'substr({s}, 1, 3)', '[0-9]{3}')} THEN substr({s}, 1, 3) || '{'*' * 8}' " \
                  f"ELSE '{'*' * 11}' END"
        elif f.mask == "address":
            head = "^([^区县]{0,8}[区县])"
            cut = d.replace_all(s, head + r"[\s\S]*", r"\1****")
            out = f"CASE WHEN {d.regex_search(s, head)} THEN {cut} ELSE '****' END"
        else:
            out = "'****'"
        return f"CASE WHEN {s} IS NULL THEN NULL ELSE {out} END"

    def shown(self, f: Field, text: str) -> str:
        """What quarantine keeps of a field. Masked PII masked. Any other field only when its value is what the
        contract expects (it breaks none of the field's own rules; personal fields: a valid code, a value that
        types), else its redacted shape: a department that shifts its columns puts names and ID numbers under
        申领渠道 or 签发日期, and a value that fails its field's rules is unclassified text. Free text the contract
        declares non-personal is kept, with ID- and phone-like digit runs masked."""
        if f.hidden:
            return self.mask(f, text)
        if not f.is_pii:
            # Valid for the field's own rules (type, code list, format check): shown; else only its shape.
            # A field with no rule at all is free text: ID- and phone-like digit runs are masked.
            own = self._field_rules().get(f.name)
            if not own:
                return self.d.replace_all(text, f"[0-9{FULLWIDTH_DIGITS}]{{11,}}", "###########")
            ok = " AND ".join(f"NOT array_contains(_failures, {sql_str(name)})" for name in own)
            return f"CASE WHEN {ok} THEN {text} ELSE {redact_sql(self.d, text)} END"
        if f.codes:
            ok = _in_list(f"s__{f.name}", self.reg.code_list(f.codes).values)
        else:
            ok = f"t__{f.name} IS NOT NULL"
        return f"CASE WHEN {ok} THEN {text} ELSE {redact_sql(self.d, text)} END"

    def _field_rules(self) -> dict[str, list[str]]:
        """Field -> names of the error rules that judge it alone (what lands in ``_failures``)."""
        if not hasattr(self, "_by_field"):
            by_field: dict[str, list[str]] = {}
            for r in self.rules():
                if r.field and r.severity == "error":
                    by_field.setdefault(r.field, []).append(r.name)
            self._by_field = by_field
        return self._by_field

    def pid(self, s: str) -> str:
        return self.d.hmac_hex(s, self.key)  # NULL in, NULL out

    def private_columns(self) -> list[str]:
        """Silver and quarantine columns holding personal values as such (personal fields without a mask:
        birth date, gender): written without Parquet or Delta statistics."""
        return [f.name for f in self.c.fields if f.is_pii and not f.hidden]

    def key_columns(self) -> list[str]:
        return [f"{k}_pid" if self.c.field(k).hidden else k for k in self.c.key]

    # -- rules ----------------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        """The suite's row rules, each compiled to SQL that is TRUE when a row breaks it."""
        out = []
        for ck in self.suite.row_checks():
            fails = compile_check(self.d, ck, self.value, self.pid, self.reg, self.c)
            if fails is not None:
                out.append(Rule(ck.rule, ck.column, fails, ck.description, ck.severity, ck.mostly))
        return out

    def value(self, column: str, typed: bool) -> str:
        if column == "_raw":
            return "_raw"
        return f"{'t' if typed else 's'}__{column}"

    # -- the one-pass conform query -------------------------------------------------------------
    def std_sql(self, source: str, fields: set[str] | None = None, raw: bool = False) -> str:
        """Stage 1: standardized text per field (s__<name>) plus the bronze metadata; ``fields`` limits it
        to the fields a query needs; ``raw`` also carries the delivered values (r__<name>) for quarantine.
        """
        d = self.d
        std = [f"{self.std(f, d.ident(f.name))} AS s__{f.name}" for f in self._fields(fields)]
        if raw:
            std += [f"{d.ident(f.name)} AS r__{f.name}" for f in self._fields(fields)]
        return (f"SELECT {', '.join(std)}, _raw, _extra, _row_number, _node, _source_file, _batch_id, _ingested_at "
                f"FROM {source}")

    def _fields(self, names: set[str] | None) -> list[Field]:
        return [f for f in self.c.fields if names is None or f.name in names]

    def typed_sql(self, std_source: str, fields: set[str] | None = None) -> str:
        """Stage 2a: the typed value of every field (t__<name>) beside the standardized text."""
        typed = [f"{self.typed(f, f's__{f.name}')} AS t__{f.name}" for f in self._fields(fields)]
        typed += [f"{expr} AS {name}" for expr, name in self._pass_columns(fields)]
        return f"SELECT *, {', '.join(typed)} FROM {std_source} b"

    def _pass_columns(self, fields: set[str] | None) -> list[tuple[str, str]]:
        """Helper columns the suite's check types compute once in the typed stage (e.g. the 17 digits of a
        GB 11643 number), per field in field order, each once."""
        out: dict[str, str] = {}
        for f in self._fields(fields):
            for ck in self.suite.row_checks():
                if ck.column == f.name:
                    for expr, name in ck.kind.pass_columns(self.d, ck, f"s__{f.name}"):
                        out.setdefault(name, expr)
        return [(expr, name) for name, expr in out.items()]

    def checked_sql(self, std_source: str) -> str:
        """Stage 2: typed values (t__<name>) and the names of the rules each row fails: ``_failures``
        (error), ``_warnings`` (warn) and ``_fatal`` (fatal rules with no error/warn twin; they are counted
        per batch, not held against the row).

        Each rule is evaluated once, into a flag column (``_f<i>``), and the list of names is only built for
        rows with a raised flag (almost every row passes). A rule's SQL can then be referenced twice without
        being computed twice: DuckDB does not share subexpressions under CASE.
        """
        d = self.d
        # Fatal rules with an error or warn twin are judged from their twin's counts: not evaluated again.
        rules = [r for r in self.rules()
                 if r.severity != "fatal" or self.suite.twin_of(self.suite.check(r.name)) is None]
        flags = ", ".join(f"({r.fails}) AS _f{i}" for i, r in enumerate(rules))

        def names(keep) -> str:
            idx = [i for i, r in enumerate(rules) if keep(r)]
            if not idx:
                return d.array([])
            listed = d.compact(d.array([f"CASE WHEN _f{i} THEN {sql_str(rules[i].name)} END" for i in idx]))
            return f"CASE WHEN {' OR '.join(f'_f{i}' for i in idx)} THEN {listed} ELSE {d.array([])} END"

        typed = self.typed_sql(std_source)
        flagged = f"(SELECT *, {flags} FROM ({typed}) t)" if rules else f"({typed})"
        return (f"SELECT *, {names(lambda r: r.severity == 'error')} AS _failures, "
                f"{names(lambda r: r.severity == 'warn')} AS _warnings, {names(lambda r: r.severity == 'fatal')} AS _fatal "
                f"FROM {flagged} f")

    def conform_sql(self, source: str, raw: bool = False) -> str:
        """Both stages in one query."""
        return self.checked_sql(f"({self.std_sql(source, raw=raw)})")

    def field_pairs(self, value_prefix: str) -> list[tuple[str, str]]:
        """(expression, column) per field: masked PII as <name>_masked (+ <name>_pid for join keys), other
        fields from ``value_prefix`` ("t__" typed for silver, "s__" standardized text for quarantine, where
        personal fields without a mask are kept only as far as ``shown`` allows)."""
        cols: list[tuple[str, str]] = []
        for f in self.c.fields:
            s = f"s__{f.name}"
            if f.hidden:
                if self.c.has_pid(f):
                    cols.append((self.pid(s), f"{f.name}_pid"))
                cols.append((self.mask(f, s), f"{f.name}_masked"))
            elif value_prefix == "s__":
                cols.append((self.shown(f, s), f.name))
            else:
                cols.append((f"{value_prefix}{f.name}", f.name))
        return cols

    def field_columns(self, value_prefix: str) -> list[str]:
        return [f"{e} AS {n}" for e, n in self.field_pairs(value_prefix)]

    def key_text(self, layer: str) -> str:
        """The business key as one canonical text (typed value or pseudonym), comparable across silver and
        quarantine whatever spelling was delivered (2021/3/5 and 2021-03-05 are the same key)."""
        v = self.d.varchar()
        parts = []
        for k in self.c.key:
            if self.c.field(k).hidden:
                parts.append(f"{k}_pid" if layer == "silver" else self.pid(f"s__{k}"))
            else:
                parts.append(f"CAST({k} AS {v})" if layer == "silver" else f"coalesce(CAST(t__{k} AS {v}), s__{k})")
        return f"concat_ws('|', {', '.join(parts)})"

    def silver_select(self, source: str, extra: list[str] | None = None) -> str:
        """Typed silver columns; masked PII fields become <name>_masked (+ <name>_pid)."""
        cols = self.field_columns("t__") + ["_batch_id", "_node", "_row_number", "_ingested_at", "_warnings", *(extra or [])]
        return f"SELECT {', '.join(cols)} FROM {source}"

    def record_json(self) -> str:
        """The delivered record (bronze values, PII masked) as JSON text keyed by the Chinese field titles."""
        col = lambda f: f"r__{f.name}"  # noqa: E731  (raw values carried by std_sql(raw=True))
        return self.d.json_object([(f.title, self.shown(f, col(f))) for f in self.c.fields])

    QUARANTINE_META = ("_batch_id", "_node", "_source_file", "_row_number", "_ingested_at")

    def quarantine_exprs(self, failures: str = "_failures") -> list[tuple[str, str]]:
        """(expression, column) of a quarantine row: canonical columns as far as they could be read (masked
        where PII), the failures, the key and the delivered record (masked).

        The conform pass carries them (``quarantine_pass``), computed only where a row fails (NULL for the
        passing rows), so quarantine needs no second scan of bronze.
        """
        # ``_raw`` (a record that did not fit the header) is unclassified text: only its shape is kept.
        # ``_extra`` is carried as delivered and redacted value by value (its keys kept) by the conform job.
        return self.field_pairs("s__") + [(failures, "_failures"), (self.key_text("quarantine"), "_key"),
                                          (self.record_json(), "_record"), (redact_sql(self.d, "_raw", RAW_KEEP), "_raw"),
                                          ("_extra", "_extra"), (self.d.replace_all("_source_file", ID_RUN_SQL, "#########"), "_source_file")]

    def quarantine_pass(self, failed: str, failures: str = "_failures") -> list[str]:
        """The quarantine layout as the conform pass carries it: two columns, NULL where ``failed`` is false.

        ``_q__failures`` (the rule names) and ``_q__values``, one list of every other quarantine column's text
        (``quarantine_exprs`` order, all of them text). One list instead of a column each: a pass column costs
        per row even where it is NULL (the CASE result and its Arrow copy, about 60 ns a row per column on 2
        cores; 17 of them were more than the rules' own SQL), and almost every row passes.
        """
        texts = [e for e, n in self.quarantine_exprs(failures) if n != "_failures"]
        return [f"CASE WHEN {failed} THEN {failures} END AS _q__failures",
                f"CASE WHEN {failed} THEN {self.d.array(texts)} END AS _q__values"]

    def quarantine_columns(self, failing) -> list[tuple[str, object]]:
        """(column, Arrow array) of the quarantine rows from the pass columns of ``failing`` (an Arrow table of
        the failing rows, carrying ``quarantine_pass``'s columns)."""
        import pyarrow.compute as pc

        values = failing.column("_q__values")
        out, i = [], 0
        for _, name in self.quarantine_exprs():
            if name == "_failures":
                out.append((name, failing.column("_q__failures")))
            else:
                out.append((name, pc.list_element(values, i)))
                i += 1
        return out
