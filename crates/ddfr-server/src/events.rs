//! The HTTP side of home-automation events: the `?camera=` parameter of `/ws`, the gallery as
//! the events' person directory, and `GET /api/events/status`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ddfr_events::{PersonDirectory, PersonLabel};
use ddfr_protocol::{DEFAULT_CAMERA, EventsStatus, MAX_CAMERA_NAME_CHARS, is_valid_camera_name};

use crate::error::ApiError;
use crate::gallery::Gallery;
use crate::state::AppState;

/// The camera a `/ws` handshake names in its query (`camera=NAME`), [`DEFAULT_CAMERA`] when
/// it names none; 400 `invalid_camera` for a name that is empty, too long or has characters
/// outside `A-Z a-z 0-9 _ -` (or is given twice).
pub fn camera_of_query(query: Option<&str>) -> Result<String, ApiError> {
    let mut cameras = query.unwrap_or_default().split('&').filter_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == "camera").then_some(value)
    });
    let camera = match (cameras.next(), cameras.next()) {
        (None, _) => return Ok(DEFAULT_CAMERA.to_owned()),
        (Some(camera), None) => camera,
        (Some(_), Some(_)) => return Err(invalid_camera("camera is given more than once")),
    };
    if !is_valid_camera_name(camera) {
        return Err(invalid_camera(&format!(
            "camera names are 1 to {MAX_CAMERA_NAME_CHARS} characters from A-Z, a-z, 0-9, _ and -"
        )));
    }
    Ok(camera.to_owned())
}

fn invalid_camera(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_camera", message.to_owned())
}

/// The gallery's person table, as the events see it (names for events and entities).
#[derive(Debug)]
pub struct GalleryDirectory(pub Arc<Gallery>);

impl PersonDirectory for GalleryDirectory {
    fn version(&self) -> u64 {
        self.0.persons_version()
    }

    fn persons(&self) -> Vec<PersonLabel> {
        self.0
            .persons()
            .into_iter()
            .map(|p| PersonLabel { id: p.id, name: p.name, surname: p.surname })
            .collect()
    }
}

/// `GET /api/events/status`: MQTT and webhook state, cameras, the latest events.
#[utoipa::path(get, path = "/api/events/status", tag = "events",
    responses((status = 200, body = EventsStatus), (status = 503, body = ddfr_protocol::ErrorBody)))]
pub async fn events_status(State(state): State<AppState>) -> Result<Json<EventsStatus>, ApiError> {
    state.services()?;
    Ok(Json(state.events().map(ddfr_events::Events::status).unwrap_or_else(|| EventsStatus {
        health: ddfr_protocol::EventsHealth::default(),
        cameras: Vec::new(),
        recent: Vec::new(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_camera_comes_from_the_query_and_defaults_to_default() {
        assert_eq!(camera_of_query(None).unwrap(), "default");
        assert_eq!(camera_of_query(Some("")).unwrap(), "default");
        assert_eq!(camera_of_query(Some("camera=door")).unwrap(), "door");
        assert_eq!(camera_of_query(Some("token=x&camera=Back_Yard-2")).unwrap(), "Back_Yard-2");
        for bad in [
            "camera=",
            "camera",
            "camera=front%20door",
            "camera=a/b",
            "camera=door&camera=hall",
            &format!("camera={}", "a".repeat(65)),
        ] {
            let error = camera_of_query(Some(bad)).unwrap_err();
            assert_eq!(error.code, "invalid_camera", "{bad}");
        }
    }
}
