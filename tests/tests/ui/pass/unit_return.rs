//! Tasks with no return type and with `-> ()`, and a `mut` parameter.
#![deny(warnings)]

use redisq::fifo;

/// Logs a line.
#[fifo(queue = "logs")]
pub fn log_line(mut line: String) {
    line.push('!');
    let _ = line;
}

/// Does nothing, explicitly.
#[fifo(queue = "logs")]
pub fn noop(count: u32) -> () {
    let _ = count;
}

fn main() {
    log_line::run("hello".to_owned());
    let (): () = noop::run(3);
    assert_eq!(log_line::NAME, concat!(module_path!(), "::log_line"));
    assert_eq!(noop::QUEUE, "logs");
    let _ = log_line;
    let _ = noop;
}
