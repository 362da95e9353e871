//! Pictures people can look at, drawn with `image` alone (no system fonts): the confusion
//! matrix as a heat map and the learning curve from `train_log.csv`. Text uses a small
//! built-in 3×5 pixel font (digits, lower-case letters and a few signs), scaled up.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

use crate::evaluate::Evaluation;
use crate::train::EpochLog;

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GREY: Rgb<u8> = Rgb([200, 200, 200]);

/// 3×5 glyphs, one row per `u8` (the low 3 bits, left pixel = 0b100).
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'a' => [2, 5, 7, 5, 5],
        'b' => [6, 5, 6, 5, 6],
        'c' => [3, 4, 4, 4, 3],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [3, 4, 5, 5, 3],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'j' => [1, 1, 1, 5, 2],
        'k' => [5, 5, 6, 5, 5],
        'l' => [4, 4, 4, 4, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [2, 5, 5, 5, 2],
        'p' => [6, 5, 6, 4, 4],
        'q' => [2, 5, 5, 6, 3],
        'r' => [6, 5, 6, 5, 5],
        's' => [3, 4, 2, 1, 6],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'v' => [5, 5, 5, 5, 2],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        'y' => [5, 5, 2, 2, 2],
        'z' => [7, 1, 2, 4, 7],
        '.' => [0, 0, 0, 0, 2],
        '%' => [5, 1, 2, 4, 5],
        '-' | '_' => [0, 0, 7, 0, 0],
        ':' => [0, 2, 0, 2, 0],
        '/' => [1, 1, 2, 4, 4],
        _ => [0, 0, 0, 0, 0],
    }
}

/// Draw `text` with its top-left corner at (x, y); each font pixel is `scale`×`scale`.
fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: i64, color: Rgb<u8>) {
    for (k, ch) in s.chars().enumerate() {
        let rows = glyph(ch);
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..3 {
                if bits & (4 >> rx) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(
                                img,
                                x + (k as i64 * 4 + rx) * scale + dx,
                                y + ry as i64 * scale + dy,
                                color,
                            );
                        }
                    }
                }
            }
        }
    }
}

fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 4 * scale
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb<u8>) {
    for yy in y..y + h {
        for xx in x..x + w {
            put(img, xx, yy, c);
        }
    }
}

fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>) {
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
    for i in 0..=steps {
        let x = x0 + (x1 - x0) * i / steps;
        let y = y0 + (y1 - y0) * i / steps;
        rect(img, x, y, 2, 2, c);
    }
}

fn encode(img: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .expect("encoding a PNG into memory cannot fail");
    out.into_inner()
}

/// The confusion matrix as a PNG heat map: rows are true categories, columns predictions;
/// each cell's blue is the share of the row, with the percentage written in it.
pub fn confusion_png(eval: &Evaluation) -> Vec<u8> {
    let n = eval.categories.len() as i64;
    let cell = 36;
    let scale = 2;
    let label_w = eval
        .categories
        .iter()
        .map(|c| text_width(c, scale))
        .max()
        .unwrap_or(0)
        + 12;
    let title_h = 30;
    let (ox, oy) = (label_w, title_h + label_w);
    let size_w = (ox + n * cell + 10) as u32;
    let size_h = (oy + n * cell + 10) as u32;
    let mut img = RgbImage::from_pixel(size_w, size_h, WHITE);
    let title = format!(
        "top-1 {:.1}%  top-3 {:.1}%  n {}   rows: true  columns: predicted",
        eval.top1 * 100.0,
        eval.top3 * 100.0,
        eval.count
    );
    text(&mut img, 6, 8, &title, scale, BLACK);
    for (i, row) in eval.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        let i = i as i64;
        let name = &eval.categories[i as usize];
        text(
            &mut img,
            ox - 6 - text_width(name, scale),
            oy + i * cell + cell / 2 - 5,
            name,
            scale,
            BLACK,
        );
        for (j, &v) in row.iter().enumerate() {
            let j = j as i64;
            let share = if total == 0 {
                0.0
            } else {
                v as f64 / total as f64
            };
            let shade = (255.0 * (1.0 - share)) as u8;
            let color = Rgb([shade, shade, 255]);
            rect(
                &mut img,
                ox + j * cell,
                oy + i * cell,
                cell - 1,
                cell - 1,
                color,
            );
            if v > 0 {
                let pct = format!("{:.0}", share * 100.0);
                let fg = if share > 0.5 { WHITE } else { BLACK };
                let w = text_width(&pct, scale);
                text(
                    &mut img,
                    ox + j * cell + (cell - w) / 2,
                    oy + i * cell + cell / 2 - 5,
                    &pct,
                    scale,
                    fg,
                );
            }
        }
    }
    // Column labels, written vertically (one character per line) above the grid.
    for (j, name) in eval.categories.iter().enumerate() {
        let x = ox + j as i64 * cell + cell / 2 - 3;
        let chars: Vec<char> = name.chars().collect();
        let max_chars = (label_w / (6 * scale)).max(1) as usize;
        for (k, ch) in chars.iter().take(max_chars).enumerate() {
            let y = oy - 6 - (chars.len().min(max_chars) - k) as i64 * 6 * scale;
            text(&mut img, x, y, &ch.to_string(), scale, BLACK);
        }
    }
    encode(&img)
}

/// A named, coloured line: which value of each epoch it plots.
type Series = (&'static str, Rgb<u8>, Box<dyn Fn(&EpochLog) -> Option<f64>>);

/// The learning curve: training and validation accuracy (and EMA validation, if logged) per
/// epoch, on a 0–100 % axis.
pub fn learning_curve_png(logs: &[EpochLog]) -> Vec<u8> {
    let (w, h) = (720i64, 420i64);
    let (left, right, top, bottom) = (60i64, 20i64, 40i64, 50i64);
    let mut img = RgbImage::from_pixel(w as u32, h as u32, WHITE);
    let pw = w - left - right;
    let ph = h - top - bottom;
    for pct in (0..=100).step_by(10) {
        let y = top + ph - ph * pct / 100;
        rect(&mut img, left, y, pw, 1, GREY);
        text(&mut img, 8, y - 5, &format!("{pct}%"), 2, BLACK);
    }
    let n = logs.len().max(1) as i64;
    let x_of = |i: i64| left + if n == 1 { pw / 2 } else { pw * i / (n - 1) };
    let y_of = |v: f64| top + ph - (ph as f64 * v.clamp(0.0, 1.0)) as i64;
    let series: [Series; 3] = [
        (
            "train",
            Rgb([220, 120, 0]),
            Box::new(|l| Some(l.train_accuracy)),
        ),
        ("val", Rgb([0, 90, 200]), Box::new(|l| Some(l.val_accuracy))),
        (
            "ema val",
            Rgb([0, 160, 60]),
            Box::new(|l| l.ema_val_accuracy),
        ),
    ];
    for (k, (name, color, f)) in series.iter().enumerate() {
        let pts: Vec<(i64, i64)> = logs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| f(l).map(|v| (x_of(i as i64), y_of(v))))
            .collect();
        for p in pts.windows(2) {
            line(&mut img, p[0], p[1], *color);
        }
        for &(x, y) in &pts {
            rect(&mut img, x - 2, y - 2, 5, 5, *color);
        }
        let lx = left + k as i64 * 150;
        rect(&mut img, lx, 12, 16, 10, *color);
        text(&mut img, lx + 22, 12, name, 2, BLACK);
    }
    for (i, l) in logs.iter().enumerate() {
        text(
            &mut img,
            x_of(i as i64) - 4,
            h - bottom + 10,
            &l.epoch.to_string(),
            2,
            BLACK,
        );
    }
    text(&mut img, left + pw / 2 - 20, h - 20, "epoch", 2, BLACK);
    encode(&img)
}
