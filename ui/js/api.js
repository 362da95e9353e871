// The backend's API, with every failure turned into a readable BackendError.

export const TIMEOUT_MS = 15000;

export class BackendError extends Error {
  /**
   * @param {'unreachable'|'timeout'|'client'|'server'|'bad-response'} kind
   * @param {number} status HTTP status, 0 when there was no answer
   */
  constructor(kind, status, message) {
    super(message);
    this.name = 'BackendError';
    this.kind = kind;
    this.status = status;
  }
}

/** The `detail` of a FastAPI-style error body (a string, or a list of {loc, msg}). */
function detailOf(body, text, statusText) {
  const detail = body?.detail ?? body?.message ?? body?.error;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (typeof d === 'string' ? d : d?.msg ?? JSON.stringify(d))).join('; ');
  }
  if (detail != null) return JSON.stringify(detail);
  const trimmed = (text ?? '').trim();
  return trimmed ? trimmed.slice(0, 200) : statusText || 'no details';
}

export class Backend {
  constructor(baseUrl) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  async #request(method, path, body, signal) {
    const timeout = AbortSignal.timeout(TIMEOUT_MS);
    const signals = [timeout];
    if (signal) signals.push(signal);
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.any(signals),
        cache: 'no-store',
      });
    } catch (err) {
      if (signal?.aborted) throw err; // superseded by a newer request: not an error to show
      if (timeout.aborted) {
        throw new BackendError('timeout', 0,
          `The backend at ${this.baseUrl} did not answer within ${TIMEOUT_MS / 1000} s.`);
      }
      throw new BackendError('unreachable', 0,
        `Cannot reach the backend at ${this.baseUrl}. Is it running? (${err.message})`);
    }
    let text = '';
    try {
      text = await response.text();
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new BackendError('bad-response', response.status,
        `The backend's answer was cut off (${err.message}).`);
    }
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const detail = detailOf(json, text, response.statusText);
      const s = response.status;
      if (s >= 500) {
        const what = s === 503 ? 'The model is not available right now'
          : s === 504 ? 'The model took too long to answer'
            : 'The backend failed';
        throw new BackendError('server', s, `${what} (${s}): ${detail}`);
      }
      throw new BackendError('client', s, `The backend refused the request (${s}): ${detail}`);
    }
    if (json === undefined) {
      throw new BackendError('bad-response', response.status,
        'The backend answered with something that is not JSON.');
    }
    return json;
  }

  /** POST /invocations/ → the top guesses, best first: [{label, score}]. */
  async predict(base64, signal) {
    const json = await this.#request('POST', '/invocations/', { inputs: base64 }, signal);
    return topGuesses(json);
  }

  /** POST /save-image/ → {message, filepath}. */
  saveImage(base64, category, signal) {
    return this.#request('POST', '/save-image/', { image: base64, category }, signal);
  }

  /** GET /categories → the model's category names, in order. */
  async categories(signal) {
    const json = await this.#request('GET', '/categories', undefined, signal);
    const list = Array.isArray(json) ? json : json?.categories;
    if (!Array.isArray(list)) {
      throw new BackendError('bad-response', 200, 'The backend sent no category list.');
    }
    return list.map(String);
  }
}

/** The model server's answer → [{label, score}] best first (its top_k if present). */
export function topGuesses(json) {
  const predictions = Array.isArray(json) ? json : json?.predictions;
  const first = Array.isArray(predictions) ? predictions[0] : undefined;
  if (!first || typeof first !== 'object') {
    throw new BackendError('bad-response', 200, 'The backend sent no prediction.');
  }
  const list = Array.isArray(first.top_k) && first.top_k.length > 0 ? first.top_k : [first];
  const guesses = list
    .filter((g) => g && typeof g.label === 'string' && Number.isFinite(Number(g.score)))
    .map((g) => ({ label: g.label, score: Number(g.score) }))
    .sort((a, b) => b.score - a.score);
  if (guesses.length === 0) {
    throw new BackendError('bad-response', 200, 'The backend sent a prediction without labels.');
  }
  return guesses;
}
