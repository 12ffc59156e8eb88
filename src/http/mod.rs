//! The HTTP surface: routes, the GraphQL endpoint, GraphiQL, health and metrics.

pub mod apq;
pub mod doctor;
pub mod exec;
pub mod graphiql;
pub mod graphql;
pub mod health;
pub mod multiplex;
pub mod state;
pub mod ws;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Route, get, http::Method, middleware::Cors};

use state::AppState;

/// Every route of the server, with the shared state attached, and CORS when configured.
pub fn routes(state: Arc<AppState>) -> impl Endpoint + 'static {
    let cors = state.config.server.cors.clone();
    let app = Route::new()
        .at("/graphql", get(graphql::graphql).post(graphql::graphql))
        .at("/", get(graphiql::index))
        .at("/graphiql/:file", get(graphiql::asset))
        .at("/doctor", get(doctor::page).post(doctor::report))
        .at("/doctor/:file", get(doctor::asset))
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/metrics", get(health::metrics))
        .data(state);
    let cors = cors.map(|c| {
        let mut m = Cors::new()
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                "authorization",
                "content-type",
                "x-organization-id",
                "x-request-id",
                "apollographql-client-name",
                "apollographql-client-version",
            ])
            .expose_headers(["x-request-id"])
            .allow_credentials(c.credentials)
            .max_age(600);
        for o in &c.origins {
            m = m.allow_origin(o.as_str());
        }
        m
    });
    let enabled = cors.is_some();
    app.with_if(enabled, cors.unwrap_or_default())
        .before(move |req| async move { Ok(same_origin(req, enabled)) })
        .boxed()
}

/// A request from the server's own origin (GraphiQL at `/`, its WebSocket) is not
/// cross-origin: its `Origin` header is dropped before the CORS check, which would
/// otherwise refuse every origin not in COURSEGRAPH_CORS_ORIGINS, this one included.
fn same_origin(mut req: poem::Request, cors: bool) -> poem::Request {
    if !cors {
        return req;
    }
    let headers = req.headers();
    let own = match (headers.get(poem::http::header::ORIGIN), headers.get(poem::http::header::HOST)) {
        (Some(o), Some(h)) => {
            let (o, h) = (o.to_str().unwrap_or(""), h.to_str().unwrap_or(""));
            !h.is_empty() && (o == format!("http://{h}") || o == format!("https://{h}"))
        }
        _ => false,
    };
    if own {
        req.headers_mut().remove(poem::http::header::ORIGIN);
    }
    req
}
