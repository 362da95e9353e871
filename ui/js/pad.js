// The drawing surface: pointer events (mouse, touch, pen), strokes kept as vectors (so they can
// be re-rendered for the model at any size), smooth rendering, undo and clear.

const MIN_STEP = 1.5; // CSS px between recorded points

export class DrawingPad {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onStrokeStart?: () => void, onStrokeEnd?: () => void, onChange?: () => void}} hooks
   */
  constructor(canvas, hooks = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.hooks = hooks;
    /** Finished strokes, in units of the canvas's CSS width (0..1), so resizing keeps them. */
    this.strokes = [];
    this.current = null;
    this.pointerId = null;
    this.frame = 0;

    canvas.addEventListener('pointerdown', (e) => this.#down(e));
    canvas.addEventListener('pointermove', (e) => this.#move(e));
    canvas.addEventListener('pointerup', (e) => this.#up(e));
    canvas.addEventListener('pointercancel', (e) => this.#up(e));
    canvas.addEventListener('lostpointercapture', (e) => this.#up(e));
    // No scrolling, zooming or context menu while drawing on a phone.
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());
    new ResizeObserver(() => this.#resize()).observe(canvas);
    this.#resize();
  }

  get isEmpty() {
    return this.strokes.length === 0;
  }

  /** Finished strokes as [[{x, y}]] in CSS pixels of the canvas. */
  get vectorStrokes() {
    const w = this.canvas.clientWidth || 1;
    return this.strokes.map((s) => s.map((p) => ({ x: p.x * w, y: p.y * w })));
  }

  undo() {
    if (this.strokes.length === 0) return;
    this.strokes.pop();
    this.#redraw();
    this.hooks.onChange?.();
  }

  clear() {
    if (this.strokes.length === 0 && !this.current) return;
    this.strokes = [];
    this.current = null;
    this.pointerId = null;
    this.#redraw();
    this.hooks.onChange?.();
  }

  #point(e) {
    const rect = this.canvas.getBoundingClientRect();
    const w = rect.width || 1;
    return { x: (e.clientX - rect.left) / w, y: (e.clientY - rect.top) / w };
  }

  #down(e) {
    if (this.pointerId !== null) return; // a second finger does not start a second stroke
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    e.preventDefault();
    try {
      this.canvas.setPointerCapture(e.pointerId); // keep the stroke when the pointer leaves the pad
    } catch {
      // a pointer the browser does not track (synthetic events): draw without capture
    }
    this.pointerId = e.pointerId;
    this.current = [this.#point(e)];
    this.hooks.onStrokeStart?.();
    this.#schedule();
  }

  #move(e) {
    if (e.pointerId !== this.pointerId || !this.current) return;
    e.preventDefault();
    const events = e.getCoalescedEvents?.() ?? [];
    const w = this.canvas.clientWidth || 1;
    for (const ev of events.length > 0 ? events : [e]) {
      const p = this.#point(ev);
      const last = this.current[this.current.length - 1];
      if (Math.hypot(p.x - last.x, p.y - last.y) * w >= MIN_STEP) this.current.push(p);
    }
    this.#schedule();
  }

  #up(e) {
    if (e.pointerId !== this.pointerId || !this.current) return;
    const p = this.#point(e);
    const last = this.current[this.current.length - 1];
    if (e.type === 'pointerup' && (p.x !== last.x || p.y !== last.y)) this.current.push(p);
    this.strokes.push(this.current);
    this.current = null;
    this.pointerId = null;
    this.#redraw();
    this.hooks.onChange?.();
    this.hooks.onStrokeEnd?.();
  }

  #schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.#redraw();
    });
  }

  #resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.#redraw();
  }

  #redraw() {
    const { ctx, canvas } = this;
    const w = canvas.width;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#111';
    ctx.fillStyle = '#111';
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineWidth = Math.max(3, w / 70);
    const all = this.current ? [...this.strokes, this.current] : this.strokes;
    for (const stroke of all) drawSmooth(ctx, stroke.map((p) => ({ x: p.x * w, y: p.y * w })));
  }
}

/** Cosine of the sharpest turn that is still drawn as a curve; sharper turns stay corners. */
const CORNER_COS = Math.cos((50 * Math.PI) / 180);

/**
 * A stroke as a Catmull-Rom spline: smooth, yet through every recorded point, so what you see
 * is the path the model's image is rendered from. Sharp turns are kept as corners.
 */
function drawSmooth(ctx, pts) {
  if (pts.length === 0) return;
  ctx.beginPath();
  if (pts.length === 1) {
    ctx.arc(pts[0].x, pts[0].y, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  const tangents = pts.map((p, i) => {
    const prev = pts[Math.max(0, i - 1)];
    const next = pts[Math.min(pts.length - 1, i + 1)];
    const ax = p.x - prev.x; const ay = p.y - prev.y;
    const bx = next.x - p.x; const by = next.y - p.y;
    const la = Math.hypot(ax, ay); const lb = Math.hypot(bx, by);
    if (la > 0 && lb > 0 && (ax * bx + ay * by) / (la * lb) < CORNER_COS) return { x: 0, y: 0 };
    return { x: (next.x - prev.x) / 6, y: (next.y - prev.y) / 6 };
  });
  ctx.moveTo(pts[0].x, pts[0].y);
  for (let i = 0; i < pts.length - 1; i++) {
    const a = pts[i];
    const b = pts[i + 1];
    ctx.bezierCurveTo(
      a.x + tangents[i].x, a.y + tangents[i].y,
      b.x - tangents[i + 1].x, b.y - tangents[i + 1].y,
      b.x, b.y,
    );
  }
  ctx.stroke();
}
