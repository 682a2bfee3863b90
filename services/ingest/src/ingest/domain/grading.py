"""Grading: a lot's class follows from its quality sample under a versioned profile.

A profile is data the cooperative edits each season (``profiles/*.yaml``), not code. It names its
classes best first; a lot gets the best class whose every requirement holds (mean Brix, size,
defect tolerances), else the fallback. Every figure a verdict rests on is rounded the way the
farmer reads it (mean Brix to the profile's step, percentages to 0.1) and the verdict is decided
on those rounded figures, so the reason on the ticket never contradicts the grade.

``to_dict``/``from_dict`` round-trip a profile exactly and ``digest`` fingerprints it, so the audit
trail can keep the very profile a lot was graded under.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ingest.domain.errors import InvalidProfile, InvalidSample, UnknownDefectKind
from ingest.domain.scale import format_kg as _kg
from melon_contracts.reference import Grade

DEFAULT_PROFILE_ID = "minqin-honeydew"
PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
"""The profiles shipped with the service (package data beside ``domain``)."""

BRIX_MIN = 0.0
BRIX_MAX = 35.0
MAX_SAMPLE_FRUITS = 100
FRUIT_WEIGHT_MAX_G = 20_000
TOTAL = "total"
"""The key of the all-defects figure in ``max_defect_percent`` and ``Grading.defect_percent``."""

PERCENT_STEP = Decimal("0.1")
_HUNDRED = Decimal(100)
_GRADE_RANK = {grade: rank for rank, grade in enumerate(Grade)}
_GRADE_EN = {
    Grade.EXTRA: "Extra",
    Grade.CLASS_I: "Class I",
    Grade.CLASS_II: "Class II",
    Grade.OUT_OF_GRADE: "out of grade",
}
_CLASS_GRADES = (Grade.EXTRA, Grade.CLASS_I, Grade.CLASS_II)
_PROFILE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_DEFECT_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Rounding(StrEnum):
    """How the mean Brix is rounded to the profile's step."""

    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


_DECIMAL_ROUNDING = {Rounding.HALF_UP: ROUND_HALF_UP, Rounding.HALF_EVEN: ROUND_HALF_EVEN}


@dataclass(frozen=True)
class Names:
    zh: str
    en: str


@dataclass(frozen=True)
class BrixRule:
    """The refractometer's resolution: the mean is rounded to ``step`` before it is compared."""

    step: Decimal = Decimal("0.1")
    rounding: Rounding = Rounding.HALF_UP

    def round(self, value: Decimal) -> Decimal:
        steps = (value / self.step).to_integral_value(rounding=_DECIMAL_ROUNDING[self.rounding])
        return (steps * self.step).quantize(self.step)


@dataclass(frozen=True)
class DefectKind:
    """A defect the operator counts in the sample, e.g. ``cracked`` (裂果)."""

    kind: str
    zh: str
    en: str


@dataclass(frozen=True)
class SizeCode:
    """A band of single-fruit weight: ``min_g`` ≤ weight < ``max_g`` (no upper bound if None)."""

    code: str
    min_g: int
    max_g: int | None = None

    def holds(self, weight_g: int) -> bool:
        return self.min_g <= weight_g and (self.max_g is None or weight_g < self.max_g)


@dataclass(frozen=True)
class UniformityBand:
    """From a lightest fruit of ``from_g`` up, the heaviest may weigh ``max_range_g`` more."""

    from_g: int
    max_range_g: int


@dataclass(frozen=True)
class ClassRule:
    """What a lot needs for ``grade``.

    ``size_codes``: the lot's size code (that of its mean fruit weight) must be one of these.
    ``min_fruit_g`` and ``uniform``: each sampled fruit weighs at least ``min_fruit_g`` and the
    sample fits the profile's uniformity table; up to ``size_tolerance_percent`` of the fruits (by
    number) may miss these. ``max_defect_percent`` holds a limit for every defect kind of the
    profile, in the profile's order, and ``max_total_defect_percent`` caps them together.
    """

    grade: Grade
    min_brix: Decimal
    max_defect_percent: tuple[tuple[str, Decimal], ...]
    max_total_defect_percent: Decimal
    size_codes: tuple[str, ...] | None = None
    min_fruit_g: int | None = None
    uniform: bool = False
    size_tolerance_percent: Decimal = Decimal(0)

    @property
    def defect_limits(self) -> Mapping[str, Decimal]:
        return MappingProxyType(dict(self.max_defect_percent))

    @property
    def sizes_fruit(self) -> bool:
        """Whether the class needs the sampled fruits' weights."""
        return self.size_codes is not None or self.min_fruit_g is not None or self.uniform


@dataclass(frozen=True)
class Sample:
    """What the operator measured on fruits sampled from a lot.

    One Brix reading per fruit (1 to 100 fruits, each 0-35 °Brix); fruit weights are empty or one
    per fruit, in grams; ``defects`` counts defective fruits by kind, each fruit under its most
    serious defect, so the counts add up to at most the number of fruits.
    """

    brix: tuple[float, ...]
    fruit_weights_g: tuple[int, ...] = ()
    defects: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "brix", tuple(self.brix))
        object.__setattr__(self, "fruit_weights_g", tuple(self.fruit_weights_g))
        object.__setattr__(self, "defects", MappingProxyType(dict(self.defects)))
        fruits = len(self.brix)
        if not 1 <= fruits <= MAX_SAMPLE_FRUITS:
            raise InvalidSample(
                f"a sample has 1 to {MAX_SAMPLE_FRUITS} Brix readings (one per fruit), not {fruits}"
            )
        for reading in self.brix:
            if (
                isinstance(reading, bool)
                or not isinstance(reading, int | float)
                or not math.isfinite(reading)
                or not BRIX_MIN <= reading <= BRIX_MAX
            ):
                raise InvalidSample(
                    f"Brix reading {reading!r} is outside {BRIX_MIN:g}-{BRIX_MAX:g}"
                )
        weights = self.fruit_weights_g
        if weights and len(weights) != fruits:
            raise InvalidSample(
                f"{len(weights)} fruit weights for {fruits} Brix readings; weigh every sampled "
                f"fruit or none"
            )
        for weight in weights:
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise InvalidSample(f"fruit weight {weight!r} must be whole grams")
            if not 1 <= weight <= FRUIT_WEIGHT_MAX_G:
                raise InvalidSample(f"fruit weight {weight} g is outside 1-{FRUIT_WEIGHT_MAX_G} g")
        for kind, count in self.defects.items():
            if not isinstance(kind, str) or not kind:
                raise InvalidSample(f"defect kind {kind!r} must be a name such as 'bruise'")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= fruits:
                raise InvalidSample(
                    f"defect count for {kind} must be 0 to {fruits} (the fruits sampled), "
                    f"not {count!r}"
                )
        counted = sum(self.defects.values())
        if counted > fruits:
            raise InvalidSample(
                f"{counted} defective fruits counted in a sample of {fruits}; count each fruit "
                f"once, under its most serious defect"
            )

    @property
    def fruits(self) -> int:
        return len(self.brix)


@dataclass(frozen=True)
class Grading:
    """The grade a profile gave a lot, with the measurements and the words behind it.

    ``defect_percent`` has every defect kind of the profile and ``total``, to 0.1 %. ``reason``
    (Chinese, for the farmer) and ``reason_en`` state the measurements and what kept the lot out
    of the next better class.
    """

    grade: Grade
    profile_id: str
    profile_version: int
    size_code: str | None
    brix_mean: float
    brix_samples: int
    fruit_weight_mean_g: int | None
    fruit_weight_min_g: int | None
    fruit_weight_max_g: int | None
    defect_percent: dict[str, float]
    reason: str
    reason_en: str


@dataclass(frozen=True)
class _Facts:
    """A sample's figures, rounded as the farmer reads them."""

    fruits: int
    brix_mean: Decimal
    weights: tuple[int, ...]
    weight_mean_g: int | None
    size_code: str | None
    counts: Mapping[str, int]
    percent: Mapping[str, Decimal]


@dataclass(frozen=True)
class _Miss:
    zh: str
    en: str


@dataclass(frozen=True)
class GradingProfile:
    """A named, versioned grading policy; construct it with ``from_dict`` or ``load_profile``.

    Constructing it directly checks the same consistency rules and raises ``InvalidProfile``.
    """

    profile_id: str
    version: int
    names: Names
    description: str
    brix: BrixRule
    defect_kinds: tuple[DefectKind, ...]
    size_codes: tuple[SizeCode, ...]
    classes: tuple[ClassRule, ...]
    uniformity: tuple[UniformityBand, ...] = ()
    fallback: Grade = Grade.OUT_OF_GRADE

    def __post_init__(self) -> None:
        problems = _consistency_problems(self)
        if problems:
            raise InvalidProfile([f"profile {self.profile_id}: {p}" for p in problems])

    @property
    def needs_fruit_weights(self) -> bool:
        """Whether some class sizes fruit by weight, so a sample without weights cannot reach it."""
        return any(rule.sizes_fruit for rule in self.classes)

    @property
    def defect_kind_ids(self) -> tuple[str, ...]:
        return tuple(kind.kind for kind in self.defect_kinds)

    def size_code_of(self, weight_g: int) -> str | None:
        for size in self.size_codes:
            if size.holds(weight_g):
                return size.code
        return None

    def grade(self, sample: Sample) -> Grading:
        """The best class whose every requirement the sample meets, else the fallback."""
        known = self.defect_kind_ids
        unknown = tuple(sorted(kind for kind in sample.defects if kind not in known))
        if unknown:
            raise UnknownDefectKind(unknown, f"{self.profile_id} v{self.version}", known)
        facts = self._facts(sample)
        for index, rule in enumerate(self.classes):
            if not self._misses(rule, facts):
                better = None if index == 0 else self.classes[index - 1]
                return self._grading(rule.grade, facts, self._why(rule, better, facts))
        return self._grading(self.fallback, facts, self._why(None, self.classes[-1], facts))

    def to_dict(self) -> dict[str, Any]:
        """The profile in its file's shape, as JSON-ready values (numbers, strings, lists)."""
        return {
            "profile_id": self.profile_id,
            "version": self.version,
            "names": {"zh": self.names.zh, "en": self.names.en},
            "description": self.description,
            "brix": {"step": float(self.brix.step), "rounding": self.brix.rounding.value},
            "defect_kinds": [
                {"kind": kind.kind, "zh": kind.zh, "en": kind.en} for kind in self.defect_kinds
            ],
            "size_codes": [_size_dict(size) for size in self.size_codes],
            "uniformity": [
                {"from_g": band.from_g, "max_range_g": band.max_range_g} for band in self.uniformity
            ],
            "classes": [_class_dict(rule) for rule in self.classes],
            "fallback": self.fallback.value,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "profile") -> GradingProfile:
        """Read a profile from its file's shape; ``InvalidProfile`` lists every problem found."""
        problems = _Problems(source)
        profile = _parse_profile(data, problems)
        if profile is None or problems:
            raise InvalidProfile(problems.items or [f"{source}: not a grading profile"])
        return profile

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of ``to_dict()`` as canonical JSON: sorted keys, no spaces, UTF-8."""
        return hashlib.sha256(canonical_json(self.to_dict())).hexdigest()

    def _facts(self, sample: Sample) -> _Facts:
        fruits = sample.fruits
        total = sum((Decimal(repr(reading)) for reading in sample.brix), Decimal(0))
        weights = sample.fruit_weights_g
        weight_mean = None
        size_code = None
        if weights:
            weight_mean = int(
                (Decimal(sum(weights)) / len(weights)).to_integral_value(rounding=ROUND_HALF_UP)
            )
            size_code = self.size_code_of(weight_mean)
        counts = {kind: sample.defects.get(kind, 0) for kind in self.defect_kind_ids}
        percent = {kind: _percent(count, fruits) for kind, count in counts.items()}
        percent[TOTAL] = _percent(sum(counts.values()), fruits)
        return _Facts(
            fruits=fruits,
            brix_mean=self.brix.round(total / fruits),
            weights=tuple(sorted(weights)),
            weight_mean_g=weight_mean,
            size_code=size_code,
            counts=counts,
            percent=percent,
        )

    def _misses(self, rule: ClassRule, facts: _Facts) -> list[_Miss]:
        misses: list[_Miss] = []
        if facts.brix_mean < rule.min_brix:
            misses.append(
                _Miss(
                    f"糖度 {facts.brix_mean} 低于 {rule.min_brix}",
                    f"Brix {facts.brix_mean} is below {rule.min_brix}",
                )
            )
        if rule.sizes_fruit and not facts.weights:
            misses.append(_Miss("未称单果重", "fruit weights were not measured"))
        elif facts.weights:
            misses.extend(self._size_misses(rule, facts))
        for kind in self.defect_kinds:
            limit = rule.defect_limits[kind.kind]
            share = facts.percent[kind.kind]
            if share > limit:
                misses.append(
                    _Miss(
                        f"{kind.zh} {share}% 超过 {_num(limit)}%",
                        f"{kind.en} {share}% is above {_num(limit)}%",
                    )
                )
        total = facts.percent[TOTAL]
        if total > rule.max_total_defect_percent:
            limit_text = _num(rule.max_total_defect_percent)
            misses.append(
                _Miss(
                    f"缺陷合计 {total}% 超过 {limit_text}%",
                    f"defects in total {total}% are above {limit_text}%",
                )
            )
        return misses

    def _size_misses(self, rule: ClassRule, facts: _Facts) -> list[_Miss]:
        misses: list[_Miss] = []
        if rule.size_codes is not None:
            code = facts.size_code
            allowed = rule.size_codes
            assert facts.weight_mean_g is not None
            mean = _kg(facts.weight_mean_g)
            if code is None:
                misses.append(
                    _Miss(
                        f"平均单果重 {mean} 不在任何规格内",
                        f"mean fruit weight {mean} has no size code",
                    )
                )
            elif code not in allowed:
                misses.append(
                    _Miss(
                        f"规格 {code} 不在 {'、'.join(allowed)} 之内",
                        f"size code {code} is not one of {', '.join(allowed)}",
                    )
                )
        if rule.min_fruit_g is None and not rule.uniform:
            return misses
        weights = facts.weights
        eligible = [w for w in weights if rule.min_fruit_g is None or w >= rule.min_fruit_g]
        light = len(weights) - len(eligible)
        uneven = len(eligible) - self._largest_uniform_set(eligible) if rule.uniform else 0
        off = light + uneven
        share = _percent(off, len(weights))
        if share > rule.size_tolerance_percent:
            parts_zh: list[str] = []
            parts_en: list[str] = []
            if light:
                assert rule.min_fruit_g is not None
                parts_zh.append(f"低于 {_kg(rule.min_fruit_g)} 的 {light} 个")
                parts_en.append(f"{light} below {_kg(rule.min_fruit_g)}")
            if uneven:
                parts_zh.append(f"超出整齐度范围的 {uneven} 个")
                parts_en.append(f"{uneven} outside the uniformity range")
            tolerance = _num(rule.size_tolerance_percent)
            misses.append(
                _Miss(
                    f"{off}/{len(weights)} 个果（{share}%）不合规格要求（{'、'.join(parts_zh)}），"
                    f"允许 {tolerance}%",
                    f"{off} of {len(weights)} fruits ({share}%) miss the size rules "
                    f"({', '.join(parts_en)}); tolerance {tolerance}%",
                )
            )
        return misses

    def _largest_uniform_set(self, sorted_weights: Sequence[int]) -> int:
        """The most fruits that fit one uniformity band; such a set is a run of sorted weights."""
        best = 0
        for start, lightest in enumerate(sorted_weights):
            ceiling = lightest + self._allowed_range(lightest)
            count = sum(1 for w in sorted_weights[start:] if w <= ceiling)
            best = max(best, count)
        return best

    def _allowed_range(self, lightest_g: int) -> int:
        allowed = self.uniformity[0].max_range_g
        for band in self.uniformity:
            if lightest_g >= band.from_g:
                allowed = band.max_range_g
        return allowed

    def _why(self, rule: ClassRule | None, missed: ClassRule | None, facts: _Facts) -> _Miss:
        zh, en = _measured(self, facts)
        if missed is None:
            assert rule is not None
            return _Miss(
                f"{zh}；达到{rule.grade.zh}全部要求（糖度 ≥ {rule.min_brix}）",
                f"{en}; meets every requirement of {_GRADE_EN[rule.grade]} "
                f"(Brix ≥ {rule.min_brix})",
            )
        misses = self._misses(missed, facts)
        grade = self.fallback if rule is None else rule.grade
        return _Miss(
            f"{zh}；未达{missed.grade.zh}：{'、'.join(m.zh for m in misses)}；定为{grade.zh}",
            f"{en}; not {_GRADE_EN[missed.grade]}: {', '.join(m.en for m in misses)}; "
            f"graded {_GRADE_EN[grade]}",
        )

    def _grading(self, grade: Grade, facts: _Facts, why: _Miss) -> Grading:
        weights = facts.weights
        return Grading(
            grade=grade,
            profile_id=self.profile_id,
            profile_version=self.version,
            size_code=facts.size_code,
            brix_mean=float(facts.brix_mean),
            brix_samples=facts.fruits,
            fruit_weight_mean_g=facts.weight_mean_g,
            fruit_weight_min_g=weights[0] if weights else None,
            fruit_weight_max_g=weights[-1] if weights else None,
            defect_percent={kind: float(share) for kind, share in facts.percent.items()},
            reason=why.zh,
            reason_en=why.en,
        )


def _measured(profile: GradingProfile, facts: _Facts) -> tuple[str, str]:
    fruits = facts.fruits
    zh = f"糖度均值 {facts.brix_mean}（{fruits} 个果）"
    en = f"mean Brix {facts.brix_mean} over {fruits} fruit{'s' if fruits != 1 else ''}"
    if facts.weights and facts.weight_mean_g is not None:
        mean, low, high = (
            _kg(g) for g in (facts.weight_mean_g, facts.weights[0], facts.weights[-1])
        )
        zh += f"，单果重均值 {mean}（{low}–{high}）"
        en += f", mean fruit weight {mean} ({low}-{high})"
        if facts.size_code is not None:
            zh += f"，规格 {facts.size_code}"
            en += f", size code {facts.size_code}"
    total = facts.percent[TOTAL]
    found = [kind for kind in profile.defect_kinds if facts.counts[kind.kind]]
    zh += f"，缺陷 {total}%"
    en += f", defects {total}%"
    if found:
        zh += "（" + "、".join(f"{k.zh} {facts.counts[k.kind]} 个" for k in found) + "）"
        en += " (" + ", ".join(f"{k.en} {facts.counts[k.kind]}" for k in found) + ")"
    return zh, en


def _percent(count: int, whole: int) -> Decimal:
    return (Decimal(count) * _HUNDRED / whole).quantize(PERCENT_STEP, rounding=ROUND_HALF_UP)


def _num(value: Decimal) -> str:
    """A threshold as people write it: 5, 0.5, 12.5 (no trailing zeros, no exponent)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def canonical_json(value: Any) -> bytes:
    """The bytes ``digest`` hashes: JSON with sorted keys, no spaces, non-ASCII kept, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _size_dict(size: SizeCode) -> dict[str, Any]:
    out: dict[str, Any] = {"code": size.code, "min_g": size.min_g}
    if size.max_g is not None:
        out["max_g"] = size.max_g
    return out


def _class_dict(rule: ClassRule) -> dict[str, Any]:
    out: dict[str, Any] = {"grade": rule.grade.value, "min_brix": float(rule.min_brix)}
    if rule.size_codes is not None:
        out["size_codes"] = list(rule.size_codes)
    if rule.min_fruit_g is not None:
        out["min_fruit_g"] = rule.min_fruit_g
    out["uniform"] = rule.uniform
    out["size_tolerance_percent"] = float(rule.size_tolerance_percent)
    limits: dict[str, float] = {kind: float(limit) for kind, limit in rule.max_defect_percent}
    limits[TOTAL] = float(rule.max_total_defect_percent)
    out["max_defect_percent"] = limits
    return out


def load_profile(path: Path | str) -> GradingProfile:
    """The profile in a YAML file; ``InvalidProfile`` names the file and field of each problem."""
    source = str(path)
    problems = _Problems(source)
    data = _read_yaml(Path(path), problems)
    if problems:
        raise InvalidProfile(problems.items)
    return GradingProfile.from_dict(data, source=source)


def load_profiles(directory: Path | str = PROFILES_DIR) -> dict[tuple[str, int], GradingProfile]:
    """Every profile in ``directory`` (``*.yaml``, ``*.yml``) by (profile id, version)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise InvalidProfile([f"{folder}: not a folder of grading profiles"])
    profiles: dict[tuple[str, int], GradingProfile] = {}
    origin: dict[tuple[str, int], Path] = {}
    problems: list[str] = []
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    for path in paths:
        try:
            profile = load_profile(path)
        except InvalidProfile as exc:
            problems.extend(exc.problems)
            continue
        key = (profile.profile_id, profile.version)
        if key in profiles:
            problems.append(
                f"{path}: profile {key[0]} version {key[1]} is also in {origin[key].name}; "
                f"bump the version of the changed copy"
            )
            continue
        profiles[key] = profile
        origin[key] = path
    if problems:
        raise InvalidProfile(problems)
    return profiles


def check_profile_file(path: Path | str) -> list[str]:
    """Every problem in a profile file, each naming file and field; empty when it can be used."""
    try:
        load_profile(path)
    except InvalidProfile as exc:
        return list(exc.problems)
    return []


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (YAML would keep the last silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found the key {key!r} twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _read_yaml(path: Path, problems: _Problems) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add("", f"cannot read the file: {exc}")
        return None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        problems.add("", f"not valid YAML: {' '.join(str(exc).split())}")
        return None


class _Problems:
    """Problems found in one profile, each as '<source>: <field path>: <what is wrong>'."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, path: str, problem: str) -> None:
        where = f"{self.source}: {path}: " if path else f"{self.source}: "
        self.items.append(where + problem)


_TOP_KEYS = {
    "profile_id",
    "version",
    "names",
    "description",
    "brix",
    "defect_kinds",
    "size_codes",
    "uniformity",
    "classes",
    "fallback",
}
_REQUIRED_TOP = ("profile_id", "version", "names", "classes")
_CLASS_KEYS = {
    "grade",
    "min_brix",
    "size_codes",
    "min_fruit_g",
    "uniform",
    "size_tolerance_percent",
    "max_defect_percent",
}


def _keys(data: Mapping[str, Any], allowed: set[str], path: str, problems: _Problems) -> None:
    for key in data:
        if key not in allowed:
            problems.add(
                _join(path, str(key)),
                f"unknown field; expected one of {', '.join(sorted(allowed))}",
            )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mapping(value: Any, path: str, problems: _Problems) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        problems.add(path, f"must be a mapping of fields, not {_shown(value)}")
        return None
    return value


def _list(value: Any, path: str, problems: _Problems) -> list[Any] | None:
    if not isinstance(value, list | tuple):
        problems.add(path, f"must be a list, not {_shown(value)}")
        return None
    return list(value)


def _text(value: Any, path: str, problems: _Problems, *, empty: bool = False) -> str | None:
    if not isinstance(value, str) or (not empty and not value.strip()):
        problems.add(path, f"must be {'a' if empty else 'a non-empty'} string, not {_shown(value)}")
        return None
    return value


def _whole(value: Any, path: str, problems: _Problems, *, least: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"must be a whole number, not {_shown(value)}")
        return None
    if value < least:
        problems.add(path, f"must be at least {least}, not {value}")
        return None
    return value


def _decimal(
    value: Any, path: str, problems: _Problems, *, low: Decimal, high: Decimal
) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        problems.add(path, f"must be a number, not {_shown(value)}")
        return None
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite() or not low <= number <= high:
        problems.add(path, f"must be {_num(low)} to {_num(high)}, not {value}")
        return None
    return number


def _shown(value: Any) -> str:
    if value is None:
        return "empty"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_profile(data: Any, problems: _Problems) -> GradingProfile | None:
    top = _mapping(data, "(top level)", problems)
    if top is None:
        return None
    _keys(top, _TOP_KEYS, "", problems)
    for key in _REQUIRED_TOP:
        if key not in top:
            problems.add(key, "is missing")
    profile_id = (
        _text(top.get("profile_id"), "profile_id", problems) if "profile_id" in top else None
    )
    if profile_id is not None and not _PROFILE_ID.match(profile_id):
        problems.add(
            "profile_id", f"{profile_id!r} must be lower-case letters, digits and '-' (up to 64)"
        )
    version = _whole(top.get("version"), "version", problems, least=1) if "version" in top else None
    names = _parse_names(top.get("names"), problems) if "names" in top else None
    description = _text(top.get("description", ""), "description", problems, empty=True)
    brix = _parse_brix(top.get("brix", {}), problems)
    kinds = _parse_kinds(top.get("defect_kinds", []), problems)
    sizes = _parse_sizes(top.get("size_codes", []), problems)
    bands = _parse_uniformity(top.get("uniformity", []), problems)
    fallback = _parse_grade(top.get("fallback", Grade.OUT_OF_GRADE.value), "fallback", problems)
    classes = None
    if "classes" in top and kinds is not None and brix is not None:
        classes = _parse_classes(top["classes"], kinds, problems)
    if (
        problems
        or profile_id is None
        or version is None
        or names is None
        or description is None
        or brix is None
        or kinds is None
        or sizes is None
        or bands is None
        or classes is None
        or fallback is None
    ):
        return None
    try:
        return GradingProfile(
            profile_id=profile_id,
            version=version,
            names=names,
            description=description,
            brix=brix,
            defect_kinds=kinds,
            size_codes=sizes,
            classes=classes,
            uniformity=bands,
            fallback=fallback,
        )
    except InvalidProfile:
        for path, problem in _consistency_paths(
            profile_id, brix, kinds, sizes, bands, classes, fallback
        ):
            problems.add(path, problem)
        return None


def _parse_names(value: Any, problems: _Problems) -> Names | None:
    data = _mapping(value, "names", problems)
    if data is None:
        return None
    _keys(data, {"zh", "en"}, "names", problems)
    zh = _text(data.get("zh"), "names.zh", problems)
    en = _text(data.get("en"), "names.en", problems)
    return None if zh is None or en is None else Names(zh=zh, en=en)


def _parse_brix(value: Any, problems: _Problems) -> BrixRule | None:
    data = _mapping(value, "brix", problems)
    if data is None:
        return None
    _keys(data, {"step", "rounding"}, "brix", problems)
    step = _decimal(data.get("step", 0.1), "brix.step", problems, low=Decimal(0), high=Decimal(5))
    if step is not None and step == 0:
        problems.add("brix.step", "must be more than 0")
        step = None
    rounding_text = data.get("rounding", Rounding.HALF_UP.value)
    rounding = None
    if rounding_text in {r.value for r in Rounding}:
        rounding = Rounding(rounding_text)
    else:
        choices = ", ".join(r.value for r in Rounding)
        problems.add("brix.rounding", f"must be one of {choices}, not {_shown(rounding_text)}")
    return None if step is None or rounding is None else BrixRule(step=step, rounding=rounding)


def _parse_kinds(value: Any, problems: _Problems) -> tuple[DefectKind, ...] | None:
    items = _list(value, "defect_kinds", problems)
    if items is None:
        return None
    kinds: list[DefectKind] = []
    for index, item in enumerate(items):
        path = f"defect_kinds[{index}]"
        data = _mapping(item, path, problems)
        if data is None:
            continue
        _keys(data, {"kind", "zh", "en"}, path, problems)
        kind = _text(data.get("kind"), f"{path}.kind", problems)
        zh = _text(data.get("zh"), f"{path}.zh", problems)
        en = _text(data.get("en"), f"{path}.en", problems)
        if kind is not None and (not _DEFECT_KIND.match(kind) or kind == TOTAL):
            problems.add(
                f"{path}.kind",
                f"{kind!r} must be lower-case letters, digits and '_' (not 'total')",
            )
            continue
        if kind is not None and any(k.kind == kind for k in kinds):
            problems.add(f"{path}.kind", f"{kind!r} is listed twice")
            continue
        if kind is not None and zh is not None and en is not None:
            kinds.append(DefectKind(kind=kind, zh=zh, en=en))
    return tuple(kinds)


def _parse_sizes(value: Any, problems: _Problems) -> tuple[SizeCode, ...] | None:
    items = _list(value, "size_codes", problems)
    if items is None:
        return None
    sizes: list[SizeCode] = []
    for index, item in enumerate(items):
        path = f"size_codes[{index}]"
        data = _mapping(item, path, problems)
        if data is None:
            continue
        _keys(data, {"code", "min_g", "max_g"}, path, problems)
        code = data.get("code")
        if not isinstance(code, str) or not code.strip() or len(code) > 16:
            hint = ' (quote it: "1")' if isinstance(code, int) else ""
            problems.add(f"{path}.code", f"must be a short string{hint}, not {_shown(code)}")
            code = None
        min_g = _whole(data.get("min_g"), f"{path}.min_g", problems, least=0)
        max_g = None
        if data.get("max_g") is not None:
            max_g = _whole(data.get("max_g"), f"{path}.max_g", problems, least=1)
            if max_g is not None and min_g is not None and max_g <= min_g:
                problems.add(f"{path}.max_g", f"{max_g} must be above min_g {min_g}")
                max_g = None
        if code is not None and any(s.code == code for s in sizes):
            problems.add(f"{path}.code", f"{code!r} is listed twice")
            continue
        if code is not None and min_g is not None:
            sizes.append(SizeCode(code=code, min_g=min_g, max_g=max_g))
    return tuple(sizes)


def _parse_uniformity(value: Any, problems: _Problems) -> tuple[UniformityBand, ...] | None:
    items = _list(value, "uniformity", problems)
    if items is None:
        return None
    bands: list[UniformityBand] = []
    for index, item in enumerate(items):
        path = f"uniformity[{index}]"
        data = _mapping(item, path, problems)
        if data is None:
            continue
        _keys(data, {"from_g", "max_range_g"}, path, problems)
        from_g = _whole(data.get("from_g"), f"{path}.from_g", problems, least=0)
        max_range = _whole(data.get("max_range_g"), f"{path}.max_range_g", problems, least=1)
        if from_g is not None and max_range is not None:
            bands.append(UniformityBand(from_g=from_g, max_range_g=max_range))
    return tuple(bands)


def _parse_grade(value: Any, path: str, problems: _Problems) -> Grade | None:
    if value in {grade.value for grade in Grade}:
        return Grade(value)
    problems.add(path, f"must be one of {', '.join(g.value for g in Grade)}, not {_shown(value)}")
    return None


def _parse_classes(
    value: Any, kinds: tuple[DefectKind, ...], problems: _Problems
) -> tuple[ClassRule, ...] | None:
    items = _list(value, "classes", problems)
    if items is None:
        return None
    rules: list[ClassRule] = []
    for index, item in enumerate(items):
        rule = _parse_class(item, f"classes[{index}]", kinds, problems)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _parse_class(
    item: Any, path: str, kinds: tuple[DefectKind, ...], problems: _Problems
) -> ClassRule | None:
    data = _mapping(item, path, problems)
    if data is None:
        return None
    _keys(data, _CLASS_KEYS, path, problems)
    for key in ("grade", "min_brix", "max_defect_percent"):
        if key not in data:
            problems.add(f"{path}.{key}", "is missing")
    grade = _parse_grade(data.get("grade"), f"{path}.grade", problems) if "grade" in data else None
    if grade is Grade.OUT_OF_GRADE:
        problems.add(f"{path}.grade", "out_of_grade is the fallback, not a class")
        grade = None
    min_brix = None
    if "min_brix" in data:
        min_brix = _decimal(
            data["min_brix"],
            f"{path}.min_brix",
            problems,
            low=Decimal(repr(BRIX_MIN)),
            high=Decimal(repr(BRIX_MAX)),
        )
    size_codes: tuple[str, ...] | None = None
    if data.get("size_codes") is not None:
        codes = _list(data["size_codes"], f"{path}.size_codes", problems)
        if codes is not None:
            if not codes or not all(isinstance(c, str) for c in codes):
                problems.add(f"{path}.size_codes", 'must list size codes as strings, e.g. ["1"]')
            else:
                size_codes = tuple(codes)
    min_fruit = None
    if data.get("min_fruit_g") is not None:
        min_fruit = _whole(data["min_fruit_g"], f"{path}.min_fruit_g", problems, least=1)
    uniform = data.get("uniform", False)
    if not isinstance(uniform, bool):
        problems.add(f"{path}.uniform", f"must be true or false, not {_shown(uniform)}")
        uniform = False
    tolerance = _decimal(
        data.get("size_tolerance_percent", 0),
        f"{path}.size_tolerance_percent",
        problems,
        low=Decimal(0),
        high=_HUNDRED,
    )
    limits = _parse_limits(
        data.get("max_defect_percent"), f"{path}.max_defect_percent", kinds, problems
    )
    if grade is None or min_brix is None or tolerance is None or limits is None:
        return None
    per_kind, total = limits
    return ClassRule(
        grade=grade,
        min_brix=min_brix,
        max_defect_percent=per_kind,
        max_total_defect_percent=total,
        size_codes=size_codes,
        min_fruit_g=min_fruit,
        uniform=uniform,
        size_tolerance_percent=tolerance,
    )


def _parse_limits(
    value: Any, path: str, kinds: tuple[DefectKind, ...], problems: _Problems
) -> tuple[tuple[tuple[str, Decimal], ...], Decimal] | None:
    if value is None:
        return None
    data = _mapping(value, path, problems)
    if data is None:
        return None
    expected = [kind.kind for kind in kinds] + [TOTAL]
    for key in data:
        if key not in expected:
            problems.add(
                _join(path, str(key)),
                f"not a defect kind of this profile; kinds: {', '.join(expected)}",
            )
    parsed: dict[str, Decimal] = {}
    for key in expected:
        if key not in data:
            problems.add(_join(path, key), "is missing; every defect kind needs a limit")
            continue
        limit = _decimal(data[key], _join(path, key), problems, low=Decimal(0), high=_HUNDRED)
        if limit is not None:
            parsed[key] = limit
    if len(parsed) != len(expected):
        return None
    total = parsed.pop(TOTAL)
    return tuple((kind.kind, parsed[kind.kind]) for kind in kinds), total


def _consistency_problems(profile: GradingProfile) -> list[str]:
    return [
        f"{path}: {problem}"
        for path, problem in _consistency_paths(
            profile.profile_id,
            profile.brix,
            profile.defect_kinds,
            profile.size_codes,
            profile.uniformity,
            profile.classes,
            profile.fallback,
        )
    ]


def _consistency_paths(
    profile_id: str,
    brix: BrixRule,
    kinds: tuple[DefectKind, ...],
    sizes: tuple[SizeCode, ...],
    bands: tuple[UniformityBand, ...],
    classes: tuple[ClassRule, ...],
    fallback: Grade,
) -> list[tuple[str, str]]:
    """The rules that tie a profile's parts together, as (field path, problem) pairs."""
    found: list[tuple[str, str]] = []
    if not _PROFILE_ID.match(profile_id):
        found.append(("profile_id", f"{profile_id!r} must be lower-case letters, digits and '-'"))
    for (i, a), (j, b) in ((x, y) for x in enumerate(sizes) for y in enumerate(sizes)):
        if i < j and _overlap(a, b):
            found.append(
                (f"size_codes[{j}]", f"{b.code} overlaps {a.code}; a fruit weight has one code")
            )
    if bands:
        if bands[0].from_g != 0:
            found.append(("uniformity[0].from_g", "must be 0 so every fruit weight has a band"))
        for index, (low, high) in enumerate(pairwise(bands), start=1):
            if high.from_g <= low.from_g:
                found.append((f"uniformity[{index}].from_g", "bands must rise"))
    if not classes:
        found.append(("classes", "lists no class; name at least one, best first"))
        return found
    if len(classes) > len(_CLASS_GRADES):
        found.append(("classes", f"lists {len(classes)} classes; at most {len(_CLASS_GRADES)}"))
    codes = {size.code for size in sizes}
    kind_ids = [kind.kind for kind in kinds]
    for index, rule in enumerate(classes):
        path = f"classes[{index}]"
        if rule.grade not in _CLASS_GRADES:
            found.append((f"{path}.grade", f"{rule.grade} is not a class"))
        if (rule.min_brix / brix.step) != (rule.min_brix / brix.step).to_integral_value():
            found.append(
                (f"{path}.min_brix", f"{rule.min_brix} is not a multiple of the step {brix.step}")
            )
        if [kind for kind, _ in rule.max_defect_percent] != kind_ids:
            found.append(
                (f"{path}.max_defect_percent", f"must give a limit for each of {kind_ids}")
            )
        for kind, limit in rule.max_defect_percent:
            if limit > rule.max_total_defect_percent:
                found.append(
                    (
                        f"{path}.max_defect_percent.{kind}",
                        f"{_num(limit)}% is above the total {_num(rule.max_total_defect_percent)}%",
                    )
                )
        for code in rule.size_codes or ():
            if code not in codes:
                found.append(
                    (
                        f"{path}.size_codes",
                        f"{code!r} is not a size code of this profile; codes: "
                        f"{', '.join(size.code for size in sizes) or 'none'}",
                    )
                )
        if rule.size_codes is not None and len(set(rule.size_codes)) != len(rule.size_codes):
            found.append((f"{path}.size_codes", "names a size code twice"))
        if rule.uniform and not bands:
            found.append((f"{path}.uniform", "needs the profile's uniformity table"))
    for index, (better, worse) in enumerate(pairwise(classes), start=1):
        found.extend(_ordering(f"classes[{index}]", better, worse))
    last = classes[-1].grade
    if _GRADE_RANK[fallback] <= _GRADE_RANK[last]:
        found.append(("fallback", f"{fallback} must be worse than the last class {last}"))
    return found


def _overlap(a: SizeCode, b: SizeCode) -> bool:
    a_high = math.inf if a.max_g is None else a.max_g
    b_high = math.inf if b.max_g is None else b.max_g
    return a.min_g < b_high and b.min_g < a_high


def _ordering(path: str, better: ClassRule, worse: ClassRule) -> list[tuple[str, str]]:
    """A worse class may never ask more than the class above it."""
    found: list[tuple[str, str]] = []
    name = better.grade.value
    if _GRADE_RANK[worse.grade] <= _GRADE_RANK[better.grade]:
        found.append((f"{path}.grade", f"{worse.grade} must come after {name}: best class first"))
        return found
    if worse.min_brix > better.min_brix:
        found.append((f"{path}.min_brix", f"{worse.min_brix} is above {name}'s {better.min_brix}"))
    for (kind, worse_limit), (_, better_limit) in zip(
        worse.max_defect_percent, better.max_defect_percent, strict=False
    ):
        if worse_limit < better_limit:
            found.append(
                (
                    f"{path}.max_defect_percent.{kind}",
                    f"{_num(worse_limit)}% is stricter than {name}'s {_num(better_limit)}%",
                )
            )
    if worse.max_total_defect_percent < better.max_total_defect_percent:
        found.append(
            (
                f"{path}.max_defect_percent.{TOTAL}",
                f"{_num(worse.max_total_defect_percent)}% is stricter than {name}'s "
                f"{_num(better.max_total_defect_percent)}%",
            )
        )
    if worse.size_codes is not None and (
        better.size_codes is None or not set(better.size_codes) <= set(worse.size_codes)
    ):
        found.append((f"{path}.size_codes", f"must include every size code {name} allows"))
    if (worse.min_fruit_g or 0) > (better.min_fruit_g or 0):
        found.append((f"{path}.min_fruit_g", f"is above {name}'s minimum fruit weight"))
    if worse.uniform and not better.uniform:
        found.append((f"{path}.uniform", f"asks for uniformity that {name} does not"))
    if worse.size_tolerance_percent < better.size_tolerance_percent:
        found.append((f"{path}.size_tolerance_percent", f"is stricter than {name}'s"))
    return found
