//! The HTTP accept loop, with the limits `axum::serve` doesn't have: a cap on open
//! connections, a deadline for a request's headers (which is also how long an idle
//! keep-alive connection may wait for its next request), and a deadline for shutdown.
//!
//! Without them one client could hold connections open forever with a few bytes of headers
//! (slowloris), and a single such connection held SIGTERM for as long as it liked.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy terminates, and
//! proxies talk HTTP/1.1 to their upstream. Cleartext HTTP/2 would be attack surface nobody
//! uses.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The connection limits (`HTTP_*` and `SHUTDOWN_TIMEOUT_SECS` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this; an idle keep-alive connection is closed
    /// after it too.
    pub header_timeout: Duration,
    /// Open HTTP connections at most; past it new ones wait in the kernel's backlog. An
    /// upgraded WebSocket no longer counts (its own limits are per user).
    pub max_connections: usize,
    /// After the shutdown signal, requests in flight get this long; then they are cut.
    pub shutdown_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets
/// requests in flight finish for up to [`HttpLimits::shutdown_timeout`] and cuts the rest.
///
/// # Errors
/// Never today: a failed `accept` (out of file descriptors, say) is logged and retried, as
/// one bad connection must not stop the listener.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Wait for room under the cap first: while it is full the kernel queues new
        // connections instead of us holding more sockets.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set doesn't grow with the server's age.
        while connections.try_join_next().is_some() {}
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // EMFILE and friends: back off a little rather than spin.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let stop = stop_rx.clone();
        connections.spawn(async move {
            serve_connection(stream, remote, app, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open,
            left = connections.len(),
            timeout_secs = limits.shutdown_timeout.as_secs(),
            "HTTP connections still open at the shutdown deadline; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` would add: handlers read the peer.
        request.extensions_mut().insert(ConnectInfo(remote));
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await;
            Ok::<_, Infallible>(match response {
                Ok(response) => response,
                Err(never) => match never {},
            })
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // `wait_for`'s guard isn't `Send`; `changed` is enough: the value only goes to true.
        _ = stop.changed() => {
            // Finish the request in flight (if any), then close; an idle connection closes
            // at once.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        // Timeouts, resets, malformed requests: the client's business, not an alarm.
        tracing::debug!(%remote, error = %err, "HTTP connection ended with an error");
    }
}
