//! TLS for `https://` endpoints (the `tls` feature): rustls with the `ring` provider, Mozilla's
//! root certificates (webpki-roots) plus any the caller adds. No OpenSSL.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::PushError;

/// A client configuration: the trusted roots, and the protocols rustls deems safe.
#[derive(Clone)]
pub(crate) struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Trusts Mozilla's roots and the PEM certificates in `extra_roots` (a private CA).
    pub(crate) fn new(extra_roots: &[Vec<u8>]) -> Result<Self, PushError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for pem in extra_roots {
            let mut found = false;
            for certificate in CertificateDer::pem_slice_iter(pem) {
                let certificate = certificate.map_err(|e| {
                    PushError::Tls(format!("a root certificate is not valid PEM: {e}"))
                })?;
                roots
                    .add(certificate)
                    .map_err(|e| PushError::Tls(format!("a root certificate is refused: {e}")))?;
                found = true;
            }
            if !found {
                return Err(PushError::Tls(
                    "no PEM certificate found in the root certificates given".to_owned(),
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PushError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Connects TLS over `stream` to `host`, checking its certificate.
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, PushError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| PushError::Tls(format!("{host:?} is not a valid TLS server name")))?;
        TlsConnector::from(Arc::clone(&self.config))
            .connect(name, stream)
            .await
            .map_err(
                |e| match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                    // The server's certificate or the handshake: not something a retry fixes.
                    Some(tls) => PushError::Tls(tls.to_string()),
                    None => PushError::Connect(e),
                },
            )
    }
}
