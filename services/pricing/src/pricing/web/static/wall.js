/*
 * The LED wall: one row per book, updated in place as the board stream brings lines, with a
 * flash on every cell that changed, the hall's clock and the state of the connection.
 */
"use strict";

(() => {
  const B = window.MelonBoard;
  const { $, el, t } = B;

  const COLUMNS = [
    "variety",
    "grade",
    "best_bid",
    "depth",
    "offered",
    "last",
    "vwap",
    "high",
    "low",
    "volume",
    "change",
  ];
  const PRICE_FIELDS = {
    best_bid: "best_bid_yuan_per_kg",
    last: "last_price_yuan_per_kg",
  };

  const rows = new Map();
  let day = B.hallToday();

  function cells(line) {
    const now = B.today(line, day);
    const change = B.change(now.change, now.previous);
    return {
      variety: { text: B.varietyName(line) },
      // "Class II" may not break before its numeral; "Out of grade" may wrap.
      grade: { text: B.gradeName(line).replace(/ (I+)$/, "\u00a0$1") },
      best_bid: { text: B.price(line.best_bid_yuan_per_kg) },
      depth: { text: B.kg(line.bid_depth_kg), sub: t("bids_count", { n: line.bids_resting }) },
      offered: { text: B.kg(line.offered_kg) },
      last: { text: B.price(line.last_price_yuan_per_kg) },
      vwap: { text: B.price(now.vwap) },
      high: { text: B.price(now.high) },
      low: { text: B.price(now.low) },
      volume: { text: B.kg(now.volume) },
      change: { text: change.text, sub: change.percent, direction: change.direction },
    };
  }

  function makeRow(line) {
    const tr = el("tr", { "data-book": line.book });
    const tds = {};
    for (const column of COLUMNS) {
      const cell = el(column === "variety" || column === "grade" ? "th" : "td", {
        "data-col": column,
        class: column,
      });
      if (cell.tagName === "TH") cell.setAttribute("scope", "row");
      cell.append(el("span", { class: "main" }), el("small", { class: "sub" }));
      tds[column] = cell;
      tr.append(cell);
    }
    return { tr, tds, line: null };
  }

  function place(row, line) {
    const body = $("board-rows");
    const after = [...rows.values()]
      .filter((other) => other !== row && B.bookOrder(other.line, line) > 0)
      .sort((a, b) => B.bookOrder(a.line, b.line))[0];
    body.insertBefore(row.tr, after ? after.tr : null);
  }

  function show(line, animate = true) {
    let row = rows.get(line.book);
    const fresh = !row;
    if (fresh) {
      row = makeRow(line);
      row.line = line;
      rows.set(line.book, row);
      place(row, line);
    }
    const before = row.line;
    row.line = line;
    for (const [column, value] of Object.entries(cells(line))) {
      const td = row.tds[column];
      const [main, sub] = td.children;
      const changed = main.textContent !== value.text || sub.textContent !== (value.sub || "");
      main.textContent = value.text;
      sub.textContent = value.sub || "";
      sub.hidden = !value.sub;
      if (value.direction) td.dataset.direction = value.direction;
      if (changed && animate && !fresh) {
        const field = PRICE_FIELDS[column];
        B.flash(td, field ? B.moved(before[field], line[field]) : "same");
      }
    }
    $("board-empty").hidden = rows.size > 0;
  }

  function tick() {
    const now = new Date();
    $("clock").textContent = `${B.hallToday(now)} ${B.hallWeekday(now)} ${B.hallTime(now)}`;
    const today = B.hallToday(now);
    if (today !== day) {
      // Midnight in the hall: yesterday's day figures are no longer today's.
      day = today;
      for (const row of rows.values()) show(row.line, false);
    }
  }

  function setState(state) {
    document.body.dataset.conn = state;
    $("conn").textContent = t(`conn.${state}`);
  }

  B.follow({
    onLine(line) {
      show(line);
      $("updated").textContent = t("board.updated", { time: B.hallTime() });
    },
    onReady() {
      $("board-empty").hidden = rows.size > 0;
      document.body.dataset.ready = "true";
    },
    onState: setState,
  });

  tick();
  setInterval(tick, 1000);
})();
