//! Runs the embedding examples, so the code docs/executor.md shows works.
#![cfg(feature = "std")]

#[path = "../examples/block_on.rs"]
mod block_on;
#[path = "../examples/epoll_loop.rs"]
mod epoll_loop;

#[test]
fn block_on_example_runs() {
    let log = block_on::run();
    assert_eq!(log[0], "worker thread answered 42");
    assert_eq!(log[1], "a slept 3 ms");
    assert_eq!(log[2], "b ticked 3 times");
}

#[test]
fn epoll_loop_example_runs() {
    let log = epoll_loop::run();
    let mut handled: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("handled message"))
        .collect();
    handled.sort();
    assert_eq!(
        handled,
        [
            "handled message 0",
            "handled message 1",
            "handled message 2",
            "handled message 3",
            "handled message 4"
        ]
    );
    assert!(log.last().unwrap().starts_with("device done after"));
}
