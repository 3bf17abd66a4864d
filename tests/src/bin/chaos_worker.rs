//! A worker process of the chaos harness, configured from the environment: see
//! `redisq_tests::chaos::worker`.

fn main() {
    redisq_tests::chaos::worker::main_from_env();
}
