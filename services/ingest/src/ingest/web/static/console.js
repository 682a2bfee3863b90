/*
 * The weigh-station console: the live scale, lot entry, tickets and prints.
 *
 * It talks only to the ingest HTTP API, the same one scripts use; weights always come from the
 * scale on the server, never from this page. Built for keyboard work: a barcode scanner types the
 * lot tag and Enter, Enter moves to the next field, Enter on the last field or Ctrl+Enter submits,
 * Esc clears the form for the next lot.
 */
"use strict";

(() => {
  const CONFIG = JSON.parse(document.getElementById("console-config").textContent);
  const TEXT = CONFIG.text;
  const LANG = CONFIG.lang;

  const STORE = {
    operator: "melon.ingest.operator",
    station: "melon.ingest.station",
    crateType: "melon.ingest.crateType",
  };
  const SCALE_REFUSALS = new Set([
    "unstable",
    "overload",
    "below_minimum",
    "negative",
    "zero_drift",
    "not_returned_to_zero",
    "offline",
  ]);
  const RED_STATUSES = new Set(["overload", "underload", "offline", "zero_drift"]);
  const GRADE_POLL_MS = 500;
  const GRADE_WAIT_MS = 10000;
  // The stream repeats itself now and then while the scale is quiet; this much silence means
  // the connection is gone even if the browser has not noticed yet.
  const STREAM_SILENCE_MS = 15000;

  const $ = (id) => document.getElementById(id);

  const state = {
    station: null,
    stations: [],
    source: null,
    lastEventAt: 0,
    ticket: null,
    poll: 0,
    busy: false,
  };

  function t(key, values) {
    let text = Object.hasOwn(TEXT, key) ? TEXT[key] : key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.replaceAll(`{${name}}`, String(value));
    }
    return text;
  }

  const storage = {
    get(key) {
      try {
        return window.localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(key, value);
      } catch {
        /* private mode or full: the console still works, it just forgets */
      }
    },
  };

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // -- the API ------------------------------------------------------------------------------

  const api = window.MelonApi.request;

  const stationPath = (stationId, suffix) => `/stations/${encodeURIComponent(stationId)}${suffix}`;

  // -- numbers as people read them ----------------------------------------------------------

  /** Grams as kg in the scale's resolution: d = 200 g shows one decimal, d = 20 kg none. */
  function scaleKg(grams, division) {
    const decimals = division >= 1000 ? 0 : division >= 100 ? 1 : division >= 10 ? 2 : 3;
    const abs = Math.abs(grams);
    const whole = Math.floor(abs / 1000);
    const fraction = String(abs % 1000).padStart(3, "0").slice(0, decimals);
    return `${grams < 0 ? "-" : ""}${whole}${decimals ? `.${fraction}` : ""}`;
  }

  /** Grams as kg with two decimals, three when the grams need them, as the ticket prints. */
  function ticketKg(grams) {
    if (grams === null || grams === undefined) return "—";
    const abs = Math.abs(grams);
    let fraction = String(abs % 1000).padStart(3, "0");
    if (fraction.endsWith("0")) fraction = fraction.slice(0, 2);
    return `${grams < 0 ? "-" : ""}${Math.floor(abs / 1000)}.${fraction}`;
  }

  function gramsText(grams) {
    if (grams >= 1000 && grams % 1000 === 0) return `${grams / 1000} kg`;
    if (grams >= 1000) return `${ticketKg(grams)} kg`;
    return `${grams} g`;
  }

  const ticketNumber = (stationId, ticketNo) =>
    `${String(stationId).toUpperCase()}-${String(ticketNo).padStart(6, "0")}`;

  function today() {
    const now = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  }

  const consoleUrl = (stationId, lang) =>
    `/console?${new URLSearchParams({ station: stationId, lang }).toString()}`;

  // -- the live scale -----------------------------------------------------------------------

  function showScale(view) {
    const status = view.status;
    let light;
    let text;
    if (status === null || status === undefined) {
      light = "red";
      text = t("scale.no_reading");
    } else if (RED_STATUSES.has(status)) {
      light = "red";
      text = t(`scale.${status}`);
    } else if (view.taken) {
      light = "grey";
      text = t("scale.taken");
    } else if (status === "motion") {
      light = "amber";
      text = t("scale.motion");
    } else if (status === "stable") {
      light = "green";
      text = t("scale.stable");
    } else if (status === "empty") {
      light = "off";
      text = t("scale.empty");
    } else {
      light = "red";
      text = String(status);
    }
    const value = view.value_g;
    $("weight-value").textContent =
      value === null || value === undefined ? "-----" : scaleKg(value, view.division_g);
    $("light").dataset.light = light;
    $("scale").dataset.status = status || "none";
    $("scale").dataset.taken = view.taken ? "true" : "false";
    // Assigned only on change: the status is a live region, read out each time it is set.
    if ($("scale-status").textContent !== text) $("scale-status").textContent = text;
    $("scale-limits").textContent = t("scale.limits", {
      d: gramsText(view.division_g),
      max: gramsText(view.max_g),
      min: gramsText(view.min_load_g),
    });
  }

  function showDisconnected() {
    $("weight-value").textContent = "-----";
    $("light").dataset.light = "red";
    $("scale").dataset.status = "disconnected";
    if ($("scale-status").textContent !== t("scale.disconnected")) {
      $("scale-status").textContent = t("scale.disconnected");
    }
  }

  function connect() {
    if (state.source) state.source.close();
    const source = new EventSource(stationPath(state.station.station_id, "/scale/stream"));
    state.source = source;
    state.lastEventAt = Date.now();
    source.addEventListener("scale", (event) => {
      if (state.source !== source) return;
      state.lastEventAt = Date.now();
      showScale(JSON.parse(event.data));
    });
    source.addEventListener("error", () => {
      if (state.source !== source) return;
      showDisconnected();
      // The browser retries by itself unless the server refused the stream outright.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(() => {
          if (state.source === source) connect();
        }, 3000);
      }
    });
  }

  setInterval(() => {
    if (state.source && Date.now() - state.lastEventAt > STREAM_SILENCE_MS) showDisconnected();
  }, 1000);

  // -- errors -------------------------------------------------------------------------------

  function errorTitle(code, detail) {
    let key = code;
    if (code === "scale_refused") {
      // The scale's refusal names its reason first: "unstable: 612.40 kg has not held ...".
      const head = String(detail || "").split(":")[0].trim().replaceAll(" ", "_");
      if (SCALE_REFUSALS.has(head)) key = head;
    }
    if (Object.hasOwn(TEXT, `err.${key}`)) return { key, title: TEXT[`err.${key}`] };
    if (/^http_5\d\d$/.test(code)) return { key, title: t("err.server", { code }) };
    return { key, title: t("err.generic", { code }) };
  }

  function showError(err) {
    const code = err && err.code ? err.code : "network";
    const detail = err && err.detail !== undefined ? err.detail : String(err);
    const { key, title } = errorTitle(code, detail);
    $("error-title").textContent = title;
    $("error-detail").textContent = detail || "";
    $("error").dataset.code = key;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").dataset.code = "";
    $("error-title").textContent = "";
    $("error-detail").textContent = "";
    for (const field of document.querySelectorAll("[aria-invalid]")) {
      field.removeAttribute("aria-invalid");
    }
  }

  // -- the forms ----------------------------------------------------------------------------

  const isTruck = () => state.station !== null && state.station.kind === "truck";

  function labelOf(field) {
    const label = document.querySelector(`label[for="${field.id}"]`);
    return label ? label.textContent.trim() : field.id;
  }

  function isShown(element) {
    return element.closest("[hidden]") === null;
  }

  /** The form's fields in Tab order, as far as they are shown and enabled. */
  function fieldsOf(form) {
    return Array.from(form.elements).filter(
      (el) =>
        (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA") &&
        el.type !== "hidden" &&
        !el.disabled &&
        isShown(el),
    );
  }

  function onFormKey(event) {
    if (event.key !== "Enter" || event.isComposing || event.keyCode === 229) return;
    const form = event.currentTarget;
    if (event.ctrlKey || event.metaKey) {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    const target = event.target;
    if (target.tagName === "BUTTON") return;
    event.preventDefault();
    // Enter walks the entries; options (checkboxes) are for Tab, so they never hold Enter up.
    const fields = fieldsOf(form).filter((el) => el.type !== "checkbox");
    const index = fields.indexOf(target);
    if (index === -1 || index === fields.length - 1) {
      form.requestSubmit();
      return;
    }
    const next = fields[index + 1];
    next.focus();
    if (next.tagName === "INPUT" && next.type === "text") next.select();
  }

  /** Collects entries and the problems found in them, so all are reported at once. */
  class Entry {
    constructor() {
      this.problems = [];
    }

    problem(field, message) {
      this.problems.push({ field, message });
    }

    text(id, required) {
      const field = $(id);
      const value = field.value.trim();
      if (required && !value) this.problem(field, t("check.required", { field: labelOf(field) }));
      return value;
    }

    tokens(id) {
      return $(id)
        .value.split(/[\s,，;；、]+/)
        .filter((token) => token.length > 0);
    }

    numbers(id, required, whole) {
      const field = $(id);
      const pattern = whole ? /^\d+$/ : /^\d+(\.\d+)?$/;
      const values = [];
      for (const token of this.tokens(id)) {
        if (!pattern.test(token)) {
          const key = whole ? "check.integer" : "check.number";
          this.problem(field, t(key, { field: labelOf(field), value: token }));
          continue;
        }
        values.push(Number(token));
      }
      if (required && values.length === 0 && this.tokens(id).length === 0) {
        this.problem(field, t("check.required", { field: labelOf(field) }));
      }
      return values;
    }

    count(field) {
      const value = field.value.trim();
      if (!value) return 0;
      if (!/^\d+$/.test(value)) {
        this.problem(field, t("check.integer", { field: labelOf(field), value }));
        return 0;
      }
      return Number(value);
    }

    report() {
      if (this.problems.length === 0) return true;
      for (const { field } of this.problems) field.setAttribute("aria-invalid", "true");
      showError({
        code: "form",
        detail: this.problems.map((problem) => problem.message).join("; "),
      });
      this.problems[0].field.focus();
      return false;
    }
  }

  function operatorId(entry) {
    const operator = entry.text("operator_id", true);
    if (operator) storage.set(STORE.operator, operator);
    return operator;
  }

  function collectLot() {
    const entry = new Entry();
    const truck = isTruck();
    const lotId = entry.text("lot_id", true);
    const plate = truck ? entry.text("plate", true) : null;
    const farmerId = entry.text("farmer_id", true);
    const villageGroup = entry.text("village_group", false);
    const variety = entry.text("variety", true);
    const harvestDate = entry.text("harvest_date", false);
    if (harvestDate && !/^\d{4}-\d{2}-\d{2}$/.test(harvestDate)) {
      entry.problem($("harvest_date"), t("check.date", { field: labelOf($("harvest_date")) }));
    }
    const crates = entry.numbers("crates", true, true);
    const crateType = truck ? null : entry.text("crate_type", true);
    const brix = entry.numbers("brix", true, false);
    const fruitWeights = entry.numbers("fruit_weights", false, true);
    const defects = {};
    for (const field of document.querySelectorAll("#defects input[data-kind]")) {
      const count = entry.count(field);
      if (count > 0) defects[field.dataset.kind] = count;
    }
    const operator = operatorId(entry);
    if (crates.length > 1) {
      entry.problem($("crates"), t("check.integer", { field: labelOf($("crates")), value: $("crates").value }));
    }
    if (!entry.report()) return null;
    const body = {
      lot_id: lotId,
      farmer_id: farmerId,
      village_group: villageGroup,
      variety,
      harvest_date: harvestDate || null,
      crates: crates[0],
      crate_type: crateType || null,
      sample: { brix, fruit_weights_g: fruitWeights, defects },
      operator_id: operator,
    };
    if (truck) {
      body.plate = plate;
      body.use_stored_tare = $("use_stored_tare").checked;
    }
    return body;
  }

  function clearForm() {
    for (const field of fieldsOf($("lot-form")).concat(fieldsOf($("out-form")))) {
      if (field.id === "crate_type") continue;
      if (field.type === "checkbox") field.checked = false;
      else field.value = "";
    }
    $("variety").value = "";
    $("harvest_date").value = today();
    clearError();
    $("lot_id").focus();
  }

  async function run(work) {
    if (state.busy) return;
    state.busy = true;
    document.body.setAttribute("aria-busy", "true");
    for (const id of ["confirm", "weigh-out", "print"]) $(id).setAttribute("aria-disabled", "true");
    try {
      await work();
    } catch (err) {
      showError(err);
    } finally {
      state.busy = false;
      document.body.removeAttribute("aria-busy");
      for (const id of ["confirm", "weigh-out", "print"]) $(id).removeAttribute("aria-disabled");
    }
  }

  async function submitLot() {
    if (state.busy || state.station === null) return;
    clearError();
    const body = collectLot();
    if (body === null) return;
    const stationId = state.station.station_id;
    await run(async () => {
      if (!isTruck()) {
        const { data } = await api("POST", stationPath(stationId, "/weighings"), body);
        showTicket(data);
        return;
      }
      const { status, data } = await api("POST", stationPath(stationId, "/weigh-ins"), body);
      if (status === 202) {
        showPending(data);
        rememberPlate(data.plate);
        clearForm();
      } else {
        showTicket(data);
      }
    });
  }

  async function submitWeighOut() {
    if (state.busy || state.station === null) return;
    clearError();
    const entry = new Entry();
    const plate = entry.text("out_plate", true);
    const operator = operatorId(entry);
    if (!entry.report()) return;
    const stationId = state.station.station_id;
    await run(async () => {
      const { data } = await api("POST", stationPath(stationId, "/weigh-outs"), {
        plate,
        operator_id: operator,
        store_tare: $("store_tare").checked,
      });
      $("pending").hidden = true;
      showTicket(data);
    });
  }

  function rememberPlate(plate) {
    const list = $("plates");
    if (Array.from(list.options).some((option) => option.value === plate)) return;
    list.append(new Option(plate, plate));
  }

  // -- tickets ------------------------------------------------------------------------------

  function showPending(view) {
    $("result").hidden = true;
    $("pending-text").textContent = t("pending.text", {
      plate: view.plate,
      lot: view.lot_id,
      gross: ticketKg(view.gross_g),
    });
    $("pending").hidden = false;
  }

  function showTicket(view) {
    state.ticket = view;
    $("pending").hidden = true;
    $("result-no").textContent = ticketNumber(view.station_id, view.ticket_no);
    $("result-lot").textContent = view.plate ? `${view.lot_id} · ${view.plate}` : view.lot_id;
    $("result-gross").textContent = `${ticketKg(view.gross_g)} kg`;
    $("result-tare").textContent = `${ticketKg(view.tare_g)} kg`;
    $("result-net").textContent = `${ticketKg(view.net_g)} kg`;
    $("result-note").hidden = !view.repeated;
    showGrade(view);
    showPrints(view.prints || 0);
    $("result").hidden = false;
    $("print").focus();
    if (view.status !== "graded") pollGrade(view.lot_id);
  }

  function showGrade(view) {
    const field = $("result-grade");
    const grade = view.grade;
    if (!grade) {
      field.textContent = t("ticket.grade_pending");
      field.dataset.graded = "false";
      field.dataset.grade = "";
      return;
    }
    const name = LANG === "zh" ? grade.grade_zh : CONFIG.gradeNames[grade.grade] || grade.grade;
    const reason = LANG === "zh" ? grade.reason : grade.reason_en || grade.reason;
    const strong = document.createElement("strong");
    strong.textContent = name;
    const profile = document.createElement("span");
    profile.className = "profile";
    profile.textContent = ` · ${grade.profile_id} v${grade.profile_version}`;
    field.replaceChildren(strong, profile);
    if (reason) {
      const why = document.createElement("small");
      why.className = "reason";
      why.textContent = reason;
      field.append(why);
    }
    field.dataset.graded = "true";
    field.dataset.grade = grade.grade;
  }

  async function pollGrade(lotId) {
    const token = ++state.poll;
    const deadline = Date.now() + GRADE_WAIT_MS;
    while (Date.now() < deadline) {
      await sleep(GRADE_POLL_MS);
      if (token !== state.poll) return;
      try {
        const { data } = await api("GET", `/lots/${encodeURIComponent(lotId)}`);
        if (token !== state.poll || !state.ticket || state.ticket.lot_id !== lotId) return;
        if (data.status === "graded") {
          state.ticket.grade = data.grade;
          state.ticket.status = data.status;
          showGrade(data);
          return;
        }
      } catch {
        /* the grade may still come: keep asking until the deadline */
      }
    }
  }

  function showPrints(prints) {
    $("print").textContent = prints > 0 ? t("ticket.reprint") : t("ticket.print");
    $("result-printed").textContent = prints > 0 ? t("ticket.printed", { n: prints }) : "";
  }

  async function printTicket() {
    const ticket = state.ticket;
    if (ticket === null || state.busy) return;
    clearError();
    const entry = new Entry();
    const operator = operatorId(entry);
    if (!entry.report()) return;
    // Open the window during the click itself, so no popup blocker stands in the way.
    const win = window.open("", "_blank");
    const path = stationPath(ticket.station_id, `/tickets/${ticket.ticket_no}/prints`);
    await run(async () => {
      try {
        const { data } = await api("POST", path, { operator_id: operator });
        const url = `${data.url}?lang=${LANG}`;
        if (win && !win.closed) win.location.href = url;
        else window.open(url, "_blank");
        ticket.prints = data.print_no;
        showPrints(data.print_no);
        clearForm();
      } catch (err) {
        if (win) win.close();
        throw err;
      }
    });
  }

  // -- stations, crate types and defect kinds -------------------------------------------------

  function applyKind(kind) {
    const truck = kind === "truck";
    for (const element of document.querySelectorAll(".truck-only")) element.hidden = !truck;
    for (const element of document.querySelectorAll(".platform-only")) element.hidden = truck;
    $("out-form").hidden = !truck;
    $("confirm").textContent = truck ? t("form.weigh_in") : t("form.confirm");
    document.body.dataset.kind = kind;
  }

  function selectStation(station) {
    state.station = station;
    storage.set(STORE.station, station.station_id);
    $("station").value = station.station_id;
    $("scale-station").textContent = station.station_id;
    document.body.dataset.station = station.station_id;
    applyKind(station.kind);
    $("lang-zh").href = consoleUrl(station.station_id, "zh");
    $("lang-en").href = consoleUrl(station.station_id, "en");
    window.history.replaceState(null, "", consoleUrl(station.station_id, LANG));
    showScale(station);
    connect();
  }

  async function loadStations() {
    for (;;) {
      try {
        const { data } = await api("GET", "/stations");
        if (Array.isArray(data) && data.length > 0) return data;
        showError({ code: "not_ready", detail: "" });
      } catch (err) {
        showError(err);
      }
      await sleep(1000);
    }
  }

  async function loadCrateTares() {
    try {
      const { data } = await api("GET", "/crate-tares");
      const select = $("crate_type");
      const keep = select.value || storage.get(STORE.crateType);
      select.replaceChildren(
        ...Object.entries(data).map(
          ([code, tare]) => new Option(`${code} (${tare.tare_kg} kg)`, code),
        ),
      );
      if (keep && Object.hasOwn(data, keep)) select.value = keep;
    } catch (err) {
      showError(err);
    }
  }

  /** Defect kinds as the profile names them: codes, or {kind, zh, en} with their labels. */
  function defectKinds(raw) {
    return raw
      .map((item) => {
        if (typeof item === "string") return { kind: item, label: null };
        if (item && typeof item.kind === "string") {
          return { kind: item.kind, label: LANG === "zh" ? item.zh : item.en };
        }
        return null;
      })
      .filter((item) => item !== null);
  }

  function renderDefects(kinds) {
    const grid = $("defects");
    grid.replaceChildren(
      ...kinds.map(({ kind, label }) => {
        const wrapper = document.createElement("div");
        wrapper.className = "field defect";
        const caption = document.createElement("label");
        caption.htmlFor = `defect-${kind}`;
        const known = Object.hasOwn(TEXT, `defect.${kind}`) ? TEXT[`defect.${kind}`] : kind;
        caption.textContent = label || known;
        const input = document.createElement("input");
        input.id = `defect-${kind}`;
        input.name = "defect";
        input.type = "text";
        input.inputMode = "numeric";
        input.autocomplete = "off";
        input.placeholder = "0";
        input.dataset.kind = kind;
        wrapper.append(caption, input);
        return wrapper;
      }),
    );
  }

  async function loadDefectKinds() {
    try {
      const { data } = await api("GET", "/grading-profiles");
      const raw = data && data.active ? data.active.defect_kinds : undefined;
      if (!Array.isArray(raw)) return;
      const kinds = defectKinds(raw);
      if (kinds.length > 0) renderDefects(kinds);
    } catch {
      /* the hall's usual defect kinds stay */
    }
  }

  // -- start --------------------------------------------------------------------------------

  function wire() {
    $("lot-form").addEventListener("keydown", onFormKey);
    $("out-form").addEventListener("keydown", onFormKey);
    $("lot-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submitLot();
    });
    $("out-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submitWeighOut();
    });
    $("print").addEventListener("click", printTicket);
    $("operator_id").addEventListener("change", () => {
      const value = $("operator_id").value.trim();
      if (value) storage.set(STORE.operator, value);
    });
    $("crate_type").addEventListener("change", () => {
      storage.set(STORE.crateType, $("crate_type").value);
    });
    $("station").addEventListener("change", () => {
      const station = state.stations.find((s) => s.station_id === $("station").value);
      if (station) {
        selectStation(station);
        clearForm();
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        clearForm();
      } else if (
        event.key === "Enter" &&
        (event.ctrlKey || event.metaKey) &&
        !event.target.closest("form")
      ) {
        event.preventDefault();
        $("lot-form").requestSubmit();
      }
    });
  }

  async function start() {
    $("operator_id").value = storage.get(STORE.operator) || "";
    $("harvest_date").value = today();
    wire();
    const stations = await loadStations();
    clearError();
    state.stations = stations;
    const picker = $("station");
    picker.replaceChildren(
      ...stations.map(
        (s) => new Option(`${s.station_id} · ${t(`kind.${s.kind}`)}`, s.station_id),
      ),
    );
    const wanted = CONFIG.station || storage.get(STORE.station);
    const found = stations.find((s) => s.station_id === wanted);
    selectStation(found || stations[0]);
    if (CONFIG.station && !found) {
      showError({ code: "unknown_station", detail: CONFIG.station });
    }
    await Promise.all([loadCrateTares(), loadDefectKinds()]);
    if (document.activeElement === document.body) $("lot_id").focus();
    document.body.dataset.ready = "true";
  }

  start();
})();
