"""The kill soak without a hall: its schedule, its clients' bookkeeping, and its judge, which must
name what is lost, doubled or broken when the records show it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest

from melon_contracts.commands import CancelBid, OfferLot, PlaceBid
from melon_contracts.events import (
    BidUpdated,
    LedgerRecord,
    LotGraded,
    LotWeighed,
    QualitySample,
    ShipmentAssigned,
    ShipmentLine,
    TradeExecuted,
    TruckCheckedIn,
    TruckStatusChanged,
)
from melon_contracts.reference import Grade
from melon_devkit.simday.runner import Urls
from melon_devkit.soak.chaos import BROKER, KILLABLE, Restart, kill_schedule
from melon_devkit.soak.cli import Size, main, workload
from melon_devkit.soak.clients import (
    Acks,
    AssignmentAck,
    BidAck,
    CheckInAck,
    Day,
    Door,
    WeighingAck,
)
from melon_devkit.soak.invariants import Evidence, Live, Verdict, judge

AT = datetime(2026, 8, 12, 8, 0, tzinfo=UTC)
HASH = "0" * 64
PLATE = "甘H·A1234"


# -- the schedule ------------------------------------------------------------------------------


def test_kills_are_dealt_out_so_each_service_dies_about_as_often() -> None:
    schedule = kill_schedule(seed=4, kills=17, broker_kills=2, duration_s=600)
    counted = Counter(kill.target for kill in schedule)
    assert counted[BROKER] == 2
    assert sum(counted[name] for name in KILLABLE) == 17
    assert {counted[name] for name in KILLABLE} == {3, 4}
    assert [kill.at_s for kill in schedule] == sorted(kill.at_s for kill in schedule)
    assert all(0.08 * 600 <= kill.at_s <= 0.85 * 600 for kill in schedule)
    assert all(kill.down_s > 0 for kill in schedule)


def test_the_same_seed_gives_the_same_kills_and_another_seed_others() -> None:
    first = kill_schedule(seed=4, kills=5, broker_kills=1, duration_s=100)
    assert first == kill_schedule(seed=4, kills=5, broker_kills=1, duration_s=100)
    assert first != kill_schedule(seed=5, kills=5, broker_kills=1, duration_s=100)
    assert sorted(k.target for k in first if k.target != BROKER) == sorted(KILLABLE)


def test_the_schedule_alone_starts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schedule-only", "--kills", "3", "--broker-kills", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count('"target"') == 4


def test_the_day_is_spread_over_the_run_with_changes_after_their_bids() -> None:
    size = Size(seed=2, kills=0, broker_kills=0, duration_s=300, lots=40, bids=18, trucks=5)
    day = workload(size, date(2026, 8, 12))
    moments = sorted(at for lots in day.lots.values() for at, _ in lots)
    assert len(moments) == 40 and set(day.lots) == {"ws-1", "ws-2"}
    assert moments[0] == 0 and moments[-1] <= 0.8 * 300
    placed = {deal.bid.bid_id: deal.at_s for deal in day.deals if deal.action == "place"}
    changes = [deal for deal in day.deals if deal.action != "place"]
    assert changes and all(deal.at_s > placed[deal.bid.bid_id] for deal in changes)
    assert all(d.price_fen_per_kg for d in changes if d.action == "amend")
    assert len(day.trucks) == 5 and len(day.plates) == 5


# -- the clients' bookkeeping ------------------------------------------------------------------


def day_with(handler: Any) -> Day:
    return Day(
        urls=Urls("http://ingest", "http://pricing", "http://dispatch", "http://scales"),
        acks=Acks(),
        began=0.0,
        op_timeout_s=5.0,
        harvest_date=date(2026, 8, 12),
        expires_at=(AT + timedelta(days=2)).isoformat(),
        say=lambda _: None,
        plates=frozenset({PLATE}),
        transport=httpx.MockTransport(handler),
    )


def test_a_request_without_an_answer_is_sent_again_until_it_is_acknowledged() -> None:
    tries: list[int] = []

    def hall(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        if len(tries) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(tries) == 2:
            return httpx.Response(503, json={"error": "broker_unavailable", "detail": "away"})
        return httpx.Response(201, json={"plate": PLATE, "visit_id": "v-1"})

    day = day_with(hall)
    with day.door() as door:
        answer = door.ask("check_in", "POST", "http://dispatch/trucks", {"plate": PLATE})
    day.note("check_in", answer, PLATE, lambda v: day.acks.check_ins.update({PLATE: v}))
    assert (answer.ok, answer.attempts, answer.unanswered) == (True, 3, 2)
    assert day.acks.sent_again["check_in"] == 2
    assert day.acks.server_errors["check_in 503"] == 1
    assert len(day.acks.acked_at) == 1


def test_a_refusal_after_a_lost_answer_is_ambiguous_never_acknowledged() -> None:
    tries: list[int] = []

    def hall(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        if len(tries) == 1:
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(409, json={"error": "truck_already_in_yard", "detail": PLATE})

    day = day_with(hall)
    with day.door() as door:
        answer = door.ask("check_in", "POST", "http://dispatch/trucks", {"plate": PLATE})
    day.note("check_in", answer, PLATE, lambda v: day.acks.check_ins.update({PLATE: v}))
    assert answer.refused and answer.attempts == 2
    assert day.acks.check_ins == {}
    assert not day.acks.refused
    assert len(day.acks.ambiguous) == 1 and "truck_already_in_yard" in day.acks.ambiguous[0]


def test_a_plain_refusal_is_counted_by_its_code_and_not_sent_again() -> None:
    tries: list[int] = []

    def hall(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        return httpx.Response(409, json={"error": "credit_exceeded", "detail": "over"})

    day = day_with(hall)
    door = Door(day.acks, threading.Event(), 5.0, day.transport)
    answer = door.ask("bid", "POST", "http://pricing/bids", {})
    day.note("bid", answer, "B-1", lambda _: None)
    door.close()
    assert len(tries) == 1
    assert day.acks.refused == Counter({"bid credit_exceeded": 1})


# -- the judge ---------------------------------------------------------------------------------


def trail_record(seq: int, lot_id: str, station: str, ticket_no: int) -> LedgerRecord:
    return LedgerRecord(
        correlation_id=lot_id,
        seq=seq,
        kind="lot_weighed",
        actor="op-1",
        station_id=station,
        body={"station_id": station, "ticket_no": ticket_no, "lot": {"lot_id": lot_id}},
        prev_hash=HASH,
        hash=HASH,
    )


def weighed(lot_id: str, ticket_no: int, station: str = "ws-1") -> LotWeighed:
    return LotWeighed(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{lot_id}:{ticket_no}"),
        correlation_id=lot_id,
        lot_id=lot_id,
        station_id=station,
        ticket_no=ticket_no,
        ledger_seq=ticket_no,
        farmer_id="farmer-li",
        variety="xizhoumi",
        crates=10,
        mode="crates",
        gross_g=116_000,
        tare_g=16_000,
        net_g=100_000,
        division_g=200,
        sample=QualitySample(brix=(13.0,)),
        operator_id="op-1",
    )


def graded(lot_id: str) -> LotGraded:
    return LotGraded(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"graded:{lot_id}"),
        correlation_id=lot_id,
        lot_id=lot_id,
        station_id="ws-1",
        ticket_no=1,
        farmer_id="farmer-li",
        variety="xizhoumi",
        crates=10,
        net_g=100_000,
        grade=Grade.CLASS_I,
        profile_id="minqin-honeydew",
        profile_version=1,
        brix_mean=13.0,
        brix_samples=1,
        reason="一级",
    )


def offered(lot_id: str) -> OfferLot:
    return OfferLot(
        correlation_id=lot_id,
        lot_id=lot_id,
        farmer_id="farmer-li",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        crates=10,
        net_g=100_000,
        reserve_fen_per_kg=300,
    )


def placed(bid_id: str) -> PlaceBid:
    return PlaceBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id="merchant-xian",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        price_fen_per_kg=400,
        quantity_g=100_000,
    )


def bid_state(bid_id: str, filled_g: int, status: str = "resting") -> BidUpdated:
    return BidUpdated(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id="merchant-xian",
        book="xizhoumi.class_i",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        status=status,  # type: ignore[arg-type]
        price_fen_per_kg=400,
        quantity_g=100_000,
        filled_g=filled_g,
        remaining_g=100_000 - filled_g,
        amount_fen=filled_g * 400 // 1000,
    )


def trade(trade_id: str, lot_id: str, bid_id: str, crates: int, weight_g: int) -> TradeExecuted:
    return TradeExecuted(
        correlation_id=lot_id,
        trade_id=trade_id,
        book="xizhoumi.class_i",
        sequence=1,
        lot_id=lot_id,
        farmer_id="farmer-li",
        bid_id=bid_id,
        merchant_id="merchant-xian",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        crates=crates,
        weight_g=weight_g,
        price_fen_per_kg=400,
        amount_fen=weight_g * 400 // 1000,
        destination="西安",
        cold_chain=False,
        occurred_at=AT,
    )


def checked_in(at: datetime = AT) -> TruckCheckedIn:
    return TruckCheckedIn(
        correlation_id=PLATE,
        occurred_at=at,
        plate=PLATE,
        driver="王师傅",
        capacity_g=5_000_000,
        refrigerated=False,
        checked_in_by="gate-1",
    )


def assigned(visit: TruckCheckedIn, trade_id: str) -> ShipmentAssigned:
    return ShipmentAssigned(
        correlation_id=PLATE,
        occurred_at=AT + timedelta(minutes=1),
        visit_id=visit.event_id,
        plate=PLATE,
        shipment_id="merchant-xian|西安|ambient",
        merchant_id="merchant-xian",
        destination="西安",
        cold_chain=False,
        lines=(
            ShipmentLine(
                trade_id=trade_id,
                lot_id="MQ-1",
                farmer_id="farmer-li",
                variety="xizhoumi",
                grade=Grade.CLASS_I,
                crates=10,
                weight_g=100_000,
                traded_at=AT,
            ),
        ),
        weight_g=100_000,
        assigned_by="yard-1",
    )


def moved(visit: TruckCheckedIn, status: str, bay: int | None = None) -> TruckStatusChanged:
    return TruckStatusChanged(
        correlation_id=PLATE,
        occurred_at=AT + timedelta(minutes=2),
        visit_id=visit.event_id,
        plate=PLATE,
        status=status,  # type: ignore[arg-type]
        bay=bay,
        changed_by="yard-1",
    )


def clean() -> tuple[Acks, Evidence, Live]:
    """One lot weighed, graded, offered and sold to one bid, put on one truck: all acknowledged."""
    visit = checked_in()
    assignment = assigned(visit, "xizhoumi.class_i:1")
    acks = Acks(
        weighings={"MQ-1": WeighingAck("MQ-1", "ws-1", 1, 100_000, 10, repeated=False)},
        bids={"B-1": BidAck("B-1", "merchant-xian", "xizhoumi.class_i", 400, 100_000)},
        check_ins={PLATE: CheckInAck(PLATE, str(visit.event_id))},
        assignments={
            str(assignment.event_id): AssignmentAck(
                str(assignment.event_id),
                PLATE,
                str(visit.event_id),
                ("xizhoumi.class_i:1",),
                "desk",
            )
        },
    )
    evidence = Evidence(
        trail=[trail_record(1, "MQ-1", "ws-1", 1)],
        weighed=[weighed("MQ-1", 1)],
        graded=[graded("MQ-1")],
        commands=[offered("MQ-1"), placed("B-1")],
        trades=[trade("xizhoumi.class_i:1", "MQ-1", "B-1", 10, 100_000)],
        bid_states={"B-1": bid_state("B-1", 100_000, "filled")},
        yard=[visit, assignment],
    )
    live = Live(
        lots={"MQ-1": {"station_id": "ws-1", "ticket_no": 1}},
        assignments=[{"assignment_id": str(assignment.event_id), "standing": True}],
        trucks=[{"visit_id": str(visit.event_id), "status": "assigned"}],
    )
    return acks, evidence, live


def failed(verdict: Verdict) -> dict[str, list[str]]:
    return {f.name: f.examples for f in verdict.findings if not f.ok}


def test_a_day_whose_records_show_every_acknowledgement_once_passes() -> None:
    acks, evidence, live = clean()
    verdict = judge(acks, evidence, live, restarts=[Restart("ingest", 10, 1, True, 2.5)])
    assert failed(verdict) == {}
    assert (verdict.lost_total, verdict.duplicated_total) == (0, 0)


def test_an_acknowledged_weighing_missing_from_the_trail_and_the_topic_is_lost() -> None:
    acks, evidence, live = clean()
    acks.weighings["MQ-2"] = WeighingAck("MQ-2", "ws-1", 2, 100_000, 10, repeated=True)
    verdict = judge(acks, evidence, live)
    assert len(verdict.lost["weighing"]) == 2 and "MQ-2" in verdict.lost["weighing"][0]
    assert verdict.lost["grading"] and not verdict.ok


def test_a_lot_weighed_twice_is_duplicated_and_its_second_ticket_found() -> None:
    acks, evidence, live = clean()
    evidence.trail.append(trail_record(2, "MQ-1", "ws-1", 2))
    evidence.weighed.append(weighed("MQ-1", 2))
    verdict = judge(acks, evidence, live)
    assert len(verdict.duplicated["weighing"]) == 2
    assert "nothing acknowledged was doubled" in failed(verdict)


def test_a_gap_or_a_voided_number_in_a_station_s_tickets_fails() -> None:
    acks, evidence, live = clean()
    evidence.trail.append(trail_record(2, "MQ-9", "ws-1", 3))
    gap = failed(judge(acks, evidence, live))
    assert gap["tickets gapless per station"] == ["ws-1: ticket number(s) missing: [2]"]
    evidence.trail[-1] = evidence.trail[-1].model_copy(update={"kind": "trail_break"})
    voided = failed(judge(acks, evidence, live))
    assert "numbers were voided" in voided["tickets gapless per station"][0]


def test_a_lot_sold_beyond_its_crates_and_a_bid_beyond_its_quantity_fail() -> None:
    acks, evidence, live = clean()
    evidence.trades.append(trade("xizhoumi.class_i:2", "MQ-1", "B-1", 2, 20_000))
    problems = failed(judge(acks, evidence, live))
    assert "MQ-1: sold 12 crates" in problems["no lot oversold"][0]
    assert "B-1: trades 120000 g" in problems["no bid overfilled"][0]


def test_a_cancel_acknowledged_but_not_in_effect_is_lost() -> None:
    acks, evidence, live = clean()
    evidence.bid_states["B-1"] = bid_state("B-1", 100_000, "resting")
    evidence.commands.append(
        CancelBid(
            correlation_id="B-1",
            bid_id="B-1",
            merchant_id="merchant-xian",
            variety="xizhoumi",
            grade=Grade.CLASS_I,
        )
    )
    acks.cancels.add("B-1")
    verdict = judge(acks, evidence, live)
    assert verdict.lost["cancel"] == ["B-1: still resting after its cancel"]


def test_a_bid_acknowledged_but_never_sent_to_its_book_is_lost() -> None:
    acks, evidence, live = clean()
    acks.bids["B-2"] = BidAck("B-2", "merchant-xian", "xizhoumi.class_i", 400, 100_000)
    assert judge(acks, evidence, live).lost["bid"] == ["B-2: no PlaceBid on book.commands"]


def test_a_truck_standing_twice_for_one_arrival_is_duplicated() -> None:
    acks, evidence, live = clean()
    visit = evidence.yard[0]
    assert isinstance(visit, TruckCheckedIn)
    again = checked_in(AT + timedelta(minutes=5))
    evidence.yard += [moved(visit, "loading", 1), moved(visit, "loaded"), moved(visit, "departed")]
    evidence.yard.append(again)
    verdict = judge(acks, evidence, live)
    assert verdict.duplicated["check_in"] == [f"{PLATE}: 2 check-ins stand for one arrival"]
    assert "dispatch agrees with its log" in failed(verdict)


def test_an_acknowledged_assignment_the_log_refuses_or_lacks_is_lost() -> None:
    acks, evidence, live = clean()
    visit = evidence.yard[0]
    assert isinstance(visit, TruckCheckedIn)
    second = assigned(visit, "xizhoumi.class_i:1")
    evidence.yard.append(second)
    acks.assignments[str(second.event_id)] = AssignmentAck(
        str(second.event_id), PLATE, str(visit.event_id), ("xizhoumi.class_i:1",), "suggestion"
    )
    verdict = judge(acks, evidence, live)
    assert "ShipmentAlreadyAssigned" in verdict.lost["assignment"][0]
    assert verdict.duplicated["assignment"]  # one trade acknowledged on two assignments


def test_a_process_that_never_came_back_or_died_unkilled_fails() -> None:
    acks, evidence, live = clean()
    restarts = [
        Restart("dispatch", 30, 1, planned=True, recovery_s=None, note="not ready after 120s"),
        Restart("gateway", 50, 0, planned=False, recovery_s=3.0, note="exited on its own"),
    ]
    problems = failed(judge(acks, evidence, live, restarts=restarts))
    assert set(problems) == {"every process came back", "no process died unkilled"}


def test_audit_and_replay_verdicts_are_part_of_the_judgement() -> None:
    acks, evidence, live = clean()

    class Differs:
        differences: ClassVar[list[str]] = ["trade xizhoumi.class_i:7 is missing from trades"]

        def summary(self) -> str:
            return "1 difference"

    problems = failed(judge(acks, evidence, live, audit=(1, "seq 4: altered"), replay=Differs()))
    assert problems["audit trail intact"] == ["seq 4: altered"]
    assert problems["replay matches the topics"] == Differs.differences


def test_operations_the_hall_never_answered_fail_the_soak() -> None:
    acks, evidence, live = clean()
    acks.gave_up["bid"] = 5
    problems = failed(judge(acks, evidence, live, day_completed=False))
    assert problems["every operation answered"] == [
        "bid: 5 operation(s)",
        "the clients were stopped by the run's deadline before the day was done",
    ]
