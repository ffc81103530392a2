//! Ed25519 keys and detached signatures for bundles and publish indexes.
//!
//! Keys are stored as PEM: the private key as PKCS#8 (`PRIVATE KEY`), the
//! public key as SubjectPublicKeyInfo (`PUBLIC KEY`), so `openssl pkey` and
//! HSM tooling read them too. A signature travels as a [`SignatureBlock`]:
//! the signer's 8-byte [`KeyId`] and the 64-byte signature.
//!
//! Every signed message is prefixed with a context string ([`Purpose`]), so a
//! bundle signature can never be replayed as an index signature or the
//! reverse. Verification uses `verify_strict` (rejects small-order keys and
//! malleable signatures).

use std::fmt;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use ed25519_dalek::{SigningKey as PrivateKey, VerifyingKey as PublicKey};

/// Length of an encoded [`SignatureBlock`].
pub const SIGNATURE_BLOCK_LEN: usize = 8 + 64;

/// What a signature vouches for; each has its own context prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The manifest of a format-2 bundle.
    BundleManifest,
    /// A publish `index.json`.
    Index,
}

impl Purpose {
    fn context(self) -> &'static [u8] {
        match self {
            Purpose::BundleManifest => b"sandgate bundle manifest v2\0",
            Purpose::Index => b"sandgate publish index v1\0",
        }
    }

    fn message(self, bytes: &[u8]) -> Vec<u8> {
        let ctx = self.context();
        let mut m = Vec::with_capacity(ctx.len() + bytes.len());
        m.extend_from_slice(ctx);
        m.extend_from_slice(bytes);
        m
    }
}

/// First 8 bytes of the SHA-256 of a public key: names the signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A detached signature and the id of the key that made it.
///
/// The key id is not authenticated; it only lets [`verify`] tell "signed by
/// another key" from "signature does not match". Both are refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureBlock {
    pub key_id: KeyId,
    pub signature: [u8; 64],
}

impl SignatureBlock {
    /// The 72-byte encoding: key id, then signature.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BLOCK_LEN] {
        let mut out = [0u8; SIGNATURE_BLOCK_LEN];
        out[..8].copy_from_slice(&self.key_id.0);
        out[8..].copy_from_slice(&self.signature);
        out
    }

    /// Decode; `None` unless exactly [`SIGNATURE_BLOCK_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SIGNATURE_BLOCK_LEN {
            return None;
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[8..]);
        Some(Self {
            key_id: KeyId(key_id),
            signature,
        })
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("signed by key {signed_by}, not by the expected key {expected}")]
    WrongKey { signed_by: KeyId, expected: KeyId },
    #[error("signature does not match the signed bytes (key {key})")]
    BadSignature { key: KeyId },
}

/// Sign `bytes` for `purpose`.
pub fn sign(key: &SigningKey, purpose: Purpose, bytes: &[u8]) -> SignatureBlock {
    let sig: Signature = key.sign(&purpose.message(bytes));
    SignatureBlock {
        key_id: KeyId::of(&key.verifying_key()),
        signature: sig.to_bytes(),
    }
}

/// Check `block` over `bytes` for `purpose` against `key`.
pub fn verify(
    key: &VerifyingKey,
    purpose: Purpose,
    bytes: &[u8],
    block: &SignatureBlock,
) -> Result<(), VerifyError> {
    let expected = KeyId::of(key);
    if block.key_id != expected {
        return Err(VerifyError::WrongKey {
            signed_by: block.key_id,
            expected,
        });
    }
    let sig = Signature::from_bytes(&block.signature);
    key.verify_strict(&purpose.message(bytes), &sig)
        .map_err(|_| VerifyError::BadSignature { key: expected })
}

/// Why a key could not be made, read or written. Names the file.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM {what} Ed25519 key: {reason}")]
    Format {
        path: String,
        what: &'static str,
        reason: String,
    },
}

/// A fresh signing key from the operating system's random source.
pub fn generate_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn format_err(path: &Path, what: &'static str, reason: impl fmt::Display) -> KeyError {
    KeyError::Format {
        path: path.display().to_string(),
        what,
        reason: reason.to_string(),
    }
}

/// The private key as PKCS#8 PEM.
pub fn private_key_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| format_err(Path::new("<memory>"), "private", e))
}

/// The public key as SubjectPublicKeyInfo PEM.
pub fn public_key_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| format_err(Path::new("<memory>"), "public", e))
}

/// Read a PKCS#8 PEM private key file.
pub fn read_private_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| format_err(path, "private", e))
}

/// Read a public key file (SubjectPublicKeyInfo PEM).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| format_err(path, "public", e))
}

/// Write `key` to `path` readable by the owner only (mode 0600 on Unix);
/// refuses to overwrite an existing file.
pub fn write_private_key(key: &SigningKey, path: &Path) -> Result<(), KeyError> {
    use std::io::Write;
    let pem = private_key_pem(key)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(io(path))?;
    file.write_all(pem.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Write the public half of a key; refuses to overwrite an existing file.
pub fn write_public_key(key: &VerifyingKey, path: &Path) -> Result<(), KeyError> {
    use std::io::Write;
    let pem = public_key_pem(key)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(path))?;
    file.write_all(pem.as_bytes()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_purpose_and_bytes() {
        let k = key(1);
        let block = sign(&k, Purpose::BundleManifest, b"manifest");
        let vk = k.verifying_key();
        assert_eq!(
            verify(&vk, Purpose::BundleManifest, b"manifest", &block),
            Ok(())
        );
        assert!(matches!(
            verify(&vk, Purpose::BundleManifest, b"manifesT", &block),
            Err(VerifyError::BadSignature { .. })
        ));
        assert!(matches!(
            verify(&vk, Purpose::Index, b"manifest", &block),
            Err(VerifyError::BadSignature { .. })
        ));
        assert!(matches!(
            verify(
                &key(2).verifying_key(),
                Purpose::BundleManifest,
                b"manifest",
                &block
            ),
            Err(VerifyError::WrongKey { .. })
        ));
    }

    #[test]
    fn keys_round_trip_through_pem_files_and_the_private_one_is_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = generate_key().expect("random");
        let sk = dir.path().join("k.pem");
        let pk = dir.path().join("k.pub.pem");
        write_private_key(&k, &sk).expect("write");
        write_public_key(&k.verifying_key(), &pk).expect("write");
        assert_eq!(
            read_private_key(&sk).expect("read").to_bytes(),
            k.to_bytes()
        );
        assert_eq!(read_public_key(&pk).expect("read"), k.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&sk).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_private_key(&k, &sk).is_err(), "never overwrites");
        let e = read_public_key(&sk).expect_err("private is not public");
        assert!(e.to_string().contains("k.pem"), "{e}");
    }
}
