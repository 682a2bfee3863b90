"""The simulated trading day without a hall: its plan, its clocks, its merchants' credit sense."""

from __future__ import annotations

import io
import itertools
import json
import re
import statistics
import threading
from collections import Counter
from datetime import date
from typing import Any

import httpx
import pytest

from melon_contracts.reference import Grade
from melon_contracts.units import amount_fen, yuan_to_fen
from melon_devkit.demo import DEMO_ACCOUNTS
from melon_devkit.simday.cli import main, parse_speed
from melon_devkit.simday.clock import DeadlineReached, EagerClock, ScaledClock
from melon_devkit.simday.plan import (
    CRATE_TARE_G,
    HOUR,
    STRATEGIES,
    VARIETY_TRAITS,
    Bid,
    DayPlan,
    DispatchPolicy,
    Station,
    arrival_intensity,
    default_reserves,
    make_plan,
)
from melon_devkit.simday.runner import Day, Urls, _place, fit_quantity_g

DAY = date(2026, 11, 30)


@pytest.fixture(scope="module")
def big_day() -> DayPlan:
    """Many lots, for their distributions; scales enough that the queue ends the same day."""
    scales = [Station(f"ws-{n}", 200, 1_000_000) for n in range(1, 13)]
    return make_plan(DAY, 11, lots=1500, bids=150, trucks=60, stations=scales)


def test_the_same_seed_and_date_give_the_same_plan() -> None:
    first = make_plan(DAY, 7, lots=40, bids=12, trucks=5)
    again = make_plan(DAY, 7, lots=40, bids=12, trucks=5)
    assert first == again
    assert json.dumps(first.to_dict(), ensure_ascii=False) == json.dumps(
        again.to_dict(), ensure_ascii=False
    )


@pytest.mark.parametrize(
    ("other_seed", "other_day"), [(8, DAY), (7, date(2026, 12, 1))], ids=["seed", "date"]
)
def test_another_seed_or_date_gives_another_day(other_seed: int, other_day: date) -> None:
    plan = make_plan(DAY, 7, lots=40, bids=12, trucks=5)
    other = make_plan(other_day, other_seed, lots=40, bids=12, trucks=5)
    assert [lot.arrives_at_s for lot in plan.lots] != [lot.arrives_at_s for lot in other.lots]
    assert [lot.gross_g for lot in plan.lots] != [lot.gross_g for lot in other.lots]
    assert {t.plate for t in plan.trucks}.isdisjoint(t.plate for t in other.trucks)


def test_the_same_households_come_every_day_of_a_seed() -> None:
    monday, tuesday = make_plan(DAY, 7, lots=40), make_plan(date(2026, 12, 1), 7, lots=40)
    assert monday.farmers == tuesday.farmers
    assert {lot.farmer_id for lot in monday.lots} <= {f.farmer_id for f in monday.farmers}


def test_ids_carry_the_date_and_the_seed_and_never_repeat() -> None:
    plan = make_plan(DAY, 7, lots=40, bids=12, trucks=8)
    assert [lot.lot_id for lot in plan.lots[:2]] == ["MQ-261130-7-0001", "MQ-261130-7-0002"]
    assert all(bid.bid_id.startswith("B-261130-7-") for bid in plan.bids)
    for ids in (
        [lot.lot_id for lot in plan.lots],
        [bid.bid_id for bid in plan.bids],
        [truck.plate for truck in plan.trucks],
    ):
        assert len(ids) == len(set(ids))
    days = [make_plan(date(2026, 11, d), 7, lots=5, bids=3, trucks=3) for d in range(1, 31)]
    every_id = [x.lot_id for p in days for x in p.lots] + [x.bid_id for p in days for x in p.bids]
    every_plate = [t.plate for p in days for t in p.trucks]
    assert len(every_id) == len(set(every_id))
    assert len(every_plate) == len(set(every_plate))


def test_lots_arrive_in_a_morning_rush_that_is_over_by_noon(big_day: DayPlan) -> None:
    by_hour = Counter(lot.arrives_at_s // HOUR for lot in big_day.lots)
    assert set(by_hour) <= set(range(5, 12))
    rush = by_hour[7] + by_hour[8]
    assert rush / len(big_day.lots) > 0.4
    assert min(by_hour[7], by_hour[8]) > max(by_hour[h] for h in (5, 6, 9, 10, 11))
    assert by_hour[5] < by_hour[6] < by_hour[7] and by_hour[9] > by_hour[10] > by_hour[11]


@pytest.mark.parametrize(
    ("at", "expected"),
    [("04:59", 0.0), ("07:00", 1.0), ("08:30", 1.0), ("10:00", 0.5), ("12:00", 0.0)],
)
def test_the_arrival_intensity_peaks_from_seven_to_nine(at: str, expected: float) -> None:
    hours, minutes = map(int, at.split(":"))
    assert arrival_intensity(hours * HOUR + minutes * 60) == pytest.approx(expected, abs=0.01)


def test_fruit_and_sugar_are_plausible_for_each_variety(big_day: DayPlan) -> None:
    for code, traits in VARIETY_TRAITS.items():
        lots = [lot for lot in big_day.lots if lot.variety == code]
        assert len(lots) > 100
        brix = [b for lot in lots for b in lot.brix]
        weights = [w for lot in lots for w in lot.fruit_weights_g]
        assert abs(statistics.mean(brix) - traits.brix) < 0.3
        assert min(brix) >= 0.0 and max(brix) <= 35.0
        assert abs(statistics.median(weights) / traits.fruit_g - 1) < 0.05
        assert 1_900 <= statistics.median(weights) <= 2_700
    shares = Counter(lot.variety for lot in big_day.lots)
    assert shares.most_common(1)[0][0] == "xizhoumi"
    defective = sum(1 for lot in big_day.lots if lot.defects) / len(big_day.lots)
    assert 0.05 < defective < 0.2


def test_every_grade_turns_up_and_the_forecast_follows_the_profile(big_day: DayPlan) -> None:
    grades = Counter(lot.expected_grade for lot in big_day.lots)
    assert set(grades) == {g.value for g in Grade}
    assert grades["class_i"] > grades["out_of_grade"]
    for lot in big_day.lots:
        mean = sum(lot.brix) / len(lot.brix)
        # The profile rounds the mean half up to 0.1 °Brix before comparing.
        if lot.expected_grade == "extra":
            assert mean >= 13.95 - 1e-9
        if mean < 9.95 - 1e-9:
            assert lot.expected_grade == "out_of_grade"


def test_a_lot_weighs_its_melons_plus_its_crates_to_the_scale_division(big_day: DayPlan) -> None:
    stations = {s.station: s for s in big_day.stations}
    for lot in big_day.lots:
        station = stations[lot.station]
        assert lot.gross_g == lot.net_g + lot.tare_g
        assert lot.tare_g == lot.crates * CRATE_TARE_G
        assert lot.gross_g % station.division_g == 0
        assert lot.gross_g <= station.max_g
        assert lot.crates >= 10
        # Four or five melons of the lot's size to a crate: 8 to 14 kg of fruit.
        assert 8_000 <= lot.net_g / lot.crates <= 14_000
    assert 25 <= statistics.mean(lot.crates for lot in big_day.lots) <= 45


def test_each_scale_weighs_one_lot_at_a_time_in_order_of_arrival(big_day: DayPlan) -> None:
    for station in big_day.stations:
        lots = [lot for lot in big_day.lots if lot.station == station.station]
        assert len(lots) > len(big_day.lots) / len(big_day.stations) / 2
        for before, after in itertools.pairwise(lots):
            assert before.ends_at_s <= after.starts_at_s
        for lot in lots:
            assert lot.arrives_at_s <= lot.starts_at_s < lot.ends_at_s


def test_merchants_bid_by_their_strategies(big_day: DayPlan) -> None:
    reserve = default_reserves()
    kinds = {s.merchant_id: s for s in STRATEGIES}
    by_kind = Counter(bid.strategy for bid in big_day.bids)
    assert set(by_kind) == {s.kind for s in STRATEGIES}
    for bid in big_day.bids:
        strategy = kinds[bid.merchant_id]
        above = bid.price_fen_per_kg - reserve[Grade(bid.grade)]
        assert Grade(bid.grade) in strategy.grades
        assert bid.destination in strategy.destinations
        assert bid.cold_chain == strategy.cold_chain
        assert bid.quantity_g >= 100_000 and bid.quantity_g % 10_000 == 0
        if strategy.kind == "amender":
            assert above < 0
            assert (bid.amend_at_s is None) != (bid.cancel_at_s is None)
            if bid.amend_price_fen_per_kg is not None:
                assert bid.amend_price_fen_per_kg > reserve[Grade(bid.grade)]
        else:
            assert above >= 0
        if strategy.kind == "shop":
            assert bid.quantity_g <= 400_000
    premium = [b for b in big_day.bids if b.strategy == "premium"]
    assert Counter(b.grade for b in premium).most_common(1)[0][0] == "extra"
    assert {b.destination for b in big_day.bids if b.strategy == "shop"} == {"杭州", "上海"}


def test_bids_follow_the_supply_of_their_book(big_day: DayPlan) -> None:
    supply: Counter[tuple[str, str]] = Counter()
    for lot in big_day.lots:
        supply[(lot.variety, lot.expected_grade)] += lot.net_g
    wanted: Counter[tuple[str, str]] = Counter()
    for bid in big_day.bids:
        wanted[(bid.variety, bid.grade)] += bid.quantity_g
    for book, grams in wanted.items():
        assert grams <= supply[book]
    first_weighed: dict[tuple[str, str], int] = {}
    for lot in sorted(big_day.lots, key=lambda lot: lot.ends_at_s):
        first_weighed.setdefault((lot.variety, lot.expected_grade), lot.ends_at_s)
    after = [b for b in big_day.bids if b.at_s > first_weighed[(b.variety, b.grade)]]
    assert len(after) / len(big_day.bids) > 0.7
    quartiles = statistics.quantiles([bid.at_s for bid in big_day.bids], n=4)
    assert quartiles[2] - quartiles[0] > HOUR
    assert max(bid.at_s for bid in big_day.bids) <= 12 * HOUR + 30 * 60


def test_trucks_come_sized_to_the_trade_and_a_third_of_them_cold(big_day: DayPlan) -> None:
    trucks = big_day.trucks
    reefers = [t for t in trucks if t.setpoint_c is not None]
    assert all(t.setpoint_c == "8.0" for t in reefers)
    assert 0.25 <= len(reefers) / len(trucks) <= 0.4
    assert all(1_500_000 <= t.capacity_g <= 30_000_000 for t in trucks)
    anywhere = [t for t in trucks if not t.destinations]
    assert 1 <= len(anywhere) <= len(trucks) / 4
    cold = {b.destination for b in big_day.bids if b.cold_chain}
    assert cold <= {d for t in reefers for d in t.destinations}
    merchant_places = {d for s in STRATEGIES for d in s.destinations}
    assert {d for t in trucks for d in t.destinations} <= merchant_places
    assert [t.arrives_at_s for t in trucks] == sorted(t.arrives_at_s for t in trucks)


def test_a_tiny_day_still_has_a_reefer_for_its_cold_chain_bids() -> None:
    plan = make_plan(DAY, 3, lots=6, bids=3, trucks=2)
    assert len(plan.lots) == 6 and 1 <= len(plan.bids) <= 3 and len(plan.trucks) == 2
    cold = {b.destination for b in plan.bids if b.cold_chain}
    reefers = [t for t in plan.trucks if t.setpoint_c]
    assert cold <= {d for t in reefers for d in t.destinations}
    assert any(not t.setpoint_c for t in plan.trucks)


def test_the_close_comes_after_everything_planned() -> None:
    plan = make_plan(DAY, 5, lots=60, bids=20, trucks=6)
    moments = [lot.ends_at_s for lot in plan.lots] + [t.arrives_at_s for t in plan.trucks]
    moments += [b.cancel_at_s or b.amend_at_s or b.at_s for b in plan.bids]
    assert max(moments) < plan.closes_at_s
    assert plan.closes_at_s % 1800 == 0


@pytest.mark.parametrize(
    ("fill", "waited_min", "closing", "ready"),
    [
        (0.85, 0, False, True),
        (0.5, 30, False, False),
        (0.5, 95, False, True),
        (0.1, 0, True, True),
        (0.0, 200, True, False),
    ],
)
def test_the_yard_office_loads_a_truck_when_full_enough_or_waited_long_enough(
    fill: float, waited_min: int, closing: bool, ready: bool
) -> None:
    assert DispatchPolicy().ready(fill, waited_min * 60, closing) is ready


@pytest.mark.parametrize(
    ("text", "speed"), [("max", None), ("MAX", None), ("1", 1.0), ("60", 60.0), ("0.5", 0.5)]
)
def test_speeds_are_a_positive_number_or_max(text: str, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-3", "fast", "nan", "inf"])
def test_a_speed_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(Exception, match=r"speed|number"):
        parse_speed(text)


class FakeTime:
    """Real time that passes only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("speed", [1.0, 60.0, 600.0])
def test_the_scaled_clock_runs_speed_simulated_seconds_per_real_second(speed: float) -> None:
    fake = FakeTime()
    clock = ScaledClock(
        7 * HOUR, speed, deadline_s=10_000, monotonic=fake.monotonic, sleep=fake.sleep
    )
    fake.now += 2.0
    assert clock.now() == pytest.approx(7 * HOUR + 2.0 * speed)
    began = fake.now
    clock.sleep_until("ws-1", 8 * HOUR)
    assert clock.now() == pytest.approx(8 * HOUR)
    assert fake.now - began == pytest.approx((HOUR - 2.0 * speed) / speed)
    assert max(fake.slept) <= 0.5


def test_the_scaled_clock_gives_up_at_the_deadline() -> None:
    fake = FakeTime()
    clock = ScaledClock(7 * HOUR, 1.0, deadline_s=5, monotonic=fake.monotonic, sleep=fake.sleep)
    with pytest.raises(DeadlineReached):
        clock.sleep_until("ws-1", 9 * HOUR)
    assert 5 <= fake.now - 1000.0 <= 6


def test_the_eager_clock_jumps_to_the_moment_an_idle_actor_waits_for() -> None:
    clock = EagerClock(6 * HOUR, deadline_s=5)
    clock.join("ws-1")
    clock.sleep_until("ws-1", 9 * HOUR)
    assert clock.now() == 9 * HOUR


def test_the_eager_clock_waits_for_a_busy_actor_until_its_hold_ends() -> None:
    clock = EagerClock(6 * HOUR, deadline_s=5)
    for actor in ("ws-1", "bids"):
        clock.join(actor)
    clock.hold("ws-1", 6 * HOUR + 300)
    reached: list[float] = []
    bidder = threading.Thread(
        target=lambda: (clock.sleep_until("bids", 7 * HOUR), reached.append(clock.now()))
    )
    bidder.start()
    bidder.join(timeout=0.3)
    # The weighing may still need 06:05, so the bid at 07:00 waits.
    assert bidder.is_alive() and clock.now() == 6 * HOUR + 300
    clock.leave("ws-1")
    bidder.join(timeout=2)
    assert reached == [7 * HOUR]


def test_the_eager_clock_lets_actors_run_side_by_side_within_a_hold() -> None:
    clock = EagerClock(6 * HOUR, deadline_s=5)
    for actor in ("ws-1", "ws-2"):
        clock.join(actor)
    clock.hold("ws-1", 6 * HOUR + 600)
    clock.sleep_until("ws-2", 6 * HOUR + 120)
    assert clock.now() == 6 * HOUR + 120


def test_the_eager_clock_gives_up_at_the_deadline_when_an_actor_never_waits() -> None:
    clock = EagerClock(6 * HOUR, deadline_s=0.3)
    clock.join("stuck")
    clock.join("bids")
    with pytest.raises(DeadlineReached):
        clock.sleep_until("bids", 7 * HOUR)


@pytest.mark.parametrize(
    ("remaining_yuan", "price_fen", "wanted_kg", "expected_kg"),
    [
        ("10000.00", 500, 3000, 2000),
        ("10000.00", 500, 1000, 900),
        ("999.99", 465, 3000, 210),
        ("400.00", 500, 3000, None),
        ("0.00", 500, 3000, None),
    ],
)
def test_a_merchant_short_of_credit_bids_what_the_credit_left_pays_for(
    remaining_yuan: str, price_fen: int, wanted_kg: int, expected_kg: int | None
) -> None:
    remaining = yuan_to_fen(remaining_yuan)
    fits = fit_quantity_g(remaining, price_fen, wanted_kg * 1000)
    assert fits == (None if expected_kg is None else expected_kg * 1000)
    if fits is not None:
        assert amount_fen(fits, price_fen) <= remaining


def test_a_bid_refused_for_credit_backs_off_to_what_the_merchant_can_pay() -> None:
    sent: list[dict[str, Any]] = []

    def pricing(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/me":
            return httpx.Response(200, json={"remaining_yuan": "2500.00"})
        body = json.loads(request.content)
        sent.append(body)
        if len(sent) == 1:
            return httpx.Response(
                409, json={"error": "credit_exceeded", "detail": "this bid may cost 9500 yuan"}
            )
        return httpx.Response(202, json={"bid_id": body["bid_id"], "status": "accepted"})

    plan = make_plan(DAY, 1, lots=0, bids=0, trucks=0)
    out = io.StringIO()
    transport = httpx.MockTransport(pricing)
    day = Day(plan, Urls.local(), EagerClock(8 * HOUR, 5), out, transport=transport)
    bid = Bid(
        "B-261130-1-001", "merchant-xian", "steady", 8 * HOUR, "xizhoumi", "class_i", 475,
        2_000_000, None, "西安", False,
    )  # fmt: skip
    with day.client() as http:
        _place(day, http, bid)
    assert [b["quantity_kg"] for b in sent] == ["2000", "520"]
    assert day.outcomes.placed == {bid.bid_id: 520_000}
    assert day.outcomes.refusals == Counter({"credit_exceeded": 1})
    assert "credit_exceeded" in out.getvalue() and "backs off to 520 kg" in out.getvalue()
    assert day.short_of_credit == {"merchant-xian"}


def test_a_merchant_without_credit_for_a_bid_says_so_and_places_none() -> None:
    def pricing(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/me":
            return httpx.Response(200, json={"remaining_yuan": "12.00"})
        return httpx.Response(409, json={"error": "credit_exceeded", "detail": "no credit"})

    plan = make_plan(DAY, 1, lots=0, bids=0, trucks=0)
    out = io.StringIO()
    day = Day(
        plan, Urls.local(), EagerClock(8 * HOUR, 5), out, transport=httpx.MockTransport(pricing)
    )
    bid = Bid(
        "B-261130-1-002", "merchant-lanzhou", "premium", 8 * HOUR, "xizhoumi", "extra", 745,
        500_000, 150_000, "兰州", True,
    )  # fmt: skip
    with day.client() as http:
        _place(day, http, bid)
    assert day.outcomes.placed == {}
    assert "12.00 yuan of credit left; no B-261130-1-002" in out.getvalue()


def test_a_merchant_once_short_of_credit_looks_before_bidding_again() -> None:
    asked: list[str] = []

    def pricing(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/me":
            return httpx.Response(200, json={"remaining_yuan": "40.00"})
        return httpx.Response(202, json={"status": "accepted"})

    plan = make_plan(DAY, 1, lots=0, bids=0, trucks=0)
    transport = httpx.MockTransport(pricing)
    day = Day(plan, Urls.local(), EagerClock(8 * HOUR, 5), io.StringIO(), transport=transport)
    day.short_of_credit.add("merchant-xian")
    bid = Bid(
        "B-261130-1-003", "merchant-xian", "steady", 8 * HOUR, "xizhoumi", "class_i", 475,
        1_000_000, None, "西安", False,
    )  # fmt: skip
    with day.client() as http:
        _place(day, http, bid)
    assert asked == ["/me"]
    assert day.outcomes.refusals == Counter()


def test_the_strategies_bid_with_the_demo_hall_s_merchant_accounts() -> None:
    merchants = {a[0] for a in DEMO_ACCOUNTS if a[3] == "merchant"}
    assert {s.merchant_id for s in STRATEGIES} <= merchants


def test_plan_only_prints_the_plan_as_json_without_touching_the_hall() -> None:
    out = io.StringIO()
    code = main(
        ["--plan-only", "--date", "2026-11-30", "--seed", "4", "--lots", "5", "--bids", "2",
         "--trucks", "1", "--ingest", "http://127.0.0.1:9"],
        out=out,
    )  # fmt: skip
    assert code == 0
    plan = json.loads(out.getvalue())
    assert plan == make_plan(DAY, 4, lots=5, bids=2, trucks=1).to_dict()
    assert plan["lots"][0]["lot_id"] == "MQ-261130-4-0001"
    assert re.fullmatch(r"\d\d:\d\d", plan["lots"][0]["arrives_at"])


@pytest.mark.parametrize("url", ["http://10.0.0.5:8001", "https://127.0.0.1:8001", "ftp://x"])
def test_the_hall_is_reached_on_127_0_0_1_only(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--plan-only", "--ingest", url])
    assert "127.0.0.1" in capsys.readouterr().err


def test_help_explains_the_day(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for word in ("--speed", "max", "--plan-only", "--ingest", "morning rush", "reefer", "close"):
        assert word in text
