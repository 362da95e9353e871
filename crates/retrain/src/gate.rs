//! The promotion gate: whether a candidate may replace the deployed model (the champion).
//!
//! Both models are scored on the same fixed evaluation set ([`crate::evalset`]); the candidate
//! is promoted only when all three rules hold:
//! 1. **known_top1**: its top-1 on the evaluation drawings of the categories both models know
//!    is at least the champion's minus `pipeline.gate_tolerance`;
//! 2. **known_class_drop**: no category the champion knows loses more than
//!    `pipeline.gate_max_class_drop` of top-1 (a category the candidate does not know at all
//!    counts as dropping to 0);
//! 3. **new_categories**: every category only the candidate knows reaches
//!    `pipeline.gate_min_new_class_accuracy` top-1 on at least
//!    `pipeline.gate_min_new_class_drawings` evaluation drawings.
//!
//! Anything else is refused, with the failed rules' numbers as the reason. The verdict lists
//! every rule with its value, its limit and whether it held, and both models' top-1/top-3 per
//! category.

use doodle_core::config::PipelineSettings;
use doodle_model::Evaluation;
use doodle_model::evaluate::ClassResult;
use serde::{Deserialize, Serialize};

/// Comparisons are made with this slack, so that equal accuracies computed two ways compare
/// equal.
const EPSILON: f64 = 1e-9;

/// The gate's limits (from `[pipeline]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub tolerance: f64,
    pub max_class_drop: f64,
    pub min_new_class_accuracy: f64,
    pub min_new_class_drawings: usize,
}

impl Thresholds {
    pub fn from_settings(p: &PipelineSettings) -> Self {
        Self {
            tolerance: p.gate_tolerance,
            max_class_drop: p.gate_max_class_drop,
            min_new_class_accuracy: p.gate_min_new_class_accuracy,
            min_new_class_drawings: p.gate_min_new_class_drawings,
        }
    }
}

/// Top-1 and top-3 on some drawings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub drawings: usize,
    pub top1: f64,
    pub top3: f64,
}

/// One category in the comparison (`None`: the model does not know it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    pub category: String,
    pub drawings: usize,
    /// Only the candidate knows it.
    pub new: bool,
    pub champion_top1: Option<f64>,
    pub champion_top3: Option<f64>,
    pub candidate_top1: Option<f64>,
    pub candidate_top3: Option<f64>,
    /// Candidate top-1 minus champion top-1, where both know it.
    pub change: Option<f64>,
}

/// One rule with its numbers and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub passed: bool,
    /// The measured number (a top-1 difference, the largest drop, the weakest new category).
    pub value: Option<f64>,
    /// The limit it is held to.
    pub limit: Option<f64>,
    pub detail: String,
}

/// The gate's decision and everything it was based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub promote: bool,
    /// One line: why.
    pub reason: String,
    /// Both models on the categories both know.
    pub champion_known: Score,
    pub candidate_known: Score,
    /// The candidate on the categories only it knows (none: there are none).
    pub candidate_new: Option<Score>,
    pub rules: Vec<Rule>,
    pub per_class: Vec<ClassRow>,
    pub thresholds: Thresholds,
}

/// Judge `candidate` against `champion`, each evaluated on the evaluation drawings of the
/// categories it knows (`doodle_model::evaluate::evaluate`).
pub fn judge(champion: &Evaluation, candidate: &Evaluation, t: Thresholds) -> Verdict {
    let both: Vec<String> = champion
        .categories
        .iter()
        .filter(|c| candidate.categories.contains(c))
        .cloned()
        .collect();
    let new: Vec<String> = candidate
        .categories
        .iter()
        .filter(|c| !champion.categories.contains(c))
        .cloned()
        .collect();
    let champion_known = score(champion, &both);
    let candidate_known = score(candidate, &both);
    let candidate_new = (!new.is_empty()).then(|| score(candidate, &new));
    let per_class = rows(champion, candidate);
    let rules = vec![
        known_top1(&champion_known, &candidate_known, both.len(), t),
        known_class_drop(&per_class, t),
        new_categories(&per_class, t),
    ];
    let promote = rules.iter().all(|r| r.passed);
    let reason = reason(promote, &rules);
    Verdict {
        promote,
        reason,
        champion_known,
        candidate_known,
        candidate_new,
        rules,
        per_class,
        thresholds: t,
    }
}

/// Top-1/top-3 over the drawings of `categories` (from the per-category results).
fn score(eval: &Evaluation, categories: &[String]) -> Score {
    let (mut n, mut hit1, mut hit3) = (0usize, 0.0, 0.0);
    for class in eval
        .per_class
        .iter()
        .filter(|c| categories.contains(&c.category))
    {
        n += class.count;
        hit1 += (class.top1 * class.count as f64).round();
        hit3 += (class.top3 * class.count as f64).round();
    }
    let ratio = |hits: f64| if n == 0 { 0.0 } else { hits / n as f64 };
    Score {
        drawings: n,
        top1: ratio(hit1),
        top3: ratio(hit3),
    }
}

fn class<'a>(eval: &'a Evaluation, category: &str) -> Option<&'a ClassResult> {
    eval.per_class.iter().find(|c| c.category == category)
}

/// Every category either model knows: the candidate's order, then the champion's others.
fn rows(champion: &Evaluation, candidate: &Evaluation) -> Vec<ClassRow> {
    let extra = champion
        .categories
        .iter()
        .filter(|c| !candidate.categories.contains(c));
    candidate
        .categories
        .iter()
        .chain(extra)
        .map(|category| {
            let old = class(champion, category);
            let cand = class(candidate, category);
            ClassRow {
                category: category.clone(),
                drawings: old.or(cand).map_or(0, |c| c.count),
                new: old.is_none(),
                champion_top1: old.map(|c| c.top1),
                champion_top3: old.map(|c| c.top3),
                candidate_top1: cand.map(|c| c.top1),
                candidate_top3: cand.map(|c| c.top3),
                change: old.zip(cand).map(|(o, c)| c.top1 - o.top1),
            }
        })
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn pts(x: f64) -> String {
    format!("{:.1} pts", x * 100.0)
}

fn known_top1(champion: &Score, candidate: &Score, categories: usize, t: Thresholds) -> Rule {
    let change = candidate.top1 - champion.top1;
    let passed = champion.drawings > 0 && change >= -t.tolerance - EPSILON;
    let detail = if champion.drawings == 0 {
        "no evaluation drawings of the categories both models know".to_string()
    } else {
        format!(
            "top-1 on the {categories} categories both know ({} drawings): candidate {} vs \
             deployed {} (change {}, allowed down to -{})",
            champion.drawings,
            pct(candidate.top1),
            pct(champion.top1),
            pts(change),
            pts(t.tolerance)
        )
    };
    Rule {
        name: "known_top1".into(),
        passed,
        value: Some(change),
        limit: Some(-t.tolerance),
        detail,
    }
}

fn known_class_drop(rows: &[ClassRow], t: Thresholds) -> Rule {
    let mut drops: Vec<(&ClassRow, f64)> = rows
        .iter()
        .filter(|r| !r.new && r.drawings > 0)
        .map(|r| {
            let old = r.champion_top1.unwrap_or(0.0);
            (r, old - r.candidate_top1.unwrap_or(0.0))
        })
        .collect();
    drops.sort_by(|a, b| b.1.total_cmp(&a.1));
    let Some(&(worst, largest)) = drops.first() else {
        return Rule {
            name: "known_class_drop".into(),
            passed: true,
            value: None,
            limit: Some(t.max_class_drop),
            detail: "no known category has evaluation drawings".into(),
        };
    };
    let too_far: Vec<String> = drops
        .iter()
        .filter(|(_, d)| *d > t.max_class_drop + EPSILON)
        .map(|(r, d)| {
            let now = r.candidate_top1.map_or("unknown".into(), pct);
            let was = pct(r.champion_top1.unwrap_or(0.0));
            format!("{} drops {} ({was} -> {now})", r.category, pts(*d))
        })
        .collect();
    let detail = if too_far.is_empty() {
        format!(
            "largest drop of a known category: {} {} (allowed {})",
            worst.category,
            pts(largest.max(0.0)),
            pts(t.max_class_drop)
        )
    } else {
        format!("{} (allowed {})", too_far.join(", "), pts(t.max_class_drop))
    };
    Rule {
        name: "known_class_drop".into(),
        passed: too_far.is_empty(),
        value: Some(largest),
        limit: Some(t.max_class_drop),
        detail,
    }
}

fn new_categories(rows: &[ClassRow], t: Thresholds) -> Rule {
    let new: Vec<&ClassRow> = rows.iter().filter(|r| r.new).collect();
    let weakest = new
        .iter()
        .filter_map(|r| r.candidate_top1)
        .min_by(f64::total_cmp);
    let judged: Vec<(String, bool)> = new
        .iter()
        .map(|r| {
            let top1 = r.candidate_top1.unwrap_or(0.0);
            let ok = r.drawings >= t.min_new_class_drawings
                && top1 >= t.min_new_class_accuracy - EPSILON;
            (
                format!("{} {} on {} drawings", r.category, pct(top1), r.drawings),
                ok,
            )
        })
        .collect();
    let passed = judged.iter().all(|(_, ok)| *ok);
    let needs = format!(
        "needs {} on at least {} drawings",
        pct(t.min_new_class_accuracy),
        t.min_new_class_drawings
    );
    let detail = if judged.is_empty() {
        "no new categories".to_string()
    } else if passed {
        format!(
            "new categories: {} ({needs})",
            join(judged.iter().map(|j| &j.0))
        )
    } else {
        let failed = judged.iter().filter(|j| !j.1).map(|j| &j.0);
        format!("new categories short: {} ({needs})", join(failed))
    };
    Rule {
        name: "new_categories".into(),
        passed,
        value: weakest,
        limit: Some(t.min_new_class_accuracy),
        detail,
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a String>) -> String {
    parts.map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// One line: every rule's detail when promoted, the failed ones' when refused.
fn reason(promote: bool, rules: &[Rule]) -> String {
    if promote {
        let details: Vec<&str> = rules.iter().map(|r| r.detail.as_str()).collect();
        format!("promoted: {}", details.join("; "))
    } else {
        let failed: Vec<&str> = rules
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.detail.as_str())
            .collect();
        format!("refused: {}", failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An evaluation with per-category (count, top-1 hits).
    fn eval(classes: &[(&str, usize, usize)]) -> Evaluation {
        let per_class: Vec<ClassResult> = classes
            .iter()
            .map(|&(c, n, hits)| ClassResult {
                category: c.into(),
                count: n,
                top1: if n == 0 { 0.0 } else { hits as f64 / n as f64 },
                top3: if n == 0 { 0.0 } else { 1.0 },
            })
            .collect();
        let n: usize = classes.iter().map(|c| c.1).sum();
        let hits: usize = classes.iter().map(|c| c.2).sum();
        Evaluation {
            count: n,
            top1: hits as f64 / n.max(1) as f64,
            top3: 1.0,
            per_class,
            confusion: Vec::new(),
            categories: classes.iter().map(|c| c.0.to_string()).collect(),
        }
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            tolerance: 0.005,
            max_class_drop: 0.05,
            min_new_class_accuracy: 0.6,
            min_new_class_drawings: 5,
        }
    }

    fn rule<'a>(v: &'a Verdict, name: &str) -> &'a Rule {
        v.rules.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn an_equal_candidate_with_a_good_new_category_is_promoted() {
        let champion = eval(&[("apple", 100, 90), ("cat", 100, 80)]);
        let candidate = eval(&[("apple", 100, 90), ("cat", 100, 80), ("house", 10, 7)]);
        let v = judge(&champion, &candidate, thresholds());
        assert!(v.promote, "{v:#?}");
        assert_eq!(v.candidate_known.drawings, 200);
        assert!((v.candidate_known.top1 - 0.85).abs() < 1e-12);
        assert_eq!(v.candidate_new.unwrap().drawings, 10);
        assert!(v.reason.starts_with("promoted: "), "{}", v.reason);
        let house = v.per_class.iter().find(|r| r.category == "house").unwrap();
        assert!(house.new && house.champion_top1.is_none() && house.change.is_none());
    }

    #[test]
    fn a_small_overall_drop_within_tolerance_passes_but_a_larger_one_does_not() {
        let champion = eval(&[("apple", 1000, 900)]);
        let within = judge(&champion, &eval(&[("apple", 1000, 895)]), thresholds());
        assert!(within.promote, "{within:#?}");
        let beyond = judge(&champion, &eval(&[("apple", 1000, 894)]), thresholds());
        assert!(!beyond.promote);
        assert!(!rule(&beyond, "known_top1").passed);
        assert!(
            beyond.reason.starts_with("refused: top-1"),
            "{}",
            beyond.reason
        );
    }

    #[test]
    fn one_category_dropping_too_far_refuses_even_when_overall_improves() {
        let champion = eval(&[("apple", 100, 90), ("cat", 100, 50), ("dog", 100, 50)]);
        let candidate = eval(&[("apple", 100, 80), ("cat", 100, 70), ("dog", 100, 70)]);
        let v = judge(&champion, &candidate, thresholds());
        assert!(rule(&v, "known_top1").passed);
        let drop = rule(&v, "known_class_drop");
        assert!(!drop.passed);
        assert!((drop.value.unwrap() - 0.10).abs() < 1e-12);
        assert!(
            drop.detail.contains("apple drops 10.0 pts"),
            "{}",
            drop.detail
        );
        assert!(!v.promote);
    }

    #[test]
    fn a_category_the_candidate_forgot_counts_as_dropping_to_zero() {
        let champion = eval(&[("apple", 100, 90), ("cat", 100, 80)]);
        let candidate = eval(&[("apple", 100, 90)]);
        let v = judge(&champion, &candidate, thresholds());
        assert!(!v.promote);
        assert!(
            rule(&v, "known_class_drop")
                .detail
                .contains("cat drops 80.0 pts (80.0% -> unknown)"),
            "{:?}",
            v.rules
        );
    }

    #[test]
    fn a_new_category_needs_both_the_accuracy_and_the_drawings() {
        let champion = eval(&[("apple", 100, 90)]);
        let weak = eval(&[("apple", 100, 90), ("house", 10, 5)]);
        let few = eval(&[("apple", 100, 90), ("house", 4, 4)]);
        for candidate in [weak, few] {
            let v = judge(&champion, &candidate, thresholds());
            assert!(!v.promote);
            assert!(
                rule(&v, "new_categories")
                    .detail
                    .starts_with("new categories short: house")
            );
        }
    }

    #[test]
    fn no_shared_evaluation_drawings_is_a_refusal() {
        let champion = eval(&[("apple", 0, 0)]);
        let candidate = eval(&[("apple", 0, 0)]);
        let v = judge(&champion, &candidate, thresholds());
        assert!(!v.promote);
        assert!(v.reason.contains("no evaluation drawings"), "{}", v.reason);
    }
}
