use serde::Deserialize;
use serde::Serialize;

/// How much of the network a task's sandbox reaches.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkLevel {
    /// Loopback only, no route anywhere.
    None,
    /// Only through the coordinator's egress proxy, to allowed names.
    #[default]
    Allowlist,
    /// Ordinary outbound access, unfiltered (never the host's own loopback,
    /// never another sandbox).
    Open,
}

impl NetworkLevel {
    /// The word used in configuration and events.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkLevel::None => "none",
            NetworkLevel::Allowlist => "allowlist",
            NetworkLevel::Open => "open",
        }
    }

    /// Parses `none`, `allowlist` or `open`.
    pub fn parse(text: &str) -> Option<NetworkLevel> {
        match text {
            "none" => Some(NetworkLevel::None),
            "allowlist" => Some(NetworkLevel::Allowlist),
            "open" => Some(NetworkLevel::Open),
            _ => None,
        }
    }
}

impl std::fmt::Display for NetworkLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
