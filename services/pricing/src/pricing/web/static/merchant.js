/*
 * The merchant's desk: sign in once with the cooperative's token (kept in this browser), watch
 * the books you trade, place bids, amend and cancel resting ones, and follow fills, trades and
 * the credit left.
 *
 * Every call carries ``Authorization: Bearer <token>``. A bid's id is made here before it is
 * sent and kept until the API took it, so sending again after a lost answer never places it
 * twice. Lists refresh every few seconds and whenever a book with one of your bids changes.
 */
"use strict";

(() => {
  const B = window.MelonBoard;
  const { $, el, t } = B;
  const LANG = B.CONFIG.lang;

  const TOKEN_KEY = "melon.pricing.token";
  const REFRESH_MS = 5000;
  const CONFIRM_MS = 5000;
  const OPEN_STATUSES = new Set(["resting", "pending"]);
  const PRICE = /^\d+(\.\d{1,2})?$/;
  const WEIGHT = /^\d+(\.\d{1,3})?$/;

  const state = {
    token: null,
    me: null,
    bids: [],
    trades: [],
    local: new Map(),
    lines: new Map(),
    rows: new Map(),
    pendingBidId: null,
    editing: null,
    confirming: null,
    confirmTimer: 0,
    refreshTimer: 0,
    refreshSoon: 0,
    refreshing: null,
    refreshAgain: false,
  };

  const storage = {
    get() {
      try {
        return window.localStorage.getItem(TOKEN_KEY);
      } catch {
        return null;
      }
    },
    set(value) {
      try {
        window.localStorage.setItem(TOKEN_KEY, value);
      } catch {
        /* private mode: the desk still works until the page closes */
      }
    },
    clear() {
      try {
        window.localStorage.removeItem(TOKEN_KEY);
      } catch {
        /* nothing stored */
      }
    },
  };

  // -- the API ------------------------------------------------------------------------------

  async function api(method, path, body, token = state.token) {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    return (await window.MelonApi.request(method, path, body, headers)).data;
  }

  // -- messages -----------------------------------------------------------------------------

  function errorTitle(err) {
    if (err.status === 0) return t("err.network");
    if (Object.hasOwn(B.CONFIG.text, `err.${err.code}`)) return t(`err.${err.code}`);
    if ([401, 403, 404, 409, 422].includes(err.status)) return t(`err.${err.status}`);
    if (err.status >= 500) return t("err.5xx", { code: err.status });
    return t("err.other", { code: err.status });
  }

  function showError(title, detail = "") {
    $("error-title").textContent = title;
    $("error-detail").textContent = detail;
    $("error").hidden = false;
    $("notice").hidden = true;
  }

  function showApiError(err) {
    const detail = window.MelonApi.detailIn(err, LANG);
    showError(errorTitle(err), err.status === 0 ? "" : detail || "");
    $("error").dataset.code = err.code;
    $("error").dataset.status = String(err.status);
  }

  function clearError() {
    $("error").hidden = true;
    delete $("error").dataset.code;
    delete $("error").dataset.status;
  }

  function notice(text) {
    clearError();
    $("notice").textContent = text;
    $("notice").hidden = false;
  }

  // -- signing in ---------------------------------------------------------------------------

  async function signIn(token, remember) {
    document.body.dataset.signedIn = "checking";
    const save = $("token-save");
    save.disabled = true;
    save.textContent = t("token.checking");
    try {
      const me = await api("GET", "/me", undefined, token);
      state.token = token;
      if (remember) storage.set(token);
      state.me = me;
      enterDesk();
      return true;
    } catch (err) {
      document.body.dataset.signedIn = "false";
      showApiError(err);
      if (err.status === 401) storage.clear();
      return false;
    } finally {
      save.disabled = false;
      save.textContent = t("token.save");
    }
  }

  function enterDesk() {
    document.body.dataset.signedIn = "true";
    $("token-form").hidden = true;
    $("desk").hidden = false;
    $("sign-out").hidden = false;
    $("token").value = "";
    renderMe();
    refresh();
    clearInterval(state.refreshTimer);
    state.refreshTimer = setInterval(() => {
      if (document.visibilityState === "visible") refresh();
    }, REFRESH_MS);
  }

  function signOut() {
    storage.clear();
    clearInterval(state.refreshTimer);
    Object.assign(state, {
      token: null,
      me: null,
      bids: [],
      trades: [],
      editing: null,
      confirming: null,
    });
    state.local.clear();
    document.body.dataset.signedIn = "false";
    $("desk").hidden = true;
    $("token-form").hidden = false;
    $("sign-out").hidden = true;
    $("merchant-name").hidden = true;
    renderBoard();
    $("token").focus();
  }

  /** The token stopped working (revoked, expired): say so and ask for it again. */
  function lostToken(err) {
    signOut();
    showApiError(err);
  }

  // -- the lists ----------------------------------------------------------------------------

  async function refresh() {
    if (!state.token) return;
    if (state.refreshing) {
      // The lists may have changed after this refresh asked for them: ask once more after it.
      state.refreshAgain = true;
      return state.refreshing;
    }
    state.refreshing = (async () => {
      try {
        const [me, bids, trades] = await Promise.all([
          api("GET", "/me"),
          api("GET", "/me/bids"),
          api("GET", "/me/trades"),
        ]);
        state.me = me;
        state.bids = Array.isArray(bids) ? bids : [];
        state.trades = Array.isArray(trades) ? trades : [];
        for (const bid of state.bids) state.local.delete(bid.bid_id);
        renderMe();
        renderBids();
        renderTrades();
        renderBoard();
      } catch (err) {
        if (err.status === 401) lostToken(err);
        else showApiError(err);
      } finally {
        state.refreshing = null;
        if (state.refreshAgain) {
          state.refreshAgain = false;
          refresh();
        }
      }
    })();
    return state.refreshing;
  }

  function scheduleRefresh(ms = 300) {
    clearTimeout(state.refreshSoon);
    state.refreshSoon = setTimeout(refresh, ms);
  }

  const yuan = (value) => B.price(value);
  const bookName = (item) => `${B.varietyName(item)} ${B.gradeName(item)}`;

  function renderMe() {
    const me = state.me;
    if (!me) return;
    const name = $("merchant-name");
    name.textContent = `${me.name || me.merchant_id} (${me.merchant_id})`;
    name.hidden = false;
    $("credit-limit").textContent = yuan(me.credit_limit_yuan);
    $("credit-committed").textContent = yuan(me.committed_yuan);
    $("credit-spent").textContent = yuan(me.spent_yuan);
    $("credit-remaining").textContent = yuan(me.remaining_yuan);
  }

  function allBids() {
    const known = new Set(state.bids.map((bid) => bid.bid_id));
    const local = [...state.local.values()].filter((bid) => !known.has(bid.bid_id));
    const bids = [...local, ...state.bids];
    // Open bids first, as the API lists them within each group.
    return [
      ...bids.filter((bid) => OPEN_STATUSES.has(bid.status)),
      ...bids.filter((bid) => !OPEN_STATUSES.has(bid.status)),
    ];
  }

  function button(id, text, className, onClick) {
    const node = el("button", { type: "button", id, class: className, text });
    node.addEventListener("click", onClick);
    return node;
  }

  function amendCells(bid) {
    const price = el("input", {
      id: `amend-price-${bid.bid_id}`,
      class: "amend-price",
      inputmode: "decimal",
      "aria-label": t("amend.price"),
    });
    price.value = B.price(bid.price_yuan_per_kg).replaceAll(",", "");
    const quantity = el("input", {
      id: `amend-quantity-${bid.bid_id}`,
      class: "amend-quantity",
      inputmode: "decimal",
      "aria-label": t("amend.quantity"),
    });
    quantity.value = B.kg(bid.remaining_kg).replaceAll(",", "");
    for (const input of [price, quantity]) {
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter") amend(bid, price.value, quantity.value);
        if (event.key === "Escape") stopEditing();
      });
    }
    return { price, quantity };
  }

  function renderBids() {
    const body = $("bid-rows");
    body.replaceChildren();
    const bids = allBids();
    for (const bid of bids) {
      const tr = el("tr", { "data-bid": bid.bid_id, "data-status": bid.status });
      const editing = state.editing === bid.bid_id && bid.status === "resting";
      const inputs = editing ? amendCells(bid) : null;
      const status = el("td", { class: `status ${bid.status}`, text: t(`status.${bid.status}`) });
      if (bid.reason) status.append(el("small", { class: "reason", text: bid.reason }));
      const buttons = el("div", { class: "buttons" });
      const actions = el("td", { class: "actions" }, [buttons]);
      if (editing) {
        buttons.append(
          button(`save-${bid.bid_id}`, t("action.save"), "primary small", () =>
            amend(bid, inputs.price.value, inputs.quantity.value),
          ),
          button(`back-${bid.bid_id}`, t("action.back"), "small", stopEditing),
        );
      } else if (bid.status === "resting") {
        const confirming = state.confirming === bid.bid_id;
        buttons.append(
          button(`amend-${bid.bid_id}`, t("action.amend"), "small", () => startEditing(bid)),
          button(
            `cancel-${bid.bid_id}`,
            t(confirming ? "action.confirm_cancel" : "action.cancel"),
            confirming ? "danger small" : "small",
            () => cancel(bid),
          ),
        );
      }
      const price = editing
        ? el("td", { class: "num" }, [inputs.price])
        : el("td", { class: "num price", text: yuan(bid.price_yuan_per_kg) });
      const remaining = editing
        ? el("td", { class: "num" }, [inputs.quantity])
        : el("td", { class: "num remaining", text: B.kg(bid.remaining_kg) });
      tr.append(
        el("td", { class: "id", text: bid.bid_id }),
        el("td", { text: bookName(bid) }),
        price,
        el("td", { class: "num quantity", text: B.kg(bid.quantity_kg) }),
        el("td", { class: "num filled", text: B.kg(bid.filled_kg) }),
        remaining,
        status,
        actions,
      );
      body.append(tr);
    }
    $("bids-empty").hidden = bids.length > 0;
    if (state.editing) {
      const input = $(`amend-price-${state.editing}`);
      if (input && document.activeElement === document.body) input.focus();
    }
  }

  function renderTrades() {
    const body = $("trade-rows");
    body.replaceChildren();
    const trades = [...state.trades].sort((a, b) =>
      String(b.occurred_at || "").localeCompare(String(a.occurred_at || "")),
    );
    for (const trade of trades) {
      body.append(
        el("tr", { "data-trade": trade.trade_id }, [
          el("td", { text: B.hallDateTime(trade.occurred_at) }),
          el("td", { class: "id", text: trade.trade_id }),
          el("td", { class: "id", text: trade.lot_id }),
          el("td", { text: bookName(trade) }),
          el("td", { class: "num", text: String(trade.crates) }),
          el("td", { class: "num", text: B.kg(trade.weight_kg) }),
          el("td", { class: "num", text: yuan(trade.price_yuan_per_kg) }),
          el("td", { class: "num amount", text: yuan(trade.amount_yuan) }),
          el("td", { text: trade.destination || B.DASH }),
          el("td", { text: t(trade.cold_chain ? "yes" : "no") }),
        ]),
      );
    }
    $("trades-empty").hidden = trades.length > 0;
  }

  /**
   * A refusal that says the bid is not what this page shows (filled, cancelled or expired in the
   * meantime): the lists are stale. A refusal over credit is about the entry, which stays.
   */
  function bidMovedOn(err) {
    return err.status === 404 || (err.status === 409 && err.code !== "credit_exceeded");
  }

  function startEditing(bid) {
    state.editing = bid.bid_id;
    state.confirming = null;
    renderBids();
    const input = $(`amend-price-${bid.bid_id}`);
    if (input) input.focus();
  }

  function stopEditing() {
    state.editing = null;
    renderBids();
  }

  async function amend(bid, priceText, quantityText) {
    const price = priceText.trim();
    const quantity = quantityText.trim();
    if (!PRICE.test(price) || B.fen(price) <= 0) {
      return showError(t("err.422"), t("check.price", { field: t("amend.price") }));
    }
    if (!WEIGHT.test(quantity) || grams(quantity) <= 0) {
      return showError(t("err.422"), t("check.weight", { field: t("amend.quantity") }));
    }
    const change = {};
    if (B.fen(price) !== B.fen(bid.price_yuan_per_kg)) change.price_yuan_per_kg = price;
    if (grams(quantity) !== grams(bid.remaining_kg)) change.quantity_kg = quantity;
    if (!Object.keys(change).length) return showError(t("err.422"), t("check.nothing"));
    try {
      await api("PATCH", `/bids/${encodeURIComponent(bid.bid_id)}`, change);
    } catch (err) {
      if (err.status === 401) return lostToken(err);
      showApiError(err);
      if (bidMovedOn(err)) {
        state.editing = null;
        refresh();
      }
      return;
    }
    state.editing = null;
    notice(t("bid.amended", { id: bid.bid_id }));
    await refresh();
  }

  async function cancel(bid) {
    clearTimeout(state.confirmTimer);
    if (state.confirming !== bid.bid_id) {
      state.confirming = bid.bid_id;
      state.editing = null;
      renderBids();
      state.confirmTimer = setTimeout(() => {
        state.confirming = null;
        renderBids();
      }, CONFIRM_MS);
      return;
    }
    state.confirming = null;
    try {
      await api("POST", `/bids/${encodeURIComponent(bid.bid_id)}/cancel`);
    } catch (err) {
      renderBids();
      if (err.status === 401) return lostToken(err);
      showApiError(err);
      if (bidMovedOn(err)) refresh();
      return;
    }
    notice(t("bid.cancelled", { id: bid.bid_id }));
    await refresh();
  }

  // -- placing a bid ------------------------------------------------------------------------

  /** Grams from a kg string, exactly (no floats): "400.5" -> 400500. */
  function grams(value) {
    const match = /^(\d+)(?:\.(\d{1,3}))?$/.exec(String(value ?? "").trim());
    if (!match) return null;
    return Number(match[1]) * 1000 + Number((match[2] || "").padEnd(3, "0"));
  }

  function newBidId() {
    const bytes = new Uint8Array(6);
    window.crypto.getRandomValues(bytes);
    return `B-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  function readBid() {
    const value = (id) => $(id).value.trim();
    const price = value("price");
    const quantity = value("quantity");
    const minLot = value("min_lot");
    const problems = [];
    if (!price) problems.push(t("check.required", { field: t("bid.price") }));
    else if (!PRICE.test(price) || B.fen(price) <= 0) {
      problems.push(t("check.price", { field: t("bid.price") }));
    }
    if (!quantity) problems.push(t("check.required", { field: t("bid.quantity") }));
    else if (!WEIGHT.test(quantity) || grams(quantity) <= 0) {
      problems.push(t("check.weight", { field: t("bid.quantity") }));
    }
    if (minLot && (!WEIGHT.test(minLot) || grams(minLot) <= 0)) {
      problems.push(t("check.weight", { field: t("bid.min_lot") }));
    } else if (minLot && grams(quantity) !== null && grams(minLot) > grams(quantity)) {
      problems.push(t("check.min_lot"));
    }
    if (problems.length) return { problems };
    const body = {
      bid_id: state.pendingBidId || newBidId(),
      variety: $("variety").value,
      grade: $("grade").value,
      price_yuan_per_kg: price,
      quantity_kg: quantity,
      destination: value("destination"),
      cold_chain: $("cold_chain").checked,
    };
    if (minLot) body.min_lot_kg = minLot;
    return { body };
  }

  async function placeBid(event) {
    event.preventDefault();
    const { body, problems } = readBid();
    if (problems) return showError(t("err.422"), problems.join("；"));
    state.pendingBidId = body.bid_id;
    const submit = $("bid-submit");
    submit.disabled = true;
    submit.textContent = t("busy");
    try {
      await api("POST", "/bids", body);
    } catch (err) {
      if (err.status === 401) return lostToken(err);
      // A refusal is final for this bid; a lost answer keeps its id for the retry.
      if (err.status !== 0 && err.status < 500) state.pendingBidId = null;
      return showApiError(err);
    } finally {
      submit.disabled = false;
      submit.textContent = t("bid.submit");
    }
    state.pendingBidId = null;
    const book = `${body.variety}.${body.grade}`;
    state.local.set(body.bid_id, {
      bid_id: body.bid_id,
      book,
      variety: body.variety,
      grade: body.grade,
      status: "pending",
      price_yuan_per_kg: body.price_yuan_per_kg,
      quantity_kg: body.quantity_kg,
      filled_kg: "0",
      remaining_kg: body.quantity_kg,
      reason: "",
    });
    for (const id of ["price", "quantity", "min_lot"]) $(id).value = "";
    notice(t("bid.sent", { id: body.bid_id }));
    renderBids();
    renderBoard();
    await refresh();
  }

  function showMarket() {
    const line = state.lines.get(`${$("variety").value}.${$("grade").value}`);
    $("bid-market").textContent = t("bid.market", {
      bid: line ? B.price(line.best_bid_yuan_per_kg) : B.DASH,
      last: line ? B.price(line.last_price_yuan_per_kg) : B.DASH,
    });
  }

  // -- the board ----------------------------------------------------------------------------

  function myBooks() {
    const books = new Set();
    for (const bid of allBids()) books.add(bid.book || `${bid.variety}.${bid.grade}`);
    for (const trade of state.trades) books.add(`${trade.variety}.${trade.grade}`);
    return books;
  }

  function boardCells(line) {
    const now = B.today(line);
    const change = B.change(now.change, now.previous);
    return {
      book: { text: bookName(line) },
      best_bid: { text: B.price(line.best_bid_yuan_per_kg) },
      depth: { text: `${line.bids_resting} · ${B.kg(line.bid_depth_kg)}` },
      offered: { text: B.kg(line.offered_kg) },
      last: { text: B.price(line.last_price_yuan_per_kg) },
      vwap: { text: B.price(now.vwap) },
      change: {
        text: change.percent ? `${change.text} ${change.percent}` : change.text,
        direction: change.direction,
      },
    };
  }

  function boardRow(line) {
    const tr = el("tr", { "data-book": line.book, tabindex: "0" });
    const cells = {};
    for (const column of Object.keys(boardCells(line))) {
      const cell = el(column === "book" ? "th" : "td", { "data-col": column, class: column });
      cells[column] = cell;
      tr.append(cell);
    }
    const row = { tr, cells, line };
    const pick = () => {
      $("variety").value = row.line.variety;
      $("grade").value = row.line.grade;
      showMarket();
      $("price").focus();
    };
    tr.addEventListener("click", pick);
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter") pick();
    });
    return row;
  }

  function updateRow(row, line, animate) {
    const before = row.line;
    row.line = line;
    for (const [column, value] of Object.entries(boardCells(line))) {
      const cell = row.cells[column];
      const changed = cell.textContent !== value.text;
      cell.textContent = value.text;
      if (value.direction) cell.dataset.direction = value.direction;
      if (changed && animate && before) {
        const field = { best_bid: "best_bid_yuan_per_kg", last: "last_price_yuan_per_kg" }[column];
        B.flash(cell, field ? B.moved(before[field], line[field]) : "same");
      }
    }
  }

  function renderBoard() {
    const mine = myBooks();
    const onlyMine = $("only-mine").checked && mine.size > 0;
    const lines = [...state.lines.values()]
      .filter((line) => !onlyMine || mine.has(line.book))
      .sort(B.bookOrder);
    const body = $("board-rows");
    const wanted = new Set(lines.map((line) => line.book));
    for (const [book, row] of state.rows) {
      if (!wanted.has(book)) {
        row.tr.remove();
        state.rows.delete(book);
      }
    }
    for (const line of lines) {
      let row = state.rows.get(line.book);
      if (!row) {
        row = boardRow(line);
        state.rows.set(line.book, row);
      }
      if (row.line !== line || !row.tr.isConnected) updateRow(row, line, false);
      body.append(row.tr);
    }
    $("board-empty").hidden = lines.length > 0;
  }

  function onLine(line) {
    state.lines.set(line.book, line);
    const row = state.rows.get(line.book);
    if (row) updateRow(row, line, true);
    else renderBoard();
    showMarket();
    const mine = (bid) => bid.book === line.book && OPEN_STATUSES.has(bid.status);
    if (state.token && allBids().some(mine)) scheduleRefresh();
  }

  function setConn(conn) {
    document.body.dataset.conn = conn;
    $("conn").textContent = t(`conn.${conn}`);
  }

  // -- start --------------------------------------------------------------------------------

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return showError(t("err.422"), t("check.required", { field: t("token.label") }));
    clearError();
    signIn(token, true);
  });
  $("sign-out").addEventListener("click", () => {
    clearError();
    $("notice").hidden = true;
    signOut();
  });
  $("error-close").addEventListener("click", clearError);
  $("bid-form").addEventListener("submit", placeBid);
  $("bid-form").addEventListener("input", () => {
    state.pendingBidId = null;
  });
  for (const id of ["variety", "grade"]) $(id).addEventListener("change", showMarket);
  $("only-mine").addEventListener("change", renderBoard);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });

  B.follow({
    onLine,
    onReady() {
      renderBoard();
      document.body.dataset.ready = "true";
    },
    onState: setConn,
  });
  showMarket();

  const stored = storage.get();
  if (stored) signIn(stored, false);
  else $("token").focus();
})();
