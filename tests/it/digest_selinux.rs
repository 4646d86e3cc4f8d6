//! SELinux labelling from the image's own policy equals composefs-boot's (via composefs-oci's
//! pipeline): file_contexts, .local, .subs/.subs_dist, <<none>>, hardlink splitting, policy
//! files overwritten by later layers, nested policy directories, no policy at all.

use crate::common;

use common::image_builder::{Compression, E, OciImage, TarLayer};
use common::reference_check::{base, big, check, dump_line};

fn selinux_entries() -> Vec<E> {
    let file_contexts = "\
# comment line
/.*\t\tsystem_u:object_r:default_t:s0
/\t-d\tsystem_u:object_r:root_t:s0
/usr(/.*)?\tsystem_u:object_r:usr_t:s0
/usr/bin(/.*)?\tsystem_u:object_r:bin_t:s0
/usr/bin/big-link\t--\tsystem_u:object_r:shell_exec_t:s0
/etc(/.*)?\tsystem_u:object_r:etc_t:s0
/etc/selinux(/.*)?\tsystem_u:object_r:selinux_config_t:s0
/opt/nolabel\t<<none>>
/var/lib/thing(/.*)?\tsystem_u:object_r:var_lib_t:s0
/usr/lib/dev/.*\t-c\tsystem_u:object_r:device_t:s0
";
    vec![
        E::dir("etc/selinux"),
        E::file(
            "etc/selinux/config",
            "# SELINUXTYPE=wrong\nSELINUX=enforcing\nSELINUXTYPE=targeted\n",
        ),
        E::dir("etc/selinux/targeted"),
        E::dir("etc/selinux/targeted/contexts"),
        E::dir("etc/selinux/targeted/contexts/files"),
        E::file(
            "etc/selinux/targeted/contexts/files/file_contexts",
            file_contexts,
        ),
        E::file(
            "etc/selinux/targeted/contexts/files/file_contexts.local",
            "/opt/local\t--\tsystem_u:object_r:local_t:s0\n",
        ),
        E::file(
            "etc/selinux/targeted/contexts/files/file_contexts.subs_dist",
            "/aliased /usr\n/var/alias /var/lib/thing\n# a comment line that makes this file longer than sixty-four bytes\n",
        ),
        E::file(
            "etc/selinux/targeted/contexts/files/file_contexts.subs",
            "/opt/sub /etc\n",
        ),
        E::file("etc/selinux/targeted/policy.33", big(2000, 13)),
        E::dir("opt"),
        E::file("opt/nolabel", "n"),
        E::file("opt/local", "l"),
        E::dir("opt/sub"),
        E::file("opt/sub/file", "s"),
        E::dir("aliased"),
        E::dir("aliased/bin"),
        E::file("aliased/bin/tool", "t"),
        E::dir("var/lib"),
        E::dir("var/alias"),
        E::file("var/alias/x", "x"),
        E::file("usr/bin/big", big(800, 14)),
        E::hardlink("usr/bin/big-link", "usr/bin/big"),
        E::dir("usr/lib/dev"),
        E::chardev("usr/lib/dev/zero", 1, 5),
    ]
}

#[test]
fn selinux_labels_from_image_policy() {
    let mut entries = base();
    entries.extend(selinux_entries());
    let r = check(
        "selinux",
        OciImage::new().layer(TarLayer::with(entries), Compression::Gzip),
    );
    assert!(dump_line(&r, "/").contains("root_t"));
    assert!(dump_line(&r, "/usr/bin/sh").contains("bin_t"));
    assert!(dump_line(&r, "/usr/bin/big-link").contains("shell_exec_t"));
    assert!(dump_line(&r, "/usr/bin/big").contains("bin_t"));
    assert!(!dump_line(&r, "/opt/nolabel").contains("security.selinux"));
    assert!(dump_line(&r, "/opt/local").contains("local_t"));
    assert!(dump_line(&r, "/opt/sub/file").contains("etc_t"));
    assert!(dump_line(&r, "/aliased/bin/tool").contains("bin_t"));
    assert!(dump_line(&r, "/var/alias/x").contains("var_lib_t"));
    assert!(dump_line(&r, "/usr/lib/dev/zero").contains("device_t"));
}

#[test]
fn selinux_policy_split_across_layers_and_overwritten() {
    let mut first = base();
    first.extend(selinux_entries());
    // A later layer replaces file_contexts: the final version must be used for labelling.
    let second = vec![E::file(
        "etc/selinux/targeted/contexts/files/file_contexts",
        "/.*\tsystem_u:object_r:second_layer_t:s0\n/usr(/.*)?\tsystem_u:object_r:usr_two_t:s0\n",
    )];
    let r = check(
        "selinux2",
        OciImage::new()
            .layer(TarLayer::with(first), Compression::Zstd)
            .layer(TarLayer::with(second), Compression::Gzip),
    );
    assert!(dump_line(&r, "/usr/bin/sh").contains("usr_two_t"));
}

#[test]
fn selinux_policy_in_nested_directory() {
    let mut entries = base();
    entries.extend([
        E::dir("etc/selinux"),
        E::file("etc/selinux/config", "SELINUXTYPE=vendor/strict\n"),
        E::dir("etc/selinux/vendor"),
        E::dir("etc/selinux/vendor/strict"),
        E::dir("etc/selinux/vendor/strict/contexts"),
        E::dir("etc/selinux/vendor/strict/contexts/files"),
        E::file(
            "etc/selinux/vendor/strict/contexts/files/file_contexts",
            "/.*\tsystem_u:object_r:strict_default_t:s0\n/usr(/.*)?\tsystem_u:object_r:strict_usr_t:s0\n",
        ),
    ]);
    let r = check(
        "nested",
        OciImage::new().layer(TarLayer::with(entries), Compression::Gzip),
    );
    assert!(dump_line(&r, "/usr/bin/sh").contains("strict_usr_t"));
}

#[test]
fn no_selinux_config_strips_labels() {
    let mut entries = base();
    entries.push(E::dir("etc/selinux"));
    entries.push(
        E::file("usr/lib/labelled", "x").xattr("security.selinux", b"system_u:object_r:foo_t:s0"),
    );
    let r = check(
        "noselinux",
        OciImage::new().layer(TarLayer::with(entries), Compression::Gzip),
    );
    assert!(!r.dumpfile.as_deref().unwrap().contains("security.selinux"));
}
