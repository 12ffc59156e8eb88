//! The rules a signed token's registered claims must meet, one verdict per rule: `exp`
//! (required, a number, not past), `nbf` and `iat` (if present, numbers, not in the future),
//! `iss` and `aud` (required when configured, and matching), `sub` (a non-empty string).
//! Leeway applies to every time. And no claim may hold a NUL character: PostgreSQL text
//! cannot store one (SQLite would), so the same token is refused on both databases instead
//! of failing provisioning on one. The verifier refuses a token for the first failed rule;
//! the access doctor shows every verdict. jsonwebtoken's own claim validation is not used:
//! it never checks `iat`, reports an unparsable `exp` as missing, and checks in one go.

use serde_json::{Map, Value};

use super::jwt::{AuthError, AuthReason};

/// What the configuration requires of the claims.
#[derive(Debug, Clone, Copy)]
pub struct Requirements<'a> {
    pub issuer: Option<&'a str>,
    pub audience: &'a [String],
    pub leeway: u64,
}

/// The verdict of every rule, in report order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimVerdicts {
    /// `exp`, `nbf` and `iat`.
    pub expiry: Result<(), AuthError>,
    pub issuer: Result<(), AuthError>,
    pub audience: Result<(), AuthError>,
    pub subject: Result<(), AuthError>,
    /// No NUL character in any claim, keys included.
    pub text: Result<(), AuthError>,
}

impl ClaimVerdicts {
    /// The refusal the server answers: the first failure in the order the rules are
    /// applied — claims that must be there, then expiry, then issuer, audience, subject.
    pub fn first_failure(&self) -> Option<AuthError> {
        let all = [&self.expiry, &self.issuer, &self.audience, &self.subject, &self.text];
        let missing = all.iter().find_map(|r| r.as_ref().err().filter(|e| e.reason == AuthReason::MissingClaim));
        missing.or_else(|| all.iter().find_map(|r| r.as_ref().err())).cloned()
    }
}

/// Judges `claims` against `req` at `now` (seconds since the epoch).
pub fn check(claims: &Map<String, Value>, req: Requirements<'_>, now: i64) -> ClaimVerdicts {
    ClaimVerdicts {
        expiry: expiry(claims, req.leeway as i64, now),
        issuer: issuer(claims, req.issuer),
        audience: audience(claims, req.audience),
        subject: subject(claims),
        text: if claims.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
            err(AuthReason::TokenMalformed)
        } else {
            Ok(())
        },
    }
}

/// Whether a NUL character is anywhere in `v`, keys included.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn err(reason: AuthReason) -> Result<(), AuthError> {
    Err(reason.into())
}

/// A claim that is there (not null): `Ok(None)` absent, `Err` not a number.
fn number(claims: &Map<String, Value>, k: &str) -> Result<Option<f64>, ()> {
    match claims.get(k).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(()),
    }
}

fn expiry(claims: &Map<String, Value>, leeway: i64, now: i64) -> Result<(), AuthError> {
    let exp = match number(claims, "exp") {
        Ok(None) => return err(AuthReason::MissingClaim),
        Err(()) => return err(AuthReason::TokenMalformed),
        Ok(Some(e)) => e,
    };
    if (exp as i64) < now - leeway {
        return err(AuthReason::TokenExpired);
    }
    for k in ["nbf", "iat"] {
        match number(claims, k) {
            Err(()) => return err(AuthReason::TokenMalformed),
            Ok(Some(t)) if (t as i64) > now + leeway => return err(AuthReason::TokenNotYetValid),
            _ => {}
        }
    }
    Ok(())
}

fn issuer(claims: &Map<String, Value>, required: Option<&str>) -> Result<(), AuthError> {
    let Some(want) = required else { return Ok(()) };
    match claims.get("iss").filter(|v| !v.is_null()) {
        None => err(AuthReason::MissingClaim),
        Some(Value::String(s)) if s == want => Ok(()),
        Some(_) => err(AuthReason::BadIssuer),
    }
}

fn audience(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), AuthError> {
    if accepted.is_empty() {
        return Ok(());
    }
    let matches = |s: &str| accepted.iter().any(|a| a == s);
    match claims.get("aud").filter(|v| !v.is_null()) {
        None => err(AuthReason::MissingClaim),
        Some(Value::String(s)) if matches(s) => Ok(()),
        Some(Value::Array(a)) if a.iter().filter_map(Value::as_str).any(matches) => Ok(()),
        Some(_) => err(AuthReason::BadAudience),
    }
}

fn subject(claims: &Map<String, Value>) -> Result<(), AuthError> {
    match claims.get("sub").filter(|v| !v.is_null()) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(()),
        Some(Value::String(_)) | None => err(AuthReason::MissingClaim),
        // There, but not the string it must be.
        Some(_) => err(AuthReason::TokenMalformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn verdict(claims: Value, issuer: Option<&str>, audience: &[&str]) -> Option<AuthReason> {
        let audience: Vec<String> = audience.iter().map(|s| (*s).to_owned()).collect();
        let req = Requirements { issuer, audience: &audience, leeway: 30 };
        check(claims.as_object().unwrap(), req, NOW).first_failure().map(|e| e.reason)
    }

    #[test]
    fn each_rule_and_the_order_they_apply_in() {
        use AuthReason::*;
        let ok = json!({"sub": "a", "exp": NOW + 60, "iss": "i", "aud": ["x", "api"]});
        assert_eq!(verdict(ok.clone(), Some("i"), &["api"]), None);
        assert_eq!(verdict(json!({"sub": "a"}), None, &[]), Some(MissingClaim));
        assert_eq!(verdict(json!({"sub": "a", "exp": "soon"}), None, &[]), Some(TokenMalformed));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW - 31}), None, &[]), Some(TokenExpired));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW - 29}), None, &[]), None, "within the leeway");
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60, "nbf": NOW + 31}), None, &[]), Some(TokenNotYetValid));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60, "iat": NOW + 31}), None, &[]), Some(TokenNotYetValid));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60, "iat": "x"}), None, &[]), Some(TokenMalformed));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60, "iss": "j"}), Some("i"), &[]), Some(BadIssuer));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60}), Some("i"), &[]), Some(MissingClaim));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60, "aud": "web"}), None, &["api"]), Some(BadAudience));
        assert_eq!(verdict(json!({"sub": " ", "exp": NOW + 60}), None, &[]), Some(MissingClaim));
        // A missing claim is reported before an expired token, as jsonwebtoken did.
        assert_eq!(verdict(json!({"exp": NOW - 100}), None, &[]), Some(MissingClaim));
        // Expiry before the issuer.
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW - 100, "iss": "j"}), Some("i"), &[]), Some(TokenExpired));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60, "name": "x\u{0}"}), None, &[]), Some(TokenMalformed));
        assert_eq!(verdict(json!({"sub": "a", "exp": NOW + 60, "o": {"k\u{0}": 1}}), None, &[]), Some(TokenMalformed));
    }
}
