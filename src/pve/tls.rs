//! TLS setup: verification against system roots (+ extra CA), SHA-256 leaf pinning, or
//! explicitly insecure. Always uses the `ring` crypto provider.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};

use super::error::Error;

/// How the server certificate is checked.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Verify the chain and host name against the system roots plus an optional extra CA
    /// bundle (PEM). The default.
    Verify {
        /// Extra trusted CA certificates, PEM (e.g. the cluster's `pve-root-ca.pem`).
        extra_ca_pem: Option<String>,
    },
    /// Accept exactly the leaf certificate(s) with this SHA-256 fingerprint, `AB:CD:...` or
    /// plain hex, case-insensitive. Several fingerprints (one per node) may be separated by
    /// `,`, `;` or whitespace. Host names are not checked (nodes are often addressed by IP).
    Fingerprint(String),
    /// Accept any certificate. For tests and labs only.
    Insecure,
}

impl Default for TlsMode {
    fn default() -> Self {
        TlsMode::Verify { extra_ca_pem: None }
    }
}

impl fmt::Debug for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsMode::Verify { extra_ca_pem } => f
                .debug_struct("Verify")
                .field(
                    "extra_ca_pem",
                    &extra_ca_pem.as_ref().map(|p| format!("<{} bytes>", p.len())),
                )
                .finish(),
            TlsMode::Fingerprint(fp) => f.debug_tuple("Fingerprint").field(fp).finish(),
            TlsMode::Insecure => f.write_str("Insecure"),
        }
    }
}

/// Formats 32 bytes as `AB:CD:...`.
pub fn format_fingerprint(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// SHA-256 fingerprint of a DER certificate, `AB:CD:...`.
pub fn cert_fingerprint(der: &[u8]) -> String {
    format_fingerprint(&Sha256::digest(der))
}

/// Parses one fingerprint (`AB:CD:..` or hex, any case) into 32 bytes.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], Error> {
    let hex_str: String = s.trim().chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hex_str).map_err(|e| Error::Config {
        message: format!("invalid fingerprint {s:?}: {e}"),
    })?;
    bytes.try_into().map_err(|_| Error::Config {
        message: format!("invalid fingerprint {s:?}: expected 32 bytes (SHA-256)"),
    })
}

fn parse_fingerprints(s: &str) -> Result<Vec<[u8; 32]>, Error> {
    let fps = s
        .split([',', ';', ' ', '\t', '\n'])
        .filter(|p| !p.trim().is_empty())
        .map(parse_fingerprint)
        .collect::<Result<Vec<_>, _>>()?;
    if fps.is_empty() {
        return Err(Error::Config {
            message: "empty fingerprint".to_string(),
        });
    }
    Ok(fps)
}

/// The error carried inside rustls when a pinned fingerprint does not match.
#[derive(Debug)]
pub(crate) struct FingerprintMismatch {
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate fingerprint mismatch: expected {}, got {}",
            self.expected, self.actual
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

#[derive(Debug)]
struct PinnedVerifier {
    fingerprints: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
    insecure: bool,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.fingerprints.contains(&actual) {
            Ok(ServerCertVerified::assertion())
        } else {
            let expected = self
                .fingerprints
                .iter()
                .map(|f| format_fingerprint(f))
                .collect::<Vec<_>>()
                .join(",");
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(FingerprintMismatch {
                    expected,
                    actual: format_fingerprint(&actual),
                }),
            ))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Builds the rustls client configuration for a [`TlsMode`] (ring provider, HTTP/1.1 ALPN).
pub(crate) fn client_config(mode: &TlsMode) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config {
            message: format!("TLS setup: {e}"),
        })?;
    let mut config = match mode {
        TlsMode::Verify { extra_ca_pem } => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for err in &native.errors {
                tracing::debug!(error = %err, "could not load some system CA certificates");
            }
            let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
            if let Some(pem) = extra_ca_pem {
                let mut n = 0;
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| Error::Config {
                        message: format!("extra CA PEM: {e}"),
                    })?;
                    roots.add(cert).map_err(|e| Error::Config {
                        message: format!("extra CA PEM: {e}"),
                    })?;
                    n += 1;
                }
                if n == 0 {
                    return Err(Error::Config {
                        message: "extra CA PEM contains no certificate".to_string(),
                    });
                }
            }
            if roots.is_empty() {
                return Err(Error::Config {
                    message: "no trusted CA certificates: system store is empty and no extra CA given".to_string(),
                });
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::Config {
                    message: format!("TLS verifier: {e}"),
                })?;
            builder.with_webpki_verifier(verifier).with_no_client_auth()
        }
        TlsMode::Fingerprint(fp) => {
            let fingerprints = parse_fingerprints(fp)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    fingerprints,
                    provider,
                    insecure: false,
                }))
                .with_no_client_auth()
        }
        TlsMode::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                fingerprints: Vec::new(),
                provider,
                insecure: true,
            }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Finds a rustls error anywhere in an error's source chain (including inside `io::Error`).
fn find_rustls_error(err: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.clone());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                let inner: &(dyn std::error::Error + 'static) = inner;
                if let Some(r) = find_rustls_error(inner) {
                    return Some(r);
                }
            }
        }
        cur = e.source();
    }
    None
}

/// Maps a transport error to a TLS error variant, if it was a TLS failure.
pub(crate) fn tls_error(err: &(dyn std::error::Error + 'static), endpoint: &str) -> Option<Error> {
    let r = find_rustls_error(err)?;
    let endpoint = endpoint.to_string();
    Some(match &r {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            match other.0.downcast_ref::<FingerprintMismatch>() {
                Some(m) => Error::TlsFingerprintMismatch {
                    endpoint,
                    expected: m.expected.clone(),
                    actual: m.actual.clone(),
                },
                None => Error::Tls {
                    endpoint,
                    message: r.to_string(),
                },
            }
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => Error::TlsUnknownCa {
            endpoint,
            message: r.to_string(),
        },
        _ => Error::Tls {
            endpoint,
            message: r.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_accepted_with_colons_or_plain_hex_in_any_case() {
        let colon = "5F:40:6C:F3:29:55:81:AB:2E:20:DB:C5:DE:CB:5C:0F:37:F0:80:FB:B3:52:A2:A9:F6:4E:C7:11:80:8A:7F:23";
        let a = parse_fingerprint(colon).unwrap();
        let b = parse_fingerprint(&colon.replace(':', "").to_lowercase()).unwrap();
        assert_eq!(a, b);
        assert_eq!(format_fingerprint(&a), colon);
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprints(&format!("{colon}, {colon}")).unwrap().len() == 2);
    }
}
