//! The OpenAPI document of `tess server`, generated from the handlers' `#[utoipa::path]`
//! attributes and the request/response types (`rest`, `protocol`) by the router itself,
//! so a route cannot exist undocumented or be documented without existing.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tesseract CI server",
        version = "1",
        description = "Webhooks, runs and the runner protocol of `tess server`."
    ),
    modifiers(&Tokens)
)]
pub(super) struct ApiDoc;

/// The two kinds of bearer token.
struct Tokens;

impl utoipa::Modify for Tokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            ("api", "an API token from the config"),
            ("runner", "the token a runner got at registration"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// The document as served at `/api/v1/openapi.json` (built once).
pub(super) fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (_, api) = super::api_router().split_for_parts();
        api.to_pretty_json().unwrap_or_default()
    })
}
