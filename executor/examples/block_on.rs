//! The executor as a program's whole event loop: `block_on` on the std
//! platform, with tasks, timers, a timeout, an interval and a wake from
//! another thread.
//!
//! Run it with `cargo run -p ringlet-executor --features std --example block_on`.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use ringlet_executor::{interval, sleep, spawn, timeout, Duration, Executor, Instant};

#[allow(dead_code)] // tests/examples.rs includes this file and calls `run`
fn main() {
    run();
}

/// Runs the program; returns the log of what the tasks did.
pub fn run() -> Vec<String> {
    let ex = Executor::default(); // StdPlatform: std clock, thread park
    ex.block_on(async {
        let start = Instant::now();
        let mut log = Vec::new();

        // Tasks run concurrently on this one thread.
        let a = spawn(async {
            sleep(Duration::from_millis(3)).await;
            "a slept 3 ms"
        });
        let b = spawn(async {
            let mut every = interval(Duration::from_millis(1));
            for _ in 0..3 {
                every.tick().await;
            }
            "b ticked 3 times"
        });

        // A wake from another thread (a blocking library, a device).
        let slot: Arc<Mutex<(Option<u32>, Option<Waker>)>> = Arc::default();
        let worker = std::thread::spawn({
            let slot = slot.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(2));
                let mut s = slot.lock().unwrap();
                s.0 = Some(42);
                if let Some(w) = s.1.take() {
                    w.wake();
                }
            }
        });
        let answer = poll_fn(|cx| {
            let mut s = slot.lock().unwrap();
            match s.0 {
                Some(v) => Poll::Ready(v),
                None => {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        let answer = timeout(Duration::from_secs(5), answer)
            .await
            .expect("the worker answers within 5 s");
        worker.join().unwrap();
        log.push(format!("worker thread answered {answer}"));

        log.push(a.await.unwrap().to_string());
        log.push(b.await.unwrap().to_string());
        log.push(format!("all done after {:?}", start.elapsed()));
        for line in &log {
            println!("{line}");
        }
        log
    })
}
