//! Builds the pieces of idem's Spin integration and composes them.
//!
//! Spin hands a component dependency only what Spin itself provides, so the guard (which imports
//! `idem:guard/store`) cannot be a dependency on its own: it must first be plugged with a store adapter. This
//! crate does that plugging with `wac-graph` ([`compose`]), and drives the nested cargo builds that produce the
//! inputs ([`build`]).

pub mod build;
mod compose;

pub use compose::{ComposeError, GUARD_EXPORT, STORE_INTERFACE, compose};
