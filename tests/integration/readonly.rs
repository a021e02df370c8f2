//! SEMANTICS "Read-only": every mutation answers EROFS; the mount carries `ro`.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use crate::common::*;

fn assert_erofs<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) {
    let err = r.expect_err(what);
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{what}: {err}");
    assert_eq!(err.kind(), ErrorKind::ReadOnlyFilesystem, "{what}");
}

#[test]
fn every_mutation_answers_erofs() {
    let c = Container::new("erofs");
    c.put("dir/file.txt", b"content");
    let m = mount(&c.url, &[]);
    let file = m.p("dir/file.txt");
    assert_erofs("write", OpenOptions::new().write(true).open(&file));
    assert_erofs("create", std::fs::File::create(m.p("dir/new.txt")));
    assert_erofs("mkdir", std::fs::create_dir(m.p("dir/newdir")));
    assert_erofs("unlink", std::fs::remove_file(&file));
    assert_erofs("rmdir", std::fs::remove_dir(m.p("dir")));
    assert_erofs("rename", std::fs::rename(&file, m.p("dir/renamed.txt")));
    assert_erofs(
        "setattr (chmod)",
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)),
    );
    assert_erofs(
        "setattr (truncate)",
        OpenOptions::new().write(true).truncate(true).open(&file),
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"content");
    let entry = blobmount::mountpoint::mount_at(&m.path).unwrap();
    assert!(entry.fstype.starts_with("fuse"), "{entry:?}");
    assert!(entry.source.contains(&c.name), "{entry:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(m.path.to_str().unwrap()))
        .unwrap();
    assert!(
        line.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{line}"
    );
}
