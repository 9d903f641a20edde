//! Exports `idem:guard/store@0.1.0` over `spin:sqlite@3.1.0`, so the idem guard keeps its records in the Spin
//! app's own SQLite database. Composed with the guard, it gives a component that imports only what Spin provides.
//!
//! Every operation is one conditional SQL statement whose outcome is read back with `changes()` on the same
//! connection; SQLite runs each statement atomically, so that statement is the atomic step the store interface
//! asks for. See `sql.rs` for the statements and why each is shaped as it is.

// Natively only the pure helpers build, for their unit tests; the rest is reached from the wasm exports.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit", "wit"],
        world: "idem:spin-store/store-sqlite",
        generate_all,
    });
}

#[cfg(target_arch = "wasm32")]
mod db;
mod error;
#[cfg(target_arch = "wasm32")]
mod export;
#[cfg(target_arch = "wasm32")]
mod ops;
mod sql;
mod time;
