//! `pipeline-bench generate`: fill an image folder the way the backend does, from real
//! Quick, Draw! drawings, for `scripts/bench-pipeline.sh`.
//!
//! `pipeline-bench generate --data <dir of <category>.npy> --images N --out <img dir>` writes
//! N PNGs spread evenly over the categories (rows reused when N exceeds the data), each one
//! `<out>/<category>/<uuid v7>.png` as the backend names them.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use doodle_core::image::{PIXELS, png_from_pixels};
use doodle_pipeline::npy::NpyFile;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write N PNGs from the `.npy` files of a data folder.
    Generate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        images: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::Generate { data, images, out } = Cli::parse().command;
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&data).with_context(|| format!("listing {}", data.display()))? {
        let path = entry?.path();
        if let Some(cat) = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_suffix(".npy"))
        {
            let rows = NpyFile::open(&path)?.read_all()?;
            sources.push((cat.to_string(), rows));
        }
    }
    sources.sort();
    anyhow::ensure!(!sources.is_empty(), "no .npy files in {}", data.display());
    for (cat, _) in &sources {
        std::fs::create_dir_all(out.join(cat))?;
    }
    for i in 0..images {
        let (cat, rows) = &sources[i % sources.len()];
        let count = rows.len() / PIXELS;
        let row = (i / sources.len()) % count;
        let pixels = rows[row * PIXELS..(row + 1) * PIXELS].try_into()?;
        let name = format!("{}.png", uuid::Uuid::now_v7());
        std::fs::write(out.join(cat).join(name), png_from_pixels(&pixels))?;
    }
    println!(
        "{images} drawings in {} categories under {}",
        sources.len(),
        out.display()
    );
    Ok(())
}
