// Drawing → the 784 bytes the model reads, made the way Quick, Draw! made its 28×28 bitmaps,
// so that a drawing on this page looks to the model like its training data:
//
// 1. "simplified" strokes: align the drawing to the top-left corner, scale it uniformly so
//    that its longer side spans 0..255, and simplify each stroke (Ramer–Douglas–Peucker, ε = 2);
// 2. centre the drawing's bounding box in the 256×256 frame;
// 3. render it with round caps and joins, a 16-unit line and a 16-unit padding on every side
//    (so 256 + 2·16 + 16 = 304 units map onto 28 px), anti-aliased, white ink on black.
//
// This reproduces the dataset: on every training drawing the ink's bounding box is 26 px on its
// longer side, centred, with strokes ~1.5 px wide and soft edges (see docs/architecture.md).

export const SIDE = 28;
const FRAME = 256;
const SCALED_MAX = 255;
const LINE_WIDTH = 16;
const PADDING = 16;
const EPSILON = 2;

/** Ramer–Douglas–Peucker simplification of one stroke ([{x, y}]). */
export function simplify(points, epsilon = EPSILON) {
  if (points.length < 3) return points.slice();
  const first = points[0];
  const last = points[points.length - 1];
  const dx = last.x - first.x;
  const dy = last.y - first.y;
  const len = Math.hypot(dx, dy);
  let worst = -1;
  let worstDist = -1;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const d = len === 0
      ? Math.hypot(p.x - first.x, p.y - first.y)
      : Math.abs(dy * p.x - dx * p.y + last.x * first.y - last.y * first.x) / len;
    if (d > worstDist) {
      worstDist = d;
      worst = i;
    }
  }
  if (worstDist <= epsilon) return [first, last];
  const left = simplify(points.slice(0, worst + 1), epsilon);
  const right = simplify(points.slice(worst), epsilon);
  return left.slice(0, -1).concat(right);
}

/** Strokes in any units → Quick, Draw!'s simplified strokes, centred in the 256 frame. */
export function normalize(strokes) {
  const all = strokes.flat();
  if (all.length === 0) return [];
  let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
  for (const p of all) {
    minX = Math.min(minX, p.x); minY = Math.min(minY, p.y);
    maxX = Math.max(maxX, p.x); maxY = Math.max(maxY, p.y);
  }
  const longer = Math.max(maxX - minX, maxY - minY);
  const scale = longer > 0 ? SCALED_MAX / longer : 1;
  const offX = (FRAME - (maxX - minX) * scale) / 2;
  const offY = (FRAME - (maxY - minY) * scale) / 2;
  return strokes
    .filter((s) => s.length > 0)
    .map((s) => simplify(s.map((p) => ({ x: (p.x - minX) * scale, y: (p.y - minY) * scale }))))
    .map((s) => s.map((p) => ({ x: p.x + offX, y: p.y + offY })));
}

function canvas28() {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(SIDE, SIDE);
  const c = document.createElement('canvas');
  c.width = SIDE;
  c.height = SIDE;
  return c;
}

/** Strokes ([[{x, y}]], any units) → 784 bytes, row by row, 0 = background, 255 = ink. */
export function rasterize(strokes) {
  const canvas = canvas28();
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, SIDE, SIDE);
  const total = FRAME + 2 * PADDING + LINE_WIDTH;
  const k = SIDE / total;
  ctx.setTransform(k, 0, 0, k, (total - FRAME) / 2 * k, (total - FRAME) / 2 * k);
  ctx.strokeStyle = '#fff';
  ctx.fillStyle = '#fff';
  ctx.lineWidth = LINE_WIDTH;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  for (const stroke of normalize(strokes)) {
    const [p0] = stroke;
    if (stroke.length === 1 || stroke.every((p) => p.x === p0.x && p.y === p0.y)) {
      ctx.beginPath();
      ctx.arc(p0.x, p0.y, LINE_WIDTH / 2, 0, 2 * Math.PI);
      ctx.fill();
      continue;
    }
    ctx.beginPath();
    ctx.moveTo(p0.x, p0.y);
    for (const p of stroke.slice(1)) ctx.lineTo(p.x, p.y);
    ctx.stroke();
  }
  const rgba = ctx.getImageData(0, 0, SIDE, SIDE).data;
  const out = new Uint8Array(SIDE * SIDE);
  for (let i = 0; i < out.length; i++) out[i] = rgba[i * 4];
  return out;
}

/** Bytes → base64 (the backend's `inputs` / `image`). */
export function toBase64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Show exactly these bytes on a 28×28 canvas (scaled up by CSS, pixelated). */
export function drawPreview(canvas, bytes) {
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(SIDE, SIDE);
  for (let i = 0; i < bytes.length; i++) {
    image.data[i * 4] = bytes[i];
    image.data[i * 4 + 1] = bytes[i];
    image.data[i * 4 + 2] = bytes[i];
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}
