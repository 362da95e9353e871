//! Top-1 / top-3 accuracy, overall and per category, and the confusion matrix.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::probabilities;
use crate::net::Network;
use crate::{Classifier, Dataset, ModelError, input};

/// Results on one labelled data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub count: usize,
    pub top1: f64,
    pub top3: f64,
    pub per_class: Vec<ClassResult>,
    /// `confusion[true][predicted]`, in the classifier's category order.
    pub confusion: Vec<Vec<u64>>,
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassResult {
    pub category: String,
    pub count: usize,
    pub top1: f64,
    pub top3: f64,
}

/// Evaluate `classifier` on `data`. The data's categories are matched to the classifier's by
/// name; a category the classifier does not know is an error.
pub fn evaluate(
    classifier: &Classifier,
    data: &Dataset,
    batch_size: usize,
) -> Result<Evaluation, ModelError> {
    let mapping: Vec<i64> = data
        .categories
        .iter()
        .map(|c| {
            classifier
                .categories()
                .iter()
                .position(|k| k == c)
                .map(|i| i as i64)
                .ok_or_else(|| {
                    ModelError::Options(format!("the model does not know category `{c}`"))
                })
        })
        .collect::<Result<_, _>>()?;
    let labels: Vec<i64> = data.labels.iter().map(|&l| mapping[l as usize]).collect();
    let remapped = Dataset {
        categories: classifier.categories().to_vec(),
        pixels: data.pixels.clone(),
        labels,
    };
    Ok(evaluate_network(
        classifier.network(),
        classifier.metadata().tta_hflip,
        &remapped,
        batch_size,
    ))
}

/// Evaluate a network on data labelled in the network's own category order.
pub(crate) fn evaluate_network(
    net: &Network,
    hflip: bool,
    data: &Dataset,
    batch_size: usize,
) -> Evaluation {
    let c = data.categories.len();
    let mut confusion = vec![vec![0u64; c]; c];
    let mut top3_hits = vec![0usize; c];
    let batch_size = batch_size.max(1);
    tch::no_grad(|| {
        let mut start = 0;
        while start < data.len() {
            let end = (start + batch_size).min(data.len());
            let xs = input::to_tensor(&data.pixels[start * 784..end * 784]);
            let probs = probabilities(net, &xs, hflip);
            let pred = Vec::<i64>::try_from(probs.argmax(-1, false)).expect("argmax is int64");
            let k = 3.min(c as i64);
            let (_, top) = probs.topk(k, -1, true, true);
            let top = Vec::<i64>::try_from(top.flatten(0, -1)).expect("topk is int64");
            for (i, &p) in pred.iter().enumerate() {
                let truth = data.labels[start + i];
                confusion[truth as usize][p as usize] += 1;
                if top[i * k as usize..(i + 1) * k as usize].contains(&truth) {
                    top3_hits[truth as usize] += 1;
                }
            }
            start = end;
        }
    });
    let counts: Vec<usize> = confusion
        .iter()
        .map(|r| r.iter().sum::<u64>() as usize)
        .collect();
    let correct: usize = (0..c).map(|i| confusion[i][i] as usize).sum();
    let n = data.len();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Evaluation {
        count: n,
        top1: ratio(correct, n),
        top3: ratio(top3_hits.iter().sum(), n),
        per_class: (0..c)
            .map(|i| ClassResult {
                category: data.categories[i].clone(),
                count: counts[i],
                top1: ratio(confusion[i][i] as usize, counts[i]),
                top3: ratio(top3_hits[i], counts[i]),
            })
            .collect(),
        confusion,
        categories: data.categories.clone(),
    }
}

impl Evaluation {
    /// The confusion matrix as CSV: a header row of predicted categories, then one row per true
    /// category.
    pub fn confusion_csv(&self) -> String {
        let mut s = String::from("true\\predicted");
        for c in &self.categories {
            let _ = write!(s, ",{c}");
        }
        s.push('\n');
        for (c, row) in self.categories.iter().zip(&self.confusion) {
            s.push_str(c);
            for v in row {
                let _ = write!(s, ",{v}");
            }
            s.push('\n');
        }
        s
    }

    /// Per-category accuracy as CSV.
    pub fn per_class_csv(&self) -> String {
        let mut s = String::from("category,count,top1,top3\n");
        for r in &self.per_class {
            let _ = writeln!(s, "{},{},{:.4},{:.4}", r.category, r.count, r.top1, r.top3);
        }
        let _ = writeln!(s, "all,{},{:.4},{:.4}", self.count, self.top1, self.top3);
        s
    }

    /// Write `evaluation.json`, `per_class.csv`, `confusion.csv` and `confusion.png` into `dir`.
    pub fn write_reports(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        // Each report replaces the previous one whole (temporary file, sync, rename).
        let write =
            |name: &str, bytes: &[u8]| crate::checkpoint::write_atomic(&dir.join(name), bytes);
        write(
            "evaluation.json",
            serde_json::to_string_pretty(self)
                .expect("serialises")
                .as_bytes(),
        )?;
        write("per_class.csv", self.per_class_csv().as_bytes())?;
        write("confusion.csv", self.confusion_csv().as_bytes())?;
        write("confusion.png", &crate::plot::confusion_png(self))?;
        Ok(())
    }

    /// Human-readable summary: overall, then the categories from worst to best.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} drawings: top-1 {:.2}%, top-3 {:.2}%\n",
            self.count,
            self.top1 * 100.0,
            self.top3 * 100.0
        );
        let mut rows: Vec<&ClassResult> = self.per_class.iter().collect();
        rows.sort_by(|a, b| a.top1.total_cmp(&b.top1));
        for r in rows {
            let _ = writeln!(
                s,
                "  {:<16} {:>5} drawings  top-1 {:>6.2}%  top-3 {:>6.2}%",
                r.category,
                r.count,
                r.top1 * 100.0,
                r.top3 * 100.0
            );
        }
        s
    }
}
