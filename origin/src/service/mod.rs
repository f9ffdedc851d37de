//! Between the handlers and the store. Handlers parse, call these, and shape the answer;
//! the rules every route shares live here once: who may act (`access`), what exists for
//! the caller (`resources`), field rules (`validate`), response shapes loaded in batches
//! (`views`), sealing and opening recoverable keys (`recovery`), and the verification
//! flow both verify routes run (`verify`).

pub mod access;
pub mod not_found;
pub mod recovery;
pub mod resources;
pub mod validate;
pub mod verify;
pub mod views;
