//! Signed desk links (pure): a token names a person and the units they answer for,
//! with an expiry, signed with HMAC-SHA256 under a secret from the environment. The
//! desk shows only that scope. Rotating the secret revokes every link.
//!
//! It never reads the clock (`now` is a parameter) or the environment (the secret is).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Who a link is for and what it opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The person's address (recorded as `by` of what they acknowledge).
    pub who: String,
    /// Their name, as the directory gives it.
    #[serde(default)]
    pub name: String,
    /// The unit codes they answer for (their unit, and its subtree for a parent's head).
    pub units: Vec<String>,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
}

/// Why a token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not a desk link (damaged or cut short)")]
    Malformed,
    #[error("the link's signature does not match (altered, or signed with another secret)")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length")
}

/// The token of `scope`: `payload.signature`, both base64url without padding.
pub fn sign(scope: &Scope, secret: &[u8]) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(scope).unwrap_or_default());
    let mut m = mac(secret);
    m.update(payload.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// The scope a token grants at `now` (unix seconds), if its signature holds and it
/// has not expired. The signature is checked in constant time, before anything in the
/// payload is read.
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Scope, TokenError> {
    let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(payload.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let scope: Scope = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if now > scope.expires {
        return Err(TokenError::Expired);
    }
    Ok(scope)
}

impl Scope {
    /// How pages greet the person: their name, else their address.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.who
        } else {
            &self.name
        }
    }

    /// Who an acknowledgement is recorded as: `Name <address>`, or the address.
    pub fn signature(&self) -> String {
        if self.name.is_empty() {
            self.who.clone()
        } else {
            format!("{} <{}>", self.name, self.who)
        }
    }

    /// Whether the scope covers a unit.
    pub fn covers(&self, unit: &str) -> bool {
        self.units.iter().any(|u| u == unit)
    }
}

/// The units a person answers for in the directory: a unit they head (or are a
/// deputy or a copy of) and, for a head, its whole subtree; in directory order.
pub fn units_of(dir: &crate::directory::Directory, email: &str) -> Vec<String> {
    let is = |a: Option<&str>| a.is_some_and(|a| a.trim().eq_ignore_ascii_case(email));
    let mut out: Vec<String> = Vec::new();
    let add_subtree = |root: &str, out: &mut Vec<String>| {
        let mut stack = vec![root.to_string()];
        while let Some(code) = stack.pop() {
            if !out.contains(&code) {
                out.push(code.clone());
            }
            for u in dir.units() {
                if u.parent.as_deref() == Some(code.as_str()) {
                    stack.push(u.code.clone());
                }
            }
        }
    };
    for u in dir.units() {
        let head = u.head.as_ref().and_then(|h| h.email.as_deref());
        if is(head) {
            add_subtree(&u.code, &mut out);
        } else if (u.deputies.iter().any(|d| is(Some(&d.email)))
            || u.copies.iter().any(|c| is(Some(c))))
            && !out.contains(&u.code)
        {
            out.push(u.code.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            who: "giamdoc@stp.example.gov.vn".into(),
            name: "Giám đốc Sở Tư pháp".into(),
            units: vec!["STP".into()],
            expires: 1_800_000_000,
        }
    }

    #[test]
    fn a_signed_link_opens_its_scope_until_it_expires() {
        let t = sign(&scope(), b"bi-mat");
        assert_eq!(verify(&t, b"bi-mat", 1_700_000_000), Ok(scope()));
        assert_eq!(
            verify(&t, b"bi-mat", 1_800_000_001),
            Err(TokenError::Expired)
        );
        assert!(scope().covers("STP") && !scope().covers("SXD"));
    }

    #[test]
    fn a_tampered_or_foreign_link_is_refused() {
        let t = sign(&scope(), b"bi-mat");
        // Another secret (rotated): every link is revoked.
        assert_eq!(
            verify(&t, b"bi-mat-moi", 1_700_000_000),
            Err(TokenError::BadSignature)
        );
        // The payload widened to another unit, the signature kept.
        let (_, sig) = t.split_once('.').unwrap();
        let wider = Scope {
            units: vec!["STP".into(), "SXD".into()],
            ..scope()
        };
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wider).unwrap())
        );
        assert_eq!(
            verify(&forged, b"bi-mat", 1_700_000_000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify("not-a-token", b"bi-mat", 0),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&t[..t.len() - 3], b"bi-mat", 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_head_answers_for_the_subtree_a_copy_for_the_unit() {
        let dir = crate::directory::Directory::parse(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/units.toml"))
                .unwrap(),
            "units.toml",
        )
        .unwrap();
        assert_eq!(units_of(&dir, "giamdoc@stp.example.gov.vn"), ["STP"]);
        assert_eq!(units_of(&dir, "VanPhong@stp.example.gov.vn"), ["STP"]);
        // The chairman heads the province: every unit.
        let all = units_of(&dir, "chutich@ubnd.example.gov.vn");
        assert_eq!(all.len(), dir.units().len());
        assert_eq!(all[0], "UBND-TINH");
        assert!(units_of(&dir, "nobody@example.gov.vn").is_empty());
    }
}
