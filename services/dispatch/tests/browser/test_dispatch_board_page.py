"""The dispatch board in headless Chromium, on the real dispatch API.

Given trucks and waiting goods in the yard, when staff check trucks in, assign goods, accept
suggested loads and move trucks through the bays with clicks, then the API gets exactly those
decisions as the operator, and the board shows the yard as it then is: live, whoever changed it,
and with the reason in the page's language when a decision is refused.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from dispatch_browser_kit import OPERATOR_KEY, Traffic, Yard, trade
from playwright.sync_api import Locator, Page, Route, expect

from dispatch.domain.yard import Decision, TruckStatus

pytestmark = pytest.mark.browser

OPERATOR = "disp-07"


def open_board(page: Page, lang: str = "zh", operator: str | None = OPERATOR) -> None:
    """Open the board as a dispatcher who entered their staff id on this browser before."""
    if operator is not None:
        key, value = json.dumps(OPERATOR_KEY), json.dumps(operator)
        page.add_init_script(
            f"if (!localStorage.getItem({key})) localStorage.setItem({key}, {value});"
        )
    page.goto("/dispatch" if lang == "zh" else "/dispatch?lang=en")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def live(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-conn", "live")


def truck(page: Page, plate: str) -> Locator:
    return page.locator(f'#trucks .truck[data-plate="{plate}"]')


def shipment(page: Page, merchant: str) -> Locator:
    return page.locator(f'#shipments tbody[data-merchant="{merchant}"]')


def load(page: Page, plate: str) -> Locator:
    return page.locator(f'#suggestion .load[data-plate="{plate}"]')


def test_the_board_opens_in_chinese_and_switches_to_english(yard: Yard, page: Page) -> None:
    # Given a reefer in the yard and cold-chain goods waiting
    yard.check_in(
        "甘H12345", "12000.5", refrigerated=True, setpoint_c="8.0", destinations=("兰州", "西安")
    )
    yard.trades(trade("M-LZ-01", "兰州", "1234.5", crates=62, cold_chain=True))
    # When the board opens
    open_board(page)
    live(page)
    # Then it speaks Chinese and shows the truck, the goods and the bays
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#lang-zh")).to_have_attribute("aria-current", "page")
    expect(page.locator("h1")).to_have_text("民勤蜜瓜交易大厅 · 调度看板")
    expect(page.locator("#conn")).to_have_text("实时")
    card = truck(page, "甘H12345")
    expect(card.locator(".status")).to_have_text("等待")
    expect(card.locator(".load-text")).to_have_text("已配 0 / 12,000.5 kg")
    expect(card.locator(".reefer")).to_have_text("冷藏 8.0 °C · 可走冷链")
    expect(card.locator(".destinations")).to_have_text("兰州、西安")
    expect(card.locator(".who")).to_have_text("司机：王师傅 · 电话：13909350001")
    row = shipment(page, "M-LZ-01")
    expect(row.locator(".destination")).to_have_text("兰州")
    expect(row.locator("td.cold")).to_have_text("冷链")
    expect(row.locator("td.crates")).to_have_text("62")
    expect(row.locator("td.kg")).to_have_text("1,234.5")
    expect(page.locator("#bays li")).to_have_count(4)
    expect(page.locator('#bays li[data-bay="1"]')).to_have_text("1号位空闲")
    # When the English switch is pressed
    page.click("#lang-en")
    expect(page).to_have_url(re.compile(r"/dispatch\?lang=en$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # Then the labels, statuses and units speak English
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Melon Hall · Dispatch board")
    expect(card.locator(".status")).to_have_text("Waiting")
    expect(card.locator(".load-text")).to_have_text("0 / 12,000.5 kg assigned")
    expect(card.locator(".reefer")).to_have_text("Reefer 8.0 °C · Cold chain ready")
    expect(row.locator("td.cold")).to_have_text("Cold chain")
    expect(page.locator('#bays li[data-bay="1"]')).to_have_text("Bay 1Free")
    expect(page.locator("#conn")).to_have_text("Live")
    # And 中文 brings Chinese back
    page.click("#lang-zh")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(card.locator(".status")).to_have_text("等待")


def test_dwell_and_waiting_times_count_up_by_the_minute(yard: Yard, page: Page) -> None:
    # Given the board open on an empty yard
    page.clock.install(time=datetime.now(UTC))
    open_board(page)
    # When a truck checks in and goods are sold, they reach the board through the yard stream.
    # The stream's first snapshot sets the page's clock against the server's (once per
    # connection), so the page's clock may be moved only once the board has shown something
    # that came through the stream: moved before, the snapshot would take the minutes back.
    yard.check_in("甘H12345")
    yard.trades(trade("M-LZ-01", minutes_ago=7))
    dwell = truck(page, "甘H12345").locator(".dwell [data-since]")
    waiting = shipment(page, "M-LZ-01").locator(".waiting [data-since]")
    expect(dwell).to_have_text("0 分钟")
    expect(waiting).to_have_text("7 分钟")
    # When time passes with no change in the yard
    page.clock.fast_forward("12:00")
    expect(dwell).to_have_text("12 分钟")
    expect(waiting).to_have_text("19 分钟")
    page.clock.fast_forward("01:00:00")
    expect(dwell).to_have_text("1 小时 12 分")


def test_a_truck_checked_in_through_the_gate_form_appears_in_the_yard(
    yard: Yard, page: Page, traffic: Traffic
) -> None:
    open_board(page, operator=None)
    page.fill("#ci-plate", "甘h67890")
    page.fill("#ci-driver", "李师傅")
    page.fill("#ci-phone", "13800001111")
    page.fill("#ci-capacity", "12000.5")
    page.check("#ci-refrigerated")
    page.fill("#ci-setpoint", "8.0")
    page.fill("#ci-destinations", "兰州，西安")
    # When the gate submits without a staff id, nothing is sent and the page asks for one
    page.click("#ci-submit")
    expect(page.locator("#error-title")).to_have_text(
        "请先在右上角填写操作员工号（字母或数字开头）"
    )
    expect(page.locator("#operator")).to_be_focused()
    assert traffic.to("/trucks") == []
    # When the staff id is entered and the form sent again
    page.fill("#operator", OPERATOR)
    page.click("#ci-submit")
    # Then the truck is in the yard, as typed, checked in by that operator
    expect(page.locator("#notice")).to_have_text("车辆 甘H67890 已登记进场")
    expect(page.locator("#error")).to_be_hidden()
    card = truck(page, "甘H67890")
    expect(card.locator(".status")).to_have_text("等待")
    expect(card.locator(".reefer")).to_have_text("冷藏 8.0 °C · 可走冷链")
    expect(card.locator(".destinations")).to_have_text("兰州、西安")
    expect(card.locator(".load-text")).to_have_text("已配 0 / 12,000.5 kg")
    [sent] = traffic.to("/trucks")
    assert sent.body == {
        "plate": "甘h67890",
        "driver": "李师傅",
        "phone": "13800001111",
        "capacity_kg": "12000.5",
        "refrigerated": True,
        "setpoint_c": "8.0",
        "destinations": ["兰州", "西安"],
        "checked_in_by": OPERATOR,
    }
    checked_in = yard.visit("甘H67890").checked_in
    assert (checked_in.capacity_g, checked_in.setpoint_tenths_c, checked_in.by) == (
        12_000_500,
        80,
        OPERATOR,
    )
    assert checked_in.destinations == {"兰州", "西安"}
    expect(page.locator("#ci-plate")).to_have_value("")
    # And the staff id is remembered on this browser
    page.reload()
    expect(page.locator("#operator")).to_have_value(OPERATOR)


def test_a_waiting_shipment_assigned_with_clicks_moves_onto_the_truck_and_back(
    yard: Yard, page: Page, traffic: Traffic
) -> None:
    # Given two trucks open for goods and one already loaded
    yard.check_in("甘H11111", "3000")
    yard.check_in("甘H22222", "10000", destinations=("兰州",))
    yard.check_in("甘H33333", "10000")
    [earlier] = yard.trades(trade("M-JQ-03", "酒泉", "500"))
    yard.assign("甘H33333", earlier)
    yard.to_bay("甘H33333", 1)
    yard.loaded("甘H33333")
    # And a merchant's two lots waiting for Lanzhou
    goods = yard.trades(
        trade("M-LZ-01", "兰州", "1200", lot_id="L-0101", farmer_id="F-0031"),
        trade("M-LZ-01", "兰州", "800.5", lot_id="L-0102", farmer_id="F-0032", crates=40),
    )
    open_board(page)
    row = shipment(page, "M-LZ-01")
    expect(row.locator("td.kg")).to_have_text("2,000.5")
    # When the lots are opened
    row.locator('[data-action="lots"]').click()
    expect(row.locator(".lots-table tbody tr")).to_have_count(2)
    expect(row.locator('tr[data-lot="L-0102"] td')).to_have_text(
        ["L-0102", "F-0032", "西州蜜", "一级", "40", "800.5"]
    )
    # And the dispatcher picks a truck: only those still open for goods are offered
    row.locator('[data-action="assign-open"]').click()
    choices = page.locator("#assign-truck option")
    expect(choices).to_have_count(2)
    expect(choices.nth(0)).to_have_text("甘H11111 · 等待 · 余 3,000 kg")
    expect(choices.nth(1)).to_have_text("甘H22222 · 等待 · 余 10,000 kg")
    page.select_option("#assign-truck", "甘H22222")
    row.locator('[data-action="assign-confirm"]').click()
    # Then the goods are on that truck and no longer waiting
    expect(page.locator("#notice")).to_have_text("已将 M-LZ-01 → 兰州 安排到 甘H22222")
    expect(row).to_have_count(0)
    expect(page.locator("#shipments-empty")).to_be_visible()
    card = truck(page, "甘H22222")
    expect(card.locator(".status")).to_have_text("已配货")
    expect(card.locator(".load-text")).to_have_text("已配 2,000.5 / 10,000 kg")
    expect(card.locator(".assignments li")).to_have_count(1)
    expect(card.locator(".assignments li .amount")).to_have_text("2,000.5 kg · 100 筐")
    [sent] = traffic.to("/assignments")
    assert sent.body == {
        "plate": "甘H22222",
        "trade_ids": [t.trade_id for t in goods],
        "assigned_by": OPERATOR,
    }
    [made] = yard.assignments("甘H22222")
    assert (made.decision, made.by) == (Decision.MANUAL, OPERATOR)
    assert {yard.holder(t) for t in goods} == {"甘H22222"}
    # When the dispatcher takes the goods back
    card.locator('[data-action="take-back"]').click()
    # Then they wait again and the truck is empty
    expect(page.locator("#notice")).to_have_text("已从 甘H22222 撤回 M-LZ-01 → 兰州")
    expect(shipment(page, "M-LZ-01")).to_be_visible()
    expect(card.locator(".status")).to_have_text("等待")
    assert traffic.to(f"/assignments/{made.assignment_id}/take-back")[0].body == {
        "by": OPERATOR,
        "reason": "",
    }
    assert {yard.holder(t) for t in goods} == {None}


def test_changes_by_another_dispatcher_appear_live_without_reload(yard: Yard, page: Page) -> None:
    goods = yard.trades(trade("M-WW-02", "武威", "900"))
    open_board(page)
    live(page)
    page.evaluate("window.__samePage = true")
    expect(shipment(page, "M-WW-02")).to_be_visible()
    # When a truck is checked in at the gate and a colleague assigns the goods to it
    yard.check_in("甘H22222")
    expect(truck(page, "甘H22222").locator(".status")).to_have_text("等待")
    yard.assign("甘H22222", *goods)
    # Then this board shows it without a reload
    expect(shipment(page, "M-WW-02")).to_have_count(0)
    expect(truck(page, "甘H22222").locator(".status")).to_have_text("已配货")
    # And the colleague's bay and a new trade arrive the same way
    yard.to_bay("甘H22222", 2)
    expect(page.locator('#bays li[data-bay="2"] .bay-truck')).to_have_text("甘H22222")
    expect(truck(page, "甘H22222").locator(".status")).to_have_text("装车中（2号位）")
    yard.trades(trade("M-LZ-01", "兰州", "500"))
    expect(shipment(page, "M-LZ-01").locator("td.kg")).to_have_text("500")
    assert page.evaluate("window.__samePage") is True
    expect(page.locator("#conn")).to_have_text("实时")


def stall_stream(route: Route) -> None:
    """The stream answers once and goes quiet, as on a poor office network."""
    route.fulfill(status=200, content_type="text/event-stream", body="retry: 600000\n\n")


@pytest.mark.parametrize(
    ("lang", "title", "detail", "hint"),
    [
        ("zh", "货物已被其他调度员安排", "已安排在车辆 甘H22222 上", "看板已刷新为最新情况"),
        (
            "en",
            "Already assigned by another dispatcher",
            "is already assigned to truck 甘H22222",
            "The board now shows the yard as it is",
        ),
    ],
)
def test_goods_another_dispatcher_took_first_are_refused_with_the_reason(
    yard: Yard, page: Page, traffic: Traffic, lang: str, title: str, detail: str, hint: str
) -> None:
    yard.check_in("甘H11111")
    yard.check_in("甘H22222")
    goods = yard.trades(trade("M-LZ-01", "兰州", "1500", lot_id="L-0201"))
    # Given a board that has not heard of the latest change yet
    page.route("**/yard/stream", stall_stream)
    open_board(page, lang)
    row = shipment(page, "M-LZ-01")
    row.locator('[data-action="assign-open"]').click()
    page.select_option("#assign-truck", "甘H11111")
    # When a colleague assigns the same goods to another truck first, and then this click lands
    yard.assign("甘H22222", *goods)
    row.locator('[data-action="assign-confirm"]').click()
    # Then the refusal is shown clearly, in the page's language
    error = page.locator("#error")
    expect(error).to_have_attribute("data-status", "409")
    expect(error).to_have_attribute("data-code", "shipment_already_assigned")
    expect(page.locator("#error-title")).to_have_text(title)
    expect(page.locator("#error-detail")).to_contain_text(detail)
    expect(page.locator("#error-hint")).to_have_text(hint)
    # And the board now shows the yard as it is
    expect(row).to_have_count(0)
    expect(truck(page, "甘H22222").locator(".assignments li")).to_have_count(1)
    expect(truck(page, "甘H11111").locator(".assignments li")).to_have_count(0)
    assert len(traffic.to("/assignments")) == 1
    assert yard.holder(goods[0]) == "甘H22222"


@pytest.mark.parametrize("yard", [{"auto_suggest": True}], indirect=True, ids=["auto-suggest"])
def test_accepting_the_suggestion_assigns_every_suggested_load(
    yard: Yard, page: Page, traffic: Traffic
) -> None:
    yard.check_in("甘H11111", "5000")
    yard.check_in("甘H22222", "3000", refrigerated=True, setpoint_c="8.0")
    goods = yard.trades(
        trade("M-LZ-01", "兰州", "4000"), trade("M-WW-02", "武威", "2500", cold_chain=True)
    )
    open_board(page)
    # Then the service's suggestion shows by itself, beside first-fit-decreasing's figures
    expect(load(page, "甘H11111").locator(".parts")).to_contain_text("M-LZ-01")
    expect(load(page, "甘H22222").locator(".parts")).to_contain_text("M-WW-02")
    expect(load(page, "甘H22222").locator(".fill-after")).to_have_text("装后 83.3%")
    figures = page.locator("#suggestion-figures")
    expect(figures.locator('[data-figure="loaded"] .plan')).to_have_text("6,500")
    expect(figures.locator('[data-figure="loaded"] .greedy')).to_have_text("6,500")
    expect(figures.locator('[data-figure="trucks"] .plan')).to_have_text("2")
    expect(page.locator("#suggestion .meta")).to_contain_text("first-fit-decreasing")
    suggestion = yard.service.latest_suggestion()
    assert suggestion is not None
    # When the dispatcher accepts it all
    page.click("#accept-all")
    # Then every load is assigned as suggested, by this operator
    expect(page.locator("#notice")).to_have_text("已采纳建议：2 项装车安排")
    expect(page.locator("#shipments-empty")).to_be_visible()
    for plate in ("甘H11111", "甘H22222"):
        expect(truck(page, plate).locator(".status")).to_have_text("已配货")
    [sent] = traffic.to(f"/suggestions/{suggestion.suggestion_id}/accept")
    assert sent.body == {"accepted_by": OPERATOR}
    made = yard.assignments("甘H11111") + yard.assignments("甘H22222")
    assert {(a.decision, a.suggestion_id, a.by) for a in made} == {
        (Decision.SUGGESTED, suggestion.suggestion_id, OPERATOR)
    }
    assert [yard.holder(t) for t in goods] == ["甘H11111", "甘H22222"]
    # And the board's suggestion is solved again by itself: nothing is left to load
    expect(page.locator("#suggestion")).to_contain_text("没有可装的货或可配货的车辆")


def test_accepting_a_suggestion_partly_overtaken_names_the_trucks_refused(
    yard: Yard, page: Page
) -> None:
    yard.check_in("甘H11111", "5000")
    yard.check_in("甘H22222", "5000")
    lanzhou, wuwei = yard.trades(trade("M-LZ-01", "兰州", "4000"), trade("M-WW-02", "武威", "3000"))
    suggestion = yard.service.suggestion()
    overtaken = next(
        ld.visit.plate for ld in suggestion.loads if lanzhou.trade_id in ld.parts[0].trade_ids
    )
    # Given a board showing that suggestion, not yet told of a colleague's decision
    page.route("**/yard/stream", stall_stream)
    open_board(page)
    expect(page.locator("#accept-all")).to_be_enabled()
    yard.check_in("甘H33333", "10000")
    yard.assign("甘H33333", lanzhou)
    # When the dispatcher accepts it all
    page.click("#accept-all")
    # Then what could still be assigned is, and the truck whose load was overtaken is named
    expect(page.locator("#error-title")).to_have_text("部分车辆未能采纳")
    expect(page.locator("#error-detail")).to_have_text(
        f"已采纳建议：1 项装车安排；{overtaken}：货物已被其他调度员安排"
    )
    expect(page.locator("#error-hint")).to_be_visible()
    expect(page.locator("#suggestion-stale")).to_be_visible()
    assert yard.holder(lanzhou) == "甘H33333"
    assert yard.holder(wuwei) not in (None, overtaken)


def test_a_dispatcher_accepts_one_trucks_load_and_edits_anothers(
    yard: Yard, page: Page, traffic: Traffic
) -> None:
    yard.check_in("甘H11111", "5000")
    yard.check_in("甘H22222", "5000")
    lanzhou, wuwei, jiuquan = yard.trades(
        trade("M-LZ-01", "兰州", "3000"),
        trade("M-WW-02", "武威", "2000"),
        trade("M-JQ-03", "酒泉", "4000"),
    )
    open_board(page)
    expect(page.locator("#suggestion")).to_have_text("尚无装车建议，点“重新计算”")
    expect(page.locator("#accept-all")).to_be_disabled()
    # When the dispatcher asks for a suggestion
    page.click("#recompute")
    expect(page.locator("#notice")).to_have_text("装车建议已重新计算")
    first = yard.service.latest_suggestion()
    assert first is not None
    # Every packing of 4000, 3000 and 2000 kg on two 5000 kg trucks puts two on one truck
    single = next(ld.visit.plate for ld in first.loads if len(ld.parts) == 1)
    double = next(ld.visit.plate for ld in first.loads if len(ld.parts) == 2)
    expect(load(page, double).locator(".parts li")).to_have_count(2)
    # And accepts one truck's load only
    load(page, single).locator('[data-action="accept-one"]').click()
    expect(page.locator("#notice")).to_have_text("已采纳建议：1 项装车安排")
    [accepted] = traffic.to(f"/suggestions/{first.suggestion_id}/accept")
    assert accepted.body == {"accepted_by": OPERATOR, "plates": [single]}
    assert yard.holder(jiuquan) == single
    # Then the rest of that suggestion is out of date and cannot be accepted
    expect(page.locator("#suggestion-stale")).to_be_visible()
    expect(load(page, double).locator('[data-action="accept-one"]')).to_be_disabled()
    # When it is solved again, and the dispatcher unticks Wuwei's goods from the load
    page.click("#recompute")
    expect(page.locator("#suggestion-stale")).to_have_count(0)
    second = yard.service.latest_suggestion()
    assert second is not None and second.suggestion_id != first.suggestion_id
    card = load(page, double)
    card.locator('[data-action="edit"]').click()
    expect(card.locator(".selected")).to_have_text("已选 5,000 kg")
    card.locator('li:has-text("M-WW-02") input.part-tick').uncheck()
    expect(card.locator(".selected")).to_have_text("已选 3,000 kg")
    card.locator('[data-action="edit-confirm"]').click()
    # Then only the ticked goods go on, recorded as an edited suggestion
    expect(page.locator("#notice")).to_have_text("已采纳建议：1 项装车安排")
    edited = traffic.to("/assignments")[-1]
    assert edited.body == {
        "plate": double,
        "trade_ids": [lanzhou.trade_id],
        "assigned_by": OPERATOR,
        "suggestion_id": second.suggestion_id,
    }
    [made] = yard.assignments(double)
    assert (made.decision, made.suggestion_id) == (Decision.EDITED, second.suggestion_id)
    assert yard.holder(wuwei) is None
    expect(shipment(page, "M-WW-02")).to_be_visible()


def test_a_truck_goes_to_a_bay_is_loaded_and_departs_with_clicks(
    yard: Yard, page: Page, traffic: Traffic
) -> None:
    yard.check_in("甘H11111")
    yard.check_in("甘H22222")
    mine, other = yard.trades(trade("M-LZ-01", "兰州", "2400"), trade("M-WW-02", "武威", "800"))
    yard.assign("甘H22222", mine)
    yard.assign("甘H11111", other)
    yard.to_bay("甘H11111", 1)
    open_board(page)
    card = truck(page, "甘H22222")
    # Given bay 1 is taken, the free bays are offered
    expect(card.locator(".bay-pick option")).to_have_text(["2号位", "3号位", "4号位"])
    # When the truck is sent to bay 3
    card.locator(".bay-pick").select_option("3")
    card.locator('[data-action="to-bay"]').click()
    expect(page.locator("#notice")).to_have_text("车辆 甘H22222 已进 3号位")
    expect(card.locator(".status")).to_have_text("装车中（3号位）")
    expect(page.locator('#bays li[data-bay="3"] .bay-truck')).to_have_text("甘H22222")
    expect(card.locator('[data-action="take-back"]')).to_have_count(1)
    # And marked loaded: its load is final and its bay free again
    card.locator('[data-action="loaded"]').click()
    expect(card.locator(".status")).to_have_text("已装完")
    expect(card.locator('[data-action="take-back"]')).to_have_count(0)
    expect(page.locator('#bays li[data-bay="3"] .bay-truck')).to_have_text("空闲")
    # And a double click on 出场 only asks to confirm
    card.locator('[data-action="depart"]').dblclick()
    expect(card.locator('[data-action="depart-confirm"]')).to_have_text("确认出场")
    expect(card.locator(".status")).to_have_text("已装完")
    # And it departs once confirmed
    card.locator('[data-action="depart-confirm"]').click()
    expect(page.locator("#notice")).to_have_text("车辆 甘H22222 已出场")
    expect(card).to_have_count(0)
    gone = page.locator('#departed-rows tr[data-plate="甘H22222"]')
    expect(gone).to_be_visible()
    # Then each step was the operator's, in order
    path = f"/trucks/{quote('甘H22222')}"
    assert [(s.path, s.body) for s in traffic.requests] == [
        (f"{path}/bay", {"bay": 3, "by": OPERATOR}),
        (f"{path}/loaded", {"by": OPERATOR}),
        (f"{path}/departure", {"by": OPERATOR}),
    ]
    history = yard.visit("甘H22222").history
    assert [(s.status, s.by) for s in history[2:]] == [
        (TruckStatus.LOADING, OPERATOR),
        (TruckStatus.LOADED, OPERATOR),
        (TruckStatus.DEPARTED, OPERATOR),
    ]
    # And its dispatch note is a click away
    href = gone.locator("a.note-link").get_attribute("href")
    assert href is not None
    page.goto(href)
    expect(page.locator("tbody tr[data-lot]")).to_have_count(1)
    expect(page.locator(f'tr[data-lot="{mine.lot_id}"] td.kg')).to_have_text("2,400")
