//! Repository hygiene checked as a test: every Rust source file starts with a `//!` comment
//! saying what the module is for.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | "node_modules" | "dist" | ".git" | ".cache") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "tests", "web"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().trim_start().starts_with("//!"))
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading //! comment: {missing:#?}");
}

/// DU-4: a live SQLite database is only ever copied with `VACUUM INTO` (`ddfr backup`, and the
/// copy kept before a migration). A plain file copy of a database in WAL mode can miss committed
/// pages still in the `-wal` file, or catch a page mid-write. The one `fs::copy` in the product
/// stages a *backup file* (not a live database) for `ddfr restore`.
#[test]
fn no_plain_file_copy_of_a_live_database() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mut copies = Vec::new();
    for file in files.iter().filter(|f| f.components().any(|c| c.as_os_str() == "src")) {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if ["fs::copy(", "Command::new(\"cp\")"].iter().any(|c| code.contains(c)) {
                let relative = file.strip_prefix(&root).unwrap_or(file).display().to_string();
                copies.push(format!("{relative}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        copies.len() == 1 && copies[0].starts_with("crates/ddfr/src/commands/backup.rs:"),
        "file copies in product code (only restore's staging of a backup file is allowed): \
         {copies:#?}"
    );
}
