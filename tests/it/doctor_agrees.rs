//! The doctor and the server agree, over generated tokens and configurations: for each
//! token (expired, not yet valid, wrong issuer or audience, wrongly signed, missing claims,
//! foreign organizations, removed members, other `X-Organization-Id`s), the doctor's
//! answer (status, code, reason) is what the server then answers, and its `wouldCreate` is
//! exactly what the server then creates.

use std::collections::BTreeSet;

use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    keys::{hs256, now},
};

const ISSUER: &str = "https://idp.example/";
const AUDIENCE: &str = "courses-api";
const QUERY: &str = "{ organization { id } }";

/// One generated request.
#[derive(Debug, Clone)]
struct Case {
    /// A known user (`known-N`), or a new one (`new-N`).
    sub: String,
    org: Option<&'static str>,
    role: Option<&'static str>,
    exp: i64,
    nbf: Option<i64>,
    issuer: Option<&'static str>,
    audience: Option<&'static str>,
    drop_sub: bool,
    wrong_secret: bool,
    header: Option<&'static str>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (prop_oneof![Just("known"), Just("new")], 0u32..3, any::<u32>()),
        prop_oneof![Just(None), Just(Some("acme")), Just(Some("globex")), Just(Some("initech"))],
        prop_oneof![Just(None), Just(Some("admin")), Just(Some("viewer")), Just(Some("unknown"))],
        prop_oneof![Just(3600i64), Just(-3600), Just(-10)],
        prop_oneof![Just(None), Just(Some(600i64)), Just(Some(-600))],
        prop_oneof![Just(Some(ISSUER)), Just(Some("https://other/")), Just(None)],
        prop_oneof![Just(Some(AUDIENCE)), Just(Some("web")), Just(None)],
        (any::<bool>(), prop::bool::weighted(0.15), prop::bool::weighted(0.15)),
        prop_oneof![Just(None), Just(None), Just(Some("acme")), Just(Some("globex")), Just(Some("no-such-org"))],
    )
        .prop_map(
            |((kind, n, salt), org, role, exp, nbf, issuer, audience, (_, drop_sub, wrong_secret), header)| Case {
                sub: if kind == "known" { format!("known-{n}") } else { format!("new-{salt}") },
                org,
                role,
                exp: now() + exp,
                nbf: nbf.map(|n| now() + n),
                issuer,
                audience,
                drop_sub,
                wrong_secret,
                header,
            },
        )
}

impl Case {
    fn token(&self) -> String {
        let mut c =
            json!({ "sub": self.sub, "exp": self.exp, "iat": now(), "email": format!("{}@example.com", self.sub) });
        let m = c.as_object_mut().unwrap();
        if let Some(o) = self.org {
            m.insert("org_id".into(), json!(o));
        }
        if let Some(r) = self.role {
            m.insert("roles".into(), json!([r]));
        }
        if let Some(n) = self.nbf {
            m.insert("nbf".into(), json!(n));
        }
        if let Some(i) = self.issuer {
            m.insert("iss".into(), json!(i));
        }
        if let Some(a) = self.audience {
            m.insert("aud".into(), json!(a));
        }
        if self.drop_sub {
            m.remove("sub");
        }
        let secret = if self.wrong_secret { "not-the-server-s-secret-0123456789abcdef" } else { SECRET };
        hs256(secret.as_bytes(), None, &c)
    }
}

async fn rows(app: &TestApp) -> [i64; 3] {
    [app.count("users", "").await, app.count("organizations", "").await, app.count("memberships", "").await]
}

/// Runs generated cases against `app`; each is diagnosed, then sent to the server.
async fn agree(app: &TestApp, cases: u32) {
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&case(), |c| {
            tokio::task::block_in_place(|| handle.block_on(one(app, &c)));
            Ok(())
        })
        .unwrap();
}

async fn one(app: &TestApp, c: &Case) {
    let token = c.token();
    let mut body = json!({ "token": token });
    if let Some(h) = c.header {
        body["organization"] = json!(h);
    }
    let r: Value = app.client.post(app.url("/doctor")).json(&body).send().await.unwrap().json().await.unwrap();
    let before = rows(app).await;
    let headers: Vec<(&str, &str)> = c.header.map(|h| vec![("x-organization-id", h)]).unwrap_or_default();
    let (status, served, _) = app.gql_with(Some(&token), &headers, QUERY, json!({})).await;
    let after = rows(app).await;
    let error = &served["errors"][0]["extensions"];
    let answer = &r["answer"];
    assert_eq!(answer["status"], status.as_u16(), "{c:?}\ndoctor {r}\nserver {served}");
    assert_eq!(answer["code"].as_str(), error["code"].as_str(), "{c:?}\ndoctor {r}\nserver {served}");
    assert_eq!(answer["reason"].as_str(), error["reason"].as_str(), "{c:?}\ndoctor {r}\nserver {served}");
    // What the first request created, kind by kind, is what the doctor said it would.
    let created: BTreeSet<&str> = ["user", "organization", "membership"]
        .into_iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| a > *b)
        .map(|(k, _)| k)
        .collect();
    let would: BTreeSet<&str> =
        r["viewer"]["wouldCreate"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if answer["status"] == 200 {
        assert_eq!(would, created, "{c:?}\ndoctor {r}\nserver {served}");
    } else {
        assert!(created.is_empty(), "a refused token created rows: {c:?}");
    }
}

/// The configurations: issuer and audience required, and the role following the token.
async fn world(tweak: impl FnOnce(&mut coursegraph::config::Config)) -> TestApp {
    let app = TestApp::spawn_with(|c| {
        c.auth.issuer = Some(ISSUER.into());
        c.auth.audience = vec![AUDIENCE.into()];
        tweak(c);
    })
    .await;
    // Known users: members of acme (one removed), one of globex too.
    let known = |sub: &str, org: &str, role: &str| {
        hs256(
            SECRET.as_bytes(),
            None,
            &json!({ "sub": sub, "exp": now() + 3600, "iss": ISSUER, "aud": AUDIENCE, "org_id": org, "roles": [role] }),
        )
    };
    let admin = known("known-0", "acme", "admin");
    app.data(&admin, "{ me { user { id } } }", json!({})).await;
    let gone = app.data(&known("known-1", "acme", "member"), "{ me { memberships { id } } }", json!({})).await;
    app.data(&known("known-2", "acme", "member"), "{ me { user { id } } }", json!({})).await;
    app.data(&known("known-2", "globex", "member"), "{ me { user { id } } }", json!({})).await;
    let q = "mutation($m: ID!) { removeMember(membershipId: $m) { isActive } }";
    app.data(&admin, q, json!({ "m": gone["me"]["memberships"][0]["id"] })).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_answers_what_the_server_answers_and_foresees_what_it_creates() {
    let app = world(|_| {}).await;
    agree(&app, 96).await;
    let token_roles = world(|c| c.auth.role_source = coursegraph::config::RoleSource::Token).await;
    agree(&token_roles, 48).await;
}
