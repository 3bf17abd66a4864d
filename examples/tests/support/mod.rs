//! What the examples' end-to-end tests share beyond `redisq_test_support` (the Redis they
//! use, namespaces removed on drop, a private Redis): a server running in the test's own
//! process until it is stopped, awaiting with a time limit, and the path of an example
//! binary built for the tests that run it as a process.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a server may take to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test after `limit`.
pub(crate) async fn within<F: Future + Unpin>(limit: Duration, future: F) -> F::Output {
    tokio::time::timeout(limit, future).await.expect("in time")
}

/// The shutdown future a served example is given.
pub(crate) type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server running in this process until [`Server::stop`].
pub(crate) struct Server<E> {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), E>>,
}

impl<E: std::fmt::Debug + Send + 'static> Server<E> {
    /// Binds a free loopback port and runs `serve` on it.
    pub(crate) async fn start<F, Fut>(serve: F) -> Server<E>
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(serve(listener, shutdown));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Triggers the shutdown and waits for the server to return.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = within(STOP_DEADLINE, &mut self.task).await;
        served.expect("join").expect("the server returns Ok");
    }
}

/// The example `name`, built by cargo (examples have no `CARGO_BIN_EXE_`).
pub(crate) fn example_binary(name: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "redisq-examples", "--example", name])
        .current_dir(&manifest)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example {name}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| manifest.join("../target"), PathBuf::from);
    target.join("debug/examples").join(name)
}
