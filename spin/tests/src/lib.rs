//! A harness for running the example app under a real `spin up` and talking to it over loopback HTTP.

pub mod http;
pub mod server;

pub use http::{Response, request};
pub use server::{AppDir, Server};
