"""The hall's LED wall in headless Chromium on a real board feed.

Given board lines the feed holds or receives, when the wall is open, then it shows every book in
the hall's order in yuan/kg and kg, takes each change live without reloading, and fits twelve
books on a 1920x1080 screen.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Locator, Page, expect
from pricing_browser_kit import Hall, board_line, every_book, hall_today

from melon_contracts.reference import Grade

pytestmark = pytest.mark.browser


def open_wall(page: Page, lang: str = "zh") -> None:
    page.goto("/wall" if lang == "zh" else "/wall?lang=en")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("body")).to_have_attribute("data-conn", "live")


def cell(page: Page, book: str, column: str) -> Locator:
    return page.locator(f'#board-rows tr[data-book="{book}"] [data-col="{column}"]')


def main(page: Page, book: str, column: str) -> Locator:
    """A cell's figure, without the small line under it (bids count, percent change)."""
    return cell(page, book, column).locator(".main")


def sub(page: Page, book: str, column: str) -> Locator:
    return cell(page, book, column).locator(".sub")


def test_the_wall_shows_every_book_of_the_snapshot_in_the_hall_order(
    hall: Hall, page: Page
) -> None:
    # Given three books, published out of the hall's order
    hall.publish(
        board_line("yujinxiang", Grade.EXTRA, change=-25, previous_close=700, last=675),
        board_line("xizhoumi", Grade.CLASS_I),
        board_line("xizhoumi", Grade.EXTRA, best_bid=None, bids=0, depth_g=0, change=0),
    )
    # When the wall opens
    open_wall(page)
    # Then the rows follow the variety list, then the grades
    rows = page.locator("#board-rows tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-book") for i in range(3)] == [
        "xizhoumi.extra",
        "xizhoumi.class_i",
        "yujinxiang.extra",
    ]
    # And a line reads in yuan/kg with two decimals and kg as exact as it came
    book = "xizhoumi.class_i"
    expected = {
        "variety": "西州蜜",
        "grade": "一级",
        "best_bid": "5.60",
        "depth": "800",
        "offered": "1,250.5",
        "last": "5.50",
        "vwap": "5.53",
        "high": "5.80",
        "low": "5.20",
        "volume": "3,400",
        "change": "▲0.30",
    }
    for column, text in expected.items():
        expect(main(page, book, column)).to_have_text(text)
    expect(sub(page, book, "depth")).to_have_text("2 笔")
    expect(sub(page, book, "change")).to_have_text("+5.8%")
    # And red is up, green is down, as the hall reads a board
    expect(cell(page, book, "change")).to_have_attribute("data-direction", "up")
    expect(cell(page, "yujinxiang.extra", "change")).to_have_text("▼0.25-3.6%")
    expect(cell(page, "yujinxiang.extra", "change")).to_have_attribute("data-direction", "down")
    red, green = (
        cell(page, b, "change").evaluate("node => getComputedStyle(node).color")
        for b in (book, "yujinxiang.extra")
    )
    assert (red, green) == ("rgb(255, 59, 59)", "rgb(34, 214, 90)")
    expect(cell(page, "xizhoumi.extra", "best_bid")).to_have_text("—")
    expect(cell(page, "xizhoumi.extra", "change")).to_have_attribute("data-direction", "flat")
    # And the clock and the connection show
    expect(page.locator("#clock")).to_have_text(
        re.compile(rf"^{hall_today().isoformat()} \S+ \d\d:\d\d:\d\d$")
    )
    expect(page.locator("#conn")).to_have_text("实时")


def test_a_change_arrives_without_reload_and_flashes_the_changed_cell(
    hall: Hall, page: Page
) -> None:
    hall.publish(board_line("ganmibao", Grade.CLASS_I, best_bid=560))
    open_wall(page)
    page.evaluate("window.__samePage = true")
    book = "ganmibao.class_i"
    expect(cell(page, book, "best_bid")).to_have_text("5.60")
    # When a merchant outbids the book
    hall.publish(board_line("ganmibao", Grade.CLASS_I, best_bid=575, bids=3, depth_g=1_200_000))
    # Then the wall shows it on the same page, flashing the cells that changed (up is red)
    expect(cell(page, book, "best_bid")).to_have_text("5.75")
    expect(cell(page, book, "best_bid")).to_have_class(re.compile(r"\bflash-up\b"))
    expect(main(page, book, "depth")).to_have_text("1,200")
    expect(sub(page, book, "depth")).to_have_text("3 笔")
    expect(cell(page, book, "depth")).to_have_class(re.compile(r"\bflash\b"))
    assert "flash" not in (cell(page, book, "last").get_attribute("class") or "")
    # When the best bid falls back, the flash is green
    hall.publish(board_line("ganmibao", Grade.CLASS_I, best_bid=540))
    expect(cell(page, book, "best_bid")).to_have_text("5.40")
    expect(cell(page, book, "best_bid")).to_have_class(re.compile(r"\bflash-down\b"))
    # And a book that was not on the board gets its row in place
    hall.publish(board_line("ganmibao", Grade.EXTRA))
    expect(page.locator("#board-rows tr").first).to_have_attribute("data-book", "ganmibao.extra")
    assert page.evaluate("window.__samePage") is True


def test_an_empty_board_says_so_until_the_first_line(hall: Hall, page: Page) -> None:
    open_wall(page)
    expect(page.locator("#board-empty")).to_be_visible()
    hall.publish(board_line())
    expect(page.locator("#board-rows tr")).to_have_count(1)
    expect(page.locator("#board-empty")).to_be_hidden()


def test_day_figures_of_an_earlier_trading_day_do_not_show_as_today(hall: Hall, page: Page) -> None:
    # Given a book that last traded yesterday
    hall.publish(board_line(trading_day=hall_today() - timedelta(days=1)))
    open_wall(page)
    book = "xizhoumi.class_i"
    # Then its last price and bids stand, but today has no high, low, VWAP, volume or change
    expect(cell(page, book, "last")).to_have_text("5.50")
    expect(cell(page, book, "best_bid")).to_have_text("5.60")
    for column, text in {
        "high": "—",
        "low": "—",
        "vwap": "—",
        "volume": "0",
        "change": "—",
    }.items():
        expect(cell(page, book, column)).to_have_text(text)


def test_the_english_switch_relabels_the_wall_and_back(hall: Hall, page: Page) -> None:
    hall.publish(board_line("yujinxiang", Grade.OUT_OF_GRADE))
    open_wall(page)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#lang-zh")).to_have_attribute("aria-current", "page")
    # When the English switch is pressed
    page.click("#lang-en")
    expect(page).to_have_url(re.compile(r"/wall\?lang=en$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # Then the page, the names and the state speak English
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Melon Hall Live prices")
    expect(page.locator("thead")).to_contain_text("Best bid")
    expect(page.locator("thead")).to_contain_text("VWAP")
    book = "yujinxiang.out_of_grade"
    expect(cell(page, book, "variety")).to_have_text("Yujinxiang")
    expect(cell(page, book, "grade")).to_have_text("Out of grade")
    expect(page.locator("#conn")).to_have_text("Live")
    # And 中文 brings the Chinese wall back
    page.click("#lang-zh")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(cell(page, book, "grade")).to_have_text("等外")
    expect(page.locator("#conn")).to_have_text("实时")


@pytest.mark.parametrize("screen", [(1920, 1080)], indirect=True, ids=["1920x1080"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_twelve_books_fit_a_1920x1080_wall_without_scrolling(
    hall: Hall, page: Page, lang: str
) -> None:
    hall.publish(*every_book())
    open_wall(page, lang)
    expect(page.locator("#board-rows tr")).to_have_count(12)
    size = page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            scrollHeight: document.documentElement.scrollHeight,
            width: innerWidth,
            height: innerHeight,
            clipped: [...document.querySelectorAll('#board-rows td, #board-rows th')]
                .filter((node) => node.scrollWidth > node.clientWidth).length,
        })"""
    )
    assert size["scrollHeight"] <= size["height"], size
    assert size["scrollWidth"] <= size["width"], size
    assert size["clipped"] == 0, size
    # And the digits are big enough to read across the hall
    px = cell(page, "ganmibao.extra", "last").evaluate(
        "node => parseFloat(getComputedStyle(node).fontSize)"
    )
    assert px >= 36


def test_a_dropped_stream_reconnects_and_catches_up(hall: Hall, page: Page) -> None:
    hall.publish(board_line(best_bid=560))
    open_wall(page)
    # When the server ends the stream (as it does when the API shuts down)
    hall.feed.stop()
    hall.publish(board_line(best_bid=590))
    # Then the wall reconnects by itself and shows the line it missed
    expect(cell(page, "xizhoumi.class_i", "best_bid")).to_have_text("5.90", timeout=6_000)
    expect(page.locator("body")).to_have_attribute("data-conn", "live")
