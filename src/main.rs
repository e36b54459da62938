//! `xiansuo`: the commands (`serve`, `migrate`, `user`, `copy`, `send`, `version`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Issue 8: glibc's allocator took about a fifth of the HTTP workers' time at 11,000 pushes/s,
/// much of it waiting on its arena locks (BENCHMARKS.md, session 8).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's numbers for two of its options (`mi_option_e` in its `mimalloc.h`, which keeps
/// retired options in place so that the numbers of the others never change).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory the service frees goes back to the system at once, and arenas are committed as they
/// are used: by default mimalloc keeps freed memory until its next allocations, so an idle
/// server held what its start-up had touched (45 MiB against 19 MiB; the cost under load is
/// within the noise, BENCHMARKS.md, session 8).
/// An operator's `MIMALLOC_ARENA_EAGER_COMMIT` or `MIMALLOC_PURGE_DELAY` (mimalloc reads them
/// itself) is left as set.
fn tune_allocator() {
    for (option, env) in
        [(MI_OPTION_ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT"), (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY")]
    {
        if std::env::var_os(env).is_none() {
            // SAFETY: `mi_option_set` only stores an option's value, before any other thread
            // starts; mimalloc reads it when it reserves or purges memory.
            unsafe { libmimalloc_sys::mi_option_set(option, 0) };
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xiansuo: {e}");
            ExitCode::from(2)
        }
    }
}
