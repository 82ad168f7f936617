//! The Home automation page (`#/events`, admin only, read-only): whether MQTT and the webhook
//! are configured and connected, their counters, the cameras streaming now, and the latest
//! events, from `GET /api/events/status`.

use ddfr_protocol::{Event, EventKind, EventsStatus};
use wasm_bindgen_futures::spawn_local;
use web_sys::Element;

use crate::api;
use crate::dom::{El, by_id, clear};
use crate::keys::short_time;
use crate::people::show_error;

/// Renders the page into `root` and loads the status.
pub fn mount(root: &Element) {
    clear(root);
    let _ = root.append_child(El::new("h1").text("Home automation").el());
    let _ = root.append_child(
        El::new("p")
            .class("muted")
            .text("MQTT (with Home Assistant discovery) and the webhook, as configured when the server started (DDFR_MQTT_URL, DDFR_WEBHOOK_URL). Read-only; see docs/home-assistant.md.")
            .el(),
    );
    let _ = root.append_child(
        El::new("p").attr("id", "events-error").attr("role", "alert").class("error").el(),
    );
    let _ = root.append_child(
        El::new("button")
            .attr("type", "button")
            .attr("id", "events-refresh")
            .class("small")
            .text("Refresh")
            .on("click", |_| load())
            .el(),
    );
    let _ = root.append_child(El::new("div").attr("id", "events-status").el());
    load();
}

fn load() {
    spawn_local(async {
        match api::events_status().await {
            Ok(status) => show(&status),
            Err(error) => {
                if let Some(target) = by_id::<Element>("events-error") {
                    show_error(&target, &error);
                }
            }
        }
    });
}

/// One row of a definition table: a label and its value.
fn row(label: &str, value: String) -> El {
    El::new("tr")
        .child(El::new("th").attr("scope", "row").text(label))
        .child(El::new("td").text(&value))
}

fn table(id: &str, caption: &str, rows: Vec<El>) -> El {
    El::new("table")
        .attr("id", id)
        .class("status-table")
        .child(El::new("caption").text(caption))
        .child(El::new("tbody").children(rows))
}

/// The state of a link in words.
fn link_state(configured: bool, connected: Option<bool>) -> String {
    match (configured, connected) {
        (false, _) => "not configured".to_owned(),
        (true, Some(true)) => "connected".to_owned(),
        (true, Some(false)) => "disconnected (retrying)".to_owned(),
        (true, None) => "on".to_owned(),
    }
}

/// Who an event is about.
fn who(event: &Event) -> String {
    match (&event.person_id, &event.surname) {
        (Some(_), Some(surname)) => format!("{} {surname}", event.name),
        _ => event.name.clone(),
    }
}

fn kind_text(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Recognized => "recognized",
        EventKind::Unknown => "unknown",
        EventKind::Left => "left",
    }
}

fn show(status: &EventsStatus) {
    let Some(target) = by_id::<Element>("events-status") else { return };
    clear(&target);
    let health = &status.health;
    let mqtt = &health.mqtt;
    let webhook = &health.webhook;
    let mqtt_table = table(
        "events-mqtt",
        "MQTT",
        vec![
            row("State", link_state(mqtt.configured, Some(mqtt.connected))),
            row("Messages published", mqtt.published.to_string()),
            row("Dropped (queue full)", mqtt.dropped.to_string()),
            row("Connections made", mqtt.connects.to_string()),
        ],
    );
    let webhook_table = table(
        "events-webhook",
        "Webhook",
        vec![
            row("State", link_state(webhook.configured, None)),
            row("Delivered", webhook.delivered.to_string()),
            row("Failed attempts", webhook.failed_attempts.to_string()),
            row("Given up", webhook.gave_up.to_string()),
            row("Dropped (queue full)", webhook.dropped.to_string()),
        ],
    );
    let cameras = if status.cameras.is_empty() {
        "none".to_owned()
    } else {
        status
            .cameras
            .iter()
            .map(|c| format!("{} ({})", c.name, c.connections))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let totals = table(
        "events-totals",
        "Events",
        vec![
            row("Events so far", health.events.to_string()),
            row("Track updates dropped", health.dropped_updates.to_string()),
            row("Cameras streaming now", cameras),
        ],
    );
    let _ = target.append_child(mqtt_table.el());
    let _ = target.append_child(webhook_table.el());
    let _ = target.append_child(totals.el());
    let _ =
        target.append_child(El::new("h2").attr("id", "recent-title").text("Latest events").el());
    if status.recent.is_empty() {
        let _ = target.append_child(
            El::new("p").attr("id", "events-empty").class("muted").text("No event yet.").el(),
        );
        return;
    }
    let rows = status.recent.iter().map(|event| {
        El::new("tr")
            .child(El::new("td").text(&short_time(event.at)))
            .child(El::new("td").text(&event.camera))
            .child(El::new("td").text(kind_text(event.kind)))
            .child(El::new("td").text(&who(event)))
            .child(El::new("td").text(&event.track_id.to_string()))
    });
    let recent = El::new("div").class("table-scroll").child(
        El::new("table")
            .attr("id", "events-recent")
            .attr("aria-labelledby", "recent-title")
            .child(
                El::new("thead").child(
                    El::new("tr").children(
                        ["Time", "Camera", "Event", "Who", "Track"]
                            .map(|h| El::new("th").attr("scope", "col").text(h)),
                    ),
                ),
            )
            .child(El::new("tbody").children(rows)),
    );
    let _ = target.append_child(recent.el());
}
