//! `sqlx::migrate!` embeds the top-level `migrations/` at compile time: rebuild when they change
//! (a new file there is not seen otherwise).

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
