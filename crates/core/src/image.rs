//! The drawing codec shared by every service: base64 ↔ 784 bytes ↔ PNG.
//!
//! A drawing is 784 `u8`, row-major 28×28, 0 = background, 255 = ink (Quick, Draw!'s
//! numpy-bitmap convention). PNGs of any size or colour mode are converted to that form by
//! [`pixels_from_png`], the one conversion used by the model server, the pipeline and training.

use std::io::Cursor;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use image::{DynamicImage, GrayImage, ImageFormat, Luma, imageops};

/// Side of a drawing in pixels.
pub const SIDE: u32 = 28;
/// Bytes in one drawing.
pub const PIXELS: usize = 784;

/// One drawing: 28×28 bytes, 0 = background, 255 = ink.
pub type Pixels = [u8; PIXELS];

/// Standard alphabet; padding optional (browsers' `btoa` pads, some clients do not).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("invalid base64 encoding")]
    Base64,
    #[error("expected {PIXELS} bytes (28x28), got {0}")]
    WrongSize(usize),
    #[error("not a PNG image: {0}")]
    Png(String),
    #[error("image is {width}x{height}; at most {max}x{max} is accepted")]
    TooLarge { width: u32, height: u32, max: u32 },
}

/// Largest PNG side accepted, so a tiny compressed file cannot expand into gigabytes.
pub const MAX_PNG_SIDE: u32 = 4096;

/// Largest PNG file the pipeline reads from the image folder (the backend's own saves are
/// under 1 KiB; the model server accepts bodies of up to 16 MiB holding many images).
pub const MAX_PNG_FILE_BYTES: usize = 8 * 1024 * 1024;

/// Decode standard base64 (padding optional, no whitespace).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, ImageError> {
    BASE64.decode(text).map_err(|_| ImageError::Base64)
}

/// Encode bytes as standard, padded base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Exactly 784 raw bytes → a drawing.
pub fn pixels_from_raw(bytes: &[u8]) -> Result<Pixels, ImageError> {
    bytes
        .try_into()
        .map_err(|_| ImageError::WrongSize(bytes.len()))
}

/// True when the bytes start with the PNG signature.
pub fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(PNG_MAGIC)
}

/// A drawing as an 8-bit grayscale 28×28 PNG (values as they are: 0 = background).
pub fn png_from_pixels(pixels: &Pixels) -> Vec<u8> {
    let img = GrayImage::from_raw(SIDE, SIDE, pixels.to_vec())
        .expect("784 bytes make a 28x28 image. This is a bug.");
    let mut out = Cursor::new(Vec::with_capacity(PIXELS + 128));
    img.write_to(&mut out, ImageFormat::Png)
        .expect("encoding a PNG into memory cannot fail. This is a bug.");
    out.into_inner()
}

/// Any PNG → a drawing.
///
/// 1. Decode; transparent pixels are composited over white paper.
/// 2. Convert to 8-bit grayscale.
/// 3. Polarity: if the border is light (mean > 127) the image is dark ink on light paper and is
///    inverted, so background becomes 0 and ink 255. Our own PNGs (black background) pass unchanged.
/// 4. If not already 28×28: pad to a square with background (keeping the aspect ratio, centred),
///    then resize to 28×28 with a triangle (bilinear, area-averaging when shrinking) filter.
pub fn pixels_from_png(bytes: &[u8]) -> Result<Pixels, ImageError> {
    if !is_png(bytes) {
        return Err(ImageError::Png("missing PNG signature".into()));
    }
    let reader = image::ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|err| ImageError::Png(err.to_string()))?;
    if width > MAX_PNG_SIDE || height > MAX_PNG_SIDE {
        return Err(ImageError::TooLarge {
            width,
            height,
            max: MAX_PNG_SIDE,
        });
    }
    let decoded = image::load_from_memory_with_format(bytes, ImageFormat::Png)
        .map_err(|err| ImageError::Png(err.to_string()))?;
    let mut gray = to_gray_on_white(decoded);
    if border_mean(&gray) > 127.0 {
        imageops::invert(&mut gray);
    }
    let gray = if gray.dimensions() == (SIDE, SIDE) {
        gray
    } else {
        let (w, h) = gray.dimensions();
        let side = w.max(h);
        let mut square = GrayImage::from_pixel(side, side, Luma([0]));
        imageops::overlay(
            &mut square,
            &gray,
            i64::from((side - w) / 2),
            i64::from((side - h) / 2),
        );
        imageops::resize(&square, SIDE, SIDE, imageops::FilterType::Triangle)
    };
    Ok(pixels_from_raw(gray.as_raw()).expect("a 28x28 gray image has 784 bytes. This is a bug."))
}

fn to_gray_on_white(img: DynamicImage) -> GrayImage {
    if !img.color().has_alpha() {
        return img.into_luma8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    GrayImage::from_fn(w, h, |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let luma = (0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)) / 255.0;
        let alpha = f32::from(a) / 255.0;
        let over_white = luma * alpha + (1.0 - alpha);
        Luma([(over_white * 255.0).round() as u8])
    })
}

fn border_mean(img: &GrayImage) -> f64 {
    let (w, h) = img.dimensions();
    let mut sum = 0u64;
    let mut n = 0u64;
    for (x, y, p) in img.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            sum += u64::from(p.0[0]);
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum as f64 / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    fn sample() -> Pixels {
        let mut p = [0u8; PIXELS];
        for (i, v) in p.iter_mut().enumerate() {
            *v = ((i * 37) % 256) as u8;
        }
        // a background border, as real drawings have
        for i in 0..28 {
            p[i] = 0;
            p[27 * 28 + i] = 0;
            p[i * 28] = 0;
            p[i * 28 + 27] = 0;
        }
        p
    }

    fn encode(img: DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn base64_round_trip_with_and_without_padding() {
        let p = sample();
        let text = encode_base64(&p);
        assert_eq!(decode_base64(&text).unwrap(), p);
        assert_eq!(decode_base64(text.trim_end_matches('=')).unwrap(), p);
        assert_eq!(decode_base64("not*base64!"), Err(ImageError::Base64));
    }

    #[test]
    fn raw_size_is_checked() {
        assert_eq!(pixels_from_raw(&[0; 783]), Err(ImageError::WrongSize(783)));
        assert_eq!(pixels_from_raw(&[0; 785]), Err(ImageError::WrongSize(785)));
        assert!(pixels_from_raw(&[7; 784]).is_ok());
    }

    #[test]
    fn our_png_round_trips_bit_exactly() {
        let p = sample();
        let png = png_from_pixels(&p);
        assert!(is_png(&png));
        let decoded = image::load_from_memory(&png).unwrap();
        assert_eq!(decoded.color(), image::ColorType::L8);
        assert_eq!(pixels_from_png(&png).unwrap(), p);
    }

    #[test]
    fn dark_ink_on_white_is_inverted() {
        let mut img = GrayImage::from_pixel(28, 28, Luma([255]));
        img.put_pixel(10, 12, Luma([0]));
        let p = pixels_from_png(&encode(DynamicImage::ImageLuma8(img))).unwrap();
        assert_eq!(p[12 * 28 + 10], 255);
        assert_eq!(p[0], 0);
    }

    #[test]
    fn transparent_canvas_with_black_strokes_becomes_ink() {
        let mut img = RgbaImage::from_pixel(56, 56, Rgba([0, 0, 0, 0]));
        for x in 10..46 {
            img.put_pixel(x, 28, Rgba([0, 0, 0, 255]));
            img.put_pixel(x, 29, Rgba([0, 0, 0, 255]));
        }
        let p = pixels_from_png(&encode(DynamicImage::ImageRgba8(img))).unwrap();
        assert!(p[14 * 28 + 14] > 150, "stroke is ink: {}", p[14 * 28 + 14]);
        assert_eq!(p[2 * 28 + 2], 0, "paper is background");
    }

    #[test]
    fn large_non_square_images_keep_aspect_and_centre() {
        // 280x140 white paper with a black dot at its centre.
        let mut img = GrayImage::from_pixel(280, 140, Luma([255]));
        for y in 60..80 {
            for x in 130..150 {
                img.put_pixel(x, y, Luma([0]));
            }
        }
        let p = pixels_from_png(&encode(DynamicImage::ImageLuma8(img))).unwrap();
        assert!(p[14 * 28 + 14] > 150, "centre is ink");
        assert_eq!(p[28 + 14], 0, "padding above the image is background");
    }

    #[test]
    fn garbage_and_huge_images_are_errors_not_panics() {
        assert!(matches!(pixels_from_png(b"hello"), Err(ImageError::Png(_))));
        let mut png = png_from_pixels(&sample());
        png.truncate(40);
        assert!(matches!(pixels_from_png(&png), Err(ImageError::Png(_))));
        let big = GrayImage::from_pixel(5000, 1, Luma([0]));
        assert!(matches!(
            pixels_from_png(&encode(DynamicImage::ImageLuma8(big))),
            Err(ImageError::TooLarge { .. })
        ));
    }
}
