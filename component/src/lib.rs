//! The idem guard. The modules below are plain Rust and run natively; `export` is the thin layer that binds
//! them to the WIT world when built for `wasm32-wasip2`.

pub mod fingerprint;
pub mod guard;
pub mod limits;
pub mod record;
pub mod store;
pub mod types;

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        world: "guard-component",
        path: "../wit",
    });
}

#[cfg(target_arch = "wasm32")]
mod export;

#[cfg(test)]
mod testing;
