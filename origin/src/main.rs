//! `keyway`: the origin's binary. The command line is `keyway_origin::cli`.

// The hot path allocates small, short-lived objects across two worker threads; glibc's
// malloc spent about 13% of a loaded server's CPU on them (perf), mimalloc much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    keyway_origin::cli::run(std::env::args_os())
}
