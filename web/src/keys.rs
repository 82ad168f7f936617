//! The Keys page (`#/keys`, admin only): the API keys with their role, dates and state; a form
//! that creates one and shows its secret once, with a copy button; revocation in two presses.

use std::cell::Cell;
use std::rc::Rc;

use ddfr_protocol::{KeyView, NewKey, Timestamp};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlInputElement};

use crate::api::{self, ApiError};
use crate::dom::{El, by_id, clear, listen, second_press, set_hidden, value_of, window};
use crate::people::{field, select, show_error};

/// The roles a key may have, most limited first.
const ROLES: [&str; 3] = ["recognizer", "operator", "admin"];

/// Field names of the create form (for the server's per-field messages).
const KEY_FIELDS: [&str; 3] = ["name", "role", "expires_in_days"];

/// A timestamp as `YYYY-MM-DD HH:MM UTC`.
pub fn short_time(at: Timestamp) -> String {
    let text = at.to_string();
    match (text.get(..10), text.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => text,
    }
}

/// Renders the Keys page into `root`.
pub fn mount(root: &Element) {
    clear(root);
    let role_help = "recognizer: live view, recognize and verify only · operator: also reads people and visitors · admin: everything";
    let form = El::new("form")
        .attr("id", "key-form")
        .attr("novalidate", "")
        .attr("aria-labelledby", "key-form-title")
        .child(El::new("h2").attr("id", "key-form-title").text("New key"))
        .child(field(
            "name",
            "Name",
            El::new("input")
                .attr("type", "text")
                .attr("autocomplete", "off")
                .attr("maxlength", "100")
                .attr("placeholder", "front door camera"),
        ))
        .child(field("role", "Role", select(&ROLES, "recognizer")))
        .child(El::new("p").class("muted").text(role_help))
        .child(field(
            "expires_in_days",
            "Expires after (days, empty: never)",
            El::new("input")
                .attr("type", "number")
                .attr("min", "1")
                .attr("max", "3650")
                .attr("inputmode", "numeric"),
        ))
        .child(El::new("p").attr("id", "form-error").attr("role", "alert").class("error"))
        .child(
            El::new("div").class("actions").child(
                El::new("button")
                    .attr("type", "submit")
                    .attr("id", "create-key")
                    .class("primary")
                    .text("Create key"),
            ),
        );
    let secret = El::new("section")
        .attr("id", "key-secret")
        .attr("aria-labelledby", "key-secret-title")
        .class("secret-box")
        .attr("hidden", "")
        .child(El::new("h2").attr("id", "key-secret-title").text("The new key's secret"))
        .child(El::new("p").attr("id", "key-secret-note").class("notice").text(
            "Shown once: copy it now. The server keeps only a hash of it; if it is lost, revoke the key and create another.",
        ))
        .child(
            El::new("div")
                .class("controls")
                .child(
                    El::new("input")
                        .attr("id", "key-secret-value")
                        .attr("type", "text")
                        .attr("readonly", "")
                        .attr("aria-label", "Secret of the new key")
                        .attr("autocomplete", "off")
                        .attr("spellcheck", "false"),
                )
                .child(
                    El::new("button")
                        .attr("type", "button")
                        .attr("id", "copy-secret")
                        .text("Copy")
                        .on("click", |_| copy_secret()),
                )
                .child(
                    El::new("button")
                        .attr("type", "button")
                        .attr("id", "hide-secret")
                        .text("Done, hide it")
                        .on("click", |_| hide_secret()),
                ),
        )
        .child(El::new("p").attr("id", "copy-status").attr("role", "status").class("muted"));
    let _ = root.append_child(El::new("h1").text("API keys").el());
    let _ = root.append_child(
        El::new("p")
            .class("muted")
            .text("Named keys for cameras, kiosks, scripts and people. Each has a role; revoking one cuts off its requests, browser sessions and live connections at once.")
            .el(),
    );
    let _ = root.append_child(
        El::new("p").attr("id", "keys-error").attr("role", "alert").class("error").el(),
    );
    let _ = root.append_child(secret.el());
    let _ = root.append_child(form.el());
    let _ = root.append_child(El::new("h2").attr("id", "keys-list-title").text("Keys").el());
    let _ = root.append_child(
        El::new("div")
            .class("table-scroll")
            .child(
                El::new("table")
                    .attr("id", "keys-table")
                    .attr("aria-labelledby", "keys-list-title")
                    .child(
                        El::new("thead").child(
                            El::new("tr").children(
                                ["Name", "Role", "Created", "Expires", "State", ""]
                                    .map(|h| El::new("th").attr("scope", "col").text(h)),
                            ),
                        ),
                    )
                    .child(El::new("tbody").attr("id", "keys-list")),
            )
            .el(),
    );

    listen(form.el(), "submit", |event| {
        event.prevent_default();
        clear_messages();
        let days = value_of("f-expires_in_days").trim().to_owned();
        let expires_in_days = if days.is_empty() {
            None
        } else {
            match days.parse::<u32>() {
                Ok(days) => Some(days),
                Err(_) => {
                    set_field_message("expires_in_days", "a whole number of days, 1 to 3650");
                    return;
                }
            }
        };
        let key = NewKey {
            name: value_of("f-name").trim().to_owned(),
            role: value_of("f-role"),
            expires_at: None,
            expires_in_days,
        };
        spawn_local(async move {
            match api::create_key(&key).await {
                Ok(created) => {
                    if let Some(name) = by_id::<HtmlInputElement>("f-name") {
                        name.set_value("");
                    }
                    if let Some(days) = by_id::<HtmlInputElement>("f-expires_in_days") {
                        days.set_value("");
                    }
                    show_secret(&created.key, &created.secret);
                    refresh().await;
                }
                Err(error) => show_key_errors(&error),
            }
        });
    });
    spawn_local(refresh());
}

fn set_field_message(name: &str, message: &str) {
    if let Some(span) = by_id::<Element>(&format!("err-{name}")) {
        span.set_text_content(Some(message));
    }
    if let Some(input) = by_id::<Element>(&format!("f-{name}")) {
        let _ = input.set_attribute("aria-invalid", "true");
    }
}

fn clear_messages() {
    for name in KEY_FIELDS {
        if let Some(span) = by_id::<Element>(&format!("err-{name}")) {
            span.set_text_content(None);
        }
        if let Some(input) = by_id::<Element>(&format!("f-{name}")) {
            let _ = input.set_attribute("aria-invalid", "false");
        }
    }
    for id in ["form-error", "keys-error"] {
        if let Some(el) = by_id::<Element>(id) {
            el.set_text_content(None);
        }
    }
}

fn show_key_errors(error: &ApiError) {
    if *error == ApiError::Unauthorized {
        crate::navigate("#/login");
        return;
    }
    let mut beside = false;
    for name in KEY_FIELDS {
        if let Some(message) = error.field_message(name) {
            set_field_message(name, &message);
            beside = true;
        }
    }
    if let Some(form_error) = by_id::<Element>("form-error") {
        let text =
            if beside { "Check the fields marked above.".to_owned() } else { error.summary() };
        form_error.set_text_content(Some(&text));
    }
}

fn show_secret(key: &KeyView, secret: &str) {
    let (Some(section), Some(value)) =
        (by_id::<Element>("key-secret"), by_id::<HtmlInputElement>("key-secret-value"))
    else {
        return;
    };
    value.set_value(secret);
    if let Some(title) = by_id::<Element>("key-secret-title") {
        title.set_text_content(Some(&format!("Secret of “{}” ({})", key.name, key.role)));
    }
    if let Some(status) = by_id::<Element>("copy-status") {
        status.set_text_content(None);
    }
    set_hidden(&section, false);
    value.select();
    let _ = value.focus();
}

fn hide_secret() {
    if let Some(value) = by_id::<HtmlInputElement>("key-secret-value") {
        value.set_value("");
    }
    if let Some(section) = by_id::<Element>("key-secret") {
        set_hidden(&section, true);
    }
    if let Some(button) = by_id::<web_sys::HtmlElement>("create-key") {
        let _ = button.focus();
    }
}

/// Copies the secret with the asynchronous clipboard API (looked up at run time, so that a
/// browser without it, or a page served over plain HTTP to another host, still shows the
/// selected text to copy by hand).
fn copy_secret() {
    let Some(value) = by_id::<HtmlInputElement>("key-secret-value") else { return };
    value.select();
    let secret = value.value();
    let status = by_id::<Element>("copy-status");
    let say = move |text: &str| {
        if let Some(status) = &status {
            status.set_text_content(Some(text));
        }
    };
    let navigator: JsValue = window().navigator().into();
    let clipboard = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard"))
        .ok()
        .filter(|c| !c.is_undefined() && !c.is_null());
    let write = clipboard.as_ref().and_then(|c| {
        js_sys::Reflect::get(c, &JsValue::from_str("writeText"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
    });
    let (Some(clipboard), Some(write)) = (clipboard, write) else {
        say("This browser cannot copy here: the secret is selected, press Ctrl+C (⌘C).");
        return;
    };
    let Ok(promise) = write.call1(&clipboard, &JsValue::from_str(&secret)) else {
        say("Copy failed: the secret is selected, press Ctrl+C (⌘C).");
        return;
    };
    let Ok(promise) = promise.dyn_into::<js_sys::Promise>() else { return };
    spawn_local(async move {
        match wasm_bindgen_futures::JsFuture::from(promise).await {
            Ok(_) => say("Copied to the clipboard."),
            Err(_) => say("Copy failed: the secret is selected, press Ctrl+C (⌘C)."),
        }
    });
}

async fn refresh() {
    let Some(list) = by_id::<Element>("keys-list") else { return };
    match api::list_keys().await {
        Ok(keys) => render_keys(&list, &keys.items),
        Err(error) => {
            if let Some(target) = by_id::<Element>("keys-error") {
                show_error(&target, &error);
            }
        }
    }
}

fn render_keys(list: &Element, keys: &[KeyView]) {
    clear(list);
    if keys.is_empty() {
        let _ = list.append_child(
            El::new("tr")
                .child(El::new("td").attr("colspan", "6").class("empty").text("No keys yet."))
                .el(),
        );
        return;
    }
    for key in keys {
        let id = key.id;
        let state = match (&key.revoked_at, key.status.as_str()) {
            (Some(at), _) => format!("revoked {}", short_time(*at)),
            (None, status) => status.to_owned(),
        };
        let action = if key.revoked_at.is_none() {
            let armed = Rc::new(Cell::new(false));
            let name = key.name.clone();
            El::new("button")
                .attr("type", "button")
                .attr("id", &format!("revoke-{id}"))
                .attr("aria-label", &format!("Revoke key {name}"))
                .class("danger small")
                .text("Revoke")
                .on("click", move |event| revoke_clicked(&armed, id, &event))
        } else {
            El::new("span")
        };
        let row = El::new("tr")
            .attr("data-key-id", &id.to_string())
            .attr("data-status", &key.status)
            .child(El::new("th").attr("scope", "row").class("key-name").text(&key.name))
            .child(El::new("td").class("key-role").text(&key.role))
            .child(El::new("td").text(&short_time(key.created_at)))
            .child(El::new("td").text(&key.expires_at.map_or("never".to_owned(), short_time)))
            .child(El::new("td").class("key-state").text(&state))
            .child(El::new("td").child(action));
        let _ = list.append_child(row.el());
    }
}

/// Revoking takes two presses, like deleting a person.
fn revoke_clicked(armed: &Rc<Cell<bool>>, id: i64, event: &web_sys::Event) {
    if !second_press(armed, event, "Press again to revoke for good") {
        return;
    }
    spawn_local(async move {
        match api::revoke_key(id).await {
            Ok(()) => refresh().await,
            Err(error) => {
                if let Some(target) = by_id::<Element>("keys-error") {
                    show_error(&target, &error);
                }
            }
        }
    });
}
