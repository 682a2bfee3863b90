"""The weigh station's pages: the operator console and the printable weigh ticket (磅单).

Both are plain HTML rendered here, with the console's CSS and JavaScript served as static files
from the package (``ingest/web``): no build step, nothing fetched from outside the hall, so the
console works on a weigh-station PC with no internet. Every label exists in Chinese (the default)
and English; the console talks to the same HTTP API as scripts do and keeps no state of its own
beyond the operator id and the last crate type.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from html import escape
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from melon_contracts.pages import COMMON, WebAssets, render, script_json
from melon_contracts.reference import VARIETIES, Grade

Lang = Literal["zh", "en"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_URL = "/static/ingest"

HALL_TIME = timezone(timedelta(hours=8), "CST")
"""Asia/Shanghai: China keeps UTC+8 all year, so a fixed offset is exact and needs no tz data."""

DEFECT_KINDS = ("cracked", "sunburn", "bruise", "rot", "misshapen")
"""Defect kinds the console offers when the active grading profile does not name its own."""

_GRADE_EN = {grade.value: grade.en for grade in Grade}

_CONSOLE_TEXT: dict[str, tuple[str, str]] = {
    "app.title": ("民勤蜜瓜交易大厅 · 过磅台", "Melon Hall · weigh station"),
    "nav.station": ("过磅站", "Station"),
    "nav.operator": ("过磅员工号", "Operator ID"),
    "nav.language": ("语言", "Language"),
    "nav.loading": ("正在载入过磅站…", "Loading stations…"),
    "kind.platform": ("台秤", "platform"),
    "kind.truck": ("地磅", "truck"),
    "scale.heading": ("实时重量", "Live weight"),
    "scale.stable": ("稳定", "Stable"),
    "scale.motion": ("晃动中", "In motion"),
    "scale.overload": ("超载", "Overload"),
    "scale.underload": ("欠载（低于零）", "Underload (below zero)"),
    "scale.offline": ("秤离线", "Scale offline"),
    "scale.zero_drift": ("零点漂移，请卸货并置零", "Zero drift: unload and zero the scale"),
    "scale.empty": ("空秤（零点）", "Empty (at zero)"),
    "scale.taken": ("已取重，请卸货回零", "Taken: unload until the scale is back at zero"),
    "scale.no_reading": ("尚无读数", "No reading yet"),
    "scale.disconnected": ("与服务的连接中断，正在重连", "Connection lost, reconnecting"),
    "scale.limits": (
        "分度值 d = {d} · 最大秤量 {max} · 最小秤量 {min}",
        "d = {d} · Max {max} · Min {min}",
    ),
    "form.heading": ("批次过磅", "Weigh a lot"),
    "form.lot_id": ("批次标签（扫码）", "Lot tag (scan)"),
    "form.plate": ("车牌号", "Plate"),
    "form.farmer_id": ("农户编号", "Farmer household"),
    "form.village_group": ("村民小组（社）", "Village group"),
    "form.variety": ("品种", "Variety"),
    "form.variety_choose": ("请选择品种", "Choose a variety"),
    "form.harvest_date": ("采收日期", "Harvest date"),
    "form.crates": ("筐数", "Crates"),
    "form.crate_type": ("筐型（皮重）", "Crate type (tare)"),
    "form.sample": ("抽样检测", "Quality sample"),
    "form.brix": ("糖度读数 °Brix（空格或逗号分隔）", "Brix readings (space or comma separated)"),
    "form.fruit_weights": ("单果重 g（可选，空格分隔）", "Fruit weights in g (optional)"),
    "form.defects": ("缺陷果个数", "Defective fruits"),
    "form.use_stored_tare": (
        "使用存储的车辆皮重（一次过磅）",
        "Use the truck's stored tare (one pass)",
    ),
    "form.confirm": ("确认过磅", "Confirm weighing"),
    "form.weigh_in": ("进场称重（毛重）", "Weigh in (gross)"),
    "form.keys": (
        "Enter 下一项 · Ctrl+Enter 提交 · Esc 清空",
        "Enter: next field · Ctrl+Enter: submit · Esc: clear",
    ),
    "defect.cracked": ("裂果", "Cracked"),
    "defect.sunburn": ("日灼", "Sunburn"),
    "defect.bruise": ("碰伤", "Bruised"),
    "defect.rot": ("腐烂", "Rot"),
    "defect.misshapen": ("畸形", "Misshapen"),
    "out.heading": ("出场称重", "Weigh out"),
    "out.plate": ("车牌号", "Plate"),
    "out.store_tare": ("保存本次皮重供下次使用", "Store this tare for the next visit"),
    "out.submit": ("出场称重（皮重）", "Weigh out (tare)"),
    "ticket.heading": ("磅单", "Weigh ticket"),
    "ticket.no": ("磅单号", "Ticket no."),
    "ticket.lot": ("批次", "Lot"),
    "ticket.gross": ("毛重", "Gross"),
    "ticket.tare": ("皮重", "Tare"),
    "ticket.net": ("净重", "Net"),
    "ticket.grade": ("等级", "Grade"),
    "ticket.grade_pending": ("待定级", "Grading pending"),
    "ticket.print": ("打印磅单", "Print ticket"),
    "ticket.reprint": ("重印（副本）", "Reprint (copy)"),
    "ticket.repeated": (
        "该批次已过磅，这是它原来的磅单",
        "This lot was already weighed: this is its existing ticket",
    ),
    "ticket.printed": ("已打印第 {n} 次", "Printed (print {n})"),
    "pending.heading": ("已进场，待出场称重", "Weighed in, waiting to weigh out"),
    "pending.text": (
        "车牌 {plate} · 批次 {lot} · 毛重 {gross} kg",
        "Plate {plate} · lot {lot} · gross {gross} kg",
    ),
    "busy": ("处理中…", "Working…"),
    "err.network": ("无法连接服务", "Cannot reach the service"),
    "err.generic": ("请求被拒绝（{code}）", "Request refused ({code})"),
    "err.server": ("服务出错（{code}），未完成", "Server error ({code}): not done"),
    "err.form": ("请检查输入", "Please check the entry"),
    "err.unstable": ("秤未稳定", "Scale not stable"),
    "err.overload": ("超载", "Overload"),
    "err.below_minimum": ("低于最小秤量", "Below the scale's minimum load"),
    "err.negative": ("读数为负", "Reading below zero"),
    "err.zero_drift": ("零点漂移，请卸货并置零", "Zero drift: unload and zero the scale"),
    "err.not_returned_to_zero": (
        "秤未回零（此重量已取过）",
        "Scale not back at zero (already taken)",
    ),
    "err.offline": ("秤离线", "Scale offline"),
    "err.scale_refused": ("秤拒绝取重", "The scale refused the weighing"),
    "err.unknown_station": ("没有这个过磅站", "Unknown station"),
    "err.unknown_lot": ("没有这个批次", "Unknown lot"),
    "err.unknown_ticket": ("没有这张磅单", "Unknown ticket"),
    "err.unknown_variety": ("品种不在品种表中", "Unknown variety"),
    "err.invalid_lot": ("批次信息无效", "Invalid lot details"),
    "err.invalid_weight": ("重量无效", "Invalid weight"),
    "err.invalid_request": ("输入无效", "Invalid entry"),
    "err.wrong_station_kind": ("此过磅站不能这样称重", "Wrong kind of station for this weighing"),
    "err.station_busy": ("批次正在其他车辆上", "The lot is on a truck still to weigh out"),
    "err.lot_already_weighed": ("批次已过磅", "Lot already weighed"),
    "err.parameter_rejected": ("参数被拒绝", "Parameter rejected"),
    "err.ingest_error": ("过磅被拒绝", "Weighing refused"),
    "err.not_ready": ("服务尚未就绪，请稍候", "The service is not ready yet, please wait"),
    "err.broker_unavailable": (
        "消息服务不可用，未记录，请重试",
        "Message broker unavailable: nothing was recorded, try again",
    ),
    "check.required": ("{field}：必填", "{field}: required"),
    "check.number": ("{field}：“{value}”不是数字", "{field}: “{value}” is not a number"),
    "check.integer": ("{field}：“{value}”不是整数", "{field}: “{value}” is not a whole number"),
    "check.date": ("{field}：请按 YYYY-MM-DD 填写", "{field}: use YYYY-MM-DD"),
}

_TICKET_TEXT: dict[str, tuple[str, str]] = {
    "title": ("民勤蜜瓜交易大厅 过磅单", "Melon Hall weigh ticket"),
    "original": ("原件 ORIGINAL", "ORIGINAL 原件"),
    "copy": ("副本 COPY", "COPY 副本"),
    "copy_print": ("（第{n}次打印）", " (print {n})"),
    "print_no": ("第 {n} 次打印", "Print {n}"),
    "ticket_no": ("磅单号", "Ticket no."),
    "station": ("过磅站", "Station"),
    "lot": ("批次", "Lot"),
    "farmer": ("农户", "Farmer household"),
    "village_group": ("村民小组", "Village group"),
    "variety": ("品种", "Variety"),
    "harvest_date": ("采收日期", "Harvest date"),
    "crates": ("筐数", "Crates"),
    "crate_type": ("筐型", "Crate type"),
    "plate": ("车牌号", "Plate"),
    "gross": ("毛重", "Gross"),
    "tare": ("皮重", "Tare"),
    "net": ("净重", "Net"),
    "grade": ("等级", "Grade"),
    "grade_pending": ("待定级", "Grading pending"),
    "profile": ("定级方案", "Grading profile"),
    "brix": ("糖度均值", "Mean Brix"),
    "brix_samples": ("{n} 个样果", "{n} fruits"),
    "reason": ("定级依据", "Reason"),
    "weighed_at": ("过磅时间", "Weighed at"),
    "operator": ("过磅员", "Operator"),
    "seq": ("审计序号", "Audit-trail seq"),
    "corrections": ("更正", "Corrections"),
    "correction": ("更正", "Correction"),
    "correction_reason": ("原因", "reason"),
    "field.farmer_id": ("农户", "farmer household"),
    "field.village_group": ("村民小组", "village group"),
    "field.harvest_date": ("采收日期", "harvest date"),
    "field.variety": ("品种", "variety"),
    "field.crates": ("筐数", "crates"),
    "signature": ("农户签字：", "Farmer's signature:"),
}


def install(app: FastAPI) -> None:
    """Add the console page and its static files to the ingest API."""
    COMMON.mount(app, "common-static")
    _ASSETS.mount(app, "ingest-static")

    @app.get("/console", response_class=HTMLResponse, include_in_schema=False)
    def console(station: str | None = None, lang: str = "zh") -> HTMLResponse:
        return HTMLResponse(console_html(station, language(lang)))


def language(value: str | None) -> Lang:
    """The page language a query asked for; anything unknown gets the hall's Chinese."""
    return "en" if value == "en" else "zh"


def console_url(station: str | None, lang: Lang) -> str:
    query = {"station": station, "lang": lang} if station else {"lang": lang}
    return "/console?" + urlencode(query)


def console_html(station: str | None, lang: Lang) -> str:
    """The operator console for one station (the first known station when none is named)."""
    text = {key: pair[0 if lang == "zh" else 1] for key, pair in _CONSOLE_TEXT.items()}
    config = {
        "lang": lang,
        "station": station,
        "gradeNames": _GRADE_EN if lang == "en" else {},
        "text": text,
    }
    values = {f"t.{key}": escape(value) for key, value in text.items()}
    values.update(
        {
            "lang": "zh-CN" if lang == "zh" else "en",
            "station": escape(station or ""),
            "zh_url": escape(console_url(station, "zh")),
            "en_url": escape(console_url(station, "en")),
            "zh_current": "page" if lang == "zh" else "false",
            "en_current": "page" if lang == "en" else "false",
            "base_css": escape(COMMON.url("base.css")),
            "controls_css": escape(COMMON.url("controls.css")),
            "api_js": escape(COMMON.url("api.js")),
            "css_url": escape(asset_url("console.css")),
            "js_url": escape(asset_url("console.js")),
            "variety_options": _variety_options(lang),
            "defect_inputs": "".join(_defect_input(kind, text) for kind in DEFECT_KINDS),
            "config_json": script_json(config),
        }
    )
    return render(_template("console.html"), values)


def _variety_options(lang: Lang) -> str:
    options = []
    for code, (zh, en) in VARIETIES.items():
        label = zh if lang == "zh" else f"{en} {zh}"
        options.append(f'<option value="{escape(code)}">{escape(label)}</option>')
    return "".join(options)


def _defect_input(kind: str, text: Mapping[str, str]) -> str:
    label = text.get(f"defect.{kind}", kind)
    field_id = f"defect-{kind}"
    return (
        f'<div class="field defect"><label for="{escape(field_id)}">{escape(label)}</label>'
        f'<input id="{escape(field_id)}" name="defect" data-kind="{escape(kind)}" '
        f'type="text" inputmode="numeric" autocomplete="off" placeholder="0"></div>'
    )


_ASSETS = WebAssets(WEB_DIR, STATIC_URL)
asset_url = _ASSETS.url
_template = _ASSETS.template


# -- the weigh ticket -------------------------------------------------------------------------


def ticket_number(station_id: str, ticket_no: int) -> str:
    """The number printed on a ticket: the station and a zero-padded count, e.g. WS-1-000042."""
    return f"{station_id.upper()}-{ticket_no:06d}"


def local_time(value: str | None) -> str:
    """An ISO timestamp as the hall's local time, ``YYYY-MM-DD HH:MM:SS``; naive means UTC."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(HALL_TIME).strftime("%Y-%m-%d %H:%M:%S")


def kg_text(kg: str | None, grams: int | None = None) -> str:
    """A weight in kg with at least two decimals (three when the grams need them): 612.40 kg."""
    try:
        if kg is not None:
            value = Decimal(str(kg))
        elif grams is not None:
            value = Decimal(grams) / 1000
        else:
            return "—"
    except InvalidOperation:
        return f"{kg} kg"
    if not value.is_finite():
        return f"{kg} kg"
    value = value.normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return f"{value:f} kg"


def _field_name(field: str, zh: bool) -> str:
    names = _TICKET_TEXT.get(f"field.{field}")
    return field if names is None else names[0 if zh else 1]


def ticket_html(view: Mapping[str, Any], print_no: int, lang: Lang) -> str:
    """The printable weigh ticket of one print; prints after the first say COPY.

    ``view`` is the lot as ``ticket_view`` gives it. Every value is escaped.
    """
    zh = lang == "zh"

    def t(key: str, **values: object) -> str:
        text = _TICKET_TEXT[key][0 if zh else 1]
        return text.format(**values) if values else text

    def row(label: str, value: object, css: str = "") -> str:
        cls = f' class="{css}"' if css else ""
        shown = "—" if value is None or value == "" else str(value)
        return f"<tr{cls}><th scope=row>{escape(label)}</th><td>{escape(shown)}</td></tr>"

    station_id = str(view.get("station_id", ""))
    number = ticket_number(station_id, int(view.get("ticket_no") or 0))
    variety = view.get("variety") or ""
    variety_name = view.get("variety_zh") if zh else view.get("variety_en")
    variety_text = f"{variety_name} ({variety})" if variety_name else variety

    lot_rows = [
        row(t("station"), station_id),
        row(t("lot"), view.get("lot_id")),
        row(t("farmer"), view.get("farmer_id")),
        row(t("village_group"), view.get("village_group")),
        row(t("variety"), variety_text),
        row(t("harvest_date"), view.get("harvest_date")),
    ]
    if view.get("plate"):
        lot_rows.append(row(t("plate"), view.get("plate")))
    lot_rows.append(row(t("crates"), view.get("crates")))
    if view.get("crate_type"):
        lot_rows.append(row(t("crate_type"), view.get("crate_type")))

    weight_rows = [
        row(t("gross"), kg_text(view.get("gross_kg"), view.get("gross_g"))),
        row(t("tare"), kg_text(view.get("tare_kg"), view.get("tare_g"))),
        row(t("net"), kg_text(view.get("net_kg"), view.get("net_g")), "net"),
    ]

    grade = view.get("grade")
    if isinstance(grade, Mapping):
        code = str(grade.get("grade", ""))
        name = grade.get("grade_zh") if zh else _GRADE_EN.get(code, code)
        grade_rows = [
            row(t("grade"), name or code, "grade"),
            row(t("profile"), f"{grade.get('profile_id', '')} v{grade.get('profile_version', '')}"),
        ]
        if grade.get("brix_mean") is not None:
            samples = grade.get("brix_samples")
            brix = f"{grade.get('brix_mean')} °Brix"
            if samples:
                brix += f" ({t('brix_samples', n=samples)})"
            grade_rows.append(row(t("brix"), brix))
        reason = grade.get("reason") if zh else grade.get("reason_en") or grade.get("reason")
        if reason:
            grade_rows.append(row(t("reason"), reason, "reason"))
    else:
        grade_rows = [row(t("grade"), t("grade_pending"), "grade pending")]

    record_rows = [
        row(t("weighed_at"), local_time(view.get("weighed_at"))),
        row(t("operator"), view.get("operator_id")),
        row(t("seq"), view.get("ledger_seq")),
    ]

    corrections = view.get("corrections") or []
    correction_html = ""
    if corrections:
        colon = "：" if zh else ": "
        items = []
        for correction in corrections:
            changes = ("；" if zh else "; ").join(
                f"{_field_name(field, zh)}{colon}{value}"
                for field, value in dict(correction.get("changes") or {}).items()
            )
            seq = escape(str(correction.get("seq", "")))
            items.append(
                "<li>"
                f"<strong>{escape(t('correction'))} #{seq}</strong> "
                f"{escape(changes)} · {escape(t('correction_reason'))}{colon}"
                f"{escape(str(correction.get('reason', '')))} · "
                f"{escape(str(correction.get('by', '')))} "
                f"{escape(local_time(correction.get('at')))}"
                "</li>"
            )
        correction_html = (
            f'<section class="corrections"><h2>{escape(t("corrections"))}</h2>'
            f"<ul>{''.join(items)}</ul></section>"
        )

    copy = print_no > 1
    if copy:
        mark = (
            f'<p class="mark copy" role="note"><strong>{escape(t("copy"))}</strong>'
            f"{escape(t('copy_print', n=print_no))}</p>"
        )
        watermark = f'<div class="watermark" aria-hidden="true">{escape(t("copy"))}</div>'
    else:
        mark = f'<p class="mark original">{escape(t("original"))}</p>'
        watermark = ""

    return f"""<!doctype html>
<html lang="{"zh-CN" if zh else "en"}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(t("title"))} {escape(number)}</title>
<style>{_template("ticket.css")}</style>
</head>
<body class="{"copy" if copy else "original"}">
{watermark}
<main class="sheet">
<header>
<h1>{escape(t("title"))}</h1>
{mark}
<p class="ticket-no"><span>{escape(t("ticket_no"))}</span> <strong>{escape(number)}</strong></p>
</header>
<table class="lot"><tbody>{"".join(lot_rows)}</tbody></table>
<table class="weights"><tbody>{"".join(weight_rows)}</tbody></table>
<table class="grading"><tbody>{"".join(grade_rows)}</tbody></table>
{correction_html}
<table class="record"><tbody>{"".join(record_rows)}</tbody></table>
<footer>
<p class="signature">{escape(t("signature"))} ____________________</p>
<p class="print-no">{escape(t("print_no", n=print_no))}</p>
</footer>
</main>
<script>
if (new URLSearchParams(location.search).get("noprint") !== "1") {{
  window.addEventListener("load", () => window.print());
}}
</script>
</body>
</html>
"""
