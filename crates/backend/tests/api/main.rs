//! Black-box tests: the real app on port 0, temp folders, and a fault-injecting fake model server.

mod helpers;

mod console;
mod health;
mod invocations;
mod live_feedback;
mod metrics;
mod model_server;
mod save_image;
mod shutdown;
