use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{b64, dead_url, detail, drawing, files_under, spawn_app};

fn save_body(bytes: &[u8], category: &str) -> Value {
    json!({ "image": b64(bytes), "category": category })
}

fn decode_png(path: &Path) -> Vec<u8> {
    let img = image::open(path).unwrap();
    assert_eq!(img.color(), image::ColorType::L8, "8-bit gray");
    assert_eq!((img.width(), img.height()), (28, 28));
    img.into_luma8().into_raw()
}

#[tokio::test]
async fn save_image_writes_a_png_that_decodes_to_the_bytes_sent() {
    let app = spawn_app(&dead_url().await).await;
    let bytes = drawing(7);

    let response = app
        .post_json("/save-image/", &save_body(&bytes, "cat"))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Image saved successfully");
    let path = PathBuf::from(body["filepath"].as_str().unwrap());
    assert_eq!(path.parent().unwrap(), app.img_root.join("cat"));
    assert_eq!(decode_png(&path), bytes);
    assert_eq!(files_under(&app.img_root), vec![path]);
}

#[tokio::test]
async fn save_image_answers_without_the_trailing_slash_too() {
    let app = spawn_app(&dead_url().await).await;
    let response = app
        .post_json("/save-image", &save_body(&drawing(1), "alarm clock"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(files_under(&app.img_root.join("alarm clock")).len(), 1);
}

#[tokio::test]
async fn save_image_refuses_bad_drawings_with_the_designs_texts() {
    let app = spawn_app(&dead_url().await).await;

    let response = app
        .post_json(
            "/save-image/",
            &json!({ "image": "not*base64!", "category": "cat" }),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(detail(response).await, "Invalid base64 encoding");

    let response = app
        .post_json("/save-image/", &save_body(&[0; 783], "cat"))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        detail(response).await,
        "Image must be 28x28 pixels (784 values)"
    );
    assert!(files_under(app.dir.path()).is_empty());
}

#[tokio::test]
async fn save_image_names_the_missing_or_ill_typed_field_with_422() {
    let app = spawn_app(&dead_url().await).await;
    let cases = [
        (json!({ "category": "cat" }), "field `image` is required"),
        (
            json!({ "image": b64(&drawing(1)) }),
            "field `category` is required",
        ),
        (
            json!({ "image": 5, "category": "cat" }),
            "field `image` must be a string",
        ),
        (
            json!({ "image": b64(&drawing(1)), "category": ["cat"] }),
            "field `category` must be a string",
        ),
    ];
    for (body, expected) in cases {
        let response = app.post_json("/save-image/", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(detail(response).await, expected);
    }
    assert!(files_under(app.dir.path()).is_empty());
}

#[tokio::test]
async fn save_image_refuses_hostile_categories_and_writes_nothing() {
    let app = spawn_app(&dead_url().await).await;
    let long = "x".repeat(65);
    for category in [
        "..",
        ".",
        "a/b",
        "../escape",
        "/etc",
        "a\\b",
        "",
        " cat",
        "cat ",
        "ca\u{0}t",
        "chat\u{e9}",
        long.as_str(),
    ] {
        let response = app
            .post_json("/save-image/", &save_body(&drawing(1), category))
            .await;
        assert_eq!(response.status(), 400, "{category:?}");
        let text = detail(response).await;
        assert!(text.contains("1-64 characters"), "names the rule: {text}");
    }
    assert!(files_under(app.dir.path()).is_empty());
    assert!(!app.img_root.exists());
}

#[tokio::test]
async fn save_image_refuses_a_category_folder_that_is_a_symlink_out_of_the_image_folder() {
    let app = spawn_app(&dead_url().await).await;
    let outside = app.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&app.img_root).unwrap();
    std::os::unix::fs::symlink(&outside, app.img_root.join("cat")).unwrap();

    let response = app
        .post_json("/save-image/", &save_body(&drawing(1), "cat"))
        .await;

    assert_eq!(response.status(), 403);
    assert!(detail(response).await.contains("symbolic link"));
    assert!(files_under(&outside).is_empty(), "nothing written outside");
}

/// Makes a folder read-only, even for root (who ignores modes): `chattr +i` where needed.
/// Undone on drop so the temp folder can be removed.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn make(path: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
        let guard = Self(path.to_owned());
        if !writable(path) {
            return guard;
        }
        let status = Command::new("chattr").arg("+i").arg(path).status();
        assert!(
            status.is_ok_and(|s| s.success()) && !writable(path),
            "cannot make {} read-only on this machine (root without chattr?)",
            path.display()
        );
        guard
    }
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let ok = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(probe);
    ok
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

#[tokio::test]
async fn save_image_into_a_read_only_folder_is_a_500_with_json_and_no_partial_file() {
    let app = spawn_app(&dead_url().await).await;
    let folder = app.img_root.join("cat");
    std::fs::create_dir_all(&folder).unwrap();
    let _read_only = ReadOnly::make(&folder);

    let response = app
        .post_json("/save-image/", &save_body(&drawing(1), "cat"))
        .await;

    assert_eq!(response.status(), 500);
    assert_eq!(
        detail(response).await,
        "Could not save the image: the image folder is not writable"
    );
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
}

#[tokio::test]
async fn save_image_1000_concurrent_saves_give_1000_distinct_pngs_with_the_bytes_sent() {
    let app = spawn_app(&dead_url().await).await;
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let client = app.client.clone();
        let url = format!("{}/save-image/", app.address);
        let category = ["cat", "dog", "apple"][(i % 3) as usize];
        tasks.push(tokio::spawn(async move {
            let bytes = drawing(i);
            let response = client
                .post(&url)
                .json(&save_body(&bytes, category))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            (PathBuf::from(body["filepath"].as_str().unwrap()), bytes)
        }));
    }
    let mut answered = Vec::new();
    for task in tasks {
        answered.push(task.await.unwrap());
    }

    let paths: HashSet<_> = answered.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(paths.len(), 1000, "distinct paths");
    let on_disk: HashSet<_> = files_under(&app.img_root).into_iter().collect();
    assert_eq!(on_disk, paths, "exactly the answered files, no temp files");
    for (path, bytes) in &answered {
        assert_eq!(&decode_png(path), bytes, "{}", path.display());
    }
}
