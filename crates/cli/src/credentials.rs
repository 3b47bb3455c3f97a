//! Sessions from `dockhand login`, kept per server in
//! `$XDG_CONFIG_HOME/dockhand/credentials.json` (mode 0600).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use anyhow::Result;
use serde::Deserialize;
use serde::Serialize;

/// A CLI session with one server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
    pub login: String,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    sessions: BTreeMap<String, Session>,
}

fn path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
        });
    base.join("dockhand").join("credentials.json")
}

fn load() -> File {
    std::fs::read(path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(file: &File) -> Result<()> {
    let p = path();
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = p.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(file)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))
}

pub fn get(server: &str) -> Option<Session> {
    load().sessions.get(server.trim_end_matches('/')).cloned()
}

pub fn put(server: &str, session: Session) -> Result<()> {
    let mut file = load();
    file.sessions
        .insert(server.trim_end_matches('/').to_owned(), session);
    save(&file)
}

pub fn remove(server: &str) -> Result<Option<Session>> {
    let mut file = load();
    let old = file.sessions.remove(server.trim_end_matches('/'));
    save(&file)?;
    Ok(old)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
