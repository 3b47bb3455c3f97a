//! The mux protocol's frames, shared by the host side (`mux.rs`) and the sandbox
//! helper (`helper/mux.rs` includes this file; so it uses std alone):
//! `[conn id: u32 BE][kind: u8][len: u32 BE][payload]`, `len` at most
//! [`MAX_PAYLOAD`], and only DATA carries a payload.

/// The largest payload a frame may carry.
pub(crate) const MAX_PAYLOAD: usize = 65536;
/// id (4) + kind (1) + len (4).
pub(crate) const HEADER: usize = 9;

pub(crate) const OPEN: u8 = 1;
pub(crate) const DATA: u8 = 2;
pub(crate) const EOF: u8 = 3;
pub(crate) const CLOSE: u8 = 4;

/// A frame's header, checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) id: u32,
    pub(crate) kind: u8,
    pub(crate) len: usize,
}

impl Header {
    /// Parses a header, refusing one whose payload is too large or on a kind
    /// that takes none; the error says which.
    pub(crate) fn parse(bytes: &[u8; HEADER]) -> Result<Header, String> {
        let id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let kind = bytes[4];
        let len = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(format!(
                "a frame of {len} bytes for connection {id} (at most {MAX_PAYLOAD})"
            ));
        }
        if kind != DATA && len != 0 {
            return Err(format!(
                "a frame of kind {kind} with a payload for connection {id}"
            ));
        }
        Ok(Header { id, kind, len })
    }

    /// The header of a frame carrying `len` (at most [`MAX_PAYLOAD`]) bytes.
    pub(crate) fn encode(id: u32, kind: u8, len: usize) -> [u8; HEADER] {
        debug_assert!(len <= MAX_PAYLOAD);
        let mut header = [0; HEADER];
        header[..4].copy_from_slice(&id.to_be_bytes());
        header[4] = kind;
        header[5..].copy_from_slice(&(len as u32).to_be_bytes());
        header
    }
}
