"""The truck yard's pages: the dispatch board and the printable dispatch note.

``GET /dispatch`` is the board the yard office works from: it reads ``GET /yard`` once and then
follows ``GET /yard/stream``, and every decision it makes goes through the same JSON API as any
other client. ``GET /trucks/{plate}/note`` is the note that travels with a truck: what it carries,
lot by lot, for the driver and the receiver to sign. Both are plain HTML with their CSS and
JavaScript served from the package (``dispatch/web``); every label exists in Chinese (the
default) and English.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from dispatch.domain.errors import UnknownTruck
from dispatch.domain.yard import Assign, Line, TruckStatus, Visit, Yard, normalize_plate, tenths_c
from dispatch.service import DispatchService
from melon_contracts.events import COLD_CHAIN_MAX_TENTHS_C, COLD_CHAIN_MIN_TENTHS_C
from melon_contracts.pages import COMMON, WebAssets, render, script_json
from melon_contracts.reference import GRADE_EN, VARIETIES, Grade
from melon_contracts.units import g_to_kg

Lang = Literal["zh", "en"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_URL = "/static/dispatch"

HALL_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
"""The hall's clock; China keeps no daylight saving time, so a fixed offset is exact."""

_COMMON_TEXT: dict[str, tuple[str, str]] = {
    "hall": ("民勤蜜瓜交易大厅", "Melon Hall"),
    "nav.language": ("语言", "Language"),
    "unit.kg": ("kg", "kg"),
    "unit.crates": ("筐", "crates"),
    "status.waiting": ("等待", "Waiting"),
    "status.assigned": ("已配货", "Assigned"),
    "status.loading": ("装车中", "Loading"),
    "status.loading_at": ("装车中（{bay}号位）", "Loading (bay {bay})"),
    "status.loaded": ("已装完", "Loaded"),
    "status.departed": ("已出场", "Departed"),
    "truck.ambient": ("常温", "Ambient"),
    "truck.reefer": ("冷藏 {c} °C", "Reefer {c} °C"),
    "truck.anywhere": ("不限", "Anywhere"),
    "bay.n": ("{n}号位", "Bay {n}"),
}

_BOARD_TEXT: dict[str, tuple[str, str]] = {
    "title": ("调度看板", "Dispatch board"),
    "operator.label": ("操作员", "Operator"),
    "operator.placeholder": ("工号", "Staff id"),
    "conn.connecting": ("正在连接…", "Connecting…"),
    "conn.live": ("实时", "Live"),
    "conn.lost": ("连接中断，正在重连", "Connection lost, reconnecting"),
    "sec.trucks": ("场内车辆", "Trucks in the yard"),
    "sec.bays": ("装车位", "Loading bays"),
    "sec.shipments": ("待发货", "Waiting shipments"),
    "sec.suggestion": ("装车建议", "Suggested loads"),
    "sec.checkin": ("车辆进场登记", "Gate check-in"),
    "sec.departed": ("最近出场", "Recently departed"),
    "trucks.empty": ("场内暂无车辆", "No trucks in the yard"),
    "truck.driver": ("司机", "Driver"),
    "truck.phone": ("电话", "Phone"),
    "truck.load": ("已配 {loaded} / {capacity} kg", "{loaded} / {capacity} kg assigned"),
    "truck.cold_ready": ("可走冷链", "Cold chain ready"),
    "truck.destinations": ("目的地", "Destinations"),
    "truck.dwell": ("在场", "In yard"),
    "truck.no_load": ("尚未配货", "Nothing assigned yet"),
    "minutes": ("{n} 分钟", "{n} min"),
    "hours": ("{h} 小时 {m} 分", "{h} h {m} min"),
    "action.to_bay": ("进装车位", "To bay"),
    "action.bay_for": ("装车位", "Bay"),
    "action.no_free_bay": ("无空闲装车位", "No free bay"),
    "action.loaded": ("装车完毕", "Mark loaded"),
    "action.depart": ("出场", "Depart"),
    "action.confirm_depart": ("确认出场", "Confirm departure"),
    "action.note": ("打印随车单", "Print note"),
    "action.take_back": ("撤回", "Take back"),
    "bays.free": ("空闲", "Free"),
    "ship.merchant": ("客商", "Merchant"),
    "ship.destination": ("目的地", "Destination"),
    "ship.cold": ("冷链", "Cold chain"),
    "ship.crates": ("筐数", "Crates"),
    "ship.kg": ("重量 kg", "Weight kg"),
    "ship.waiting": ("已等待", "Waiting"),
    "ship.lots": ("批次", "Lots"),
    "ship.lots_n": ("{n} 个批次", "{n} lots"),
    "ship.actions": ("操作", "Actions"),
    "ship.empty": ("暂无待发货", "Nothing is waiting"),
    "ship.any_destination": ("未指定", "Not given"),
    "lot.lot": ("批次号", "Lot"),
    "lot.farmer": ("农户", "Farmer"),
    "lot.variety": ("品种", "Variety"),
    "lot.grade": ("等级", "Grade"),
    "lot.crates": ("筐数", "Crates"),
    "lot.kg": ("重量 kg", "Weight kg"),
    "assign.open": ("安排装车", "Assign"),
    "assign.truck": ("选择车辆", "Truck"),
    "assign.confirm": ("确认安排", "Confirm"),
    "assign.cancel": ("取消", "Cancel"),
    "assign.none": ("没有可配货的车辆", "No truck can take goods now"),
    "assign.room": ("余 {kg} kg", "{kg} kg free"),
    "warn.not_cold": ("非冷链车", "not cold chain"),
    "warn.destination": ("不去 {dest}", "not to {dest}"),
    "warn.heavy": ("超载", "too heavy"),
    "sug.none": ("尚无装车建议，点“重新计算”", "No suggestion yet: press Recompute"),
    "sug.recompute": ("重新计算", "Recompute"),
    "sug.accept_all": ("全部采纳", "Accept all"),
    "sug.accept_one": ("采纳此车", "Accept this truck"),
    "sug.edit": ("调整", "Edit"),
    "sug.edit_confirm": ("按所选装车", "Assign selected"),
    "sug.edit_cancel": ("取消调整", "Cancel edit"),
    "sug.stale": (
        "已过期：场内情况有变，请重新计算",
        "Out of date: the yard changed since, recompute",
    ),
    "sug.solver": ("求解器 {solver} · 用时 {ms} ms", "Solver {solver} · {ms} ms"),
    "sug.col.figure": ("指标", "Figure"),
    "sug.col.plan": ("本建议", "This plan"),
    "sug.col.greedy": ("先大后小", "First-fit-decreasing"),
    "sug.fig.loaded": ("装载量 kg", "Loaded kg"),
    "sug.fig.fill": ("平均装载率", "Mean fill"),
    "sug.fig.trucks": ("用车数", "Trucks used"),
    "sug.fig.left": ("未装货物", "Left behind"),
    "sug.more": ("比先大后小多装 {kg} kg", "{kg} kg more than first-fit-decreasing"),
    "sug.load": ("本次装 {kg} kg", "Loads {kg} kg"),
    "sug.fill_after": ("装后 {pct}", "{pct} full after"),
    "sug.left": ("暂不能装的货", "Left behind"),
    "sug.left_none": ("全部可装", "Nothing left behind"),
    "sug.loads_empty": ("没有可装的货或可配货的车辆", "Nothing to load, or no truck open"),
    "sug.selected": ("已选 {kg} kg", "Selected {kg} kg"),
    "ci.plate": ("车牌号", "Plate"),
    "ci.driver": ("司机姓名", "Driver"),
    "ci.phone": ("电话", "Phone"),
    "ci.capacity": ("核定载重（kg）", "Capacity (kg)"),
    "ci.refrigerated": ("冷藏车", "Refrigerated"),
    "ci.setpoint": ("冷机设定温度（°C）", "Set-point (°C)"),
    "ci.destinations": ("目的地（逗号分隔，留空为不限）", "Destinations (comma separated)"),
    "ci.destinations_help": ("留空表示哪里都去", "Leave empty for anywhere"),
    "ci.cold_range": ("蜜瓜冷链要求 {low}–{high} °C", "Cold-chain honeydew: {low}–{high} °C"),
    "ci.submit": ("登记进场", "Check in"),
    "dep.plate": ("车牌号", "Plate"),
    "dep.driver": ("司机", "Driver"),
    "dep.departed": ("出场时间", "Departed"),
    "dep.kg": ("装载 kg", "Load kg"),
    "dep.note": ("随车单", "Note"),
    "dep.open_note": ("查看", "Open"),
    "dep.empty": ("暂无出场车辆", "No departures yet"),
    "busy": ("处理中…", "Working…"),
    "done.checked_in": ("车辆 {plate} 已登记进场", "Truck {plate} checked in"),
    "done.assigned": ("已将 {what} 安排到 {plate}", "{what} assigned to {plate}"),
    "done.bay": ("车辆 {plate} 已进 {bay}号位", "Truck {plate} sent to bay {bay}"),
    "done.loaded": ("车辆 {plate} 已装车完毕", "Truck {plate} is loaded"),
    "done.departed": ("车辆 {plate} 已出场", "Truck {plate} has departed"),
    "done.taken_back": ("已从 {plate} 撤回 {what}", "{what} taken back from {plate}"),
    "done.accepted": ("已采纳建议：{n} 项装车安排", "Suggestion accepted: {n} assignments"),
    "done.recomputed": ("装车建议已重新计算", "Suggested loads recomputed"),
    "err.operator": (
        "请先在右上角填写操作员工号（字母或数字开头）",
        "Enter your staff id at the top right first (starting with a letter or digit)",
    ),
    "err.network": ("无法连接服务，请检查网络", "Cannot reach the service: check the network"),
    "err.404": ("找不到", "Not found"),
    "err.409": ("操作冲突", "Conflict"),
    "err.422": ("输入无效", "Invalid entry"),
    "err.5xx": ("服务出错（{code}），未完成", "Server error ({code}): not done"),
    "err.other": ("请求被拒绝（{code}）", "Request refused ({code})"),
    "err.refreshed": ("看板已刷新为最新情况", "The board now shows the yard as it is"),
    "err.accept_refused": ("部分车辆未能采纳", "Some loads were not accepted"),
    "err.unknown_truck": ("没有这辆车", "No such truck"),
    "err.unknown_shipment": ("没有这个待发货单", "No such waiting shipment"),
    "err.unknown_trade": ("没有这笔成交", "No such trade"),
    "err.unknown_assignment": ("没有这项装车安排", "No such assignment"),
    "err.suggestion_stale": ("装车建议已过期", "The suggestion is out of date"),
    "err.truck_already_in_yard": ("车辆已在场内", "The truck is already in the yard"),
    "err.shipment_already_assigned": (
        "货物已被其他调度员安排",
        "Already assigned by another dispatcher",
    ),
    "err.over_capacity": ("超出车辆载重", "More than the truck can take"),
    "err.cold_chain_required": ("这批货需要冷链车", "These goods need a cold-chain truck"),
    "err.setpoint_out_of_range": (
        "冷机温度不在冷链范围内",
        "The reefer is not set within the cold-chain range",
    ),
    "err.destination_not_served": ("车辆不去这个目的地", "The truck does not go there"),
    "err.truck_departed": ("车辆已出场", "The truck has departed"),
    "err.truck_loaded": ("车辆已装车完毕", "The truck is already loaded"),
    "err.invalid_transition": ("车辆当前状态不允许这样操作", "Not allowed in the truck's status"),
    "err.nothing_to_load": ("车上还没有安排货物", "Nothing is assigned to the truck"),
    "err.bay_occupied": ("装车位已被占用", "The bay is taken"),
    "err.unknown_bay": ("没有这个装车位", "No such bay"),
    "err.invalid_capacity": ("载重无效", "Invalid capacity"),
    "err.empty_assignment": ("没有选择任何货物", "Nothing was chosen"),
    "err.duplicate_id": ("编号重复", "Duplicate id"),
    "err.dispatch_rule": ("调度规则不允许", "Not allowed by the yard's rules"),
    "err.not_ready": ("系统正在恢复场内数据，请稍后再试", "The yard is still loading: try again"),
    "err.decision_unconfirmed": (
        "决定已记录但尚未确认，请刷新查看",
        "Recorded but not confirmed yet: refresh to see",
    ),
    "err.broker_unavailable": (
        "消息服务不可用，未完成，请重试",
        "Message broker unavailable: not done, try again",
    ),
    "err.invalid_request": ("输入无效", "Invalid entry"),
    "check.required": ("{field}：必填", "{field}: required"),
    "check.capacity": (
        "核定载重须为大于 0 的数，最多三位小数",
        "Capacity: a number above 0 with at most three decimals",
    ),
    "check.setpoint": (
        "冷藏车须填写设定温度，最多一位小数，如 8.0",
        "A refrigerated truck needs its set-point, to a tenth, e.g. 8.0",
    ),
    "check.edit_empty": ("至少保留一项货物", "Keep at least one part"),
}

_NOTE_TEXT: dict[str, tuple[str, str]] = {
    "title": ("发货单（随车单）", "Dispatch note"),
    "note_no": ("单号", "Note no."),
    "print": ("打印", "Print"),
    "back": ("返回调度看板", "Back to the dispatch board"),
    "truck": ("车辆", "Truck"),
    "plate": ("车牌号", "Plate"),
    "driver": ("司机", "Driver"),
    "phone": ("电话", "Phone"),
    "reefer": ("冷机设定", "Reefer set-point"),
    "bay": ("装车位", "Bay"),
    "destinations": ("目的地", "Destinations"),
    "status": ("状态", "Status"),
    "checked_in_at": ("进场时间", "Checked in"),
    "loaded_at": ("装完时间", "Loaded"),
    "departed_at": ("出场时间", "Departed"),
    "checked_in_by": ("登记人", "Checked in by"),
    "assigned_by": ("配货人", "Assigned by"),
    "goods": ("货物明细", "Goods"),
    "merchant": ("客商", "Merchant"),
    "destination": ("目的地", "Destination"),
    "cold_chain": ("冷链", "Cold chain"),
    "lot": ("批次号", "Lot"),
    "farmer": ("农户", "Farmer"),
    "variety": ("品种", "Variety"),
    "grade": ("等级", "Grade"),
    "crates": ("筐数", "Crates"),
    "kg": ("重量 kg", "Weight kg"),
    "subtotal": ("小计", "Subtotal"),
    "totals": ("合计", "Totals"),
    "total_crates": ("总筐数", "Crates"),
    "total_kg": ("总重量 kg", "Weight kg"),
    "capacity": ("核定载重 kg", "Capacity kg"),
    "fill": ("装载率", "Fill"),
    "nothing": ("这辆车尚未安排货物", "Nothing is assigned to this truck"),
    "sign.dispatcher": ("调度员", "Dispatcher"),
    "sign.driver": ("司机", "Driver"),
    "sign.receiver": ("收货人", "Receiver"),
    "sign.signature": ("签字", "Signature"),
    "sign.date": ("日期", "Date"),
    "times": ("时间均为北京时间", "Times are China Standard Time (UTC+8)"),
    "yes": ("是", "Yes"),
    "not_found.title": ("没有这辆车", "No such truck"),
    "not_found.detail": (
        "没有车辆 {plate} 的进场记录。",
        "There is no visit of truck {plate} on record.",
    ),
}


def language(value: str | None) -> Lang:
    """The page language a query asked for; anything unknown gets the hall's Chinese."""
    return "en" if value == "en" else "zh"


def install_pages(app: FastAPI, service: DispatchService) -> None:
    """Add the dispatch board, the dispatch note and their static files."""
    COMMON.mount(app, "common-static")
    _ASSETS.mount(app, "dispatch-static")

    @app.get("/dispatch", response_class=HTMLResponse, include_in_schema=False)
    def dispatch_board(lang: str = "zh") -> HTMLResponse:
        return HTMLResponse(board_html(language(lang)))

    @app.get("/trucks/{plate}/note", response_class=HTMLResponse, include_in_schema=False)
    def dispatch_note(
        plate: str, request: Request, lang: str = "zh", visit: str | None = None
    ) -> HTMLResponse:
        chosen = language(lang)
        try:
            note = service.read(lambda yard: Note.of(_visit_of(yard, plate, visit)))
        except UnknownTruck:
            if "text/html" not in request.headers.get("accept", ""):
                raise  # API clients get the unified JSON error
            return HTMLResponse(not_found_html(chosen, plate), status_code=404)
        return HTMLResponse(note_html(chosen, note))


def _visit_of(yard: Yard, plate: str, visit_id: str | None) -> Visit:
    if visit_id is None:
        return yard.latest_visit(plate)
    visit = yard.visit_by_id(visit_id)
    if normalize_plate(visit.plate) != normalize_plate(plate):
        raise UnknownTruck(normalize_plate(plate))
    return visit


def _texts(lang: Lang, *tables: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    index = 0 if lang == "zh" else 1
    return {key: pair[index] for table in tables for key, pair in table.items()}


def _switch(path: str, lang: Lang, query: str = "") -> dict[str, str]:
    """The language switch's links, keeping the rest of the query."""
    zh = f"{path}?{query}" if query else path
    en = f"{path}?{query}&lang=en" if query else f"{path}?lang=en"
    return {
        "lang": "zh-CN" if lang == "zh" else "en",
        "zh_url": escape(zh),
        "en_url": escape(en),
        "zh_current": "page" if lang == "zh" else "false",
        "en_current": "page" if lang == "en" else "false",
    }


def board_html(lang: Lang) -> str:
    """The dispatch board; the script fills it from the yard's JSON and stream."""
    text = _texts(lang, _COMMON_TEXT, _BOARD_TEXT)
    low, high = tenths_c(COLD_CHAIN_MIN_TENTHS_C), tenths_c(COLD_CHAIN_MAX_TENTHS_C)
    config = {
        "lang": lang,
        "text": text,
        "varieties": {code: names[0 if lang == "zh" else 1] for code, names in VARIETIES.items()},
        "grades": {grade.value: grade.zh if lang == "zh" else GRADE_EN[grade] for grade in Grade},
    }
    values = {f"t.{key}": escape(value) for key, value in text.items()}
    values.update(_switch("/dispatch", lang))
    values.update(
        {
            "base_css": escape(COMMON.url("base.css")),
            "controls_css": escape(COMMON.url("controls.css")),
            "api_js": escape(COMMON.url("api.js")),
            "css_url": escape(asset_url("board.css")),
            "js_url": escape(asset_url("board.js")),
            "config_json": script_json(config),
            "cold_range": escape(
                text["ci.cold_range"].replace("{low}", low).replace("{high}", high)
            ),
        }
    )
    return render(_template("board.html"), values)


@dataclass(frozen=True)
class Note:
    """What a dispatch note prints, copied out of the yard under its lock."""

    visit_id: str
    plate: str
    driver: str
    phone: str
    setpoint_c: str | None
    bay: int | None
    destinations: tuple[str, ...]
    status: TruckStatus
    capacity_g: int
    checked_in_by: str
    checked_in_at: datetime
    loaded_at: datetime | None
    departed_at: datetime | None
    assignments: tuple[Assign, ...]

    @classmethod
    def of(cls, visit: Visit) -> Note:
        truck = visit.checked_in
        setpoint = truck.setpoint_tenths_c if truck.refrigerated else None
        return cls(
            visit_id=visit.visit_id,
            plate=visit.plate,
            driver=truck.driver,
            phone=truck.phone,
            setpoint_c=None if setpoint is None else tenths_c(setpoint),
            bay=visit.bay,
            destinations=tuple(sorted(truck.destinations)),
            status=visit.status,
            capacity_g=truck.capacity_g,
            checked_in_by=truck.by,
            checked_in_at=truck.at,
            loaded_at=visit.moved_at(TruckStatus.LOADED),
            departed_at=visit.departed_at,
            # Assignments made in one request share their moment; the merchant orders them then.
            assignments=tuple(
                sorted(
                    visit.assignments.values(),
                    key=lambda a: (a.at, a.merchant_id, a.destination, a.assignment_id),
                )
            ),
        )

    @property
    def number(self) -> str:
        """The note's number: the day the truck came in and the start of its visit's id."""
        day = self.checked_in_at.astimezone(HALL_TZ).strftime("%Y%m%d")
        return f"{day}-{self.visit_id.replace('-', '')[:8].upper()}"

    @property
    def lines(self) -> list[Line]:
        return [line for a in self.assignments for line in a.lines]

    @property
    def weight_g(self) -> int:
        return sum(a.weight_g for a in self.assignments)

    @property
    def crates(self) -> int:
        return sum(line.crates for line in self.lines)


def _kg(grams: int) -> str:
    """Kilograms as exact as weighed, without trailing zeros: 1250500 g -> 1,250.5."""
    text = f"{g_to_kg(grams):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    grouped = f"{int(whole):,}" if whole.lstrip("-").isdigit() else whole
    return f"{grouped}.{fraction}" if fraction else grouped


def _percent(part: int, whole: int) -> str:
    if whole <= 0:
        return "—"
    share = (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return f"{share}%"


def _hall_time(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(HALL_TZ).strftime("%Y-%m-%d %H:%M")


def _variety(code: str, lang: Lang) -> str:
    names = VARIETIES.get(code)
    return code if names is None else names[0 if lang == "zh" else 1]


def _grade(value: str, lang: Lang) -> str:
    try:
        grade = Grade(value)
    except ValueError:
        return value
    return grade.zh if lang == "zh" else GRADE_EN[grade]


def note_html(lang: Lang, note: Note) -> str:
    """The dispatch note of one visit, for A4 (and A5) paper."""
    text = _texts(lang, _COMMON_TEXT, _NOTE_TEXT)

    def t(key: str, **values: object) -> str:
        phrase = text[key]
        for name, value in values.items():
            phrase = phrase.replace(f"{{{name}}}", str(value))
        return escape(phrase)

    status = (
        t("status.loading_at", bay=note.bay)
        if note.status is TruckStatus.LOADING and note.bay is not None
        else t(f"status.{note.status.value}")
    )
    reefer = t("truck.ambient") if note.setpoint_c is None else t("truck.reefer", c=note.setpoint_c)
    assigned_by = sorted({a.by for a in note.assignments})
    details = [
        ("plate", escape(note.plate)),
        ("driver", escape(note.driver)),
        ("phone", escape(note.phone) or "—"),
        ("reefer", reefer),
        ("bay", "—" if note.bay is None else t("bay.n", n=note.bay)),
        ("destinations", escape("、".join(note.destinations)) or t("truck.anywhere")),
        ("status", status),
        ("checked_in_at", _hall_time(note.checked_in_at)),
        ("loaded_at", _hall_time(note.loaded_at)),
        ("departed_at", _hall_time(note.departed_at)),
        ("checked_in_by", escape(note.checked_in_by)),
        ("assigned_by", escape("、".join(assigned_by)) or "—"),
    ]
    detail_html = "".join(
        f'<div class="detail" data-field="{key}"><dt>{t(key)}</dt><dd>{value}</dd></div>'
        for key, value in details
    )
    groups = []
    for assignment in note.assignments:
        rows = "".join(
            f'<tr data-lot="{escape(line.lot_id)}">'
            f'<td class="lot">{escape(line.lot_id)}</td>'
            f'<td class="farmer">{escape(line.farmer_id)}</td>'
            f"<td>{escape(_variety(line.variety, lang))}</td>"
            f"<td>{escape(_grade(line.grade, lang))}</td>"
            f'<td class="num crates">{line.crates}</td>'
            f'<td class="num kg">{_kg(line.weight_g)}</td></tr>'
            for line in assignment.lines
        )
        crates = sum(line.crates for line in assignment.lines)
        cold = f' <span class="cold">{t("cold_chain")}</span>' if assignment.cold_chain else ""
        groups.append(
            f'<section class="assignment" data-assignment="{escape(assignment.assignment_id)}">'
            f"<h3><span>{t('merchant')}：<b>{escape(assignment.merchant_id)}</b></span>"
            f"<span>{t('destination')}：<b>{escape(assignment.destination) or '—'}</b>{cold}</span>"
            f"</h3><table><thead><tr>"
            f"<th>{t('lot')}</th><th>{t('farmer')}</th><th>{t('variety')}</th>"
            f'<th>{t("grade")}</th><th class="num">{t("crates")}</th>'
            f'<th class="num">{t("kg")}</th></tr></thead><tbody>{rows}</tbody>'
            f'<tfoot><tr><th colspan="4">{t("subtotal")}</th><td class="num">{crates}</td>'
            f'<td class="num">{_kg(assignment.weight_g)}</td></tr></tfoot></table></section>'
        )
    goods = "".join(groups) or f'<p class="nothing">{t("nothing")}</p>'
    totals = [
        ("total_crates", str(note.crates)),
        ("total_kg", _kg(note.weight_g)),
        ("capacity", _kg(note.capacity_g)),
        ("fill", _percent(note.weight_g, note.capacity_g)),
    ]
    totals_html = "".join(
        f'<div class="total" data-total="{key}"><dt>{t(key)}</dt><dd>{value}</dd></div>'
        for key, value in totals
    )
    path = f"/trucks/{note.plate}/note"
    values = {f"t.{key}": escape(value) for key, value in text.items()}
    values.update(_switch(escape_path(path), lang, f"visit={note.visit_id}"))
    values.update(
        {
            "base_css": escape(COMMON.url("base.css")),
            "css_url": escape(asset_url("note.css")),
            "js_url": escape(asset_url("note.js")),
            "board_url": "/dispatch" if lang == "zh" else "/dispatch?lang=en",
            "note_no": escape(note.number),
            "plate": escape(note.plate),
            "details": detail_html,
            "goods": goods,
            "totals": totals_html,
        }
    )
    return render(_template("note.html"), values)


def escape_path(path: str) -> str:
    """A path with its non-ASCII characters (the plate's province) percent-encoded."""
    return quote(path, safe="/")


def not_found_html(lang: Lang, plate: str) -> str:
    text = _texts(lang, _COMMON_TEXT, _NOTE_TEXT)
    values = {f"t.{key}": escape(value) for key, value in text.items()}
    values.update(_switch(escape_path(f"/trucks/{plate}/note"), lang))
    values.update(
        {
            "base_css": escape(COMMON.url("base.css")),
            "css_url": escape(asset_url("note.css")),
            "board_url": "/dispatch" if lang == "zh" else "/dispatch?lang=en",
            "detail": escape(text["not_found.detail"].replace("{plate}", normalize_plate(plate))),
        }
    )
    return render(_template("not_found.html"), values)


_ASSETS = WebAssets(WEB_DIR, STATIC_URL)
asset_url = _ASSETS.url
_template = _ASSETS.template
