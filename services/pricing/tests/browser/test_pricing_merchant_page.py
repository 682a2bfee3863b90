"""The merchant's desk in headless Chromium, on a real board feed and a stand-in merchant API.

Given a merchant with a token, when they sign in, bid, amend and cancel on the page, then the API
receives exactly what they entered with their token, and the page shows what the API answered:
bids, fills, trades, credit and refusals, in the language they chose.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Locator, Page, expect
from pricing_browser_kit import OTHER_TOKEN, TOKEN, Hall, Refusal, board_line

from melon_contracts.reference import Grade

pytestmark = pytest.mark.browser

TOKEN_KEY = "melon.pricing.token"


def sign_in(page: Page, token: str = TOKEN, lang: str = "zh") -> None:
    page.goto("/merchant" if lang == "zh" else "/merchant?lang=en")
    expect(page.locator("#token-form")).to_be_visible()
    page.fill("#token", token)
    page.click("#token-save")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")


def open_desk(page: Page) -> None:
    """Open the desk on a browser that already holds the token."""
    page.goto("/merchant")
    page.evaluate(f"token => localStorage.setItem('{TOKEN_KEY}', token)", TOKEN)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def bid_row(page: Page, bid_id: str) -> Locator:
    return page.locator(f'#bid-rows tr[data-bid="{bid_id}"]')


def test_a_merchant_signs_in_once_and_the_browser_remembers_the_token(
    hall: Hall, page: Page
) -> None:
    # When a merchant pastes their token
    sign_in(page)
    # Then the desk shows who they are and their credit, from GET /me with the token
    expect(page.locator("#merchant-name")).to_have_text("兰州瓜果商行 (M-LZ-01)")
    expect(page.locator("#credit-limit")).to_have_text("50,000.00")
    expect(page.locator("#credit-remaining")).to_have_text("50,000.00")
    assert {r.authorization for r in hall.desk.sent("GET", "/me")} == {f"Bearer {TOKEN}"}
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == TOKEN
    # And after a reload the desk opens without asking again
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")
    expect(page.locator("#token-form")).to_be_hidden()
    # When they sign out, the token is forgotten on this device
    page.click("#sign-out")
    expect(page.locator("#token-form")).to_be_visible()
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None


@pytest.mark.parametrize(
    ("lang", "message"),
    [("zh", "令牌无效或已失效，请重新登录"), ("en", "The token is missing or no longer valid")],
)
def test_a_wrong_token_is_refused_in_the_chosen_language(
    hall: Hall, page: Page, lang: str, message: str
) -> None:
    page.goto("/merchant" if lang == "zh" else "/merchant?lang=en")
    page.fill("#token", "tok-not-issued")
    page.click("#token-save")
    expect(page.locator("#error-title")).to_have_text(message)
    expect(page.locator("#error")).to_have_attribute("data-status", "401")
    expect(page.locator("#token-form")).to_be_visible()
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None


def test_placing_a_bid_sends_exactly_what_was_entered_and_shows_it_resting(
    hall: Hall, page: Page
) -> None:
    hall.publish(board_line("xizhoumi", Grade.CLASS_I, best_bid=560, last=550))
    sign_in(page)
    # When the merchant fills the bid form
    page.select_option("#variety", "xizhoumi")
    page.select_option("#grade", "class_i")
    expect(page.locator("#bid-market")).to_have_text("当前 最高买价 5.60 · 最新价 5.50")
    page.fill("#price", "5.7")
    page.fill("#quantity", "400.5")
    page.fill("#min_lot", "100")
    page.fill("#destination", "兰州")
    page.check("#cold_chain")
    page.click("#bid-submit")
    # Then the API got the bid with the token, in the strings typed (no float rounding)
    expect(page.locator("#notice")).to_contain_text("已提交")
    [sent] = hall.desk.sent("POST", "/bids")
    assert sent.authorization == f"Bearer {TOKEN}"
    body = dict(sent.body)
    assert re.fullmatch(r"B-[0-9a-f]{12}", body.pop("bid_id"))
    assert body == {
        "variety": "xizhoumi",
        "grade": "class_i",
        "price_yuan_per_kg": "5.7",
        "quantity_kg": "400.5",
        "min_lot_kg": "100",
        "destination": "兰州",
        "cold_chain": True,
    }
    # And "my bids" shows it resting, and the credit it holds is committed
    [bid_id] = hall.desk.bids
    row = bid_row(page, bid_id)
    expect(row).to_have_attribute("data-status", "resting")
    expect(row.locator(".status")).to_have_text("挂单中")
    expect(row.locator(".price")).to_have_text("5.70")
    expect(row.locator(".remaining")).to_have_text("400.5")
    expect(page.locator("#credit-committed")).to_have_text("2,282.85")
    expect(page.locator("#credit-remaining")).to_have_text("47,717.15")


def test_a_merchant_amends_then_cancels_a_resting_bid(hall: Hall, page: Page) -> None:
    hall.desk.rest(
        TOKEN,
        "B-amend-1",
        variety="ganmibao",
        grade="extra",
        price=Decimal("6.20"),
        quantity=Decimal("500"),
        filled=Decimal("120"),
    )
    open_desk(page)
    row = bid_row(page, "B-amend-1")
    expect(row.locator(".filled")).to_have_text("120")
    expect(row.locator(".remaining")).to_have_text("380")
    # When they amend the price and leave the quantity
    page.click("#amend-B-amend-1")
    expect(page.locator("#amend-price-B-amend-1")).to_have_value("6.20")
    expect(page.locator("#amend-quantity-B-amend-1")).to_have_value("380")
    page.fill("#amend-price-B-amend-1", "6.35")
    page.click("#save-B-amend-1")
    # Then only the price is sent, and the row shows the new price
    expect(row.locator(".price")).to_have_text("6.35")
    [patch] = hall.desk.sent("PATCH", "/bids/B-amend-1")
    assert patch.body == {"price_yuan_per_kg": "6.35"}
    assert patch.authorization == f"Bearer {TOKEN}"
    # When they cancel, the page asks once more before it sends
    page.click("#cancel-B-amend-1")
    expect(page.locator("#cancel-B-amend-1")).to_have_text("确认撤单")
    assert hall.desk.sent("POST", "/bids/B-amend-1/cancel") == []
    page.click("#cancel-B-amend-1")
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row.locator(".status")).to_contain_text("已撤单")
    expect(row.locator("button")).to_have_count(0)
    assert len(hall.desk.sent("POST", "/bids/B-amend-1/cancel")) == 1


REFUSED_CANCELS: list[tuple[str, str, Refusal, str, str]] = [
    ("403", "zh", Refusal(403, "not_your_bid", "not yours"), "这不是您的出价", "not yours"),
    ("404", "zh", Refusal(404, "unknown_bid", "no bid"), "没有这个出价", "no bid"),
    (
        "409-zh",
        "zh",
        Refusal(409, "bid_not_resting", "filled", "该出价已全部成交"),
        "该出价已不在挂单中",
        "该出价已全部成交",
    ),
    (
        "409-en",
        "en",
        Refusal(409, "bid_not_resting", "filled", "已全部成交"),
        "The bid is no longer resting",
        "filled",
    ),
    (
        "409-unknown-code",
        "en",
        Refusal(409, "book_closed", "the book is closed"),
        "Not allowed by the trading rules",
        "the book is closed",
    ),
    (
        "503",
        "en",
        Refusal(503, "broker_unavailable", "no ack"),
        "Message broker unavailable: nothing was sent, try again",
        "no ack",
    ),
]


@pytest.mark.parametrize(
    ("lang", "refusal", "title", "detail"),
    [case[1:] for case in REFUSED_CANCELS],
    ids=[case[0] for case in REFUSED_CANCELS],
)
def test_a_refused_cancel_says_why_in_the_chosen_language(
    hall: Hall, page: Page, lang: str, refusal: Refusal, title: str, detail: str
) -> None:
    hall.desk.rest(
        TOKEN,
        "B-9",
        variety="xizhoumi",
        grade="class_ii",
        price=Decimal("3.50"),
        quantity=Decimal("200"),
    )
    if lang == "zh":
        open_desk(page)
    else:
        sign_in(page, lang="en")
    page.click("#cancel-B-9")
    hall.desk.refusals["POST", "/bids/B-9/cancel"] = refusal
    page.click("#cancel-B-9")
    expect(page.locator("#error-title")).to_have_text(title)
    expect(page.locator("#error-detail")).to_have_text(detail)
    expect(bid_row(page, "B-9")).to_have_attribute("data-status", "resting")


def test_a_bid_beyond_the_credit_left_is_refused_and_nothing_rests(hall: Hall, page: Page) -> None:
    sign_in(page)
    page.fill("#price", "10")
    page.fill("#quantity", "6000")
    page.click("#bid-submit")
    expect(page.locator("#error-title")).to_have_text("超出剩余采购额度")
    expect(page.locator("#error-detail")).to_have_text("出价需 60000.00 元，剩余额度 50000.00 元")
    expect(page.locator("#bids-empty")).to_be_visible()
    assert hall.desk.bids == {}


@pytest.mark.parametrize(
    ("price", "quantity", "min_lot", "problem"),
    [
        ("", "100", "", "价格（元/kg）：必填"),
        ("5.555", "100", "", "价格（元/kg）：请填写大于 0、最多两位小数的数"),
        ("0", "100", "", "价格（元/kg）：请填写大于 0、最多两位小数的数"),
        ("5.50", "1.2345", "", "数量（kg）：请填写大于 0、最多三位小数的数"),
        ("5.50", "100", "150", "最小成交量不能大于数量"),
    ],
    ids=["no-price", "price-decimals", "zero-price", "quantity-decimals", "min-lot"],
)
def test_a_bid_the_page_can_see_is_wrong_is_not_sent(
    hall: Hall, page: Page, price: str, quantity: str, min_lot: str, problem: str
) -> None:
    sign_in(page)
    page.fill("#price", price)
    page.fill("#quantity", quantity)
    page.fill("#min_lot", min_lot)
    page.click("#bid-submit")
    expect(page.locator("#error-title")).to_have_text("输入无效")
    expect(page.locator("#error-detail")).to_contain_text(problem)
    assert hall.desk.sent("POST", "/bids") == []


def test_a_bid_sent_again_after_a_lost_answer_keeps_its_id(hall: Hall, page: Page) -> None:
    sign_in(page)
    hall.desk.lose_next_answer = True  # the API takes the bid, the answer never arrives intact
    page.fill("#price", "4.80")
    page.fill("#quantity", "250")
    page.click("#bid-submit")
    expect(page.locator("#error")).to_have_attribute("data-status", "503")
    # When the merchant presses the button again
    page.click("#bid-submit")
    expect(page.locator("#notice")).to_contain_text("已提交")
    # Then both tries carried the same id, and one bid rests
    first, second = hall.desk.sent("POST", "/bids")
    assert first.body["bid_id"] == second.body["bid_id"]
    assert len(hall.desk.bids) == 1
    expect(page.locator("#bid-rows tr")).to_have_count(1)


def test_fills_show_as_trades_when_the_book_moves_and_the_board_shows_my_books(
    hall: Hall, page: Page
) -> None:
    hall.desk.rest(
        TOKEN,
        "B-fill",
        variety="yujinxiang",
        grade="class_i",
        price=Decimal("4.50"),
        quantity=Decimal("1000"),
        destination="成都",
        cold_chain=True,
    )
    hall.publish(
        board_line("ganmibao", Grade.EXTRA),
        board_line("yujinxiang", Grade.CLASS_I, best_bid=450),
        board_line("xizhoumi", Grade.CLASS_II),
    )
    open_desk(page)
    # Then the board shows the book this merchant trades; all books on request
    expect(page.locator("#board-rows tr")).to_have_count(1)
    expect(page.locator("#board-rows tr")).to_have_attribute("data-book", "yujinxiang.class_i")
    page.uncheck("#only-mine")
    expect(page.locator("#board-rows tr")).to_have_count(3)
    page.check("#only-mine")
    expect(page.locator("#board-rows tr")).to_have_count(1)
    # When the matcher fills 612.4 kg of the bid and the book's line moves
    hall.desk.fill("B-fill", "612.4", lot_id="L-0042", crates=30)
    hall.publish(board_line("yujinxiang", Grade.CLASS_I, best_bid=450, last=450))
    # Then, without a reload, the trade, the fill and the money spent show
    trade = page.locator("#trade-rows tr")
    expect(trade).to_have_count(1)
    expect(trade).to_contain_text("L-0042")
    expect(trade).to_contain_text("玉金香 一级")
    expect(trade).to_contain_text("612.4")
    expect(trade.locator(".amount")).to_have_text("2,755.80")
    expect(trade).to_contain_text("成都")
    expect(bid_row(page, "B-fill").locator(".filled")).to_have_text("612.4")
    expect(bid_row(page, "B-fill").locator(".remaining")).to_have_text("387.6")
    expect(page.locator("#credit-spent")).to_have_text("2,755.80")
    expect(page.locator("#credit-committed")).to_have_text("1,744.20")
    expect(page.locator("#credit-remaining")).to_have_text("45,500.00")
    # And clicking a board line prepares a bid on that book
    page.uncheck("#only-mine")
    page.click('#board-rows tr[data-book="xizhoumi.class_ii"]')
    expect(page.locator("#variety")).to_have_value("xizhoumi")
    expect(page.locator("#grade")).to_have_value("class_ii")
    expect(page.locator("#price")).to_be_focused()


def test_a_revoked_token_sends_the_merchant_back_to_sign_in(hall: Hall, page: Page) -> None:
    open_desk(page)
    del hall.desk.merchants[TOKEN]
    page.fill("#price", "4.80")
    page.fill("#quantity", "250")
    page.click("#bid-submit")
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#error-title")).to_have_text("令牌无效或已失效，请重新登录")
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None


def test_the_english_desk_and_another_merchant_see_only_their_own_bids(
    hall: Hall, page: Page
) -> None:
    hall.desk.rest(
        TOKEN,
        "B-lz",
        variety="ganmibao",
        grade="class_i",
        price=Decimal("5"),
        quantity=Decimal("100"),
    )
    sign_in(page, OTHER_TOKEN, lang="en")
    expect(page.locator("#merchant-name")).to_have_text("武威果业 (M-WW-02)")
    expect(page.locator("h1")).to_have_text("Melon Hall · Merchant desk")
    expect(page.locator("#bids-empty")).to_have_text("No bids yet")
    expect(page.locator("label[for=price]")).to_have_text("Price (yuan/kg)")
    expect(page.locator("#conn")).to_have_text("Live")
    page.click("#lang-zh")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")
    expect(page.locator("#bids-empty")).to_have_text("暂无出价")
