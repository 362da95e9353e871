//! MLflow's scoring request shapes (protocols §1.4) → drawings.
//!
//! The body is a JSON object with exactly one of `inputs`, `instances`, `dataframe_split`,
//! `dataframe_records`, and optionally `params: {"top_k": k}`. An image is any of:
//! - a base64 string of 784 raw bytes (what the design's UI sends),
//! - a base64 PNG of any size (converted by `doodle_core::image::pixels_from_png`),
//! - an array of 784 numbers 0–255,
//! - a 28×28 nested array (or 1×28×28).
//!
//! Errors say what is wrong and where: `inputs[3]: expected 784 bytes (28x28), got 783`.

use doodle_core::image::{self, PIXELS, Pixels};
use serde_json::{Map, Value};

use crate::error::ServeError;

const FORMATS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];
/// The column holding images in the dataframe shapes.
pub const IMAGE_COLUMN: &str = "image";

/// A parsed scoring request.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringRequest {
    /// `count × 784` bytes, concatenated.
    pub pixels: Vec<u8>,
    pub count: usize,
    pub top_k: Option<usize>,
}

fn bad(message: impl Into<String>) -> ServeError {
    ServeError::BadRequest(message.into())
}

/// Parse a request body. `max_images` bounds the batch one request may carry.
pub fn parse(body: &[u8], max_images: usize) -> Result<ScoringRequest, ServeError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        bad(format!(
            "Invalid input. Ensure that input is a valid JSON formatted string. Error: {err}"
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(bad(format!(
            "The input must be a JSON dictionary with exactly one of the input fields {FORMATS:?}. Received {}.",
            kind(&value)
        )));
    };
    let present: Vec<&str> = FORMATS
        .iter()
        .copied()
        .filter(|f| object.contains_key(*f))
        .collect();
    if present.len() != 1 {
        let keys: Vec<&String> = object.keys().collect();
        return Err(bad(format!(
            "The input must be a JSON dictionary with exactly one of the input fields {FORMATS:?}. Received dictionary with input fields: {keys:?}."
        )));
    }
    if let Some(key) = object
        .keys()
        .find(|k| !FORMATS.contains(&k.as_str()) && k.as_str() != "params")
    {
        return Err(bad(format!(
            "unknown top-level field {key:?}; allowed: one of {FORMATS:?} and optionally \"params\""
        )));
    }
    let top_k = parse_params(object.get("params"))?;
    let format = present[0];
    let data = &object[format];

    let mut images = Images::new(max_images);
    match format {
        "inputs" => inputs(data, &mut images)?,
        "instances" => instances(data, &mut images)?,
        "dataframe_records" => dataframe_records(data, &mut images)?,
        "dataframe_split" => dataframe_split(data, &mut images)?,
        _ => unreachable!("format keys are fixed above. This is a bug."),
    }
    if images.count == 0 {
        return Err(bad(format!("{format}: no images in the request")));
    }
    Ok(ScoringRequest {
        pixels: images.pixels,
        count: images.count,
        top_k,
    })
}

fn parse_params(params: Option<&Value>) -> Result<Option<usize>, ServeError> {
    let Some(params) = params else {
        return Ok(None);
    };
    let Value::Object(params) = params else {
        return Err(bad(format!(
            "params: expected an object, got {}",
            kind(params)
        )));
    };
    let mut top_k = None;
    for (key, value) in params {
        match key.as_str() {
            "top_k" => match value.as_u64() {
                Some(k) if k >= 1 => top_k = Some(usize::try_from(k).unwrap_or(usize::MAX)),
                _ => {
                    return Err(bad(format!(
                        "params.top_k: expected a whole number of at least 1, got {value}"
                    )));
                }
            },
            other => {
                return Err(bad(format!(
                    "params.{other}: unknown parameter; supported: top_k"
                )));
            }
        }
    }
    Ok(top_k)
}

struct Images {
    pixels: Vec<u8>,
    count: usize,
    max: usize,
}

impl Images {
    fn new(max: usize) -> Self {
        Self {
            pixels: Vec::new(),
            count: 0,
            max,
        }
    }

    fn push(&mut self, value: &Value, at: &str) -> Result<(), ServeError> {
        if self.count == self.max {
            return Err(bad(format!(
                "{at}: too many images; at most {} per request",
                self.max
            )));
        }
        let pixels = image_from_value(value, at)?;
        self.pixels.extend_from_slice(&pixels);
        self.count += 1;
        Ok(())
    }

    fn push_all(&mut self, items: &[Value], at: &str) -> Result<(), ServeError> {
        for (i, item) in items.iter().enumerate() {
            self.push(item, &format!("{at}[{i}]"))?;
        }
        Ok(())
    }
}

/// `inputs`: a single image, a list of images, or the column form `{"image": [...]}`.
fn inputs(data: &Value, images: &mut Images) -> Result<(), ServeError> {
    match data {
        Value::String(_) => images.push(data, "inputs"),
        Value::Array(items) if looks_like_one_image(items) => images.push(data, "inputs"),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("inputs[{i}]");
                match item {
                    Value::Object(row) => images.push(column(row, &at)?, &format!("{at}.image"))?,
                    _ => images.push(item, &at)?,
                }
            }
            Ok(())
        }
        Value::Object(columns) => {
            let at = "inputs";
            match column(columns, at)? {
                Value::Array(items) if !looks_like_one_image(items) => {
                    images.push_all(items, "inputs.image")
                }
                one => images.push(one, "inputs.image"),
            }
        }
        other => Err(bad(format!(
            "inputs: expected an image, a list of images or {{\"image\": [...]}}, got {}",
            kind(other)
        ))),
    }
}

/// `instances`: a list of images, or of `{"image": ...}` rows.
fn instances(data: &Value, images: &mut Images) -> Result<(), ServeError> {
    let Value::Array(items) = data else {
        return Err(bad(format!(
            "instances: expected a list, got {}",
            kind(data)
        )));
    };
    if looks_like_one_image(items) {
        return images.push(data, "instances");
    }
    for (i, item) in items.iter().enumerate() {
        let at = format!("instances[{i}]");
        match item {
            Value::Object(row) => images.push(column(row, &at)?, &format!("{at}.image"))?,
            _ => images.push(item, &at)?,
        }
    }
    Ok(())
}

/// `dataframe_records`: `[{"image": ...}, ...]`.
fn dataframe_records(data: &Value, images: &mut Images) -> Result<(), ServeError> {
    let Value::Array(rows) = data else {
        return Err(bad(format!(
            "dataframe_records: expected a list of row objects, got {}",
            kind(data)
        )));
    };
    for (i, row) in rows.iter().enumerate() {
        let at = format!("dataframe_records[{i}]");
        let Value::Object(row) = row else {
            return Err(bad(format!(
                "{at}: expected a row object, got {}",
                kind(row)
            )));
        };
        images.push(column(row, &at)?, &format!("{at}.image"))?;
    }
    Ok(())
}

/// `dataframe_split`: `{"columns": ["image"], "data": [[...], ...], "index": [...]}`.
fn dataframe_split(data: &Value, images: &mut Images) -> Result<(), ServeError> {
    let Value::Object(split) = data else {
        return Err(bad(format!(
            "Invalid input. Dataframe split format must be a dictionary. Got {}.",
            kind(data)
        )));
    };
    if let Some(key) = split
        .keys()
        .find(|k| !matches!(k.as_str(), "columns" | "data" | "index"))
    {
        return Err(bad(format!(
            "dataframe_split: unknown field {key:?}; allowed: columns, data, index"
        )));
    }
    let column_index = match split.get("columns") {
        None => 0,
        Some(Value::Array(columns)) => {
            match columns
                .iter()
                .position(|c| c.as_str() == Some(IMAGE_COLUMN))
            {
                Some(i) => i,
                None if columns.len() == 1 => 0,
                None => {
                    return Err(bad(format!(
                        "dataframe_split.columns: no {IMAGE_COLUMN:?} column among {} columns",
                        columns.len()
                    )));
                }
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "dataframe_split.columns: expected a list of names, got {}",
                kind(other)
            )));
        }
    };
    let Some(Value::Array(rows)) = split.get("data") else {
        return Err(bad("dataframe_split.data: expected a list of rows"));
    };
    for (i, row) in rows.iter().enumerate() {
        let at = format!("dataframe_split.data[{i}]");
        let Value::Array(cells) = row else {
            return Err(bad(format!(
                "{at}: expected a row (a list), got {}",
                kind(row)
            )));
        };
        let Some(cell) = cells.get(column_index) else {
            return Err(bad(format!(
                "{at}: row has {} cells, the image column is number {}",
                cells.len(),
                column_index + 1
            )));
        };
        images.push(cell, &format!("{at}[{column_index}]"))?;
    }
    Ok(())
}

fn column<'a>(row: &'a Map<String, Value>, at: &str) -> Result<&'a Value, ServeError> {
    if let Some(value) = row.get(IMAGE_COLUMN) {
        return Ok(value);
    }
    if row.len() == 1 {
        return Ok(row.values().next().expect("one entry. This is a bug."));
    }
    Err(bad(format!(
        "{at}: expected an {IMAGE_COLUMN:?} field, found {:?}",
        row.keys().collect::<Vec<_>>()
    )))
}

/// True for `[784 numbers]`, `[[28 numbers] × 28]` and `[[[28 numbers] × 28]]`.
fn looks_like_one_image(items: &[Value]) -> bool {
    let all_numbers = |v: &[Value]| v.iter().all(Value::is_number);
    let is_grid = |rows: &[Value]| {
        rows.len() == 28
            && rows
                .iter()
                .all(|r| r.as_array().is_some_and(|r| all_numbers(r)))
    };
    (items.len() == PIXELS && all_numbers(items))
        || is_grid(items)
        || (items.len() == 1 && items[0].as_array().is_some_and(|g| is_grid(g)))
}

fn image_from_value(value: &Value, at: &str) -> Result<Pixels, ServeError> {
    match value {
        Value::String(text) => {
            let bytes = image::decode_base64(text)
                .map_err(|_| bad(format!("{at}: invalid base64 encoding")))?;
            if image::is_png(&bytes) {
                image::pixels_from_png(&bytes).map_err(|err| bad(format!("{at}: {err}")))
            } else {
                image::pixels_from_raw(&bytes).map_err(|err| bad(format!("{at}: {err}")))
            }
        }
        Value::Array(items) => {
            let flat: Vec<&Value> = if items.len() == PIXELS {
                items.iter().collect()
            } else if items.len() == 28 {
                grid(items, at)?
            } else if items.len() == 1 && items[0].as_array().is_some_and(|g| g.len() == 28) {
                grid(items[0].as_array().expect("checked. This is a bug."), at)?
            } else {
                return Err(bad(format!(
                    "{at}: expected 784 numbers or a 28x28 array, got a list of {}",
                    items.len()
                )));
            };
            let mut pixels = [0u8; PIXELS];
            for (i, (slot, v)) in pixels.iter_mut().zip(flat).enumerate() {
                *slot = pixel(v).ok_or_else(|| {
                    bad(format!(
                        "{at}: pixel {i} is {v}; expected a number from 0 to 255"
                    ))
                })?;
            }
            Ok(pixels)
        }
        other => Err(bad(format!(
            "{at}: expected a base64 string, 784 numbers or a 28x28 array, got {}",
            kind(other)
        ))),
    }
}

fn grid<'a>(rows: &'a [Value], at: &str) -> Result<Vec<&'a Value>, ServeError> {
    let mut flat = Vec::with_capacity(PIXELS);
    for (r, row) in rows.iter().enumerate() {
        match row.as_array() {
            Some(row) if row.len() == 28 => flat.extend(row.iter()),
            Some(row) => {
                return Err(bad(format!(
                    "{at}[{r}]: expected 28 numbers, got {}",
                    row.len()
                )));
            }
            None => {
                return Err(bad(format!(
                    "{at}[{r}]: expected a row of 28 numbers, got {}",
                    kind(row)
                )));
            }
        }
    }
    Ok(flat)
}

fn pixel(value: &Value) -> Option<u8> {
    if let Some(n) = value.as_u64() {
        return u8::try_from(n).ok();
    }
    let f = value.as_f64()?;
    (0.0..=255.0).contains(&f).then(|| f.round() as u8)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drawing() -> Pixels {
        let mut p = [0u8; PIXELS];
        for (i, v) in p.iter_mut().enumerate() {
            *v = ((i * 7) % 256) as u8;
        }
        p
    }

    fn parse_json(v: Value) -> Result<ScoringRequest, ServeError> {
        parse(v.to_string().as_bytes(), 16)
    }

    fn message(r: Result<ScoringRequest, ServeError>) -> String {
        match r {
            Err(ServeError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn every_shape_and_encoding_gives_the_same_pixels() {
        let p = drawing();
        let b64 = image::encode_base64(&p);
        let png = image::encode_base64(&image::png_from_pixels(&p));
        let flat: Vec<u8> = p.to_vec();
        let grid: Vec<Vec<u8>> = p.chunks(28).map(<[u8]>::to_vec).collect();
        let bodies = [
            json!({"inputs": b64}),
            json!({"inputs": png}),
            json!({"inputs": flat}),
            json!({"inputs": grid}),
            json!({"inputs": [grid]}),
            json!({"inputs": [b64]}),
            json!({"inputs": {"image": [b64]}}),
            json!({"inputs": {"image": b64}}),
            json!({"instances": [b64]}),
            json!({"instances": [{"image": png}]}),
            json!({"instances": [flat]}),
            json!({"dataframe_records": [{"image": b64}]}),
            json!({"dataframe_split": {"columns": ["image"], "data": [[b64]]}}),
            json!({"dataframe_split": {"index": [0], "columns": ["id", "image"], "data": [[7, grid]]}}),
        ];
        for body in bodies {
            let parsed = parse_json(body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(parsed.count, 1, "{body}");
            assert_eq!(parsed.pixels, p.to_vec(), "{body}");
        }
    }

    #[test]
    fn batches_keep_their_order() {
        let a = [1u8; PIXELS];
        let b = [2u8; PIXELS];
        let parsed = parse_json(
            json!({"inputs": [image::encode_base64(&a), image::encode_base64(&b)],
                                       "params": {"top_k": 5}}),
        )
        .unwrap();
        assert_eq!(parsed.count, 2);
        assert_eq!(&parsed.pixels[..PIXELS], &a);
        assert_eq!(&parsed.pixels[PIXELS..], &b);
        assert_eq!(parsed.top_k, Some(5));
    }

    #[test]
    fn errors_say_what_and_where() {
        let ok = image::encode_base64(&[0u8; PIXELS]);
        let short = image::encode_base64(&[0u8; 783]);
        let cases = [
            (
                json!({"inputs": [ok, ok, ok, short]}),
                "inputs[3]: expected 784 bytes (28x28), got 783",
            ),
            (
                json!({"inputs": "not*base64!"}),
                "inputs: invalid base64 encoding",
            ),
            (json!({"foo": 1}), "exactly one of the input fields"),
            (
                json!({"inputs": ok, "instances": [ok]}),
                "exactly one of the input fields",
            ),
            (json!([1, 2]), "JSON dictionary"),
            (
                json!({"inputs": ok, "signature_name": "x"}),
                "unknown top-level field \"signature_name\"",
            ),
            (
                json!({"dataframe_split": []}),
                "Dataframe split format must be a dictionary",
            ),
            (
                json!({"dataframe_split": {"data": [[ok]], "extra": 1}}),
                "unknown field \"extra\"",
            ),
            (
                json!({"dataframe_records": [{"image": ok}, 3]}),
                "dataframe_records[1]: expected a row object",
            ),
            (
                json!({"instances": [[1, 2, 3]]}),
                "instances[0]: expected 784 numbers or a 28x28 array, got a list of 3",
            ),
            (json!({"inputs": []}), "inputs: no images"),
            (
                json!({"inputs": ok, "params": {"top_k": 0}}),
                "params.top_k",
            ),
            (
                json!({"inputs": ok, "params": {"temperature": 1}}),
                "params.temperature: unknown parameter",
            ),
            (json!({"inputs": 42}), "inputs: expected an image"),
        ];
        for (body, expected) in cases {
            let m = message(parse_json(body.clone()));
            assert!(
                m.contains(expected),
                "{body}: {m:?} should contain {expected:?}"
            );
        }
        let mut flat = vec![json!(0); PIXELS];
        flat[5] = json!(256);
        let m = message(parse_json(json!({"inputs": flat})));
        assert!(m.contains("inputs: pixel 5 is 256"), "{m}");
        let m = message(parse(b"not-json", 4));
        assert!(m.contains("valid JSON"), "{m}");
    }

    #[test]
    fn batch_size_is_bounded() {
        let ok = image::encode_base64(&[0u8; PIXELS]);
        let body = json!({"inputs": vec![ok; 5]}).to_string();
        let m = message(parse(body.as_bytes(), 4));
        assert!(m.contains("inputs[4]: too many images; at most 4"), "{m}");
    }
}
