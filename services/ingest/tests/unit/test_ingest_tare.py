"""Tare arithmetic: crate tares on platform scales, two-pass and stored tares on truck scales."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.domain.errors import (
    InvalidLot,
    InvalidPlate,
    InvalidTare,
    NetNotPositive,
    NoOpenWeighIn,
    NoStoredTare,
    UnknownCrateType,
    VehicleAlreadyWeighedIn,
)
from ingest.domain.tare import (
    DEFAULT_CRATE_TARES,
    CrateTares,
    Net,
    VehiclePasses,
    WeighIn,
    crate_net,
    normalise_plate,
)

TARES = CrateTares({"plastic-crate": 1_600, "carton": 600})


def test_the_parks_default_crate_tares() -> None:
    assert dict(DEFAULT_CRATE_TARES) == {"basket": 1_200, "carton": 600, "plastic-crate": 1_600}


def test_with_tare_returns_a_new_table_and_leaves_the_old_one() -> None:
    # Given the tare table, When the cooperative reweighs its plastic crates
    changed = TARES.with_tare("plastic-crate", 1_650).with_tare("basket", 1_200)
    # Then the new table has the new tares and the old table is unchanged
    assert dict(changed) == {"basket": 1_200, "carton": 600, "plastic-crate": 1_650}
    assert TARES["plastic-crate"] == 1_600
    assert changed.without("basket") == CrateTares({"carton": 600, "plastic-crate": 1_650})


def test_tare_table_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        TARES["carton"] = 700  # type: ignore[index]


@pytest.mark.parametrize(
    ("crate_type", "tare_g", "message"),
    [
        pytest.param("carton", 0, "1 g to 50 kg, not 0 g", id="zero"),
        pytest.param("carton", 50_001, "1 g to 50 kg, not 50001 g", id="over-50-kg"),
        pytest.param("carton", -5, "1 g to 50 kg", id="negative"),
        pytest.param("carton", True, "whole grams", id="bool"),
        pytest.param("carton", 1.5, "whole grams", id="float"),
        pytest.param("", 600, "must be an identifier", id="empty-type"),
        pytest.param("paper box", 600, "must be an identifier", id="space-in-type"),
        pytest.param("-crate", 600, "must be an identifier", id="leading-dash"),
        pytest.param("x" * 65, 600, "must be an identifier", id="too-long"),
    ],
)
def test_crate_tare_outside_the_rules_is_refused(
    crate_type: str, tare_g: Any, message: str
) -> None:
    with pytest.raises(InvalidTare, match=message):
        TARES.with_tare(crate_type, tare_g)
    with pytest.raises(InvalidTare, match=message):
        CrateTares({crate_type: tare_g})


@pytest.mark.parametrize(
    ("crate_type", "tare_g"), [("carton", 1), ("carton", 50_000), ("bamboo.basket:v2_A", 1_200)]
)
def test_crate_tare_edges_are_accepted(crate_type: str, tare_g: int) -> None:
    assert TARES.with_tare(crate_type, tare_g).tare_of(crate_type) == tare_g


def test_unknown_crate_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownCrateType) as unknown:
        TARES.tare_of("sack")
    assert str(unknown.value) == (
        "unknown crate type 'sack'; crate types with a tare: carton, plastic-crate"
    )
    assert unknown.value.known == ("carton", "plastic-crate")
    with pytest.raises(UnknownCrateType, match="crate types with a tare: none"):
        CrateTares().tare_of("sack")


@pytest.mark.parametrize(
    ("gross_g", "crates", "crate_type", "net"),
    [
        pytest.param(576_000, 40, "plastic-crate", Net(576_000, 64_000, 512_000), id="40-crates"),
        pytest.param(10_600, 1, "carton", Net(10_600, 600, 10_000), id="one-carton"),
        pytest.param(64_001, 40, "plastic-crate", Net(64_001, 64_000, 1), id="one-gram-net"),
    ],
)
def test_crate_net_is_gross_less_crates_times_tare(
    gross_g: int, crates: int, crate_type: str, net: Net
) -> None:
    assert crate_net(gross_g, crates, crate_type, TARES) == net


@pytest.mark.parametrize(
    ("gross_g", "crates", "crate_type", "error", "message"),
    [
        pytest.param(100_000, 0, "carton", InvalidLot, "at least 1 crate, not 0", id="no-crates"),
        pytest.param(100_000, -2, "carton", InvalidLot, "at least 1 crate", id="negative-crates"),
        pytest.param(100_000, 3, "sack", UnknownCrateType, "unknown crate type", id="unknown"),
        pytest.param(
            64_000,
            40,
            "plastic-crate",
            NetNotPositive,
            "tare of 40 × plastic-crate (1.60 kg each) = 64.00 kg is not below the gross "
            "64.00 kg; check the number and type of crates",
            id="tare-equals-gross",
        ),
        pytest.param(
            50_000,
            40,
            "plastic-crate",
            NetNotPositive,
            "= 64.00 kg is not below the gross 50.00 kg",
            id="tare-above-gross",
        ),
    ],
)
def test_crate_net_refuses_impossible_lots(
    gross_g: int, crates: int, crate_type: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        crate_net(gross_g, crates, crate_type, TARES)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("gross_g", "tare_g", "net_g", "error"),
    [
        pytest.param(1000, 400, 500, InvalidLot, id="net-not-gross-less-tare"),
        pytest.param(1000, 1000, 0, NetNotPositive, id="zero-net"),
    ],
)
def test_net_holds_its_invariant(
    gross_g: int, tare_g: int, net_g: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        Net(gross_g, tare_g, net_g)


@pytest.mark.parametrize(
    ("typed", "filed"),
    [
        pytest.param("甘H12345", "甘H12345", id="as-printed"),
        pytest.param(" 甘h12345\t", "甘H12345", id="stripped-and-upper-cased"),
        pytest.param("gan-h 123ab", "GAN-H 123AB", id="ascii-upper-inner-space-kept"),
        pytest.param("甘ＡＢ1", "甘ＡＢ1", id="full-width-letters-untouched"),
    ],
)
def test_plates_are_normalised(typed: str, filed: str) -> None:
    assert normalise_plate(typed) == VehiclePasses.normalise(typed) == filed


@pytest.mark.parametrize("plate", ["", "   ", "甘", "甘H" + "1" * 15])
def test_plate_too_short_or_long_is_refused(plate: str) -> None:
    with pytest.raises(InvalidPlate, match="2 to 16 characters"):
        normalise_plate(plate)


def test_two_pass_weighing_gives_the_lot_its_net() -> None:
    # Given a loaded truck weighed in
    passes = VehiclePasses()
    passes.weigh_in("甘h12345", 18_460_000, ref="L-0042")
    assert passes.pending("甘H12345") == WeighIn("甘H12345", 18_460_000, "L-0042")
    # When it weighs out empty
    ref, net = passes.weigh_out(" 甘H12345 ", 8_120_000)
    # Then the lot's net is gross less the empty truck, and the weigh-in is closed
    assert (ref, net) == ("L-0042", Net(18_460_000, 8_120_000, 10_340_000))
    assert passes.pending("甘H12345") is None
    assert passes.open_weigh_ins() == ()


def test_a_truck_cannot_weigh_in_twice() -> None:
    passes = VehiclePasses()
    passes.weigh_in("甘H12345", 18_460_000, ref="L-0042")
    with pytest.raises(VehicleAlreadyWeighedIn) as refused:
        passes.weigh_in("甘h12345", 17_000_000, ref="L-0043")
    assert (refused.value.plate, refused.value.ref) == ("甘H12345", "L-0042")
    assert "already weighed in for L-0042" in str(refused.value)
    assert passes.pending("甘H12345") == WeighIn("甘H12345", 18_460_000, "L-0042")


def test_weigh_out_without_weigh_in_is_refused() -> None:
    with pytest.raises(NoOpenWeighIn, match="甘H12345 has no open weigh-in"):
        VehiclePasses().weigh_out("甘H12345", 8_000_000)


@pytest.mark.parametrize(
    ("tare_g", "error", "message"),
    [
        pytest.param(
            18_460_000,
            NetNotPositive,
            "tare 18460.00 kg of vehicle 甘H12345 is not below its weigh-in 18460.00 kg",
            id="not-unloaded",
        ),
        pytest.param(20_000_000, NetNotPositive, "was it unloaded?", id="heavier-on-the-way-out"),
        pytest.param(0, InvalidTare, "more than 0 kg", id="zero-tare"),
    ],
)
def test_weigh_out_that_leaves_no_net_is_refused_and_stays_open(
    tare_g: int, error: type[Exception], message: str
) -> None:
    passes = VehiclePasses()
    passes.weigh_in("甘H12345", 18_460_000, ref="L-0042")
    with pytest.raises(error, match=message):
        passes.weigh_out("甘H12345", tare_g)
    assert passes.pending("甘H12345") is not None


def test_weigh_in_without_weight_is_refused() -> None:
    with pytest.raises(InvalidLot, match="more than 0 kg"):
        VehiclePasses().weigh_in("甘H12345", 0, ref="L-1")


def test_stored_tare_completes_a_weighing() -> None:
    # Given a truck whose empty weight was stored
    passes = VehiclePasses()
    assert passes.stored_tare("甘H12345") is None
    passes.store_tare("甘h12345", 8_120_000)
    assert passes.stored_tare("甘H12345") == 8_120_000
    # When it weighs in loaded and out with its stored tare
    passes.weigh_in("甘H12345", 18_460_000, ref="L-0042")
    # Then the net comes from the stored tare
    assert passes.weigh_out("甘H12345") == ("L-0042", Net(18_460_000, 8_120_000, 10_340_000))


def test_stored_tare_can_be_replaced_and_cleared() -> None:
    passes = VehiclePasses()
    passes.store_tare("甘H12345", 8_120_000)
    passes.store_tare("甘H12345", 8_200_000)
    assert passes.stored_tare("甘H12345") == 8_200_000
    assert passes.clear_tare("甘h12345") == 8_200_000
    assert passes.stored_tare("甘H12345") is None
    assert passes.clear_tare("甘H12345") is None


def test_weigh_out_with_stored_tare_needs_one() -> None:
    passes = VehiclePasses()
    passes.weigh_in("甘H12345", 18_460_000, ref="L-0042")
    with pytest.raises(NoStoredTare, match="甘H12345 has no stored tare"):
        passes.weigh_out("甘H12345")
    assert passes.pending("甘H12345") is not None


@pytest.mark.parametrize(
    ("tare_g", "message"),
    [(0, "more than 0"), (-1, "more than 0"), (100_000_001, "at most 100 t"), (True, "whole")],
)
def test_stored_tare_outside_the_rules_is_refused(tare_g: Any, message: str) -> None:
    with pytest.raises(InvalidTare, match=message):
        VehiclePasses().store_tare("甘H12345", tare_g)


def test_cancel_drops_the_open_weigh_in() -> None:
    passes = VehiclePasses()
    passes.weigh_in("甘H12345", 18_460_000, ref="L-0042")
    passes.weigh_in("甘A00001", 12_000_000, ref="L-0043")
    assert [w.plate for w in passes.open_weigh_ins()] == ["甘A00001", "甘H12345"]
    assert passes.cancel("甘h12345") == "L-0042"
    assert passes.pending("甘H12345") is None
    with pytest.raises(NoOpenWeighIn, match="to cancel"):
        passes.cancel("甘H12345")
    # The plate may weigh in again
    passes.weigh_in("甘H12345", 18_000_000, ref="L-0044")
