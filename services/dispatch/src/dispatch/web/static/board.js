/*
 * The dispatch board: the yard as the yard office sees it, live, and every decision staff make.
 *
 * The yard arrives whole: once from ``GET /yard`` and then from ``GET /yard/stream`` after every
 * change, whoever made it. Each decision goes through the JSON API with the operator's staff id
 * (kept in this browser), and the board then shows the yard as it is, so a decision another
 * dispatcher made first is shown, not overwritten. Rows are kept when their data did not change,
 * so an open list or a half-made choice survives the updates around it.
 *
 * Weights arrive as kg decimal strings and grams; they are shown from those, never through
 * binary floats.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const CONFIG = JSON.parse($("page-config").textContent);
  const LANG = CONFIG.lang;
  const TEXT = CONFIG.text;
  const DASH = "—";
  const HALL_TZ = "Asia/Shanghai";

  const OPERATOR_KEY = "melon.dispatch.operator";
  const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
  const WEIGHT = /^\d+(\.\d{1,3})?$/;
  const SETPOINT = /^-?\d+(\.\d)?$/;
  const DESTINATION_SPLIT = /[,，、;；]/;
  const OPEN_FOR_GOODS = new Set(["waiting", "assigned", "loading"]);
  const CAN_TAKE_BACK = new Set(["assigned", "loading"]);
  const CONFIRM_MS = 8000;
  const RECONNECT_MS = 3000;

  const state = { yard: null, suggestion: null, clockOffset: 0 };
  const ui = {
    expanded: new Set(),
    assigning: null,
    assignPlate: null,
    bayPick: new Map(),
    confirmDepart: null,
    confirmTimer: 0,
    editing: null,
    unticked: new Set(),
  };

  function t(key, values) {
    let text = Object.hasOwn(TEXT, key) ? TEXT[key] : key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.replaceAll(`{${name}}`, String(value));
    }
    return text;
  }

  const has = (key) => Object.hasOwn(TEXT, key);
  const colon = LANG === "zh" ? "：" : ": ";
  const listJoin = LANG === "zh" ? "、" : ", ";

  const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
  const group = (whole) => whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");

  /** A weight in kg as exact as it came, grouped, no trailing zeros: "12345.500" -> "12,345.5". */
  function kg(value) {
    const match = DECIMAL.exec(String(value ?? "").trim());
    if (!match) return value === null || value === undefined ? DASH : String(value);
    const fraction = (match[3] || "").replace(/0+$/, "");
    return `${match[1]}${group(match[2])}${fraction ? `.${fraction}` : ""}`;
  }

  /** Grams (an exact integer) as kg. */
  function gramsToKg(grams) {
    const sign = grams < 0 ? "-" : "";
    const abs = Math.abs(grams);
    const fraction = String(abs % 1000).padStart(3, "0");
    return kg(`${sign}${Math.floor(abs / 1000)}.${fraction}`);
  }

  /** A share of a truck's capacity, as the server computed it, to a tenth of a percent. */
  function percent(ratio) {
    return `${(Number(ratio) * 100).toFixed(1).replace(/\.0$/, "")}%`;
  }

  const dateTimeFormat = new Intl.DateTimeFormat("en-CA", {
    timeZone: HALL_TZ,
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });

  /** A moment on the hall's clock (Asia/Shanghai), whatever the device's time zone. */
  function hallDateTime(iso) {
    if (!iso) return DASH;
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return String(iso);
    const parts = Object.fromEntries(dateTimeFormat.formatToParts(when).map((p) => [p.type, p.value]));
    return `${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
  }

  /** How long since ``iso`` on the server's clock: "12 分钟", "1 小时 5 分". */
  function since(iso) {
    const ms = Date.now() + state.clockOffset - Date.parse(iso);
    const minutes = Math.max(0, Math.floor(ms / 60000));
    if (minutes < 60) return t("minutes", { n: minutes });
    return t("hours", { h: Math.floor(minutes / 60), m: minutes % 60 });
  }

  function statusText(truck) {
    if (truck.status === "loading" && truck.bay) return t("status.loading_at", { bay: truck.bay });
    return t(`status.${truck.status}`);
  }

  const varietyName = (code) => (Object.hasOwn(CONFIG.varieties, code) ? CONFIG.varieties[code] : code);
  const gradeName = (code) => (Object.hasOwn(CONFIG.grades, code) ? CONFIG.grades[code] : code);
  const place = (destination) => destination || t("ship.any_destination");

  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined && child !== "") node.append(child);
    }
    return node;
  }

  function button(action, text, data, cls) {
    const attributes = { type: "button", "data-action": action, class: cls || null, text };
    for (const [name, value] of Object.entries(data || {})) attributes[`data-${name}`] = value;
    return el("button", attributes);
  }

  function option(value, text, selected) {
    const node = el("option", { value: String(value), text });
    node.selected = Boolean(selected);
    return node;
  }

  function fillBar(ratio) {
    const width = Math.max(0, Math.min(100, Number(ratio) * 100));
    const bar = el("div", { class: "bar", role: "presentation" }, [el("span")]);
    bar.firstChild.style.width = `${width}%`;
    if (Number(ratio) >= 0.95) bar.classList.add("full");
    return bar;
  }

  function noteUrl(plate, visitId) {
    const lang = LANG === "en" ? "&lang=en" : "";
    return `/trucks/${encodeURIComponent(plate)}/note?visit=${encodeURIComponent(visitId)}${lang}`;
  }

  /**
   * Make ``container``'s keyed children match ``items``, in order. A child whose signature did
   * not change is kept as it is (focus, an open select and all); others are built afresh.
   */
  function reconcile(container, items, keyOf, signatureOf, build) {
    const existing = new Map();
    for (const node of container.querySelectorAll(":scope > [data-key]")) {
      existing.set(node.dataset.key, node);
    }
    let previous = null;
    for (const item of items) {
      const key = keyOf(item);
      const signature = signatureOf(item);
      let node = existing.get(key);
      existing.delete(key);
      if (!node || node.dataset.sig !== signature) {
        const fresh = build(item);
        fresh.dataset.key = key;
        fresh.dataset.sig = signature;
        if (node) node.replaceWith(fresh);
        node = fresh;
      }
      const slot = previous ? previous.nextElementSibling : firstKeyed(container);
      if (node !== slot) container.insertBefore(node, slot);
      previous = node;
    }
    for (const node of existing.values()) node.remove();
  }

  function firstKeyed(container) {
    let node = container.firstElementChild;
    while (node && node.dataset.key === undefined) node = node.nextElementSibling;
    return node;
  }

  async function api(method, path, body) {
    return (await window.MelonApi.request(method, path, body)).data;
  }

  function errorTitle(err) {
    if (err.status === 0) return t("err.network");
    if (has(`err.${err.code}`)) return t(`err.${err.code}`);
    if ([404, 409, 422].includes(err.status)) return t(`err.${err.status}`);
    if (err.status >= 500) return t("err.5xx", { code: err.status });
    return t("err.other", { code: err.status });
  }

  function showError(title, detail = "", refreshed = false) {
    $("error-title").textContent = title;
    $("error-detail").textContent = detail;
    $("error-hint").hidden = !refreshed;
    $("error").hidden = false;
    $("notice").hidden = true;
  }

  function showApiError(err) {
    const detail = window.MelonApi.detailIn(err, LANG);
    showError(errorTitle(err), err.status === 0 ? "" : detail || "", err.status === 409);
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

  const storage = {
    get() {
      try {
        return window.localStorage.getItem(OPERATOR_KEY);
      } catch {
        return null;
      }
    },
    set(value) {
      try {
        if (value) window.localStorage.setItem(OPERATOR_KEY, value);
        else window.localStorage.removeItem(OPERATOR_KEY);
      } catch {
        /* private mode: the id holds until the page closes */
      }
    },
  };

  /** The staff id every decision is made as; asks for it when it is missing or malformed. */
  function operator() {
    const value = $("operator").value.trim();
    if (!IDENTIFIER.test(value)) {
      showError(t("err.operator"));
      $("error").dataset.code = "operator";
      $("operator").focus();
      return null;
    }
    storage.set(value);
    return value;
  }

  /**
   * Show a snapshot of the yard. An older one than shown is dropped (a slow answer overtaken by
   * the stream), except the first after the stream (re)connects: that is the yard as it is.
   */
  function apply(yard, fresh = false) {
    if (!fresh && state.yard && yard.version < state.yard.version) return;
    // The device's clock is set against the server's once per connection; durations then count on
    // the device's clock, so they do not jump with every snapshot's moment of sending.
    if (fresh || !state.yard) state.clockOffset = Date.parse(yard.at) - Date.now();
    state.yard = yard;
    const held = state.suggestion;
    const offered = yard.suggestion;
    if (offered && (fresh || !held || offered.yard_version >= held.yard_version)) {
      state.suggestion = offered;
    } else if (held) {
      state.suggestion = { ...held, current: held.yard_version === yard.version };
    }
    render();
    document.body.dataset.version = String(yard.version);
    document.body.dataset.ready = "true";
  }

  async function refresh() {
    try {
      apply(await api("GET", "/yard"));
    } catch (err) {
      if ($("error").hidden) showApiError(err);
    }
  }

  function setConn(value) {
    document.body.dataset.conn = value;
    $("conn").textContent = t(`conn.${value}`);
  }

  /** Follow the yard stream; the browser reconnects a dropped one, this a refused one. */
  function follow() {
    let source = null;
    let retry = 0;

    function open() {
      let fresh = true;
      setConn("connecting");
      source = new EventSource("/yard/stream");
      source.addEventListener("open", () => {
        fresh = true;
        setConn("live");
      });
      source.addEventListener("yard", (event) => {
        setConn("live");
        apply(JSON.parse(event.data), fresh);
        fresh = false;
      });
      source.addEventListener("error", () => {
        setConn("lost");
        if (source.readyState === EventSource.CLOSED) {
          source.close();
          clearTimeout(retry);
          retry = setTimeout(open, RECONNECT_MS);
        }
      });
    }

    open();
    window.addEventListener("pagehide", () => source && source.close());
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) open();
    });
  }

  function render() {
    renderTrucks();
    renderBays();
    renderShipments();
    renderSuggestion();
    renderDeparted();
    tick();
  }

  /** Durations count up between updates. */
  function tick() {
    for (const node of document.querySelectorAll("[data-since]")) {
      const text = since(node.dataset.since);
      if (node.textContent !== text) node.textContent = text;
    }
  }

  const assignmentsOf = (visitId) => state.yard.assignments.filter((a) => a.visit_id === visitId);
  const freeBays = () => state.yard.bays.filter((b) => !b.plate).map((b) => b.bay);

  function withoutClock(record, ...fields) {
    const copy = { ...record };
    for (const field of fields) delete copy[field];
    return copy;
  }

  function renderTrucks() {
    const trucks = state.yard.trucks;
    const free = freeBays();
    reconcile(
      $("trucks"),
      trucks,
      (truck) => truck.visit_id,
      (truck) =>
        JSON.stringify([
          withoutClock(truck, "dwell_s"),
          assignmentsOf(truck.visit_id).map((a) => a.assignment_id),
          truck.status === "assigned" ? free : null,
          ui.bayPick.get(truck.plate) ?? null,
          ui.confirmDepart === truck.plate,
        ]),
      (truck) => truckCard(truck, free),
    );
    $("trucks-empty").hidden = trucks.length > 0;
  }

  function reefer(truck) {
    if (!truck.refrigerated || truck.setpoint_c === null) return t("truck.ambient");
    const text = t("truck.reefer", { c: truck.setpoint_c });
    return truck.cold_chain_ready ? `${text} · ${t("truck.cold_ready")}` : text;
  }

  function destinations(list) {
    return list.length ? list.join(listJoin) : t("truck.anywhere");
  }

  function truckCard(truck, free) {
    const assignments = assignmentsOf(truck.visit_id);
    const card = el("article", {
      class: "truck",
      "data-plate": truck.plate,
      "data-status": truck.status,
      "data-visit": truck.visit_id,
    });
    card.append(
      el("header", { class: "truck-head" }, [
        el("strong", { class: "plate", text: truck.plate }),
        el("span", { class: `badge status status-${truck.status}`, text: statusText(truck) }),
        el("span", { class: "dwell" }, [
          `${t("truck.dwell")} `,
          el("span", { class: "since", "data-since": truck.checked_in_at }),
        ]),
      ]),
      el("p", { class: "who" }, [
        `${t("truck.driver")}${colon}${truck.driver}`,
        truck.phone ? ` · ${t("truck.phone")}${colon}${truck.phone}` : "",
      ]),
      el("div", { class: "fill" }, [
        el("span", {
          class: "load-text",
          text: t("truck.load", { loaded: kg(truck.loaded_kg), capacity: kg(truck.capacity_kg) }),
        }),
        el("span", { class: "pct", text: percent(truck.fill_ratio) }),
        fillBar(truck.fill_ratio),
      ]),
      el("p", { class: "facts" }, [
        el("span", { class: `reefer${truck.cold_chain_ready ? " cold" : ""}`, text: reefer(truck) }),
        ` · ${t("truck.destinations")}${colon}`,
        el("span", { class: "destinations", text: destinations(truck.destinations) }),
      ]),
    );
    if (assignments.length) {
      card.append(
        el(
          "ul",
          { class: "assignments" },
          assignments.map((a) => assignmentItem(a, CAN_TAKE_BACK.has(truck.status))),
        ),
      );
    } else {
      card.append(el("p", { class: "muted no-load", text: t("truck.no_load") }));
    }
    card.append(truckActions(truck, free, assignments.length > 0));
    return card;
  }

  function assignmentItem(assignment, takeBack) {
    return el("li", { "data-assignment": assignment.assignment_id }, [
      el("span", { class: "what" }, [
        el("b", { text: assignment.merchant_id }),
        ` → ${place(assignment.destination)}`,
        assignment.cold_chain ? el("span", { class: "badge cold", text: t("ship.cold") }) : "",
      ]),
      el("span", {
        class: "amount",
        text: `${kg(assignment.weight_kg)} kg · ${assignment.crates} ${t("unit.crates")}`,
      }),
      takeBack
        ? button("take-back", t("action.take_back"), { assignment: assignment.assignment_id }, "small")
        : "",
    ]);
  }

  function truckActions(truck, free, loaded) {
    const plate = truck.plate;
    const actions = el("div", { class: "actions" });
    if (truck.status === "assigned") {
      if (free.length) {
        const wanted = ui.bayPick.get(plate);
        const picked = free.includes(wanted) ? wanted : free[0];
        const select = el(
          "select",
          { class: "bay-pick", "data-plate": plate, "aria-label": t("action.bay_for") },
          free.map((n) => option(n, t("bay.n", { n }), n === picked)),
        );
        actions.append(select, button("to-bay", t("action.to_bay"), { plate }, "primary"));
      } else {
        actions.append(el("span", { class: "muted", text: t("action.no_free_bay") }));
      }
    } else if (truck.status === "loading") {
      actions.append(button("loaded", t("action.loaded"), { plate }, "primary"));
    } else if (truck.status === "loaded") {
      actions.append(
        ui.confirmDepart === plate
          ? button("depart-confirm", t("action.confirm_depart"), { plate }, "danger")
          : button("depart", t("action.depart"), { plate }, "primary"),
      );
    }
    if (loaded) {
      actions.append(
        el("a", {
          class: "button note-link",
          href: noteUrl(plate, truck.visit_id),
          target: "_blank",
          rel: "noopener",
          text: t("action.note"),
        }),
      );
    }
    return actions;
  }

  function renderBays() {
    $("bays").replaceChildren(
      ...state.yard.bays.map((bay) =>
        el("li", { class: bay.plate ? "bay taken" : "bay free", "data-bay": bay.bay }, [
          el("span", { class: "bay-no", text: t("bay.n", { n: bay.bay }) }),
          el("span", { class: "bay-truck", text: bay.plate || t("bays.free") }),
        ]),
      ),
    );
  }

  /** Trucks that may still take goods, in arrival order. */
  const trucksForGoods = () => state.yard.trucks.filter((truck) => OPEN_FOR_GOODS.has(truck.status));

  function warnings(truck, shipment) {
    const found = [];
    if (shipment.cold_chain && !truck.cold_chain_ready) found.push(t("warn.not_cold"));
    if (truck.destinations.length && !truck.destinations.includes(shipment.destination)) {
      found.push(t("warn.destination", { dest: place(shipment.destination) }));
    }
    if (shipment.weight_g > truck.remaining_g) found.push(t("warn.heavy"));
    return found;
  }

  function renderShipments() {
    const shipments = state.yard.shipments;
    if (ui.assigning && !shipments.some((s) => s.shipment_id === ui.assigning)) {
      ui.assigning = null;
    }
    const trucks = trucksForGoods();
    const choices = JSON.stringify(
      trucks.map((truck) => [truck.plate, truck.status, truck.bay, truck.remaining_g]),
    );
    reconcile(
      $("shipments"),
      shipments,
      (shipment) => shipment.shipment_id,
      (shipment) =>
        JSON.stringify([
          withoutClock(shipment, "waiting_s"),
          ui.expanded.has(shipment.shipment_id),
          ui.assigning === shipment.shipment_id ? [choices, ui.assignPlate] : null,
        ]),
      (shipment) => shipmentBody(shipment, trucks),
    );
    $("shipments-empty").hidden = shipments.length > 0;
    $("shipments").querySelector("thead").hidden = shipments.length === 0;
  }

  function shipmentBody(shipment, trucks) {
    const id = shipment.shipment_id;
    const expanded = ui.expanded.has(id);
    const assigning = ui.assigning === id;
    const body = el("tbody", {
      class: `shipment${assigning ? " assigning" : ""}`,
      "data-shipment": id,
      "data-merchant": shipment.merchant_id,
    });
    const lots = button(
      "lots",
      `${expanded ? "▾" : "▸"} ${t("ship.lots_n", { n: shipment.lines.length })}`,
      { shipment: id },
      "link",
    );
    lots.setAttribute("aria-expanded", String(expanded));
    body.append(
      el("tr", { class: "main" }, [
        el("td", { class: "merchant", text: shipment.merchant_id }),
        el("td", { class: "destination", text: place(shipment.destination) }),
        el("td", { class: "cold" }, [
          shipment.cold_chain ? el("span", { class: "badge cold", text: t("ship.cold") }) : "",
        ]),
        el("td", { class: "num crates", text: String(shipment.crates) }),
        el("td", { class: "num kg", text: kg(shipment.weight_kg) }),
        el("td", { class: "waiting" }, [el("span", { "data-since": shipment.waiting_since })]),
        el("td", {}, [lots]),
        el("td", {}, [
          assigning ? "" : button("assign-open", t("assign.open"), { shipment: id }, "primary"),
        ]),
      ]),
    );
    if (expanded) {
      body.append(el("tr", { class: "lots" }, [el("td", { colspan: 8 }, [lotsTable(shipment.lines)])]));
    }
    if (assigning) {
      body.append(
        el("tr", { class: "assign" }, [el("td", { colspan: 8 }, [assignForm(shipment, trucks)])]),
      );
    }
    return body;
  }

  function lotsTable(lines) {
    const head = ["lot.lot", "lot.farmer", "lot.variety", "lot.grade", "lot.crates", "lot.kg"];
    return el("table", { class: "lots-table" }, [
      el("thead", {}, [
        el(
          "tr",
          {},
          head.map((key, i) => el("th", { scope: "col", class: i >= 4 ? "num" : null, text: t(key) })),
        ),
      ]),
      el(
        "tbody",
        {},
        lines.map((line) =>
          el("tr", { "data-lot": line.lot_id }, [
            el("td", { class: "lot", text: line.lot_id }),
            el("td", { class: "farmer", text: line.farmer_id }),
            el("td", { text: varietyName(line.variety) }),
            el("td", { text: gradeName(line.grade) }),
            el("td", { class: "num", text: String(line.crates) }),
            el("td", { class: "num kg", text: kg(line.weight_kg) }),
          ]),
        ),
      ),
    ]);
  }

  function assignForm(shipment, trucks) {
    const id = shipment.shipment_id;
    const cancel = button("assign-cancel", t("assign.cancel"), { shipment: id });
    if (!trucks.length) {
      return el("div", { class: "assign-form" }, [
        el("span", { class: "muted", text: t("assign.none") }),
        cancel,
      ]);
    }
    const picked = trucks.some((truck) => truck.plate === ui.assignPlate)
      ? ui.assignPlate
      : trucks[0].plate;
    const select = el(
      "select",
      { id: "assign-truck", class: "assign-truck", "data-shipment": id },
      trucks.map((truck) => {
        const warned = warnings(truck, shipment);
        const label = [
          truck.plate,
          statusText(truck),
          t("assign.room", { kg: kg(truck.remaining_kg) }),
          warned.length ? `⚠ ${warned.join(listJoin)}` : "",
        ]
          .filter(Boolean)
          .join(" · ");
        return option(truck.plate, label, truck.plate === picked);
      }),
    );
    return el("div", { class: "assign-form" }, [
      el("label", { for: "assign-truck", text: t("assign.truck") }),
      select,
      button("assign-confirm", t("assign.confirm"), { shipment: id }, "primary"),
      cancel,
    ]);
  }

  function renderSuggestion() {
    const suggestion = state.suggestion;
    const box = $("suggestion");
    const signature = JSON.stringify([suggestion, ui.editing, [...ui.unticked].sort()]);
    const usable = Boolean(suggestion && suggestion.current && suggestion.loads.length);
    $("accept-all").disabled = !usable;
    if (box.dataset.sig === signature) return;
    box.dataset.sig = signature;
    if (!suggestion) {
      box.replaceChildren(el("p", { class: "empty", text: t("sug.none") }));
      return;
    }
    if (ui.editing && !suggestion.loads.some((load) => load.plate === ui.editing)) {
      ui.editing = null;
    }
    box.dataset.suggestion = suggestion.suggestion_id;
    const children = [
      el("p", { class: "meta" }, [
        t("sug.solver", { solver: suggestion.solver, ms: suggestion.solve_ms }),
        ` · ${hallDateTime(suggestion.computed_at)}`,
      ]),
    ];
    if (!suggestion.current) {
      children.push(el("p", { id: "suggestion-stale", class: "stale", text: t("sug.stale") }));
    }
    children.push(figuresTable(suggestion));
    if (suggestion.loads.length) {
      children.push(
        el(
          "div",
          { class: "loads" },
          suggestion.loads.map((load) => loadCard(load, usable)),
        ),
      );
    } else {
      children.push(el("p", { class: "empty", text: t("sug.loads_empty") }));
    }
    children.push(el("h3", { text: t("sug.left") }));
    children.push(
      suggestion.left_behind.length
        ? el(
            "ul",
            { class: "left-behind" },
            suggestion.left_behind.map((part) => el("li", { "data-part": part.part_id }, partText(part))),
          )
        : el("p", { class: "muted", text: t("sug.left_none") }),
    );
    box.replaceChildren(...children);
  }

  function figuresTable(suggestion) {
    const { figures, greedy } = suggestion;
    const rows = [
      ["sug.fig.loaded", (f) => kg(f.loaded_kg)],
      ["sug.fig.fill", (f) => percent(f.mean_fill_ratio)],
      ["sug.fig.trucks", (f) => String(f.trucks_used)],
      ["sug.fig.left", (f) => String(f.left_behind)],
    ];
    const table = el("table", { id: "suggestion-figures", class: "figures" }, [
      el("thead", {}, [
        el("tr", {}, [
          el("th", { scope: "col", text: t("sug.col.figure") }),
          el("th", { scope: "col", class: "num", text: `${t("sug.col.plan")} (${suggestion.solver})` }),
          el("th", { scope: "col", class: "num", text: t("sug.col.greedy") }),
        ]),
      ]),
      el(
        "tbody",
        {},
        rows.map(([key, show]) =>
          el("tr", { "data-figure": key.split(".").pop() }, [
            el("th", { scope: "row", text: t(key) }),
            el("td", { class: "num plan", text: show(figures) }),
            el("td", { class: "num greedy", text: show(greedy) }),
          ]),
        ),
      ),
    ]);
    const more = figures.loaded_g - greedy.loaded_g;
    if (more <= 0) return table;
    return el("div", {}, [
      table,
      el("p", { class: "more", text: t("sug.more", { kg: gramsToKg(more) }) }),
    ]);
  }

  function partText(part) {
    return [
      el("b", { text: part.merchant_id }),
      ` → ${place(part.destination)} · ${kg(part.weight_kg)} kg`,
      part.cold_chain ? el("span", { class: "badge cold", text: t("ship.cold") }) : "",
      el("small", { class: "lots-ids", text: part.lot_ids.join(listJoin) }),
    ];
  }

  function loadCard(load, usable) {
    const editing = ui.editing === load.plate;
    const card = el("article", {
      class: `load${editing ? " editing" : ""}`,
      "data-plate": load.plate,
    });
    card.append(
      el("header", {}, [
        el("strong", { class: "plate", text: load.plate }),
        el("span", { class: "load-kg", text: t("sug.load", { kg: kg(load.load_kg) }) }),
        el("span", { class: "fill-after", text: t("sug.fill_after", { pct: percent(load.fill_ratio_after) }) }),
      ]),
      fillBar(load.fill_ratio_after),
      el(
        "ul",
        { class: "parts" },
        load.parts.map((part) => {
          const item = el("li", { "data-part": part.part_id });
          if (editing) {
            const tick = el("input", {
              type: "checkbox",
              class: "part-tick",
              "data-part": part.part_id,
              "aria-label": `${part.merchant_id} ${place(part.destination)}`,
            });
            tick.checked = !ui.unticked.has(part.part_id);
            item.append(el("label", {}, [tick, ...partText(part)]));
          } else {
            item.append(...partText(part));
          }
          return item;
        }),
      ),
    );
    const actions = el("div", { class: "actions" });
    if (editing) {
      actions.append(
        el("span", { class: "selected", text: t("sug.selected", { kg: gramsToKg(selectedGrams(load)) }) }),
        button("edit-confirm", t("sug.edit_confirm"), { plate: load.plate }, "primary"),
        button("edit-cancel", t("sug.edit_cancel"), { plate: load.plate }),
      );
    } else {
      const accept = button("accept-one", t("sug.accept_one"), { plate: load.plate }, "primary");
      const edit = button("edit", t("sug.edit"), { plate: load.plate });
      accept.disabled = !usable;
      edit.disabled = !usable;
      actions.append(accept, edit);
    }
    card.append(actions);
    return card;
  }

  const keptParts = (load) => load.parts.filter((part) => !ui.unticked.has(part.part_id));
  const selectedGrams = (load) => keptParts(load).reduce((sum, part) => sum + part.weight_g, 0);

  function renderDeparted() {
    const departed = state.yard.departed;
    $("departed-rows").replaceChildren(
      ...departed.map((truck) =>
        el("tr", { "data-plate": truck.plate, "data-visit": truck.visit_id }, [
          el("td", { class: "plate" }, [el("b", { text: truck.plate }), el("small", { text: ` ${truck.driver}` })]),
          el("td", { text: hallDateTime(truck.departed_at) }),
          el("td", { class: "num", text: kg(truck.loaded_kg) }),
          el("td", {}, [
            el("a", {
              class: "note-link",
              href: noteUrl(truck.plate, truck.visit_id),
              target: "_blank",
              rel: "noopener",
              text: t("dep.open_note"),
            }),
          ]),
        ]),
      ),
    );
    $("departed-empty").hidden = departed.length > 0;
    $("departed").hidden = departed.length === 0;
  }

  /**
   * Make one decision as the operator: the button waits, the answer (or the refusal, in the
   * page's language) is shown, and the board reloads the yard either way.
   */
  async function decide(trigger, method, path, body, done) {
    const by = operator();
    if (!by) return null;
    if (trigger) {
      trigger.disabled = true;
      trigger.dataset.busy = "true";
    }
    let result = null;
    try {
      result = await api(method, path, body(by));
      clearError();
      const message = done(result);
      if (message) notice(message);
    } catch (err) {
      showApiError(err);
      result = null;
    } finally {
      if (trigger) {
        trigger.disabled = false;
        delete trigger.dataset.busy;
      }
    }
    await refresh();
    return result;
  }

  const plateUrl = (plate) => `/trucks/${encodeURIComponent(plate)}`;
  const shipmentOf = (id) => state.yard.shipments.find((s) => s.shipment_id === id);
  const loadOf = (plate) => state.suggestion && state.suggestion.loads.find((l) => l.plate === plate);
  const whatOf = (a) => `${a.merchant_id} → ${place(a.destination)}`;

  function accepted(outcome) {
    ui.editing = null;
    if (outcome.refused.length) {
      const reasons = outcome.refused.map((refusal) => {
        const reason = has(`err.${refusal.error}`) ? t(`err.${refusal.error}`) : refusal.error;
        return LANG === "zh"
          ? `${refusal.plate}${colon}${reason}`
          : `${refusal.plate}: ${reason} (${refusal.detail})`;
      });
      const made = t("done.accepted", { n: outcome.assigned.length });
      const separator = LANG === "zh" ? "；" : "; ";
      showError(t("err.accept_refused"), [made, ...reasons].join(separator), true);
      $("error").dataset.code = "accept_refused";
      return null;
    }
    return t("done.accepted", { n: outcome.assigned.length });
  }

  const ACTIONS = {
    "to-bay": (trigger) => {
      const plate = trigger.dataset.plate;
      const select = trigger.parentElement.querySelector(".bay-pick");
      const bay = Number(select.value);
      return decide(trigger, "POST", `${plateUrl(plate)}/bay`, (by) => ({ bay, by }), () =>
        t("done.bay", { plate, bay }),
      );
    },
    loaded: (trigger) => {
      const plate = trigger.dataset.plate;
      return decide(trigger, "POST", `${plateUrl(plate)}/loaded`, (by) => ({ by }), () =>
        t("done.loaded", { plate }),
      );
    },
    depart: (trigger) => {
      ui.confirmDepart = trigger.dataset.plate;
      clearTimeout(ui.confirmTimer);
      ui.confirmTimer = setTimeout(() => {
        ui.confirmDepart = null;
        if (state.yard) renderTrucks();
      }, CONFIRM_MS);
      renderTrucks();
      const confirm = document.querySelector(`#trucks [data-action="depart-confirm"]`);
      if (confirm) confirm.focus();
    },
    "depart-confirm": (trigger, event) => {
      // The confirmation takes the place of the button; a double click must not depart.
      if (event.detail > 1) return null;
      const plate = trigger.dataset.plate;
      ui.confirmDepart = null;
      clearTimeout(ui.confirmTimer);
      return decide(trigger, "POST", `${plateUrl(plate)}/departure`, (by) => ({ by }), () =>
        t("done.departed", { plate }),
      );
    },
    "take-back": (trigger) => {
      const id = trigger.dataset.assignment;
      return decide(
        trigger,
        "POST",
        `/assignments/${encodeURIComponent(id)}/take-back`,
        (by) => ({ by, reason: "" }),
        (taken) => t("done.taken_back", { what: whatOf(taken), plate: taken.plate }),
      );
    },
    lots: (trigger) => {
      const id = trigger.dataset.shipment;
      if (ui.expanded.has(id)) ui.expanded.delete(id);
      else ui.expanded.add(id);
      renderShipments();
    },
    "assign-open": (trigger) => {
      const shipment = shipmentOf(trigger.dataset.shipment);
      if (!shipment) return;
      const trucks = trucksForGoods();
      const fitting = trucks.find((truck) => !warnings(truck, shipment).length);
      ui.assigning = shipment.shipment_id;
      ui.assignPlate = (fitting || trucks[0] || {}).plate || null;
      renderShipments();
      const select = $("assign-truck");
      if (select) select.focus();
    },
    "assign-cancel": () => {
      ui.assigning = null;
      renderShipments();
    },
    "assign-confirm": async (trigger) => {
      const shipment = shipmentOf(trigger.dataset.shipment);
      const plate = $("assign-truck").value;
      if (!shipment || !plate) return;
      // The trades on screen, not the shipment's id: what is assigned is what the dispatcher
      // saw, and goods another dispatcher took meanwhile are refused, not silently swapped.
      const tradeIds = shipment.lines.map((line) => line.trade_id);
      const made = await decide(
        trigger,
        "POST",
        "/assignments",
        (by) => ({ plate, trade_ids: tradeIds, assigned_by: by }),
        () => t("done.assigned", { what: whatOf(shipment), plate }),
      );
      if (made) {
        ui.assigning = null;
        renderShipments();
      }
    },
    recompute: async (trigger) => {
      trigger.disabled = true;
      try {
        const suggestion = await api("GET", "/suggestions");
        state.suggestion = suggestion;
        ui.editing = null;
        renderSuggestion();
        notice(t("done.recomputed"));
      } catch (err) {
        showApiError(err);
      } finally {
        trigger.disabled = false;
      }
    },
    "accept-all": (trigger) => {
      const id = state.suggestion.suggestion_id;
      return decide(
        trigger,
        "POST",
        `/suggestions/${encodeURIComponent(id)}/accept`,
        (by) => ({ accepted_by: by }),
        accepted,
      );
    },
    "accept-one": (trigger) => {
      const id = state.suggestion.suggestion_id;
      return decide(
        trigger,
        "POST",
        `/suggestions/${encodeURIComponent(id)}/accept`,
        (by) => ({ accepted_by: by, plates: [trigger.dataset.plate] }),
        accepted,
      );
    },
    edit: (trigger) => {
      ui.editing = trigger.dataset.plate;
      ui.unticked.clear();
      renderSuggestion();
    },
    "edit-cancel": () => {
      ui.editing = null;
      ui.unticked.clear();
      renderSuggestion();
    },
    "edit-confirm": async (trigger) => {
      const plate = trigger.dataset.plate;
      const load = loadOf(plate);
      if (!load) return;
      const tradeIds = keptParts(load).flatMap((part) => part.trade_ids);
      if (!tradeIds.length) {
        showError(t("check.edit_empty"));
        return;
      }
      const suggestionId = state.suggestion.suggestion_id;
      const made = await decide(
        trigger,
        "POST",
        "/assignments",
        (by) => ({ plate, trade_ids: tradeIds, assigned_by: by, suggestion_id: suggestionId }),
        (assignments) => t("done.accepted", { n: assignments.length }),
      );
      if (made) {
        ui.editing = null;
        ui.unticked.clear();
        renderSuggestion();
      }
    },
  };

  document.addEventListener("click", (event) => {
    const trigger = event.target.closest("[data-action]");
    if (!trigger || trigger.disabled || !Object.hasOwn(ACTIONS, trigger.dataset.action)) return;
    event.preventDefault();
    ACTIONS[trigger.dataset.action](trigger, event);
  });

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.classList.contains("bay-pick")) {
      ui.bayPick.set(target.dataset.plate, Number(target.value));
    } else if (target.classList.contains("assign-truck")) {
      ui.assignPlate = target.value;
    } else if (target.classList.contains("part-tick")) {
      const part = target.dataset.part;
      if (target.checked) ui.unticked.delete(part);
      else ui.unticked.add(part);
      const load = loadOf(ui.editing);
      const card = target.closest(".load");
      if (load && card) {
        card.querySelector(".selected").textContent = t("sug.selected", {
          kg: gramsToKg(selectedGrams(load)),
        });
      }
    }
  });

  function checkIn(event) {
    event.preventDefault();
    const value = (id) => $(id).value.trim();
    const plate = value("ci-plate");
    const driver = value("ci-driver");
    const capacity = value("ci-capacity");
    const refrigerated = $("ci-refrigerated").checked;
    const setpoint = value("ci-setpoint");
    const label = (id) => document.querySelector(`label[for="${id}"]`).textContent;
    let problem = null;
    if (!plate) problem = ["ci-plate", t("check.required", { field: label("ci-plate") })];
    else if (!driver) problem = ["ci-driver", t("check.required", { field: label("ci-driver") })];
    else if (!WEIGHT.test(capacity) || !/[1-9]/.test(capacity)) {
      problem = ["ci-capacity", t("check.capacity")];
    } else if (refrigerated && !SETPOINT.test(setpoint)) {
      problem = ["ci-setpoint", t("check.setpoint")];
    }
    if (problem) {
      showError(problem[1]);
      $("error").dataset.code = "form";
      $(problem[0]).focus();
      return;
    }
    const destinations = value("ci-destinations")
      .split(DESTINATION_SPLIT)
      .map((d) => d.trim())
      .filter(Boolean);
    const body = {
      plate,
      driver,
      phone: value("ci-phone"),
      capacity_kg: capacity,
      refrigerated,
      setpoint_c: refrigerated ? setpoint : null,
      destinations,
    };
    decide($("ci-submit"), "POST", "/trucks", (by) => ({ ...body, checked_in_by: by }), (truck) => {
      $("checkin-form").reset();
      $("ci-setpoint").disabled = true;
      return t("done.checked_in", { plate: truck.plate });
    });
  }

  $("operator").value = storage.get() || "";
  $("operator").addEventListener("change", () => {
    const value = $("operator").value.trim();
    if (!value || IDENTIFIER.test(value)) storage.set(value);
  });
  $("ci-refrigerated").addEventListener("change", () => {
    $("ci-setpoint").disabled = !$("ci-refrigerated").checked;
  });
  $("checkin-form").addEventListener("submit", checkIn);
  $("error-close").addEventListener("click", clearError);
  setInterval(tick, 1000);

  refresh().then(follow);
})();
