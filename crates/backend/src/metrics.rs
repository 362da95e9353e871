//! The design's five metrics, with its exact names, next to the shared HTTP metrics, and the
//! live-accuracy counters (see [`feedback`](crate::feedback)).

use doodle_core::metrics::{HTTP_BUCKETS, Metrics};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};

use crate::feedback::Feedback;

/// Save latency is mostly one fsync: finer buckets at the low end than HTTP's.
const SAVE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Clone, Debug)]
pub struct BackendMetrics {
    pub core: Metrics,
    pub prediction_requests: IntCounter,
    pub prediction_latency: Histogram,
    pub save_requests: IntCounter,
    pub save_latency: Histogram,
    api_errors: IntCounterVec,
    live_feedback: IntCounterVec,
    live_feedback_unmatched: IntCounterVec,
}

impl BackendMetrics {
    pub fn new() -> Self {
        let core = Metrics::new();
        let prediction_requests = IntCounter::new(
            "model_prediction_requests_total",
            "Prediction requests received on /invocations/.",
        )
        .expect("valid metric definition. This is a bug.");
        let prediction_latency = Histogram::with_opts(
            HistogramOpts::new(
                "model_prediction_latency_seconds",
                "Time to answer a prediction request, model server round trip included.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
        )
        .expect("valid metric definition. This is a bug.");
        let save_requests = IntCounter::new(
            "save_image_requests_total",
            "Save-image requests received on /save-image/.",
        )
        .expect("valid metric definition. This is a bug.");
        let save_latency = Histogram::with_opts(
            HistogramOpts::new(
                "save_image_latency_seconds",
                "Time to answer a save-image request, fsync included.",
            )
            .buckets(SAVE_BUCKETS.to_vec()),
        )
        .expect("valid metric definition. This is a bug.");
        let api_errors = IntCounterVec::new(
            Opts::new(
                "api_errors_total",
                "Error answers (4xx and 5xx), by endpoint and error type.",
            ),
            &["endpoint", "error_type"],
        )
        .expect("valid metric definition. This is a bug.");
        let live_feedback = IntCounterVec::new(
            Opts::new(
                "doodle_live_feedback_total",
                "Labelled saves of a drawing the backend relayed a prediction for, by the \
                 person's category and whether the model's top-1 agreed.",
            ),
            &["category", "agreed"],
        )
        .expect("valid metric definition. This is a bug.");
        let live_feedback_unmatched = IntCounterVec::new(
            Opts::new(
                "doodle_live_feedback_unmatched_total",
                "Labelled saves of a drawing with no recent prediction from this backend, by \
                 category.",
            ),
            &["category"],
        )
        .expect("valid metric definition. This is a bug.");
        core.register(Box::new(prediction_requests.clone()));
        core.register(Box::new(prediction_latency.clone()));
        core.register(Box::new(save_requests.clone()));
        core.register(Box::new(save_latency.clone()));
        core.register(Box::new(api_errors.clone()));
        core.register(Box::new(live_feedback.clone()));
        core.register(Box::new(live_feedback_unmatched.clone()));
        Self {
            core,
            prediction_requests,
            prediction_latency,
            save_requests,
            save_latency,
            api_errors,
            live_feedback,
            live_feedback_unmatched,
        }
    }

    pub fn api_error(&self, endpoint: &str, error_type: &str) {
        self.api_errors
            .with_label_values(&[endpoint, error_type])
            .inc();
    }
}

impl BackendMetrics {
    /// Count one labelled save as live feedback.
    pub fn feedback(&self, feedback: &Feedback) {
        match feedback {
            Feedback::Matched { category, agreed } => self
                .live_feedback
                .with_label_values(&[&**category, if *agreed { "true" } else { "false" }])
                .inc(),
            Feedback::Unmatched { category } => self
                .live_feedback_unmatched
                .with_label_values(&[&**category])
                .inc(),
        }
    }
}

impl Default for BackendMetrics {
    fn default() -> Self {
        Self::new()
    }
}
