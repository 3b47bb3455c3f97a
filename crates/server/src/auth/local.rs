//! Local auth: the admin token (hashed in the store, and in a 0600 file for the
//! operator), and how tokens are made and hashed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use dockhand_store::Store;
use dockhand_store::TokenKind;
use dockhand_store::UserRole;
use rand::Rng;
use sha2::Digest;
use sha2::Sha256;

/// File holding the admin token, mode 0600.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// A new random token: `dh_` and 40 characters (about 238 bits).
pub fn generate_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("dh_{body}")
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Errors setting up local auth.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// Writing the token file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] dockhand_store::StoreError),
}

/// Makes sure an admin token exists and is in `DATA_DIR/admin-token` (0600).
/// Returns the token when it was just generated, so it can be shown once.
/// A missing file with a stored hash means the token is lost: a new one replaces it.
pub async fn bootstrap_admin(
    store: &Store,
    data_dir: &Path,
) -> Result<Option<String>, AuthSetupError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let admin = store.ensure_user("admin", UserRole::Operator).await?;
    if path.exists() && store.has_token_of_kind(TokenKind::Admin)? {
        return Ok(None);
    }
    store.revoke_tokens_of_kind(TokenKind::Admin).await?;
    let token = generate_token();
    store
        .insert_token(admin.id, "admin", TokenKind::Admin, hash_token(&token))
        .await?;
    let tmp = data_dir.join(format!("{ADMIN_TOKEN_FILE}.tmp"));
    let write = |p: &Path| -> std::io::Result<()> {
        let _ = std::fs::remove_file(p);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)?;
        f.write_all(token.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    write(&tmp)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| AuthSetupError::Write {
            path: path.display().to_string(),
            source: e,
        })?;
    Ok(Some(token))
}
