//! The origin under end-to-end test: the `keyway` command line, built by cargo as a
//! target of this package so the tests find it through `CARGO_BIN_EXE_*` instead of a
//! path into `target/` or a build of their own.

// As in the `keyway` binary: the allocator is the binary's choice, not the library's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    keyway_origin::cli::run(std::env::args_os())
}
