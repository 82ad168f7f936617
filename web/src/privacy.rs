//! Privacy: the policy page (`#/privacy`, `GET /api/privacy/policy`, open to everyone) and the
//! person page's consent part (records, "Record consent", "Withdraw consent", the retention
//! date and the export archive).

use std::cell::Cell;
use std::rc::Rc;

use ddfr_protocol::{ConsentMethod, ConsentView, NewConsent, PersonPatch, PersonView};
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlInputElement};

use crate::api::{self, ApiError};
use crate::dom::{El, by_id, clear, listen, second_press, value_of};
use crate::keys::short_time;
use crate::people::{field, select, show_error};

/// Renders the privacy policy into `root`.
pub fn mount_policy(root: &Element) {
    clear(root);
    let _ = root.append_child(El::new("h1").text("Privacy").el());
    let error = El::new("p").attr("id", "privacy-error").attr("role", "alert").class("error");
    let _ = root.append_child(error.el());
    let body = El::new("div").attr("id", "privacy-policy").class("policy");
    let _ = root.append_child(body.el());
    spawn_local(async move {
        match api::privacy_policy().await {
            Ok(policy) => render_policy(body.el(), &policy),
            Err(e) => show_error(error.el(), &e),
        }
    });
}

fn render_policy(body: &Element, policy: &ddfr_protocol::PrivacyPolicy) {
    clear(body);
    let consent = if policy.consent_required {
        "Required: nobody's face is enrolled before a consent record is stored for them (who gave it, when, how, for what and for how long). Withdrawing consent deletes the person for good."
    } else {
        "Not required by this server's settings (a household enrolling its own members). Consent records can still be kept per person; withdrawing consent deletes the person for good."
    };
    let visitors = match (policy.unknown_visitors, policy.unknown_retention_days) {
        (true, Some(days)) => format!(
            "Recurring unknown visitors are kept: a face chip and the times seen, deleted {days} days after the visitor was last seen."
        ),
        (true, None) => "Recurring unknown visitors are kept.".to_owned(),
        (false, _) => "Unknown faces are not kept: recurring visitors are off.".to_owned(),
    };
    let facts = El::new("dl")
        .class("policy-facts")
        .child(El::new("dt").text("Notice version"))
        .child(El::new("dd").attr("id", "policy-version").text(&policy.notice_version))
        .child(El::new("dt").text("Consent"))
        .child(El::new("dd").attr("id", "policy-consent").text(consent))
        .child(El::new("dt").text("Enrolled persons"))
        .child(El::new("dd").attr("id", "policy-person-retention").text(&policy.person_retention))
        .child(El::new("dt").text("Unknown visitors"))
        .child(El::new("dd").attr("id", "policy-visitors").text(&visitors))
        .child(El::new("dt").text("Audit log"))
        .child(El::new("dd").text(&policy.audit_retention))
        .child(El::new("dt").text("Deletion runs"))
        .child(
            El::new("dd").text(&format!(
                "At every start and every {} hour(s).",
                policy.purge_interval_hours
            )),
        );
    let list = |id: &str, items: &[String]| {
        El::new("ul").attr("id", id).children(items.iter().map(|item| El::new("li").text(item)))
    };
    let _ = body.append_child(facts.el());
    let _ = body.append_child(El::new("h2").text("What is stored").el());
    let _ = body.append_child(list("policy-stored", &policy.stored).el());
    let _ = body.append_child(El::new("h2").text("What is never stored").el());
    let _ = body.append_child(list("policy-never-stored", &policy.never_stored).el());
}

/// The person page's privacy section (admin): retention date, export, consent records, the
/// "Record consent" form and "Withdraw consent".
pub fn person_section(root: &Element, person: &PersonView) {
    let id = person.id;
    let retention = El::new("form")
        .attr("id", "retention-form")
        .attr("novalidate", "")
        .child(
            El::new("p")
                .attr("id", "retain-current")
                .attr(
                    "data-retain-until",
                    &person.retain_until.map(|d| d.to_string()).unwrap_or_default(),
                )
                .text(&retention_text(person)),
        )
        .child(field(
            "retain_until",
            "Keep until a set date",
            El::new("input").attr("type", "date").attr("required", ""),
        ))
        .child(El::new("p").attr("id", "retention-status").attr("role", "status").class("muted"))
        .child(
            El::new("div")
                .class("actions")
                .child(
                    El::new("button")
                        .attr("type", "submit")
                        .attr("id", "save-retention")
                        .text("Save date"),
                )
                .child(
                    El::new("button")
                        .attr("type", "button")
                        .attr("id", "clear-retention")
                        .text("Use the server's rule")
                        .on("click", move |_| spawn_local(save_retention(id, None))),
                ),
        );
    listen(retention.el(), "submit", move |event| {
        event.prevent_default();
        let value = value_of("f-retain_until").trim().to_owned();
        if value.is_empty() {
            if let Some(err) = by_id::<Element>("err-retain_until") {
                err.set_text_content(Some("pick a date, or use the server's rule"));
            }
            return;
        }
        spawn_local(save_retention(id, Some(value)));
    });

    let methods: Vec<&str> = ConsentMethod::ALL.iter().map(|m| m.as_str()).collect();
    let consent_form = El::new("form")
        .attr("id", "consent-form")
        .attr("novalidate", "")
        .attr("aria-labelledby", "consent-form-title")
        .child(El::new("h3").attr("id", "consent-form-title").text("Record consent"))
        .child(field(
            "subject",
            "Given by",
            El::new("input")
                .attr("type", "text")
                .attr("autocomplete", "off")
                .attr("value", &format!("{} {}", person.name, person.surname)),
        ))
        .child(field("method", "How", select(&methods, "written")))
        .child(field(
            "given_at",
            "When (empty: now)",
            El::new("input").attr("type", "datetime-local"),
        ))
        .child(field(
            "notice_version",
            "Notice version shown",
            El::new("input").attr("type", "text").attr("autocomplete", "off"),
        ))
        .child(field(
            "purpose",
            "Purpose",
            El::new("input")
                .attr("type", "text")
                .attr("autocomplete", "off")
                .attr("value", "recognition at home by ddfr"),
        ))
        .child(field(
            "retention_term",
            "For how long",
            El::new("input")
                .attr("type", "text")
                .attr("autocomplete", "off")
                .attr("value", "until withdrawn"),
        ))
        .child(field(
            "recorded_by",
            "Recorded by",
            El::new("input").attr("type", "text").attr("autocomplete", "off"),
        ))
        .child(El::new("p").attr("id", "consent-error").attr("role", "alert").class("error"))
        .child(El::new("p").attr("id", "consent-status").attr("role", "status").class("muted"))
        .child(
            El::new("div").class("actions").child(
                El::new("button")
                    .attr("type", "submit")
                    .attr("id", "save-consent")
                    .class("primary")
                    .text("Record consent"),
            ),
        );
    listen(consent_form.el(), "submit", move |event| {
        event.prevent_default();
        let given_at = value_of("f-given_at").trim().to_owned();
        let body = NewConsent {
            subject: Some(value_of("f-subject")),
            // datetime-local is the browser's local time: send it as UTC.
            given_at: (!given_at.is_empty()).then(|| local_to_utc(&given_at)).flatten(),
            method: Some(value_of("f-method")),
            notice_version: Some(value_of("f-notice_version")),
            purpose: Some(value_of("f-purpose")),
            retention_term: Some(value_of("f-retention_term")),
            recorded_by: Some(value_of("f-recorded_by")),
        };
        spawn_local(async move {
            clear_consent_errors();
            match api::record_consent(id, &body).await {
                Ok(_) => {
                    if let Some(status) = by_id::<Element>("consent-status") {
                        status.set_text_content(Some("Consent recorded."));
                    }
                    // Photos refused for want of consent may be added now.
                    if let Some(hint) = by_id::<Element>("consent-hint") {
                        crate::dom::set_hidden(&hint, true);
                    }
                    if let Some(status) = by_id::<Element>("upload-status") {
                        status.set_text_content(None);
                    }
                    refresh_consents(id).await;
                }
                Err(e) => show_consent_errors(&e),
            }
        });
    });

    let withdraw = El::new("button")
        .attr("type", "button")
        .attr("id", "withdraw-consent")
        .attr("aria-describedby", "withdraw-note")
        .class("danger")
        .text("Withdraw consent…");
    let armed = Rc::new(Cell::new(false));
    listen(withdraw.el(), "click", move |event| {
        let confirm = "Press again: withdraw consent and delete this person for good";
        if !second_press(&armed, &event, confirm) {
            return;
        }
        spawn_local(async move {
            match api::withdraw_consent(id).await {
                Ok(()) => crate::navigate("#/people"),
                Err(e) => {
                    if let Some(error) = by_id::<Element>("consent-error") {
                        show_error(&error, &e);
                    }
                }
            }
        });
    });

    let section = El::new("section")
        .attr("id", "privacy-section")
        .attr("aria-labelledby", "privacy-title")
        .child(El::new("h2").attr("id", "privacy-title").text("Privacy and consent"))
        .child(retention)
        .child(
            El::new("p").child(
                El::new("a")
                    .attr("id", "export-person")
                    .attr("href", &api::export_url(id))
                    .attr("download", &format!("person-{id}.zip"))
                    .class("button")
                    .text("Export everything stored (ZIP)"),
            ),
        )
        .child(El::new("h3").attr("id", "consents-title").text("Consent records"))
        .child(
            El::new("ul")
                .attr("id", "consent-list")
                .attr("aria-labelledby", "consents-title")
                .class("consents"),
        )
        .child(consent_form)
        .child(El::new("h3").text("Withdraw consent"))
        .child(El::new("p").attr("id", "withdraw-note").class("muted").text(
            "Withdrawing consent deletes this person for good: details, face photos, stored face data and consent records. It cannot be undone.",
        ))
        .child(El::new("div").class("actions").child(withdraw));
    let _ = root.append_child(section.el());
    spawn_local(async move {
        // The notice version in force, as a starting value for the form.
        if let Ok(policy) = api::privacy_policy().await
            && let Some(input) = by_id::<HtmlInputElement>("f-notice_version")
            && input.value().is_empty()
        {
            input.set_value(&policy.notice_version);
        }
        refresh_consents(id).await;
    });
}

fn retention_text(person: &PersonView) -> String {
    match person.retain_until {
        Some(date) => format!(
            "Kept until {date}, then deleted for good: the date set here, or else the server's rule (a set time after the last match; see Privacy)."
        ),
        None => "Kept by the server's retention rule (see Privacy).".to_owned(),
    }
}

/// Sets (`Some`) or clears (`None`, back to the server's rule) the person's `retain_until`.
async fn save_retention(id: i64, date: Option<String>) {
    let patch = PersonPatch { retain_until: Some(date), ..PersonPatch::default() };
    let status = by_id::<Element>("retention-status");
    let err = by_id::<Element>("err-retain_until");
    if let Some(err) = &err {
        err.set_text_content(None);
    }
    match api::update_person(id, &patch).await {
        Ok(person) => {
            if let Some(current) = by_id::<Element>("retain-current") {
                current.set_text_content(Some(&retention_text(&person)));
                let date = person.retain_until.map(|d| d.to_string()).unwrap_or_default();
                let _ = current.set_attribute("data-retain-until", &date);
            }
            if let Some(input) = by_id::<HtmlInputElement>("f-retain_until") {
                input.set_value("");
            }
            if let Some(status) = status {
                status.set_text_content(Some("Saved."));
            }
        }
        Err(e) => match (e.field_message("retain_until"), err) {
            (Some(message), Some(err)) => err.set_text_content(Some(&message)),
            _ => {
                if let Some(status) = status {
                    show_error(&status, &e);
                }
            }
        },
    }
}

/// `YYYY-MM-DDTHH:MM` in the browser's time zone as RFC 3339 UTC.
fn local_to_utc(local: &str) -> Option<String> {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(local));
    if date.get_time().is_nan() {
        return None;
    }
    Some(String::from(date.to_iso_string()))
}

const CONSENT_FIELDS: [&str; 7] =
    ["subject", "given_at", "method", "notice_version", "purpose", "retention_term", "recorded_by"];

fn clear_consent_errors() {
    for name in CONSENT_FIELDS {
        if let Some(span) = by_id::<Element>(&format!("err-{name}")) {
            span.set_text_content(None);
        }
        if let Some(input) = by_id::<Element>(&format!("f-{name}")) {
            let _ = input.set_attribute("aria-invalid", "false");
        }
    }
    for id in ["consent-error", "consent-status"] {
        if let Some(el) = by_id::<Element>(id) {
            el.set_text_content(None);
        }
    }
}

fn show_consent_errors(error: &ApiError) {
    if *error == ApiError::Unauthorized {
        crate::navigate("#/login");
        return;
    }
    let mut beside = false;
    for name in CONSENT_FIELDS {
        if let Some(message) = error.field_message(name) {
            if let Some(span) = by_id::<Element>(&format!("err-{name}")) {
                span.set_text_content(Some(&message));
            }
            if let Some(input) = by_id::<Element>(&format!("f-{name}")) {
                let _ = input.set_attribute("aria-invalid", "true");
            }
            beside = true;
        }
    }
    if let Some(target) = by_id::<Element>("consent-error") {
        let text =
            if beside { "Check the fields marked above.".to_owned() } else { error.summary() };
        target.set_text_content(Some(&text));
    }
}

/// Reloads the consent records list.
pub async fn refresh_consents(id: i64) {
    let Some(list) = by_id::<Element>("consent-list") else { return };
    match api::list_consents(id).await {
        Ok(records) => render_consents(&list, &records),
        Err(e) => {
            if let Some(error) = by_id::<Element>("consent-error") {
                show_error(&error, &e);
            }
        }
    }
}

fn render_consents(list: &Element, records: &[ConsentView]) {
    clear(list);
    let _ = list.set_attribute("data-count", &records.len().to_string());
    if records.is_empty() {
        let _ = list.append_child(
            El::new("li").class("empty").text("No consent recorded for this person.").el(),
        );
        return;
    }
    for record in records {
        let item = El::new("li")
            .attr("data-consent-id", &record.id.to_string())
            .child(El::new("strong").text(&format!(
                "{} · {} · {}",
                record.subject,
                record.method,
                short_time(record.given_at)
            )))
            .child(El::new("span").class("meta").text(&format!(
                "Notice v{} · {} · {} · recorded by {} on {}",
                record.notice_version,
                record.purpose,
                record.retention_term,
                record.recorded_by,
                short_time(record.recorded_at)
            )));
        let _ = list.append_child(item.el());
    }
}
