//! The `keyward` command: parse the command line, set up logging, run.

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    keyward::cli::main()
}
