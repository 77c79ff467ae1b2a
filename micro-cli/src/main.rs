//! The `micro` command: a thin layer over [`micro_cli::run`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut io = micro_cli::Io {
        out: &mut out,
        err: &mut err,
    };
    let status = micro_cli::run(args, &mut io).await;
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
