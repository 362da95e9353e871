//! The model server's own metrics, registered next to the shared HTTP ones.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use doodle_core::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct ServerMetrics {
    pub queue_size: IntGauge,
    pub batch_size: Histogram,
    pub queue_seconds: Histogram,
    pub compute_seconds: Histogram,
    pub rejected: IntCounterVec,
    pub model_info: IntGaugeVec,
    pub predictions: IntCounterVec,
    pub confidence: Histogram,
    pub load_failures: IntCounter,
    pub swaps: IntCounter,
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric definition. This is a bug.")
}

impl ServerMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let m = Self {
            queue_size: IntGauge::new(
                "doodle_inference_queue_size",
                "Requests waiting for the inference worker.",
            )
            .expect("valid metric definition. This is a bug."),
            batch_size: histogram(
                "doodle_inference_batch_size",
                "Images per forward pass.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
            queue_seconds: histogram(
                "doodle_inference_queue_duration_seconds",
                "Time a request waited in the queue before its forward pass.",
                latency.clone(),
            ),
            compute_seconds: histogram(
                "doodle_inference_compute_duration_seconds",
                "Time of one forward pass (a whole batch).",
                latency,
            ),
            rejected: IntCounterVec::new(
                Opts::new(
                    "doodle_inference_rejected_total",
                    "Requests not scored, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric definition. This is a bug."),
            model_info: IntGaugeVec::new(
                Opts::new(
                    "doodle_model_info",
                    "The model being served (value 1), by name and version.",
                ),
                &["name", "version"],
            )
            .expect("valid metric definition. This is a bug."),
            predictions: IntCounterVec::new(
                Opts::new("doodle_predictions_total", "Top-1 predictions, by label."),
                &["label"],
            )
            .expect("valid metric definition. This is a bug."),
            confidence: histogram(
                "doodle_prediction_confidence",
                "Top-1 probability of each prediction (a drift signal).",
                vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
            ),
            load_failures: IntCounter::new(
                "doodle_model_load_failures_total",
                "Model versions that failed to load (the old one kept serving).",
            )
            .expect("valid metric definition. This is a bug."),
            swaps: IntCounter::new("doodle_model_swaps_total", "Model versions swapped in.")
                .expect("valid metric definition. This is a bug."),
        };
        metrics.register(Box::new(m.queue_size.clone()));
        metrics.register(Box::new(m.batch_size.clone()));
        metrics.register(Box::new(m.queue_seconds.clone()));
        metrics.register(Box::new(m.compute_seconds.clone()));
        metrics.register(Box::new(m.rejected.clone()));
        metrics.register(Box::new(m.model_info.clone()));
        metrics.register(Box::new(m.predictions.clone()));
        metrics.register(Box::new(m.confidence.clone()));
        metrics.register(Box::new(m.load_failures.clone()));
        metrics.register(Box::new(m.swaps.clone()));
        m
    }
}
