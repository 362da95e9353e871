// "Only the newest answer counts": every request gets a sequence number and an AbortSignal;
// starting a new one aborts the previous one, and an answer whose number is no longer the
// newest is dropped, so a late reply can never overwrite a newer one.

export class Latest {
  #seq = 0;
  #controller = null;

  /** Start a new request: aborts the one in flight. */
  start() {
    this.#controller?.abort();
    const controller = new AbortController();
    this.#controller = controller;
    const seq = ++this.#seq;
    return {
      seq,
      signal: controller.signal,
      isCurrent: () => seq === this.#seq,
      done: () => {
        if (seq === this.#seq) this.#controller = null;
      },
    };
  }

  /** Forget the request in flight (the drawing changed, or was cleared). */
  cancel() {
    this.#controller?.abort();
    this.#controller = null;
    this.#seq += 1;
  }

  get inFlight() {
    return this.#controller !== null;
  }
}
