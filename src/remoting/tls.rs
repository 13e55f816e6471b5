//! TLS to name servers and brokers, with rustls.
//!
//! Certificates are checked by default: the peer's chain must lead to a CA of `client.tls.ca-file`
//! (else of the operating system's trust store) and name the host dialled (or
//! `client.tls.server-name`). `client.tls.cert-file` + `client.tls.key-file` present a client
//! certificate (mutual TLS). `client.tls.insecure-skip-verify` turns the checks off, for tests
//! only, with a warning on every connection.
//!
//! How a TLS connection fits the connection layer: the handshake runs on the runtime, then a
//! runtime task pumps bytes between the TLS session and one end of a local socket pair, and the
//! ordinary [`Connection`] runs over the other end. So pipelining, the pending-request table,
//! broker-initiated requests, the blocking callers' read-your-own-reply path and close handling
//! exist once, for plaintext and TLS alike, and the plaintext path is not touched: a plaintext
//! connection has no pump and no socket pair. The pump costs a copy and a task wake-up per
//! direction, small beside the encryption itself.
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use super::command::SerializeType;
use super::connection::{connect_error, dial_tcp, Connection, RequestHandler};
use crate::error::{Error, Result};
use crate::runtime::Shared;

/// What the configuration says about TLS (the client.tls.* keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the CAs to trust; None: the operating system's trust store.
    pub ca_file: Option<String>,
    /// PEM certificate chain and private key of the client (mutual TLS).
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// The name the servers' certificates must carry, instead of the host dialled.
    pub server_name: Option<String>,
    /// No certificate checks at all (tests only).
    pub insecure_skip_verify: bool,
}

/// A ready rustls client configuration and the settings it was made from.
#[derive(Clone)]
pub struct Tls {
    settings: TlsSettings,
    connector: tokio_rustls::TlsConnector,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.settings.fmt(f)
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
    }
}

fn invalid(key: &str, value: &str, reason: impl fmt::Display) -> Error {
    Error::InvalidConfigValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Reads the files named by `settings` and builds the client configuration; a file that is
    /// missing or holds no certificate (or key) is an error naming its key.
    pub fn new(settings: TlsSettings) -> Result<Tls> {
        use crate::config::{TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE, TLS_SERVER_NAME};
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Protocol(format!("TLS set-up failed: {e}")))?;
        let builder = if settings.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            builder.with_root_certificates(root_store(&settings, TLS_CA_FILE)?)
        };
        let config = match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<std::result::Result<_, _>>())
                    .map_err(|e| invalid(TLS_CERT_FILE, cert, e))?;
                if chain.is_empty() {
                    return Err(invalid(
                        TLS_CERT_FILE,
                        cert,
                        "no PEM certificate in the file",
                    ));
                }
                let key_der =
                    PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(TLS_KEY_FILE, key, e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| invalid(TLS_KEY_FILE, key, e))?
            }
            (Some(cert), None) => {
                return Err(invalid(
                    TLS_CERT_FILE,
                    cert,
                    format!("a client certificate needs its private key in {TLS_KEY_FILE}"),
                ))
            }
            (None, Some(key)) => {
                return Err(invalid(
                    TLS_KEY_FILE,
                    key,
                    format!("a client key needs its certificate in {TLS_CERT_FILE}"),
                ))
            }
            (None, None) => builder.with_no_client_auth(),
        };
        if let Some(name) = &settings.server_name {
            ServerName::try_from(name.as_str()).map_err(|e| invalid(TLS_SERVER_NAME, name, e))?;
        }
        Ok(Tls {
            settings,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The name `addr`'s certificate must carry: client.tls.server-name, else its host.
    fn server_name(&self, addr: &str) -> Result<ServerName<'static>> {
        if let Some(name) = &self.settings.server_name {
            return ServerName::try_from(name.clone())
                .map_err(|e| connect_error(addr, format!("bad TLS server name: {e}")));
        }
        if let Some(sa) = super::addr::ip_socket_addr(addr) {
            return Ok(ServerName::IpAddress(sa.ip().into()));
        }
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ServerName::IpAddress(ip.into()));
        }
        ServerName::try_from(host.to_string())
            .map_err(|e| connect_error(addr, format!("not a TLS server name: {e}")))
    }

    /// Dials `addr`, completes the TLS handshake within `timeout`, and returns a connection
    /// whose bytes a runtime task carries through the TLS session.
    pub async fn connect(
        &self,
        shared: &Shared,
        addr: &str,
        timeout: Duration,
        ser: SerializeType,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Arc<Connection>> {
        let started = Instant::now();
        if self.settings.insecure_skip_verify {
            crate::log_warn!(
                "rmq::remoting",
                "TLS to {addr} WITHOUT certificate verification (client.tls.insecure-skip-verify=true): \
                 anyone on the path can read and change this traffic; for tests only"
            );
        }
        let name = self.server_name(addr)?;
        let tcp = dial_tcp(addr, timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        let tls = match tokio::time::timeout(left, self.connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(handshake_error(addr, &e)),
            Err(_) => {
                return Err(connect_error(
                    addr,
                    format!(
                        "no TLS handshake within {} ms (is TLS enabled on the server?)",
                        timeout.as_millis()
                    ),
                ))
            }
        };
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| connect_error(addr, e))?;
        theirs
            .set_nonblocking(true)
            .map_err(|e| connect_error(addr, e))?;
        let conn = Connection::start(shared, addr.to_string(), OwnedFd::from(ours), ser, handler)
            .map_err(|e| connect_error(addr, e))?;
        let _guard = shared.handle().enter();
        let theirs =
            tokio::net::UnixStream::from_std(theirs).map_err(|e| connect_error(addr, e))?;
        let (tls_read, tls_write) = tokio::io::split(tls);
        shared
            .handle()
            .spawn(pump(Arc::downgrade(&conn), tls_read, tls_write, theirs));
        Ok(conn)
    }
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Carries bytes between the TLS session and the connection's end of the socket pair until
/// either side ends; a TLS failure closes the connection with its reason.
async fn pump(
    conn: Weak<Connection>,
    mut tls_read: ReadHalf<TlsStream>,
    mut tls_write: WriteHalf<TlsStream>,
    local: tokio::net::UnixStream,
) {
    let (mut local_read, mut local_write) = local.into_split();
    let outgoing = async {
        let r = tokio::io::copy(&mut local_read, &mut tls_write).await;
        // The connection closed its end: say goodbye to the server (close_notify).
        let _ = tls_write.shutdown().await;
        r
    };
    let incoming = tokio::io::copy(&mut tls_read, &mut local_write);
    let reason = tokio::select! {
        r = outgoing => match r {
            Ok(_) => None,
            Err(e) => Some(format!("TLS write failed: {e}")),
        },
        r = incoming => match r {
            Ok(_) => Some("server closed the TLS session".to_string()),
            Err(e) => Some(format!("TLS read failed: {}", describe_io(&e))),
        },
    };
    if let (Some(reason), Some(conn)) = (reason, conn.upgrade()) {
        conn.close(&reason);
    }
}

fn describe_io(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe_tls(tls),
        None => e.to_string(),
    }
}

fn handshake_error(addr: &str, e: &io::Error) -> Error {
    let reason = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("TLS handshake failed: {}", describe_tls(tls)),
        None if e.kind() == io::ErrorKind::UnexpectedEof
            || e.kind() == io::ErrorKind::ConnectionReset =>
        {
            format!(
                "TLS handshake failed: the server closed the connection ({e}); it may not speak \
                 TLS, or it refused our client certificate (client.tls.cert-file)"
            )
        }
        None => format!("TLS handshake failed: {e}"),
    };
    connect_error(addr, reason)
}

/// rustls's error, with what to check for the usual certificate problems.
fn describe_tls(e: &rustls::Error) -> String {
    use rustls::{AlertDescription, CertificateError};
    let hint = match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            " (the server's certificate is not signed by a CA in client.tls.ca-file or the system trust store)"
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            " (the server's certificate does not carry the name checked: the host dialled, or client.tls.server-name when set)"
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            " (the server's certificate has expired)"
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
        | rustls::Error::AlertReceived(AlertDescription::BadCertificate)
        | rustls::Error::AlertReceived(AlertDescription::UnknownCA) => {
            " (the server refused our client certificate: set or check client.tls.cert-file and client.tls.key-file)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// The trusted CAs: client.tls.ca-file, else the operating system's.
fn root_store(settings: &TlsSettings, ca_key: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        Some(file) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
                .and_then(|it| it.collect::<std::result::Result<_, _>>())
                .map_err(|e| invalid(ca_key, file, e))?;
            if certs.is_empty() {
                return Err(invalid(ca_key, file, "no PEM certificate in the file"));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| invalid(ca_key, file, format!("unusable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "TLS is on but the system trust store has no CA certificate{}; set {ca_key}",
                    found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(roots)
}

/// client.tls.insecure-skip-verify: any certificate, any name. The handshake's signatures are
/// still checked, so the session is at least with the holder of the certificate shown.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_errors_that_name_their_key() {
        let err = Tls::new(TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("client.tls.ca-file"), "{err}");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let err = Tls::new(TlsSettings {
            insecure_skip_verify: true,
            cert_file: Some("/nonexistent/client.pem".into()),
            ..TlsSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("client.tls.key-file"), "{err}");
    }

    #[test]
    fn server_name_is_the_host_unless_configured() {
        let tls = Tls::new(TlsSettings {
            insecure_skip_verify: true,
            ..TlsSettings::default()
        })
        .unwrap();
        let ip = |s: &str| ServerName::IpAddress(s.parse::<IpAddr>().unwrap().into());
        assert_eq!(tls.server_name("127.0.0.1:9876").unwrap(), ip("127.0.0.1"));
        assert_eq!(tls.server_name("[::1]:9876").unwrap(), ip("::1"));
        assert_eq!(tls.server_name("::1:10911").unwrap(), ip("::1"));
        assert_eq!(
            tls.server_name("broker.example:10911").unwrap(),
            ServerName::try_from("broker.example").unwrap()
        );
        let named = Tls::new(TlsSettings {
            insecure_skip_verify: true,
            server_name: Some("mq.example".into()),
            ..TlsSettings::default()
        })
        .unwrap();
        assert_eq!(
            named.server_name("127.0.0.1:9876").unwrap(),
            ServerName::try_from("mq.example").unwrap()
        );
    }
}
