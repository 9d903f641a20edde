//! Plugging the guard's store import with an adapter's store export.

use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, plug};

/// What the composed component exports: the guard, and nothing else the app could call by mistake.
pub const GUARD_EXPORT: &str = "idem:guard/guard@0.1.0";
/// What the adapter exports and the guard imports.
pub const STORE_INTERFACE: &str = "idem:guard/store@0.1.0";

/// Imports a Spin host satisfies. Anything else left over means a component was built against the wrong world.
const HOST_PROVIDED: [&str; 3] = ["wasi:", "spin:", "fermyon:"];

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("the {which} is not a usable WebAssembly component: {message}")]
    Load {
        which: &'static str,
        message: String,
    },
    #[error(
        "the store adapter does not export {STORE_INTERFACE} in a shape the guard's import accepts: {0}"
    )]
    Plug(String),
    #[error("the guard does not export {GUARD_EXPORT}")]
    NoGuardExport,
    #[error("the composed component still imports `{0}`, which Spin does not provide")]
    ForeignImport(String),
    #[error("encoding the composed component failed: {0}")]
    Encode(String),
}

/// Returns one component that exports the guard and imports only what Spin provides: `guard` with its
/// `idem:guard/store` import satisfied by `store`'s export. The output is validated before it is returned.
pub fn compose(guard: &[u8], store: &[u8]) -> Result<Vec<u8>, ComposeError> {
    let mut graph = CompositionGraph::new();
    let guard_pkg = register(&mut graph, "idem:guard", "guard", guard)?;
    let store_pkg = register(&mut graph, "idem:store-adapter", "store adapter", store)?;

    if !graph.types()[graph[guard_pkg].ty()]
        .exports
        .contains_key(GUARD_EXPORT)
    {
        return Err(ComposeError::NoGuardExport);
    }
    // `plug` instantiates the guard, feeds it the adapter's matching exports and re-exports all of the
    // guard's exports; everything the two still import becomes an import of the result.
    plug(&mut graph, vec![store_pkg], guard_pkg).map_err(|e| ComposeError::Plug(chain(&e)))?;

    for (name, _, _) in graph.imports() {
        if !HOST_PROVIDED.iter().any(|prefix| name.starts_with(prefix)) {
            return Err(ComposeError::ForeignImport(name.to_owned()));
        }
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| ComposeError::Encode(chain(&e)))
}

fn register(
    graph: &mut CompositionGraph,
    name: &str,
    which: &'static str,
    bytes: &[u8],
) -> Result<wac_graph::PackageId, ComposeError> {
    let load = |message: String| ComposeError::Load { which, message };
    let package = Package::from_bytes(name, None, bytes, graph.types_mut())
        .map_err(|e| load(format!("{e:#}")))?;
    graph.register_package(package).map_err(|e| load(chain(&e)))
}

/// The error with its causes, since wac's top-level messages alone rarely name the mismatch.
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            compose(b"", b""),
            Err(ComposeError::Load { which: "guard", .. })
        ));
        assert!(matches!(
            compose(b"\0asm\x01\0\0\0", b"junk"),
            Err(ComposeError::Load { which: "guard", .. })
        ));
    }
}
