//! The design's five metrics, with its exact names, next to the shared HTTP metrics.

use doodle_core::metrics::{HTTP_BUCKETS, Metrics};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};

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
        core.register(Box::new(prediction_requests.clone()));
        core.register(Box::new(prediction_latency.clone()));
        core.register(Box::new(save_requests.clone()));
        core.register(Box::new(save_latency.clone()));
        core.register(Box::new(api_errors.clone()));
        Self {
            core,
            prediction_requests,
            prediction_latency,
            save_requests,
            save_latency,
            api_errors,
        }
    }

    pub fn api_error(&self, endpoint: &str, error_type: &str) {
        self.api_errors
            .with_label_values(&[endpoint, error_type])
            .inc();
    }
}

impl Default for BackendMetrics {
    fn default() -> Self {
        Self::new()
    }
}
