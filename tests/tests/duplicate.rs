//! Two tasks with one wire name: a worker refuses to start, with an error naming it.

mod support;

use redisq::fifo;
use support::TestNs;

#[fifo(queue = "a", name = "same.name")]
fn first() {}

#[fifo(queue = "b", name = "same.name")]
fn second() {}

#[test]
fn duplicate_wire_names_are_refused() {
    let ns = TestNs::new();
    let err = redisq::threaded_worker(ns.backend.clone()).unwrap_err();
    assert!(matches!(err, redisq::Error::DuplicateTask { ref name, .. } if name == "same.name"));
    assert!(err.to_string().contains("registered twice"), "{err}");
    assert!(redisq::init(ns.backend.clone()).is_err());
    first::run();
    second::run();
}
