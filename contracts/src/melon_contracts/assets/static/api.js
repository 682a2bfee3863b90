/*
 * Calling a Melon Hall JSON API from a page. Every service refuses with one shape,
 * ``{error, detail, detail_zh}``: ``error`` a stable code for the page to pick its own words by,
 * ``detail`` the reason, and ``detail_zh`` the reason in Chinese when the service has one.
 */
"use strict";

window.MelonApi = (() => {
  class ApiError extends Error {
    constructor(status, code, detail, detailZh = null) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
      this.detailZh = detailZh;
    }
  }

  /** One request: resolves to ``{status, data}``, rejects with an ApiError (0: no answer). */
  async function request(method, path, body, headers = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", String(err && err.message ? err.message : err));
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const code = data && typeof data.error === "string" ? data.error : `http_${response.status}`;
      let detail = data && data.detail !== undefined ? data.detail : response.statusText;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      const zh = data && typeof data.detail_zh === "string" ? data.detail_zh : null;
      throw new ApiError(response.status, code, detail, zh);
    }
    return { status: response.status, data };
  }

  /** A refusal's reason in the page's language: the Chinese one when there is one. */
  function detailIn(err, lang) {
    return lang === "zh" && err.detailZh ? err.detailZh : err.detail;
  }

  return Object.freeze({ ApiError, request, detailIn });
})();
