/*
 * What the wall and the merchant desk share: the page's texts, numbers as the hall reads them,
 * the hall's clock (Asia/Shanghai, whatever the device's own time zone) and the board stream.
 *
 * Prices and weights arrive as decimal strings and are shown from those strings, never through
 * binary floats, so 5.60 yuan/kg is always 5.60.
 */
"use strict";

window.MelonBoard = (() => {
  const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
  const TEXT = CONFIG.text;
  const HALL_TZ = "Asia/Shanghai";
  const DASH = "—";

  function t(key, values) {
    let text = Object.hasOwn(TEXT, key) ? TEXT[key] : key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.replaceAll(`{${name}}`, String(value));
    }
    return text;
  }

  // -- numbers ------------------------------------------------------------------------------

  const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

  function parts(value) {
    if (value === null || value === undefined || value === "") return null;
    const match = DECIMAL.exec(String(value).trim());
    if (!match) return null;
    return { sign: match[1], whole: match[2], fraction: match[3] || "" };
  }

  const group = (whole) => whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");

  /** A price in yuan with exactly two decimals: "5.6" -> "5.60"; null -> "—". */
  function price(value) {
    const p = parts(value);
    if (!p) return value === null || value === undefined ? DASH : String(value);
    let fraction = p.fraction.padEnd(2, "0");
    if (fraction.length > 2) fraction = fraction.replace(/0+$/, "").padEnd(2, "0");
    return `${p.sign}${group(p.whole)}.${fraction}`;
  }

  /** A weight in kg as exact as it came, grouped, no trailing zeros: "12345.500" -> "12,345.5". */
  function kg(value) {
    const p = parts(value);
    if (!p) return value === null || value === undefined ? DASH : String(value);
    const fraction = p.fraction.replace(/0+$/, "");
    return `${p.sign}${group(p.whole)}${fraction ? `.${fraction}` : ""}`;
  }

  /** Fen from a yuan string, exact, for comparing and the percent change; null when absent. */
  function fen(value) {
    const p = parts(value);
    if (!p) return null;
    const cents = Number(p.whole) * 100 + Number(p.fraction.padEnd(2, "0").slice(0, 2));
    return p.sign ? -cents : cents;
  }

  const isZero = (value) => {
    const p = parts(value);
    return !p || /^0*$/.test(p.whole + p.fraction);
  };

  // -- the hall's clock ---------------------------------------------------------------------

  const dayFormat = new Intl.DateTimeFormat("en-CA", {
    timeZone: HALL_TZ,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  });
  const timeFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: HALL_TZ,
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  const weekdayFormat = new Intl.DateTimeFormat(CONFIG.lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: HALL_TZ,
    weekday: "short",
  });

  /** The hall's calendar day, YYYY-MM-DD: the trading day of the board's day figures. */
  const hallToday = (now = new Date()) => dayFormat.format(now);
  const hallTime = (when = new Date()) => timeFormat.format(when);
  const hallWeekday = (when = new Date()) => weekdayFormat.format(when);

  function hallDateTime(iso) {
    if (!iso) return DASH;
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return String(iso);
    return `${hallToday(when)} ${hallTime(when)}`;
  }

  // -- board lines --------------------------------------------------------------------------

  const varietyRank = new Map(Object.keys(CONFIG.varieties).map((code, i) => [code, i]));
  const gradeRank = new Map(CONFIG.gradeOrder.map((code, i) => [code, i]));

  /** Books in the hall's order: varieties as the reference list has them, then grades. */
  function bookOrder(a, b) {
    const va = varietyRank.has(a.variety) ? varietyRank.get(a.variety) : Infinity;
    const vb = varietyRank.has(b.variety) ? varietyRank.get(b.variety) : Infinity;
    if (va !== vb) return va - vb;
    if (a.variety !== b.variety) return a.variety < b.variety ? -1 : 1;
    const ga = gradeRank.has(a.grade) ? gradeRank.get(a.grade) : Infinity;
    const gb = gradeRank.has(b.grade) ? gradeRank.get(b.grade) : Infinity;
    return ga - gb;
  }

  function varietyName(line) {
    if (Object.hasOwn(CONFIG.varieties, line.variety)) return CONFIG.varieties[line.variety];
    return (CONFIG.lang === "zh" ? line.variety_zh : line.variety_en) || line.variety;
  }

  function gradeName(line) {
    if (Object.hasOwn(CONFIG.grades, line.grade)) return CONFIG.grades[line.grade];
    return line.grade_zh || line.grade;
  }

  /**
   * What a line says about today. Its day figures belong to its trading day: a book that has
   * not traded since yesterday shows no high, low or volume for today, and no change.
   */
  function today(line, day = hallToday()) {
    const current = !line.trading_day || line.trading_day === day;
    const previous = current ? line.previous_close_yuan_per_kg : line.last_price_yuan_per_kg;
    if (!current) {
      return { high: null, low: null, vwap: null, volume: "0", change: null, previous };
    }
    return {
      high: line.high_yuan_per_kg,
      low: line.low_yuan_per_kg,
      vwap: line.vwap_yuan_per_kg,
      volume: line.volume_kg_today,
      change: line.change_yuan_per_kg,
      previous,
    };
  }

  /** The change as the hall shows it: ▲ red up, ▼ green down; the percent apart. */
  function change(value, previous) {
    const cents = fen(value);
    if (cents === null) return { text: DASH, percent: "", direction: "none" };
    const direction = cents > 0 ? "up" : cents < 0 ? "down" : "flat";
    const arrow = direction === "up" ? "▲" : direction === "down" ? "▼" : "";
    const amount = price(String(value).replace(/^-/, ""));
    const base = fen(previous);
    let percent = "";
    if (base) {
      const pct = (Math.abs(cents) / base) * 100;
      percent = `${direction === "down" ? "-" : "+"}${pct.toFixed(1)}%`;
    }
    return { text: `${arrow}${amount}`, percent, direction };
  }

  /** Which way a price moved between two yuan strings: "up", "down" or "same". */
  function moved(before, after) {
    const a = fen(before);
    const b = fen(after);
    if (a === null || b === null || a === b) return "same";
    return b > a ? "up" : "down";
  }

  // -- the stream ---------------------------------------------------------------------------

  /**
   * Follow ``/board/stream``: ``onLine`` for every line (the snapshot first), ``onReady`` once the
   * snapshot is in, ``onState`` with "connecting", "live" or "lost". The browser reconnects by
   * itself after a dropped connection; after a refused one this does.
   */
  function follow({ onLine, onReady, onState }) {
    let source = null;
    let retry = 0;

    function open() {
      onState("connecting");
      source = new EventSource("/board/stream");
      source.addEventListener("open", () => onState("live"));
      source.addEventListener("board", (event) => {
        onState("live");
        onLine(JSON.parse(event.data));
      });
      source.addEventListener("ready", (event) => {
        onState("live");
        if (onReady) onReady(JSON.parse(event.data));
      });
      source.addEventListener("error", () => {
        onState("lost");
        if (source.readyState === EventSource.CLOSED) {
          source.close();
          clearTimeout(retry);
          retry = setTimeout(open, 3000);
        }
      });
    }

    open();
    window.addEventListener("pagehide", () => source && source.close());
  }

  const $ = (id) => document.getElementById(id);

  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  /** Briefly light a cell that changed; ``direction`` colours a price that moved. */
  function flash(node, direction) {
    node.classList.remove("flash", "flash-up", "flash-down");
    void node.offsetWidth; // restart the animation when the same cell changes again
    node.classList.add("flash");
    if (direction === "up" || direction === "down") node.classList.add(`flash-${direction}`);
  }

  document.addEventListener("animationend", (event) => {
    if (event.animationName.startsWith("flash")) {
      event.target.classList.remove("flash", "flash-up", "flash-down");
    }
  });

  return {
    CONFIG,
    DASH,
    t,
    price,
    kg,
    fen,
    isZero,
    hallToday,
    hallTime,
    hallWeekday,
    hallDateTime,
    bookOrder,
    varietyName,
    gradeName,
    today,
    change,
    moved,
    follow,
    flash,
    $,
    el,
  };
})();
