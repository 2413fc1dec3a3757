//! Signing keys in cosign's file formats: an ECDSA P-256 private key as PKCS#8 DER,
//! encrypted with a password (scrypt key derivation, NaCl secretbox) in a PEM block
//! `ENCRYPTED SIGSTORE PRIVATE KEY` whose body is the JSON envelope of
//! go-securesystemslib's `encrypted` package; the public key as a PEM
//! `PUBLIC KEY` (SubjectPublicKeyInfo). cosign, skopeo and podman read both.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// PEM label of an encrypted private key as cosign 2 and containers/image write it.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of an encrypted private key as cosign 1 wrote it (still read).
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// PEM label of a public key (SubjectPublicKeyInfo).
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// The scrypt cost flense writes (N = 2^15, r = 8, p = 1): go-securesystemslib's
/// "legacy" set, which every cosign and containers/image version reads.
const SCRYPT_LOG_N: u8 = 15;
/// The costliest N read: newer cosign writes N = 2^16, the "OWASP" set is 2^17.
const MAX_SCRYPT_LOG_N: u8 = 17;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";

/// Why a key could not be written, read or decrypted. Messages name the file, never
/// the password.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file cannot be created, written or read.
    #[error("{path}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `key generate` would replace an existing file.
    #[error("{path} already exists: not overwriting it")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file is not a key in a format this reader knows.
    #[error("{what}: {reason}")]
    Format {
        /// The file (or "private key" for bytes without a file).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The password does not open the private key (or the file was altered).
    #[error("{what}: wrong password, or the encrypted key is corrupt")]
    WrongPassword {
        /// The key file.
        what: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "base64_bytes")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "base64_bytes")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "base64_bytes")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` in JSON: standard base64 with padding.
mod base64_bytes {
    use base64::Engine;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        super::BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A new random P-256 signing key.
pub fn generate() -> SigningKey {
    SigningKey::random(&mut OsRng)
}

/// `key` as an encrypted PEM private key (`ENCRYPTED SIGSTORE PRIVATE KEY`).
pub fn encrypt_private_key(key: &SigningKey, password: &[u8]) -> Result<String, KeyError> {
    let format = |reason: String| KeyError::Format {
        what: "private key".into(),
        reason,
    };
    let der = key
        .to_pkcs8_der()
        .map_err(|e| format(format!("cannot encode as PKCS#8: {e}")))?;
    let mut salt = vec![0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut nonce = vec![0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let secret = derive_key(password, &salt, 1 << SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
        .map_err(|reason| format(reason.to_string()))?;
    let ciphertext = XSalsa20Poly1305::new(Key::from_slice(&secret))
        .encrypt(Nonce::from_slice(&nonce), der.as_bytes())
        .map_err(|_| format("encryption failed".into()))?;
    let envelope = Envelope {
        kdf: Kdf {
            name: KDF_NAME.into(),
            params: ScryptParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt,
        },
        cipher: Cipher {
            name: CIPHER_NAME.into(),
            nonce,
        },
        ciphertext,
    };
    let json = serde_json::to_vec(&envelope).expect("the envelope serialises");
    pem_rfc7468::encode_string(SIGSTORE_PRIVATE_KEY_LABEL, LineEnding::LF, &json)
        .map_err(|e| format(format!("cannot encode PEM: {e}")))
}

/// Opens an encrypted PEM private key (either label) with `password`; `what` names the
/// key in errors.
pub fn decrypt_private_key(pem: &str, password: &[u8], what: &str) -> Result<SigningKey, KeyError> {
    let format = |reason: String| KeyError::Format {
        what: what.to_string(),
        reason,
    };
    let (label, json) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
        .map_err(|e| format(format!("not a PEM file: {e}")))?;
    if label != SIGSTORE_PRIVATE_KEY_LABEL && label != COSIGN_PRIVATE_KEY_LABEL {
        return Err(format(format!(
            "PEM block {label:?} is not an encrypted cosign/sigstore private key"
        )));
    }
    let envelope: Envelope = serde_json::from_slice(&json)
        .map_err(|e| format(format!("bad encrypted-key envelope: {e}")))?;
    if envelope.kdf.name != KDF_NAME || envelope.cipher.name != CIPHER_NAME {
        return Err(format(format!(
            "unsupported encryption {}/{} (only scrypt/nacl/secretbox)",
            envelope.kdf.name, envelope.cipher.name
        )));
    }
    if envelope.cipher.nonce.len() != NONCE_LEN {
        return Err(format("secretbox nonce is not 24 bytes".into()));
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    let secret =
        derive_key(password, &envelope.kdf.salt, n, r, p).map_err(|r| format(r.to_string()))?;
    let der = XSalsa20Poly1305::new(Key::from_slice(&secret))
        .decrypt(
            Nonce::from_slice(&envelope.cipher.nonce),
            envelope.ciphertext.as_slice(),
        )
        .map_err(|_| KeyError::WrongPassword {
            what: what.to_string(),
        })?;
    SigningKey::from_pkcs8_der(&der)
        .map_err(|e| format(format!("not a PKCS#8 ECDSA P-256 key: {e}")))
}

/// scrypt with the envelope's parameters. N must be a power of two no costlier than
/// go-securesystemslib's sets, so a hostile key file cannot make us allocate gigabytes.
fn derive_key(
    password: &[u8],
    salt: &[u8],
    n: u64,
    r: u32,
    p: u32,
) -> Result<Vec<u8>, &'static str> {
    if !n.is_power_of_two()
        || !(2..=1 << MAX_SCRYPT_LOG_N).contains(&n)
        || r != SCRYPT_R
        || p != SCRYPT_P
    {
        return Err("unsupported scrypt parameters (cosign's are N=32768..131072, r=8, p=1)");
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, KEY_LEN)
        .map_err(|_| "invalid scrypt parameters")?;
    let mut out = vec![0u8; KEY_LEN];
    scrypt::scrypt(password, salt, &params, &mut out)
        .map_err(|_| "invalid scrypt output length")?;
    Ok(out)
}

/// `key` as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("a P-256 public key encodes as SubjectPublicKeyInfo")
}

/// Parses a PEM `PUBLIC KEY` holding an ECDSA P-256 key; `what` names it in errors.
pub fn parse_public_key(pem: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    let format = |reason: String| KeyError::Format {
        what: what.to_string(),
        reason,
    };
    match pem_rfc7468::decode_label(pem.trim().as_bytes()) {
        Ok(PUBLIC_KEY_LABEL) => {}
        Ok(label) => {
            return Err(format(format!(
                "PEM block {label:?} is not a {PUBLIC_KEY_LABEL:?} (give the .pub file)"
            )))
        }
        Err(e) => return Err(format(format!("not a PEM file: {e}"))),
    }
    VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|e| format(format!("not an ECDSA P-256 public key: {e}")))
}

/// Reads and parses the public key file `path`.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read_text(path)?;
    parse_public_key(&text, &path.display().to_string())
}

/// Reads the encrypted private key file `path` and opens it with `password`.
pub fn read_private_key(path: &Path, password: &[u8]) -> Result<SigningKey, KeyError> {
    let text = read_text(path)?;
    decrypt_private_key(&text, password, &path.display().to_string())
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The files `key generate PREFIX` writes: `PREFIX.key` and `PREFIX.pub`.
pub fn key_pair_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut name = prefix.as_os_str().to_os_string();
        name.push(ext);
        PathBuf::from(name)
    };
    (with(".key"), with(".pub"))
}

/// Generates a key pair and writes `PREFIX.key` (encrypted with `password`, mode 0600)
/// and `PREFIX.pub`; refuses to replace either file. Returns both paths.
pub fn write_key_pair(prefix: &Path, password: &[u8]) -> Result<(PathBuf, PathBuf), KeyError> {
    let (private_path, public_path) = key_pair_paths(prefix);
    for path in [&private_path, &public_path] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let key = generate();
    let private_pem = encrypt_private_key(&key, password)?;
    let public_pem = public_key_pem(key.verifying_key());
    write_new(&private_path, private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public_path, public_pem.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private_path);
        return Err(e);
    }
    Ok((private_path, public_path))
}

/// Creates `path` (failing if it exists) with `mode` and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_path_buf(),
        },
        _ => KeyError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_round_trips_and_rejects_a_wrong_password() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"secret").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(!pem.contains("secret"));
        let opened = decrypt_private_key(&pem, b"secret", "k").unwrap();
        assert_eq!(opened.verifying_key(), key.verifying_key());
        let err = decrypt_private_key(&pem, b"other", "k").unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
    }

    #[test]
    fn reads_the_cosign_1_label_and_refuses_other_pem() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"")
            .unwrap()
            .replace(SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL);
        decrypt_private_key(&pem, b"", "k").unwrap();
        let public = public_key_pem(key.verifying_key());
        let err = decrypt_private_key(&public, b"", "k.pub").unwrap_err();
        assert!(err.to_string().contains("\"PUBLIC KEY\""), "{err}");
        assert_eq!(
            parse_public_key(&public, "p").unwrap(),
            *key.verifying_key()
        );
    }

    #[test]
    fn refuses_costly_scrypt_parameters() {
        assert!(derive_key(b"", b"salt", 1 << 20, 8, 1).is_err());
        assert!(derive_key(b"", b"salt", 1 << 15, 64, 1).is_err());
        assert!(derive_key(b"", b"salt", 3000, 8, 1).is_err());
    }

    #[test]
    fn writes_private_key_0600_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        let (private, public) = write_key_pair(&prefix, b"pw").unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        read_public_key(&public).unwrap();
        read_private_key(&private, b"pw").unwrap();
        let err = write_key_pair(&prefix, b"pw").unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
    }
}
