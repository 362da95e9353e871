//! Live accuracy: every labelled save is feedback on the prediction the backend relayed for
//! those exact bytes.
//!
//! `/invocations/` remembers, for a design-shaped body (`{"inputs": "<base64 of 784 bytes>"}`,
//! one drawing, a 200 answer), the model's top-1 label under a hash of the 784 bytes.
//! `/save-image/` takes the entry for its bytes back out and counts
//! - `doodle_live_feedback_total{category, agreed="true"|"false"}`: the person's label and
//!   whether the model's top-1 was the same;
//! - `doodle_live_feedback_unmatched_total{category}`: saves of bytes the backend did not relay
//!   recently (drawn through another backend, older than [`MAX_AGE`], evicted, or before a
//!   restart). They are not accuracy data, so they are not guessed at.
//!
//! An entry counts once: saving the same drawing twice is one agreement and one unmatched save.
//! The UI guesses after every stroke, so most entries are never saved; the memory is bounded by
//! [`CAPACITY`] entries (oldest out first) and [`MAX_AGE`].
//!
//! `category` is bounded: a label the model has answered with since the backend started (so one
//! of the served models' categories), or `other` for any other name a person typed — new
//! categories land there until a model that knows them has predicted them.
//!
//! Cost on the hot path: one SipHash of 784 bytes, one short lock, one small parse of the
//! answer that is already in memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Remembered predictions at most; past it the oldest go first.
pub const CAPACITY: usize = 10_000;
/// A prediction older than this is not matched (the person has moved on).
pub const MAX_AGE: Duration = Duration::from_secs(30 * 60);
/// Distinct `category` label values at most, `other` aside.
pub const MAX_CATEGORIES: usize = 1_000;
/// The `category` of a label no served model has predicted.
pub const OTHER: &str = "other";

/// What a save's bytes were last predicted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// The person's label (bounded, see [`OTHER`]) and whether the top-1 agreed.
    Matched { category: Arc<str>, agreed: bool },
    /// No remembered prediction for these bytes.
    Unmatched { category: Arc<str> },
}

#[derive(Debug)]
struct Entry {
    label: Arc<str>,
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<u64, Entry>,
    /// Insertion order, for eviction; a key may also be here for an entry already taken or
    /// replaced (then its timestamp no longer matches and it is skipped).
    order: VecDeque<(u64, Instant)>,
    /// The labels the model has answered with, shared by every entry that holds one.
    labels: HashSet<Arc<str>>,
}

/// The backend's recent predictions; cheap to clone (one shared map).
#[derive(Debug, Clone)]
pub struct RecentPredictions {
    inner: Arc<Mutex<Inner>>,
    hasher: RandomState,
    capacity: usize,
    max_age: Duration,
}

impl Default for RecentPredictions {
    fn default() -> Self {
        Self::new(CAPACITY, MAX_AGE)
    }
}

impl RecentPredictions {
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            inner: Arc::default(),
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            max_age,
        }
    }

    fn key(&self, pixels: &[u8]) -> u64 {
        self.hasher.hash_one(pixels)
    }

    /// Remember that the model's top-1 for `pixels` was `label`.
    pub fn remember(&self, pixels: &[u8], label: &str) {
        self.remember_at(pixels, label, Instant::now());
    }

    fn remember_at(&self, pixels: &[u8], label: &str, now: Instant) {
        let key = self.key(pixels);
        let mut inner = self.inner.lock().expect("the lock is never poisoned");
        let label = match inner.labels.get(label) {
            Some(known) => known.clone(),
            None if inner.labels.len() < MAX_CATEGORIES => {
                let label: Arc<str> = label.into();
                inner.labels.insert(label.clone());
                label
            }
            None => OTHER.into(),
        };
        inner.entries.insert(key, Entry { label, at: now });
        inner.order.push_back((key, now));
        while inner.order.len() > self.capacity
            || inner
                .order
                .front()
                .is_some_and(|&(_, at)| now.duration_since(at) > self.max_age)
        {
            let (old, at) = inner.order.pop_front().expect("checked non-empty");
            if inner.entries.get(&old).is_some_and(|e| e.at == at) {
                inner.entries.remove(&old);
            }
        }
    }

    /// A save of `pixels` labelled `category`: take the prediction for those bytes, if any.
    pub fn feedback(&self, pixels: &[u8], category: &str) -> Feedback {
        self.feedback_at(pixels, category, Instant::now())
    }

    fn feedback_at(&self, pixels: &[u8], category: &str, now: Instant) -> Feedback {
        let key = self.key(pixels);
        let mut inner = self.inner.lock().expect("the lock is never poisoned");
        let bounded = inner
            .labels
            .get(category)
            .cloned()
            .unwrap_or_else(|| OTHER.into());
        match inner.entries.remove(&key) {
            Some(entry) if now.duration_since(entry.at) <= self.max_age => Feedback::Matched {
                agreed: &*entry.label == category,
                category: bounded,
            },
            _ => Feedback::Unmatched { category: bounded },
        }
    }

    /// Remembered predictions right now (for tests and the log).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("the lock is never poisoned")
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The top-1 label of a one-drawing answer, `{"predictions": [{"label": ...}]}`; `None` for any
/// other shape (a batch, bare probabilities).
pub fn single_top1(answer: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        predictions: Vec<Prediction<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Prediction<'a> {
        #[serde(borrow)]
        label: std::borrow::Cow<'a, str>,
    }
    let answer: Answer<'_> = serde_json::from_slice(answer).ok()?;
    match <[Prediction<'_>; 1]>::try_from(answer.predictions) {
        Ok([one]) => Some(one.label.into_owned()),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(category: &str, agreed: bool) -> Feedback {
        Feedback::Matched {
            category: category.into(),
            agreed,
        }
    }

    fn unmatched(category: &str) -> Feedback {
        Feedback::Unmatched {
            category: category.into(),
        }
    }

    #[test]
    fn a_save_matches_the_prediction_for_its_exact_bytes_once() {
        let recent = RecentPredictions::default();
        recent.remember(&[1; 784], "house");
        recent.remember(&[2; 784], "cat");
        assert_eq!(recent.feedback(&[1; 784], "house"), matched("house", true));
        assert_eq!(recent.feedback(&[1; 784], "house"), unmatched("house"));
        assert_eq!(recent.feedback(&[2; 784], "house"), matched("house", false));
        assert_eq!(recent.feedback(&[3; 784], "cat"), unmatched("cat"));
        assert!(recent.is_empty());
    }

    #[test]
    fn the_newest_prediction_for_the_same_bytes_wins() {
        let recent = RecentPredictions::default();
        recent.remember(&[1; 784], "house");
        recent.remember(&[1; 784], "cat");
        assert_eq!(recent.feedback(&[1; 784], "cat"), matched("cat", true));
    }

    #[test]
    fn labels_no_model_predicted_are_other() {
        let recent = RecentPredictions::default();
        recent.remember(&[1; 784], "house");
        assert_eq!(
            recent.feedback(&[1; 784], "spaceship"),
            matched(OTHER, false)
        );
        assert_eq!(recent.feedback(&[9; 784], "spaceship"), unmatched(OTHER));
    }

    #[test]
    fn memory_is_bounded_by_count_oldest_first() {
        let recent = RecentPredictions::new(3, MAX_AGE);
        for seed in 0..5u8 {
            recent.remember(&[seed; 784], "house");
        }
        assert_eq!(recent.len(), 3);
        assert_eq!(recent.feedback(&[0; 784], "house"), unmatched("house"));
        assert_eq!(recent.feedback(&[1; 784], "house"), unmatched("house"));
        assert_eq!(recent.feedback(&[4; 784], "house"), matched("house", true));
    }

    #[test]
    fn a_replaced_entry_is_not_evicted_by_its_old_position() {
        let recent = RecentPredictions::new(2, MAX_AGE);
        let t0 = Instant::now();
        recent.remember_at(&[1; 784], "house", t0);
        recent.remember_at(&[1; 784], "cat", t0 + Duration::from_millis(1));
        recent.remember_at(&[2; 784], "cat", t0 + Duration::from_millis(2));
        assert_eq!(recent.feedback(&[1; 784], "cat"), matched("cat", true));
    }

    #[test]
    fn old_predictions_are_not_matched_and_are_dropped() {
        let recent = RecentPredictions::new(100, Duration::from_secs(60));
        let t0 = Instant::now();
        recent.remember_at(&[1; 784], "house", t0);
        recent.remember_at(&[2; 784], "house", t0);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            recent.feedback_at(&[1; 784], "house", later),
            unmatched("house")
        );
        recent.remember_at(&[3; 784], "house", later);
        assert_eq!(recent.len(), 1, "the expired entry went on the next insert");
    }

    #[test]
    fn the_top1_of_one_drawing_is_read_and_other_shapes_are_not() {
        let one = br#"{"predictions":[{"label":"house","score":0.9,"top_k":[{"label":"house","score":0.9}]}]}"#;
        assert_eq!(single_top1(one).as_deref(), Some("house"));
        let escaped = br#"{"predictions":[{"label":"ho\u0075se","score":0.9}]}"#;
        assert_eq!(single_top1(escaped).as_deref(), Some("house"));
        let two = br#"{"predictions":[{"label":"a"},{"label":"b"}]}"#;
        assert_eq!(single_top1(two), None);
        assert_eq!(single_top1(br#"{"predictions":[[0.1,0.9]]}"#), None);
        assert_eq!(single_top1(b"not json"), None);
    }
}
