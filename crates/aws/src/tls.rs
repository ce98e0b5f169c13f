//! Which root certificates the SDK's HTTPS client trusts, and the client itself.

use crate::Error;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The Amazon Trust Services roots that the `aws` partition's service endpoints chain
/// to; see `certs/PROVENANCE.md`.
const AMAZON_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Which root certificates the HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// The five Amazon Trust Services roots, compiled in. The functions' default: no
    /// filesystem scan at cold start, and no other CA can vouch for an AWS endpoint.
    Amazon,
    /// The platform's store (`SSL_CERT_FILE`, `/etc/ssl/certs`, ...): for operators'
    /// machines behind TLS-inspecting proxies, and partitions whose endpoints do not
    /// chain to Amazon Trust Services.
    System,
}

/// The HTTPS client every SDK client shares.
pub(crate) fn https_client(roots: TlsRoots) -> Result<SharedHttpClient, Error> {
    use aws_smithy_http_client::tls;
    let store = match roots {
        TlsRoots::Amazon => tls::TrustStore::empty().with_pem_certificate(AMAZON_ROOTS),
        TlsRoots::System => tls::TrustStore::default(),
    };
    let context = tls::TlsContext::builder()
        .with_trust_store(store)
        .build()
        .map_err(|e| Error::Config(format!("TLS context: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    /// SHA-256 of each root's DER, in file order; `certs/PROVENANCE.md` lists the same.
    const FINGERPRINTS: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
    ];

    #[test]
    fn the_compiled_in_roots_are_the_amazon_trust_services_roots() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let got: Vec<String> = certs
            .iter()
            .map(|c| {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, c)
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(got, FINGERPRINTS);
        for c in &certs {
            webpki::anchor_from_trusted_cert(c).expect("a usable trust anchor");
        }
        assert!(https_client(TlsRoots::Amazon).is_ok());
    }
}
