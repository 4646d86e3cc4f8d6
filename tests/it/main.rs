//! bootseal's integration tests: one test binary (linked once) with a module per area. Each
//! module drives the real binary and the real consumer tools; `common` holds the harness
//! (image builders, registries, references, QEMU).

mod common;

mod addon_secureboot_qemu;
mod build_uki_from_flags;
mod cli_docs;
mod cmdline_compat;
mod cmdline_security;
mod composefs_artifact;
mod composefs_kernel;
mod composefs_meta;
mod composefs_signers;
mod demo;
mod demo_prerequisites;
mod deploy_docs;
mod diff_trees;
mod digest_errors;
mod digest_hostile;
mod digest_realistic;
mod digest_reference;
mod digest_selinux;
mod digest_tools;
mod efi_keys;
mod erofs_kernel_mount;
mod erofs_writer;
mod fuzz_replay;
mod offline_signing;
mod pe_hostile;
mod pkcs11_seal;
mod pkcs11_sign;
mod registry_client;
mod registry_credentials;
mod registry_digest;
mod registry_faults;
mod registry_harness;
mod seal_addons;
mod seal_dates_annotations;
mod seal_dumpfile;
mod seal_external_signing;
mod seal_layout;
mod seal_layout_blobs;
mod seal_multiarch;
mod seal_registry;
mod secureboot_enroll;
mod sign_tools;
mod sync_registry;
mod testdata_golden;
mod uki_addon_ukify;
mod uki_errors;
mod uki_pcr;
mod uki_secureboot_qemu;
mod uki_systemd_measure;
mod uki_ukify_identical;
mod uki_ukify_layout;
