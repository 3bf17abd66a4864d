//! A TCP proxy between redisq and Redis that injects network faults, in toxiproxy's shape:
//! it listens on a free loopback port and forwards every connection to the upstream
//! server, passing bytes through unchanged until told otherwise. Its [`Mode`] can be
//! switched at any time from any thread, and it can cut every connection at once or refuse
//! new ones for a while. Plain threads: one to accept, two per connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the proxy waits for the upstream server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What the proxy does to the bytes it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards everything at once.
    Pass,
    /// Waits this long before forwarding each chunk, in both directions.
    Latency(Duration),
    /// Forwards requests; swallows a reply with a chance of one in `one_in` (1: every
    /// reply), closing that connection instead of delivering it.
    DropReplies {
        /// The odds of a reply being swallowed.
        one_in: u32,
    },
}

/// What the proxy has done, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Connections accepted and forwarded.
    pub connections: u64,
    /// Connections closed at once because new ones were refused or upstream was down.
    pub refused: u64,
    /// Replies swallowed.
    pub dropped_replies: u64,
    /// Connections cut by [`Proxy::cut`].
    pub cut: u64,
}

struct Shared {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    refuse_until: Mutex<Option<Instant>>,
    /// Open connections: id → (client side, upstream side).
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next_id: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    stop: AtomicBool,
    connections: AtomicU64,
    refused: AtomicU64,
    dropped_replies: AtomicU64,
    cut: AtomicU64,
}

/// Locks a mutex, through a panic of another holder (the state stays usable).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    fn refusing(&self) -> bool {
        lock(&self.refuse_until).is_some_and(|until| Instant::now() < until)
    }

    fn close(&self, id: u64) {
        if let Some((client, server)) = lock(&self.open).remove(&id) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

/// A running proxy; it stops, cutting every connection, when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.shared.mode())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free port of 127.0.0.1, passing everything;
    /// `seed` drives which replies [`Mode::DropReplies`] swallows.
    ///
    /// # Errors
    /// When no loopback port can be bound or the acceptor thread cannot start.
    pub fn start(upstream: SocketAddr, seed: u64) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(Mode::Pass),
            refuse_until: Mutex::new(None),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            dropped_replies: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("chaos-proxy".to_owned())
                .spawn(move || accept(&listener, &shared))?
        };
        Ok(Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://<addr>`, for clients.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Switches what happens to the bytes of every connection, open or new.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Closes every open connection now; says how many there were.
    pub fn cut(&self) -> usize {
        let open: Vec<(TcpStream, TcpStream)> =
            lock(&self.shared.open).drain().map(|(_, c)| c).collect();
        for (client, server) in &open {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        self.shared
            .cut
            .fetch_add(open.len() as u64, Ordering::Relaxed);
        open.len()
    }

    /// Closes every new connection at once for `period` (open ones are left alone: see
    /// [`Proxy::cut`]).
    pub fn refuse_for(&self, period: Duration) {
        *lock(&self.shared.refuse_until) = Some(Instant::now() + period);
    }

    /// Passes everything again and accepts new connections.
    pub fn heal(&self) {
        self.set_mode(Mode::Pass);
        *lock(&self.shared.refuse_until) = None;
    }

    /// What it has done so far.
    #[must_use]
    pub fn counts(&self) -> ProxyCounts {
        let s = &self.shared;
        ProxyCounts {
            connections: s.connections.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            dropped_replies: s.dropped_replies.load(Ordering::Relaxed),
            cut: s.cut.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wakes the acceptor, which then sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.refusing() {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
            // Upstream is down: the client sees its connection closed.
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        if let Err(err) = forward(client, server, shared) {
            log::warn!("chaos proxy: could not forward a connection: {err}");
        }
    }
}

/// Starts the two pumps of one connection.
fn forward(client: TcpStream, server: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    lock(&shared.open).insert(id, (client.try_clone()?, server.try_clone()?));
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let (client_in, server_out) = (client.try_clone()?, server.try_clone()?);
    let up = shared.clone();
    thread::Builder::new()
        .name(format!("chaos-proxy-up-{id}"))
        .spawn(move || pump(id, client_in, server_out, &up, false))?;
    let down = shared.clone();
    thread::Builder::new()
        .name(format!("chaos-proxy-down-{id}"))
        .spawn(move || pump(id, server, client, &down, true))?;
    Ok(())
}

/// Copies `from` to `to` until either side closes; `replies` is the server-to-client
/// direction, where replies may be swallowed. Closes the connection on the way out.
fn pump(id: u64, mut from: TcpStream, mut to: TcpStream, shared: &Shared, replies: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match shared.mode() {
            Mode::Pass => {}
            Mode::Latency(delay) => thread::sleep(delay),
            Mode::DropReplies { one_in } => {
                if replies && lock(&shared.rng).u32(..one_in.max(1)) == 0 {
                    shared.dropped_replies.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    shared.close(id);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// A server that answers every line with the same line, on a free loopback port.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut reader = io::BufReader::new(stream.try_clone().expect("clone"));
                    let mut writer = stream;
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if writer.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        addr
    }

    fn ask(stream: &mut TcpStream, line: &str) -> io::Result<String> {
        stream.write_all(line.as_bytes())?;
        let mut reply = vec![0u8; line.len()];
        stream.read_exact(&mut reply)?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    fn client(proxy: &Proxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
    }

    #[test]
    fn passes_then_delays_then_drops_replies_then_cuts() {
        let proxy = Proxy::start(echo_server(), 1).expect("proxy");
        let mut stream = client(&proxy);
        assert_eq!(ask(&mut stream, "ping\n").expect("reply"), "ping\n");

        proxy.set_mode(Mode::Latency(Duration::from_millis(50)));
        let started = Instant::now();
        assert_eq!(ask(&mut stream, "slow\n").expect("reply"), "slow\n");
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "both ways delayed"
        );

        proxy.set_mode(Mode::DropReplies { one_in: 1 });
        assert!(
            ask(&mut stream, "lost\n").is_err(),
            "the reply is swallowed"
        );
        assert_eq!(proxy.counts().dropped_replies, 1);

        proxy.heal();
        let mut stream = client(&proxy);
        assert_eq!(ask(&mut stream, "again\n").expect("reply"), "again\n");
        assert_eq!(proxy.cut(), 1);
        assert!(ask(&mut stream, "cut\n").is_err(), "the connection is cut");
    }

    #[test]
    fn refuses_new_connections_for_a_while() {
        let proxy = Proxy::start(echo_server(), 1).expect("proxy");
        proxy.refuse_for(Duration::from_secs(60));
        let mut stream = client(&proxy);
        assert!(ask(&mut stream, "refused\n").is_err());
        assert_eq!(proxy.counts().refused, 1);
        proxy.heal();
        let mut stream = client(&proxy);
        assert_eq!(ask(&mut stream, "welcome\n").expect("reply"), "welcome\n");
    }
}
