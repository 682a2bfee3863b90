"""The merchant's desk in headless Chromium, on the real pricing API with the matcher played here.

Given a merchant with a token, when they sign in, bid, amend and cancel on the page, then the API
sends their books exactly what they entered, as their account, and the page shows what the books
answered: bids, fills, trades, credit and refusals, in the language they chose. Nothing on the page
lets them touch another merchant's bid, and the API refuses their token on one.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pricing_browser_kit import LANZHOU, WUWEI, Hall, Merchant, Traffic, board_line

from melon_contracts.commands import AmendBid, CancelBid, PlaceBid
from melon_contracts.reference import Grade

pytestmark = pytest.mark.browser

TOKEN_KEY = "melon.pricing.token"


def sign_in(page: Page, merchant: Merchant = LANZHOU, lang: str = "zh") -> None:
    page.goto("/merchant" if lang == "zh" else "/merchant?lang=en")
    expect(page.locator("#token-form")).to_be_visible()
    page.fill("#token", merchant.token)
    page.click("#token-save")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")


def open_desk(page: Page, lang: str = "zh") -> None:
    """Open the desk on a browser that already holds Lanzhou's token."""
    page.goto("/merchant")
    page.evaluate(f"token => localStorage.setItem('{TOKEN_KEY}', token)", LANZHOU.token)
    if lang == "zh":
        page.reload()
    else:
        page.goto("/merchant?lang=en")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def bid_row(page: Page, bid_id: str) -> Locator:
    return page.locator(f'#bid-rows tr[data-bid="{bid_id}"]')


def test_a_merchant_signs_in_once_and_the_browser_remembers_the_token(
    hall: Hall, page: Page, traffic: Traffic
) -> None:
    # When a merchant pastes their token
    sign_in(page)
    # Then the desk shows who they are and their credit, from GET /me with the token
    expect(page.locator("#merchant-name")).to_have_text("兰州瓜果商行 (M-LZ-01)")
    expect(page.locator("#credit-limit")).to_have_text("50,000.00")
    expect(page.locator("#credit-remaining")).to_have_text("50,000.00")
    assert {r.authorization for r in traffic.to("GET", "/me")} == {f"Bearer {LANZHOU.token}"}
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == LANZHOU.token
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
    expect(page.locator("#error")).to_have_attribute("data-code", "not_authenticated")
    expect(page.locator("#token-form")).to_be_visible()
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None


def test_placing_a_bid_sends_exactly_what_was_entered_and_shows_it_resting(
    hall: Hall, page: Page, traffic: Traffic
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
    [sent] = traffic.to("POST", "/bids")
    assert sent.authorization == f"Bearer {LANZHOU.token}"
    body = dict(sent.body)
    bid_id = body.pop("bid_id")
    assert re.fullmatch(r"B-[0-9a-f]{12}", bid_id)
    assert body == {
        "variety": "xizhoumi",
        "grade": "class_i",
        "price_yuan_per_kg": "5.7",
        "quantity_kg": "400.5",
        "min_lot_kg": "100",
        "destination": "兰州",
        "cold_chain": True,
    }
    # And sent it to the book as this merchant's, in fen and grams
    [command] = hall.commands()
    assert isinstance(command, PlaceBid)
    assert (command.bid_id, command.merchant_id, command.variety, command.grade) == (
        bid_id,
        LANZHOU.merchant_id,
        "xizhoumi",
        Grade.CLASS_I,
    )
    assert (command.price_fen_per_kg, command.quantity_g, command.min_lot_g) == (
        570,
        400_500,
        100_000,
    )
    assert (command.destination, command.cold_chain) == ("兰州", True)
    # And until the book reports it, "my bids" shows it pending and its cost is held
    row = bid_row(page, bid_id)
    expect(row).to_have_attribute("data-status", "pending")
    expect(row.locator(".status")).to_have_text("处理中")
    expect(row.locator("button")).to_have_count(0)
    expect(page.locator("#credit-committed")).to_have_text("2,282.85")
    # When the book takes it
    hall.matcher.answer()
    # Then it rests, the credit it holds stays committed, and the board shows the new best bid
    expect(row).to_have_attribute("data-status", "resting")
    expect(row.locator(".status")).to_have_text("挂单中")
    expect(row.locator(".price")).to_have_text("5.70")
    expect(row.locator(".remaining")).to_have_text("400.5")
    expect(page.locator("#credit-committed")).to_have_text("2,282.85")
    expect(page.locator("#credit-remaining")).to_have_text("47,717.15")
    expect(page.locator("#bid-market")).to_have_text("当前 最高买价 5.70 · 最新价 5.50")


def test_a_merchant_amends_then_cancels_a_resting_bid(
    hall: Hall, page: Page, traffic: Traffic
) -> None:
    hall.matcher.rest(
        LANZHOU,
        "B-amend-1",
        variety="ganmibao",
        grade=Grade.EXTRA,
        price_yuan="6.20",
        quantity_kg="500",
    )
    hall.matcher.fill("B-amend-1", "120")
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
    expect(page.locator("#notice")).to_have_text("出价 B-amend-1 的修改已提交")
    # Then only the price is sent, with the token, and the book gets an amendment of it
    [patch] = traffic.to("PATCH", "/bids/B-amend-1")
    assert patch.body == {"price_yuan_per_kg": "6.35"}
    assert patch.authorization == f"Bearer {LANZHOU.token}"
    [amend] = hall.matcher.answer()
    assert isinstance(amend, AmendBid)
    assert (amend.merchant_id, amend.price_fen_per_kg, amend.quantity_g) == (
        LANZHOU.merchant_id,
        635,
        None,
    )
    # And once the book has it, the row shows the new price and the credit its new cost
    expect(row.locator(".price")).to_have_text("6.35")
    expect(row.locator(".remaining")).to_have_text("380")
    expect(page.locator("#credit-committed")).to_have_text("2,413.00")
    # When they cancel, the page asks once more before it sends
    page.click("#cancel-B-amend-1")
    expect(page.locator("#cancel-B-amend-1")).to_have_text("确认撤单")
    assert traffic.to("POST", "/bids/B-amend-1/cancel") == []
    page.click("#cancel-B-amend-1")
    expect(page.locator("#notice")).to_have_text("出价 B-amend-1 的撤单已提交")
    [cancel] = hall.matcher.answer()
    assert isinstance(cancel, CancelBid) and cancel.merchant_id == LANZHOU.merchant_id
    # Then the row shows it cancelled, with nothing left to do, and its credit is free again
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row.locator(".status")).to_contain_text("已撤单")
    expect(row.locator("button")).to_have_count(0)
    expect(page.locator("#credit-committed")).to_have_text("0.00")
    assert len(traffic.to("POST", "/bids/B-amend-1/cancel")) == 1


REFUSED_CANCELS = [
    ("filled-zh", "zh", "filled", "该出价已不在挂单中", "出价 B-9 已成交", "filled"),
    ("filled-en", "en", "filled", "The bid is no longer resting", "is filled", "filled"),
    ("broker-zh", "zh", "broker", "消息服务不可用，未提交，请重试", "not acknowledged", "resting"),
    (
        "broker-en",
        "en",
        "broker",
        "Message broker unavailable: nothing was sent, try again",
        "not acknowledged",
        "resting",
    ),
]


@pytest.mark.parametrize(
    ("lang", "trouble", "title", "detail", "after"),
    [case[1:] for case in REFUSED_CANCELS],
    ids=[case[0] for case in REFUSED_CANCELS],
)
def test_a_refused_cancel_says_why_in_the_chosen_language(
    hall: Hall, page: Page, lang: str, trouble: str, title: str, detail: str, after: str
) -> None:
    hall.matcher.rest(
        LANZHOU,
        "B-9",
        variety="xizhoumi",
        grade=Grade.CLASS_II,
        price_yuan="3.50",
        quantity_kg="200",
    )
    open_desk(page, lang)
    page.click("#cancel-B-9")
    if trouble == "filled":
        # The book sold the rest of the bid; its line has not reached the page yet
        hall.matcher.fill("B-9", "200", board=False)
    else:
        hall.publisher.unreachable = True
    page.click("#cancel-B-9")
    expect(page.locator("#error-title")).to_have_text(title)
    expect(page.locator("#error-detail")).to_contain_text(detail)
    # And the row shows where the bid really stands
    expect(bid_row(page, "B-9")).to_have_attribute("data-status", after)
    assert hall.commands() == []


def test_a_bid_beyond_the_credit_left_is_refused_and_nothing_is_sent(
    hall: Hall, page: Page
) -> None:
    sign_in(page)
    page.fill("#price", "10")
    page.fill("#quantity", "6000")
    page.click("#bid-submit")
    expect(page.locator("#error-title")).to_have_text("超出剩余采购额度")
    expect(page.locator("#error")).to_have_attribute("data-code", "credit_exceeded")
    expect(page.locator("#error-detail")).to_have_text(
        "出价需 60000.00 元，剩余额度 50000.00 元（额度 50000.00 元）"
    )
    expect(page.locator("#bids-empty")).to_be_visible()
    expect(page.locator("#credit-remaining")).to_have_text("50,000.00")
    assert hall.commands() == []
    # And the entry stays for the merchant to lower, and then the bid goes through
    expect(page.locator("#quantity")).to_have_value("6000")
    page.fill("#quantity", "5000")
    page.click("#bid-submit")
    expect(page.locator("#notice")).to_contain_text("已提交")
    expect(page.locator("#credit-remaining")).to_have_text("0.00")


def test_an_amendment_beyond_the_credit_left_is_refused_in_english(hall: Hall, page: Page) -> None:
    hall.matcher.rest(
        LANZHOU, "B-big", variety="xizhoumi", grade=Grade.EXTRA, price_yuan="5", quantity_kg="100"
    )
    open_desk(page, "en")
    expect(page.locator("#credit-remaining")).to_have_text("49,500.00")
    page.click("#amend-B-big")
    page.fill("#amend-quantity-B-big", "20000")
    page.click("#save-B-big")
    expect(page.locator("#error-title")).to_have_text("More than your remaining credit")
    expect(page.locator("#error-detail")).to_contain_text("49500.00 yuan of the 50000.00 yuan")
    # And the merchant's entry stays in the row for them to correct
    expect(page.locator("#amend-quantity-B-big")).to_have_value("20000")
    assert hall.commands() == []


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
    hall: Hall, page: Page, traffic: Traffic, price: str, quantity: str, min_lot: str, problem: str
) -> None:
    sign_in(page)
    page.fill("#price", price)
    page.fill("#quantity", quantity)
    page.fill("#min_lot", min_lot)
    page.click("#bid-submit")
    expect(page.locator("#error-title")).to_have_text("输入无效")
    expect(page.locator("#error-detail")).to_contain_text(problem)
    assert traffic.to("POST", "/bids") == []
    assert hall.commands() == []


def _lose_the_answer(route: Route) -> None:
    route.fetch()  # the API takes the bid and sends it to its book
    route.abort("connectionreset")  # but its answer never reaches the page


@pytest.mark.parametrize(
    ("trouble", "status", "sent_to_book"),
    [("broker-down", "503", 1), ("answer-lost", "0", 2)],
)
def test_a_bid_sent_again_after_a_failed_try_keeps_its_id_and_rests_once(
    hall: Hall, page: Page, traffic: Traffic, trouble: str, status: str, sent_to_book: int
) -> None:
    sign_in(page)
    if trouble == "broker-down":
        hall.publisher.unreachable = True
    else:
        page.route(lambda url: urlsplit(url).path == "/bids", _lose_the_answer, times=1)
    page.fill("#price", "4.80")
    page.fill("#quantity", "250")
    page.click("#bid-submit")
    expect(page.locator("#error")).to_have_attribute("data-status", status)
    # When the merchant presses the button again
    hall.publisher.unreachable = False
    page.click("#bid-submit")
    expect(page.locator("#notice")).to_contain_text("已提交")
    # Then both tries carried the same id; the book hears of it once or twice, and one bid rests
    first, second = traffic.to("POST", "/bids")
    assert first.body["bid_id"] == second.body["bid_id"]
    commands = hall.matcher.answer()
    assert [c.bid_id for c in commands if isinstance(c, PlaceBid)] == [
        first.body["bid_id"]
    ] * sent_to_book
    row = bid_row(page, first.body["bid_id"])
    expect(row).to_have_attribute("data-status", "resting")
    expect(page.locator("#bid-rows tr")).to_have_count(1)
    expect(page.locator("#credit-committed")).to_have_text("1,200.00")


def test_fills_show_as_trades_when_the_book_moves_and_the_board_shows_my_books(
    hall: Hall, page: Page
) -> None:
    hall.publish(
        board_line("ganmibao", Grade.EXTRA),
        board_line("yujinxiang", Grade.CLASS_I, best_bid=450),
        board_line("xizhoumi", Grade.CLASS_II),
    )
    hall.matcher.rest(
        LANZHOU,
        "B-fill",
        variety="yujinxiang",
        grade=Grade.CLASS_I,
        price_yuan="4.50",
        quantity_kg="1000",
        destination="成都",
        cold_chain=True,
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
    hall.matcher.fill("B-fill", "612.4", lot_id="L-0042", crates=30)
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
    line = page.locator('#board-rows tr[data-book="yujinxiang.class_i"]')
    expect(line.locator('[data-col="last"]')).to_have_text("4.50")
    # And clicking a board line prepares a bid on that book
    page.uncheck("#only-mine")
    page.click('#board-rows tr[data-book="xizhoumi.class_ii"]')
    expect(page.locator("#variety")).to_have_value("xizhoumi")
    expect(page.locator("#grade")).to_have_value("class_ii")
    expect(page.locator("#price")).to_be_focused()


def test_a_revoked_token_sends_the_merchant_back_to_sign_in(hall: Hall, page: Page) -> None:
    open_desk(page)
    hall.revoke(LANZHOU)
    try:
        page.fill("#price", "4.80", timeout=2_000)
        page.fill("#quantity", "250", timeout=2_000)
        page.click("#bid-submit", timeout=2_000)
    except PlaywrightTimeoutError:
        pass  # the page's own refresh met the revoked token first and signed out already
    expect(page.locator("#token-form")).to_be_visible(timeout=10_000)
    expect(page.locator("#error-title")).to_have_text(
        "令牌无效或已失效，请重新登录", timeout=10_000
    )
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None
    assert hall.commands() == []


def test_the_english_desk_and_another_merchant_see_only_their_own_bids(
    hall: Hall, page: Page
) -> None:
    hall.matcher.rest(
        LANZHOU, "B-lz", variety="ganmibao", grade=Grade.CLASS_I, price_yuan="5", quantity_kg="100"
    )
    sign_in(page, WUWEI, lang="en")
    expect(page.locator("#merchant-name")).to_have_text("武威果业 (M-WW-02)")
    expect(page.locator("h1")).to_have_text("Melon Hall · Merchant desk")
    expect(page.locator("#bids-empty")).to_have_text("No bids yet")
    expect(page.locator("#credit-remaining")).to_have_text("20,000.00")
    expect(page.locator("label[for=price]")).to_have_text("Price (yuan/kg)")
    expect(page.locator("#conn")).to_have_text("Live")
    page.click("#lang-zh")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")
    expect(page.locator("#bids-empty")).to_have_text("暂无出价")


ANOTHER_MERCHANTS_BID = """async (bidId) => {
    const headers = {
        Authorization: `Bearer ${localStorage.getItem("melon.pricing.token")}`,
        "Content-Type": "application/json",
    };
    const tries = [
        [`/bids/${bidId}/cancel`, "POST", undefined],
        [`/bids/${bidId}`, "PATCH", {price_yuan_per_kg: "9.00"}],
        ["/bids", "POST", {
            bid_id: bidId, variety: "xizhoumi", grade: "class_i",
            price_yuan_per_kg: "9.00", quantity_kg: "1",
        }],
    ];
    const answers = [];
    for (const [path, method, body] of tries) {
        const init = {method, headers};
        if (body !== undefined) init.body = JSON.stringify(body);
        const response = await fetch(path, init);
        answers.push([response.status, (await response.json()).error]);
    }
    return answers;
}"""


def test_another_merchants_bid_cannot_be_touched_from_the_desk(hall: Hall, page: Page) -> None:
    # Given a bid of Wuwei's and one of Lanzhou's resting in the same book
    hall.matcher.rest(
        WUWEI, "B-ww-1", variety="xizhoumi", grade=Grade.CLASS_I, price_yuan="6", quantity_kg="50"
    )
    hall.matcher.rest(
        LANZHOU, "B-lz-1", variety="xizhoumi", grade=Grade.CLASS_I, price_yuan="5", quantity_kg="50"
    )
    # When Lanzhou opens the desk
    open_desk(page)
    # Then only Lanzhou's bid shows, with its buttons; Wuwei's has no row and no button
    expect(bid_row(page, "B-lz-1").locator("button")).to_have_count(2)
    expect(page.locator("#bid-rows tr")).to_have_count(1)
    expect(page.locator('[id$="B-ww-1"]')).to_have_count(0)
    # And the board shows the book's best bid, whoever made it
    expect(page.locator('#board-rows [data-col="best_bid"]')).to_have_text("6.00")
    # When Lanzhou's token is used on Wuwei's bid id from the page anyway
    answers = page.evaluate(ANOTHER_MERCHANTS_BID, "B-ww-1")
    # Then the API refuses cancel, amend and reuse of the id, and no book hears of it
    assert answers == [[403, "forbidden"]] * 3
    assert hall.commands() == []
    assert hall.matcher.bids["B-ww-1"].status == "resting"
