//! Black-box tests of the UI server: the router in-process (`oneshot`) and one on a real socket.

mod config_json;
mod helpers;
mod startup;
mod static_files;
