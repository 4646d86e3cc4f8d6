fn main() -> std::process::ExitCode {
    bootseal::cli::main()
}
