//! SEMANTICS "Names": how blob names become file names.

use crate::common::*;

#[test]
fn a_directory_hides_a_blob_of_the_same_name_and_the_clash_is_logged_once() {
    let c = Container::new("clash");
    c.put("clash", b"i am a blob");
    c.put("clash/inner.txt", b"inner");
    c.put("clash-sibling.txt", b"s");
    let m = mount(&c.url, &["--metadata-ttl", "1"]);
    assert_eq!(
        list_names(&m.path),
        names_set(&["clash", "clash-sibling.txt"])
    );
    assert!(m.p("clash").is_dir());
    assert_eq!(std::fs::read(m.p("clash/inner.txt")).unwrap(), b"inner");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(list_names(&m.path).len(), 2);
    assert!(m.p("clash").is_dir());
    let log = m.log_text();
    assert_eq!(
        log.matches("blob 'clash' has the same name as a directory")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn names_that_cannot_be_posix_names_are_skipped_with_one_warning() {
    let c = Container::new("badnames");
    let long = "x".repeat(256);
    let bad = [
        "bad//empty-segment.txt".to_string(),
        "trail/".to_string(),
        format!("long/{long}"),
        format!("long/{long}/under.txt"),
    ];
    for name in &bad {
        c.put(name, b"bad");
    }
    // '.' and '..' segments cannot be stored through the REST API (the service resolves
    // them in the URL); the unit tests of the superblock cover them.
    for good in [
        "bad/good.txt",
        "trail/kept.txt",
        "dots/fine.txt",
        "long/short.txt",
    ] {
        c.put(good, good.as_bytes());
    }
    let m = mount(&c.url, &[]);
    assert_eq!(
        list_names(&m.path),
        names_set(&["bad", "dots", "long", "trail"])
    );
    assert_eq!(list_names(&m.p("bad")), names_set(&["good.txt"]));
    assert_eq!(list_names(&m.p("trail")), names_set(&["kept.txt"]));
    assert_eq!(list_names(&m.p("dots")), names_set(&["fine.txt"]));
    assert_eq!(list_names(&m.p("long")), names_set(&["short.txt"]));
    assert_eq!(
        std::fs::read(m.p("dots/fine.txt")).unwrap(),
        b"dots/fine.txt"
    );
    // Listing again warns no more.
    for d in ["bad", "trail", "dots", "long"] {
        list_names(&m.p(d));
    }
    let log = m.log_text();
    for shown in [
        "bad//".to_string(),
        "trail/".to_string(),
        format!("long/{long}"),
        format!("long/{long}/"),
    ] {
        let line = format!("skipping '{shown}'");
        assert_eq!(log.matches(&line).count(), 1, "{line} in {log}");
    }
}

#[test]
fn spaces_punctuation_and_non_ascii_names_work() {
    let c = Container::new("special");
    let names = [
        "with space.txt",
        "hash#tag.txt",
        "per%25cent%.txt",
        "question?.txt",
        "plus+sign.txt",
        "ünïcödé-日本語-emoji-🙂.txt",
        "dir with space/inner #1.txt",
    ];
    for n in names {
        c.put(n, n.as_bytes());
    }
    let m = mount(&c.url, &[]);
    assert_eq!(
        list_names(&m.path),
        names_set(&[
            "with space.txt",
            "hash#tag.txt",
            "per%25cent%.txt",
            "question?.txt",
            "plus+sign.txt",
            "ünïcödé-日本語-emoji-🙂.txt",
            "dir with space",
        ])
    );
    for n in names {
        assert_eq!(std::fs::read(m.p(n)).unwrap(), n.as_bytes(), "{n}");
    }
}
