//! One seed per test run, so a failure can be replayed.
//!
//! `tests/scripts/test.sh` picks `PLO_TEST_SEED` (or keeps the one it is given), prints it, and
//! every randomised test derives its own seed from it: the proptest binaries, the reliability
//! suite and the simulators `Sim::start` launches. Run without it (a bare `cargo test`), each test
//! binary draws one seed and prints it with the test's output, so a failure shows how to replay.
//! Included as `common::seed` and, by the proptest binaries, on its own (`#[path]`).

use std::sync::OnceLock;

use proptest::test_runner::RngSeed;

/// The variable that fixes every random choice of a test run.
pub const VAR: &str = "PLO_TEST_SEED";

/// SplitMix64: a well-mixed 64-bit value from any input (also the reliability suite's seeds).
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The seed of one randomised test (`label`) for a run seed: a pure function, so the same
/// `PLO_TEST_SEED` gives every test the same cases again.
pub fn derive(run_seed: u64, label: &str) -> u64 {
    // FNV-1a of the label, so two labels never share a stream
    let h = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    splitmix(run_seed ^ h)
}

/// This run's seed: `PLO_TEST_SEED` when set (a value that is not a number is a mistake, so it
/// panics), else one drawn once per test binary.
pub fn run_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var(VAR) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{VAR}={v:?} is not a number (0 to 2^64-1)")),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            // small enough to type back
            splitmix(now ^ u64::from(std::process::id())) % 1_000_000_000
        }
    })
}

/// The seed of the randomised test `label`, printed with the way to replay it (the test harness
/// shows it with a failing test's output).
pub fn seed_for(label: &str) -> u64 {
    let run = run_seed();
    eprintln!(
        "{label}: {VAR}={run} (to replay: {VAR}={run} cargo test --test {})",
        env!("CARGO_CRATE_NAME")
    );
    derive(run, label)
}

/// The proptest seed for `label`: `PROPTEST_RNG_SEED` when set (proptest's own override), else
/// derived from this run's seed.
pub fn proptest_seed(label: &str) -> RngSeed {
    match std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        Some(s) => RngSeed::Fixed(s),
        None => RngSeed::Fixed(seed_for(label)),
    }
}
