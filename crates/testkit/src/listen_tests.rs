use axum::serve::Listener as _;

use super::*;

#[tokio::test]
async fn accepted_sockets_have_nodelay() {
    let (mut listener, addr) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (accepted, peer) = listener.accept().await;
    assert_eq!(peer, client.local_addr().unwrap());
    assert!(accepted.nodelay().unwrap());
    assert!(!client.nodelay().unwrap(), "the default is off");
}
