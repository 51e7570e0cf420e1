//! Process signals that start a drain.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGTERM (Kubernetes) or ctrl-c (a terminal).
pub fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("ctrl-c received"),
            _ = term => tracing::info!("SIGTERM received"),
        }
        token.cancel();
    });
}
