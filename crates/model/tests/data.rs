//! Reading drawings: `.npy`, `.npz`, PNG folders, `categories.txt`, and every bad-file error.

mod common;

use std::io::Write;
use std::path::Path;

use common::{drawings, names};
use doodle_model::{Dataset, ModelError, data};
use npyz::WriterBuilder;

fn write_npy_shaped<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    values: &[T],
) {
    let mut file = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut file)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn assert_bad(err: ModelError, path: &Path, needle: &str) {
    let msg = err.to_string();
    assert!(matches!(err, ModelError::BadData { .. }), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "message should name the file: {msg}"
    );
    assert!(msg.contains(needle), "message should say `{needle}`: {msg}");
}

#[test]
fn npy_round_trip_keeps_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cat.npy");
    let px = drawings(5, 3);
    data::write_npy(&p, &px).unwrap();
    assert_eq!(data::read_npy(&p).unwrap(), px);
}

#[test]
fn npy_accepts_the_three_quickdraw_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let px = drawings(4, 9);
    for (name, shape) in [
        ("a.npy", vec![4, 784]),
        ("b.npy", vec![4, 1, 784]),
        ("c.npy", vec![4, 28, 28]),
    ] {
        let p = dir.path().join(name);
        write_npy_shaped(&p, &shape, &px);
        assert_eq!(data::read_npy(&p).unwrap(), px, "{shape:?}");
    }
}

#[test]
fn npy_reads_the_real_quickdraw_files() {
    let p = common::quickdraw().join("train/cat.npy");
    let px = data::read_npy(&p).unwrap();
    assert_eq!(px.len(), 2000 * 784);
}

#[test]
fn npy_with_wrong_dtype_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("floats.npy");
    write_npy_shaped(&p, &[2, 784], &vec![0.5f32; 2 * 784]);
    assert_bad(data::read_npy(&p).unwrap_err(), &p, "uint8");
}

#[test]
fn npy_with_wrong_row_length_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("short_rows.npy");
    write_npy_shaped(&p, &[3, 100], &vec![1u8; 300]);
    assert_bad(data::read_npy(&p).unwrap_err(), &p, "shape");
}

#[test]
fn truncated_npy_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.npy");
    data::write_npy(&p, &drawings(3, 1)).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 500]).unwrap();
    assert_bad(data::read_npy(&p).unwrap_err(), &p, "truncated");
}

#[test]
fn a_file_that_is_not_npy_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.npy");
    std::fs::write(&p, b"this is not numpy at all").unwrap();
    assert_bad(data::read_npy(&p).unwrap_err(), &p, "not a valid .npy");
}

#[test]
fn npz_round_trip_and_dataset_from_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bundle.npz");
    let (a, b) = (drawings(3, 1), drawings(2, 2));
    data::write_npz(
        &p,
        &[("apple".into(), a.clone()), ("banana".into(), b.clone())],
    )
    .unwrap();
    let arrays = data::read_npz(&p).unwrap();
    assert_eq!(
        arrays,
        vec![("apple".into(), a.clone()), ("banana".into(), b.clone())]
    );

    let ds = Dataset::load(&[p], &names(&["banana", "apple"]), None).unwrap();
    assert_eq!(ds.labels, vec![0, 0, 1, 1, 1]);
    assert_eq!(&ds.pixels[..2 * 784], &b[..]);
    assert_eq!(&ds.pixels[2 * 784..], &a[..]);
}

#[test]
fn npz_array_with_wrong_dtype_names_file_and_array() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.npz");
    {
        let mut npz = npyz::npz::NpzWriter::create(&p).unwrap();
        let mut w = npz
            .array::<i64>("cat", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[1, 784])
            .begin_nd()
            .unwrap();
        w.extend(vec![1i64; 784]).unwrap();
        w.finish().unwrap();
    }
    let err = data::read_npz(&p).unwrap_err();
    assert_bad(err, &p, "array `cat`");
}

#[test]
fn corrupt_npz_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.npz");
    std::fs::write(&p, b"PK\x03\x04 definitely not a zip").unwrap();
    assert_bad(data::read_npz(&p).unwrap_err(), &p, "npz");
}

#[test]
fn png_folder_round_trip_uses_the_shared_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let cat_dir = dir.path().join("cat");
    std::fs::create_dir(&cat_dir).unwrap();
    let px = drawings(3, 5);
    for i in 0..3 {
        let one: [u8; 784] = px[i * 784..(i + 1) * 784].try_into().unwrap();
        std::fs::write(
            cat_dir.join(format!("{i}.png")),
            doodle_core::image::png_from_pixels(&one),
        )
        .unwrap();
    }
    std::fs::write(cat_dir.join("notes.txt"), "ignored").unwrap();
    assert_eq!(data::read_png_dir(&cat_dir).unwrap(), px);

    // A folder source mixes .npy files and PNG folders per category.
    data::write_npy(&dir.path().join("dog.npy"), &drawings(2, 7)).unwrap();
    let ds = Dataset::load(&[dir.path().to_path_buf()], &names(&["cat", "dog"]), None).unwrap();
    assert_eq!(ds.class_counts(), vec![3, 2]);
}

#[test]
fn a_png_that_is_not_an_image_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cat_dir = dir.path().join("cat");
    std::fs::create_dir(&cat_dir).unwrap();
    let p = cat_dir.join("broken.png");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(b"\x89PNG\r\n\x1a\n garbage after the signature")
        .unwrap();
    drop(f);
    assert_bad(data::read_png_dir(&cat_dir).unwrap_err(), &p, "PNG");
}

#[test]
fn categories_file_fixes_order_and_rejects_duplicates_and_bad_names() {
    assert_eq!(
        data::parse_categories("# comment\ncat\n\ndog\n").unwrap(),
        names(&["cat", "dog"])
    );
    assert!(
        data::parse_categories("cat\ncat\n")
            .unwrap_err()
            .contains("twice")
    );
    assert!(
        data::parse_categories("cat\n../etc\n")
            .unwrap_err()
            .contains("line 2")
    );
    assert!(data::parse_categories("\n").is_err());
    let real = data::read_categories(&common::quickdraw().join("categories.txt")).unwrap();
    assert_eq!(real.len(), 15);
    assert_eq!(
        real,
        doodle_model::DEFAULT_CATEGORIES.map(String::from).to_vec()
    );
}

#[test]
fn a_category_without_drawings_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    data::write_npy(&dir.path().join("cat.npy"), &drawings(2, 1)).unwrap();
    let err =
        Dataset::load(&[dir.path().to_path_buf()], &names(&["cat", "owl"]), None).unwrap_err();
    assert!(err.to_string().contains("`owl`"), "{err}");
}

#[test]
fn limit_and_stratified_split_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    data::write_npy(&dir.path().join("a.npy"), &drawings(50, 1)).unwrap();
    data::write_npy(&dir.path().join("b.npy"), &drawings(30, 2)).unwrap();
    let ds = Dataset::load(&[dir.path().to_path_buf()], &names(&["a", "b"]), Some(40)).unwrap();
    assert_eq!(ds.class_counts(), vec![40, 30]);
    let (train, val) = ds.split(0.25, 7);
    assert_eq!(val.class_counts(), vec![10, 8]);
    assert_eq!(train.class_counts(), vec![30, 22]);
    let (train2, val2) = ds.split(0.25, 7);
    assert_eq!((train.clone(), val.clone()), (train2, val2));
    let (_, val3) = ds.split(0.25, 8);
    assert_ne!(val.pixels, val3.pixels, "another seed gives another split");
    assert_eq!(ds.fingerprint(), ds.clone().fingerprint());
    assert_ne!(ds.fingerprint(), train.fingerprint());
}
