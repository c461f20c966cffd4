// Silent Customizer's browser client: an ES module, no build step, no dependencies.
//
//   import { SilentClient } from "https://silent.example/static/silent.js";
//   const silent = new SilentClient({ endpoint: "https://silent.example", key: "sk_public_..." });
//   const answer = await silent.slate("home-recs", { unit, context, candidates });  // never throws
//   for (const id of answer.items) render(id);   // the service's slate, or the shop's own order
//   silent.reward(answer.event_id, { type: "click", item: id });                     // never throws
//
// Use a *public* key here (silent keys create --role public --experiment KEY --origin URL): it is
// accepted only from the shop's origins and only for the experiments it names. Shop and admin
// keys must never reach a browser.
//
// slate() keeps to a time budget (default 50 ms, connecting included): when the service is slow,
// down or refuses, it answers with the shop's own order (the candidates as given, or `fallback`)
// and says why, so the page never waits on personalization. reward() and activate() send at once
// (nothing is batched, so nothing is lost when the page unloads) with `keepalive`, so a click
// that navigates away still arrives; they retry network failures, 429 and 5xx with backoff, and
// every retry carries the same reward `id`, so the service counts the outcome once.

const DEFAULT_TIMEOUT_MS = 50;
const DEFAULT_RETRIES = 3;
const BACKOFF_MS = 250;
const MAX_WAIT_MS = 10_000;

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function candidateIds(candidates) {
  return (candidates || []).map((c) => (typeof c === "string" ? c : c.id));
}

export class SilentClient {
  /**
   * @param {object} options
   * @param {string} options.endpoint  the service's base URL, e.g. "https://silent.example"
   * @param {string} options.key       a public key
   * @param {number} [options.timeoutMs=50]  slate budget in milliseconds
   * @param {number} [options.retries=3]     extra tries of a reward or activation
   * @param {function} [options.onError]     called with {call, reason, status, error} on every failure, to log
   */
  constructor({ endpoint, key, timeoutMs = DEFAULT_TIMEOUT_MS, retries = DEFAULT_RETRIES, onError } = {}) {
    if (!endpoint || !key) throw new Error("SilentClient needs an endpoint and a public key");
    this.endpoint = endpoint.replace(/\/+$/, "");
    this.key = key;
    this.timeoutMs = timeoutMs;
    this.retries = retries;
    this.onError = onError || (() => {});
  }

  // The public key travels in the URL and the JSON as text/plain: a CORS "simple" request, which the
  // browser sends without a preflight, so each call costs one round trip. (The service also answers
  // preflights, for callers that send the key as 'Authorization: Bearer'.)
  _url(path) {
    return `${this.endpoint}${path}?key=${encodeURIComponent(this.key)}`;
  }

  _failed(call, reason, status, error) {
    try {
      this.onError({ call, reason, status, error });
    } catch (_) {
      // the shop's logger must not break the page
    }
  }

  /**
   * Ask for a slate within the budget; never throws.
   * @returns {Promise<object>} the service's answer plus `items` (ids in slate order) and
   *   `fallback: false`; or on any failure `{event_id: null, items: <the shop's order>,
   *   fallback: true, reason}` (reason: "timeout", "network", "http 403", ...).
   */
  async slate(experiment, request = {}, { timeoutMs = this.timeoutMs, fallback } = {}) {
    const started = performance.now();
    const shopOrder = fallback ? candidateIds(fallback) : candidateIds(request.candidates);
    const fallBack = (reason, status, error) => {
      this._failed("slate", reason, status, error);
      const items = request.slots ? shopOrder.slice(0, request.slots) : shopOrder;
      return { event_id: null, experiment, variant: null, fallback: true, reason, items,
               slate: items.map((id, slot) => ({ slot, id, probability: null })),
               elapsed_ms: performance.now() - started };
    };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const response = await fetch(this._url(`/v1/experiments/${encodeURIComponent(experiment)}/slate`), {
        method: "POST", mode: "cors", credentials: "omit", body: JSON.stringify(request),
        signal: controller.signal,
      });
      const answer = await response.json();
      if (!response.ok) return fallBack(`http ${response.status}`, response.status, answer.error);
      return { ...answer, items: answer.slate.map((s) => s.id), fallback: false,
               elapsed_ms: performance.now() - started };
    } catch (error) {
      return fallBack(controller.signal.aborted ? "timeout" : "network", null, String(error));
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Post an outcome of a slate; retried with the same reward `id`, so it counts once. Never throws.
   * @returns {Promise<object>} {ok: true, answer} or {ok: false, reason, status, error}.
   */
  reward(eventId, { type = "click", item, value, id } = {}) {
    if (!eventId) return Promise.resolve({ ok: false, reason: "no event: the slate was the shop's own order" });
    const body = { type, id: id || randomId() };
    if (item !== undefined) body.item = item;
    if (value !== undefined) body.value = value;
    return this._send("reward", `/v1/events/${encodeURIComponent(eventId)}/rewards`, body);
  }

  /** Say a slate asked for with `defer_activation: true` was shown (activating twice is harmless). */
  activate(eventId) {
    if (!eventId) return Promise.resolve({ ok: false, reason: "no event: the slate was the shop's own order" });
    return this._send("activate", `/v1/events/${encodeURIComponent(eventId)}/activate`, {});
  }

  async _send(call, path, body) {
    const payload = JSON.stringify(body);
    let last = { ok: false, reason: "not sent" };
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      let wait = BACKOFF_MS * 2 ** attempt;
      try {
        const response = await fetch(this._url(path), {
          method: "POST", mode: "cors", credentials: "omit", keepalive: true, body: payload,
        });
        const answer = await response.json().catch(() => null);
        if (response.ok) return { ok: true, answer };
        last = { ok: false, reason: `http ${response.status}`, status: response.status, error: answer && answer.error };
        const again = response.status === 429 || response.status === 408 || response.status >= 500;
        if (!again) break;  // a mistake in the request: sending it again cannot help
        const after = Number(response.headers.get("Retry-After"));
        if (after > 0) wait = Math.min(after * 1000, MAX_WAIT_MS);
      } catch (error) {
        last = { ok: false, reason: "network", status: null, error: String(error) };
      }
      if (attempt < this.retries) await sleep(wait);
    }
    this._failed(call, last.reason, last.status, last.error);
    return last;
  }
}
