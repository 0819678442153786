"""The eligibility rule language: a small, safe expression language compiled to SQL.

Program staff write criteria such as::

    pmt <= 32 or (pmt <= 37 and any_member(disabled))
    pmt <= cutoff                      (a parameter the rule declares, which the simulator varies)
    any_member(sex = 'female' and age >= 18 and marital_status != 'never_married')
    count_members(age < 5) >= 2
    district in ('Rajanpur', 'Muzaffargarh') and not urban

The text is tokenised and parsed here into a tree; nothing is ever passed to
Python's ``eval``. The compiler accepts only the variables and functions declared
in :data:`HOUSEHOLD_VARS`, :data:`MEMBER_VARS` and the two member functions, and
turns literals into bind parameters, so a rule can neither read what it should not
nor inject SQL. Errors name the position in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from isps.registry import vocab
from isps.registry import current


class RuleError(ValueError):
    """A rule that cannot be parsed or compiled; the message points at the problem."""


# ------------------------------------------------------------------ tokens and tree

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+(?:\.\d+)?) |
    (?P<str>'(?:[^']|'')*') |
    (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,) |
    (?P<name>[A-Za-z_][A-Za-z_0-9]*)
)""", re.VERBOSE)
KEYWORDS = {"and", "or", "not", "in", "true", "false", "between"}


@dataclass(frozen=True)
class Tok:
    kind: str
    value: str
    pos: int


def tokenize(text: str) -> list[Tok]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise RuleError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = m.lastgroup
        value = m.group(kind)
        start = m.start(kind)
        if kind == "name" and value.lower() in KEYWORDS:
            kind, value = "kw", value.lower()
        out.append(Tok(kind, value, start))
        pos = m.end()
    out.append(Tok("end", "", len(text)))
    return out


@dataclass(frozen=True)
class Node:
    kind: str  # or, and, not, cmp, in, between, num, str, bool, var, call
    value: object = None
    args: tuple = field(default_factory=tuple)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self, kind: str | None = None, value: str | None = None) -> Tok:
        tok = self.peek()
        if (kind and tok.kind != kind) or (value and tok.value != value):
            want = value or kind
            got = tok.value or "the end of the rule"
            raise RuleError(f"expected {want!r} at position {tok.pos + 1}, found {got!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_()
        if self.peek().kind != "end":
            tok = self.peek()
            raise RuleError(f"unexpected {tok.value!r} at position {tok.pos + 1}")
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.peek().value == "or" and self.peek().kind == "kw":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Node("or", args=tuple(parts))

    def and_(self) -> Node:
        parts = [self.not_()]
        while self.peek().value == "and" and self.peek().kind == "kw":
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else Node("and", args=tuple(parts))

    def not_(self) -> Node:
        if self.peek().kind == "kw" and self.peek().value == "not":
            self.take()
            return Node("not", args=(self.not_(),))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.atom()
        tok = self.peek()
        if tok.kind == "op" and tok.value in ("<", "<=", ">", ">=", "=", "!=", "<>"):
            self.take()
            op = "!=" if tok.value == "<>" else tok.value
            return Node("cmp", op, (left, self.atom()))
        if tok.kind == "kw" and tok.value == "in":
            self.take()
            self.take("op", "(")
            items = [self.atom()]
            while self.peek().value == ",":
                self.take()
                items.append(self.atom())
            self.take("op", ")")
            return Node("in", args=(left, *items))
        if tok.kind == "kw" and tok.value == "between":
            self.take()
            low = self.atom()
            self.take("kw", "and")
            return Node("between", args=(left, low, self.atom()))
        return left

    def atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "num":
            self.take()
            return Node("num", float(tok.value))
        if tok.kind == "str":
            self.take()
            return Node("str", tok.value[1:-1].replace("''", "'"))
        if tok.kind == "kw" and tok.value in ("true", "false"):
            self.take()
            return Node("bool", tok.value == "true")
        if tok.kind == "op" and tok.value == "(":
            self.take()
            node = self.or_()
            self.take("op", ")")
            return node
        if tok.kind == "name":
            self.take()
            if self.peek().value == "(" and self.peek().kind == "op":
                self.take()
                inner = self.or_()
                self.take("op", ")")
                return Node("call", tok.value, (inner,))
            return Node("var", tok.value)
        raise RuleError(f"unexpected {tok.value or 'end of the rule'!r} at position {tok.pos + 1}")


def parse(text: str) -> Node:
    if not text or not text.strip():
        raise RuleError("the rule is empty")
    return _Parser(text).parse()


# ------------------------------------------------------------------ variables

@dataclass(frozen=True)
class Var:
    sql: str
    kind: str  # number | text | bool | district | tehsil
    label: str
    choices: tuple[str, ...] = ()


HOUSEHOLD_VARS: dict[str, Var] = {
    "pmt": Var("s.score", "number", "PMT score"),
    "district": Var("h.district_id", "district", "district"),
    "tehsil": Var("h.tehsil_id", "tehsil", "tehsil"),
    "urban": Var("h.urban", "bool", "urban household"),
    "rooms": Var("h.rooms", "number", "rooms"),
    "land_acres": Var("h.land_acres", "number", "land in acres"),
    "cattle": Var("h.cattle", "number", "cattle"),
    "goats_sheep": Var("h.goats_sheep", "number", "goats and sheep"),
    "monthly_income": Var("h.monthly_income", "number", "declared family income a month (PKR)"),
    "members": Var("COALESCE(ma.n_members, 0)", "number", "household members"),
    # administrative exclusions the feeds carry: the household's monthly electricity units and
    # telecom spend (averages over the months the DISCO and telco feeds delivered; 0 where none),
    # beside the vehicles (car, motorcycle, tractor) and land_acres the Excise and land feeds set
    "electricity_units": Var("COALESCE((SELECT AVG(er.units) FROM electricity_reading er "
                             "WHERE er.household_id = h.id), 0)", "number", "electricity units a month"),
    "telecom_spend": Var("COALESCE((SELECT SUM(ts.amount_pkr) / COUNT(DISTINCT ts.month) FROM telecom_spend ts "
                         "WHERE ts.household_id = h.id), 0)", "number", "telecom spend a month (PKR)"),
    **{d: Var(f"h.{d}", "bool", d.replace("_", " ")) for d in (*vocab.DURABLES, "electricity", "tractor")},
    **{c: Var(f"h.{c}", "text", c.replace("_", " "), v) for c, v in vocab.HOUSEHOLD_CATEGORICAL.items()},
}

MEMBER_VARS: dict[str, Var] = {
    "age": Var("{age}", "number", "age in years"),
    "sex": Var("i.sex", "text", "sex", vocab.SEX),
    "disabled": Var("(i.disability <> 'none')", "bool", "has a disability"),
    "disability": Var("i.disability", "text", "disability", vocab.DISABILITY),
    "marital_status": Var("i.marital_status", "text", "marital status", vocab.MARITAL),
    "relation": Var("i.relation_to_head", "text", "relation to the head", vocab.RELATION),
    "education": Var("i.education", "text", "education", vocab.EDUCATION),
    "enrolled": Var("i.enrolled_in_school", "bool", "enrolled in school"),
    "labour_status": Var("i.labour_status", "text", "labour status", vocab.LABOUR),
    "maternal_status": Var("COALESCE(i.maternal_status, 'none')", "text", "maternal status", vocab.MATERNAL),
    "has_cnic": Var("(i.cnic IS NOT NULL)", "bool", "has a CNIC or B-form"),
    # on a public-sector payroll (the payroll feed's active exclusion flag; lifted by an approved
    # appeal): an IN over the flags, which the database hashes once for the whole member pass
    "public_sector_employee": Var("(i.id IN (SELECT x.individual_id FROM exclusion_flag x "
                                  "WHERE x.reason = 'public_sector_employee' AND x.active))", "bool",
                                  "on the public-sector payroll"),
    "orphan": Var("(i.relation_to_head IN ('son', 'daughter', 'grandchild') AND hd.sex = 'female' "
                  "AND hd.marital_status = 'widowed')", "bool", "has lost their father"),
}
MEMBER_FUNCTIONS = ("any_member", "count_members")
HEAD_JOIN = ("LEFT JOIN individual hd ON hd.household_id = i.household_id AND hd.relation_to_head = 'head' "
             f"AND {current.sql('hd')}")
NARROW = "{narrow_members}"  # compile_rule puts the household or district filter of a narrowed evaluation here


# ------------------------------------------------------------------ compiler

@dataclass
class Compiled:
    """SQL for one expression, with its bind parameters and the member aggregates it needs."""

    sql: str
    params: dict
    aggregates: dict[str, tuple[str, str]]  # alias -> ("count" | "any", member condition)
    needs_head: bool = False
    variables: set[str] = field(default_factory=set)


class Compiler:
    """Compiles parsed rules for one evaluation; shares parameter numbering and member aggregates
    across all criteria of a rule so that one pass over the members serves them all."""

    def __init__(self, dialect: str, districts: dict[str, int], tehsils: dict[str, int],
                 parameters: dict[str, float] | None = None, on: date | None = None) -> None:
        self.dialect = dialect
        self.on = on
        self.parameters = dict(parameters or {})
        self.districts = {k.lower(): v for k, v in districts.items()}
        self.tehsils = {k.lower(): v for k, v in tehsils.items()}
        self.params: dict = {}
        # alias -> ("count", condition): SUM(CASE WHEN condition THEN 1 ELSE 0 END), for count_members;
        # alias -> ("any", condition): MAX(...), for any_member; all computed by one pass over the members
        self.aggregates: dict[str, tuple[str, str]] = {}
        self.needs_head = False  # a member-scope criterion (or the candidates) reads the head
        self.aggregates_need_head = False  # a member aggregate does
        self.variables: set[str] = set()

    def age_sql(self) -> str:
        if self.dialect == "postgresql":
            return "EXTRACT(YEAR FROM AGE(CAST(:on_date AS date), i.date_of_birth))"
        return ("(CAST(strftime('%Y', :on_date) AS INTEGER) - CAST(strftime('%Y', i.date_of_birth) AS INTEGER)"
                " - (strftime('%m-%d', :on_date) < strftime('%m-%d', i.date_of_birth)))")

    def _birth_cutoff(self, years: int) -> str:
        """The date of birth of someone who turns ``years`` on the evaluation date."""
        try:
            cut = self.on.replace(year=self.on.year - years)
        except ValueError:  # 29 February
            cut = self.on.replace(year=self.on.year - years, day=28)
        return self._param(cut if self.dialect == "postgresql" else cut.isoformat())

    def _age_comparison(self, op: str, right: Node) -> str | None:
        """``age >= 18`` as ``date_of_birth <= <date>``: no per-row date arithmetic, and an index
        on date of birth can serve it. Only for whole years on a known evaluation date."""
        if self.on is None:
            return None
        value = self.parameters.get(str(right.value)) if self._is_parameter(right) else right.value
        if right.kind not in ("num", "var") or value is None or float(value) != int(float(value)):
            return None
        n, dob = int(float(value)), "i.date_of_birth"
        exact = f"({dob} <= {self._birth_cutoff(n)} AND {dob} > {self._birth_cutoff(n + 1)})"
        return {">=": lambda: f"({dob} <= {self._birth_cutoff(n)})",
                ">": lambda: f"({dob} <= {self._birth_cutoff(n + 1)})",
                "<": lambda: f"({dob} > {self._birth_cutoff(n)})",
                "<=": lambda: f"({dob} > {self._birth_cutoff(n + 1)})",
                "=": lambda: exact,
                "!=": lambda: f"(NOT {exact})"}[op]()

    def _param(self, value) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def compile(self, text: str, member: bool = False) -> str:
        return self._node(parse(text), member)

    def _var(self, node: Node, member: bool) -> tuple[str, Var]:
        name = str(node.value)
        if member and name in MEMBER_VARS:
            var = MEMBER_VARS[name]
            if name == "orphan":
                self.needs_head = True
            self.variables.add(name)
            return var.sql.replace("{age}", self.age_sql()), var
        if name in HOUSEHOLD_VARS and not member:
            self.variables.add(name)
            return HOUSEHOLD_VARS[name].sql, HOUSEHOLD_VARS[name]
        if name in MEMBER_VARS:
            raise RuleError(f"'{name}' describes a person: use it inside any_member(...) or count_members(...)")
        if member and name in HOUSEHOLD_VARS:
            raise RuleError(f"'{name}' describes the household: use it outside any_member(...)")
        known = ", ".join(sorted(MEMBER_VARS if member else HOUSEHOLD_VARS))
        raise RuleError(f"unknown variable '{name}'; known here: {known}")

    def _is_parameter(self, node: Node) -> bool:
        return node.kind == "var" and node.value in self.parameters

    def _literal(self, node: Node, var: Var | None) -> str:
        if self._is_parameter(node):
            if var is not None and var.kind != "number":
                raise RuleError(f"parameter '{node.value}' is a number; {var.label} is not")
            return self._param(float(self.parameters[str(node.value)]))
        if node.kind == "num":
            return self._param(node.value)
        if node.kind == "bool":
            return "TRUE" if node.value else "FALSE"
        if node.kind == "str":
            text = str(node.value)
            if var is not None and var.kind == "district":
                if text.lower() not in self.districts:
                    raise RuleError(f"there is no district '{text}'")
                return self._param(self.districts[text.lower()])
            if var is not None and var.kind == "tehsil":
                if text.lower() not in self.tehsils:
                    raise RuleError(f"there is no tehsil '{text}'")
                return self._param(self.tehsils[text.lower()])
            if var is not None and var.choices and text not in var.choices:
                raise RuleError(f"{var.label} has no value '{text}' (values: {', '.join(var.choices)})")
            return self._param(text)
        raise RuleError("a comparison needs a variable on the left and a value on the right")

    def _node(self, node: Node, member: bool) -> str:
        k = node.kind
        if k in ("or", "and"):
            return "(" + f" {k.upper()} ".join(self._node(a, member) for a in node.args) + ")"
        if k == "not":
            return f"(NOT {self._node(node.args[0], member)})"
        if k == "var":
            sql, var = self._var(node, member)
            if var.kind != "bool":
                raise RuleError(f"'{node.value}' is not a yes/no value: compare it, e.g. {node.value} = ...")
            return f"({sql})"
        if k == "bool":
            return "(1 = 1)" if node.value else "(1 = 0)"
        if k == "cmp":
            left, right = node.args
            if left.kind == "call":
                return f"({self._call(left, member)} {node.value} {self._literal(right, None)})"
            if left.kind != "var":
                raise RuleError("a comparison must start with a variable, e.g. pmt <= 32")
            sql, var = self._var(left, member)
            if left.value == "age" and member and var.kind == "number" and (
                    right.kind == "num" or self._is_parameter(right)):
                rewritten = self._age_comparison(node.value, right)
                if rewritten:
                    return rewritten
            if var.kind in ("text", "district", "tehsil") and right.kind != "str":
                raise RuleError(f"'{left.value}' is compared with text in quotes, e.g. {left.value} = '...'")
            if var.kind == "number" and right.kind != "num" and not self._is_parameter(right):
                raise RuleError(f"'{left.value}' is a number: compare it with a number")
            if var.kind in ("text", "district", "tehsil") and node.value not in ("=", "!="):
                raise RuleError(f"'{left.value}' can only be compared with = or !=")
            op = "<>" if node.value == "!=" else node.value
            return f"({sql} {op} {self._literal(right, var)})"
        if k == "in":
            left, *items = node.args
            if left.kind != "var":
                raise RuleError("'in' must follow a variable, e.g. district in ('Kasur', 'Okara')")
            sql, var = self._var(left, member)
            return f"({sql} IN ({', '.join(self._literal(i, var) for i in items)}))"
        if k == "between":
            left, low, high = node.args
            sql, var = self._var(left, member)
            if var.kind != "number":
                raise RuleError(f"'{left.value}' is not a number")
            if left.value == "age" and member:
                lo, hi = self._age_comparison(">=", low), self._age_comparison("<=", high)
                if lo and hi:
                    return f"({lo} AND {hi})"
            return f"({sql} BETWEEN {self._literal(low, var)} AND {self._literal(high, var)})"
        if k == "call":
            if node.value == "count_members":
                raise RuleError("count_members(...) gives a number: compare it, e.g. count_members(age < 5) >= 2")
            if node.value == "any_member" and not member:
                return self._any_member(node)
            return f"({self._call(node, member)} > 0)"
        raise RuleError("this is a value, not a condition")

    def _any_member(self, node: Node) -> str:
        """``any_member(c)`` as a column of the rule's one member aggregate (a GROUP BY household
        over the members that :func:`rules.compile_rule` joins to the households once): every
        ``any_member`` and ``count_members`` of a rule shares that one pass, instead of a separate
        scan of the members and a hashed set of households for each."""
        return f"({self._aggregate('any', node.args[0])} > 0)"

    def _aggregate(self, kind: str, inner_node: Node) -> str:
        before = self.needs_head
        self.needs_head = False
        inner = self._node(inner_node, member=True)
        self.aggregates_need_head = self.aggregates_need_head or self.needs_head
        self.needs_head = before  # the aggregate carries its own join to the head
        for alias, (k, sql) in self.aggregates.items():
            if (k, sql) == (kind, inner):
                return f"COALESCE(ma.{alias}, 0)"
        alias = f"a{len(self.aggregates)}"
        self.aggregates[alias] = (kind, inner)
        return f"COALESCE(ma.{alias}, 0)"

    def _call(self, node: Node, member: bool) -> str:
        if node.value not in MEMBER_FUNCTIONS:
            raise RuleError(f"unknown function '{node.value}'; known: {', '.join(MEMBER_FUNCTIONS)}")
        if member:
            raise RuleError(f"{node.value}(...) cannot be nested inside another member condition")
        return self._aggregate("count", node.args[0])
