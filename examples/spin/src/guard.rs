//! The idem guard, imported as a Spin component dependency. Only the generated bindings live here.

spin_sdk::wit_bindgen::generate!({
    runtime_path: "spin_sdk::wit_bindgen::rt",
    inline: "
        package idem:spin-example;
        world app {
            import idem:guard/guard@0.1.0;
        }
    ",
    path: "../../wit",
    generate_all,
});

pub use idem::guard::guard::*;
pub use idem::guard::store::StoreError;
