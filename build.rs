//! Build script: a digest of `migrations/` for `serve --ephemeral`, whose
//! template database is named after it (a migration added or edited makes a
//! new template); and a rebuild whenever a migration changes (diesel's
//! `embed_migrations!` alone does not notice a new migration folder).

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let root = Path::new("migrations");
    let mut all = Vec::new();
    files(root, &mut all);
    all.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for path in &all {
        println!("cargo:rerun-if-changed={}", path.display());
        let relative = path.strip_prefix(root).unwrap_or(path);
        hash = fnv1a(hash, relative.to_string_lossy().as_bytes());
        hash = fnv1a(hash, &[0]);
        hash = fnv1a(hash, &std::fs::read(path).unwrap_or_default());
        hash = fnv1a(hash, &[0]);
    }
    println!("cargo:rustc-env=KEYWARD_MIGRATIONS_DIGEST={hash:016x}");
}
