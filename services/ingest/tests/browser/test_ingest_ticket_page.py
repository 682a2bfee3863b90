"""The printable weigh ticket (磅单) as Chromium renders and prints it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ingest.entrypoints.pages import Lang, ticket_html

pytestmark = pytest.mark.browser


def a_view(**changes: Any) -> dict[str, Any]:
    """A lot as ``ticket_view`` shows it: a crate weighing at ws-1, not graded yet."""
    view: dict[str, Any] = {
        "lot_id": "L-0042",
        "status": "weighed",
        "station_id": "ws-1",
        "ticket_no": 42,
        "ledger_seq": 117,
        "mode": "crates",
        "plate": None,
        "farmer_id": "F-7",
        "village_group": "三社",
        "variety": "xizhoumi",
        "variety_zh": "西州蜜",
        "variety_en": "Xizhoumi",
        "harvest_date": "2026-07-15",
        "crates": 40,
        "crate_type": "plastic-crate",
        "gross_g": 612_400,
        "tare_g": 64_000,
        "net_g": 548_400,
        "gross_kg": "612.4",
        "tare_kg": "64",
        "net_kg": "548.4",
        "division_g": 200,
        "operator_id": "op-3",
        "weighed_at": "2026-07-15T03:12:09.250000+00:00",
        "prints": 1,
        "corrections": [],
        "grade": None,
    }
    view.update(changes)
    return view


GRADED = {
    "grade": "class_i",
    "grade_zh": "一级",
    "profile_id": "minqin-honeydew",
    "profile_version": 1,
    "brix_mean": 13.4,
    "brix_samples": 4,
    "reason": "糖度均值 13.4，达到一级",
    "reason_en": "mean Brix 13.4 meets Class I",
}

CASES: list[tuple[str, Lang, int, dict[str, Any], dict[str, str]]] = [
    (
        "zh-original-pending",
        "zh",
        1,
        {},
        {
            "h1": "民勤蜜瓜交易大厅 过磅单",
            ".mark": "原件 ORIGINAL",
            ".ticket-no strong": "WS-1-000042",
            ".weights": "毛重612.40 kg皮重64.00 kg净重548.40 kg",
            ".grading": "等级待定级",
            ".record": "过磅时间2026-07-15 11:12:09过磅员op-3审计序号117",
            ".lot": "品种西州蜜 (xizhoumi)",
        },
    ),
    (
        "en-copy-graded",
        "en",
        3,
        {"grade": GRADED, "status": "graded"},
        {
            "h1": "Melon Hall weigh ticket",
            ".mark.copy": "COPY 副本 (print 3)",
            ".watermark": "COPY 副本",
            ".grading": "GradeClass I",
            ".grading tr.reason": "mean Brix 13.4 meets Class I",
            ".lot": "VarietyXizhoumi (xizhoumi)",
            ".print-no": "Print 3",
        },
    ),
    (
        "zh-copy-corrected",
        "zh",
        2,
        {
            "grade": GRADED,
            "village_group": "四社",
            "corrections": [
                {
                    "seq": 130,
                    "changes": {"village_group": "四社"},
                    "reason": "登记错社",
                    "by": "op-9",
                    "at": "2026-07-15T05:00:00+00:00",
                }
            ],
        },
        {
            ".mark.copy": "副本 COPY（第2次打印）",
            ".grading": "定级方案minqin-honeydew v1",
            ".grading tr.reason": "糖度均值 13.4，达到一级",
            ".corrections": "更正 #130 村民小组：四社 · 原因：登记错社 · op-9 2026-07-15 13:00:00",
        },
    ),
    (
        "en-truck",
        "en",
        1,
        {"mode": "vehicle", "plate": "甘H12345", "crate_type": None, "ticket_no": 7},
        {
            ".ticket-no strong": "WS-1-000007",
            ".lot": "Plate甘H12345",
            ".mark": "ORIGINAL 原件",
        },
    ),
]


@pytest.mark.parametrize(
    ("lang", "print_no", "changes", "shown"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_ticket_shows_the_weighing_in_the_chosen_language(
    bare_page: Page, lang: Lang, print_no: int, changes: dict[str, Any], shown: dict[str, str]
) -> None:
    bare_page.set_content(ticket_html(a_view(**changes), print_no, lang))
    for selector, text in shown.items():
        expect(bare_page.locator(selector)).to_contain_text(text)
    expect(bare_page.locator(".watermark")).to_have_count(1 if print_no > 1 else 0)
    expect(bare_page.locator(".corrections")).to_have_count(1 if changes.get("corrections") else 0)
    # And it asks to be printed as soon as it has loaded
    bare_page.wait_for_function("window.__prints === 1")


def test_every_value_on_the_ticket_is_text_never_markup(bare_page: Page) -> None:
    hostile = a_view(
        farmer_id='<img src=x onerror="window.__owned = 1">',
        village_group="<script>window.__owned = 2</script>",
        corrections=[
            {"seq": 1, "changes": {"farmer_id": "</li><b>x</b>"}, "reason": "<i>r</i>", "by": "o"}
        ],
    )
    bare_page.set_content(ticket_html(hostile, 1, "zh"))
    expect(bare_page.locator(".lot")).to_contain_text('<img src=x onerror="window.__owned = 1">')
    expect(bare_page.locator(".lot")).to_contain_text("<script>window.__owned = 2</script>")
    expect(bare_page.locator(".corrections")).to_contain_text("</li><b>x</b>")
    assert bare_page.locator("img, .lot script, .corrections b, .corrections i").count() == 0
    assert bare_page.evaluate("window.__owned") is None


@pytest.mark.parametrize(
    ("paper", "size"),
    [("A5", {"format": "A5"}), ("80mm-roll", {"width": "80mm", "height": "400mm"})],
    ids=["A5", "80mm-roll"],
)
@pytest.mark.parametrize("print_no", [1, 2], ids=["original", "copy"])
def test_a_ticket_prints_on_one_sheet(
    bare_page: Page, paper: str, size: dict[str, str], print_no: int
) -> None:
    view = a_view(
        grade=GRADED,
        corrections=[
            {
                "seq": 130,
                "changes": {"village_group": "四社"},
                "reason": "登记错社",
                "by": "op-9",
                "at": "2026-07-15T05:00:00+00:00",
            }
        ],
    )
    bare_page.set_content(ticket_html(view, print_no, "zh"))
    pdf = bare_page.pdf(**size, print_background=True)  # type: ignore[arg-type]
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert pages == 1, f"the {paper} ticket takes {pages} pages"
