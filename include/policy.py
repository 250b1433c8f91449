"""The policy file, read and checked: what a credit manager decides, kept out of the code.

:func:`load_policy` returns a frozen :class:`Policy` or raises :class:`PolicyError` naming the file,
the path inside it (``hard_rules[2].when[0].above``) and what was expected, so a typo in the policy
fails the first task that reads it instead of quietly deciding differently.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include import canonical

REASON_CODES = (*canonical.HOLD_REASONS, canonical.UNSPECIFIED_REASON)
CONDITION_TESTS = ("above", "at_least", "below", "at_most", "equals", "one_of")
RULE_EFFECTS = ("block", "clear")

TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "team_subject": frozenset({"as_of", "count", "team", "total"}),
    "team_intro": frozenset({"as_of", "count", "team", "total"}),
    "team_line": frozenset(
        {"order_id", "customer_id", "risk", "band", "reason", "evidence", "what_clears", "action"}
    ),
    "fail_safe": frozenset({"why", "as_of"}),
    "customer_message": frozenset({"order_id", "customer_id", "missing", "as_of"}),
}
"""The fields each template may use; a template naming another field is a policy error."""

_TOP_KEYS = {
    "version",
    "bands",
    "segment_bands",
    "at_risk_bands",
    "reason_min_probability",
    "hard_rules",
    "auto_release",
    "reasons",
    "teams",
    "notifications",
    "templates",
    "credit_limits",
    "costs",
}
_CREDIT_LIMIT_KEYS = {
    "target_utilisation": (0.01, 1.0),
    "low_risk_max": (0.0, 1.0),
    "high_risk_min": (0.0, 1.0),
    "min_on_time_share": (0.0, 1.0),
    "max_decrease_share": (0.0, 1.0),
    "auto_approve_max_increase_share": (0.0, 10.0),
    "auto_approve_max_increase": (0.0, float("inf")),
    "round_to": (1.0, float("inf")),
}
_COST_KEYS = {
    "review_minutes": (0.0, float("inf")),
    "cost_per_review_minute": (0.0, float("inf")),
    "missed_hold_delay_days": (0.0, float("inf")),
    "delay_cost_per_day_share": (0.0, 1.0),
    "missed_hold_loss_share": (0.0, 1.0),
}


class PolicyError(ValueError):
    """The policy file is not what holdcast expects."""


@dataclass(frozen=True)
class Band:
    name: str
    min: float


@dataclass(frozen=True)
class Condition:
    feature: str
    test: str
    value: Any


@dataclass(frozen=True)
class HardRule:
    name: str
    effect: str
    reason: str | None
    when: tuple[Condition, ...]


@dataclass(frozen=True)
class AutoRelease:
    max_risk: float = 0.0
    max_order_amount: float | None = None
    off_on_schema_drift: bool = True


@dataclass(frozen=True)
class Team:
    email: tuple[str, ...] = ()
    slack: str | None = None


@dataclass(frozen=True)
class Policy:
    version: str
    bands: tuple[Band, ...]
    at_risk_bands: frozenset[str]
    reason_min_probability: float
    teams: dict[str, str]
    """Team of each reason code."""
    actions: dict[str, str]
    """Suggested action of each reason code."""
    segment_bands: dict[str, tuple[Band, ...]] = field(default_factory=dict)
    hard_rules: tuple[HardRule, ...] = ()
    auto_release: AutoRelease = AutoRelease()
    customer_messages: dict[str, str] = field(default_factory=dict)
    """Reason code -> name of the customer-message template drafted for it."""
    team_channels: dict[str, Team] = field(default_factory=dict)
    notify_from: str = "holdcast@localhost"
    max_orders_listed: int = 50
    templates: dict[str, Any] = field(default_factory=dict)
    credit_limits: dict[str, float] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)

    @property
    def lowest_at_risk_min(self) -> float:
        """The smallest probability that can put an order in an at-risk band, in any segment."""
        floors = [b.min for bands in (self.bands, *self.segment_bands.values()) for b in bands]
        names = [b.name for bands in (self.bands, *self.segment_bands.values()) for b in bands]
        return min((f for f, n in zip(floors, names, strict=True) if n in self.at_risk_bands), default=1.0)

    def bands_of(self, risk, segments=None):
        """The band of each probability in ``risk`` (an array), by the bands of its segment if it has its own.

        Args:
            risk: probabilities of any hold.
            segments: the customer segment of each order (same length), or None for the default bands.
        """
        import numpy as np

        risk = np.asarray(risk, dtype=float)
        out = _bands_of(risk, self.bands)
        if segments is not None and self.segment_bands:
            # A missing segment (None, NaN or pandas' NA) has no bands of its own: the default ones apply.
            seg = np.array([x if isinstance(x, str) else None for x in segments], dtype=object)
            for name, bands in self.segment_bands.items():
                mine = seg == name
                if mine.any():
                    out[mine] = _bands_of(risk[mine], bands)
        return out


def _bands_of(risk, bands: tuple[Band, ...]):
    import numpy as np

    lows = np.array([b.min for b in bands])
    names = np.array([b.name for b in bands], dtype=object)
    # Bands run from the highest floor down to 0, so the first reached is the highest.
    return names[np.argmax(risk[:, None] >= lows[None, :], axis=1)]


def load_policy(path: Path) -> Policy:
    """Read and check the policy file.

    Raises:
        PolicyError: naming the file, the path inside it and what was expected.
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PolicyError(f"{path}: cannot read policy: {err}") from err
    return _Reader(path).policy(doc)


def _is_number(value: object) -> bool:
    # YAML reads "yes" as True, and bool is an int to Python: a flag is not a probability.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Reader:
    """Checks one policy document; every failure names the file and the path inside it."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, expected: str) -> PolicyError:
        return PolicyError(f"{self.path}: {where}: expected {expected}")

    def mapping(self, value: object, where: str, known: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, "a mapping")
        if known is not None:
            unknown = set(value) - known
            if unknown:
                raise self.fail(f"{where} keys {sorted(unknown)}", f"only {sorted(known)}")
        return value

    def number(self, value: object, where: str, low: float, high: float) -> float:
        if not _is_number(value) or not low <= value <= high:
            raise self.fail(where, f"a number between {low:g} and {high:g}")
        return float(value)

    def policy(self, doc: object) -> Policy:
        if not isinstance(doc, dict):
            raise self.fail("top level", "a mapping")
        unknown = set(doc) - _TOP_KEYS
        if unknown:
            raise self.fail(f"keys {sorted(unknown)}", f"only {sorted(_TOP_KEYS)}")
        if not isinstance(doc.get("version"), str) or not doc["version"]:
            raise self.fail("version", "a non-empty string")
        bands = self.bands(doc.get("bands"), "bands")
        names = [b.name for b in bands]
        segment_bands = {}
        for segment, items in self.mapping(doc.get("segment_bands") or {}, "segment_bands").items():
            segment_bands[str(segment)] = self.bands(items, f"segment_bands.{segment}")
            other = sorted({b.name for b in segment_bands[str(segment)]} - set(names))
            if other:
                raise self.fail(f"segment_bands.{segment}", f"band names from {names}; {other} are not")
        at_risk = doc.get("at_risk_bands")
        if not isinstance(at_risk, list) or not at_risk or not set(at_risk) <= set(names):
            raise self.fail("at_risk_bands", f"a non-empty list of band names from {names}")
        threshold = self.number(doc.get("reason_min_probability", 0.15), "reason_min_probability", 0, 1)

        templates = self.templates(doc.get("templates") or {})
        teams, actions, messages = self.reasons(doc.get("reasons") or {}, templates)
        channels = self.teams(doc.get("teams") or {}, set(teams.values()))
        notifications = self.mapping(
            doc.get("notifications") or {}, "notifications", {"from", "max_orders_listed"}
        )
        listed = notifications.get("max_orders_listed", 50)
        if not isinstance(listed, int) or isinstance(listed, bool) or listed < 1:
            raise self.fail("notifications.max_orders_listed", "a whole number of at least 1")
        return Policy(
            version=doc["version"],
            bands=bands,
            at_risk_bands=frozenset(at_risk),
            reason_min_probability=threshold,
            teams=teams,
            actions=actions,
            segment_bands=segment_bands,
            hard_rules=self.hard_rules(doc.get("hard_rules") or []),
            auto_release=self.auto_release(doc.get("auto_release") or {}),
            customer_messages=messages,
            team_channels=channels,
            notify_from=str(notifications.get("from", "holdcast@localhost")),
            max_orders_listed=listed,
            templates=templates,
            credit_limits=self.numbers(doc.get("credit_limits") or {}, "credit_limits", _CREDIT_LIMIT_KEYS),
            costs=self.costs(doc.get("costs") or {}),
        )

    def bands(self, items: object, where: str) -> tuple[Band, ...]:
        bands = []
        for i, item in enumerate(items or []):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise self.fail(f"{where}[{i}]", "a mapping with a string 'name' and a number 'min'")
            bands.append(Band(item["name"], self.number(item.get("min"), f"{where}[{i}].min", 0, 1)))
        if not bands:
            raise self.fail(where, "at least one band")
        if [b.min for b in bands] != sorted((b.min for b in bands), reverse=True) or bands[-1].min != 0.0:
            raise self.fail(where, "bands ordered from the highest 'min' down to a last band with min 0")
        names = [b.name for b in bands]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise self.fail(where, f"each band name once; {repeated} repeat")
        return tuple(bands)

    def reasons(self, reasons: object, templates: dict) -> tuple[dict, dict, dict]:
        if not isinstance(reasons, dict):
            raise self.fail("reasons", "a mapping of reason code to team and action")
        # An unknown key first: a typo ("payments") is the likelier mistake than a missing reason.
        extra = set(reasons) - set(REASON_CODES)
        if extra:
            raise self.fail(f"reasons.{sorted(extra)[0]}", f"a reason code from {list(REASON_CODES)}")
        teams, actions, messages = {}, {}, {}
        known_messages = sorted(templates.get("customer_messages", {}))
        for code in REASON_CODES:
            entry = reasons.get(code)
            if not isinstance(entry, dict) or not entry.get("team") or not entry.get("action"):
                raise self.fail(f"reasons.{code}", "a mapping with 'team' and 'action'")
            self.mapping(entry, f"reasons.{code}", {"team", "action", "customer_message"})
            teams[code], actions[code] = str(entry["team"]), str(entry["action"])
            if "customer_message" in entry:
                if entry["customer_message"] not in known_messages:
                    raise self.fail(
                        f"reasons.{code}.customer_message",
                        f"a template from templates.customer_messages {known_messages}",
                    )
                messages[code] = entry["customer_message"]
        return teams, actions, messages

    def hard_rules(self, items: object) -> tuple[HardRule, ...]:
        from features.build import FEATURE_COLUMNS

        if not isinstance(items, list):
            raise self.fail("hard_rules", "a list of rules")
        rules, seen = [], set()
        for i, item in enumerate(items):
            where = f"hard_rules[{i}]"
            item = self.mapping(item, where, {"name", "effect", "reason", "when"})
            name = item.get("name")
            if not isinstance(name, str) or not name or name in seen:
                raise self.fail(f"{where}.name", "a name no other rule has")
            seen.add(name)
            if item.get("effect") not in RULE_EFFECTS:
                raise self.fail(f"{where}.effect", f"one of {list(RULE_EFFECTS)}")
            reason = item.get("reason")
            if item["effect"] == "block" and reason not in REASON_CODES:
                raise self.fail(f"{where}.reason", f"a reason code from {list(REASON_CODES)} (block rules)")
            when = item.get("when")
            if not isinstance(when, list) or not when:
                raise self.fail(f"{where}.when", "a non-empty list of conditions")
            conditions = []
            for j, cond in enumerate(when):
                at = f"{where}.when[{j}]"
                cond = self.mapping(cond, at, {"feature", *CONDITION_TESTS})
                if cond.get("feature") not in FEATURE_COLUMNS:
                    raise self.fail(f"{at}.feature", "a feature column name (see features/build.py)")
                tests = [t for t in CONDITION_TESTS if t in cond]
                if len(tests) != 1:
                    raise self.fail(at, f"exactly one test of {list(CONDITION_TESTS)}")
                value = cond[tests[0]]
                if tests[0] == "one_of":
                    if not isinstance(value, list) or not value:
                        raise self.fail(f"{at}.one_of", "a non-empty list of values")
                elif tests[0] != "equals" and not _is_number(value):
                    raise self.fail(f"{at}.{tests[0]}", "a number")
                conditions.append(Condition(cond["feature"], tests[0], value))
            rules.append(HardRule(name, item["effect"], reason, tuple(conditions)))
        return tuple(rules)

    def auto_release(self, doc: object) -> AutoRelease:
        doc = self.mapping(doc, "auto_release", {"max_risk", "max_order_amount", "off_on_schema_drift"})
        amount = doc.get("max_order_amount")
        drift = doc.get("off_on_schema_drift", True)
        if not isinstance(drift, bool):
            raise self.fail("auto_release.off_on_schema_drift", "true or false")
        return AutoRelease(
            max_risk=self.number(doc.get("max_risk", 0.0), "auto_release.max_risk", 0, 1),
            max_order_amount=None
            if amount is None
            else self.number(amount, "auto_release.max_order_amount", 0, float("inf")),
            off_on_schema_drift=drift,
        )

    def teams(self, doc: object, needed: set[str]) -> dict[str, Team]:
        doc = self.mapping(doc, "teams")
        missing = sorted(needed - set(doc))
        if doc and missing:
            raise self.fail(f"teams.{missing[0]}", "an entry for every team named under reasons")
        channels = {}
        for name, entry in doc.items():
            entry = self.mapping(entry or {}, f"teams.{name}", {"email", "slack"})
            email = entry.get("email", [])
            if not isinstance(email, list) or not all(isinstance(a, str) and "@" in a for a in email):
                raise self.fail(f"teams.{name}.email", "a list of e-mail addresses")
            slack = entry.get("slack")
            if slack is not None and (not isinstance(slack, str) or not slack):
                raise self.fail(f"teams.{name}.slack", "the id of an Airflow connection")
            channels[str(name)] = Team(tuple(email), slack)
        return channels

    def templates(self, doc: object) -> dict[str, Any]:
        doc = self.mapping(doc, "templates", {*TEMPLATE_FIELDS, "customer_messages"} - {"customer_message"})
        out: dict[str, Any] = {}
        for name, text in doc.items():
            if name == "customer_messages":
                continue
            out[name] = self.template(text, f"templates.{name}", TEMPLATE_FIELDS[name])
        out["customer_messages"] = {}
        for name, entry in self.mapping(
            doc.get("customer_messages") or {}, "templates.customer_messages"
        ).items():
            where = f"templates.customer_messages.{name}"
            entry = self.mapping(entry, where, {"subject", "body"})
            out["customer_messages"][name] = {
                part: self.template(entry.get(part), f"{where}.{part}", TEMPLATE_FIELDS["customer_message"])
                for part in ("subject", "body")
            }
        return out

    def template(self, text: object, where: str, allowed: frozenset[str]) -> str:
        if not isinstance(text, str) or not text.strip():
            raise self.fail(where, "a non-empty text")
        try:
            used = {
                name.split(".")[0].split("[")[0]
                for _, name, _, _ in string.Formatter().parse(text)
                if name is not None
            }
        except ValueError as err:
            raise self.fail(where, f"a text with well-formed {{fields}} ({err})") from err
        unknown = sorted(used - allowed)
        if unknown or "" in used:
            raise self.fail(where, f"only the fields {sorted(allowed)}; {unknown or ['{}']} are not known")
        return text

    def numbers(self, doc: object, where: str, keys: dict[str, tuple[float, float]]) -> dict[str, float]:
        doc = self.mapping(doc, where, set(keys))
        missing = sorted(set(keys) - set(doc))
        if doc and missing:
            raise self.fail(f"{where}.{missing[0]}", "a value (every key of the section is needed)")
        return {k: self.number(v, f"{where}.{k}", *keys[k]) for k, v in doc.items()}

    def costs(self, doc: object) -> dict[str, Any]:
        doc = self.mapping(doc, "costs", {*_COST_KEYS, "auto_release_thresholds"})
        thresholds = doc.get("auto_release_thresholds", [])
        if not isinstance(thresholds, list) or not all(_is_number(t) and 0 <= t <= 1 for t in thresholds):
            raise self.fail("costs.auto_release_thresholds", "a list of numbers between 0 and 1")
        numbers = self.numbers({k: v for k, v in doc.items() if k in _COST_KEYS}, "costs", _COST_KEYS)
        return {**numbers, "auto_release_thresholds": sorted(float(t) for t in thresholds)}
