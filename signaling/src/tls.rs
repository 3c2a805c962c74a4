//! The process-wide rustls crypto provider for outgoing HTTPS (webhooks): *ring*, the only provider compiled in
//! (webrtc-rs uses it too; with two providers rustls refuses to choose). reqwest is built without a provider of
//! its own, so this must run before an HTTP client is built; it is idempotent.

/// Installs *ring* as the process default provider unless one is installed already.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_http_client_can_be_built_after_installing() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        reqwest::Client::builder()
            .build()
            .expect("reqwest builds with the installed provider");
    }
}
