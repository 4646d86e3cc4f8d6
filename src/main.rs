//! The `bootseal` command: flag parsing only (`cli`); every subcommand calls into the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
