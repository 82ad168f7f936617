//! People: the list (search, paging), the create/edit form with the server's field messages,
//! face samples (upload several photos, capture from the live view, thumbnails, delete).
//! For an operator key (read-only) the same pages show without any control that changes
//! something; the admin also gets the privacy section ([`crate::privacy::person_section`]).

use std::cell::Cell;
use std::rc::Rc;

use ddfr_protocol::{
    EnrollStatus, MAX_PAGE_LIMIT, NewPerson, PersonPatch, PersonView, PhotoResult, Relationship,
    Role,
};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlInputElement};

use crate::api::{self, ApiError};
use crate::dom::{El, by_id, clear, listen, second_press, value_of};

/// Persons per page.
const PAGE_SIZE: u32 = 20;

/// Shows a request failure; a 401 sends the user to the login page.
pub(crate) fn show_error(target: &Element, error: &ApiError) {
    if *error == ApiError::Unauthorized {
        crate::navigate("#/login");
        return;
    }
    target.set_text_content(Some(&error.summary()));
}

/// Renders the list page into `root`.
pub fn mount_list(root: &Element) {
    clear(root);
    let search = El::new("input")
        .attr("id", "search")
        .attr("type", "search")
        .attr("placeholder", "Search by name or surname")
        .attr("aria-label", "Search people");
    let mut toolbar =
        El::new("div").class("toolbar").child(El::new("h1").text("People")).child(search.clone());
    if crate::access().can_write() {
        toolbar = toolbar.child(
            El::new("a")
                .attr("href", "#/people/new")
                .class("button primary")
                .attr("id", "new-person")
                .text("New person"),
        );
    } else {
        toolbar = toolbar.child(
            El::new("span")
                .attr("id", "read-only-note")
                .class("muted")
                .text("Read-only: your key may look, not change."),
        );
    }
    let list = El::new("ul").attr("id", "people-list").class("people");
    let pager =
        El::new("nav").attr("id", "people-pager").attr("aria-label", "Pages").class("pager");
    let error = El::new("p").attr("id", "people-error").attr("role", "alert").class("error");
    let _ = root.append_child(toolbar.el());
    let _ = root.append_child(error.el());
    let _ = root.append_child(list.el());
    let _ = root.append_child(pager.el());

    let page = Rc::new(Cell::new(0u32));
    let generation = Rc::new(Cell::new(0u32));
    let refresh = {
        let page = page.clone();
        let generation = generation.clone();
        Rc::new(move || {
            let query = value_of("search").trim().to_lowercase();
            generation.set(generation.get() + 1);
            let this_generation = generation.get();
            let generation = generation.clone();
            let page_number = page.get();
            spawn_local(async move {
                let result = load_page(&query, page_number).await;
                // A newer keystroke started another load: drop this one.
                if generation.get() != this_generation {
                    return;
                }
                let (Some(list), Some(error)) =
                    (by_id::<Element>("people-list"), by_id::<Element>("people-error"))
                else {
                    return;
                };
                match result {
                    Ok((persons, total)) => {
                        error.set_text_content(None);
                        render_list(&list, &persons);
                        render_pager(page_number, total);
                    }
                    Err(e) => show_error(&error, &e),
                }
            });
        })
    };
    let on_search = refresh.clone();
    let search_page = page.clone();
    listen(search.el(), "input", move |_| {
        search_page.set(0);
        on_search();
    });
    let on_page = refresh.clone();
    listen(pager.el(), "click", move |event| {
        let Some(target) = event.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        let Some(to) = target.get_attribute("data-page").and_then(|p| p.parse::<u32>().ok()) else {
            return;
        };
        page.set(to);
        on_page();
    });
    refresh();
}

/// One page of persons: server-side paging without a query, else every person filtered here
/// (the API has no search parameter; a household's list is small).
async fn load_page(query: &str, page: u32) -> Result<(Vec<PersonView>, u64), ApiError> {
    if query.is_empty() {
        let list = api::list_persons(PAGE_SIZE, page * PAGE_SIZE).await?;
        return Ok((list.items, list.total));
    }
    let mut all = Vec::new();
    loop {
        let offset = u32::try_from(all.len()).unwrap_or(u32::MAX);
        let list = api::list_persons(MAX_PAGE_LIMIT, offset).await?;
        let got = list.items.len();
        all.extend(list.items);
        if got == 0 || all.len() as u64 >= list.total {
            break;
        }
    }
    let matching: Vec<PersonView> = all
        .into_iter()
        .filter(|p| format!("{} {}", p.name, p.surname).to_lowercase().contains(query))
        .collect();
    let total = matching.len() as u64;
    let start = (page * PAGE_SIZE) as usize;
    Ok((matching.into_iter().skip(start).take(PAGE_SIZE as usize).collect(), total))
}

fn render_list(list: &Element, persons: &[PersonView]) {
    clear(list);
    if persons.is_empty() {
        let _ = list.append_child(El::new("li").class("empty").text("Nobody here yet.").el());
        return;
    }
    for person in persons {
        let faces = match person.faces {
            1 => "1 face".to_owned(),
            n => format!("{n} faces"),
        };
        let item = El::new("li").child(
            El::new("a")
                .attr("href", &format!("#/people/{}", person.id))
                .attr("data-person-id", &person.id.to_string())
                .child(El::new("strong").text(&format!("{} {}", person.name, person.surname)))
                .child(El::new("span").class("meta").text(&format!(
                    "{} · {} · {} · {}",
                    person.age,
                    person.relationship.as_str(),
                    person.role.as_str(),
                    faces
                ))),
        );
        let _ = list.append_child(item.el());
    }
}

fn render_pager(page: u32, total: u64) {
    let Some(pager) = by_id::<Element>("people-pager") else { return };
    clear(&pager);
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let first = u64::from(page) * u64::from(PAGE_SIZE);
    let shown = if total == 0 {
        "0 people".to_owned()
    } else {
        format!("{}–{} of {total}", first + 1, (first + u64::from(PAGE_SIZE)).min(total))
    };
    let prev = El::new("button").attr("type", "button").text("← Previous");
    if page > 0 {
        let _ = prev.el().set_attribute("data-page", &(page - 1).to_string());
    } else {
        let _ = prev.el().set_attribute("disabled", "");
    }
    let next = El::new("button").attr("type", "button").text("Next →");
    if u64::from(page) + 1 < pages {
        let _ = next.el().set_attribute("data-page", &(page + 1).to_string());
    } else {
        let _ = next.el().set_attribute("disabled", "");
    }
    let _ = pager.append_child(prev.el());
    let _ = pager.append_child(El::new("span").text(&shown).el());
    let _ = pager.append_child(next.el());
}

/// One labelled field with the place for its server message.
pub(crate) fn field(id: &str, label: &str, input: El) -> El {
    El::new("div")
        .class("field")
        .child(El::new("label").attr("for", &format!("f-{id}")).text(label))
        .child(
            input
                .attr("id", &format!("f-{id}"))
                .attr("name", id)
                .attr("aria-describedby", &format!("err-{id}")),
        )
        .child(
            El::new("span")
                .class("field-error")
                .attr("id", &format!("err-{id}"))
                .attr("aria-live", "polite"),
        )
}

pub(crate) fn select(options: &[&str], selected: &str) -> El {
    let mut el = El::new("select");
    for value in options {
        let mut option = El::new("option").attr("value", value).text(value);
        if *value == selected {
            option = option.attr("selected", "");
        }
        el = el.child(option);
    }
    el
}

pub(crate) const FIELDS: [&str; 5] = ["name", "surname", "birthday", "relationship", "role"];

pub(crate) fn show_field_errors(error: &ApiError) {
    for name in FIELDS {
        if let Some(span) = by_id::<Element>(&format!("err-{name}")) {
            span.set_text_content(error.field_message(name).as_deref());
        }
        if let Some(input) = by_id::<Element>(&format!("f-{name}")) {
            let invalid = error.field_message(name).is_some();
            let _ = input.set_attribute("aria-invalid", if invalid { "true" } else { "false" });
        }
    }
    if let Some(form_error) = by_id::<Element>("form-error") {
        if *error == ApiError::Unauthorized {
            crate::navigate("#/login");
            return;
        }
        // Messages shown beside their fields need no repeating here.
        let all_beside_fields = matches!(error, ApiError::Http { fields, .. }
            if !fields.is_empty() && fields.iter().all(|f| by_id::<Element>(&format!("err-{}", f.field)).is_some()));
        let text = if all_beside_fields {
            "Check the fields marked above.".to_owned()
        } else {
            error.summary()
        };
        form_error.set_text_content(Some(&text));
    }
}

pub(crate) fn clear_field_errors() {
    for name in FIELDS {
        if let Some(span) = by_id::<Element>(&format!("err-{name}")) {
            span.set_text_content(None);
        }
    }
    if let Some(form_error) = by_id::<Element>("form-error") {
        form_error.set_text_content(None);
    }
}

/// Renders the form for a new person (`person` None) or for editing one.
fn person_form(person: Option<&PersonView>) -> El {
    let relationships: Vec<&str> = Relationship::ALL.iter().map(|r| r.as_str()).collect();
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let value = |f: fn(&PersonView) -> String| person.map(f).unwrap_or_default();
    El::new("form")
        .attr("id", "person-form")
        .attr("novalidate", "")
        .child(field(
            "name",
            "Name",
            El::new("input")
                .attr("type", "text")
                .attr("autocomplete", "off")
                .attr("value", &value(|p| p.name.clone())),
        ))
        .child(field(
            "surname",
            "Surname",
            El::new("input")
                .attr("type", "text")
                .attr("autocomplete", "off")
                .attr("value", &value(|p| p.surname.clone())),
        ))
        .child(field(
            "birthday",
            "Birthday",
            El::new("input").attr("type", "date").attr("value", &value(|p| p.birthday.to_string())),
        ))
        .child(field(
            "relationship",
            "Relationship",
            select(
                &relationships,
                &person.map_or("altro".to_owned(), |p| p.relationship.as_str().to_owned()),
            ),
        ))
        .child(field(
            "role",
            "Role",
            select(&roles, &person.map_or("guest".to_owned(), |p| p.role.as_str().to_owned())),
        ))
        .child(El::new("p").attr("id", "form-error").attr("role", "alert").class("error"))
        .child(
            El::new("div").class("actions").child(
                El::new("button")
                    .attr("type", "submit")
                    .attr("id", "save-person")
                    .class("primary")
                    .text(if person.is_some() { "Save" } else { "Create" }),
            ),
        )
}

fn typed_fields() -> [Option<String>; 5] {
    FIELDS.map(|name| Some(value_of(&format!("f-{name}"))))
}

/// The new-person page.
pub fn mount_new(root: &Element) {
    clear(root);
    let form = person_form(None);
    let _ = root.append_child(El::new("a").attr("href", "#/people").text("← People").el());
    let _ = root.append_child(El::new("h1").text("New person").el());
    let _ = root.append_child(form.el());
    listen(form.el(), "submit", move |event| {
        event.prevent_default();
        clear_field_errors();
        let [name, surname, birthday, relationship, role] = typed_fields();
        let body = NewPerson { name, surname, birthday, relationship, role, retain_until: None };
        spawn_local(async move {
            match api::create_person(&body).await {
                Ok(person) => crate::navigate(&format!("#/people/{}", person.id)),
                Err(error) => show_field_errors(&error),
            }
        });
    });
}

/// The person page: edit form, delete, face samples.
pub fn mount_person(root: &Element, id: i64) {
    clear(root);
    let _ = root.append_child(El::new("a").attr("href", "#/people").text("← People").el());
    let error = El::new("p").attr("id", "person-error").attr("role", "alert").class("error");
    let _ = root.append_child(error.el());
    let root = root.clone();
    spawn_local(async move {
        let person = match api::get_person(id).await {
            Ok(person) => person,
            Err(e) => {
                show_error(error.el(), &e);
                return;
            }
        };
        if crate::access().can_write() {
            render_person(&root, &person);
            crate::privacy::person_section(&root, &person);
        } else {
            render_person_read_only(&root, &person);
        }
        refresh_faces(id).await;
    });
}

/// The person page for an operator key: the fields shown disabled, the face photos without
/// controls.
fn render_person_read_only(root: &Element, person: &PersonView) {
    let _ = root.append_child(
        El::new("h1")
            .attr("id", "person-title")
            .text(&format!("{} {}", person.name, person.surname))
            .el(),
    );
    let _ = root.append_child(
        El::new("p")
            .attr("id", "read-only-note")
            .class("muted")
            .text("Read-only: your key may look at this person, not change them.")
            .el(),
    );
    let form = person_form(Some(person));
    if let Ok(controls) = form.el().query_selector_all("input, select") {
        for i in 0..controls.length() {
            if let Some(control) = controls.get(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                let _ = control.set_attribute("disabled", "");
            }
        }
    }
    if let Ok(Some(actions)) = form.el().query_selector(".actions") {
        actions.remove();
    }
    let _ = root.append_child(form.el());
    let kept = match person.retain_until {
        Some(date) => format!("Kept until {date}."),
        None => "Kept by the server's retention rule (see Privacy).".to_owned(),
    };
    let _ = root.append_child(El::new("p").class("muted").text(&kept).el());
    let faces = El::new("section")
        .attr("aria-labelledby", "faces-title")
        .child(El::new("h2").attr("id", "faces-title").text("Face photos"))
        .child(El::new("ul").attr("id", "face-grid").class("faces"));
    let _ = root.append_child(faces.el());
}

fn render_person(root: &Element, person: &PersonView) {
    let id = person.id;
    let _ = root.append_child(
        El::new("h1")
            .attr("id", "person-title")
            .text(&format!("{} {}", person.name, person.surname))
            .el(),
    );
    let form = person_form(Some(person));
    let _ = root.append_child(form.el());
    listen(form.el(), "submit", move |event| {
        event.prevent_default();
        clear_field_errors();
        let [name, surname, birthday, relationship, role] = typed_fields().map(Some);
        let patch = PersonPatch { name, surname, birthday, relationship, role, retain_until: None };
        spawn_local(async move {
            match api::update_person(id, &patch).await {
                Ok(person) => {
                    if let Some(title) = by_id::<Element>("person-title") {
                        title
                            .set_text_content(Some(&format!("{} {}", person.name, person.surname)));
                    }
                    if let Some(form_error) = by_id::<Element>("form-error") {
                        form_error.set_text_content(Some("Saved."));
                    }
                }
                Err(error) => show_field_errors(&error),
            }
        });
    });

    // Deleting takes two presses: a dialog would block keyboard users and automated tests alike.
    let delete = El::new("button")
        .attr("type", "button")
        .attr("id", "delete-person")
        .class("danger")
        .text("Delete person");
    let armed = Rc::new(Cell::new(false));
    listen(delete.el(), "click", move |event| {
        if !second_press(&armed, &event, "Press again to delete for good") {
            return;
        }
        spawn_local(async move {
            match api::delete_person(id).await {
                Ok(()) => crate::navigate("#/people"),
                Err(e) => {
                    if let Some(error) = by_id::<Element>("person-error") {
                        show_error(&error, &e);
                    }
                }
            }
        });
    });
    let _ = root.append_child(El::new("div").class("actions").child(delete).el());

    let upload = El::new("input")
        .attr("type", "file")
        .attr("id", "face-upload")
        .attr("multiple", "")
        .attr("accept", "image/jpeg,image/png,image/webp");
    let capture = El::new("button")
        .attr("type", "button")
        .attr("id", "capture-face")
        .text("Capture from camera");
    let faces = El::new("section")
        .attr("aria-labelledby", "faces-title")
        .child(El::new("h2").attr("id", "faces-title").text("Face photos"))
        .child(
            El::new("div")
                .class("controls")
                .child(El::new("label").attr("for", "face-upload").text("Add photos"))
                .child(upload.clone())
                .child(capture.clone()),
        )
        .child(El::new("p").attr("id", "upload-status").attr("role", "status").class("muted"))
        .child(
            El::new("p").attr("id", "consent-hint").attr("hidden", "").child(
                El::new("button")
                    .attr("type", "button")
                    .attr("id", "go-to-consent")
                    .text("Go to \u{201c}Record consent\u{201d}")
                    .on("click", |event| {
                        event.prevent_default();
                        if let Some(first) = by_id::<web_sys::HtmlElement>("f-subject") {
                            first.scroll_into_view();
                            let _ = first.focus();
                        }
                    }),
            ),
        )
        .child(
            El::new("ul").attr("id", "upload-results").class("results").attr("aria-live", "polite"),
        )
        .child(El::new("ul").attr("id", "face-grid").class("faces"));
    let _ = root.append_child(faces.el());

    listen(upload.el(), "change", move |event| {
        let Some(input) = event.target().and_then(|t| t.dyn_into::<HtmlInputElement>().ok()) else {
            return;
        };
        let Some(files) = input.files() else { return };
        let files: Vec<web_sys::File> = (0..files.length()).filter_map(|i| files.get(i)).collect();
        input.set_value("");
        spawn_local(upload_photos(id, files));
    });
    listen(capture.el(), "click", move |_| {
        spawn_local(async move {
            let outcome = match crate::live::capture_photo().await {
                Ok(photo) => api::add_face(id, &photo, "camera.jpg").await,
                Err(reason) => Err(ApiError::Network(reason)),
            };
            report_capture(&outcome);
            refresh_faces(id).await;
        });
    });
}

/// Sends the chosen photos with the batch route, at most [`BATCH_MAX_PHOTOS`] and about
/// [`BATCH_MAX_BYTES`] per request, and lists each photo's outcome beside its file name.
async fn upload_photos(id: i64, files: Vec<web_sys::File>) {
    if let Some(results) = by_id::<Element>("upload-results") {
        clear(&results);
    }
    if let Some(hint) = by_id::<Element>("consent-hint") {
        crate::dom::set_hidden(&hint, true);
    }
    let status = by_id::<Element>("upload-status");
    let set_status = |text: &str| {
        if let Some(status) = &status {
            status.set_text_content(Some(text));
        }
    };
    let total = files.len();
    let mut done = 0;
    for chunk in batches(&files) {
        set_status(&match total {
            1 => "Uploading 1 photo…".to_owned(),
            n => format!("Uploading photos {}–{} of {n}…", done + 1, done + chunk.len()),
        });
        match api::add_faces(id, chunk).await {
            Ok(reply) => {
                for (index, file) in chunk.iter().enumerate() {
                    // The server answers in upload order; `index` is the position in this request.
                    match reply.results.iter().find(|r| r.index == index) {
                        Some(result) => report_photo(&file.name(), result),
                        None => report_failure(&file.name(), "the server did not answer for it"),
                    }
                }
            }
            Err(ApiError::Unauthorized) => {
                crate::navigate("#/login");
                return;
            }
            Err(error) if is_consent_required(&error) => {
                for file in chunk {
                    report_failure(&file.name(), CONSENT_NEEDED);
                }
                point_at_consent_form();
            }
            Err(error) => {
                for file in chunk {
                    report_failure(&file.name(), &error.summary());
                }
            }
        }
        done += chunk.len();
    }
    let refused_for_consent = by_id::<Element>("consent-hint")
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        .is_some_and(|e| !e.hidden());
    if !refused_for_consent {
        set_status("");
    }
    refresh_faces(id).await;
}

/// Shown when the server refuses a photo with 409 `consent_required`.
const CONSENT_NEEDED: &str = "not stored — this server needs a consent record before a face is enrolled. Record the person's consent below (\u{201c}Record consent\u{201d}), then add the photo again.";

fn is_consent_required(error: &ApiError) -> bool {
    matches!(error, ApiError::Http { status: 409, code, .. } if code == "consent_required")
}

/// Says why photos were refused and moves the keyboard focus to the consent form.
fn point_at_consent_form() {
    if let Some(status) = by_id::<Element>("upload-status") {
        status.set_text_content(Some(
            "Consent is required first: fill in \u{201c}Record consent\u{201d} below, then add the photos again.",
        ));
    }
    if let Some(link) = by_id::<Element>("consent-hint") {
        crate::dom::set_hidden(&link, false);
    }
    if let Some(first) = by_id::<web_sys::HtmlElement>("f-subject") {
        let _ = first.focus();
    }
}

/// Photos one batch request may carry (the server's limit).
const BATCH_MAX_PHOTOS: usize = 10;
/// Bytes of photos per batch request: below the server's 40 MiB body limit with room for the
/// multipart overhead. A larger photo goes alone (and the server says why it is refused).
const BATCH_MAX_BYTES: f64 = 32.0 * 1024.0 * 1024.0;

/// Splits the files into requests of at most [`BATCH_MAX_PHOTOS`] photos and about
/// [`BATCH_MAX_BYTES`] bytes.
fn batches(files: &[web_sys::File]) -> Vec<&[web_sys::File]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0.0);
    for (i, file) in files.iter().enumerate() {
        let size = file.size();
        let full = i - start == BATCH_MAX_PHOTOS || (i > start && bytes + size > BATCH_MAX_BYTES);
        if full {
            out.push(&files[start..i]);
            (start, bytes) = (i, 0.0);
        }
        bytes += size;
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

/// One photo's outcome from the batch route: accepted, skipped as a duplicate, or rejected
/// with the server's code and reason.
fn report_photo(name: &str, result: &PhotoResult) {
    let reason = match (&result.code, &result.message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        (None, Some(message)) => message.clone(),
        (None, None) => String::new(),
    };
    let (class, text) = match result.status {
        EnrollStatus::Enrolled => ("accepted", format!("{name}: accepted")),
        EnrollStatus::Skipped => {
            ("skipped", format!("{name}: skipped, already enrolled — {reason}"))
        }
        EnrollStatus::Rejected => ("rejected", format!("{name}: rejected — {reason}")),
    };
    add_result(class, &text);
}

fn report_failure(name: &str, reason: &str) {
    add_result("rejected", &format!("{name}: rejected — {reason}"));
}

fn add_result(class: &str, text: &str) {
    let Some(results) = by_id::<Element>("upload-results") else { return };
    let _ = results
        .append_child(El::new("li").class(class).attr("data-outcome", class).text(text).el());
}

/// The outcome of a camera capture (the single-photo route).
fn report_capture(outcome: &Result<ddfr_protocol::FaceView, ApiError>) {
    let name = "Camera capture";
    match outcome {
        Ok(_) => add_result("accepted", &format!("{name}: accepted")),
        Err(error) if is_consent_required(error) => {
            report_failure(name, CONSENT_NEEDED);
            point_at_consent_form();
        }
        Err(ApiError::Http { code, message, .. }) => {
            report_failure(name, &format!("{code}: {message}"));
        }
        Err(other) => report_failure(name, &other.summary()),
    }
}

async fn refresh_faces(id: i64) {
    let Some(grid) = by_id::<Element>("face-grid") else { return };
    let faces = match api::list_faces(id).await {
        Ok(faces) => faces,
        Err(e) => {
            if let Some(error) = by_id::<Element>("person-error") {
                show_error(&error, &e);
            }
            return;
        }
    };
    clear(&grid);
    if faces.is_empty() {
        let _ = grid.append_child(
            El::new("li")
                .class("empty")
                .text("No face photos yet: add one so this person can be recognised.")
                .el(),
        );
    }
    for face in faces {
        let face_id = face.id;
        let remove = El::new("button")
            .attr("type", "button")
            .attr("aria-label", &format!("Delete face sample {face_id}"))
            .class("danger small")
            .text("Delete")
            .on("click", move |_| {
                spawn_local(async move {
                    match api::delete_face(id, face_id).await {
                        Ok(()) => refresh_faces(id).await,
                        Err(e) => {
                            if let Some(error) = by_id::<Element>("person-error") {
                                show_error(&error, &e);
                            }
                        }
                    }
                });
            });
        let mut item = El::new("li").attr("data-face-id", &face_id.to_string()).child(
            El::new("img")
                .attr("src", &api::face_crop_url(id, face_id))
                .attr("alt", &format!("Enrolled face {face_id}"))
                .attr("width", "96")
                .attr("height", "96")
                .attr("loading", "lazy"),
        );
        if crate::access().can_write() {
            item = item.child(remove);
        }
        let _ = grid.append_child(item.el());
    }
}
