//! Serving: the listener, the connections, and a drain that always ends.
//!
//! The accept loop is written here (on hyper's own connection builder) rather than with
//! `axum::serve`, for three things that one does not do: a header-read timeout (a client
//! that never finishes its headers is closed, not held forever), a cap on open connections
//! (beyond it a connection gets an immediate `503` and is closed), and backing off when
//! `accept` fails for lack of file descriptors instead of spinning on the error.

use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt as _;

use crate::{config::Config, routes, state::AppState};

/// A configured bridge, ready to serve: building it validates the configuration and every
/// service, so a bad setting fails before anything listens.
pub struct Server {
    state: AppState,
    connections: Connections,
    drain_timeout: Duration,
    shutdown_accept: Duration,
    shutdown: CancellationToken,
    /// The admin listener (`--admin-listen`), bound by the caller.
    admin: Option<TcpListener>,
}

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
struct Connections {
    max: usize,
    header_timeout: Duration,
}

impl Server {
    pub fn new(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let state = AppState::build(&config, shutdown.clone())?;
        Ok(Self {
            state,
            connections: Connections {
                max: config.server.max_connections,
                header_timeout: config.server.header_timeout,
            },
            drain_timeout: config.server.drain_timeout,
            shutdown_accept: config.server.shutdown_accept,
            shutdown,
            admin: None,
        })
    }

    /// Also serves probes and `/metrics` on `admin` (`--admin-listen`), until [`serve`]
    /// returns: through the drain it keeps answering, `/readyz` with 503.
    ///
    /// [`serve`]: Self::serve
    pub fn with_admin(mut self, admin: TcpListener) -> Self {
        self.admin = Some(admin);
        self
    }

    /// Serves on `listener` until `shutdown` is cancelled, then drains: readiness fails, new
    /// runs are refused, every open stream gets a final `run_error` (with a `retry:` hint)
    /// and closes. After the drain timeout this returns even if some client still holds a
    /// connection (hyper's graceful shutdown alone would wait forever on SSE).
    pub async fn serve(self, listener: TcpListener) -> anyhow::Result<()> {
        let Self {
            state,
            connections,
            drain_timeout,
            shutdown_accept,
            shutdown,
            admin,
        } = self;
        let metrics = state.metrics.clone();
        // Aborted when this returns (dropped): the process is about to exit.
        let _admin = admin.map(|listener| {
            let app = routes::admin_router(state.clone());
            AbortOnDrop(tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, app).await {
                    tracing::error!(%error, "admin listener failed");
                }
            }))
        });
        let app = routes::router(state);

        // On shutdown, open streams end at once (they hear `shutdown`); the listener keeps
        // accepting for `--shutdown-accept` more, answering 503 (readiness too) to whatever
        // a load balancer still sends, rather than refusing connections.
        let stop_accepting = CancellationToken::new();
        tokio::spawn({
            let (shutdown, stop) = (shutdown.clone(), stop_accepting.clone());
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(shutdown_accept).await;
                stop.cancel();
            }
        });
        let mut server = tokio::spawn(accept_loop(listener, app, connections, stop_accepting));
        tokio::select! {
            joined = &mut server => return Ok(joined?),
            _ = shutdown.cancelled() => {}
        }
        metrics.drain_in_progress.set(1);
        tracing::info!(?drain_timeout, "draining");
        match tokio::time::timeout(shutdown_accept + drain_timeout, &mut server).await {
            Ok(joined) => Ok(joined?),
            Err(_) => {
                tracing::warn!("drain timeout reached; closing the remaining connections");
                server.abort();
                Ok(())
            }
        }
    }
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Builds the bridge from `config` and serves it on `listener` (see [`Server::serve`]).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Server::new(config, shutdown)?.serve(listener).await
}

/// Accepts connections until `stop` is cancelled, then asks each open one to finish its
/// requests and waits for them all.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: Connections,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max));
    let open = TaskTracker::new();
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut either = auto::Builder::new(TokioExecutor::new());
    either
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // Shared by every connection's task (one pointer each, not a copy of both builders'
    // settings): a task lives as long as its connection, and most are idle streams.
    let builders = Arc::new((http1, either));
    let mut backoff = Backoff::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(error) => {
                    backoff.wait(&error).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            open.spawn(refuse(stream, limits.max));
            continue;
        };
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let builders = Arc::clone(&builders);
        let stop = stop.clone();
        open.spawn(async move {
            // The header-read timeout starts once hyper reads a request; a client that
            // connects and sends nothing at all is closed after the same time.
            let Some(version) = first_bytes(&stream, limits.header_timeout).await else {
                return;
            };
            let (io, service) = (TokioIo::new(stream), TowerToHyperService::new(service));
            let (http1, either) = &*builders;
            match version {
                Version::Http1 => {
                    let connection = http1.serve_connection(io, service).with_upgrades();
                    serve_until(connection, &stop, |c| c.graceful_shutdown()).await;
                }
                Version::Either => {
                    // Boxed: held inline, this larger connection (either version) would set
                    // the size of every connection's task, HTTP/1 ones included.
                    let connection = Box::pin(either.serve_connection_with_upgrades(io, service));
                    serve_until(connection, &stop, |c| {
                        c.get_mut().as_mut().graceful_shutdown()
                    })
                    .await;
                }
            }
            drop(slot);
        });
    }
    open.close();
    open.wait().await;
}

/// Serves `connection` to its end, or, once `stop` is cancelled, asks it to finish its
/// requests and waits for that.
///
/// Not an `async fn`, and the connection is `Unpin` rather than pinned here: either would
/// keep a second copy of it in every connection's task (an `async fn` stores its argument
/// and the body's local apart, rust-lang/rust#62958; pinning moves it into a new local).
#[allow(clippy::manual_async_fn)] // Measured: 104 bytes more per connection as an `async fn`.
fn serve_until<'a, C: Future + Unpin + 'a>(
    mut connection: C,
    stop: &'a CancellationToken,
    graceful_shutdown: impl FnOnce(Pin<&mut C>) + 'a,
) -> impl Future<Output = ()> + 'a {
    async move {
        tokio::select! {
            _ = &mut connection => {}
            _ = stop.cancelled() => {
                graceful_shutdown(Pin::new(&mut connection));
                // By reference: awaiting it by value would move it into a second copy.
                let _ = (&mut connection).await;
            }
        }
    }
}

/// How a connection is served, told from its first bytes.
enum Version {
    /// An HTTP/1 request line: hyper's HTTP/1 connection, directly.
    Http1,
    /// Perhaps HTTP/2 with prior knowledge (`PRI * HTTP/2.0...`): hyper-util's builder that
    /// reads the preface and serves either version. It costs a second read buffer on HTTP/1
    /// (the preface it read is handed back first, so hyper's 8 KiB buffer grows to 16 KiB),
    /// which is why HTTP/1 connections, nearly all of them, do not go through it.
    Either,
}

/// Waits until the client sends something and peeks at it (`None`: it sent nothing in time,
/// or left). Nothing is consumed: hyper reads the same bytes.
async fn first_bytes(stream: &TcpStream, within: Duration) -> Option<Version> {
    let mut start = [0u8; 3];
    match tokio::time::timeout(within, stream.peek(&mut start)).await {
        Ok(Ok(n)) if n > 0 && b"PRI".starts_with(&start[..n]) => Some(Version::Either),
        Ok(Ok(n)) if n > 0 => Some(Version::Http1),
        _ => None,
    }
}

/// The answer to a connection beyond the cap: a `503` problem, then close. Written without
/// parsing the request: this connection must cost as little as possible.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = format!(
        "{{\"type\":\"urn:agent-bridge:problem:overloaded\",\"title\":\"Service Unavailable\",\
         \"status\":503,\"detail\":\"this bridge serves {max} connections at once; retry shortly\",\
         \"code\":\"UNAVAILABLE\",\"retry_after\":1}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Read what the client already sent, so closing does not reset the connection
        // before it has read the answer.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Backing off while `accept` fails: at the descriptor limit (EMFILE/ENFILE) or out of
/// buffers, retrying at once would spin and log without end; waiting lets connections close.
#[derive(Default)]
struct Backoff {
    delay: Duration,
    logged: Option<Instant>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }

    async fn wait(&mut self, error: &std::io::Error) {
        // A connection reset before it was accepted is the client's business.
        if matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        if self
            .logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(30))
        {
            self.logged = Some(Instant::now());
            tracing::warn!(%error, "cannot accept connections (open-file limit?); backing off");
        }
        tokio::time::sleep(self.delay).await;
    }
}
