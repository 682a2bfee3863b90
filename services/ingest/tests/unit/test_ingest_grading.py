"""Grading under versioned profiles: the shipped profiles' thresholds, their files, their digest."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest.domain.errors import InvalidProfile, InvalidSample, UnknownDefectKind
from ingest.domain.grading import (
    DEFAULT_PROFILE_ID,
    PROFILES_DIR,
    GradingProfile,
    Sample,
    canonical_json,
    check_profile_file,
    load_profile,
    load_profiles,
)
from melon_contracts.reference import Grade

PROFILES = load_profiles()
MINQIN = PROFILES[(DEFAULT_PROFILE_ID, 1)]
UNECE = PROFILES[("unece-melons", 1)]

EXTRA, CLASS_I, CLASS_II, OUT = (
    Grade.EXTRA,
    Grade.CLASS_I,
    Grade.CLASS_II,
    Grade.OUT_OF_GRADE,
)


def sample(
    brix: float | tuple[float, ...] = 15.0,
    weight_g: int | tuple[int, ...] | None = 2_600,
    fruits: int = 20,
    **defects: int,
) -> Sample:
    """``fruits`` fruits of one Brix and weight unless tuples are given; defects by kind."""
    readings = brix if isinstance(brix, tuple) else (brix,) * fruits
    if weight_g is None:
        weights: tuple[int, ...] = ()
    elif isinstance(weight_g, tuple):
        weights = weight_g
    else:
        weights = (weight_g,) * len(readings)
    return Sample(brix=readings, fruit_weights_g=weights, defects=defects)


def test_shipped_profiles_are_found_beside_the_package() -> None:
    assert PROFILES_DIR.is_dir()
    assert set(PROFILES) == {("minqin-honeydew", 1), ("unece-melons", 1)}
    assert (MINQIN.names.zh, UNECE.names.en) == ("民勤蜜瓜", "Melons (shaped like UNECE FFV-23)")


@pytest.mark.parametrize(
    ("brix", "grade"),
    [
        pytest.param((14.0,), EXTRA, id="14.0-extra"),
        pytest.param((13.9, 14.0), EXTRA, id="mean-13.95-rounds-up-to-extra"),
        pytest.param((13.9,), CLASS_I, id="13.9-class-i"),
        pytest.param((12.1,), CLASS_I, id="12.1-class-i"),
        pytest.param((12.0,), CLASS_I, id="12.0-class-i"),
        pytest.param((11.9, 12.0, 11.9), CLASS_II, id="mean-11.93-class-ii"),
        pytest.param((10.0,), CLASS_II, id="10.0-class-ii"),
        pytest.param((9.9,), OUT, id="9.9-out-of-grade"),
        pytest.param((9.9, 10.0, 9.8), OUT, id="mean-9.9-out-of-grade"),
        pytest.param((0.0,), OUT, id="no-sugar"),
        pytest.param((35.0,), EXTRA, id="top-of-scale"),
    ],
)
def test_minqin_brix_thresholds(brix: tuple[float, ...], grade: Grade) -> None:
    # Given fruits of size code 1 without defects, When graded, Then Brix alone decides
    grading = MINQIN.grade(sample(brix, 2_600))
    assert grading.grade is grade
    assert (grading.profile_id, grading.profile_version) == ("minqin-honeydew", 1)
    assert grading.brix_samples == len(brix)


@pytest.mark.parametrize(
    ("weights", "size_code", "grade"),
    [
        pytest.param((2_500,), "1", EXTRA, id="2500-code-1"),
        pytest.param((2_499,), "2", EXTRA, id="2499-code-2"),
        pytest.param((2_499, 2_500), "1", EXTRA, id="mean-2499.5-rounds-to-code-1"),
        pytest.param((2_000,), "2", EXTRA, id="2000-code-2"),
        pytest.param((1_999,), "3", CLASS_I, id="1999-code-3"),
        pytest.param((1_500,), "3", CLASS_I, id="1500-code-3"),
        pytest.param((1_499,), "4", CLASS_II, id="1499-code-4"),
        pytest.param((1_000,), "4", CLASS_II, id="1000-code-4"),
        pytest.param((999,), None, OUT, id="999-no-code"),
        pytest.param((4_800,), "1", EXTRA, id="big-fruit-code-1"),
    ],
)
def test_minqin_size_codes_by_mean_fruit_weight(
    weights: tuple[int, ...], size_code: str | None, grade: Grade
) -> None:
    grading = MINQIN.grade(sample((15.0,) * len(weights), weights))
    assert (grading.size_code, grading.grade) == (size_code, grade)


@pytest.mark.parametrize(
    ("defects", "grade"),
    [
        pytest.param({}, EXTRA, id="clean"),
        pytest.param({"bruise": 1}, EXTRA, id="bruise-5pct-extra-limit"),
        pytest.param({"bruise": 2}, CLASS_I, id="bruise-10pct"),
        pytest.param({"bruise": 3}, CLASS_II, id="bruise-15pct"),
        pytest.param({"bruise": 4}, OUT, id="bruise-20pct"),
        pytest.param({"cracked": 1}, CLASS_I, id="no-crack-in-extra"),
        pytest.param({"cracked": 2}, CLASS_II, id="crack-10pct"),
        pytest.param({"cracked": 3}, OUT, id="crack-15pct"),
        pytest.param({"pest": 1}, CLASS_I, id="no-pest-in-extra"),
        pytest.param({"sunburn": 1, "bruise": 1}, CLASS_I, id="total-10pct-above-extra"),
        pytest.param({"scar": 4}, CLASS_II, id="scar-20pct-class-ii-limit"),
        pytest.param({"scar": 3, "bruise": 2}, OUT, id="total-25pct"),
        pytest.param({"rot": 1}, OUT, id="rot-in-no-class"),
        pytest.param({"bruise": 0, "rot": 0}, EXTRA, id="zero-counts"),
    ],
)
def test_minqin_defect_tolerances_by_kind(defects: dict[str, int], grade: Grade) -> None:
    # Given 20 sweet, large fruits with some defects, When graded, Then the tolerances decide
    assert MINQIN.grade(sample(15.0, 2_600, 20, **defects)).grade is grade


def test_rot_is_named_when_it_keeps_a_lot_out_of_every_class() -> None:
    grading = MINQIN.grade(sample(16.0, 2_600, 20, rot=1))
    assert grading.grade is OUT
    assert grading.reason.endswith("未达二级：腐烂 5.0% 超过 0%；定为等外")
    assert grading.reason_en.endswith("not Class II: rot 5.0% is above 0%; graded out of grade")


def test_without_fruit_weights_no_minqin_class_can_be_given() -> None:
    grading = MINQIN.grade(sample(15.0, None, 5))
    assert MINQIN.needs_fruit_weights
    assert (grading.grade, grading.size_code, grading.fruit_weight_mean_g) == (OUT, None, None)
    assert "未称单果重" in grading.reason
    assert "fruit weights were not measured" in grading.reason_en


@pytest.mark.parametrize(
    ("graded", "reason", "reason_en"),
    [
        pytest.param(
            sample((14.5,), (2_600,)),
            "糖度均值 14.5（1 个果），单果重均值 2.60 kg（2.60 kg–2.60 kg），规格 1，缺陷 0.0%；"
            "达到特级全部要求（糖度 ≥ 14.0）",
            "mean Brix 14.5 over 1 fruit, mean fruit weight 2.60 kg (2.60 kg-2.60 kg), "
            "size code 1, defects 0.0%; meets every requirement of Extra (Brix ≥ 14.0)",
            id="extra",
        ),
        pytest.param(
            sample((13.0, 13.5, 13.2, 13.1, 13.2), (2_100, 2_300, 2_600, 2_200, 2_400)),
            "糖度均值 13.2（5 个果），单果重均值 2.32 kg（2.10 kg–2.60 kg），规格 2，缺陷 0.0%；"
            "未达特级：糖度 13.2 低于 14.0；定为一级",
            "mean Brix 13.2 over 5 fruits, mean fruit weight 2.32 kg (2.10 kg-2.60 kg), "
            "size code 2, defects 0.0%; not Extra: Brix 13.2 is below 14.0; graded Class I",
            id="class-i-says-what-extra-needs",
        ),
        pytest.param(
            sample(15.0, 1_800, 10, bruise=1, sunburn=1),
            "糖度均值 15.0（10 个果），单果重均值 1.80 kg（1.80 kg–1.80 kg），规格 3，"
            "缺陷 20.0%（日灼 1 个、碰压伤 1 个）；未达一级：缺陷合计 20.0% 超过 10%；定为二级",
            "mean Brix 15.0 over 10 fruits, mean fruit weight 1.80 kg (1.80 kg-1.80 kg), "
            "size code 3, defects 20.0% (sunburn 1, bruise 1); "
            "not Class I: defects in total 20.0% are above 10%; graded Class II",
            id="class-ii-names-the-class-i-miss",
        ),
        pytest.param(
            sample((9.0, 9.2), (900, 955)),
            "糖度均值 9.1（2 个果），单果重均值 0.928 kg（0.90 kg–0.955 kg），缺陷 0.0%；"
            "未达二级：糖度 9.1 低于 10.0、平均单果重 0.928 kg 不在任何规格内；定为等外",
            "mean Brix 9.1 over 2 fruits, mean fruit weight 0.928 kg (0.90 kg-0.955 kg), "
            "defects 0.0%; not Class II: Brix 9.1 is below 10.0, mean fruit weight 0.928 kg has "
            "no size code; graded out of grade",
            id="out-of-grade-names-every-class-ii-miss",
        ),
        pytest.param(
            sample((15.0,), (1_600,)),
            "糖度均值 15.0（1 个果），单果重均值 1.60 kg（1.60 kg–1.60 kg），规格 3，缺陷 0.0%；"
            "未达特级：规格 3 不在 1、2 之内；定为一级",
            "mean Brix 15.0 over 1 fruit, mean fruit weight 1.60 kg (1.60 kg-1.60 kg), "
            "size code 3, defects 0.0%; not Extra: size code 3 is not one of 1, 2; graded Class I",
            id="size-code-miss",
        ),
    ],
)
def test_reason_lets_a_farmer_check_the_grade(graded: Sample, reason: str, reason_en: str) -> None:
    grading = MINQIN.grade(graded)
    assert grading.reason == reason
    assert grading.reason_en == reason_en


def test_grading_carries_the_measurements() -> None:
    grading = MINQIN.grade(
        Sample(
            brix=(14.2, 14.4, 14.1, 14.3),
            fruit_weights_g=(2_410, 2_655, 2_530, 2_600),
            defects={"sunburn": 1},
        )
    )
    assert grading.brix_mean == 14.3
    assert (
        grading.fruit_weight_mean_g,
        grading.fruit_weight_min_g,
        grading.fruit_weight_max_g,
    ) == (
        2_549,
        2_410,
        2_655,
    )
    assert grading.size_code == "1"
    assert grading.defect_percent == {
        "cracked": 0.0,
        "sunburn": 25.0,
        "bruise": 0.0,
        "scar": 0.0,
        "pest": 0.0,
        "rot": 0.0,
        "total": 25.0,
    }
    # One sunburnt fruit in four is 25 %, more than any class tolerates
    assert grading.grade is OUT


@pytest.mark.parametrize(
    ("brix", "mean"),
    [
        pytest.param((12.05,), 12.1, id="half-rounds-up-in-decimal"),
        pytest.param((12.1, 12.2, 12.3), 12.2, id="float-sum-error-does-not-leak"),
        pytest.param((12, 13), 12.5, id="whole-readings"),
        pytest.param((13.94, 13.95), 13.9, id="mean-13.945-rounds-down"),
    ],
)
def test_mean_brix_is_rounded_half_up_to_a_tenth(brix: tuple[float, ...], mean: float) -> None:
    assert MINQIN.grade(sample(brix, 2_600)).brix_mean == mean


@pytest.mark.parametrize(
    ("count", "fruits", "percent", "grade"),
    [
        pytest.param(1, 19, 5.3, CLASS_I, id="5.26pct-rounds-to-5.3-above-5"),
        pytest.param(1, 20, 5.0, EXTRA, id="5.0pct-at-limit"),
        pytest.param(1, 21, 4.8, EXTRA, id="4.76pct"),
    ],
)
def test_defect_share_is_decided_on_the_rounded_percent(
    count: int, fruits: int, percent: float, grade: Grade
) -> None:
    grading = MINQIN.grade(sample(15.0, 2_600, fruits, bruise=count))
    assert (grading.defect_percent["bruise"], grading.grade) == (percent, grade)


# The UNECE-shaped profile: 8 °Brix in every class, at least 250 g a fruit, uniform sizes.
UNIFORM_10 = (1_200, 1_250, 1_300, 1_310, 1_320, 1_330, 1_340, 1_350, 1_400, 1_450)


@pytest.mark.parametrize(
    ("graded", "grade"),
    [
        pytest.param(sample(8.0, 1_500, 10), EXTRA, id="8.0-brix"),
        pytest.param(sample((8.0, 7.9), (1_500, 1_500)), EXTRA, id="mean-7.95-rounds-to-8.0"),
        pytest.param(sample(7.9, 1_500, 10), OUT, id="7.9-brix"),
        pytest.param(sample(9.0, UNIFORM_10, 10), EXTRA, id="uniform-sample"),
        pytest.param(sample(9.0, (*UNIFORM_10[:9], 2_000), 10), EXTRA, id="one-outlier-10pct-ok"),
        pytest.param(
            sample(9.0, (*UNIFORM_10[:8], 1_900, 2_000), 10), OUT, id="two-outliers-20pct"
        ),
        pytest.param(sample(9.0, (249, *(300,) * 9), 10), EXTRA, id="one-light-fruit-10pct"),
        pytest.param(sample(9.0, (249, 249, *(300,) * 8), 10), OUT, id="two-light-fruits"),
        pytest.param(
            sample(9.0, (249, *(1_300,) * 8, 2_000), 10), OUT, id="light-and-uneven-add-up"
        ),
        pytest.param(sample(9.0, 250, 10), EXTRA, id="250g-is-enough"),
        pytest.param(sample(9.0, (1_100, 1_350), 2), EXTRA, id="range-250-from-1.1kg"),
        pytest.param(sample(9.0, (1_100, 1_351), 2), OUT, id="range-251-from-1.1kg-50pct-off"),
        pytest.param(sample(9.0, (2_400, 3_000), 2), EXTRA, id="range-600-from-2.4kg"),
        pytest.param(sample(9.0, (600, 750), 2), EXTRA, id="range-150-from-600"),
        pytest.param(sample(9.0, (599, 700), 2), OUT, id="range-101-from-599-50pct-off"),
        pytest.param(
            sample(9.0, (599, *(650,) * 8, 700), 10), EXTRA, id="best-uniform-set-is-chosen"
        ),
        pytest.param(sample(9.0, 1_500, 20, shape=1), EXTRA, id="shape-5pct"),
        pytest.param(sample(9.0, 1_500, 20, shape=2), CLASS_I, id="shape-10pct"),
        pytest.param(sample(9.0, 1_500, 20, shape=3), OUT, id="shape-15pct"),
        pytest.param(sample(9.0, 1_500, 100, rot=1), CLASS_I, id="rot-1pct"),
        pytest.param(sample(9.0, 1_500, 50, rot=1), CLASS_II, id="rot-2pct"),
        pytest.param(sample(9.0, 1_500, 100, rot=3), OUT, id="rot-3pct"),
        pytest.param(sample(9.0, 1_500, 100, cracked=1), CLASS_I, id="crack-1pct"),
        pytest.param(sample(9.0, None, 10), OUT, id="no-weights"),
    ],
)
def test_unece_shaped_profile(graded: Sample, grade: Grade) -> None:
    assert UNECE.grade(graded).grade is grade


def test_unece_size_miss_is_explained() -> None:
    grading = UNECE.grade(sample(9.0, (249, 249, *(1_300,) * 7, 2_000), 10))
    assert grading.reason_en.endswith(
        "not Class II: 3 of 10 fruits (30.0%) miss the size rules (2 below 0.25 kg, "
        "1 outside the uniformity range); tolerance 10%; graded out of grade"
    )
    assert (
        "3/10 个果（30.0%）不合规格要求（低于 0.25 kg 的 2 个、超出整齐度范围的 1 个），允许 10%"
        in (grading.reason)
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: Sample(brix=()), "1 to 100 Brix readings", id="no-readings"),
        pytest.param(lambda: Sample(brix=(12.0,) * 101), "not 101", id="too-many-readings"),
        pytest.param(lambda: Sample(brix=(float("nan"),)), "outside 0-35", id="nan"),
        pytest.param(lambda: Sample(brix=(float("inf"),)), "outside 0-35", id="inf"),
        pytest.param(lambda: Sample(brix=(35.1,)), "35.1 is outside 0-35", id="above-35"),
        pytest.param(lambda: Sample(brix=(-0.1,)), "outside 0-35", id="negative"),
        pytest.param(lambda: Sample(brix=(True,)), "outside 0-35", id="bool"),
        pytest.param(
            lambda: Sample(brix=(12.0, 13.0), fruit_weights_g=(2_000,)),
            "1 fruit weights for 2 Brix readings",
            id="weights-not-one-per-fruit",
        ),
        pytest.param(
            lambda: Sample(brix=(12.0,), fruit_weights_g=(0,)), "outside 1-20000 g", id="0g"
        ),
        pytest.param(
            lambda: Sample(brix=(12.0,), fruit_weights_g=(20_001,)), "outside 1-20000", id="21kg"
        ),
        pytest.param(
            lambda: Sample(brix=(12.0,), fruit_weights_g=(2.5,)),  # type: ignore[arg-type]
            "whole grams",
            id="float-weight",
        ),
        pytest.param(
            lambda: Sample(brix=(12.0,), defects={"rot": -1}), "must be 0 to 1", id="neg-count"
        ),
        pytest.param(
            lambda: Sample(brix=(12.0,), defects={"rot": 2}), "must be 0 to 1", id="count>fruits"
        ),
        pytest.param(
            lambda: Sample(brix=(12.0, 12.0), defects={"rot": 1, "bruise": 2}),
            "3 defective fruits counted in a sample of 2",
            id="counts-add-up-above-fruits",
        ),
        pytest.param(lambda: Sample(brix=(12.0,), defects={"": 1}), "defect kind", id="no-kind"),
    ],
)
def test_sample_outside_the_rules_is_refused(make: Callable[[], Sample], message: str) -> None:
    with pytest.raises(InvalidSample, match=message):
        make()


@pytest.mark.parametrize(
    "accepted",
    [
        Sample(brix=(0.0,)),
        Sample(brix=(35.0,) * 100, fruit_weights_g=(20_000,) * 100),
        Sample(brix=(12, 13), fruit_weights_g=(1, 2), defects={"rot": 1, "bruise": 1}),
    ],
)
def test_sample_edges_are_accepted(accepted: Sample) -> None:
    assert accepted.fruits == len(accepted.brix)


def test_sample_is_frozen_against_later_changes() -> None:
    defects = {"bruise": 1}
    taken = Sample(brix=[12.0, 13.0], defects=defects)  # type: ignore[arg-type]
    defects["bruise"] = 2
    assert taken.brix == (12.0, 13.0)
    assert taken.defects == {"bruise": 1}
    with pytest.raises(TypeError):
        taken.defects["bruise"] = 3  # type: ignore[index]


def test_defect_kind_unknown_to_the_profile_is_refused() -> None:
    with pytest.raises(UnknownDefectKind) as unknown:
        MINQIN.grade(sample(15.0, 2_600, 5, hail=1, frost=1))
    assert str(unknown.value) == (
        "unknown defect kind 'frost', 'hail' for profile minqin-honeydew v1; "
        "known kinds: cracked, sunburn, bruise, scar, pest, rot"
    )
    with pytest.raises(UnknownDefectKind, match="known kinds: shape, skin, bruise, cracked, rot"):
        UNECE.grade(sample(9.0, 1_500, 5, sunburn=1))


@pytest.mark.parametrize("profile", [MINQIN, UNECE], ids=lambda p: p.profile_id)
def test_profile_round_trips_through_its_dict_and_json(profile: GradingProfile) -> None:
    data = profile.to_dict()
    assert GradingProfile.from_dict(data) == profile
    through_json = GradingProfile.from_dict(json.loads(json.dumps(data)))
    assert through_json == profile
    assert through_json.to_dict() == data
    assert through_json.digest == profile.digest


@pytest.mark.parametrize(
    ("profile", "digest"),
    [
        (MINQIN, "4277d809aed3b3d19fe0245b90344b02ed2238180c87480088e9b3feff7bf988"),
        (UNECE, "3ca8faf3097d8800e376bc198855158e1448f1ea21ec04026d009d97effb5c7e"),
    ],
    ids=["minqin-honeydew-v1", "unece-melons-v1"],
)
def test_a_shipped_profile_version_never_changes(profile: GradingProfile, digest: str) -> None:
    # Lots were graded under these exact versions: change a copy with a new version instead.
    assert profile.digest == digest


def test_digest_is_sha256_of_canonical_json() -> None:
    expected = hashlib.sha256(
        json.dumps(
            MINQIN.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    ).hexdigest()
    assert MINQIN.digest == expected == hashlib.sha256(canonical_json(MINQIN.to_dict())).hexdigest()


def test_digest_ignores_layout_but_not_policy(tmp_path: Path) -> None:
    # Given the shipped file rewritten with other comments, key order and number spelling
    data = MINQIN.to_dict()
    data["classes"][0]["min_brix"] = 14
    reordered = dict(reversed(list(data.items())))
    path = tmp_path / "same.yaml"
    path.write_text("# another layout\n" + json.dumps(reordered, ensure_ascii=False), "utf-8")
    # Then it is the same profile with the same digest
    assert load_profile(path).digest == MINQIN.digest
    # But a changed threshold changes the digest
    data["classes"][0]["min_brix"] = 14.5
    assert GradingProfile.from_dict(data).digest != MINQIN.digest


def _edited(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = copy.deepcopy(MINQIN.to_dict())
    edit(data)
    return data


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return apply


def _swap_classes(data: dict[str, Any]) -> None:
    data["classes"][0], data["classes"][1] = data["classes"][1], data["classes"][0]


def _add_uniform(data: dict[str, Any]) -> None:
    data["classes"][2]["uniform"] = True


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        pytest.param(_set("version", 0), "version: must be at least 1, not 0", id="version-0"),
        pytest.param(_set("version", "2"), "version: must be a whole number", id="version-str"),
        pytest.param(_drop("names"), "names: is missing", id="no-names"),
        pytest.param(_set("names.en", ""), "names.en: must be a non-empty string", id="empty-name"),
        pytest.param(_set("grades", []), "grades: unknown field; expected one of", id="typo-field"),
        pytest.param(
            _set("profile_id", "Minqin"), "profile_id: 'Minqin' must be lower-case", id="id"
        ),
        pytest.param(
            _set("brix.rounding", "up"),
            "brix.rounding: must be one of half_up, half_even",
            id="rounding",
        ),
        pytest.param(_set("brix.step", 0), "brix.step: must be more than 0", id="step-0"),
        pytest.param(
            _set("classes.0.min_brix", "14"), "classes[0].min_brix: must be a number", id="brix-str"
        ),
        pytest.param(
            _set("classes.0.min_brix", 36),
            "classes[0].min_brix: must be 0 to 35, not 36",
            id="brix-36",
        ),
        pytest.param(
            _set("classes.0.min_brix", 14.05),
            "classes[0].min_brix: 14.05 is not a multiple of the step 0.1",
            id="brix-step",
        ),
        pytest.param(
            _set("classes.1.min_brix", 15.0),
            "classes[1].min_brix: 15.0 is above extra's 14.0",
            id="class-i-sweeter",
        ),
        pytest.param(
            _swap_classes,
            "classes[1].grade: extra must come after class_i: best class first",
            id="order",
        ),
        pytest.param(
            _set("classes.0.grade", "out_of_grade"),
            "classes[0].grade: out_of_grade is the fallback",
            id="oog-class",
        ),
        pytest.param(
            _set("classes.0.grade", "premium"),
            "classes[0].grade: must be one of",
            id="unknown-grade",
        ),
        pytest.param(_set("classes", []), "classes: lists no class", id="no-classes"),
        pytest.param(
            _set("size_codes.0.code", 1),
            'size_codes[0].code: must be a short string (quote it: "1")',
            id="int-code",
        ),
        pytest.param(
            _set("size_codes.1.max_g", 2_600), "size_codes[1]: 2 overlaps 1", id="overlap"
        ),
        pytest.param(
            _set("size_codes.1.max_g", 2_000),
            "size_codes[1].max_g: 2000 must be above min_g 2000",
            id="empty-band",
        ),
        pytest.param(
            _set("classes.0.size_codes", ["1", "9"]),
            "classes[0].size_codes: '9' is not a size code of this profile",
            id="unknown-code",
        ),
        pytest.param(
            _set("classes.1.size_codes", ["2", "3"]),
            "classes[1].size_codes: must include every size code extra allows",
            id="narrower-sizes",
        ),
        pytest.param(
            _drop("classes.0.max_defect_percent.rot"),
            "classes[0].max_defect_percent.rot: is missing",
            id="no-rot-limit",
        ),
        pytest.param(
            _set("classes.0.max_defect_percent.hail", 0),
            "classes[0].max_defect_percent.hail: not a defect kind of this profile",
            id="unknown-kind",
        ),
        pytest.param(
            _set("classes.0.max_defect_percent.bruise", 101),
            "classes[0].max_defect_percent.bruise: must be 0 to 100, not 101",
            id="over-100",
        ),
        pytest.param(
            _set("classes.0.max_defect_percent.bruise", 6),
            "classes[0].max_defect_percent.bruise: 6% is above the total 5%",
            id="above-total",
        ),
        pytest.param(
            _set("classes.1.max_defect_percent.bruise", 4),
            "classes[1].max_defect_percent.bruise: 4% is stricter than extra's 5%",
            id="stricter",
        ),
        pytest.param(
            _set("classes.2.max_defect_percent.total", 9),
            "classes[2].max_defect_percent.total: 9% is stricter than class_i's 10%",
            id="total-stricter",
        ),
        pytest.param(
            _set("fallback", "class_ii"),
            "fallback: class_ii must be worse than the last class class_ii",
            id="fallback",
        ),
        pytest.param(
            _set("defect_kinds.0.kind", "total"),
            "defect_kinds[0].kind: 'total' must be lower-case",
            id="kind-total",
        ),
        pytest.param(
            _set("defect_kinds.1.kind", "cracked"),
            "defect_kinds[1].kind: 'cracked' is listed twice",
            id="kind-twice",
        ),
        pytest.param(
            _add_uniform, "classes[2].uniform: needs the profile's uniformity table", id="no-table"
        ),
        pytest.param(
            _set("uniformity", [{"from_g": 100, "max_range_g": 50}]),
            "uniformity[0].from_g: must be 0",
            id="table-start",
        ),
        pytest.param(
            _set("classes.0.size_tolerance_percent", -1),
            "classes[0].size_tolerance_percent: must be 0 to 100",
            id="tolerance",
        ),
        pytest.param(
            _set("classes.0.uniform", "yes"),
            "classes[0].uniform: must be true or false",
            id="uniform-str",
        ),
    ],
)
def test_profile_problems_are_named_by_field(
    edit: Callable[[dict[str, Any]], None], problem: str
) -> None:
    with pytest.raises(InvalidProfile) as invalid:
        GradingProfile.from_dict(_edited(edit), source="minqin-honeydew-v2.yaml")
    expected = f"minqin-honeydew-v2.yaml: {problem}"
    assert any(p.startswith(expected) for p in invalid.value.problems), invalid.value.problems


def test_every_problem_is_reported_at_once() -> None:
    def two_mistakes(data: dict[str, Any]) -> None:
        data["version"] = 0
        data["classes"][1]["min_brix"] = "twelve"

    with pytest.raises(InvalidProfile) as invalid:
        GradingProfile.from_dict(_edited(two_mistakes))
    assert len(invalid.value.problems) == 2
    assert str(invalid.value) == "; ".join(invalid.value.problems)


@pytest.mark.parametrize("data", [None, [], "profile"], ids=["empty", "list", "string"])
def test_a_file_that_is_not_a_mapping_is_refused(data: Any) -> None:
    with pytest.raises(InvalidProfile, match=r"x.yaml: \(top level\): must be a mapping"):
        GradingProfile.from_dict(data, source="x.yaml")


def test_inconsistent_profile_is_refused_when_constructed_directly() -> None:
    with pytest.raises(InvalidProfile, match="fallback: extra must be worse"):
        GradingProfile(
            profile_id="bad",
            version=1,
            names=MINQIN.names,
            description="",
            brix=MINQIN.brix,
            defect_kinds=MINQIN.defect_kinds,
            size_codes=MINQIN.size_codes,
            classes=MINQIN.classes,
            fallback=Grade.EXTRA,
        )


@pytest.mark.parametrize("name", ["minqin-honeydew.yaml", "unece-melons.yaml"])
def test_shipped_files_pass_the_check(name: str) -> None:
    assert check_profile_file(PROFILES_DIR / name) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("profile_id: [unclosed\n", "not valid YAML", id="syntax"),
        pytest.param("version: 1\nversion: 2\n", "found the key 'version' twice", id="dup-key"),
        pytest.param("- a\n- b\n", "(top level): must be a mapping", id="list"),
        pytest.param(
            "profile_id: x\nversion: 1\nnames: {zh: 甲, en: A}\nclasses: []\n",
            "classes: lists no class",
            id="no-classes",
        ),
    ],
)
def test_check_names_the_file_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "edited.yaml"
    path.write_text(text, encoding="utf-8")
    problems = check_profile_file(path)
    assert problems and all(p.startswith(f"{path}: ") for p in problems)
    assert any(problem in p for p in problems), problems


def test_check_of_a_missing_file_says_so(tmp_path: Path) -> None:
    [problem] = check_profile_file(tmp_path / "nope.yaml")
    assert problem.startswith(f"{tmp_path / 'nope.yaml'}: cannot read the file: ")


def _write(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_load_profiles_keys_by_id_and_version(tmp_path: Path) -> None:
    # Given the shipped profile and an edited copy with a bumped version and a stricter bar
    _write(tmp_path / "minqin-honeydew.yaml", MINQIN.to_dict())
    edited = _edited(_set("version", 2))
    edited["classes"][0]["min_brix"] = 14.5
    _write(tmp_path / "minqin-honeydew-v2.yml", edited)
    (tmp_path / "notes.txt").write_text("not a profile", encoding="utf-8")
    # When the folder is loaded
    loaded = load_profiles(tmp_path)
    # Then both versions are there and grade differently
    assert set(loaded) == {("minqin-honeydew", 1), ("minqin-honeydew", 2)}
    fruit = sample(14.2, 2_600, 5)
    assert loaded[("minqin-honeydew", 1)].grade(fruit).grade is EXTRA
    assert loaded[("minqin-honeydew", 2)].grade(fruit).grade is CLASS_I


def test_load_profiles_refuses_one_version_in_two_files(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", MINQIN.to_dict())
    _write(tmp_path / "b.yaml", _edited(_set("description", "changed without a new version")))
    with pytest.raises(InvalidProfile, match=r"version 1 is also in a\.yaml; bump the version"):
        load_profiles(tmp_path)


def test_load_profiles_reports_bad_files(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", _edited(_set("version", 0)))
    with pytest.raises(InvalidProfile, match=r"a.yaml: version: must be at least 1"):
        load_profiles(tmp_path)
    with pytest.raises(InvalidProfile, match="not a folder"):
        load_profiles(tmp_path / "missing")


def test_profile_lists_what_the_operator_counts() -> None:
    assert MINQIN.defect_kind_ids == ("cracked", "sunburn", "bruise", "scar", "pest", "rot")
    assert MINQIN.classes[0].min_brix == Decimal("14.0")
    assert UNECE.needs_fruit_weights
