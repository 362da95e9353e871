//! What can stop the UI server from starting. (Serving static files has no error of its own: a
//! missing file is a 404 from [`crate::static_files`].)

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "ui.static_dir `{}` has no index.html: start ui-server from the repository root \
         or set DOODLE_UI__STATIC_DIR to the folder holding the page",
        .0.display()
    )]
    NoIndexHtml(PathBuf),
    #[error("ui.backend_url `{url}` is not an http(s) URL: {message}")]
    BackendUrl { url: String, message: String },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
