"""The operator console in headless Chromium against the real ingest app.

Given a scale the test plays, when an operator works the console (by keyboard where a weigh
station would: a barcode scanner types the tag and Enter), then the page shows what the API
decided and the API holds what the page showed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import pytest
from ingest_browser_kit import Hall, Lot, fill_lot, open_console, remember_operator
from playwright.sync_api import Page, expect

from ingest.entrypoints.pages import HALL_TIME, Lang, kg_text

pytestmark = pytest.mark.browser


def hall_today() -> str:
    """Today in the hall (the browser runs in Asia/Shanghai, as a weigh-station PC would)."""
    return datetime.now(HALL_TIME).date().isoformat()


def test_live_weight_follows_the_scale_without_reload_and_turns_green_at_rest(
    hall: Hall, page: Page
) -> None:
    open_console(page)
    page.evaluate("window.__samePage = true")
    # When a load lands and is still swinging
    hall.swing("ws-1", 250_000)
    # Then the readout shows it in the scale's resolution with an amber light
    expect(page.locator("#weight-value")).to_have_text("250.0")
    expect(page.locator("#light")).to_have_attribute("data-light", "amber")
    expect(page.locator("#scale-status")).to_have_text("晃动中")
    # When it has been at rest for the stability window
    hall.settle("ws-1", 612_400)
    # Then the light turns green, on the same page
    expect(page.locator("#weight-value")).to_have_text("612.4")
    expect(page.locator("#light")).to_have_attribute("data-light", "green")
    expect(page.locator("#scale-status")).to_have_text("稳定")
    assert page.evaluate("window.__samePage") is True


def _weigh_directly(hall: Hall) -> None:
    hall.settle("ws-1", 250_000)
    response = hall.post(
        "/stations/ws-1/weighings",
        {
            "lot_id": "L-API",
            "farmer_id": "F-1",
            "variety": "ganmibao",
            "crates": 10,
            "crate_type": "plastic-crate",
            "sample": {"brix": [13.0]},
            "operator_id": "op-1",
        },
    )
    assert response.status_code == 201, response.text
    hall.reading("ws-1", 250_000)  # the indicator goes on sending while the load stays


SCALE_STATES: list[tuple[str, Callable[[Hall], None], str, str]] = [
    ("motion", lambda hall: hall.swing("ws-1", 80_000), "amber", "晃动中"),
    ("stable", lambda hall: hall.settle("ws-1", 80_000), "green", "稳定"),
    ("empty", lambda hall: hall.settle("ws-1", 0), "off", "空秤（零点）"),
    ("overload", lambda hall: hall.reading("ws-1", None, overload=True), "red", "超载"),
    ("above-max", lambda hall: hall.settle("ws-1", 1_100_000), "red", "超载"),
    ("zero-drift", lambda hall: hall.settle("ws-1", 1_000), "red", "零点漂移，请卸货并置零"),
    ("taken", _weigh_directly, "grey", "已取重，请卸货回零"),
]


@pytest.mark.parametrize(
    ("play", "light", "status"),
    [case[1:] for case in SCALE_STATES],
    ids=[case[0] for case in SCALE_STATES],
)
def test_the_stable_light_tells_the_scale_state(
    hall: Hall, page: Page, play: Callable[[Hall], None], light: str, status: str
) -> None:
    open_console(page)
    play(hall)
    expect(page.locator("#light")).to_have_attribute("data-light", light)
    expect(page.locator("#scale-status")).to_have_text(status)


def test_a_keyboard_only_weighing_issues_a_ticket_and_shows_the_grade_when_it_arrives(
    hall: Hall, page: Page
) -> None:
    # Given a stable load and an operator id the PC remembers from earlier
    hall.settle("ws-1", 250_000)
    open_console(page)
    remember_operator(page, "op-3")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#operator_id")).to_have_value("op-3")
    # When the scanner types the tag and Enter, and the operator goes on with Tab and Enter
    expect(page.locator("#lot_id")).to_be_focused()
    keys = page.keyboard
    keys.type("L-0001")
    keys.press("Enter")
    expect(page.locator("#farmer_id")).to_be_focused()
    keys.type("F-7")
    keys.press("Tab")
    keys.type("三社")
    keys.press("Enter")
    expect(page.locator("#variety")).to_be_focused()
    keys.press("ArrowDown")
    expect(page.locator("#variety")).not_to_have_value("")
    keys.press("Tab")
    expect(page.locator("#harvest_date")).to_have_value(hall_today())
    keys.press("Tab")
    keys.type("40")
    keys.press("Tab")
    expect(page.locator("#crate_type")).to_be_focused()
    keys.press("Tab")
    keys.type("13.2 13.5,12.9 14.1")
    keys.press("Tab")
    keys.type("1650 1720 1580 1700")
    keys.press("Tab")
    keys.type("1")
    keys.press("Control+Enter")
    # Then the ticket is issued from the scale's weight and the Print button waits for Enter
    expect(page.locator("#result-no")).to_have_text("WS-1-000001")
    expect(page.locator("#print")).to_be_focused()
    lot = hall.get("/lots/L-0001").json()
    assert {k: lot[k] for k in ("farmer_id", "village_group", "crates", "gross_g")} == {
        "farmer_id": "F-7",
        "village_group": "三社",
        "crates": 40,
        "gross_g": 250_000,
    }
    assert lot["operator_id"] == "op-3"
    assert lot["sample"]["brix"] == [13.2, 13.5, 12.9, 14.1]
    first_defect = page.locator("#defects input").first.get_attribute("data-kind")
    assert lot["sample"]["defects"] == {first_defect: 1}
    expect(page.locator("#result-gross")).to_have_text("250.00 kg")
    expect(page.locator("#result-net")).to_have_text(kg_text(None, lot["net_g"]))
    expect(page.locator("#result-grade")).to_have_attribute("data-graded", "false")
    expect(page.locator("#result-grade")).to_have_text("待定级")
    # When the grader grades the lot
    assert hall.grade_all() == 1
    # Then the console shows the grade without being asked
    grade = hall.get("/lots/L-0001").json()["grade"]
    expect(page.locator("#result-grade")).to_have_attribute("data-graded", "true")
    expect(page.locator("#result-grade")).to_contain_text(grade["grade_zh"])
    expect(page.locator("#result-grade")).to_contain_text(
        f"{grade['profile_id']} v{grade['profile_version']}"
    )


@pytest.mark.parametrize(
    ("lang", "title"), [("zh", "秤未稳定"), ("en", "Scale not stable")], ids=["zh", "en"]
)
def test_a_swinging_scale_refuses_the_weighing_and_says_why(
    hall: Hall, page: Page, lang: Lang, title: str
) -> None:
    hall.swing("ws-1", 250_000)
    open_console(page, lang=lang)
    fill_lot(page, Lot("L-0002"))
    page.click("#confirm")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-title")).to_have_text(title)
    expect(page.locator("#error-detail")).to_contain_text("has not held")
    expect(page.locator("#result")).to_be_hidden()
    assert hall.get("/lots/L-0002").status_code == 404


def test_missing_entries_are_named_before_anything_is_sent(hall: Hall, page: Page) -> None:
    hall.settle("ws-1", 250_000)
    open_console(page)
    page.fill("#operator_id", "op-3")
    page.fill("#lot_id", "L-0003")
    page.fill("#brix", "13.2 abc")
    page.press("#brix", "Control+Enter")
    expect(page.locator("#error-title")).to_have_text("请检查输入")
    detail = page.locator("#error-detail")
    expect(detail).to_contain_text("农户编号：必填")
    expect(detail).to_contain_text("“abc”不是数字")
    expect(page.locator("#farmer_id")).to_be_focused()
    expect(page.locator("#farmer_id")).to_have_attribute("aria-invalid", "true")
    assert hall.get("/lots/L-0003").status_code == 404


def test_printing_opens_the_original_and_a_reprint_says_copy(hall: Hall, page: Page) -> None:
    hall.settle("ws-1", 250_000)
    open_console(page)
    fill_lot(page, Lot("L-0004"))
    # Enter on the last field submits
    page.locator("#defects input").last.press("Enter")
    expect(page.locator("#result-no")).to_have_text("WS-1-000001")
    # When the operator presses Enter on the focused Print button
    with page.expect_popup() as opened:
        page.keyboard.press("Enter")
    ticket = opened.value
    ticket.wait_for_url(re.compile(r"/stations/ws-1/tickets/1/prints/1\?lang=zh$"))
    # Then the ticket opens as the original and prints itself
    expect(ticket.locator("h1")).to_have_text("民勤蜜瓜交易大厅 过磅单")
    expect(ticket.locator(".mark")).to_have_text("原件 ORIGINAL")
    expect(ticket.locator(".ticket-no strong")).to_have_text("WS-1-000001")
    ticket.wait_for_function("window.__prints === 1")
    # And the form is clear for the next lot, the ticket still at hand for a reprint
    expect(page.locator("#lot_id")).to_have_value("")
    expect(page.locator("#lot_id")).to_be_focused()
    expect(page.locator("#print")).to_have_text("重印（副本）")
    expect(page.locator("#result-printed")).to_have_text("已打印第 1 次")
    # When it is printed again
    with page.expect_popup() as opened:
        page.click("#print")
    copy = opened.value
    copy.wait_for_url(re.compile(r"/prints/2\?lang=zh$"))
    # Then the copy says so, large
    expect(copy.locator(".mark.copy")).to_contain_text("副本 COPY")
    expect(copy.locator(".mark.copy")).to_contain_text("第2次打印")
    expect(copy.locator(".watermark")).to_have_text("副本 COPY")
    assert hall.get("/lots/L-0004").json()["prints"] == 2
    # And a ticket opened to look at, not to print, does not print
    page.goto("/stations/ws-1/tickets/1/prints/2?lang=en&noprint=1")
    expect(page.locator("h1")).to_have_text("Melon Hall weigh ticket")
    assert page.evaluate("window.__prints") == 0


LABELS = [
    ("label[for=farmer_id]", "农户编号", "Farmer household"),
    ("label[for=village_group]", "村民小组（社）", "Village group"),
    ("label[for=crates]", "筐数", "Crates"),
    ("#confirm", "确认过磅", "Confirm weighing"),
    ("#scale-heading", "实时重量", "Live weight"),
]


def test_the_english_switch_keeps_the_station_and_speaks_english(hall: Hall, page: Page) -> None:
    open_console(page, station="ws-2")
    for selector, zh, _ in LABELS:
        expect(page.locator(selector)).to_contain_text(zh)
    # When the operator switches to English
    page.get_by_role("link", name="English").click()
    # Then the same station is shown in English
    page.wait_for_url(re.compile(r"station=ws-2&lang=en$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#station")).to_have_value("ws-2")
    for selector, _, en in LABELS:
        expect(page.locator(selector)).to_contain_text(en)
    expect(page.get_by_label("Farmer household")).to_be_visible()
    expect(page.get_by_role("link", name="中文")).to_have_attribute(
        "href", "/console?station=ws-2&lang=zh"
    )


def test_escape_clears_the_form_for_the_next_lot(hall: Hall, page: Page) -> None:
    open_console(page)
    fill_lot(page, Lot("L-0005"))
    page.fill("#defect-cracked", "2")
    page.press("#brix", "Escape")
    for field in ("#lot_id", "#farmer_id", "#village_group", "#crates", "#brix", "#defect-cracked"):
        expect(page.locator(field)).to_have_value("")
    expect(page.locator("#variety")).to_have_value("")
    expect(page.locator("#harvest_date")).to_have_value(hall_today())
    expect(page.locator("#operator_id")).to_have_value("op-3")
    expect(page.locator("#lot_id")).to_be_focused()


def test_a_truck_is_weighed_in_loaded_and_out_empty(hall: Hall, page: Page) -> None:
    # Given the loaded truck at rest on the truck scale
    hall.settle("ts-1", 15_000_000)
    open_console(page, station="ts-1")
    expect(page.locator("#plate")).to_be_visible()
    expect(page.locator("#crate_type")).to_be_hidden()
    expect(page.locator("#confirm")).to_have_text("进场称重（毛重）")
    expect(page.locator("#weight-value")).to_have_text("15000")
    # When the operator weighs it in
    fill_lot(page, Lot("T-0001", crates="600", plate="甘H12345"))
    page.click("#confirm")
    # Then its gross is recorded and the truck waits to be weighed out
    expect(page.locator("#pending")).to_be_visible()
    expect(page.locator("#pending-text")).to_contain_text("甘H12345")
    expect(page.locator("#pending-text")).to_contain_text("15000.00 kg")
    expect(page.locator("#lot_id")).to_have_value("")
    # When it comes back empty after unloading and is weighed out
    hall.settle("ts-1", 0)
    hall.settle("ts-1", 5_000_000)
    expect(page.locator("#light")).to_have_attribute("data-light", "green")
    page.fill("#out_plate", "甘H12345")
    page.press("#out_plate", "Enter")
    # Then the ticket has gross, tare and net from the two passes
    expect(page.locator("#result-no")).to_have_text("TS-1-000001")
    expect(page.locator("#result-gross")).to_have_text("15000.00 kg")
    expect(page.locator("#result-tare")).to_have_text("5000.00 kg")
    expect(page.locator("#result-net")).to_have_text("10000.00 kg")
    expect(page.locator("#pending")).to_be_hidden()
    lot = hall.get("/lots/T-0001").json()
    assert (lot["plate"], lot["net_g"]) == ("甘H12345", 10_000_000)


def test_the_station_picker_switches_scale_and_form_and_is_remembered(
    hall: Hall, page: Page
) -> None:
    hall.settle("ts-1", 15_000_000)
    open_console(page, station="ws-1")
    expect(page.locator("#out-form")).to_be_hidden()
    # When the operator picks the truck scale
    page.select_option("#station", "ts-1")
    # Then the readout and the form follow it, and the address names it for a reload
    expect(page.locator("#scale-station")).to_have_text("ts-1")
    expect(page.locator("#weight-value")).to_have_text("15000")
    expect(page.locator("#out-form")).to_be_visible()
    expect(page.locator("#plate")).to_be_visible()
    expect(page.locator("#lang-en")).to_have_attribute("href", "/console?station=ts-1&lang=en")
    assert page.url.endswith("/console?station=ts-1&lang=zh")
    # And the console opened without a station comes back to it
    page.goto("/console")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#station")).to_have_value("ts-1")
