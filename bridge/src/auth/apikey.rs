//! API keys for internal services: loaded from a file, kept only as SHA-256 digests, and
//! compared in constant time (every stored digest is compared, match or not).

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured keys: `(name, SHA-256 of the key)`.
pub(crate) struct ApiKeys {
    entries: Vec<(String, [u8; 32])>,
}

impl ApiKeys {
    /// Reads `NAME:KEY` lines (blank lines and `#` comments skipped). The key is everything
    /// after the first colon.
    pub(crate) fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "--api-keys-file/BRIDGE_API_KEYS_FILE: cannot read {}: {e}",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|e| format!("--api-keys-file {}: {e}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, key) = line
                .split_once(':')
                .ok_or_else(|| format!("line {} is not NAME:KEY", n + 1))?;
            let name = name.trim();
            if !crate::validate::is_safe_id(name, 64) {
                return Err(format!(
                    "line {}: the name must be 1-64 characters of A-Z a-z 0-9 . _ : -",
                    n + 1
                ));
            }
            if key.len() < 16 {
                return Err(format!(
                    "line {}: keys must be at least 16 characters",
                    n + 1
                ));
            }
            entries.push((name.to_owned(), digest(key.as_bytes())));
        }
        if entries.is_empty() {
            return Err("no keys".into());
        }
        Ok(Self { entries })
    }

    /// The name of the key `presented`, if it is one of ours.
    pub(crate) fn verify(&self, presented: &[u8]) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (name, stored) in &self.entries {
            if bool::from(stored.ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_by_digest() {
        let keys = ApiKeys::parse("# services\nbilling:0123456789abcdef:with-colon\n\n").unwrap();
        assert_eq!(keys.verify(b"0123456789abcdef:with-colon"), Some("billing"));
        assert_eq!(keys.verify(b"0123456789abcdef"), None);
        assert!(ApiKeys::parse("nokey").is_err());
        assert!(ApiKeys::parse("a:short").is_err());
    }
}
