"""The day plan: everything a simulated trading day will do, drawn up front from a seed.

Pure and deterministic: the same seed and date give the same plan, so a day can be shown
(``--plan-only``), tested and run again. Lot tags, bid ids and plates carry the date and the seed,
so a later day on the same hall never reuses an earlier day's ids.

What is modelled, and how:

- Farmers are households of Minqin's townships and village groups; the same seed brings the same
  households every day, some of them with two loads.
- Lots arrive in a morning rush: arrival times are a non-homogeneous Poisson process conditioned
  on the day's number of lots, with an intensity that rises from 05:00, is highest from 07:00 to
  09:00 and tails off by noon.
- A lot is plastic crates of one variety. Fruit weights are lognormal around the variety's
  typical weight, Brix normal around its typical sugar (clipped to the refractometer's 0-35); a
  few lots have defective fruits in the sample. Gross = net + crate tare, to the scale's division.
- Each lot goes to the platform scale that is free first (ties in turn), and takes the time of
  unloading and stacking its crates there.
- Merchants bid by strategy, following the supply the lots bring: volume just above the reserve,
  extra grade with cold chain, class II bargains, small cold-chain lots for an online shop, and
  one who bids low and then amends or cancels. Each plans to commit at most nine tenths of their
  purchase limit; what they spent on earlier days the runner finds out from the hall.
- Trucks come to the gate through the day, sized to what is being sold, about a third of them
  reefers set to 8.0 °C, bound for the merchants' destinations (a few go anywhere).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from ingest.domain.grading import (
    DEFAULT_PROFILE_ID,
    PROFILES_DIR,
    GradingProfile,
    Sample,
    load_profile,
)
from ingest.domain.tare import DEFAULT_CRATE_TARES
from melon_contracts.reference import VARIETIES, Grade
from melon_contracts.units import amount_fen, fen_to_yuan, g_to_kg, yuan_to_fen
from melon_devkit.demo import DEMO_ACCOUNTS
from melon_devkit.hall import SCALES
from pricing.settings import Settings

HOUR = 3600
MINUTE = 60
CRATE_TYPE = "plastic-crate"
CRATE_TARE_G = DEFAULT_CRATE_TARES.tare_of(CRATE_TYPE)
"""The park's returnable plastic crate, as ingest knows it until the cooperative sets its own."""

ARRIVALS = ((5.0, 0.0), (6.0, 0.35), (7.0, 1.0), (9.0, 1.0), (10.0, 0.5), (11.0, 0.2), (12.0, 0.0))
"""The lots' arrival intensity by hall hour, relative to the rush (piecewise linear)."""
DAY_STARTS_AT_S = 5 * HOUR
LAST_BID_AT_S = 12 * HOUR + 30 * MINUTE
EARLIEST_CLOSE_S = 13 * HOUR + 30 * MINUTE


def clock_text(seconds: int) -> str:
    """Hall time of day, ``07:42``; past midnight it keeps counting (``25:10``)."""
    minutes = int(seconds) // MINUTE
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def kg_text(grams: int, places: int = 1) -> str:
    return f"{g_to_kg(grams):.{places}f}"


@dataclass(frozen=True)
class Variety:
    """How a variety grows in Minqin: typical fruit weight, sugar, and its share of the lots."""

    code: str
    fruit_g: int
    brix: float
    brix_sd: float
    share: float


VARIETY_TRAITS: Mapping[str, Variety] = {
    "xizhoumi": Variety("xizhoumi", 2_400, 13.4, 1.2, 0.45),
    "ganmibao": Variety("ganmibao", 2_600, 12.9, 1.2, 0.35),
    "yujinxiang": Variety("yujinxiang", 2_000, 14.0, 1.3, 0.20),
}
OTHER_VARIETY = Variety("", 2_300, 13.0, 1.2, 0.05)
"""For a variety the cooperative adds to the list before this table knows it."""

TOWNSHIPS = (
    "红沙梁", "大坝", "收成", "东湖", "西渠", "泉山", "夹河", "薛百",
    "双茨科", "苏武", "大滩", "三雷", "蔡旗", "重兴", "东坝", "昌宁",
)  # fmt: skip
"""Minqin's townships; a household belongs to a village group of one, e.g. 红沙梁3组."""
SURNAMES = (
    ("li", "李"), ("wang", "王"), ("zhang", "张"), ("liu", "刘"), ("chen", "陈"),
    ("yang", "杨"), ("zhao", "赵"), ("ma", "马"), ("sun", "孙"), ("zhou", "周"),
    ("wu", "吴"), ("xu", "徐"), ("hu", "胡"), ("guo", "郭"), ("gao", "高"), ("luo", "罗"),
)  # fmt: skip
GIVEN_NAMES = (
    ("jianguo", "建国"), ("guiying", "桂英"), ("xiulan", "秀兰"), ("yongqiang", "永强"),
    ("hongmei", "红梅"), ("zhiming", "志明"), ("haiyan", "海燕"), ("decai", "德才"),
    ("fugui", "富贵"), ("lanying", "兰英"), ("wenjun", "文军"), ("shulan", "淑兰"),
    ("guohua", "国华"), ("yuzhen", "玉珍"), ("xiaodong", "晓东"), ("chunhua", "春华"),
)  # fmt: skip
DEFECTS = (("bruise", 5), ("scar", 4), ("sunburn", 3), ("cracked", 2), ("pest", 1), ("rot", 1))
"""Defect kinds of the Minqin profile and how often each turns up in a sample."""

PROVINCE_OF = {
    "兰州": "甘A", "西安": "陕A", "成都": "川A", "杭州": "浙A", "上海": "沪B", "郑州": "豫A",
}  # fmt: skip
"""Trucks often come from where the goods go; local hauliers carry Wuwei's 甘H."""
LOCAL_PROVINCE = "甘H"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
TRUCK_CLASSES_KG = (1_500, 3_000, 5_000, 8_000, 12_000, 18_000, 30_000)
REEFER_SETPOINT_C = "8.0"


@dataclass(frozen=True)
class Station:
    """A platform scale a lot can be weighed on."""

    station: str
    division_g: int
    max_g: int


def platform_stations() -> tuple[Station, ...]:
    """The hall's platform scales (``make run`` and the tests start the same ones)."""
    return tuple(
        Station(s.station, s.division_g, s.capacity_kg * 1000)
        for s in SCALES
        if s.kind == "platform"
    )


@dataclass(frozen=True)
class Farmer:
    farmer_id: str
    name: str
    village_group: str


@dataclass(frozen=True)
class Lot:
    """One farmer's load of crates, its sample, and when and where it is weighed."""

    lot_id: str
    farmer_id: str
    farmer_name: str
    village_group: str
    variety: str
    crates: int
    crate_type: str
    gross_g: int
    tare_g: int
    net_g: int
    brix: tuple[float, ...]
    fruit_weights_g: tuple[int, ...]
    defects: Mapping[str, int]
    expected_grade: str
    """The grade the hall's grading profile gives this sample (ingest grades it for real)."""
    arrives_at_s: int
    station: str
    operator_id: str
    starts_at_s: int
    ends_at_s: int
    noise_frames: int
    """Malformed frames the station's serial line picks up while the crates go on (often 0)."""

    @property
    def gross_kg(self) -> str:
        return str(g_to_kg(self.gross_g))

    def weighing_body(self, harvest_date: date) -> dict[str, Any]:
        """What the operator sends when scanning the lot's tag."""
        return {
            "lot_id": self.lot_id,
            "farmer_id": self.farmer_id,
            "village_group": self.village_group,
            "variety": self.variety,
            "harvest_date": harvest_date.isoformat(),
            "crates": self.crates,
            "crate_type": self.crate_type,
            "sample": {
                "brix": list(self.brix),
                "fruit_weights_g": list(self.fruit_weights_g),
                "defects": dict(self.defects),
            },
            "operator_id": self.operator_id,
        }


@dataclass(frozen=True)
class Strategy:
    """How a merchant bids: which grades (best liked first), at what premium, how much, where to."""

    merchant_id: str
    kind: str
    grades: tuple[Grade, ...]
    premium_fen: Mapping[Grade, tuple[int, int]]
    """Above the grade's reserve, fen per kg (low, high); negative bids below it."""
    quantity_kg: tuple[int, int]
    destinations: tuple[str, ...]
    cold_chain: bool
    min_lot_kg: int | None = None


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "merchant-xian",
        "steady",
        (Grade.CLASS_I, Grade.CLASS_II),
        {Grade.CLASS_I: (10, 40), Grade.CLASS_II: (10, 30)},
        (1_000, 3_000),
        ("西安",),
        False,
    ),
    Strategy(
        "merchant-lanzhou",
        "premium",
        (Grade.EXTRA, Grade.CLASS_I),
        {Grade.EXTRA: (80, 160), Grade.CLASS_I: (40, 80)},
        (400, 1_500),
        ("兰州",),
        True,
        min_lot_kg=150,
    ),
    Strategy(
        "shop-online-01",
        "shop",
        (Grade.EXTRA, Grade.CLASS_I),
        {Grade.EXTRA: (100, 180), Grade.CLASS_I: (80, 140)},
        (150, 400),
        ("杭州", "上海"),
        True,
    ),
    Strategy(
        "merchant-chengdu",
        "bargain",
        (Grade.CLASS_II, Grade.OUT_OF_GRADE, Grade.CLASS_I),
        {Grade.CLASS_II: (0, 20), Grade.OUT_OF_GRADE: (0, 20), Grade.CLASS_I: (0, 10)},
        (800, 2_500),
        ("成都",),
        False,
    ),
    Strategy(
        "merchant-zhengzhou",
        "amender",
        (Grade.CLASS_I, Grade.CLASS_II),
        {Grade.CLASS_I: (-30, -10), Grade.CLASS_II: (-30, -10)},
        (600, 1_500),
        ("郑州",),
        False,
    ),
)
"""The demo merchants' ways of bidding (their accounts are ``demo.DEMO_ACCOUNTS``)."""
AMEND_ABOVE_RESERVE_FEN = (10, 30)
"""Where the amending merchant raises a bid to once nothing came at its price below the reserve."""
TURNS = (0, 1, 2, 3, 0, 4, 2, 1, 3, 0)
"""Who bids next, as indices into ``STRATEGIES``: wholesalers bid more often than the rest."""


@dataclass(frozen=True)
class Bid:
    """A merchant's bid and what they may do with it later (amend the price, or cancel)."""

    bid_id: str
    merchant_id: str
    strategy: str
    at_s: int
    variety: str
    grade: str
    price_fen_per_kg: int
    quantity_g: int
    min_lot_g: int | None
    destination: str
    cold_chain: bool
    amend_at_s: int | None = None
    amend_price_fen_per_kg: int | None = None
    cancel_at_s: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "bid_id": self.bid_id,
            "variety": self.variety,
            "grade": self.grade,
            "price_yuan_per_kg": str(fen_to_yuan(self.price_fen_per_kg)),
            "quantity_kg": str(g_to_kg(self.quantity_g)),
            "destination": self.destination,
            "cold_chain": self.cold_chain,
        }
        if self.min_lot_g is not None:
            body["min_lot_kg"] = str(g_to_kg(self.min_lot_g))
        return body


@dataclass(frozen=True)
class Truck:
    plate: str
    driver: str
    phone: str
    capacity_g: int
    setpoint_c: str | None
    """A reefer's set-point; None for an ambient truck."""
    destinations: tuple[str, ...]
    """Empty: the truck goes anywhere."""
    arrives_at_s: int

    def check_in_body(self) -> dict[str, Any]:
        return {
            "plate": self.plate,
            "driver": self.driver,
            "phone": self.phone,
            "capacity_kg": str(g_to_kg(self.capacity_g)),
            "refrigerated": self.setpoint_c is not None,
            "setpoint_c": self.setpoint_c,
            "destinations": list(self.destinations),
            "checked_in_by": "gate-1",
        }


@dataclass(frozen=True)
class DispatchPolicy:
    """How the yard office works: how often it looks, when a truck is worth loading, how long."""

    every_s: int = 15 * MINUTE
    fill_to_load: float = 0.8
    """A truck this full goes to a bay."""
    patience_s: int = 90 * MINUTE
    """A truck with goods that waited this long since its first load goes anyway."""
    loading_s: int = 10 * MINUTE
    loading_s_per_t: int = 4 * MINUTE
    paperwork_s: int = 5 * MINUTE
    """From loaded to out of the gate: the dispatch note, the seals, the reefer's printout."""
    by: str = "yard-1"

    def loading_time_s(self, loaded_g: int) -> int:
        return self.loading_s + math.ceil(self.loading_s_per_t * loaded_g / 1_000_000)

    def ready(self, fill: float, waited_s: float, closing: bool) -> bool:
        """Whether a truck with goods on it should go to a bay now."""
        return fill > 0 and (closing or fill >= self.fill_to_load or waited_s >= self.patience_s)


@dataclass(frozen=True)
class DayPlan:
    date: date
    seed: int
    starts_at_s: int
    closes_at_s: int
    """The close: merchants withdraw what is left of their bids, the cooperative unsold lots."""
    stations: tuple[Station, ...]
    farmers: tuple[Farmer, ...]
    lots: tuple[Lot, ...]
    bids: tuple[Bid, ...]
    trucks: tuple[Truck, ...]
    dispatch: DispatchPolicy = field(default_factory=DispatchPolicy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with every time of day also as hall time (``arrives_at`` next to
        ``arrives_at_s``)."""
        data: dict[str, Any] = _with_clock(dataclasses.asdict(self))
        return data


def _with_clock(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = _with_clock(item)
            if key.endswith("at_s") and isinstance(item, int):
                out[key[:-2]] = clock_text(item)
        return out
    if isinstance(value, list | tuple):
        return [_with_clock(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def default_reserves() -> dict[Grade, int]:
    """The cooperative's reserve per grade as the pricing service ships it (fen per kg)."""
    reserves: Mapping[Grade, int] = Settings.model_fields["reserve_fen_per_kg"].default
    return {Grade(grade): int(fen) for grade, fen in reserves.items()}


@cache
def hall_profile() -> GradingProfile:
    """The grading profile the hall starts with: the plan's forecast of each lot's grade."""
    return load_profile(PROFILES_DIR / f"{DEFAULT_PROFILE_ID}.yaml")


def day_tag(day: date, seed: int) -> str:
    """``261130-7``: the part of every id that names the day and the seed."""
    return f"{day:%y%m%d}-{seed}"


def lot_tag(day: date, seed: int, number: int) -> str:
    return f"MQ-{day_tag(day, seed)}-{number:04d}"


def bid_id(day: date, seed: int, number: int) -> str:
    return f"B-{day_tag(day, seed)}-{number:03d}"


def make_plan(
    day: date,
    seed: int,
    *,
    lots: int = 80,
    bids: int = 30,
    trucks: int = 10,
    stations: Sequence[Station] | None = None,
    reserves: Mapping[Grade, int] | None = None,
    dispatch: DispatchPolicy | None = None,
) -> DayPlan:
    """The plan of one day at the hall; the same arguments always give the same plan."""
    if seed < 0:
        raise ValueError("the seed is a whole number from 0")
    if not 0 <= lots <= 10_000 or not 0 <= bids <= 1_000 or not 0 <= trucks <= 200:
        raise ValueError("a day has 0-10000 lots, 0-1000 bids and 0-200 trucks")
    chosen_stations = tuple(stations) if stations is not None else platform_stations()
    if not chosen_stations:
        raise ValueError("a day needs at least one platform scale")
    reserve = dict(reserves) if reserves is not None else default_reserves()
    rng = random.Random(f"melon-hall day {seed} {day.isoformat()}")
    farmers = _farmers(random.Random(f"melon-hall farmers {seed}"), max(1, math.ceil(lots * 0.7)))
    planned_lots = _lots(rng, day, seed, lots, farmers, chosen_stations)
    planned_bids = _bids(rng, day, seed, bids, planned_lots, reserve)
    planned_trucks = _trucks(rng, day, seed, trucks, planned_bids)
    last = max(
        [lot.ends_at_s for lot in planned_lots]
        + [bid.at_s for bid in planned_bids]
        + [bid.amend_at_s or bid.cancel_at_s or 0 for bid in planned_bids]
        + [truck.arrives_at_s for truck in planned_trucks]
        + [EARLIEST_CLOSE_S - 30 * MINUTE]
    )
    closes = math.ceil((last + 30 * MINUTE) / (30 * MINUTE)) * 30 * MINUTE
    return DayPlan(
        date=day,
        seed=seed,
        starts_at_s=DAY_STARTS_AT_S,
        closes_at_s=closes,
        stations=chosen_stations,
        farmers=tuple(farmers),
        lots=tuple(planned_lots),
        bids=tuple(planned_bids),
        trucks=tuple(planned_trucks),
        dispatch=dispatch or DispatchPolicy(),
    )


def _farmers(rng: random.Random, count: int) -> list[Farmer]:
    farmers: list[Farmer] = []
    seen: dict[str, int] = {}
    for _ in range(count):
        (surname, surname_zh), (given, given_zh) = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
        base = f"farmer-{surname}-{given}"
        seen[base] = seen.get(base, 0) + 1
        farmer_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
        village = f"{rng.choice(TOWNSHIPS)}{rng.randint(1, 9)}组"
        farmers.append(Farmer(farmer_id, surname_zh + given_zh, village))
    return farmers


def arrival_intensity(at_s: float) -> float:
    """The relative arrival intensity at a time of day: 1 in the rush, 0 before 05:00 and
    from noon."""
    hour = at_s / HOUR
    for (h0, v0), (h1, v1) in itertools.pairwise(ARRIVALS):
        if h0 <= hour < h1:
            return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
    return 0.0


def arrival_times(rng: random.Random, count: int) -> list[int]:
    """``count`` arrivals of the morning's Poisson process, in order.

    Given how many lots come, the arrival times of a Poisson process are independent draws from
    its intensity; each is drawn by thinning (accept a uniform time with probability intensity).
    """
    start, end = ARRIVALS[0][0] * HOUR, ARRIVALS[-1][0] * HOUR
    times: list[int] = []
    while len(times) < count:
        at = rng.uniform(start, end)
        if rng.random() < arrival_intensity(at):
            times.append(int(at))
    return sorted(times)


def _variety_traits() -> list[Variety]:
    return [
        VARIETY_TRAITS.get(code, dataclasses.replace(OTHER_VARIETY, code=code))
        for code in sorted(VARIETIES)
    ]


def _lots(
    rng: random.Random,
    day: date,
    seed: int,
    count: int,
    farmers: Sequence[Farmer],
    stations: Sequence[Station],
) -> list[Lot]:
    traits = _variety_traits()
    free_at = {s.station: 0 for s in stations}
    lots: list[Lot] = []
    for number, arrives in enumerate(arrival_times(rng, count), start=1):
        farmer = rng.choice(farmers)
        variety = rng.choices(traits, weights=[v.share for v in traits])[0]
        station = _free_first(stations, free_at, number)
        sample, crates, net_g = _load(rng, variety, station)
        tare_g = crates * CRATE_TARE_G
        gross_g = _to_division(net_g + tare_g, station.division_g)
        starts = max(arrives, free_at[station.station])
        ends = starts + 2 * MINUTE + 4 * crates
        free_at[station.station] = ends
        lots.append(
            Lot(
                lot_id=lot_tag(day, seed, number),
                farmer_id=farmer.farmer_id,
                farmer_name=farmer.name,
                village_group=farmer.village_group,
                variety=variety.code,
                crates=crates,
                crate_type=CRATE_TYPE,
                gross_g=gross_g,
                tare_g=tare_g,
                net_g=gross_g - tare_g,
                brix=sample.brix,
                fruit_weights_g=sample.fruit_weights_g,
                defects=dict(sample.defects),
                expected_grade=hall_profile().grade(sample).grade.value,
                arrives_at_s=arrives,
                station=station.station,
                operator_id=f"op-{station.station}",
                starts_at_s=starts,
                ends_at_s=ends,
                noise_frames=rng.choice((3, 5)) if rng.random() < 0.05 else 0,
            )
        )
    return lots


def _free_first(stations: Sequence[Station], free_at: Mapping[str, int], turn: int) -> Station:
    """The scale free first; when several are, the next in turn."""
    order = {s.station: (i - turn) % len(stations) for i, s in enumerate(stations)}
    return min(stations, key=lambda s: (free_at[s.station], order[s.station]))


def _to_division(grams: int, division_g: int) -> int:
    return max(division_g, round(grams / division_g) * division_g)


def _load(rng: random.Random, variety: Variety, station: Station) -> tuple[Sample, int, int]:
    """A lot's sample, crates and net grams; small enough for the platform scale."""
    lot_brix = rng.gauss(variety.brix, variety.brix_sd)
    lot_fruit_g = rng.lognormvariate(math.log(variety.fruit_g), 0.12)
    fruits = rng.choice((8, 10, 10, 10, 12))
    brix = tuple(round(min(35.0, max(0.0, rng.gauss(lot_brix, 0.5))), 1) for _ in range(fruits))
    weights = tuple(
        min(20_000, max(1, round(rng.lognormvariate(math.log(lot_fruit_g), 0.08))))
        for _ in range(fruits)
    )
    defects: dict[str, int] = {}
    if rng.random() < 0.12:
        kinds, often = zip(*DEFECTS, strict=True)
        kind = rng.choices(kinds, weights=often)[0]
        defects[kind] = rng.choice((1, 1, 1, 2))
    per_crate = max(3, round(11_000 / lot_fruit_g))
    crate_net_g = per_crate * lot_fruit_g
    most = int(0.95 * station.max_g // (crate_net_g + CRATE_TARE_G))
    crates = min(most, max(10, round(rng.lognormvariate(math.log(36), 0.35))))
    net_g = round(crates * crate_net_g * rng.uniform(0.97, 1.03))
    return Sample(brix=brix, fruit_weights_g=weights, defects=defects), crates, net_g


def _round_to(fen: float, step: int = 5) -> int:
    return int(round(fen / step) * step)


def _bids(
    rng: random.Random,
    day: date,
    seed: int,
    count: int,
    lots: Sequence[Lot],
    reserve: Mapping[Grade, int],
) -> list[Bid]:
    """Bids that follow the supply: each takes part of what the lots bring to its book, and comes
    some time after the lots it wants were weighed (a few rest on the book before any come)."""
    supply: dict[tuple[str, str], list[Lot]] = {}
    for lot in lots:
        supply.setdefault((lot.variety, lot.expected_grade), []).append(lot)
    left = {book: sum(lot.net_g for lot in found) for book, found in supply.items()}
    # A merchant plans to commit at most nine tenths of their purchase limit in a day.
    budget = {a[0]: yuan_to_fen(a[2]) * 9 // 10 for a in DEMO_ACCOUNTS if a[3] == "merchant"}
    drafts: list[tuple[int, Strategy, str, Grade, int, int, int]] = []
    amenders = 0
    for turn in range(count):
        strategy = STRATEGIES[TURNS[turn % len(TURNS)]]
        pick = _pick_book(rng, strategy, left, reserve, budget.get(strategy.merchant_id, 0))
        if pick is None:
            continue
        variety, grade, quantity_g, price = pick
        left[(variety, grade.value)] -= quantity_g
        budget[strategy.merchant_id] -= amount_fen(
            quantity_g, _dearest(strategy, grade, price, reserve)
        )
        at = _bid_time(rng, supply[(variety, grade.value)], quantity_g)
        drafts.append((at, strategy, variety, grade, price, quantity_g, turn))
    drafts.sort(key=lambda d: (d[0], d[6]))
    planned: list[Bid] = []
    for number, (at, strategy, variety, grade, price, quantity_g, _) in enumerate(drafts, 1):
        destination = strategy.destinations[number % len(strategy.destinations)]
        min_lot = strategy.min_lot_kg
        bid = Bid(
            bid_id=bid_id(day, seed, number),
            merchant_id=strategy.merchant_id,
            strategy=strategy.kind,
            at_s=at,
            variety=variety,
            grade=grade.value,
            price_fen_per_kg=price,
            quantity_g=quantity_g,
            min_lot_g=None if min_lot is None else min(min_lot * 1000, quantity_g),
            destination=destination,
            cold_chain=strategy.cold_chain,
        )
        if strategy.kind == "amender":
            # Bids below the reserve rest unfilled; the merchant raises one, gives up on the next.
            amenders += 1
            if amenders % 2:
                bid = dataclasses.replace(
                    bid,
                    amend_at_s=at + rng.randint(30, 60) * MINUTE,
                    amend_price_fen_per_kg=_round_to(
                        reserve[grade] + rng.uniform(*AMEND_ABOVE_RESERVE_FEN)
                    ),
                )
            else:
                bid = dataclasses.replace(bid, cancel_at_s=at + rng.randint(40, 90) * MINUTE)
        planned.append(bid)
    return planned


def _dearest(strategy: Strategy, grade: Grade, price: int, reserve: Mapping[Grade, int]) -> int:
    """The highest price a bid may come to: an amender's bid is raised above the reserve."""
    if strategy.kind != "amender":
        return price
    return max(price, reserve[grade] + AMEND_ABOVE_RESERVE_FEN[1])


def _pick_book(
    rng: random.Random,
    strategy: Strategy,
    left: Mapping[tuple[str, str], int],
    reserve: Mapping[Grade, int],
    budget_fen: int,
) -> tuple[str, Grade, int, int] | None:
    """The first grade the strategy likes with enough supply left, a variety in proportion to
    that supply, a price by the strategy, and a quantity within the supply and the budget."""
    low_kg, high_kg = strategy.quantity_kg
    for grade in strategy.grades:
        books = sorted((v, g) for (v, g), grams in left.items() if g == grade.value and grams > 0)
        weights = [left[book] for book in books]
        if not books:
            continue
        variety, _ = rng.choices(books, weights=weights)[0]
        low, high = strategy.premium_fen[grade]
        price = max(10, _round_to(reserve[grade] + rng.uniform(low, high)))
        affordable_g = budget_fen * 1000 // _dearest(strategy, grade, price, reserve)
        wanted_g = rng.randint(low_kg, high_kg) * 1000
        quantity_g = min(wanted_g, int(left[(variety, grade.value)] * 0.9), affordable_g)
        quantity_g = quantity_g // 10_000 * 10_000
        if quantity_g >= 100_000:
            return variety, grade, quantity_g, price
    return None


def _bid_time(rng: random.Random, lots: Sequence[Lot], quantity_g: int) -> int:
    """Some time after one of the book's lots was weighed (heavier lots draw more bids), once
    part of the quantity is there; one bid in five rests on the book before any lot comes."""
    weighed = sorted(lots, key=lambda lot: lot.ends_at_s)
    if rng.random() < 0.2:
        at = weighed[0].ends_at_s - rng.randint(10, 60) * MINUTE
    else:
        cumulative = list(itertools.accumulate(lot.net_g for lot in weighed))
        enough = bisect.bisect_left(cumulative, quantity_g * rng.uniform(0.2, 0.8))
        drawn = rng.choices(weighed, weights=[lot.net_g for lot in weighed])[0]
        after = max(drawn.ends_at_s, weighed[min(enough, len(weighed) - 1)].ends_at_s)
        at = after + rng.randint(5, 30) * MINUTE
    return min(LAST_BID_AT_S, max(DAY_STARTS_AT_S + HOUR, at))


def _trucks(
    rng: random.Random, day: date, seed: int, count: int, bids: Sequence[Bid]
) -> list[Truck]:
    if count == 0:
        return []
    cold: dict[str, int] = {}
    ambient: dict[str, int] = {}
    for bid in bids:
        wanted = cold if bid.cold_chain else ambient
        wanted[bid.destination] = wanted.get(bid.destination, 0) + bid.quantity_g
    everywhere = sorted({d for s in STRATEGIES for d in s.destinations})
    reefers = round(count / 3) or (1 if cold else 0)
    anywhere = min(count - reefers, max(1, round(count * 0.15))) if count >= 2 else 0
    roles = ["reefer"] * reefers + ["anywhere"] * anywhere
    roles += ["ambient"] * (count - len(roles))
    rng.shuffle(roles)

    bid_times = sorted(bid.at_s for bid in bids)
    arrivals: list[int] = []
    for _ in range(count):
        if bid_times and rng.random() < 0.7:
            at = rng.choice(bid_times) + rng.randint(0, 90) * MINUTE
        else:
            at = rng.randint(7 * HOUR, 13 * HOUR)
        arrivals.append(min(13 * HOUR, max(6 * HOUR + 30 * MINUTE, at)))
    arrivals.sort()

    routes: list[tuple[str, ...]] = []
    for role in roles:
        if role == "reefer":
            routes.append(_some(rng, cold or ambient or dict.fromkeys(everywhere, 1), 3))
        elif role == "ambient":
            routes.append(_some(rng, ambient or cold or dict.fromkeys(everywhere, 1), 2))
        else:
            routes.append(())
    reefer_at = [i for i, role in enumerate(roles) if role == "reefer"]
    uncovered = [d for d in sorted(cold) if not any(d in routes[i] for i in reefer_at)]
    for n, destination in enumerate(uncovered if reefer_at else []):
        # Every cold-chain destination gets a reefer going there, or its goods could not leave.
        routes[reefer_at[n % len(reefer_at)]] += (destination,)

    trucks: list[Truck] = []
    plates: set[str] = set()
    sizes = _sizes(rng, routes, cold, ambient)
    for number, (destinations, arrives) in enumerate(zip(routes, arrivals, strict=True), start=1):
        role, size = roles[number - 1], sizes[number - 1]
        province = PROVINCE_OF.get(destinations[0], LOCAL_PROVINCE) if destinations else None
        plate = _plate(day, seed, number, province or LOCAL_PROVINCE, plates)
        plates.add(plate)
        surname = rng.choice(SURNAMES)[1]
        digits = int(hashlib.sha256(plate.encode()).hexdigest()[:8], 16) % 10**8
        trucks.append(
            Truck(
                plate=plate,
                driver=f"{surname}师傅",
                phone=f"139{digits:08d}",
                capacity_g=size * 1000,
                setpoint_c=REEFER_SETPOINT_C if role == "reefer" else None,
                destinations=destinations,
                arrives_at_s=arrives,
            )
        )
    return trucks


def _sizes(
    rng: random.Random,
    routes: Sequence[tuple[str, ...]],
    cold: Mapping[str, int],
    ambient: Mapping[str, int],
) -> list[int]:
    """Each truck's capacity in kg: a class near its share of the goods for where it goes.

    A destination's goods are shared by the trucks going there, a truck that goes anywhere
    counting as half a truck for each destination.
    """
    demand = {d: cold.get(d, 0) + ambient.get(d, 0) for d in {*cold, *ambient}}
    anywhere = sum(1 for route in routes if not route)
    sharing = {d: sum(1 for r in routes if d in r) + 0.5 * anywhere for d in demand}
    sizes = []
    for route in routes:
        if route:
            wanted_g = sum(demand.get(d, 0) / sharing[d] for d in route if d in demand)
        else:
            wanted_g = sum(0.5 * grams / sharing[d] for d, grams in demand.items())
        target_kg = min(30_000.0, max(1_500.0, 1.2 * wanted_g / 1000))
        nearest = min(
            range(len(TRUCK_CLASSES_KG)),
            key=lambda i: abs(math.log(TRUCK_CLASSES_KG[i] / target_kg)),
        )
        jitter = rng.choice((-1, 0, 0, 0, 1))
        sizes.append(TRUCK_CLASSES_KG[min(len(TRUCK_CLASSES_KG) - 1, max(0, nearest + jitter))])
    return sizes


def _some(rng: random.Random, weights: Mapping[str, int], most: int) -> tuple[str, ...]:
    """One to ``most`` destinations, the busier ones more likely, in a stable order."""
    names = sorted(weights)
    chosen: set[str] = set()
    for _ in range(rng.randint(1, min(most, len(names)))):
        chosen.add(rng.choices(names, weights=[weights[n] for n in names])[0])
    return tuple(sorted(chosen, key=names.index))


def _plate(day: date, seed: int, number: int, province: str, taken: set[str]) -> str:
    """A plate from the day, the seed and the truck's number: the same on a rerun of the day,
    and different on another day (letter and four digits from a digest of the three)."""
    attempt = 0
    while True:
        digest = hashlib.sha256(f"{day.isoformat()} {seed} {number} {attempt}".encode()).digest()
        value = int.from_bytes(digest[:8], "big")
        plate = f"{province}·{PLATE_LETTERS[value % len(PLATE_LETTERS)]}{value // 97 % 10_000:04d}"
        if plate not in taken:
            return plate
        attempt += 1
