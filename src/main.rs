fn main() {
    if let Err(e) = bootseal::cli::main() {
        eprintln!("bootseal: {e:#}");
        std::process::exit(1);
    }
}
