//! Keys kept in the data dir, and what they protect: access JWTs (HS256, signed
//! with `DOCKHAND_JWT_SECRET` or `DATA_DIR/jwt.key`) and users' GitHub tokens
//! (ChaCha20-Poly1305, with `DATA_DIR/secret.key`). Key files are mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::KeyInit;
use chacha20poly1305::aead::Aead;
use hmac::Hmac;
use hmac::Mac;
use rand::RngCore;
use serde::Deserialize;
use serde::Serialize;
use sha2::Sha256;

/// A secret string whose Debug shows nothing.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A key is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Why an access token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT this server makes.
    #[error("malformed access token")]
    Malformed,
    /// The signature does not match.
    #[error("access token signature does not match")]
    BadSignature,
    /// Past its expiry.
    #[error("access token expired")]
    Expired,
}

/// The claims of an access JWT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: i64,
    /// The session it belongs to (revoking the session revokes the token).
    pub sid: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// The coordinator's keys.
pub struct Keys {
    jwt: Vec<u8>,
    cipher: ChaCha20Poly1305,
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    b
}

/// Reads a hex key file, creating it (0600) with 32 random bytes when missing.
fn key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |e| KeyError::Io {
        path: path.display().to_string(),
        source: e,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| {
                KeyError::Invalid(format!(
                    "{} does not hold a 32-byte hex key",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_bytes(32);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            f.write_all(hex::encode(&key).as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

impl Keys {
    /// Loads (or creates) the keys. `jwt_secret` (from `DOCKHAND_JWT_SECRET`) wins over the file.
    pub fn load(data_dir: &Path, jwt_secret: &Secret) -> Result<Keys, KeyError> {
        let jwt = if jwt_secret.0.is_empty() {
            key_file(&data_dir.join("jwt.key"))?
        } else if jwt_secret.0.len() < 32 {
            return Err(KeyError::Invalid(
                "DOCKHAND_JWT_SECRET must be at least 32 characters".into(),
            ));
        } else {
            jwt_secret.0.as_bytes().to_vec()
        };
        let data = key_file(&data_dir.join("secret.key"))?;
        let cipher = ChaCha20Poly1305::new_from_slice(&data[..32])
            .map_err(|_| KeyError::Invalid("secret.key has the wrong length".into()))?;
        Ok(Keys { jwt, cipher })
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.jwt).unwrap_or_else(|_| unreachable!())
    }

    /// A signed access JWT.
    pub fn sign_access(&self, claims: &AccessClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing = format!("{header}.{body}");
        let mut mac = self.mac();
        mac.update(signing.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing}.{sig}")
    }

    /// Checks an access JWT's algorithm, signature (in constant time) and expiry.
    pub fn verify_access(&self, token: &str, now: u64) -> Result<AccessClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(TokenError::Malformed)?;
        if header["alg"] != "HS256" {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(format!("{}.{body}", token.split('.').next().unwrap_or("")).as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: AccessClaims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Encrypts a secret for storage: base64url(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = random_bytes(12);
        let sealed = self
            .cipher
            .encrypt(
                chacha20poly1305::Nonce::from_slice(&nonce),
                plaintext.as_bytes(),
            )
            .unwrap_or_default();
        URL_SAFE_NO_PAD.encode([nonce, sealed].concat())
    }

    /// Decrypts what [`Keys::seal`] made; `None` if it was tampered with or the key changed.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(chacha20poly1305::Nonce::from_slice(nonce), ct)
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path) -> Keys {
        Keys::load(dir, &Secret::default()).unwrap()
    }

    #[test]
    fn jwts_verify_and_refuse_tampering_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path());
        let claims = AccessClaims {
            sub: 7,
            sid: "s1".into(),
            iat: 100,
            exp: 200,
        };
        let t = k.sign_access(&claims);
        assert_eq!(k.verify_access(&t, 150), Ok(claims.clone()));
        assert_eq!(k.verify_access(&t, 200), Err(TokenError::Expired));
        let mut forged = claims.clone();
        forged.sub = 1;
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<&str> = t.split('.').collect();
        let tampered = format!("{}.{forged_body}.{}", parts[0], parts[2]);
        assert_eq!(
            k.verify_access(&tampered, 150),
            Err(TokenError::BadSignature)
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(k.verify_access(&none, 150), Err(TokenError::Malformed));
        assert_eq!(k.verify_access("junk", 150), Err(TokenError::Malformed));
        // Another server's key does not verify it.
        let other = tempfile::tempdir().unwrap();
        assert_eq!(
            keys(other.path()).verify_access(&t, 150),
            Err(TokenError::BadSignature)
        );
        // The key persists across loads, and the file is private.
        assert_eq!(keys(dir.path()).verify_access(&t, 150), Ok(claims));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn sealed_secrets_round_trip_and_hide_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path());
        let sealed = k.seal("gho_canary");
        assert!(!sealed.contains("gho_canary"));
        assert_eq!(k.open(&sealed).as_deref(), Some("gho_canary"));
        assert_ne!(k.seal("gho_canary"), sealed, "a fresh nonce each time");
        let mut bad = sealed.into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(k.open(&String::from_utf8(bad).unwrap()), None);
        assert!(Keys::load(dir.path(), &Secret("short".into())).is_err());
    }
}
