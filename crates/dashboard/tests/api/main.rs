//! The dashboard against real databases: SQLite in a temp dir and a fresh PostgreSQL database
//! per test (`DOODLE_TEST_POSTGRES_URL`, default the local server), the app on port 0.

mod binary;
mod database_down;
mod helpers;
mod metrics;
mod page;
mod runs;
mod stage_log;
