//! The UI server: the drawing page in `ui/` as static files (compressed, with cache headers and a
//! Content-Security-Policy), `GET /config.json` telling the page where the backend is, `/health`
//! and `/metrics`. It has no API of its own: the page talks to the backend directly.

pub mod error;
pub mod routes;
pub mod startup;
pub mod static_files;
