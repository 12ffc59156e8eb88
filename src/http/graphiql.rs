//! GraphiQL, served entirely from the binary (no CDN): it works with no internet.
//! The assets come from the npm registry at development time (`scripts/update-graphiql.sh`).

use poem::{
    IntoResponse, Response, handler,
    http::{StatusCode, header},
    web::Path,
};

const INDEX: &str = include_str!("../../assets/graphiql/index.html");

/// (name, content type, bytes) of every embedded asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("init.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/graphiql/init.js")),
    ("graphiql.min.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/graphiql/graphiql.min.js")),
    ("graphiql.min.css", "text/css; charset=utf-8", include_bytes!("../../assets/graphiql/graphiql.min.css")),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "THIRD_PARTY_LICENSES.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/graphiql/THIRD_PARTY_LICENSES.txt"),
    ),
];

/// Scripts only from this origin; GraphiQL's inline styles are allowed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

#[handler]
pub fn index() -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(INDEX)
}

#[handler]
pub fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ct, bytes)) => Response::builder()
            .content_type(*ct)
            .header(header::CACHE_CONTROL, "public, max-age=3600")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .body(*bytes),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
