//! Durability, black box (`docs/reliability.md` DU-2 and DU-6), on the real `ddfr serve`.
//!
//! - **kill -9 loop** (DU-2): clients keep enrolling (create, add face photos from
//!   `$DDFR_TESTDATA`, patch, delete faces and persons) and record every write the server
//!   acknowledged; the server is SIGKILLed at a random moment (seeded, seed printed) and
//!   restarted on the same data dir. After every restart: it starts (its integrity check
//!   passes), every acknowledged write is there with exactly the acknowledged content, deletions
//!   stay deleted, the write in flight at the kill is either wholly there or wholly absent, no
//!   face lacks its crop or embedding, the index agrees with the database, and a photo each
//!   person was enrolled with is recognized as that person. A short run by default; 200 kills
//!   with `DDFR_LONG_TESTS=1`. `DDFR_DURABILITY_SEED=N` replays a run's random choices.
//! - **full disk** (DU-6): the data dir on a small tmpfs filled with a ballast file (needs root
//!   to mount; prints SKIPPED otherwise): enrollment answers 507 `storage_full`, nothing is
//!   half-written, recognition keeps working, and writes succeed again once space is back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use ddfr_core::ModelId;
use ddfr_e2e::{Server, ServerOptions, create_person, identity_photos, testdata};
use ddfr_store::{PersonStore, SqliteStore};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Set to `1` for the long kill loop.
const LONG_SWITCH: &str = "DDFR_LONG_TESTS";
/// Replays a run: the seed it printed.
const SEED_VAR: &str = "DDFR_DURABILITY_SEED";
/// Kills in the default (CI) run, about 3 s each on a busy 2-core machine.
const SHORT_KILLS: usize = 8;
/// Kills under [`LONG_SWITCH`].
const LONG_KILLS: usize = 200;
/// Concurrent clients, each with its own persons.
const CLIENTS: usize = 2;
/// Live persons per client at most (identities are never shared by two live persons, so a
/// recognized face names exactly one of them).
const MAX_PERSONS_PER_CLIENT: usize = 4;
/// The kill comes this long after the clients start, at random.
const KILL_DELAY_MS: std::ops::Range<u64> = 5..1500;
/// Persons whose enrolled photo is recognized after each restart, at most.
const RECOGNITIONS_PER_CHECK: usize = 4;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const RELATIONSHIPS: [&str; 6] = ["famiglia", "partner", "amico", "collega", "conoscente", "altro"];
const ROLES: [&str; 2] = ["user", "guest"];
const NAMES: [&str; 8] = ["Ada", "Bruno", "Carla", "Dario", "Elena", "Fabio", "Gina", "Ivo"];
const FIELDS: [&str; 5] = ["name", "surname", "birthday", "relationship", "role"];

/// The editable fields of a person, as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields(BTreeMap<&'static str, String>);

impl Fields {
    fn random(rng: &mut StdRng) -> Self {
        Self(FIELDS.iter().map(|field| (*field, random_value(rng, field))).collect())
    }

    fn of(reply: &Value) -> Result<Self> {
        let mut fields = BTreeMap::new();
        for field in FIELDS {
            let value = reply[field].as_str().with_context(|| format!("{field} in {reply}"))?;
            fields.insert(field, value.to_owned());
        }
        Ok(Self(fields))
    }

    fn json(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
    }
}

fn random_value(rng: &mut StdRng, field: &str) -> String {
    match field {
        "name" => format!("{}{}", NAMES.choose(rng).unwrap_or(&"Ada"), rng.random_range(0..1000)),
        "surname" => format!("Durevole{}", rng.random_range(0..100_000)),
        "birthday" => format!(
            "{}-{:02}-{:02}",
            rng.random_range(1940..2020),
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        ),
        "relationship" => RELATIONSHIPS.choose(rng).unwrap_or(&"altro").to_string(),
        _ => ROLES.choose(rng).unwrap_or(&"guest").to_string(),
    }
}

/// One write a client sends.
#[derive(Debug, Clone)]
enum Op {
    Create { identity: String, fields: Fields },
    AddFace { person: i64, photo: PathBuf },
    Patch { person: i64, changes: Value, after: Fields },
    DeleteFace { person: i64, face: i64 },
    DeletePerson { person: i64 },
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::AddFace { .. } => "add_face",
            Op::Patch { .. } => "patch",
            Op::DeleteFace { .. } => "delete_face",
            Op::DeletePerson { .. } => "delete_person",
        }
    }
}

/// A person as the clients know it from acknowledged writes.
#[derive(Debug, Clone)]
struct Known {
    identity: String,
    owner: usize,
    fields: Fields,
    /// Face id → the photo it was enrolled from.
    faces: BTreeMap<i64, PathBuf>,
}

#[derive(Debug, Default)]
struct Stats {
    /// Writes acknowledged with 2xx that changed something.
    acknowledged: u64,
    /// Enrollments refused by the quality gate (422): nothing stored.
    refused: u64,
    /// Near-duplicate photos (200): nothing stored.
    duplicates: u64,
    /// In-flight writes at the kill found applied / absent, by kind.
    in_flight: BTreeMap<(&'static str, bool), u64>,
    /// Acknowledged persons, faces and deletions compared after all restarts.
    checked: u64,
    recognitions: u64,
}

/// What the clients know: everything acknowledged, and the write each has in flight.
#[derive(Debug, Default)]
struct World {
    persons: BTreeMap<i64, Known>,
    deleted_persons: BTreeSet<i64>,
    /// (person, face) of deleted face samples, including those of deleted persons.
    deleted_faces: BTreeSet<(i64, i64)>,
    /// Identities no live (or possibly live) person uses.
    free: Vec<String>,
    pending: Vec<Option<Op>>,
    stats: Stats,
}

/// The photos of the test data, read once.
struct Photos {
    by_identity: BTreeMap<String, Vec<PathBuf>>,
    /// Photos the quality gate refuses (no face, several faces).
    refused: Vec<PathBuf>,
    bytes: HashMap<PathBuf, Vec<u8>>,
}

impl Photos {
    fn load(data: &Path) -> Result<Self> {
        let mut by_identity = BTreeMap::new();
        let mut refused = Vec::new();
        for entry in std::fs::read_dir(data.join("faces"))? {
            let entry = entry?;
            let identity = entry.file_name().to_string_lossy().into_owned();
            let photos = identity_photos(data, &identity)?;
            if identity == "none" || identity == "group" {
                refused.extend(photos);
            } else if !photos.is_empty() {
                by_identity.insert(identity, photos);
            }
        }
        let mut bytes = HashMap::new();
        for photo in by_identity.values().flatten().chain(&refused) {
            bytes.insert(photo.clone(), std::fs::read(photo)?);
        }
        ensure!(by_identity.len() >= CLIENTS * MAX_PERSONS_PER_CLIENT, "too few identities");
        Ok(Self { by_identity, refused, bytes })
    }

    fn bytes(&self, photo: &Path) -> Vec<u8> {
        self.bytes.get(photo).cloned().unwrap_or_default()
    }
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl World {
    fn new(photos: &Photos) -> Self {
        Self {
            free: photos.by_identity.keys().cloned().collect(),
            pending: vec![None; CLIENTS],
            ..Self::default()
        }
    }

    fn owned_by(&self, client: usize) -> Vec<i64> {
        self.persons.iter().filter(|(_, p)| p.owner == client).map(|(id, _)| *id).collect()
    }

    /// The next write of `client`, chosen at random among its own persons.
    fn next_op(&mut self, client: usize, rng: &mut StdRng, photos: &Photos) -> Result<Op> {
        let mine = self.owned_by(client);
        let roll = rng.random_range(0..100);
        let create = mine.is_empty() || (roll < 12 && mine.len() < MAX_PERSONS_PER_CLIENT);
        if create && !self.free.is_empty() {
            let identity = self.free.swap_remove(rng.random_range(0..self.free.len()));
            return Ok(Op::Create { identity, fields: Fields::random(rng) });
        }
        // Identities outnumber the persons the clients may hold, so one is always free.
        let &person = mine.choose(rng).context("no person and no free identity")?;
        let known = &self.persons[&person];
        Ok(if roll < 55 || (roll < 87 && known.faces.is_empty()) {
            let photo = photos.by_identity[&known.identity].choose(rng).context("a photo")?;
            Op::AddFace { person, photo: photo.clone() }
        } else if roll < 60 {
            Op::AddFace { person, photo: photos.refused.choose(rng).context("a photo")?.clone() }
        } else if roll < 75 {
            let mut after = known.fields.clone();
            let mut changes = serde_json::Map::new();
            let must = rng.random_range(0..FIELDS.len());
            for (i, field) in FIELDS.into_iter().enumerate() {
                if i == must || rng.random_bool(0.3) {
                    let value = random_value(rng, field);
                    changes.insert(field.to_owned(), json!(value));
                    after.0.insert(field, value);
                }
            }
            Op::Patch { person, changes: Value::Object(changes), after }
        } else if roll < 87 {
            let faces: Vec<i64> = known.faces.keys().copied().collect();
            Op::DeleteFace { person, face: *faces.choose(rng).context("a face")? }
        } else {
            Op::DeletePerson { person }
        })
    }

    /// Records a write the server answered.
    fn acknowledge(&mut self, client: usize, op: Op, status: u16, body: &Value) -> Result<()> {
        let unexpected = || format!("{op:?} answered {status} {body}");
        match &op {
            Op::Create { identity, fields } => {
                ensure!(status == 201, unexpected());
                let id = body["id"].as_i64().with_context(unexpected)?;
                ensure!(&Fields::of(body)? == fields, unexpected());
                ensure!(body["faces"] == 0, unexpected());
                ensure!(!self.persons.contains_key(&id) && !self.deleted_persons.contains(&id));
                let known = Known {
                    identity: identity.clone(),
                    owner: client,
                    fields: fields.clone(),
                    faces: BTreeMap::new(),
                };
                self.persons.insert(id, known);
                self.stats.acknowledged += 1;
            }
            Op::AddFace { person, photo } => {
                let known = self.persons.get_mut(person).with_context(unexpected)?;
                match status {
                    201 => {
                        let face = body["id"].as_i64().with_context(unexpected)?;
                        ensure!(!known.faces.contains_key(&face), unexpected());
                        ensure!(!self.deleted_faces.iter().any(|(_, f)| *f == face), unexpected());
                        known.faces.insert(face, photo.clone());
                        self.stats.acknowledged += 1;
                    }
                    200 => {
                        let face = body["id"].as_i64().with_context(unexpected)?;
                        ensure!(
                            known.faces.contains_key(&face),
                            "duplicate of an unknown face: {}",
                            unexpected()
                        );
                        self.stats.duplicates += 1;
                    }
                    422 => self.stats.refused += 1,
                    _ => bail!(unexpected()),
                }
            }
            Op::Patch { person, after, .. } => {
                ensure!(status == 200 && &Fields::of(body)? == after, unexpected());
                self.persons.get_mut(person).with_context(unexpected)?.fields = after.clone();
                self.stats.acknowledged += 1;
            }
            Op::DeleteFace { person, face } => {
                ensure!(status == 204, unexpected());
                self.persons.get_mut(person).with_context(unexpected)?.faces.remove(face);
                self.deleted_faces.insert((*person, *face));
                self.stats.acknowledged += 1;
            }
            Op::DeletePerson { person } => {
                ensure!(status == 204, unexpected());
                self.forget_person(*person);
                self.stats.acknowledged += 1;
            }
        }
        Ok(())
    }

    fn forget_person(&mut self, person: i64) {
        if let Some(known) = self.persons.remove(&person) {
            self.deleted_faces.extend(known.faces.keys().map(|face| (person, *face)));
            self.free.push(known.identity);
        }
        self.deleted_persons.insert(person);
    }

    fn in_flight(&mut self, op: &Op, applied: bool) {
        *self.stats.in_flight.entry((op.kind(), applied)).or_default() += 1;
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    op: &Op,
    photos: &Photos,
) -> Result<(u16, Value)> {
    let request = match op {
        Op::Create { fields, .. } => http.post(format!("{base}/api/persons")).json(&fields.json()),
        Op::AddFace { person, photo } => {
            let part = reqwest::multipart::Part::bytes(photos.bytes(photo)).file_name("photo.jpg");
            http.post(format!("{base}/api/persons/{person}/faces"))
                .multipart(reqwest::multipart::Form::new().part("image", part))
        }
        Op::Patch { person, changes, .. } => {
            http.patch(format!("{base}/api/persons/{person}")).json(changes)
        }
        Op::DeleteFace { person, face } => {
            http.delete(format!("{base}/api/persons/{person}/faces/{face}"))
        }
        Op::DeletePerson { person } => http.delete(format!("{base}/api/persons/{person}")),
    };
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Writes until the server goes away; the write it had in flight stays in `pending`.
async fn client(
    index: usize,
    base: String,
    world: Arc<Mutex<World>>,
    photos: Arc<Photos>,
    mut rng: StdRng,
) -> Result<()> {
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    loop {
        let op = {
            let mut world = lock(&world);
            let op = world.next_op(index, &mut rng, &photos)?;
            world.pending[index] = Some(op.clone());
            op
        };
        let Ok((status, body)) = send(&http, &base, &op, &photos).await else {
            return Ok(());
        };
        let mut world = lock(&world);
        world.pending[index] = None;
        world.acknowledge(index, op, status, &body)?;
    }
}

async fn get(http: &reqwest::Client, url: String) -> Result<(u16, Value)> {
    let response = http.get(&url).send().await.with_context(|| url.clone())?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

fn face_ids(faces: &Value) -> Result<BTreeSet<i64>> {
    faces
        .as_array()
        .context("faces list")?
        .iter()
        .map(|f| f["id"].as_i64().context("face id"))
        .collect()
}

/// Everything the restarted server holds, against what was acknowledged; the writes in
/// flight at the kill are resolved to applied or absent (wholly) and the world updated.
async fn check_restart(
    server: &Server,
    shared: &Mutex<World>,
    photos: &Photos,
    rng: &mut StdRng,
) -> Result<()> {
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    let (status, list) = get(&http, server.url("/api/persons?limit=500")).await?;
    ensure!(status == 200, "list persons: {status} {list}");
    let mut listed = BTreeMap::new();
    for item in list["items"].as_array().context("items")? {
        listed.insert(item["id"].as_i64().context("id")?, item.clone());
    }
    ensure!(list["total"] == listed.len(), "total {} vs {} items", list["total"], listed.len());

    // The clients have stopped: the check works on the world taken out of its mutex.
    let mut world = std::mem::take(&mut *lock(shared));
    let pending: Vec<(usize, Op)> = std::mem::take(&mut world.pending)
        .into_iter()
        .enumerate()
        .filter_map(|(client, op)| op.map(|op| (client, op)))
        .collect();
    world.pending = vec![None; CLIENTS];

    // Persons nobody acknowledged: only a create in flight may have made one, with its fields.
    let mut adopted = BTreeSet::new();
    for (&id, item) in &listed {
        if world.persons.contains_key(&id) {
            continue;
        }
        ensure!(!world.deleted_persons.contains(&id), "deleted person {id} is back: {item}");
        let fields = Fields::of(item)?;
        let creator = pending.iter().find(|(_, op)| {
            matches!(op, Op::Create { fields: f, .. } if *f == fields)
                && !adopted.contains(&op_key(op))
        });
        let Some((client, op @ Op::Create { identity, .. })) = creator else {
            bail!("person {id} was never acknowledged nor in flight: {item}");
        };
        ensure!(item["faces"] == 0, "a person created in flight has faces: {item}");
        adopted.insert(op_key(op));
        let known =
            Known { identity: identity.clone(), owner: *client, fields, faces: BTreeMap::new() };
        world.persons.insert(id, known);
    }
    for (_, op) in &pending {
        if let Op::Create { identity, .. } = op {
            let applied = adopted.contains(&op_key(op));
            if !applied {
                world.free.push(identity.clone());
            }
            world.in_flight(op, applied);
        }
    }

    // Acknowledged persons: present unless their delete was in flight.
    let known_ids: Vec<i64> = world.persons.keys().copied().collect();
    for id in known_ids {
        if listed.contains_key(&id) {
            continue;
        }
        let deleting = pending
            .iter()
            .any(|(_, op)| matches!(op, Op::DeletePerson { person } if *person == id));
        ensure!(deleting, "acknowledged person {id} is lost: {:?}", world.persons[&id]);
        let op = Op::DeletePerson { person: id };
        world.in_flight(&op, true);
        world.forget_person(id);
        let (status, body) = get(&http, server.url(&format!("/api/persons/{id}/faces"))).await?;
        ensure!(status == 404, "faces of deleted person {id}: {status} {body}");
    }
    for (_, op) in &pending {
        if let Op::DeletePerson { person } = op
            && world.persons.contains_key(person)
        {
            world.in_flight(op, false);
        }
    }

    // Each live person: exact fields and exactly the acknowledged faces.
    let ids: Vec<i64> = world.persons.keys().copied().collect();
    for id in ids {
        let item = &listed[&id];
        let fields = Fields::of(item)?;
        let patch = pending.iter().find_map(|(_, op)| match op {
            Op::Patch { person, after, .. } if *person == id => Some((op, after)),
            _ => None,
        });
        let known = world.persons.get(&id).cloned().context("known")?;
        if let Some((op, after)) = patch {
            ensure!(
                fields == known.fields || fields == *after,
                "person {id} half-patched: {item}, before {:?}, after {after:?}",
                known.fields
            );
            let applied = fields == *after && fields != known.fields;
            let op = op.clone();
            world.in_flight(&op, applied);
            world.persons.get_mut(&id).context("known")?.fields = fields.clone();
        } else {
            ensure!(fields == known.fields, "person {id}: {item}, acknowledged {:?}", known.fields);
        }
        let (status, one) = get(&http, server.url(&format!("/api/persons/{id}"))).await?;
        ensure!(status == 200 && one == *item, "GET person {id}: {status} {one} vs listed {item}");
        let (status, faces) = get(&http, server.url(&format!("/api/persons/{id}/faces"))).await?;
        ensure!(status == 200, "faces of {id}: {status} {faces}");
        let actual = face_ids(&faces)?;
        ensure!(
            item["faces"] == actual.len(),
            "person {id} counts {} faces, lists {actual:?}",
            item["faces"]
        );
        let expected: BTreeSet<i64> = known.faces.keys().copied().collect();
        let extra: Vec<i64> = actual.difference(&expected).copied().collect();
        let missing: Vec<i64> = expected.difference(&actual).copied().collect();
        let adding = pending
            .iter()
            .find(|(_, op)| matches!(op, Op::AddFace { person, .. } if *person == id));
        let deleting = pending
            .iter()
            .find(|(_, op)| matches!(op, Op::DeleteFace { person, .. } if *person == id));
        match (extra.as_slice(), adding) {
            ([], Some((_, op))) => world.in_flight(op, false),
            ([], None) => {}
            ([face], Some((_, op @ Op::AddFace { photo, .. }))) => {
                ensure!(
                    !world.deleted_faces.iter().any(|(_, f)| f == face),
                    "deleted face {face} is back"
                );
                world.persons.get_mut(&id).context("known")?.faces.insert(*face, photo.clone());
                world.in_flight(op, true);
            }
            _ => bail!(
                "person {id}: faces {actual:?} but acknowledged {expected:?} (in flight: {adding:?})"
            ),
        }
        match (missing.as_slice(), deleting) {
            ([], Some((_, op))) => world.in_flight(op, false),
            ([], None) => {}
            ([face], Some((_, op @ Op::DeleteFace { face: deleted, .. }))) if face == deleted => {
                world.persons.get_mut(&id).context("known")?.faces.remove(face);
                world.deleted_faces.insert((id, *face));
                world.in_flight(op, true);
            }
            _ => bail!(
                "person {id}: acknowledged faces {missing:?} are lost (in flight: {deleting:?})"
            ),
        }
        world.stats.checked += 1 + actual.len() as u64;
        // No face without its crop.
        for face in &actual {
            let url = server.url(&format!("/api/persons/{id}/faces/{face}/crop"));
            let response = http.get(&url).send().await?;
            ensure!(response.status() == 200, "crop of face {face}: {}", response.status());
            let jpeg = response.bytes().await?;
            ensure!(jpeg.starts_with(&[0xFF, 0xD8]), "crop of face {face} is not a JPEG");
        }
    }

    // Deletions stay deleted.
    for id in world.deleted_persons.clone() {
        let (status, body) = get(&http, server.url(&format!("/api/persons/{id}"))).await?;
        ensure!(status == 404, "deleted person {id}: {status} {body}");
        world.stats.checked += 1;
    }
    for (person, face) in world.deleted_faces.clone() {
        if world.persons.contains_key(&person) {
            let url = server.url(&format!("/api/persons/{person}/faces/{face}/crop"));
            let status = http.get(&url).send().await?.status();
            ensure!(status == 404, "crop of deleted face {face}: {status}");
            world.stats.checked += 1;
        }
    }

    // The index holds exactly the database's persons and faces.
    let n_faces: usize = world.persons.values().map(|p| p.faces.len()).sum();
    let (status, health) = get(&http, server.url("/api/health")).await?;
    ensure!(status == 200, "health {status} {health}");
    ensure!(
        health["n_persons"] == world.persons.len() && health["n_faces"] == n_faces,
        "index holds {} persons / {} faces, database {} / {n_faces}",
        health["n_persons"],
        health["n_faces"],
        world.persons.len()
    );

    // An enrolled photo names its person.
    let with_faces: Vec<(i64, Known)> = world
        .persons
        .iter()
        .filter(|(_, p)| !p.faces.is_empty())
        .map(|(id, p)| (*id, p.clone()))
        .collect();
    for (id, known) in with_faces.choose_multiple(rng, RECOGNITIONS_PER_CHECK) {
        let photo = known.faces.values().next().context("a face")?;
        let part = reqwest::multipart::Part::bytes(photos.bytes(photo)).file_name("photo.jpg");
        let response = http
            .post(server.url("/api/recognize"))
            .multipart(reqwest::multipart::Form::new().part("image", part))
            .send()
            .await?;
        ensure!(response.status() == 200, "recognize: {}", response.status());
        let reply: Value = response.json().await?;
        let named = reply["faces"].as_array().context("faces")?.iter().any(|face| {
            face["person_id"] == *id
                && face["name"] == known.fields.0["name"].as_str()
                && face["surname"] == known.fields.0["surname"].as_str()
        });
        ensure!(
            named,
            "person {id}'s enrolled photo {} is not recognized: {reply}",
            photo.display()
        );
        world.stats.recognitions += 1;
    }
    let model = health["embedder"].as_str().context("embedder")?.to_owned();
    *lock(shared) = world;
    check_database(&server.data_dir, &ModelId::new(model), listed.len(), n_faces).await
}

/// Stable identity of an in-flight op, so one create is adopted at most once.
fn op_key(op: &Op) -> String {
    format!("{op:?}")
}

/// The database itself, opened next to the running server: full integrity check, foreign
/// keys, and every face with exactly one embedding and one crop.
async fn check_database(dir: &Path, model: &ModelId, persons: usize, faces: usize) -> Result<()> {
    let store = SqliteStore::open_in_dir(dir).await?;
    let result = async {
        let check: Vec<String> =
            sqlx::query_scalar("PRAGMA integrity_check").fetch_all(store.pool()).await?;
        ensure!(check == ["ok"], "integrity_check: {check:?}");
        let violations = sqlx::query("PRAGMA foreign_key_check").fetch_all(store.pool()).await?;
        ensure!(violations.is_empty(), "{} foreign key violations", violations.len());
        ensure!(store.count_persons().await? == persons as u64, "person count");
        ensure!(store.count_faces().await? == faces as u64, "face count");
        let crops: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM face_crops").fetch_one(store.pool()).await?;
        ensure!(crops == faces as i64, "{crops} crops for {faces} faces");
        let models = store.embedding_models().await?;
        let embedded: u64 = models.iter().map(|m| m.n_embeddings).sum();
        ensure!(embedded == faces as u64, "{embedded} embeddings for {faces} faces: {models:?}");
        ensure!(store.faces_without_embedding(model).await?.is_empty(), "faces without embedding");
        Ok(())
    }
    .await;
    store.close().await;
    result
}

fn seed() -> u64 {
    std::env::var(SEED_VAR).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

fn long_run() -> bool {
    std::env::var(LONG_SWITCH).is_ok_and(|v| v == "1")
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() -> Result<()> {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA not found");
        return Ok(());
    };
    let kills = if long_run() { LONG_KILLS } else { SHORT_KILLS };
    let seed = seed();
    println!("kill -9 loop: {kills} kills, seed {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let photos = Arc::new(Photos::load(&data)?);
    let world = Arc::new(Mutex::new(World::new(&photos)));
    let dir = tempfile::tempdir()?;
    let options = ServerOptions { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let started = Instant::now();
    let mut server = Server::start_with(options.clone()).await?;
    let mut startup = Duration::ZERO;
    for kill in 1..=kills {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|index| {
                let client_rng = StdRng::seed_from_u64(rng.random());
                tokio::spawn(client(
                    index,
                    format!("http://{}", server.addr),
                    Arc::clone(&world),
                    Arc::clone(&photos),
                    client_rng,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(KILL_DELAY_MS))).await;
        let status = server.kill()?;
        for client in clients {
            client.await??;
        }
        drop(server);
        let restart = Instant::now();
        server = Server::start_with(options.clone())
            .await
            .with_context(|| format!("restart after kill {kill} (seed {seed})"))?;
        startup += restart.elapsed();
        check_restart(&server, &world, &photos, &mut rng)
            .await
            .with_context(|| format!("after kill {kill} ({status}), seed {seed}"))?;
        if kill % 20 == 0 {
            let world = lock(&world);
            println!(
                "{kill} kills, {} acknowledged writes, {:.0?}",
                world.stats.acknowledged,
                started.elapsed()
            );
        }
    }
    let world = lock(&world);
    let stats = &world.stats;
    println!(
        "{kills} kills in {:.1?} (restarts {:.1?} on average): {} acknowledged writes all found; \
         {} checks of persons/faces/deletions; {} recognitions; {} refused and {} duplicate photos; \
         {} live persons with {} faces at the end",
        started.elapsed(),
        startup / kills as u32,
        stats.acknowledged,
        stats.checked,
        stats.recognitions,
        stats.refused,
        stats.duplicates,
        world.persons.len(),
        world.persons.values().map(|p| p.faces.len()).sum::<usize>(),
    );
    for ((kind, applied), n) in &stats.in_flight {
        println!(
            "  in flight at the kill: {kind} {} ×{n}",
            if *applied { "applied" } else { "absent" }
        );
    }
    ensure!(stats.acknowledged > kills as u64, "too few writes to mean anything");
    Ok(())
}

/// A tmpfs mounted for the test, unmounted on drop.
struct TmpfsMount {
    dir: tempfile::TempDir,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (e.g. `16m`), or says why it cannot.
    fn new(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "ddfr-full-disk"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.dir.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// Writes zeros until the filesystem refuses (`ENOSPC`); returns the bytes written.
fn fill(path: &Path) -> Result<u64> {
    let mut file = std::fs::File::create(path)?;
    let mut written = 0u64;
    for chunk in [1 << 20, 1 << 12, 1] {
        let zeros = vec![0u8; chunk];
        loop {
            match file.write(&zeros) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => return Err(error.into()),
            }
        }
    }
    file.sync_all().ok();
    Ok(written)
}

/// The database files' sizes, for the report.
fn db_files(dir: &Path) -> String {
    ["ddfr.db", "ddfr.db-wal", "ddfr.db-shm"]
        .iter()
        .map(|name| {
            let size = std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
            format!("{name} {size} B")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn enroll(server: &Server, person: i64, photo: &Path) -> Result<(u16, Value)> {
    ddfr_e2e::add_face(server, None, person, std::fs::read(photo)?).await
}

async fn recognized_as(server: &Server, photo: &Path, person: i64) -> Result<bool> {
    Ok(ddfr_e2e::recognized_ids(server, photo).await?.contains(&person))
}

async fn face_count(server: &Server, person: i64) -> Result<usize> {
    let (status, faces) =
        get(&reqwest::Client::new(), server.url(&format!("/api/persons/{person}/faces"))).await?;
    ensure!(status == 200, "faces: {status} {faces}");
    Ok(face_ids(&faces)?.len())
}

#[tokio::test]
async fn a_full_disk_answers_507_and_recovers() -> Result<()> {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA not found");
        return Ok(());
    };
    let mount = match TmpfsMount::new("16m") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("SKIPPED: a real full disk needs a tmpfs mount (run as root): {reason}");
            return Ok(());
        }
    };
    let dir = mount.path().to_path_buf();
    let options = ServerOptions { data_dir: Some(dir.clone()), ..Default::default() };
    let mut server = Server::start_with(options.clone()).await?;
    let photos = identity_photos(&data, "katy_perry")?;
    let ada = create_person(&server, None, "Ada", "Piena").await?;
    let (status, body) = enroll(&server, ada, &photos[0]).await?;
    ensure!(status == 201, "first enrollment: {status} {body}");
    // A delete ends with a WAL checkpoint that truncates the log, so the log has (almost) no
    // space of its own left for the next write.
    let gone = create_person(&server, None, "Via", "Presto").await?;
    let deleted =
        reqwest::Client::new().delete(server.url(&format!("/api/persons/{gone}"))).send().await?;
    ensure!(deleted.status() == 204, "delete: {}", deleted.status());
    println!("before filling: {}", db_files(&dir));

    let ballast = dir.join("ballast");
    let filled = fill(&ballast)?;
    println!("ballast: {filled} bytes; the tmpfs is full");

    // Several refused enrollments, more than the server's pool has connections: each must be
    // a clean 507 and none may leave a connection unusable.
    let mut refused = 0;
    for attempt in 0..6 {
        let photo = &photos[1 + attempt % (photos.len() - 1)];
        let (status, body) = enroll(&server, ada, photo).await?;
        ensure!(status == 507, "enrollment on a full disk, attempt {attempt}: {status} {body}");
        ensure!(body["error"]["code"] == "storage_full", "{body}");
        refused += 1;
    }
    println!("full disk: {refused} enrollments answered 507 storage_full; {}", db_files(&dir));
    // Nothing half-written, and the service keeps recognizing.
    ensure!(face_count(&server, ada).await? == 1, "a refused enrollment left a face");
    let (status, health) = get(&reqwest::Client::new(), server.url("/api/health")).await?;
    ensure!(
        status == 200 && health["n_faces"] == 1 && health["n_persons"] == 1,
        "{status} {health}"
    );
    ensure!(recognized_as(&server, &photos[0], ada).await?, "recognition on a full disk");

    // Space is back: writes succeed on every pooled connection.
    std::fs::remove_file(&ballast)?;
    let (status, body) = enroll(&server, ada, &photos[1]).await?;
    ensure!(status == 201, "enrollment after space came back: {status} {body}");
    for i in 0..8 {
        let patch = reqwest::Client::new()
            .patch(server.url(&format!("/api/persons/{ada}")))
            .json(&json!({"surname": format!("Libera{i}")}))
            .send()
            .await?;
        ensure!(patch.status() == 200, "write {i} after space came back: {}", patch.status());
    }
    ensure!(face_count(&server, ada).await? == 2);
    ensure!(recognized_as(&server, &photos[1], ada).await?, "the new face is not recognized");
    println!("space back: writes succeed; {}", db_files(&dir));

    // And the data dir still opens (integrity check) with everything acknowledged.
    server.kill()?;
    drop(server);
    let server = Server::start_with(options).await?;
    ensure!(face_count(&server, ada).await? == 2);
    ensure!(recognized_as(&server, &photos[1], ada).await?);
    let (_, person) =
        get(&reqwest::Client::new(), server.url(&format!("/api/persons/{ada}"))).await?;
    ensure!(person["surname"] == "Libera7", "{person}");
    drop(server);
    drop(mount);
    Ok(())
}
