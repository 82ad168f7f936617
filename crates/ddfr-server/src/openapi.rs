//! `/openapi.json`, generated from the handlers' annotations and `ddfr-protocol`'s types.

use utoipa::OpenApi;

use crate::{audit, auth, events, keys, privacy, rest, session, unknowns};

/// The OpenAPI document of the REST API (the `/ws` protocol is described in `docs/websocket.md`).
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "ddfr", description = "Self-hosted real-time face recognition. REST API; the /ws protocol is documented in docs/websocket.md."),
    paths(
        rest::create_person, rest::list_persons, rest::get_person, rest::update_person,
        rest::delete_person, rest::add_face, rest::add_faces, rest::list_faces, rest::delete_face, rest::face_crop,
        rest::recognize, rest::verify, rest::health, auth::login, auth::logout, session::session,
        unknowns::list_unknowns, unknowns::unknown_crop, unknowns::delete_unknown,
        unknowns::promote_unknown, audit::list_audit, audit::export_person,
        privacy::add_consent, privacy::list_consents, privacy::withdraw_consent, privacy::policy,
        keys::create_key, keys::list_keys, keys::revoke_key, events::events_status,
    ),
    components(schemas(
        ddfr_protocol::ErrorBody, ddfr_protocol::ErrorDetail, ddfr_protocol::FieldError,
        ddfr_protocol::WsFace, ddfr_protocol::FrameReply, ddfr_protocol::ExportManifest,
        ddfr_protocol::ManifestFile, ddfr_protocol::ArchivedEmbedding, ddfr_protocol::ConsentMethod,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// Declares the bearer scheme.
#[derive(Debug)]
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON.
pub fn openapi_json() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
