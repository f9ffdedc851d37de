//! The edge Worker. The Worker itself arrives with the edge issue; for now the crate
//! only proves that the core links into a `cdylib`.

pub use keyway_core;
