"""The trading hall's pages: the LED wall's price board and the merchant's desk, and their stream.

``GET /board/stream`` sends the board as server-sent events: every book's line first, then the
changes as the matcher publishes them (a watcher that falls behind gets the newest line of each
book that changed, not every line in between). ``GET /wall`` is the big screen in the hall;
``GET /merchant`` is where a merchant, with the token the cooperative issued, watches the books
they trade and places, amends and cancels bids. Both are plain HTML with their CSS and
JavaScript served from the package (``pricing/web``): no build step and nothing fetched from
outside the hall. Every label exists in Chinese (the default) and English.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncGenerator, Callable, Mapping
from html import escape
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse

from melon_contracts.events import BoardUpdated
from melon_contracts.pages import COMMON, WebAssets, render, script_json
from melon_contracts.reference import GRADE_EN, VARIETIES, Grade
from melon_contracts.units import fen_to_yuan, g_to_kg
from pricing.adapters.board_feed import BoardFeed

Lang = Literal["zh", "en"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_URL = "/static/pricing"

HEARTBEAT_S = 15.0
"""A comment this often keeps proxies and the hall's Wi-Fi from closing a quiet stream."""

RETRY_MS = 2_000
"""How long a browser waits before reconnecting a stream that ended."""

_COMMON_TEXT: dict[str, tuple[str, str]] = {
    "hall": ("民勤蜜瓜交易大厅", "Melon Hall"),
    "nav.language": ("语言", "Language"),
    "col.book": ("品种 · 等级", "Variety · grade"),
    "col.variety": ("品种", "Variety"),
    "col.grade": ("等级", "Grade"),
    "col.best_bid": ("最高买价", "Best bid"),
    "col.depth": ("买盘", "Bids"),
    "col.offered": ("挂牌量", "On offer"),
    "col.last": ("最新价", "Last"),
    "col.vwap": ("均价", "VWAP"),
    "col.high": ("最高", "High"),
    "col.low": ("最低", "Low"),
    "col.volume": ("今日成交", "Volume today"),
    "col.change": ("涨跌", "Change"),
    "unit.price": ("元/kg", "yuan/kg"),
    "unit.kg": ("kg", "kg"),
    "unit.depth": ("笔 · kg", "bids · kg"),
    "unit.depth_stacked": ("kg · 笔数", "kg · bids"),
    "bids_count": ("{n} 笔", "{n} bids"),
    "conn.connecting": ("正在连接…", "Connecting…"),
    "conn.live": ("实时", "Live"),
    "conn.lost": ("连接中断，正在重连", "Connection lost, reconnecting"),
    "board.empty": ("尚无出价或货批", "No bids or lots yet"),
    "board.updated": ("最后更新 {time}", "Last update {time}"),
    "board.note": (
        "价格单位 元/公斤 · 红涨绿跌 · 涨跌为对比上一交易日收盘价",
        "Prices in yuan per kg · red is up, green is down · change against the previous "
        "trading day's close",
    ),
}

_WALL_TEXT: dict[str, tuple[str, str]] = {
    "title": ("实时行情", "Live prices"),
}

_MERCHANT_TEXT: dict[str, tuple[str, str]] = {
    "title": ("客商交易台", "Merchant desk"),
    "token.heading": ("登录交易台", "Sign in"),
    "token.label": ("粘贴您的交易令牌", "Paste your trading token"),
    "token.help": (
        "令牌由合作社发放，只保存在这台设备的浏览器中。",
        "The cooperative issues your token; it is kept only in this device's browser.",
    ),
    "token.save": ("登录", "Sign in"),
    "token.forget": ("退出登录", "Sign out"),
    "token.checking": ("正在核对令牌…", "Checking the token…"),
    "me.merchant": ("客商", "Merchant"),
    "me.credit_limit": ("采购额度", "Credit limit"),
    "me.committed": ("挂单占用", "Committed to bids"),
    "me.spent": ("已成交金额", "Spent"),
    "me.remaining": ("剩余额度", "Remaining credit"),
    "me.yuan": ("元", "yuan"),
    "board.heading": ("行情", "Price board"),
    "board.mine": ("只看我交易的品种", "Only my books"),
    "board.pick": ("点一行即可按该品种等级出价", "Click a line to bid on that book"),
    "bid.heading": ("出价", "Place a bid"),
    "bid.variety": ("品种", "Variety"),
    "bid.grade": ("等级", "Grade"),
    "bid.price": ("价格（元/kg）", "Price (yuan/kg)"),
    "bid.quantity": ("数量（kg）", "Quantity (kg)"),
    "bid.min_lot": ("最小成交量（kg，可选）", "Minimum lot (kg, optional)"),
    "bid.destination": ("目的地", "Destination"),
    "bid.cold_chain": ("需要冷链运输", "Needs cold chain"),
    "bid.submit": ("提交出价", "Place bid"),
    "bid.market": ("当前 最高买价 {bid} · 最新价 {last}", "Now: best bid {bid} · last {last}"),
    "bid.sent": ("出价 {id} 已提交，等待撮合", "Bid {id} sent, waiting for the book"),
    "bid.amended": ("出价 {id} 的修改已提交", "Amendment of bid {id} sent"),
    "bid.cancelled": ("出价 {id} 的撤单已提交", "Cancellation of bid {id} sent"),
    "bids.heading": ("我的出价", "My bids"),
    "bids.empty": ("暂无出价", "No bids yet"),
    "bids.bid": ("出价号", "Bid"),
    "bids.price": ("价格", "Price"),
    "bids.quantity": ("数量 kg", "Quantity kg"),
    "bids.filled": ("已成交 kg", "Filled kg"),
    "bids.remaining": ("剩余 kg", "Remaining kg"),
    "bids.status": ("状态", "Status"),
    "bids.actions": ("操作", "Actions"),
    "status.resting": ("挂单中", "Resting"),
    "status.pending": ("处理中", "Pending"),
    "status.filled": ("全部成交", "Filled"),
    "status.cancelled": ("已撤单", "Cancelled"),
    "status.expired": ("已过期", "Expired"),
    "status.rejected": ("被拒绝", "Rejected"),
    "action.amend": ("改单", "Amend"),
    "action.save": ("提交修改", "Save"),
    "action.back": ("放弃", "Back"),
    "action.cancel": ("撤单", "Cancel bid"),
    "action.confirm_cancel": ("确认撤单", "Confirm cancel"),
    "amend.price": ("新价格 元/kg", "New price yuan/kg"),
    "amend.quantity": ("剩余数量 kg", "Remaining kg"),
    "trades.heading": ("我的成交", "My trades"),
    "trades.empty": ("暂无成交", "No trades yet"),
    "trades.time": ("时间", "Time"),
    "trades.trade": ("成交号", "Trade"),
    "trades.lot": ("批次", "Lot"),
    "trades.crates": ("筐数", "Crates"),
    "trades.weight": ("重量 kg", "Weight kg"),
    "trades.price": ("价格", "Price"),
    "trades.amount": ("金额 元", "Amount yuan"),
    "trades.destination": ("目的地", "Destination"),
    "trades.cold_chain": ("冷链", "Cold chain"),
    "yes": ("是", "Yes"),
    "no": ("否", "No"),
    "busy": ("处理中…", "Working…"),
    "err.network": ("无法连接服务，请检查网络", "Cannot reach the service: check the network"),
    "err.401": ("令牌无效或已失效，请重新登录", "The token is missing or no longer valid"),
    "err.403": ("这不是您的出价", "That bid is not yours"),
    "err.404": ("没有这个出价", "No such bid"),
    "err.409": ("交易规则不允许", "Not allowed by the trading rules"),
    "err.422": ("输入无效", "Invalid entry"),
    "err.5xx": ("服务出错（{code}），未完成", "Server error ({code}): not done"),
    "err.other": ("请求被拒绝（{code}）", "Request refused ({code})"),
    "err.credit_exceeded": ("超出剩余采购额度", "More than your remaining credit"),
    "err.bid_not_resting": ("该出价已不在挂单中", "The bid is no longer resting"),
    "err.unknown_variety": ("品种不在品种表中", "Unknown variety"),
    "err.invalid_amount": ("数量或价格的位数不对", "Amount has too many decimals"),
    "err.broker_unavailable": (
        "消息服务不可用，未提交，请重试",
        "Message broker unavailable: nothing was sent, try again",
    ),
    "check.required": ("{field}：必填", "{field}: required"),
    "check.price": (
        "{field}：请填写大于 0、最多两位小数的数",
        "{field}: a number above 0 with at most two decimals",
    ),
    "check.weight": (
        "{field}：请填写大于 0、最多三位小数的数",
        "{field}: a number above 0 with at most three decimals",
    ),
    "check.min_lot": (
        "最小成交量不能大于数量",
        "The minimum lot cannot be more than the quantity",
    ),
    "check.nothing": ("价格和数量都没有改", "Neither price nor quantity changed"),
}


def line_view(line: BoardUpdated) -> dict[str, Any]:
    """A board line as the stream and the pages read it: prices in yuan, weights in kg, strings.

    Decimal strings, not JSON numbers, so a price of 5.60 reads 5.60 and no binary float ever
    rounds a weight.
    """

    def yuan(fen: int | None) -> str | None:
        return None if fen is None else str(fen_to_yuan(fen))

    def kg(grams: int) -> str:
        return str(g_to_kg(grams))

    zh, en = VARIETIES.get(line.variety, (line.variety, line.variety))
    return {
        "book": line.book,
        "variety": line.variety,
        "variety_zh": zh,
        "variety_en": en,
        "grade": line.grade.value,
        "grade_zh": line.grade.zh,
        "grade_en": GRADE_EN[line.grade],
        "best_bid_yuan_per_kg": yuan(line.best_bid_fen_per_kg),
        "bids_resting": line.bids_resting,
        "bid_depth_kg": kg(line.bid_depth_g),
        "depth": [
            {
                "price_yuan_per_kg": yuan(level.price_fen_per_kg),
                "bids": level.bids,
                "quantity_kg": kg(level.quantity_g),
            }
            for level in line.depth
        ],
        "lots_resting": line.lots_resting,
        "offered_kg": kg(line.offered_g),
        "last_price_yuan_per_kg": yuan(line.last_price_fen_per_kg),
        "volume_kg": kg(line.volume_g),
        "trades": line.trades,
        "trading_day": None if line.trading_day is None else line.trading_day.isoformat(),
        "high_yuan_per_kg": yuan(line.high_fen_per_kg),
        "low_yuan_per_kg": yuan(line.low_fen_per_kg),
        "vwap_yuan_per_kg": yuan(line.vwap_fen_per_kg),
        "volume_kg_today": kg(line.volume_g_today),
        "amount_yuan_today": yuan(line.amount_fen_today),
        "trades_today": line.trades_today,
        "previous_close_yuan_per_kg": yuan(line.previous_close_fen_per_kg),
        "change_yuan_per_kg": yuan(line.change_fen_per_kg),
        "updated_at": line.occurred_at.isoformat(),
    }


def install(
    app: FastAPI,
    feed: BoardFeed,
    *,
    heartbeat_s: float = HEARTBEAT_S,
    view: Callable[[BoardUpdated], dict[str, Any]] = line_view,
) -> None:
    """Add the board stream, the wall and the merchant desk, and their static files."""
    COMMON.mount(app, "common-static")
    _ASSETS.mount(app, "pricing-static")

    @app.get("/board/stream")
    async def board_stream() -> StreamingResponse:
        """Server-sent events: a ``board`` event per book (the snapshot), ``ready``, then a
        ``board`` event per change (only the newest of a book for a watcher behind); a comment
        every 15 s while the board is quiet."""
        return StreamingResponse(
            board_events(feed, heartbeat_s, view),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/wall", response_class=HTMLResponse, include_in_schema=False)
    def wall(lang: str = "zh") -> HTMLResponse:
        return HTMLResponse(wall_html(language(lang)))

    @app.get("/merchant", response_class=HTMLResponse, include_in_schema=False)
    def merchant(lang: str = "zh") -> HTMLResponse:
        return HTMLResponse(merchant_html(language(lang)))


async def board_events(
    feed: BoardFeed,
    heartbeat_s: float = HEARTBEAT_S,
    view: Callable[[BoardUpdated], dict[str, Any]] = line_view,
) -> AsyncGenerator[bytes, None]:
    """The board stream's chunks: the snapshot and ``ready``, then changes, or a heartbeat.

    The first chunk is ``retry``, every book's line and ``ready``; after it, each chunk is every
    line the watcher had pending when it woke, at most one per book and the newest of each (a
    watcher that falls behind skips lines no one needs any more instead of being dropped), or a
    heartbeat comment after ``heartbeat_s`` without one. Ends when the feed stops; the browser
    then reconnects after ``RETRY_MS`` and starts again from a fresh snapshot.
    """
    render = board_frame(view)
    async with feed.subscribe() as watcher:
        snapshot = watcher.snapshot
        ready = _frame("ready", {"books": len(snapshot)}).encode()
        yield b"".join([_RETRY, *(posted.frame(render) for posted in snapshot), ready])
        while True:
            batch = await watcher.take(heartbeat_s)
            if batch is None:
                return
            yield b"".join([posted.frame(render) for posted in batch]) if batch else _HEARTBEAT


@functools.lru_cache(maxsize=8)
def board_frame(view: Callable[[BoardUpdated], dict[str, Any]]) -> Callable[[BoardUpdated], bytes]:
    """The ``board`` frame of a line as ``view`` shows it; one function per view, so the feed's
    ``Posted`` keeps a line's frame for every stream of that view."""

    def render(line: BoardUpdated) -> bytes:
        return _frame("board", view(line)).encode()

    return render


_RETRY = f"retry: {RETRY_MS}\n\n".encode()
_HEARTBEAT = b": heartbeat\n\n"


def _frame(event: str, data: Mapping[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def language(value: str | None) -> Lang:
    """The page language a query asked for; anything unknown gets the hall's Chinese."""
    return "en" if value == "en" else "zh"


def _texts(lang: Lang, *tables: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    index = 0 if lang == "zh" else 1
    return {key: pair[index] for table in tables for key, pair in table.items()}


def _page_values(page: str, lang: Lang, text: Mapping[str, str]) -> dict[str, str]:
    """What both pages fill in: language, switch links, assets and the script's config."""
    grades = [grade.value for grade in Grade]
    config = {
        "lang": lang,
        "text": text,
        "varieties": {
            code: names[0] if lang == "zh" else names[1] for code, names in VARIETIES.items()
        },
        "grades": {grade.value: grade.zh if lang == "zh" else GRADE_EN[grade] for grade in Grade},
        "gradeOrder": grades,
    }
    values = {f"t.{key}": escape(value) for key, value in text.items()}
    values.update(
        {
            "lang": "zh-CN" if lang == "zh" else "en",
            "zh_url": f"/{page}",
            "en_url": f"/{page}?lang=en",
            "zh_current": "page" if lang == "zh" else "false",
            "en_current": "page" if lang == "en" else "false",
            "board_js": escape(asset_url("board.js")),
            "base_css": escape(COMMON.url("base.css")),
            "controls_css": escape(COMMON.url("controls.css")),
            "api_js": escape(COMMON.url("api.js")),
            "css_url": escape(asset_url(f"{page}.css")),
            "js_url": escape(asset_url(f"{page}.js")),
            "config_json": script_json(config),
        }
    )
    return values


def wall_html(lang: Lang) -> str:
    """The hall's LED wall: every book's line, live."""
    text = _texts(lang, _COMMON_TEXT, _WALL_TEXT)
    return render(_template("wall.html"), _page_values("wall", lang, text))


def merchant_html(lang: Lang) -> str:
    """The merchant's desk: their books, bids, trades and credit, behind their token."""
    text = _texts(lang, _COMMON_TEXT, _MERCHANT_TEXT)
    values = _page_values("merchant", lang, text)
    values["variety_options"] = "".join(
        f'<option value="{escape(code)}">{escape(names[0] if lang == "zh" else names[1])}</option>'
        for code, names in VARIETIES.items()
    )
    values["grade_options"] = "".join(
        f'<option value="{escape(grade.value)}">'
        f"{escape(grade.zh if lang == 'zh' else GRADE_EN[grade])}</option>"
        for grade in Grade
    )
    return render(_template("merchant.html"), values)


_ASSETS = WebAssets(WEB_DIR, STATIC_URL)
asset_url = _ASSETS.url
_template = _ASSETS.template
