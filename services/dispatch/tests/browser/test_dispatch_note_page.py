"""The dispatch note in headless Chromium: what a loaded truck carries, lot by lot, on paper.

Given a truck loaded with two merchants' goods, when its note is opened (in Chinese by default or
in English), then it names the truck, the visit and every lot with its farmer, variety, grade,
crates and kg, adds them up, leaves room to sign, and prints on A4 without its buttons.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from dispatch_browser_kit import Yard, trade
from playwright.sync_api import Page, expect

from melon_contracts.events import TradeExecuted
from melon_contracts.reference import Grade

pytestmark = pytest.mark.browser

PLATE = "甘H12345"
HALL_TZ = timezone(timedelta(hours=8))


def loaded_truck(yard: Yard) -> list[TradeExecuted]:
    """A reefer at bay 2, loaded with Lanzhou's two lots and Wuwei's one."""
    yard.check_in(PLATE, "8000", refrigerated=True, setpoint_c="8.0", destinations=("兰州", "武威"))
    goods = yard.trades(
        trade("M-LZ-01", "兰州", "1200.25", lot_id="L-0301", farmer_id="F-0011", crates=60),
        trade(
            "M-LZ-01",
            "兰州",
            "1500",
            lot_id="L-0302",
            farmer_id="F-0012",
            crates=75,
            variety="ganmibao",
            grade=Grade.EXTRA,
        ),
        trade(
            "M-WW-02",
            "武威",
            "1001",
            lot_id="L-0303",
            farmer_id="F-0013",
            crates=50,
            variety="yujinxiang",
            grade=Grade.CLASS_II,
        ),
    )
    yard.assign(PLATE, *goods)
    yard.to_bay(PLATE, 2)
    yard.loaded(PLATE)
    return goods


def note_path(plate: str = PLATE, **query: str) -> str:
    path = f"/trucks/{quote(plate)}/note"
    return f"{path}?{'&'.join(f'{k}={v}' for k, v in query.items())}" if query else path


ZH: dict[str, Any] = {
    "title": "发货单（随车单）",
    "hall": "民勤蜜瓜交易大厅",
    "rows": {
        "L-0301": ["L-0301", "F-0011", "西州蜜", "一级", "60", "1,200.25"],
        "L-0302": ["L-0302", "F-0012", "甘蜜宝", "特级", "75", "1,500"],
        "L-0303": ["L-0303", "F-0013", "玉金香", "二级", "50", "1,001"],
    },
    "details": {"reefer": "冷藏 8.0 °C", "bay": "2号位", "status": "已装完", "departed_at": "—"},
    "signatures": ["调度员", "司机", "收货人"],
}
EN: dict[str, Any] = {
    "title": "Dispatch note",
    "hall": "Melon Hall",
    "rows": {
        "L-0301": ["L-0301", "F-0011", "Xizhoumi", "Class I", "60", "1,200.25"],
        "L-0302": ["L-0302", "F-0012", "Ganmibao", "Extra", "75", "1,500"],
        "L-0303": ["L-0303", "F-0013", "Yujinxiang", "Class II", "50", "1,001"],
    },
    "details": {"reefer": "Reefer 8.0 °C", "bay": "Bay 2", "status": "Loaded", "departed_at": "—"},
    "signatures": ["Dispatcher", "Driver", "Receiver"],
}


READ_NOTE = """() => {
    const text = (node) => node.textContent.trim();
    const pairs = (selector, key) => Object.fromEntries(
        [...document.querySelectorAll(selector)]
            .map((n) => [n.dataset[key], text(n.querySelector("dd"))]));
    return {
        lang: document.documentElement.lang,
        hall: text(document.querySelector(".sheet-head .hall")),
        title: text(document.querySelector("h1")),
        number: text(document.getElementById("note-no")),
        details: pairs("#details [data-field]", "field"),
        merchants: [...document.querySelectorAll("section.assignment")].map((s) => ({
            heading: text(s.querySelector("h3")),
            lots: [...s.querySelectorAll("tbody tr")].map((r) => [...r.cells].map(text)),
            subtotal: [...s.querySelectorAll("tfoot td")].map(text),
        })),
        totals: pairs("#totals [data-total]", "total"),
        signatures: [...document.querySelectorAll(".signature .role")].map(text),
    };
}"""
"""The note as a reader sees it, in one look: the page is complete when it arrives."""

HALL_MINUTE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")


@pytest.mark.parametrize(("lang", "texts"), [("zh", ZH), ("en", EN)], ids=["zh", "en"])
def test_the_note_lists_every_lot_with_its_farmer_and_kg(
    yard: Yard, page: Page, lang: str, texts: dict[str, Any]
) -> None:
    loaded_truck(yard)
    visit = yard.visit(PLATE)
    # When the note is opened
    page.goto(note_path(lang="en") if lang == "en" else note_path())
    note = page.evaluate(READ_NOTE)
    # Then it is the hall's note for this visit, in the chosen language
    day = visit.checked_in.at.astimezone(HALL_TZ).strftime("%Y%m%d")
    assert (note["lang"], note["hall"], note["title"], note["number"]) == (
        "zh-CN" if lang == "zh" else "en",
        texts["hall"],
        texts["title"],
        f"{day}-{visit.visit_id[:8].upper()}",
    )
    details = note["details"]
    assert {field: details[field] for field in ("plate", "driver", "phone")} == {
        "plate": PLATE,
        "driver": "王师傅",
        "phone": "13909350001",
    }
    assert {field: details[field] for field in texts["details"]} == texts["details"]
    assert HALL_MINUTE.match(details["checked_in_at"]) and HALL_MINUTE.match(details["loaded_at"])
    # And every lot, grouped by merchant, with the farmer who grew it
    rows = texts["rows"]
    assert [(m["lots"], m["subtotal"]) for m in note["merchants"]] == [
        ([rows["L-0301"], rows["L-0302"]], ["135", "2,700.25"]),
        ([rows["L-0303"]], ["50", "1,001"]),
    ]
    assert "M-LZ-01" in note["merchants"][0]["heading"]
    assert "武威" in note["merchants"][1]["heading"]
    # And the totals add up, with the fill of the truck's capacity, and there is room to sign
    assert note["totals"] == {
        "total_crates": "185",
        "total_kg": "3,701.25",
        "capacity": "8,000",
        "fill": "46.3%",
    }
    assert note["signatures"] == texts["signatures"]


def test_the_note_prints_on_a4_without_its_buttons(yard: Yard, page: Page) -> None:
    loaded_truck(yard)
    page.goto(note_path())
    expect(page.locator("#print")).to_be_visible()
    page.click("#print")
    assert page.evaluate("window.__prints") == 1
    # When the page is printed
    page.emulate_media(media="print")
    # Then the buttons and the language switch are left off and the goods are on
    for selector in ("#print", "#back", "#lang-en", ".toolbar"):
        expect(page.locator(selector)).to_be_hidden()
    expect(page.locator('tr[data-lot="L-0303"]')).to_be_visible()
    expect(page.locator(".signature")).to_have_count(3)
    # And the sheet asks for A4 and fits on one page of it
    sizes = page.evaluate(
        """() => [...document.styleSheets].flatMap((sheet) => [...sheet.cssRules])
            .filter((rule) => rule instanceof CSSPageRule).map((rule) => rule.style.size)"""
    )
    assert [size.lower() for size in sizes] == ["a4"]
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    # And at A5's printable width nothing runs off the paper
    page.set_viewport_size({"width": 470, "height": 700})
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


def test_a_truck_that_came_back_has_a_note_for_each_visit(yard: Yard, page: Page) -> None:
    first_goods = loaded_truck(yard)
    first = yard.visit(PLATE)
    yard.depart(PLATE)
    # Given the same truck back the next trip with other goods
    yard.check_in(PLATE, "8000")
    [again] = yard.trades(trade("M-JQ-03", "酒泉", "900", lot_id="L-0404"))
    yard.assign(PLATE, again)
    # Then its note is the current visit's
    page.goto(note_path())
    expect(page.locator("tbody tr[data-lot]")).to_have_count(1)
    expect(page.locator('tr[data-lot="L-0404"]')).to_be_visible()
    expect(page.locator('[data-field="status"] dd')).to_have_text("已配货")
    # And the first trip's note is still there by its visit
    page.goto(note_path(visit=first.visit_id))
    expect(page.locator("tbody tr[data-lot]")).to_have_count(len(first_goods))
    expect(page.locator('[data-field="status"] dd')).to_have_text("已出场")
    expect(page.locator('[data-field="departed_at"] dd')).to_have_text(HALL_MINUTE)
    # And its language switch keeps the visit
    page.click("#lang-en")
    expect(page.locator("h1")).to_have_text("Dispatch note")
    expect(page.locator("tbody tr[data-lot]")).to_have_count(len(first_goods))


def test_a_note_for_a_truck_never_seen_is_a_page_for_people_and_json_for_programs(
    yard: Yard, page: Page
) -> None:
    response = page.goto(note_path("甘X00000"))
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("没有这辆车")
    expect(page.locator("#detail")).to_have_text("没有车辆 甘X00000 的进场记录。")
    expect(page.locator("#back")).to_have_attribute("href", "/dispatch")
    answer = httpx.get(f"{yard.url}{note_path('甘X00000')}", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"] == "unknown_truck"
    # And another truck's visit is not this truck's note
    visit_id = yard.check_in(PLATE)["visit_id"]
    response = page.goto(note_path("甘X00000", visit=visit_id))
    assert response is not None and response.status == 404
