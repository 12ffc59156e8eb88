//! `coursegraph token`: mints an HS256 token shaped like the configured claim preset,
//! signed with the same secret the server verifies with (configured, or dev mode's).

use clap::Args;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::config::{Config, HumanDuration};

/// The `iss` of minted tokens when no issuer is configured.
pub const DEFAULT_ISSUER: &str = "coursegraph";

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Subject: the user's id at the identity provider.
    #[arg(long)]
    pub sub: String,
    /// The user's email (marked verified in the token).
    #[arg(long)]
    pub email: Option<String>,
    /// The user's display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The organization's external id (becomes the tenant on first sight).
    #[arg(long)]
    pub org: Option<String>,
    /// The organization's display name.
    #[arg(long)]
    pub org_name: Option<String>,
    /// An identity-provider role (repeatable), e.g. admin, instructor, member, viewer.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// A permission (repeatable), written where COURSEGRAPH_CLAIM_PERMISSIONS (or the preset)
    /// reads them; the policy file's `[idp.permissions]` maps them to grants in token mode.
    #[arg(long = "permission")]
    pub permissions: Vec<String>,
    /// Lifetime, e.g. 15m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    pub ttl: HumanDuration,
    /// `iss` (default: COURSEGRAPH_JWT_ISSUER, else `coursegraph`).
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud` (default: the first of COURSEGRAPH_JWT_AUDIENCE, if set).
    #[arg(long)]
    pub audience: Option<String>,
    /// An extra claim, `key=<json>` (or a plain string), repeatable.
    #[arg(long = "claim", id = "extra_claim")]
    pub extra_claims: Vec<String>,
}

/// The claims `args` describe, in the configured preset's shape.
pub fn claims(config: &Config, args: &TokenArgs, now: u64) -> Result<Map<String, Value>, String> {
    if args.sub.trim().is_empty() {
        return Err("--sub must not be empty".into());
    }
    let mut c = Map::new();
    c.insert("sub".into(), json!(args.sub));
    let iss = args.issuer.clone().or_else(|| config.auth.issuer.clone()).unwrap_or_else(|| DEFAULT_ISSUER.into());
    c.insert("iss".into(), json!(iss));
    if let Some(aud) = args.audience.clone().or_else(|| config.auth.audience.first().cloned()) {
        c.insert("aud".into(), json!(aud));
    }
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + args.ttl.0.as_secs().max(1)));
    if let Some(e) = &args.email {
        c.insert("email".into(), json!(e));
        c.insert("email_verified".into(), json!(true));
    }
    if let Some(n) = &args.name {
        c.insert("name".into(), json!(n));
    }
    let mapping = crate::auth::claims::ClaimMapping::from_config(&config.auth.claims);
    mapping.encode(&mut c, args.org.as_deref(), args.org_name.as_deref(), &args.roles);
    mapping.encode_permissions(&mut c, &args.permissions);
    for kv in &args.extra_claims {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("--claim `{kv}` is not key=value"))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        c.insert(k.to_owned(), v);
    }
    Ok(c)
}

/// Signs `claims` with the HS256 secret.
pub fn sign(config: &Config, claims: &Map<String, Value>) -> Result<String, String> {
    let secret = config.auth.jwt_secret.as_ref().ok_or(
        "`coursegraph token` signs HS256 tokens and needs COURSEGRAPH_JWT_SECRET \
         (this server only verifies tokens from its JWKS, COURSEGRAPH_JWKS_URL)",
    )?;
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
        .map_err(|e| format!("cannot sign the token: {e}"))
}

/// Mints a token for `args`.
pub fn mint(config: &Config, args: &TokenArgs) -> Result<String, String> {
    let c = claims(config, args, jsonwebtoken::get_current_timestamp())?;
    sign(config, &c)
}
