//! The Visitors page (`#/visitors`, `#/visitors/{id}`): the recurring unknown visitors a
//! server keeps when its opt-in unknown-visitor feature is on, each with its face chip,
//! sightings and first/last seen; "Add as person" (promote, with the person form and the
//! server's messages beside the fields) and "Forget" (delete, two presses).
//!
//! A visitor's short name ("Visitor K7QF") comes from its anonymous id, so the live view and
//! this page call the same stranger the same.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ddfr_protocol::{NewPerson, Relationship, UnknownList, UnknownView};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlElement};

use crate::api::{self, ApiError};
use crate::dom::{El, by_id, clear, document, listen, set_hidden, set_timeout, value_of, window};
use crate::people::{FIELDS, clear_field_errors, field, select, show_error, show_field_errors};

/// How often the open page asks for new sightings.
const REFRESH_MS: i32 = 5_000;
/// Crockford's base 32 alphabet (no I, L, O, U: nothing to misread).
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of a visitor's short code: 20 bits of its random 48-bit id, so two of a
/// household's few dozen visitors almost never share one (the full id is in the tooltip).
const CODE_CHARS: usize = 4;

/// The short code of a visitor id: the low 20 bits in Crockford base 32, e.g. `K7QF`.
pub fn visitor_code(id: i64) -> String {
    let mut bits = id.rem_euclid(1 << (5 * CODE_CHARS));
    let mut code = [b'0'; CODE_CHARS];
    for slot in code.iter_mut().rev() {
        *slot = CODE_ALPHABET[(bits % 32) as usize];
        bits /= 32;
    }
    code.iter().map(|&b| char::from(b)).collect()
}

/// What the app calls a recurring visitor: `Visitor K7QF`.
pub fn visitor_name(id: i64) -> String {
    format!("Visitor {}", visitor_code(id))
}

/// "just now", "5 min ago", "3 h ago", "2 days ago" for a duration in milliseconds.
fn ago(millis: f64) -> String {
    let minutes = (millis / 60_000.0).floor();
    if minutes < 1.0 {
        "just now".to_owned()
    } else if minutes < 60.0 {
        format!("{minutes:.0} min ago")
    } else if minutes < 48.0 * 60.0 {
        format!("{:.0} h ago", (minutes / 60.0).floor())
    } else {
        format!("{:.0} days ago", (minutes / (24.0 * 60.0)).floor())
    }
}

/// "Seen once", "Seen 4 times".
fn sightings_text(sightings: u64) -> String {
    match sightings {
        1 => "Seen once".to_owned(),
        n => format!("Seen {n} times"),
    }
}

thread_local! {
    /// Bumped on every mount: an older page's refresh loop stops when it sees a newer one.
    static GENERATION: Cell<u32> = const { Cell::new(0) };
}

/// What is shown, to re-render only when something changed.
#[derive(Default)]
struct PageState {
    key: String,
    /// The visitor whose "Add as person" form is open; the list is not refreshed meanwhile.
    promoting: Option<i64>,
    /// The visitor whose "Forget" button was pressed once.
    armed: Option<i64>,
}

type Shared = Rc<RefCell<PageState>>;

/// Renders the Visitors page into `root`; `focus` is a visitor to scroll to (from the live
/// view's "Who is this?" link).
pub fn mount(root: &Element, focus: Option<i64>) {
    clear(root);
    let generation = GENERATION.with(|g| {
        g.set(g.get() + 1);
        g.get()
    });
    let state: Shared = Rc::new(RefCell::new(PageState::default()));
    let refresh_button =
        El::new("button").attr("type", "button").attr("id", "visitors-refresh").text("Refresh");
    let toolbar = El::new("div")
        .class("toolbar")
        .child(El::new("h1").text("Visitors"))
        .child(refresh_button.clone());
    let _ = root.append_child(toolbar.el());
    let _ = root.append_child(El::new("p").attr("id", "visitors-intro").class("muted").el());
    let _ = root.append_child(
        El::new("p").attr("id", "visitors-error").attr("role", "alert").class("error").el(),
    );
    let _ = root.append_child(El::new("ul").attr("id", "visitor-list").class("visitors").el());
    let for_button = state.clone();
    listen(refresh_button.el(), "click", move |_| {
        let state = for_button.clone();
        spawn_local(async move { load(&state, None, true).await });
    });
    let first = state.clone();
    spawn_local(async move {
        load(&first, focus, true).await;
        schedule_refresh(first, generation);
    });
}

/// Reloads the list every [`REFRESH_MS`] while this page is shown.
fn schedule_refresh(state: Shared, generation: u32) {
    set_timeout(REFRESH_MS, move || {
        let current = GENERATION.with(Cell::get) == generation;
        let on_page = window().location().hash().unwrap_or_default().starts_with("#/visitors");
        if !current || !on_page {
            return;
        }
        spawn_local(async move {
            load(&state, None, false).await;
            schedule_refresh(state, generation);
        });
    });
}

/// Fetches the list and renders it when it changed (or when `force`), keeping keyboard focus.
async fn load(state: &Shared, focus: Option<i64>, force: bool) {
    let result = api::list_unknowns().await;
    let (Some(list), Some(error), Some(intro)) = (
        by_id::<Element>("visitor-list"),
        by_id::<Element>("visitors-error"),
        by_id::<Element>("visitors-intro"),
    ) else {
        return;
    };
    let visitors = match result {
        Ok(visitors) => visitors,
        Err(e) => {
            show_error(&error, &e);
            return;
        }
    };
    error.set_text_content(None);
    intro.set_text_content(Some(&intro_text(&visitors)));
    {
        let s = state.borrow();
        // An open form or an armed "Forget" would be lost by a re-render: wait for the user.
        if !force && (s.promoting.is_some() || s.armed.is_some()) {
            return;
        }
    }
    let key = visitors
        .items
        .iter()
        .map(|v| format!("{}:{}:{}", v.id, v.sightings, v.last_seen))
        .collect::<Vec<_>>()
        .join(",");
    if !force && state.borrow().key == key {
        return;
    }
    let focused = document().active_element().map(|e| e.id()).filter(|id| !id.is_empty());
    {
        let mut s = state.borrow_mut();
        s.key = key;
        s.promoting = None;
        s.armed = None;
    }
    render_list(&list, &visitors, state);
    if let Some(id) = focused
        && let Some(element) = by_id::<HtmlElement>(&id)
    {
        let _ = element.focus();
    }
    if let Some(id) = focus {
        focus_visitor(id, &visitors);
    }
}

fn intro_text(visitors: &UnknownList) -> String {
    if !visitors.enabled {
        return "This server does not keep recurring visitors: nothing the camera sees is \
                stored. Its owner can turn the feature on with DDFR_UNKNOWN_VISITORS=true."
            .to_owned();
    }
    let days = match visitors.retention_days {
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    };
    format!(
        "Strangers the camera has seen, each under a short code that stays the same when they \
         come back. Each is kept for {days} after it was last seen: add someone you know as a \
         person so the camera names them, or forget them."
    )
}

/// Scrolls to a visitor and focuses its first button (the live view's "Who is this?").
fn focus_visitor(id: i64, visitors: &UnknownList) {
    if !visitors.items.iter().any(|v| v.id == id) {
        if let Some(error) = by_id::<Element>("visitors-error") {
            error.set_text_content(Some(&format!(
                "{} is not listed yet (or was forgotten); the list refreshes by itself.",
                visitor_name(id)
            )));
        }
        return;
    }
    if let Some(card) = by_id::<Element>(&format!("visitor-{id}")) {
        let _ = card.class_list().add_1("highlight");
        card.scroll_into_view();
    }
    if let Some(button) = by_id::<HtmlElement>(&format!("promote-{id}")) {
        let _ = button.focus();
    }
}

fn render_list(list: &Element, visitors: &UnknownList, state: &Shared) {
    clear(list);
    if !visitors.enabled {
        return;
    }
    if visitors.items.is_empty() {
        let _ = list.append_child(
            El::new("li")
                .class("empty")
                .text("No recurring visitors yet: strangers appear here once the camera has seen them.")
                .el(),
        );
        return;
    }
    let now = js_sys::Date::now();
    for visitor in &visitors.items {
        let _ = list.append_child(card(visitor, now, state).el());
    }
}

/// A `<time>` with the local date and time, and the UTC instant as its `datetime`.
fn time(at: ddfr_protocol::Timestamp) -> El {
    let date = js_sys::Date::new(&JsValue::from_f64(at.unix_millis() as f64));
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into());
    let _ = js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into());
    let text: String = date.to_locale_string("default", &options).into();
    El::new("time").attr("datetime", &at.to_string()).text(&text)
}

fn card(visitor: &UnknownView, now: f64, state: &Shared) -> El {
    let id = visitor.id;
    let name = visitor_name(id);
    let heading_id = format!("visitor-name-{id}");
    let chip = match &visitor.crop_url {
        Some(url) => El::new("img")
            .attr("src", url)
            .attr("alt", &format!("Face of {name}"))
            .attr("width", "96")
            .attr("height", "96")
            .attr("loading", "lazy"),
        None => El::new("div").class("no-chip").text("no photo"),
    };
    let last_seen_ago = ago(now - visitor.last_seen.unix_millis() as f64);
    let facts = El::new("dl")
        .class("visitor-facts")
        .child(El::new("dt").text("First seen"))
        .child(El::new("dd").child(time(visitor.first_seen)))
        .child(El::new("dt").text("Last seen"))
        .child(
            El::new("dd")
                .child(time(visitor.last_seen))
                .child(El::new("span").class("muted").text(&format!(" ({last_seen_ago})"))),
        )
        .child(El::new("dt").text("Kept until"))
        .child(El::new("dd").child(time(visitor.expires_at)));
    let promote = El::new("button")
        .attr("type", "button")
        .attr("id", &format!("promote-{id}"))
        .attr("aria-expanded", "false")
        .attr("aria-controls", &format!("promote-panel-{id}"))
        .attr("aria-describedby", &heading_id)
        .class("primary")
        .text("Add as person");
    let forget = El::new("button")
        .attr("type", "button")
        .attr("id", &format!("forget-{id}"))
        .attr("aria-describedby", &heading_id)
        .class("danger")
        .text("Forget");
    let panel = El::new("div")
        .attr("id", &format!("promote-panel-{id}"))
        .class("promote-panel")
        .attr("hidden", "");
    let for_promote = state.clone();
    listen(promote.el(), "click", move |_| toggle_promote(&for_promote, id));
    let for_forget = state.clone();
    listen(forget.el(), "click", move |event| forget_clicked(&for_forget, id, &event));
    El::new("li")
        .class("visitor")
        .attr("id", &format!("visitor-{id}"))
        .attr("data-visitor-id", &id.to_string())
        .attr("aria-labelledby", &heading_id)
        .child(chip)
        .child(
            El::new("div")
                .class("visitor-info")
                .child(
                    El::new("h2")
                        .attr("id", &heading_id)
                        .attr("title", &format!("Anonymous id {id}"))
                        .text(&name),
                )
                .child(
                    El::new("p")
                        .class("sightings")
                        .attr("data-sightings", &visitor.sightings.to_string())
                        .text(&sightings_text(visitor.sightings)),
                )
                .child(facts)
                .child(if crate::access().can_write() {
                    El::new("div").class("actions").child(promote).child(forget)
                } else {
                    El::new("p")
                        .class("muted")
                        .text("Read-only: only an admin may add or forget visitors.")
                }),
        )
        .child(panel)
}

/// Opens (or closes) the "Add as person" form under a visitor; only one form is open at once,
/// so its fields keep the person form's ids and messages.
fn toggle_promote(state: &Shared, id: i64) {
    let previous = state.borrow().promoting;
    if let Some(previous) = previous {
        close_promote(state, previous);
        if previous == id {
            return;
        }
    }
    let Some(panel) = by_id::<Element>(&format!("promote-panel-{id}")) else { return };
    clear(&panel);
    let _ = panel.append_child(promote_form(state, id).el());
    set_hidden(&panel, false);
    if let Some(button) = by_id::<Element>(&format!("promote-{id}")) {
        let _ = button.set_attribute("aria-expanded", "true");
    }
    state.borrow_mut().promoting = Some(id);
    if let Some(input) = by_id::<HtmlElement>("f-name") {
        let _ = input.focus();
    }
}

fn close_promote(state: &Shared, id: i64) {
    if let Some(panel) = by_id::<Element>(&format!("promote-panel-{id}")) {
        clear(&panel);
        set_hidden(&panel, true);
    }
    if let Some(button) = by_id::<Element>(&format!("promote-{id}")) {
        let _ = button.set_attribute("aria-expanded", "false");
    }
    state.borrow_mut().promoting = None;
}

fn promote_form(state: &Shared, id: i64) -> El {
    let relationships: Vec<&str> = Relationship::ALL.iter().map(|r| r.as_str()).collect();
    let cancel =
        El::new("button").attr("type", "button").attr("id", "promote-cancel").text("Cancel");
    let form = El::new("form")
        .attr("id", "promote-form")
        .attr("novalidate", "")
        .attr("aria-label", &format!("Add {} as a person", visitor_name(id)))
        .child(field(
            "name",
            "Name",
            El::new("input").attr("type", "text").attr("autocomplete", "off"),
        ))
        .child(field(
            "surname",
            "Surname",
            El::new("input").attr("type", "text").attr("autocomplete", "off"),
        ))
        .child(field("birthday", "Birthday", El::new("input").attr("type", "date")))
        .child(field("relationship", "Relationship", select(&relationships, "altro")))
        .child(
            El::new("p")
                .class("muted")
                .attr("id", "promote-role-note")
                .text("Added as a guest, with this visitor's face photos; change the role on the person's page."),
        )
        .child(El::new("p").attr("id", "form-error").attr("role", "alert").class("error"))
        .child(
            El::new("div")
                .class("actions")
                .child(
                    El::new("button")
                        .attr("type", "submit")
                        .attr("id", "promote-save")
                        .class("primary")
                        .text("Add person"),
                )
                .child(cancel.clone()),
        );
    let for_cancel = state.clone();
    listen(cancel.el(), "click", move |_| {
        close_promote(&for_cancel, id);
        if let Some(button) = by_id::<HtmlElement>(&format!("promote-{id}")) {
            let _ = button.focus();
        }
    });
    let for_escape = state.clone();
    listen(form.el(), "keydown", move |event| {
        if event.dyn_ref::<web_sys::KeyboardEvent>().is_some_and(|k| k.key() == "Escape") {
            close_promote(&for_escape, id);
            if let Some(button) = by_id::<HtmlElement>(&format!("promote-{id}")) {
                let _ = button.focus();
            }
        }
    });
    listen(form.el(), "submit", move |event| {
        event.prevent_default();
        clear_field_errors();
        let [name, surname, birthday, relationship] =
            ["name", "surname", "birthday", "relationship"]
                .map(|f| Some(value_of(&format!("f-{f}"))));
        // The role is left out: the server makes a promoted visitor a guest.
        let body =
            NewPerson { name, surname, birthday, relationship, role: None, retain_until: None };
        spawn_local(async move {
            match api::promote_unknown(id, &body).await {
                Ok(person) => crate::navigate(&format!("#/people/{}", person.id)),
                Err(error) => {
                    show_field_errors(&error);
                    // A field message moves the focus to the first field it concerns.
                    let first = FIELDS.iter().find(|f| error.field_message(f).is_some());
                    if let Some(input) = first.and_then(|f| by_id::<HtmlElement>(&format!("f-{f}")))
                    {
                        let _ = input.focus();
                    }
                    if matches!(&error, ApiError::Http { status: 404, .. })
                        && let Some(list) = by_id::<Element>("visitors-error")
                    {
                        list.set_text_content(Some(&error.summary()));
                    }
                }
            }
        });
    });
    form
}

/// "Forget" takes two presses, like deleting a person (a dialog would block keyboards and tests).
fn forget_clicked(state: &Shared, id: i64, event: &web_sys::Event) {
    let Some(button) = event.target().and_then(|t| t.dyn_into::<Element>().ok()) else { return };
    if state.borrow().armed != Some(id) {
        // Disarm any other card's button first.
        if let Some(other) = state.borrow().armed
            && let Some(other) = by_id::<Element>(&format!("forget-{other}"))
        {
            other.set_text_content(Some("Forget"));
        }
        state.borrow_mut().armed = Some(id);
        button.set_text_content(Some("Press again to forget for good"));
        return;
    }
    let state = state.clone();
    spawn_local(async move {
        match api::delete_unknown(id).await {
            Ok(()) => {
                {
                    let mut s = state.borrow_mut();
                    s.armed = None;
                    if s.promoting == Some(id) {
                        s.promoting = None;
                    }
                }
                load(&state, None, true).await;
                if let Some(heading) =
                    document().query_selector("#visitor-list h2, #visitors-refresh").ok().flatten()
                    && let Some(heading) = heading.dyn_ref::<HtmlElement>()
                {
                    let _ = heading.focus();
                }
            }
            Err(e) => {
                if let Some(error) = by_id::<Element>("visitors-error") {
                    show_error(&error, &e);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_codes_are_four_unambiguous_characters() {
        assert_eq!(visitor_code(0), "0000");
        assert_eq!(visitor_code(31), "000Z");
        assert_eq!(visitor_code(32), "0010");
        // Only the low 20 bits count.
        assert_eq!(visitor_code((1 << 20) + 33), visitor_code(33));
        let code = visitor_code(183_746_552_913);
        assert_eq!(code.len(), 4);
        assert!(code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert!(!code.contains(['I', 'L', 'O', 'U']));
        assert_eq!(visitor_name(32), "Visitor 0010");
    }

    #[test]
    fn wording() {
        assert_eq!(ago(10_000.0), "just now");
        assert_eq!(ago(5.0 * 60_000.0), "5 min ago");
        assert_eq!(ago(3.0 * 3_600_000.0), "3 h ago");
        assert_eq!(ago(3.0 * 86_400_000.0), "3 days ago");
        assert_eq!(sightings_text(1), "Seen once");
        assert_eq!(sightings_text(4), "Seen 4 times");
    }
}
