//! The functions' trust store, over real TLS: moto serves HTTPS on loopback with a
//! certificate from a throwaway CA. The compiled-in Amazon roots must refuse it; the
//! platform store (`TRIPWIRE_TLS_ROOTS=system`), pointed at that CA, must accept it.

use std::process::{Child, Command};
use tripwire_aws::{load_sdk_config, TlsRoots};
use tripwire_localstack::{free_port, venv_bin, wait_for_port};

/// Writes `ca.pem`, and `server.pem`/`server.key` for 127.0.0.1 signed by that CA.
const MAKE_CERTS: &str = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def cert(subject, key, issuer, issuer_key, ca):
    b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())
ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
ca = cert("tripwire test CA", ca_key, "tripwire test CA", ca_key, True)
leaf = cert("127.0.0.1", key, "tripwire test CA", ca_key, False)
pem = serialization.Encoding.PEM
open(f"{out}/ca.pem", "wb").write(ca.public_bytes(pem))
open(f"{out}/server.pem", "wb").write(leaf.public_bytes(pem))
open(f"{out}/server.key", "wb").write(key.private_bytes(
    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

/// Stops moto however the test ends.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_functions_trust_amazon_roots_only_unless_told_otherwise() {
    let dir = std::env::temp_dir().join(format!("tripwire-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = venv_bin();
    let made = Command::new(bin.join("python"))
        .args(["-c", MAKE_CERTS])
        .arg(&dir)
        .status()
        .expect("the virtualenv's python runs (`make setup`)");
    assert!(made.success(), "certificate generation failed");
    let port = free_port();
    let _moto = Server(
        Command::new(bin.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .arg("-c")
            .arg(dir.join("server.pem"))
            .arg("-k")
            .arg(dir.join("server.key"))
            .stdout(std::fs::File::create(dir.join("moto.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("moto.err")).unwrap())
            .spawn()
            .expect("moto_server starts"),
    );
    wait_for_port(port, "moto_server (TLS)", &dir);
    // This test binary is its own process, so the environment is the test's to set;
    // SSL_CERT_FILE is what the platform store reads first.
    for (k, v) in [
        ("AWS_ENDPOINT_URL", format!("https://127.0.0.1:{port}")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIATLS".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("SSL_CERT_FILE", dir.join("ca.pem").display().to_string()),
    ] {
        std::env::set_var(k, v);
    }
    std::env::remove_var("AWS_PROFILE");

    let amazon = load_sdk_config(TlsRoots::Amazon).await.unwrap();
    let refused = aws_sdk_sts::Client::new(&amazon)
        .get_caller_identity()
        .send()
        .await
        .expect_err("a certificate from outside Amazon Trust Services is refused");
    let why = format!("{refused:?}");
    assert!(why.contains("UnknownIssuer"), "{why}");

    let system = load_sdk_config(TlsRoots::System).await.unwrap();
    let me = aws_sdk_sts::Client::new(&system)
        .get_caller_identity()
        .send()
        .await
        .expect("the platform store, given the CA, accepts the server");
    assert_eq!(me.account(), Some("123456789012"));
}
