//! The decision cost in instructions, not seconds: `ITERS` decisions, or `ITERS` bare
//! parses, chosen by the first argument. Run under callgrind by
//! `scripts/bench-decision-instructions.sh`, whose counts repeat exactly on a busy
//! machine where wall-clock timings of a few microseconds do not.

mod shared;

/// Iterations per run: enough that start-up is a rounding error.
const ITERS: usize = 20_000;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let input = shared::input();
    let iters = match std::env::args().nth(2) {
        Some(n) => n.parse().expect("iterations"),
        None => ITERS,
    };
    for _ in 0..iters {
        match which.as_str() {
            "decision" => {
                std::hint::black_box(shared::decision(&input));
            }
            "baseline" => {
                std::hint::black_box(shared::baseline(&input));
            }
            "other" => {
                std::hint::black_box(shared::other(&input));
            }
            // Criterion passes `--bench`; this runner is not a criterion bench.
            _ => return,
        }
    }
}
