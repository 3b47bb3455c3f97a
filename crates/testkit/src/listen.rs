//! The fakes' listening sockets.

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use axum::serve::TapIo;
use tokio::net::TcpListener;
use tokio::net::TcpStream;

use crate::FakeError;

/// A listener whose accepted sockets have `TCP_NODELAY` set.
pub(crate) type Listener = TapIo<TcpListener, fn(&mut TcpStream)>;

/// Binds `addr` and returns the listener with the address it got. Without
/// `TCP_NODELAY`, a small write on a kept-alive connection waits for the
/// client's delayed ACK (about 40 ms on Linux) whenever one is outstanding.
pub(crate) async fn bind(addr: SocketAddr) -> Result<(Listener, SocketAddr), FakeError> {
    let bind_error = |source| FakeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener.tap_io(set_nodelay as fn(&mut TcpStream)), bound))
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
    }
}

#[cfg(test)]
#[path = "listen_tests.rs"]
mod tests;
