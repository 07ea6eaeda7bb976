//! Links `tess` as a position-dependent executable on Linux: a PIE's start-up applies
//! 64,000 relocations, copying 1.6 MB of its tables page by page (400 page faults, a
//! seventh of a `tess plan`). The trade is stated in the README ("Performance"). And
//! rebuilds when a migration is added (the files are embedded).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `sqlx::migrate!` embeds these files; a new one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
