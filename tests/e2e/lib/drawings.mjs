// Drawings the tests make, and what the tests measure on the 28×28 images.

import { readFileSync } from 'node:fs';

/** Points on an arc, angles in degrees (0 = right, 90 = down: screen coordinates). */
function arc(cx, cy, r, from, to, step = 10) {
  const pts = [];
  const n = Math.ceil(Math.abs(to - from) / step);
  for (let i = 0; i <= n; i++) {
    const a = ((from + ((to - from) * i) / n) * Math.PI) / 180;
    pts.push([cx + r * Math.cos(a), cy + r * Math.sin(a)]);
  }
  return pts;
}

/** Strokes in units of the pad's width (0..1). */
export const HOUSE = [
  // walls: a square
  [[0.25, 0.45], [0.25, 0.85], [0.75, 0.85], [0.75, 0.45], [0.25, 0.45]],
  // roof
  [[0.2, 0.47], [0.5, 0.15], [0.8, 0.47]],
];

export const RAINBOW = [
  arc(0.5, 0.7, 0.4, 180, 360),
  arc(0.5, 0.7, 0.3, 180, 360),
  arc(0.5, 0.7, 0.2, 180, 360),
];

/** A small L in the top-left corner: off-centre and taller than wide. */
export const SMALL_OFF_CENTRE = [
  [[0.1, 0.05], [0.1, 0.3], [0.2, 0.3]],
];

/** A long flat line near the bottom: much wider than tall. */
export const FLAT = [
  [[0.2, 0.9], [0.6, 0.92], [0.9, 0.9]],
];

/**
 * Draw strokes on the pad through real pointer events (the mouse), as a person would.
 * `steps` intermediate moves per segment give the pad many points, like a real hand.
 */
export async function drawWithMouse(page, strokes, { steps = 4 } = {}) {
  const box = await page.locator('#pad').boundingBox();
  const at = ([x, y]) => [box.x + x * box.width, box.y + y * box.height];
  for (const stroke of strokes) {
    const [x0, y0] = at(stroke[0]);
    await page.mouse.move(x0, y0);
    await page.mouse.down();
    for (const p of stroke.slice(1)) {
      const [x, y] = at(p);
      await page.mouse.move(x, y, { steps });
    }
    await page.mouse.up();
  }
}

/** Draw strokes with a finger: CDP touch events, which Chromium turns into touch pointer events. */
export async function drawWithTouch(page, strokes) {
  const cdp = await page.context().newCDPSession(page);
  const box = await page.locator('#pad').boundingBox();
  const at = ([x, y]) => ({ x: box.x + x * box.width, y: box.y + y * box.height });
  for (const stroke of strokes) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [at(stroke[0])] });
    for (let i = 1; i < stroke.length; i++) {
      const a = at(stroke[i - 1]);
      const b = at(stroke[i]);
      for (let k = 1; k <= 4; k++) {
        const t = k / 4;
        await cdp.send('Input.dispatchTouchEvent', {
          type: 'touchMove',
          touchPoints: [{ x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t }],
        });
      }
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  }
  await cdp.detach();
}

/** Bounding box of the ink (value > 0) in a 28×28 image. */
export function inkBox(bytes) {
  let minX = 28; let minY = 28; let maxX = -1; let maxY = -1;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      if (bytes[y * 28 + x] > 0) {
        minX = Math.min(minX, x); maxX = Math.max(maxX, x);
        minY = Math.min(minY, y); maxY = Math.max(maxY, y);
      }
    }
  }
  return {
    minX, minY, maxX, maxY,
    width: maxX - minX + 1,
    height: maxY - minY + 1,
    centreX: (minX + maxX) / 2,
    centreY: (minY + maxY) / 2,
  };
}

/** Share of inked pixels, and the mean value of the inked ones. */
export function inkStats(bytes) {
  let inked = 0; let sum = 0; let full = 0;
  for (const v of bytes) {
    if (v > 0) { inked += 1; sum += v; }
    if (v === 255) full += 1;
  }
  return { inkShare: inked / bytes.length, meanInk: inked ? sum / inked : 0, fullShare: inked ? full / inked : 0 };
}

/** Rows of a Quick, Draw! `.npy` file ((N, 784) uint8). */
export function readNpy(file) {
  const buf = readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!header.includes("'|u1'")) throw new Error(`${file}: not uint8: ${header}`);
  const rows = [];
  for (let off = start; off + 784 <= buf.length; off += 784) rows.push(buf.subarray(off, off + 784));
  return rows;
}

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** A 28×28 image as ASCII art, for failure messages. */
export function ascii(bytes) {
  const shades = ' .:-=+*#%@';
  let out = '';
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) out += shades[Math.floor((bytes[y * 28 + x] / 256) * shades.length)];
    out += '\n';
  }
  return out;
}
